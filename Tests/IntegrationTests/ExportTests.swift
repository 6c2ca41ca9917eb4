import Foundation
import PilotwatchCore
import Testing

// `pilotwatch export` end to end: a dataset built by hand is ingested with `pilotwatch ingest`
// (the real validation and store), then exported in every format as a programme manager would,
// with the figures of the JSON worked out here from the dataset, disclosure control checked on
// the CSV, byte-identical reruns, and the FHIR Bundle checked by a real FHIR R4 validator
// (fhir.resources 6.4.0 in .venv-fhir, see scripts/fhir-venv.sh).
//
// Respiratory: resp-seven (7 subjects), resp-big (30) and resp-bigger (25): one small pilot
// beside large ones. Cardiac: card-solo (12 subjects and one pseudonym never enrolled).

private let exportPilots = """
pilots:
  - id: resp-seven
    name: Seven-patient COPD pilot
    programme: respiratory
    lead: Hopital Petit
    call: call-a
    funders: [feder-idf]
    start: 2026-04-01
    end: 2027-06-30
    enrolment_target: 20
    milestones: [{date: 2026-06-30, enrolled: 5}, {date: 2027-03-31, enrolled: 15}]
    outcomes: [spo2, exacerbation]
  - id: resp-big
    name: COPD telemonitoring
    programme: respiratory
    lead: Hopital Nord + BreathCo
    call: call-a
    funders: [feder-idf, horizon-europe]
    start: 2026-04-01
    end: 2027-06-30
    enrolment_target: 40
    milestones: [{date: 2026-05-15, enrolled: 10}, {date: 2026-06-30, enrolled: 40}]
    outcomes: [spo2, exacerbation]
  - id: resp-bigger
    name: COPD coaching
    programme: respiratory
    lead: Clinique Est
    call: call-b
    funders: [region-idf]
    start: 2026-05-01
    end: 2027-06-30
    enrolment_target: 30
    outcomes: [spo2, exacerbation]
  - id: card-solo
    name: Heart-failure weight watch
    programme: cardiac
    lead: CardioLink
    call: call-b
    funders: [region-idf]
    start: 2026-04-01
    end: 2027-08-31
    enrolment_target: 12
    outcomes: [weight, hospitalisation]
"""

/// NDJSON lines, one message each.
private struct ExportFeed {
    var lines: [String] = []
    private var next = 0

    mutating func send(_ pilot: String, _ observation: String) {
        next += 1
        lines.append("{\"topic\":\"pilots/\(pilot)/dev-01/obs\",\"payload\":\(obsMessage("x-\(next)", [observation]))}")
    }

    mutating func measure(_ pilot: String, _ subject: String, _ indicator: String, _ value: Double, at: Instant, unit: String) {
        send(pilot, obs(subject, indicator, value, unit: unit, at: at.description))
    }

    mutating func event(_ pilot: String, _ subject: String, _ indicator: String, at: Instant) {
        send(pilot, obs(subject, indicator, at: at.description))
    }
}

private let day = 86_400_000.0
private func at(_ text: String) -> Instant { RFC3339.parse(text) ?? Instant(millis: 0) }

/// One pilot's subjects as the dataset builds them, for working out the expected figures.
private struct Subject {
    var code: String
    var enrolled: Instant
    var withdrawn: Instant?
    var baseline: Double
    var latest: Double
    var latestAt: Instant
    var events: [Instant]
}

private func bigSubjects() -> [Subject] {
    (0..<30).map { i in
        let e = at("2026-05-01T08:00:00Z").adding(days: Double(i))
        return Subject(code: String(format: "big-%04d", i), enrolled: e, withdrawn: i % 10 == 9 ? e.adding(days: 100) : nil,
                       baseline: 88 + Double(i % 5), latest: 87 + Double(i % 7), latestAt: e.adding(days: 70),
                       events: i % 2 == 0 ? [e.adding(days: 30)] : [])
    }
}

