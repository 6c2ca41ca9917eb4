import Foundation
import PilotwatchCore
import Testing

// The dashboards end to end: a small dataset built by hand, ingested with `pilotwatch ingest`
// (the real validation and store), then `status`, `pilot` and `indicators` run as a user would,
// with every metric of the JSON worked out here from the dataset.
//
// T = 2026-10-15T12:00:00Z (`--as-of`, in the past). Adherence window of a long-enrolled subject:
// 2026-09-18 ... 2026-10-15; active window (2026-10-08T12:00Z, T]; rate window (2026-09-15T12:00Z, T].

private let asOf = "2026-10-15T12:00:00Z"

private let pilotsYAML = """
pilots:
  - id: resp-test
    name: COPD telemonitoring test pilot
    programme: respiratory
    lead: Hopital Test + BreathCo
    call: call-2026
    funders: [feder-idf, horizon-europe]
    start: 2026-01-01
    end: 2027-06-30
    enrolment_target: 10
    milestones: [{date: 2026-09-30, enrolled: 4}, {date: 2026-12-31, enrolled: 8}]
    outcomes: [spo2, cat_score, exacerbation]
  - id: resp-single
    name: One-patient pilot
    programme: respiratory
    lead: Clinique Solo
    call: call-2026
    funders: [region-idf]
    start: 2026-01-01
    end: 2026-12-31
    enrolment_target: 2
    outcomes: [spo2]
  - id: card-empty
    name: Pilot with no data yet
    programme: cardiac
    lead: CardioLink
    call: call-2026
    funders: [region-idf]
    start: 2026-01-01
    end: 2027-12-31
    enrolment_target: 50
    outcomes: [weight, hospitalisation]
"""

/// NDJSON lines, one message each, as a pilot back-end would publish them.
private struct Feed {
    var lines: [String] = []
    private var next = 0

    mutating func send(_ pilot: String, _ observation: String, device: String = "dev-01") {
        next += 1
        let id = "m-\(next)"
        lines.append("{\"topic\":\"pilots/\(pilot)/\(device)/obs\",\"payload\":\(obsMessage(id, [observation]))}")
    }

    mutating func measure(_ pilot: String, _ subject: String, _ indicator: String, _ value: Double, at: String) {
        let unit = ["spo2": "%", "resp_rate": "/min", "cat_score": "{score}", "weight": "kg"][indicator] ?? "1"
        send(pilot, obs(subject, indicator, value, unit: unit, at: at))
    }

    mutating func event(_ pilot: String, _ subject: String, _ indicator: String, at: String) {
        send(pilot, obs(subject, indicator, at: at))
    }
}

