import Foundation
import PilotwatchCore
import Testing

@Suite("Retention: db purge drops refused payloads after their days, from the files too")
struct RetentionTests {
    /// An out-of-range reading (refused, payload kept) whose msg_id carries `marker`.
    func refused(_ pilot: String, _ marker: String) -> String {
        let payload = obsMessage(marker, [obs("p-7f3a9c21", "spo2", 12, unit: "%", at: isoNow(minutesAgo: 60))])
        return #"{"topic":"pilots/\#(pilot)/dev-r1/obs","payload":"# + payload + "}"
    }

    func bytes(_ ws: Workspace) -> Data {
        var all = Data()
        for suffix in ["", "-wal"] {
            all.append((try? Data(contentsOf: URL(fileURLWithPath: ws.db + suffix))) ?? Data())
        }
        return all
    }

    @Test func payloadsGoAfterTheirDaysThePilotsOwnDaysAndTheRefusalsStay() throws {
        try withBrokerAndWorkspace { _, ws in
            // The cardiac pilot keeps its refused payloads 200 days.
            let pilots = Workspace.defaultPilots.replacingOccurrences(
                of: "    outcomes: [weight, hospitalisation]",
                with: "    outcomes: [weight, hospitalisation]\n    retention: {refused_payload_days: 200}")
            try pilots.write(toFile: ws.dir + "/pilots.yaml", atomically: true, encoding: .utf8)
            let lines = [refused("resp-copd-idf-01", "purgemark-resp-7731"), refused("card-hf-idf-03", "purgemark-card-7732")]
            let imported = try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(imported.status == 0, "\(imported.stderr)")
            #expect(bytes(ws).range(of: Data("purgemark-resp-7731".utf8)) != nil, "the payload is stored at first")

            let in91 = Instant(seconds: Date().timeIntervalSince1970 + 91 * 86_400).description
            let soon = try ws.run(["db", "purge", "--dry-run", "--format", "json"])
            #expect(soon.stdout.contains(#""rows":0"#), "nothing is old enough now: \(soon.stdout)")
            let dry = try ws.run(["db", "purge", "--dry-run", "--as-of", in91, "--format", "json"])
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains(#""rows":1"#), "\(dry.stdout)")
            #expect(bytes(ws).range(of: Data("purgemark-resp-7731".utf8)) != nil, "a dry run removes nothing")

            let done = try ws.run(["db", "purge", "--as-of", in91])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(done.stdout.hasPrefix("dropped 1 refused payloads"), "\(done.stdout)")
            #expect(bytes(ws).range(of: Data("purgemark-resp-7731".utf8)) == nil, "gone from the database and its WAL")
            #expect(bytes(ws).range(of: Data("purgemark-card-7732".utf8)) != nil, "the cardiac pilot keeps its own 200 days")
            // The refusals themselves stay: counts and rates do not move.
            #expect(try ws.stats().refused == 2)
            let listed = try ws.run(["rejects", "--format", "json"])
            #expect(listed.stdout.components(separatedBy: "\"reason\":\"out_of_range\"").count - 1 == 2, "\(listed.stdout)")

            let audit = try ws.run(["audit", "--command", "db purge", "--format", "json"])
            #expect(audit.stdout.components(separatedBy: "\"command\":\"db purge").count - 1 == 3, "\(audit.stdout)")
        }
    }

    @Test func whileServeRunsThePurgeIsHandedToIt() throws {
        try withRunningServe { _, ws, serve in
            let lines = [refused("resp-copd-idf-01", "purgemark-live-7741")]
            #expect(try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8)).status == 0)
            #expect(bytes(ws).range(of: Data("purgemark-live-7741".utf8)) != nil)
            let in91 = Instant(seconds: Date().timeIntervalSince1970 + 91 * 86_400).description
            #expect(try ws.run(["db", "purge", "--dry-run", "--as-of", in91]).status == 0)
            let done = try ws.run(["db", "purge", "--as-of", in91, "--format", "json"])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(done.stdout.contains("\"refused_payloads\":{\"rows\":1,"), "\(done.stdout)")
            #expect(serve.logText.contains("db purge handed over: dropped 1 refused payloads"), "\(serve.logText)")
            #expect(bytes(ws).range(of: Data("purgemark-live-7741".utf8)) == nil, "gone from the files while serve runs")
        }
    }

    @Test func aDevicesLastStatusGoesAfterItsDaysItsCountersStay() throws {
        try withBrokerAndWorkspace { _, ws in
            // The cardiac pilot keeps device statuses 200 days.
            let pilots = Workspace.defaultPilots.replacingOccurrences(
                of: "    outcomes: [weight, hospitalisation]",
                with: "    outcomes: [weight, hospitalisation]\n    retention: {device_status_days: 200}")
            try pilots.write(toFile: ws.dir + "/pilots.yaml", atomically: true, encoding: .utf8)
            func status(_ pilot: String, _ device: String) -> String {
                #"{"topic":"pilots/\#(pilot)/\#(device)/status","payload":{"state":"online","at":"\#(isoNow(minutesAgo: 5))","battery_pct":77,"firmware":"fw-9.9.1"}}"#
            }
            let lines = [status("resp-copd-idf-01", "dev-s1"), status("card-hf-idf-03", "dev-s2")]
            #expect(try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8)).status == 0)
            func device(_ pilot: String) throws -> [String: Any] {
                let r = try ws.run(["pilot", pilot, "--format", "json"])
                let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
                return ((o?["devices"] as? [[String: Any]])?.first) ?? [:]
            }
            #expect(try device("resp-copd-idf-01")["firmware"] as? String == "fw-9.9.1")

            let in91 = Instant(seconds: Date().timeIntervalSince1970 + 91 * 86_400).description
            let dry = try ws.run(["db", "purge", "--dry-run", "--as-of", in91, "--format", "json"])
            #expect(dry.stdout.contains("\"device_statuses\":{\"rows\":1}"), "\(dry.stdout)")
            #expect(try device("resp-copd-idf-01")["firmware"] as? String == "fw-9.9.1", "a dry run changes nothing")
            let done = try ws.run(["db", "purge", "--as-of", in91])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(done.stdout.contains("the last status of 1 devices"), "\(done.stdout)")
            let gone = try device("resp-copd-idf-01")
            #expect(gone["firmware"] is NSNull && gone["battery_pct"] is NSNull, "\(gone)")
            #expect(gone["device"] as? String == "dev-s1", "the device and its counters stay: \(gone)")
            #expect(try device("card-hf-idf-03")["firmware"] as? String == "fw-9.9.1", "the cardiac pilot keeps its own 200 days")
            #expect(try ws.run(["db", "check"]).status == 0)
        }
    }

    @Test func badRetentionIsRefusedWithItsLine() throws {
        try withBrokerAndWorkspace { _, ws in
            try (try String(contentsOfFile: ws.config, encoding: .utf8) + "\nretention: {refused_payload_days: 0}\n")
                .write(toFile: ws.config, atomically: true, encoding: .utf8)
            let check = try ws.run(["config", "check"])
            #expect(check.status != 0)
            #expect((check.stdout + check.stderr).contains("retention.refused_payload_days: 0 is outside 1...3650"), "\(check.stdout)\(check.stderr)")
        }
    }
}

@Suite("subjects show: exactly what the store holds about a subject")
struct SubjectAccessTests {
    @Test func everyRowOfTheSubjectAndNothingOfAnother() throws {
        try withBrokerAndWorkspace { _, ws in
            let t1 = isoNow(minutesAgo: 300), t2 = isoNow(minutesAgo: 200), t0 = isoNow(minutesAgo: 400)
            func line(_ device: String, _ payload: String) -> String {
                #"{"topic":"pilots/resp-copd-idf-01/\#(device)/obs","payload":"# + payload + "}"
            }
            let lines = [
                line("dev-a", obsMessage("m1", [obs("p-aaaa0001", "enrolled", at: t0), obs("p-aaaa0001", "spo2", 93, unit: "%", at: t1)])),
                line("dev-b", obsMessage("m2", [obs("p-aaaa0001", "spo2", 95, unit: "%", at: t2), obs("p-bbbb0002", "spo2", 90, unit: "%", at: t2)])),
                line("dev-c", obsMessage("m3", [obs("p-aaaa0001", "spo2", 5, unit: "%", at: t2)])),      // refused: out of range
                line("dev-c", obsMessage("m4", [obs("p-bbbb0002", "spo2", 5, unit: "%", at: t1)])),      // another subject's refusal
            ]
            let imported = try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(imported.status == 0, "\(imported.stderr)")

            let r = try ws.run(["subjects", "show", "--pilot", "resp-copd-idf-01", "--subject", "p-aaaa0001"])
            #expect(r.status == 0, "\(r.stderr)")
            let o = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(o["found"] as? Bool == true)
            let readings = try #require(o["observations"] as? [[String: Any]])
            #expect(readings.map { $0["value"] as? Double } == [93, 95])
            #expect(readings.map { $0["device"] as? String } == ["dev-a", "dev-b"])
            #expect((o["events"] as? [[String: Any]])?.map { $0["indicator"] as? String } == ["enrolled"])
            #expect(o["enrolled_at"] as? String != nil)
            #expect(o["devices"] as? [String] == ["dev-a", "dev-b", "dev-c"])
            let refused = try #require(o["refused_messages"] as? [[String: Any]])
            #expect(refused.count == 1 && (refused.first?["payload"] as? String)?.contains("\"m3\"") == true, "\(refused)")
            #expect(!r.stdout.contains("p-bbbb0002"), "nothing of another subject")

            // Recorded, under a hash: never the pseudonym in the trail.
            let trail = try String(contentsOfFile: ws.db + ".audit", encoding: .utf8)
            #expect(trail.contains("\"command\":\"subjects show\"") && trail.contains("subject_hash="))
            #expect(!trail.contains("p-aaaa0001"), "\(trail)")

            let none = try ws.run(["subjects", "show", "--pilot", "resp-copd-idf-01", "--subject", "p-nobody"])
            #expect(none.status == 0 && none.stdout.contains("\"found\": false"), "\(none.stdout)")
            let bad = try ws.run(["subjects", "show", "--pilot", "nope", "--subject", "p-aaaa0001"])
            #expect(bad.status == 64 && bad.stderr.contains("unknown pilot \"nope\""), "\(bad.stderr)")
        }
    }
}

@Suite("New commands refuse bad arguments with the value and exit 64")
struct NewCommandArgumentTests {
    @Test(arguments: [
        (["alerts", "--as-of", "soon"], "--as-of \"soon\" is not a time"),
        (["alerts", "history", "--since", "lately"], "--since \"lately\" is not a time"),
        (["alerts", "--rule", "silence"], "--rule silence is not a rule"),
        (["alerts", "--pilot", "nope"], "unknown pilot \"nope\""),
        (["db", "purge", "--as-of", "later"], "--as-of \"later\" is not a time"),
        (["db", "purge", "--format", "csv"], "--format csv: purge prints table or json"),
        (["subjects", "show", "--pilot", "resp-copd-idf-01", "--subject", String(repeating: "x", count: 65)], "--subject must be a pseudonym of 1 to 64 bytes"),
    ])
    func refused(_ args: [String], _ message: String) throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            let r = try ws.run(args)
            #expect(r.status == 64, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }
}