private func biggerSubjects() -> [Subject] {
    (0..<25).map { j in
        let e = at("2026-06-01T09:00:00Z").adding(days: Double(j))
        return Subject(code: String(format: "bg-%04d", j), enrolled: e, withdrawn: nil, baseline: 91 + Double(j % 3),
                       latest: 93 + Double(j % 4), latestAt: e.adding(days: 65), events: [])
    }
}

private func sevenSubjects() -> [Subject] {
    (0..<7).map { i in
        let e = at("2026-05-10T10:00:00Z").adding(days: Double(2 * i))
        return Subject(code: String(format: "seven-%04d", i), enrolled: e, withdrawn: i == 3 ? e.adding(days: 80) : nil,
                       baseline: 90, latest: 93 + Double(i % 2), latestAt: e.adding(days: 61),
                       events: i < 2 ? [e.adding(days: 20)] : [])
    }
}

private func soloSubjects() -> [Subject] {
    (0..<12).map { i in
        let e = at("2026-04-20T07:00:00Z").adding(days: Double(i))
        return Subject(code: String(format: "solo-%04d", i), enrolled: e, withdrawn: nil, baseline: 80 + Double(i),
                       latest: 79 + Double(i) + (i % 3 == 0 ? 0.5 : 0), latestAt: e.adding(days: 75),
                       events: i < 11 ? [e.adding(days: 40)] : [])
    }
}

private func feed(extraRefusals: Bool = true) -> ExportFeed {
    var f = ExportFeed()
    func add(_ pilot: String, _ subjects: [Subject], indicator: String, unit: String, event: String) {
        for s in subjects {
            f.event(pilot, s.code, "enrolled", at: s.enrolled)
            f.measure(pilot, s.code, indicator, s.baseline, at: s.enrolled, unit: unit)
            f.measure(pilot, s.code, indicator, s.latest, at: s.latestAt, unit: unit)
            if let w = s.withdrawn { f.event(pilot, s.code, "withdrawn", at: w) }
            for e in s.events { f.event(pilot, s.code, event, at: e) }
        }
    }
    add("resp-seven", sevenSubjects(), indicator: "spo2", unit: "%", event: "exacerbation")
    add("resp-big", bigSubjects(), indicator: "spo2", unit: "%", event: "exacerbation")
    add("resp-bigger", biggerSubjects(), indicator: "spo2", unit: "%", event: "exacerbation")
    add("card-solo", soloSubjects(), indicator: "weight", unit: "kg", event: "hospitalisation")
    // A pseudonym that sends data without ever being enrolled.
    f.measure("card-solo", "solo-unenrolled", "weight", 70, at: at("2026-07-01T10:00:00Z"), unit: "kg")
    if extraRefusals {
        // resp-big: 15 readings out of range and 2 with a unit spo2 does not take.
        for i in 0..<15 { f.measure("resp-big", "big-0000", "spo2", 140, at: at("2026-07-01T10:00:00Z").adding(days: Double(i)), unit: "%") }
        for i in 0..<2 { f.measure("resp-big", "big-0001", "spo2", 95, at: at("2026-07-02T10:00:00Z").adding(days: Double(i)), unit: "mg") }
    }
    return f
}

/// T: the start of the day after tomorrow (UTC), so that the refusals received today count.
private let exportAsOf: Instant = {
    let today = Instant(seconds: Date().timeIntervalSince1970).day
    return today.advanced(by: 2).start
}()

private func preparedExport() throws -> Workspace {
    let ws = try Workspace(pilots: exportPilots)
    let file = ws.dir + "/feed.ndjson"
    let f = feed()
    try f.lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
    let r = try ws.run(["ingest", file, "--format", "json"])
    guard r.status == 0 else { throw TestFailure("ingest failed: \(r.stderr)") }
    guard let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
          (o["refused"] as? NSNumber)?.intValue == 17 else {
        throw TestFailure("unexpected ingest summary: \(r.stdout)")
    }
    return ws
}

private func exportJSON(_ ws: Workspace, _ extra: [String] = []) throws -> [String: Any] {
    let r = try ws.run(["export", "--as-of", exportAsOf.description, "--format", "json"] + extra)
    guard r.status == 0 else { throw TestFailure("export failed (\(r.status)): \(r.stderr)") }
    guard let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(r.stdout.prefix(200))")
    }
    return o
}