/// The dataset; each subject's comment says what it tests.
private func dataset() -> Feed {
    var f = Feed()
    let p = "resp-test"
    // S1: enrolled 2026-07-01T09:00Z. spo2 baseline: 80 one minute before e-30d (out), 91 at e-30d (in).
    // spo2 latest: 96 at 11:45 on day(T); 97 at 13:00 and 60 the next day are after T. Day(T) has data
    // before and after T. cat_score: 20 at e+14d (baseline, in), 12 at e+60d-1ms (not follow-up),
    // 10 at e+60d (latest). resp_rate on 10-01 and 10-05. One exacerbation in follow-up.
    f.event(p, "subj-0001", "enrolled", at: "2026-07-01T09:00:00Z")
    f.measure(p, "subj-0001", "spo2", 80, at: "2026-06-01T08:59:00Z")
    f.measure(p, "subj-0001", "spo2", 91, at: "2026-06-01T09:00:00Z")
    f.measure(p, "subj-0001", "spo2", 94, at: "2026-10-15T11:00:00Z")
    f.measure(p, "subj-0001", "spo2", 96, at: "2026-10-15T11:45:00Z")
    f.measure(p, "subj-0001", "spo2", 97, at: "2026-10-15T13:00:00Z")
    f.measure(p, "subj-0001", "spo2", 60, at: "2026-10-16T10:00:00Z")
    f.measure(p, "subj-0001", "cat_score", 20, at: "2026-07-15T09:00:00Z")
    f.measure(p, "subj-0001", "cat_score", 12, at: "2026-08-30T08:59:59.999Z")
    f.measure(p, "subj-0001", "cat_score", 10, at: "2026-08-30T09:00:00Z")
    f.measure(p, "subj-0001", "resp_rate", 16, at: "2026-10-01T08:00:00Z")
    f.measure(p, "subj-0001", "resp_rate", 16, at: "2026-10-05T08:00:00Z")
    f.event(p, "subj-0001", "exacerbation", at: "2026-09-01T00:00:00Z")
    // S2: enrolled 08-20, withdrawn 10-01. spo2 only 1 ms after e+14d: no baseline. Data after
    // withdrawal. Exacerbations: 09-15 in follow-up, 10-05 after withdrawal.
    f.event(p, "subj-0002", "enrolled", at: "2026-08-20T00:00:00Z")
    f.event(p, "subj-0002", "withdrawn", at: "2026-10-01T00:00:00Z")
    f.measure(p, "subj-0002", "spo2", 85, at: "2026-09-03T00:00:00.001Z")
    f.measure(p, "subj-0002", "resp_rate", 18, at: "2026-10-10T08:00:00Z")
    f.event(p, "subj-0002", "exacerbation", at: "2026-09-15T00:00:00Z")
    f.event(p, "subj-0002", "exacerbation", at: "2026-10-05T00:00:00Z")
    // S3: a withdrawal before enrolment (ignored), enrolled 09-20T12:00, enrolled again 10-01 (ignored).
    // spo2 baseline exactly e-30d; no follow-up yet. Data on 09-19 (before the enrolment day), 09-25, 10-09.
    f.event(p, "subj-0003", "withdrawn", at: "2026-09-10T00:00:00Z")
    f.event(p, "subj-0003", "enrolled", at: "2026-09-20T12:00:00Z")
    f.event(p, "subj-0003", "enrolled", at: "2026-10-01T00:00:00Z")
    f.measure(p, "subj-0003", "spo2", 88, at: "2026-08-21T12:00:00Z")
    f.measure(p, "subj-0003", "resp_rate", 16, at: "2026-09-19T08:00:00Z")
    f.measure(p, "subj-0003", "resp_rate", 16, at: "2026-09-25T08:00:00Z")
    f.measure(p, "subj-0003", "resp_rate", 16, at: "2026-10-09T00:00:00Z")
    // S4: enrolled at T exactly; a reading half an hour before, the same UTC day.
    f.event(p, "subj-0004", "enrolled", at: "2026-10-15T12:00:00Z")
    f.measure(p, "subj-0004", "spo2", 93, at: "2026-10-15T11:30:00Z")
    // S5: enrols the day after T, sends before: unenrolled at T.
    f.event(p, "subj-0005", "enrolled", at: "2026-10-16T00:00:00Z")
    f.measure(p, "subj-0005", "resp_rate", 16, at: "2026-10-10T08:00:00Z")
    // S6: never enrolled; its exacerbation does not count.
    f.measure(p, "subj-0006", "resp_rate", 16, at: "2026-10-12T08:00:00Z")
    f.event(p, "subj-0006", "exacerbation", at: "2026-10-12T09:00:00Z")
    // S7: enrolled exactly T-30d (outside the rate window); no measurement; exacerbations at T and 1 ms after.
    f.event(p, "subj-0007", "enrolled", at: "2026-09-15T12:00:00Z")
    f.event(p, "subj-0007", "exacerbation", at: "2026-10-15T12:00:00Z")
    f.event(p, "subj-0007", "exacerbation", at: "2026-10-15T12:00:00.001Z")
    // S8: enrolled 06-10, withdraws after T. spo2 baseline at enrolment, 70 at e+60d-1ms, 93 at e+60d.
    // resp_rate 1 ms inside the active window.
    f.event(p, "subj-0008", "enrolled", at: "2026-06-10T00:00:00Z")
    f.event(p, "subj-0008", "withdrawn", at: "2026-10-20T00:00:00Z")
    f.measure(p, "subj-0008", "spo2", 90, at: "2026-06-10T00:00:00Z")
    f.measure(p, "subj-0008", "spo2", 70, at: "2026-08-08T23:59:59.999Z")
    f.measure(p, "subj-0008", "spo2", 93, at: "2026-08-09T00:00:00Z")
    f.measure(p, "subj-0008", "resp_rate", 16, at: "2026-10-08T12:00:00.001Z")
    // S9: enrolled 06-10; spo2 92 → 92 (unchanged); cat_score 15 → 9; resp_rate exactly at T-7d (not active).
    f.event(p, "subj-0009", "enrolled", at: "2026-06-10T00:00:00Z")
    f.measure(p, "subj-0009", "spo2", 92, at: "2026-06-05T00:00:00Z")
    f.measure(p, "subj-0009", "spo2", 92, at: "2026-09-01T00:00:00Z")
    f.measure(p, "subj-0009", "cat_score", 15, at: "2026-06-10T00:00:00Z")
    f.measure(p, "subj-0009", "cat_score", 9, at: "2026-09-10T00:00:00Z")
    f.measure(p, "subj-0009", "resp_rate", 16, at: "2026-10-08T12:00:00Z")

    // The single-subject pilot.
    f.event("resp-single", "solo-0001", "enrolled", at: "2026-05-01T00:00:00Z")
    f.measure("resp-single", "solo-0001", "spo2", 95, at: "2026-05-01T00:00:00Z")
    f.measure("resp-single", "solo-0001", "spo2", 97, at: "2026-09-01T00:00:00Z")
    f.measure("resp-single", "solo-0001", "resp_rate", 16, at: "2026-10-14T06:00:00Z")
    return f
}

