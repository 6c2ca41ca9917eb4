import Foundation
import PilotwatchCore
import TestSupport
import Testing

// Retention of an ended pilot's raw rows, with a fake clock (`db purge --as-of`): kept
// `ended_pilot_raw_days` after its end date, then its final figures are archived and the rows go,
// bytes and all. `status`, `pilot` and `export` as of its end show the same figures from the
// archive as from the rows before; the other pilots do not move.

private let ended = "resp-copd-idf-01"
private let subjects = (1...12).map { String(format: "p-ended-%04d", 7100 + $0) }
private let other = "p-card-keep-0042"

private func daysAgo(_ d: Double) -> String { isoNow(minutesAgo: d * 1440) }

/// Twelve subjects of the pilot that ends yesterday (enrolled, readings from baseline to follow-up,
/// an exacerbation, a withdrawal, a refused reading) and one of a cardiac pilot that goes on.
private func dataset() -> Data {
    var lines: [String] = []
    func add(_ pilot: String, _ device: String, _ id: String, _ observations: [String]) {
        lines.append("{\"topic\":\"pilots/\(pilot)/\(device)/obs\",\"payload\":\(obsMessage(id, observations))}")
    }
    for (i, s) in subjects.enumerated() {
        let device = "dev-end-\(i)"
        let enrolled = 150.0 - Double(i) * 4
        add(ended, device, "\(device)-e", [obs(s, "enrolled", at: daysAgo(enrolled)), obs(s, "spo2", 88 + Double(i % 4), unit: "%", at: daysAgo(enrolled - 0.5))])
        for d in stride(from: 40.0, through: 2, by: -2) {
            add(ended, device, "\(device)-r\(Int(d))", [obs(s, "spo2", 90 + Double((i + Int(d)) % 7), unit: "%", at: daysAgo(d))])
        }
        if i % 3 == 0 { add(ended, device, "\(device)-x", [obs(s, "exacerbation", at: daysAgo(30 + Double(i)))]) }
        if i == 5 { add(ended, device, "\(device)-w", [obs(s, "withdrawn", at: daysAgo(10))]) }
    }
    add(ended, "dev-end-0", "dev-end-0-bad", [obs(subjects[0], "spo2", 140, unit: "%", at: daysAgo(3))])
    add("card-hf-idf-03", "dev-card-1", "dev-card-1-e", [obs(other, "enrolled", at: daysAgo(20)), obs(other, "weight", 81.5, unit: "kg", at: daysAgo(19))])
    return Data((lines.joined(separator: "\n") + "\n").utf8)
}

@Suite("Retention: an ended pilot's raw rows go after its days, its final figures stay in the archive")
struct EndedPilotRetentionTests {
    func bytes(_ ws: Workspace) -> Data {
        var all = Data()
        for suffix in ["", "-wal"] { all.append((try? Data(contentsOf: URL(fileURLWithPath: ws.db + suffix))) ?? Data()) }
        return all
    }

    func json(_ ws: Workspace, _ args: [String]) throws -> Any {
        let r = try ws.run(args + ["--format", "json"])
        guard r.status == 0 else { throw TestFailure("\(args): \(r.stderr)") }
        return try jsonValue(r.stdout)
    }