private func num(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }
private func close(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) <= 1e-9 * max(1, abs(b)) } ?? false }
private func suppressed(_ v: Any?) -> String? { (v as? [String: Any])?["suppressed"] as? String }

private func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }

/// Patient-days of follow-up up to T (whole life), summed.
private func patientDays(_ subjects: [Subject], asOf t: Instant) -> Double {
    subjects.reduce(0) { $0 + $1.enrolled.days(to: min($1.withdrawn ?? t, t)) }
}

@Suite("pilotwatch export", .serialized)
struct ExportTests {
    @Test("JSON: every figure of a large pilot, worked out from the dataset; the small pilot suppressed")
    func figures() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        let o = try exportJSON(ws)
        #expect(o["as_of"] as? String == exportAsOf.description)
        #expect((o["disclosure"] as? [String: Any])?["k"] as? Int == 11)
        let programmes = o["programmes"] as? [[String: Any]] ?? []
        #expect(programmes.map { $0["programme"] as? String } == ["respiratory", "cardiac"])
        guard programmes.count == 2 else { return }
        let pilots = programmes[0]["pilot_reports"] as? [[String: Any]] ?? []
        #expect(pilots.map { $0["pilot"] as? String } == ["resp-seven", "resp-big", "resp-bigger"])
        guard pilots.count == 3 else { return }

        // resp-big: 30 enrolled, 3 withdrawn (<11), so in follow-up (27) or enrolled must go too.
        let big = pilots[1]
        #expect(big["lead"] as? String == "Hopital Nord + BreathCo")
        #expect(big["funders"] as? [String] == ["feder-idf", "horizon-europe"])
        let enrolment = big["enrolment"] as? [String: Any] ?? [:]
        #expect(suppressed(enrolment["withdrawn"]) == "small_count")
        let enrolledShown = num(enrolment["enrolled"]) == 30, inFollowUpShown = num(enrolment["in_follow_up"]) == 27
        #expect(enrolledShown != inFollowUpShown, "exactly one of enrolled and in_follow_up is hidden: \(enrolment)")
        #expect(num(enrolment["enrolment_target"]) == 40)
        let milestones = enrolment["milestones"] as? [[String: Any]] ?? []
        #expect(milestones.map { $0["state"] as? String } == ["met", "missed"])
        // 15 enrolled by 2026-05-15 (05-01 ... 05-15), 30 by 06-30: 15 apart, both shown.
        #expect(milestones.map { num($0["enrolled"]) } == [15, 30])

        // spo2 over the 30 paired subjects.
        let subjects = bigSubjects()
        let outcome = (big["outcomes"] as? [[String: Any]])?.first ?? [:]
        #expect(outcome["indicator"] as? String == "spo2")
        #expect(num(outcome["n_paired"]) == 30)
        #expect(close(num(outcome["mean_baseline"]), mean(subjects.map(\.baseline))))
        #expect(close(num(outcome["mean_latest"]), mean(subjects.map(\.latest))))
        let changes = subjects.map { $0.latest - $0.baseline }
        #expect(close(num(outcome["mean_change"]), mean(changes)))
        let sd = (changes.map { ($0 - mean(changes)) * ($0 - mean(changes)) }.reduce(0, +) / 29).squareRoot()
        let half = 2.045229642132703 * sd / 30.0.squareRoot()  // t(0.975, 29)
        let ci = outcome["change_ci95"] as? [String: Any] ?? [:]
        #expect(num(ci["lower"]).map { abs($0 - (mean(changes) - half)) < 1e-6 } == true)
        #expect(num(ci["upper"]).map { abs($0 - (mean(changes) + half)) < 1e-6 } == true)
        let inTarget = subjects.filter { $0.latest >= 90 && $0.latest <= 100 }.count  // the catalogue's 90..100
        let improved = subjects.filter { $0.latest > $0.baseline }.count
        // A share is shown with its numerator, or both are suppressed when the numerator is 1 to 10.
        for (count, share, n) in [("in_target", "pct_in_target", inTarget), ("improved", "improved_pct", improved)] {
            if (1...10).contains(n) {
                #expect(suppressed(outcome[count]) == "small_count", "\(count) \(n)")
                #expect(suppressed(outcome[share]) != nil, "\(share)")
            } else {
                #expect(num(outcome[count]) == Double(n), "\(count)")
                #expect(close(num(outcome[share]), 100 * Double(n) / 30), "\(share)")
            }
        }
        #expect(inTarget >= 11 && (1...10).contains(improved))  // the dataset exercises both cases