/// More messages of resp-test: one duplicate message, one message repeating a stored observation,
/// and four refused ones (out_of_range twice, bad_unit, unknown_indicator).
private func dataQualityLines(_ feed: Feed) -> [String] {
    var f = Feed()
    f.measure("resp-test", "subj-0001", "spo2", 140, at: "2026-10-15T10:00:00Z")
    f.measure("resp-test", "subj-0001", "spo2", 30, at: "2026-10-15T10:05:00Z")
    f.send("resp-test", obs("subj-0001", "spo2", 95, unit: "mg", at: "2026-10-15T10:00:00Z"))
    f.send("resp-test", obs("subj-0001", "peak_flow_x", 300, unit: "L/min", at: "2026-10-15T10:00:00Z"))
    let repeatedObservation = "{\"topic\":\"pilots/resp-test/dev-01/obs\",\"payload\":"
        + obsMessage("m-again", [obs("subj-0009", "spo2", 92, unit: "%", at: "2026-09-01T00:00:00Z")]) + "}"
    return f.lines + [feed.lines[1], repeatedObservation]  // feed.lines[1]: the same msg_id again
}

private func prepared() throws -> Workspace {
    let ws = try Workspace(pilots: pilotsYAML)
    let feed = dataset()
    let file = ws.dir + "/feed.ndjson"
    try (feed.lines + dataQualityLines(feed)).joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
    let r = try ws.run(["ingest", file, "--format", "json"])
    guard r.status == 0 else { throw TestFailure("ingest failed: \(r.stderr)") }
    let summary = try object(r.stdout)
    // Everything in the dataset is accepted; the quality lines add 4 refusals, a duplicate message
    // and an accepted message whose only observation is already stored.
    guard number(summary["refused"]) == 4, number(summary["duplicate"]) == 1,
          number(summary["accepted"]) == Double(feed.lines.count + 1) else {
        throw TestFailure("unexpected ingest summary: \(r.stdout)")
    }
    return ws
}

// MARK: - JSON helpers

private func object(_ text: String) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text.prefix(200))")
    }
    return o
}

private func number(_ v: Any?) -> Double? {
    (v as? NSNumber)?.doubleValue
}

private func objects(_ v: Any?) -> [[String: Any]] { v as? [[String: Any]] ?? [] }

/// What a JSON field must hold.
private enum Want {
    case int(Int), num(Double), str(String), bool(Bool), null, strings([String]), interval(Double, Double)
}