    @Test func afterItsDaysTheRowsGoAndTheViewsShowTheArchivedFiguresAsBefore() throws {
        try withBrokerAndWorkspace { _, ws in
            // The COPD pilot ended yesterday and keeps its raw rows 30 days.
            let yesterday = Instant(seconds: Date().timeIntervalSince1970 - 86_400).day
            let pilots = Workspace.defaultPilots
                .replacingOccurrences(of: "    end: 2027-06-30", with: "    end: \(yesterday)\n    retention: {ended_pilot_raw_days: 30}")
            try pilots.write(toFile: ws.dir + "/pilots.yaml", atomically: true, encoding: .utf8)
            let imported = try ws.run(["ingest", "-"], stdin: dataset())
            #expect(imported.status == 0, "\(imported.stderr)")
            #expect(bytes(ws).range(of: Data(subjects[3].utf8)) != nil, "the pseudonyms are stored at first")

            let end = yesterday.description
            let statusBefore = try json(ws, ["status", "--as-of", end])
            let pilotBefore = try json(ws, ["pilot", ended, "--as-of", end])
            let exportBefore = try json(ws, ["export", "--as-of", end])
            let enrolled = ((statusBefore as? [String: Any])?["pilots"] as? [[String: Any]])?.first { $0["pilot"] as? String == ended }?["enrolled"]
            #expect(enrolled as? Int == 12, "\(String(describing: enrolled))")

            // 29 days after the end: nothing to do; 31 days after: the pilot's rows would go.
            let in29 = yesterday.advanced(by: 29).description, in31 = yesterday.advanced(by: 31).description
            let early = try ws.run(["db", "purge", "--dry-run", "--as-of", in29, "--format", "json"])
            #expect(early.status == 0 && early.stdout.contains("\"ended_pilots\":[]"), "\(early.stdout)\(early.stderr)")
            let dry = try ws.run(["db", "purge", "--dry-run", "--as-of", in31, "--format", "json"])
            #expect(dry.status == 0, "\(dry.stderr)")
            let planned = ((try jsonValue(dry.stdout) as? [String: Any])?["ended_pilots"] as? [[String: Any]]) ?? []
            #expect(planned.map { $0["pilot"] as? String } == [ended], "\(dry.stdout)")
            #expect((planned.first?["rows"] as? Int ?? 0) > 12 * 20, "\(dry.stdout)")
            #expect(bytes(ws).range(of: Data(subjects[3].utf8)) != nil, "a dry run removes nothing")

            let done = try ws.run(["db", "purge", "--as-of", in31])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(done.stdout.contains("dropped the raw rows of ended pilot \(ended)"), "\(done.stdout)")
            for s in subjects + ["dev-end-3", "dev-end-0-bad"] {
                #expect(bytes(ws).range(of: Data(s.utf8)) == nil, "\(s) gone from the database and its WAL")
            }
            #expect(bytes(ws).range(of: Data(other.utf8)) != nil, "the cardiac pilot goes on")
            let again = try ws.run(["db", "purge", "--as-of", in31, "--format", "json"])
            #expect(again.stdout.contains("\"ended_pilots\":[]"), "a second purge finds nothing: \(again.stdout)")

            // As of its end, the same figures, now from the archive (marked).
            let statusAfter = try json(ws, ["status", "--as-of", end])
            #expect(jsonDifference(statusAfter, statusBefore, dropping: ["snapshot"]) == nil,
                    "\(jsonDifference(statusAfter, statusBefore, dropping: ["snapshot"]) ?? "")")
            let row = ((statusAfter as? [String: Any])?["pilots"] as? [[String: Any]])?.first { $0["pilot"] as? String == ended }
            let source = row?["snapshot"] as? [String: Any]
            #expect(source?["archived"] as? Bool == true && source?["stale"] as? Bool == false, "\(String(describing: row))")

            let exportAfter = try json(ws, ["export", "--as-of", end])
            // The provenance's database fingerprint (in the methods too) changes with the rows.
            let exportDifference = jsonDifference(exportAfter, exportBefore, dropping: ["source", "provenance", "methods"])
            #expect(exportDifference == nil, "\(exportDifference ?? "")")
            let exportText = try ws.run(["export", "--as-of", end, "--format", "md"]).stdout
            #expect(exportText.contains("ended; figures from its archive as of"), "\(exportText)")

            // The pilot view: its figures, milestones, outcomes and events; devices are counts now.
            let pilotAfter = try json(ws, ["pilot", ended, "--as-of", end])
            let pilotDifference = jsonDifference(pilotAfter, pilotBefore,
                                                 dropping: ["snapshot", "devices", "quality", "ingest", "subjects", "unenrolled"])
            #expect(pilotDifference == nil, "\(pilotDifference ?? "")")
            // Today: still shown, from the archive, never stale.
            let today = try ws.run(["status"])
            #expect(today.status == 0 && today.stdout.contains("E ended, from its archived final figures"), "\(today.stdout)")
            let since = try ws.run(["pilot", ended, "--since", "30d"])
            #expect(since.status == 64 && since.stderr.contains("ended and archived"), "\(since.stderr)")
        }
    }

    @Test func aBadEndedPilotRetentionIsRefusedWithItsLine() throws {
        try withBrokerAndWorkspace { _, ws in
            let pilots = Workspace.defaultPilots
                .replacingOccurrences(of: "    end: 2027-06-30", with: "    end: 2027-06-30\n    retention: {ended_pilot_raw_days: -3}")
            try pilots.write(toFile: ws.dir + "/pilots.yaml", atomically: true, encoding: .utf8)
            let r = try ws.run(["config", "check"])
            #expect(r.status != 0 && r.stderr.contains("ended_pilot_raw_days") && r.stderr.contains("pilots.yaml:"), "\(r.stderr)")
        }
    }
}