        // 15 exacerbations over the follow-up up to T.
        let events = big["events"] as? [String: Any] ?? [:]
        let days = patientDays(subjects, asOf: exportAsOf)
        #expect(num(events["subjects_followed"]) == 30)
        #expect(close(num(events["patient_days"]), days))
        let ex = (events["indicators"] as? [[String: Any]])?.first ?? [:]
        #expect(num(ex["events"]) == 15)
        #expect(close(num(ex["rate_per_100_patient_months"]), 100 * 15 / (days / 30.4375)))

        // Refusals of resp-big: 15 out of range, 2 bad units (<11), and the total 17 would give it away.
        let quality = big["data_completeness"] as? [String: Any] ?? [:]
        let byReason = quality["refused_by_reason"] as? [String: Any] ?? [:]
        #expect(suppressed(byReason["bad_unit"]) == "small_count")
        #expect(suppressed(quality["refused_total"]) != nil || suppressed(byReason["out_of_range"]) != nil)
        #expect(num(quality["unenrolled_subjects"]) == 0)

        // resp-seven: everything about its 7 subjects is suppressed or withheld.
        let seven = pilots[0]
        let sevenEnrolment = seven["enrolment"] as? [String: Any] ?? [:]
        #expect(suppressed(sevenEnrolment["enrolled"]) == "small_count")
        #expect(suppressed(sevenEnrolment["enrolment_pct"]) == "few_subjects")
        #expect(suppressed(sevenEnrolment["transmission_adherence"]) == "few_subjects")
        let sevenOutcome = (seven["outcomes"] as? [[String: Any]])?.first ?? [:]
        #expect(suppressed(sevenOutcome["n_paired"]) == "small_count")
        for key in ["mean_baseline", "mean_latest", "mean_change", "pct_in_target", "improved_pct"] {
            #expect(suppressed(sevenOutcome[key]) == "few_subjects", "\(key)")
        }
        #expect((seven["enrolment"] as? [String: Any])?["published_cumulative_enrolment"] as? [[String: Any]] != nil)

        // The programme pools 62 subjects; with resp-seven's figures hidden, the pooled ones that
        // would give them back are hidden too.
        let pooled = programmes[0]["pooled"] as? [String: Any] ?? [:]
        let pooledEnrolment = pooled["enrolment"] as? [String: Any] ?? [:]
        #expect(suppressed(pooledEnrolment["enrolled"]) == "secondary")
        let pooledOutcome = (pooled["outcomes"] as? [[String: Any]])?.first ?? [:]
        #expect(suppressed(pooledOutcome["mean_change"]) == "secondary")
        // resp-bigger keeps its own figures.
        let bigger = (pilots[2]["outcomes"] as? [[String: Any]])?.first ?? [:]
        #expect(num(bigger["n_paired"]) == 25)
        #expect(close(num(bigger["mean_change"]), mean(biggerSubjects().map { $0.latest - $0.baseline })))
        let biggerEvents = ((pilots[2]["events"] as? [String: Any])?["indicators"] as? [[String: Any]])?.first ?? [:]
        #expect(num(biggerEvents["events"]) == 0)  // zero stays zero