/// Checks that `o` has exactly the keys of `want` (plus `extra`) and that each holds its value.
private func expectFields(_ o: [String: Any], _ want: [String: Want], extra: Set<String> = [],
                          _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let missing = Set(want.keys).subtracting(o.keys)
    let unexpected = Set(o.keys).subtracting(want.keys).subtracting(extra)
    #expect(missing.isEmpty && unexpected.isEmpty, "\(what): missing \(missing.sorted()), unexpected \(unexpected.sorted())",
            sourceLocation: sourceLocation)
    for (key, w) in want.sorted(by: { $0.key < $1.key }) {
        let v = o[key]
        let ok: Bool
        switch w {
        case .int(let i): ok = number(v).map { $0 == Double(i) } ?? false
        case .num(let d): ok = number(v).map { abs($0 - d) <= 1e-9 * max(1, abs(d)) } ?? false
        case .str(let s): ok = (v as? String) == s
        case .bool(let b): ok = (v as? Bool) == b
        case .null: ok = v is NSNull
        case .strings(let s): ok = (v as? [String]) == s
        case .interval(let lo, let hi):
            let a = (v as? [Any])?.compactMap(number) ?? []
            ok = a.count == 2 && abs(a[0] - lo) <= 1e-6 * max(1, abs(lo)) && abs(a[1] - hi) <= 1e-6 * max(1, abs(hi))
        }
        #expect(ok, "\(what).\(key): got \(String(describing: v ?? "missing")), want \(w)", sourceLocation: sourceLocation)
    }
}

// MARK: - Expected figures, worked out from the dataset

private let t975df1 = 12.706204736174707
private let t975df2 = 4.302652729749464

/// resp-test's in-follow-up subjects at T and their share of adherence-window days with data:
/// S1 10-01, 10-05, 10-15 of 28; S3 09-25, 10-09 of 26 (from its enrolment day 09-20);
/// S4 1 of 1 (enrolled on day(T)); S7 0 of 28; S8 10-08 of 28; S9 10-08 of 28.
private let respTestAdherence: [Double] = [3.0 / 28, 2.0 / 26, 1, 0, 1.0 / 28, 1.0 / 28]
private let soloAdherence = 1.0 / 28  // 10-14 only

private func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }

private let respTestFigures: [String: Want] = [
    "enrolled": .int(7),             // S1 S2 S3 S4 S7 S8 S9 (S5 enrols after T)
    "withdrawn": .int(1),            // S2 (S3's withdrawal precedes enrolment, S8's follows T)
    "in_follow_up": .int(6),
    "enrolment_target": .int(10),
    "enrolment_pct": .num(70),
    "enrolment_rate_30d": .num(2),   // S3, S4; S7 is exactly T-30d
    "projected_target_date": .str("2026-11-29"),  // T + 30d × 3 / 2 = T + 45d
    "on_track": .bool(true),         // before the end, 2027-06-30
    "active_7d": .int(4),            // S1 S3 S4 S8 (S9 exactly T-7d, S7 nothing)
    "transmission_adherence": .num(100 * mean(respTestAdherence)),
    "unenrolled_subjects": .int(2),  // S5 S6
    "last_observation_at": .str("2026-10-15T11:45:00Z"),  // S1; its 13:00 reading is after T
]