        // Cardiac: 12 subjects (one pseudonym never enrolled: <11), 11 hospitalisations.
        let solo = (programmes[1]["pilot_reports"] as? [[String: Any]])?.first ?? [:]
        #expect(num((solo["enrolment"] as? [String: Any])?["enrolled"]) == 12)
        let soloQuality = solo["data_completeness"] as? [String: Any] ?? [:]
        #expect(suppressed(soloQuality["unenrolled_subjects"]) == "small_count")
        let weight = (solo["outcomes"] as? [[String: Any]])?.first ?? [:]
        #expect(weight["direction"] as? String == "stable")
        #expect(weight["improved_pct"] is NSNull)  // stable: no improvement share, missing (not 0)
        let hosp = ((solo["events"] as? [String: Any])?["indicators"] as? [[String: Any]])?.first ?? [:]
        #expect(num(hosp["events"]) == 11)
    }

    @Test("CSV: tidy rows, no count of 1 to 10, no suppressed total recoverable by subtraction")
    func csvDisclosure() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        let r = try ws.run(["export", "--as-of", exportAsOf.description, "--format", "csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "pilot,programme,metric,indicator,value,n,suppressed")
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.allSatisfy { $0.count == 7 })
        let counts: Set = ["enrolled", "withdrawn", "in_follow_up", "n_paired", "in_target", "improved", "events", "refused",
                           "refused_total", "unenrolled_subjects", "subjects_followed", "milestone_enrolled"]
        for row in rows where counts.contains(row[2]) {
            if let v = Int(row[4]) { #expect(v == 0 || v >= 11, "\(row)") }
            // Empty and not suppressed only where the count does not apply (no target range, stable).
            #expect(row[4] != "" || row[6] != "no" || ["in_target", "improved"].contains(row[2]), "\(row)")
        }
        for row in rows { if let n = Int(row[5]) { #expect(n == 0 || n >= 11, "n: \(row)") } }
        // Subtraction: for every programme total and identity, not exactly one hidden figure.
        func value(_ pilot: String, _ programme: String, _ metric: String, _ indicator: String = "") -> String? {
            rows.first { $0[0] == pilot && $0[1] == programme && $0[2] == metric && $0[3] == indicator }?[4]
        }
        let scopes = Set(rows.map { [$0[0], $0[1]] })
        for metric in ["enrolled", "withdrawn", "in_follow_up", "unenrolled_subjects", "refused_total"] {
            for programme in ["respiratory", "cardiac"] {
                let pilots = scopes.filter { $0[1] == programme && !$0[0].isEmpty }.map { $0[0] }
                let cells = ([""] + pilots).map { value($0, programme, metric) ?? "" }
                let hidden = cells.filter { Int($0) == nil }.count
                #expect(hidden != 1, "\(programme) \(metric): \(cells)")
            }
        }
        for scope in scopes {
            let cells = ["enrolled", "withdrawn", "in_follow_up"].map { value(scope[0], scope[1], $0) ?? "" }
            #expect(cells.filter { Int($0) == nil }.count != 1, "\(scope) identity: \(cells)")
        }
    }

    @Test("every format is byte-identical on a rerun, and --out writes what stdout shows")
    func reproducible() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        for format in ["md", "html", "csv", "json", "fhir"] {
            let args = ["export", "--as-of", exportAsOf.description, "--format", format]
            let a = try ws.run(args), b = try ws.run(args)
            #expect(a.status == 0 && b.status == 0, "\(format): \(a.stderr)")
            #expect(!a.stdout.isEmpty && a.stdout == b.stdout, "\(format) differs between runs")
            let file = ws.dir + "/export.\(format)"
            let c = try ws.run(args + ["--out", file])
            #expect(c.status == 0 && c.stdout.isEmpty)
            #expect((try? String(contentsOfFile: file, encoding: .utf8)) == a.stdout, "\(format) --out")
            if format != "csv" { #expect(a.stdout.contains(exportAsOf.description), "\(format) names the as-of time") }
        }
        // The generation time defaults to T; --generated-at changes it and nothing else.
        let plain = try exportJSON(ws)
        let stamped = try exportJSON(ws, ["--generated-at", "2030-01-02T03:04:05Z"])
        let p1 = plain["provenance"] as? [String: Any] ?? [:], p2 = stamped["provenance"] as? [String: Any] ?? [:]
        #expect(p1["generated_at"] as? String == exportAsOf.description)
        #expect(p2["generated_at"] as? String == "2030-01-02T03:04:05Z")
        #expect(p1["database_fingerprint"] as? String == p2["database_fingerprint"] as? String)
        #expect((p1["database_fingerprint"] as? String)?.hasPrefix("sha256:") == true)
        #expect(p1["pilotwatch_version"] as? String != nil)

        // The fingerprint is of the content, not of the file: a copy rewritten with another page
        // size (different bytes) exports byte-identically (when the sqlite3 shell is installed).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") {
            let copy = ws.dir + "/copy.sqlite"
            try FileManager.default.copyItem(atPath: ws.db, toPath: copy)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            p.arguments = [copy, "PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL;"]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            #expect(FileManager.default.contents(atPath: copy) != FileManager.default.contents(atPath: ws.db))
            let args = ["export", "--as-of", exportAsOf.description, "--format", "json"]
            let original = try ws.run(args), rewritten = try ws.run(args + ["--db", copy])
            #expect(rewritten.status == 0, "\(rewritten.stderr)")
            #expect(original.stdout == rewritten.stdout)
        }

        // New data changes the fingerprint.
        var more = ExportFeed()
        more.measure("resp-big", "big-0002", "spo2", 94, at: at("2026-09-01T10:00:00Z"), unit: "%")
        let file = ws.dir + "/more.ndjson"
        try more.lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try ws.run(["ingest", file]).status == 0)
        let after = try exportJSON(ws)
        #expect((after["provenance"] as? [String: Any])?["database_fingerprint"] as? String
                != p1["database_fingerprint"] as? String)
    }

    @Test("Markdown and HTML carry the figures, the methods with k, and the provenance")
    func readable() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        let md = try ws.run(["export", "--as-of", exportAsOf.description, "--programme", "respiratory", "--k", "5"])
        #expect(md.status == 0, "\(md.stderr)")
        #expect(md.stdout.contains("### Disclosure control (k = 5)"))
        #expect(md.stdout.contains("### Pilot resp-seven — Seven-patient COPD pilot"))
        #expect(!md.stdout.contains("card-solo"))
        #expect(md.stdout.contains("<5"))  // 1 withdrawn of resp-seven
        let html = try ws.run(["export", "--as-of", exportAsOf.description, "--format", "html", "--pilot", "resp-big",
                               "--pilot", "card-solo"])
        #expect(html.status == 0, "\(html.stderr)")
        #expect(html.stdout.hasPrefix("<!DOCTYPE html>") && !html.stdout.contains("<script"))
        #expect(html.stdout.contains("<svg") && html.stdout.contains("size: A4"))
        #expect(html.stdout.contains("Pilot resp-big") && html.stdout.contains("Pilot card-solo"))
        #expect(!html.stdout.contains("Pilot resp-seven"))
    }

    @Test("selection by funder, call and programme; errors name the value and what to do")
    func selectionAndErrors() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        func pilots(_ args: [String]) throws -> [String] {
            let o = try exportJSON(ws, args)
            return (o["programmes"] as? [[String: Any]] ?? []).flatMap {
                ($0["pilot_reports"] as? [[String: Any]] ?? []).compactMap { $0["pilot"] as? String }
            }
        }
        #expect(try pilots(["--funder", "feder-idf"]) == ["resp-seven", "resp-big"])
        #expect(try pilots(["--call", "call-b"]) == ["resp-bigger", "card-solo"])
        #expect(try pilots(["--programme", "cardiac"]) == ["card-solo"])
        #expect(try pilots(["--pilot", "card-solo", "--pilot", "resp-big"]) == ["resp-big", "card-solo"])
        #expect(try pilots(["--funder", "region-idf", "--programme", "respiratory"]) == ["resp-bigger"])

        let unknown = try ws.run(["export", "--pilot", "nope"])
        #expect(unknown.status == 64 && unknown.stderr.contains("unknown pilot \"nope\""))
        let lowK = try ws.run(["export", "--k", "4"])
        #expect(lowK.status == 64 && lowK.stderr.contains("--k 4"))
        let late = try ws.run(["export", "--as-of", "2026-10-01", "--to", "2026-10-02"])
        #expect(late.status == 64 && late.stderr.contains("--to"))
        let none = try ws.run(["export", "--funder", "region-idf", "--programme", "diabetes"])
        #expect(none.status == 64 && none.stderr.contains("no pilot matches"))
        let badFormat = try ws.run(["export", "--format", "pdf"])
        #expect(badFormat.status == 64)

        // A period: events from --from only; the period is named in the report.
        let o = try exportJSON(ws, ["--from", "2026-06-05", "--pilot", "resp-big"])
        #expect((o["period"] as? [String: Any])?["from"] as? String == "2026-06-05T00:00:00Z")
        let big = ((o["programmes"] as? [[String: Any]])?.first?["pilot_reports"] as? [[String: Any]])?.first ?? [:]
        let ex = (((big["events"] as? [String: Any])?["indicators"]) as? [[String: Any]])?.first ?? [:]
        // Exacerbations at enrolment + 30 d, on or after 06-05: subjects enrolled from 05-06 (even i >= 6): 12.
        let expected = bigSubjects().flatMap(\.events).filter { $0 >= at("2026-06-05T00:00:00Z") }.count
        #expect(expected == 12 && num(ex["events"]) == Double(expected))
        let since = at("2026-06-05T00:00:00Z")
        let periodDays = bigSubjects().reduce(0.0) { sum, s in
            let lo = max(s.enrolled, since), hi = min(s.withdrawn ?? exportAsOf, exportAsOf)
            return sum + (lo <= hi ? lo.days(to: hi) : 0)
        }
        #expect(close(num((big["events"] as? [String: Any])?["patient_days"]), periodDays))
    }

    @Test("FHIR: the Bundle validates against FHIR R4 with a real validator (fhir.resources 6.4.0)",
          .enabled(if: FHIRValidator.python != nil, "scripts/fhir-venv.sh could not create .venv-fhir (python3 venv + PyPI needed); FHIR validation skipped"))
    func fhirValidates() throws {
        let ws = try preparedExport()
        defer { ws.remove() }
        let file = ws.dir + "/bundle.json"
        let r = try ws.run(["export", "--as-of", exportAsOf.description, "--format", "fhir", "--out", file])
        #expect(r.status == 0, "\(r.stderr)")
        let check = try FHIRValidator.validate(file)
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("OK: Bundle of 12 MeasureReport(s)"), "\(check.output)")

        // The validator is real: a broken Bundle is refused.
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let broken = ws.dir + "/broken.json"
        try text.replacingOccurrences(of: "\"status\": \"complete\"", with: "\"status\": \"final\"")
            .replacingOccurrences(of: "\"type\": \"collection\"", with: "\"type\": \"bag\"")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let bad = try FHIRValidator.validate(broken)
        #expect(bad.status == 1 && bad.output.contains("measure-report-status") && bad.output.contains("bundle-type"))
        let noMeasure = ws.dir + "/no-measure.json"
        try text.replacingOccurrences(of: "\"measure\": \"urn:pilotwatch:measure:spo2\",", with: "")
            .write(toFile: noMeasure, atomically: true, encoding: .utf8)
        let missing = try FHIRValidator.validate(noMeasure)
        #expect(missing.status == 1 && missing.output.contains("R4 model"), "\(missing.output)")
    }
}

/// The FHIR validator of scripts/fhir-validate.py in the virtual environment of scripts/fhir-venv.sh.
enum FHIRValidator {
    /// The venv's python, after running scripts/fhir-venv.sh (quick when it is already there); nil
    /// when the environment cannot be created.
    static let python: String? = {
        let root = packageRoot.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root + "/scripts/fhir-venv.sh"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        p.waitUntilExit()
        let python = root + "/.venv-fhir/bin/python"
        return p.terminationStatus == 0 && FileManager.default.isExecutableFile(atPath: python) ? python : nil
    }()

    static func validate(_ file: String) throws -> (status: Int32, output: String) {
        guard let python else { throw TestFailure("no FHIR validator") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [packageRoot.path + "/scripts/fhir-validate.py", file]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