@Suite("Dashboards over an ingested dataset", .serialized)
struct DashboardTests {
    @Test("status --as-of: every programme and pilot figure")
    func status() throws {
        let ws = try prepared()
        defer { ws.remove() }
        let r = try ws.run(["status", "--as-of", asOf, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try object(r.stdout)
        #expect(o["as_of"] as? String == asOf)
        #expect(Array(o.keys).sorted() == ["as_of", "pilots", "programmes"])

        let programmes = objects(o["programmes"])
        #expect(programmes.map { $0["programme"] as? String } == ["respiratory", "cardiac"])
        guard programmes.count == 2 else { return }
        // Respiratory pools resp-test and resp-single: a mean over their 7 subjects in follow-up.
        expectFields(programmes[0], [
            "programme": .str("respiratory"), "pilots": .int(2), "enrolled": .int(8), "withdrawn": .int(1),
            "in_follow_up": .int(7), "enrolment_target": .int(12), "enrolment_pct": .num(100 * 8 / 12.0),
            "enrolment_rate_30d": .num(2), "active_7d": .int(5),
            "transmission_adherence": .num(100 * mean(respTestAdherence + [soloAdherence])),
            "unenrolled_subjects": .int(2), "last_observation_at": .str("2026-10-15T11:45:00Z"),
        ], "programmes[respiratory]")
        expectFields(programmes[1], [
            "programme": .str("cardiac"), "pilots": .int(1), "enrolled": .int(0), "withdrawn": .int(0),
            "in_follow_up": .int(0), "enrolment_target": .int(50), "enrolment_pct": .num(0),
            "enrolment_rate_30d": .num(0), "active_7d": .int(0), "transmission_adherence": .null,
            "unenrolled_subjects": .int(0), "last_observation_at": .null,
        ], "programmes[cardiac]")

        let pilots = objects(o["pilots"])
        #expect(pilots.map { $0["pilot"] as? String } == ["resp-test", "resp-single", "card-empty"])
        guard pilots.count == 3 else { return }
        // Messages were all received today, after T: nothing in T's last 7 days.
        let quietWeek: [String: Want] = ["messages_7d": .int(0), "refusals_7d": .int(0), "refusal_rate_7d": .null]
        var test = respTestFigures.merging(quietWeek) { a, _ in a }
        test["pilot"] = .str("resp-test"); test["name"] = .str("COPD telemonitoring test pilot")
        test["programme"] = .str("respiratory"); test["flags"] = .strings(["low_adherence", "unenrolled_subjects"])
        expectFields(pilots[0], test, extra: ["next_milestone"], "pilots[resp-test]")
        let next = pilots[0]["next_milestone"] as? [String: Any] ?? [:]
        // 2026-09-30 (4) was met with 6 enrolled by then; 2026-12-31 (8) is ahead with 7 so far.
        expectFields(next, ["date": .str("2026-12-31"), "target": .int(8), "enrolled": .int(7), "state": .str("pending")],
                     "next_milestone")

        var single: [String: Want] = [
            "pilot": .str("resp-single"), "name": .str("One-patient pilot"), "programme": .str("respiratory"),
            "enrolled": .int(1), "withdrawn": .int(0), "in_follow_up": .int(1), "enrolment_target": .int(2),
            "enrolment_pct": .num(50), "enrolment_rate_30d": .num(0), "projected_target_date": .null,
            "on_track": .bool(false), "active_7d": .int(1), "transmission_adherence": .num(100 * soloAdherence),
            "unenrolled_subjects": .int(0), "last_observation_at": .str("2026-10-14T06:00:00Z"),
            "next_milestone": .null, "flags": .strings(["behind_target", "low_adherence"]),
        ]
        single.merge(quietWeek) { a, _ in a }
        expectFields(pilots[1], single, "pilots[resp-single]")

        var empty: [String: Want] = [
            "pilot": .str("card-empty"), "name": .str("Pilot with no data yet"), "programme": .str("cardiac"),
            "enrolled": .int(0), "withdrawn": .int(0), "in_follow_up": .int(0), "enrolment_target": .int(50),
            "enrolment_pct": .num(0), "enrolment_rate_30d": .num(0), "projected_target_date": .null,
            "on_track": .bool(false), "active_7d": .int(0), "transmission_adherence": .null,
            "unenrolled_subjects": .int(0), "last_observation_at": .null, "next_milestone": .null,
            "flags": .strings(["behind_target", "silent"]),
        ]
        empty.merge(quietWeek) { a, _ in a }
        expectFields(pilots[2], empty, "pilots[card-empty]")
    }

    @Test("pilot --as-of: outcomes, events, milestones and weekly history of resp-test")
    func pilotInDepth() throws {
        let ws = try prepared()
        defer { ws.remove() }
        let r = try ws.run(["pilot", "resp-test", "--as-of", asOf, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try object(r.stdout)
        var want = respTestFigures
        want.merge([
            "as_of": .str(asOf), "pilot": .str("resp-test"), "name": .str("COPD telemonitoring test pilot"),
            "programme": .str("respiratory"), "lead": .str("Hopital Test + BreathCo"), "call": .str("call-2026"),
            "funders": .strings(["feder-idf", "horizon-europe"]), "start": .str("2026-01-01"), "end": .str("2027-06-30"),
            "period_start": .null, "messages_7d": .int(0), "refusals_7d": .int(0), "refusal_rate_7d": .null,
            "flags": .strings(["low_adherence", "unenrolled_subjects"]),
        ]) { a, _ in a }
        expectFields(o, want, extra: ["next_milestone", "milestones", "weekly", "outcomes", "events", "devices", "quality"],
                     "pilot")

        let milestones = objects(o["milestones"])
        #expect(milestones.count == 2)
        if milestones.count == 2 {
            expectFields(milestones[0], ["date": .str("2026-09-30"), "target": .int(4), "enrolled": .int(6), "state": .str("met")],
                         "milestones[0]")
            expectFields(milestones[1], ["date": .str("2026-12-31"), "target": .int(8), "enrolled": .int(7),
                                         "state": .str("pending")], "milestones[1]")
        }

        // Outcomes. spo2 pairs: S1 91 → 96, S8 90 → 93, S9 92 → 92 (S2 has no baseline, S3 and S4
        // no follow-up yet). Changes 5, 3, 0: mean 8/3, s² = ((7/3)² + (1/3)² + (8/3)²) / 2 = 19/3.
        let outcomes = objects(o["outcomes"])
        #expect(outcomes.map { $0["indicator"] as? String } == ["spo2", "cat_score"])
        guard outcomes.count == 2 else { return }
        let spo2Half = t975df2 * (19.0 / 3).squareRoot() / 3.0.squareRoot()
        expectFields(outcomes[0], [
            "indicator": .str("spo2"), "unit": .str("%"), "direction": .str("higher"), "n_paired": .int(3),
            "mean_baseline": .num(91), "mean_latest": .num(281.0 / 3), "mean_change": .num(8.0 / 3),
            "change_ci95": .interval(8.0 / 3 - spo2Half, 8.0 / 3 + spo2Half),
            "pct_in_target": .num(100), "improved_pct": .num(200.0 / 3),
        ], "outcomes[spo2]")
        // cat_score pairs: S1 20 → 10 (12 at e+60d-1ms is not follow-up), S9 15 → 9. Changes -10, -6:
        // mean -8, s = 2√2, half-width t(0.975, 1) · 2√2 / √2. In target 0..9: 9 only. Lower is better: both.
        expectFields(outcomes[1], [
            "indicator": .str("cat_score"), "unit": .str("{score}"), "direction": .str("lower"), "n_paired": .int(2),
            "mean_baseline": .num(17.5), "mean_latest": .num(9.5), "mean_change": .num(-8),
            "change_ci95": .interval(-8 - 2 * t975df1, -8 + 2 * t975df1),
            "pct_in_target": .num(50), "improved_pct": .num(100),
        ], "outcomes[cat_score]")

        // Exacerbations in follow-up: S1 09-01, S2 09-15, S7 at T (not S2 after withdrawal, S6
        // unenrolled, S7 1 ms after T). Patient-days: S1 106.125, S2 42, S3 25, S4 0, S7 30, S8 127.5, S9 127.5.
        let events = objects(o["events"])
        #expect(events.count == 1)
        let patientDays = 106.125 + 42 + 25 + 0 + 30 + 127.5 + 127.5
        if let e = events.first {
            expectFields(e, ["indicator": .str("exacerbation"), "events": .int(3), "patient_days": .num(patientDays),
                             "rate_per_100_patient_months": .num(100 * 3 / (patientDays / 30.4375))], "events[0]")
        }

        // Weekly: 12 weeks, the last ending on day(T), the first on day(T) - 77 = 2026-07-30.
        let weekly = objects(o["weekly"])
        #expect(weekly.count == 12)
        #expect(weekly.first?["week_ending"] as? String == "2026-07-30")
        #expect(weekly.last?["week_ending"] as? String == "2026-10-15")
        #expect(weekly.map { number($0["enrolments"]) ?? -1 } == [0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1])
        #expect(number(weekly.last?["transmission_adherence"]).map { abs($0 - 100 * mean(respTestAdherence)) < 1e-9 } == true)
        // At the end of 2026-09-03: S1 (08-30) 1/28, S2 (09-03, from its enrolment 08-20) 1/15,
        // S8 (08-08, 08-09) 2/28, S9 (09-01) 1/28.
        let sep3 = weekly.first { $0["week_ending"] as? String == "2026-09-03" }
        let want0903 = 100 * mean([1.0 / 28, 1.0 / 15, 2.0 / 28, 1.0 / 28])
        #expect(number(sep3?["transmission_adherence"]).map { abs($0 - want0903) < 1e-9 } == true)

        // All data was received after T, so the period's quality counters are empty at T.
        let quality = o["quality"] as? [String: Any] ?? [:]
        expectFields(quality, [
            "messages": .int(0), "accepted": .int(0), "refused": .int(0), "duplicate_messages": .int(0),
            "duplicate_observations": .int(0), "unenrolled_subjects": .int(2),
            "unenrolled_subject_codes": .strings(["subj-0005", "subj-0006"]),
        ], extra: ["refused_by_reason"], "quality")
    }

    @Test("pilot with a single subject, and a pilot with no data at all")
    func smallPilots() throws {
        let ws = try prepared()
        defer { ws.remove() }
        let solo = try object(try ws.run(["pilot", "resp-single", "--as-of", asOf, "--format", "json"]).stdout)
        let outcomes = objects(solo["outcomes"])
        #expect(outcomes.count == 1)
        if let spo2 = outcomes.first {
            // One pair, 95 → 97: means, but no interval.
            expectFields(spo2, [
                "indicator": .str("spo2"), "unit": .str("%"), "direction": .str("higher"), "n_paired": .int(1),
                "mean_baseline": .num(95), "mean_latest": .num(97), "mean_change": .num(2), "change_ci95": .null,
                "pct_in_target": .num(100), "improved_pct": .num(100),
            ], "solo.outcomes[spo2]")
        }
        #expect(objects(solo["events"]).isEmpty)
        #expect(number(solo["enrolled"]) == 1 && number(solo["active_7d"]) == 1)

        let empty = try object(try ws.run(["pilot", "card-empty", "--as-of", asOf, "--format", "json"]).stdout)
        let emptyOutcomes = objects(empty["outcomes"])
        #expect(emptyOutcomes.count == 1)
        if let weight = emptyOutcomes.first {
            expectFields(weight, [
                "indicator": .str("weight"), "unit": .str("kg"), "direction": .str("stable"), "n_paired": .int(0),
                "mean_baseline": .null, "mean_latest": .null, "mean_change": .null, "change_ci95": .null,
                "pct_in_target": .null, "improved_pct": .null,
            ], "empty.outcomes[weight]")
        }
        let emptyEvents = objects(empty["events"])
        #expect(emptyEvents.count == 1)
        if let h = emptyEvents.first {
            expectFields(h, ["indicator": .str("hospitalisation"), "events": .int(0), "patient_days": .num(0),
                             "rate_per_100_patient_months": .null], "empty.events[hospitalisation]")
        }
        #expect(objects(empty["devices"]).isEmpty)
        #expect(empty["transmission_adherence"] is NSNull && empty["last_observation_at"] is NSNull)
        #expect(objects(empty["weekly"]).allSatisfy { number($0["enrolments"]) == 0 && $0["transmission_adherence"] is NSNull })
    }

    @Test("now: the last 7 days' refusals, duplicates and devices of resp-test")
    func qualityNow() throws {
        let ws = try prepared()
        defer { ws.remove() }
        let feed = dataset()
        let accepted = feed.lines.filter { $0.contains("pilots/resp-test/") }.count + 1  // + the repeated observation
        let r = try ws.run(["pilot", "resp-test", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try object(r.stdout)
        let received = accepted + 1 + 4  // + the duplicate message + the four refusals
        #expect(number(o["messages_7d"]) == Double(received))
        #expect(number(o["refusals_7d"]) == 4)
        #expect(number(o["refusal_rate_7d"]).map { abs($0 - 400 / Double(received)) < 1e-9 } == true)
        // 4 of 53 is above 5%; nobody enrolled in the last 30 days; the last measurement
        // (2026-10-16) is more than 48 hours ago, so nobody is active in 7 days; adherence is
        // below 60%; subj-0006 never enrolled.
        #expect(o["flags"] as? [String] == ["behind_target", "silent", "low_activity", "low_adherence", "refusal_rate", "unenrolled_subjects"])
        let quality = o["quality"] as? [String: Any] ?? [:]
        expectFields(quality, [
            "messages": .int(received), "accepted": .int(accepted), "refused": .int(4), "duplicate_messages": .int(1),
            "duplicate_observations": .int(1), "unenrolled_subjects": .int(1),
            "unenrolled_subject_codes": .strings(["subj-0006"]),
        ], extra: ["refused_by_reason"], "quality now")
        let reasons = quality["refused_by_reason"] as? [String: Any] ?? [:]
        #expect(number(reasons["out_of_range"]) == 2 && number(reasons["bad_unit"]) == 1
                && number(reasons["unknown_indicator"]) == 1 && reasons.count == 3)
        let devices = objects(o["devices"])
        #expect(devices.count == 1)
        if let d = devices.first {
            #expect(d["device"] as? String == "dev-01")
            #expect(number(d["messages"]) == Double(accepted) && number(d["refused"]) == 4)
            #expect(number(d["duplicates"]) == 1)
            #expect(d["silent"] as? Bool == false)
        }
        // Since T, subj-0005 enrolled (2026-10-16) and subj-0008 withdrew (2026-10-20).
        #expect(number(o["enrolled"]) == 8 && number(o["withdrawn"]) == 2)
    }

    @Test("tables fit 80 columns and carry no colour when NO_COLOR is set; CSV has one header")
    func formats() throws {
        let ws = try prepared()
        defer { ws.remove() }
        for args in [["status"], ["status", "--as-of", asOf], ["pilot", "resp-test", "--as-of", asOf],
                     ["pilot", "card-empty"], ["pilot", "resp-single", "--since", "30d"], ["indicators"],
                     ["indicators", "--programme", "diabetes"]] {
            let r = try ws.run(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(!r.stdout.contains("\u{1B}"), "\(args): colour without a terminal")
            for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
                #expect(line.unicodeScalars.count <= 80, "\(args): \(line.unicodeScalars.count) columns: \(line)")
            }
        }
        let table = try ws.run(["status", "--as-of", asOf]).stdout
        #expect(table.contains("resp-test") && table.contains("7/10") && table.contains("card-empty"))

        let csv = try ws.run(["status", "--as-of", asOf, "--format", "csv"]).stdout.split(separator: "\n")
        #expect(csv.first?.hasPrefix("scope,programme,pilot,pilots,enrolled") == true)
        #expect(csv.count == 1 + 2 + 3)
        let header = csv.first.map { $0.split(separator: ",", omittingEmptySubsequences: false).count } ?? 0
        for line in csv.dropFirst() where !line.contains("\"") {
            #expect(line.split(separator: ",", omittingEmptySubsequences: false).count == header, "\(line)")
        }
        let testRow = csv.first { $0.hasPrefix("pilot,respiratory,resp-test,") } ?? ""
        #expect(testRow.contains(",7,1,6,10,70,2,2026-11-29,true,4,"))

        let pilotCSV = try ws.run(["pilot", "resp-test", "--as-of", asOf, "--format", "csv"]).stdout
        #expect(pilotCSV.hasPrefix("section,item,metric,value\n"))
        #expect(pilotCSV.contains("\noutcome,spo2,n_paired,3\n"))
        #expect(pilotCSV.contains("\nevent,exacerbation,events,3\n"))

        let indicators = try ws.run(["indicators", "--programme", "respiratory", "--format", "json"])
        let list = try JSONSerialization.jsonObject(with: Data(indicators.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(list.contains { $0["code"] as? String == "spo2" && $0["loinc"] as? String == "59408-5" })
        #expect(!list.contains { $0["code"] as? String == "hba1c" })
        let spo2 = list.first { $0["code"] as? String == "spo2" } ?? [:]
        #expect((spo2["target"] as? [String: Any]).flatMap { number($0["min"]) } == 90)
        #expect(spo2["direction"] as? String == "higher" && spo2["unit"] as? String == "%")
    }

    @Test("unknown pilot, programme or time: one line naming the value and the choices, exit 64 (usage)")
    func errors() throws {
        let ws = try Workspace(pilots: pilotsYAML)
        defer { ws.remove() }
        let cases: [([String], [String])] = [
            (["pilot", "resp-nope"], ["\"resp-nope\"", "resp-test, resp-single, card-empty"]),
            (["status", "--programme", "oncology"], ["\"oncology\"", "respiratory, diabetes, cardiac"]),
            (["indicators", "--programme", "oncology"], ["\"oncology\"", "respiratory, diabetes, cardiac"]),
            (["status", "--as-of", "yesterday"], ["\"yesterday\"", "RFC 3339", "7d"]),
            (["pilot", "resp-test", "--as-of", "2026-13-01"], ["\"2026-13-01\"", "RFC 3339"]),
            (["pilot", "resp-test", "--since", "soon"], ["\"soon\"", "RFC 3339"]),
        ]
        for (args, needles) in cases {
            let r = try ws.run(args)
            #expect(r.status == 64, "\(args) is a usage error: \(r.status)")
            let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
            #expect(lines.count == 1, "\(args): \(r.stderr)")
            for n in needles { #expect(r.stderr.contains(n), "\(args): \(r.stderr) lacks \(n)") }
            #expect(r.stdout.isEmpty)
        }
    }
}
