import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

// `pilots switch-to-aggregates` and `devices revoke` end to end: the real binary, a real broker
// and serve, real SQLite and inbox files, real mosquitto password and ACL files. After the
// switch no value, pseudonym or device id of the pilot is in the database, its WAL or the inbox;
// the other pilots' figures are as before; its accounts are gone; config check stops warning.

private let switched = "card-hf-idf-03"
private let other = "resp-copd-idf-01"
private let subject = "p-cardswitch-0001"
private let device = "cardsw-001"
private let weight = 87.654321

private func daysAgo(_ d: Double) -> String { isoNow(minutesAgo: d * 1440) }

/// The switched pilot's messages: enrolment, weights, a hospitalisation, a device status, and a
/// message refused for an unknown indicator (kept in quarantine with its payload).
private func switchedMessages() -> [(topic: String, payload: String)] {
    let obsTopic = "pilots/\(switched)/\(device)/obs"
    var out: [(String, String)] = [
        (obsTopic, obsMessage("c-1", [obs(subject, "enrolled", at: daysAgo(30)), obs(subject, "weight", weight, unit: "kg", at: daysAgo(29))])),
        (obsTopic, obsMessage("c-2", [obs(subject, "hospitalisation", at: daysAgo(10))])),
        (obsTopic, obsMessage("c-3", [obs(subject, "no_such_indicator", 1, at: daysAgo(2))])),
        ("pilots/\(switched)/\(device)/status", #"{"state":"online","at":"\#(daysAgo(1))","battery_pct":61,"firmware":"fw-cardsw"}"#),
    ]
    for d in stride(from: 9.0, through: 1, by: -1) {
        out.append((obsTopic, obsMessage("c-r\(Int(d))", [obs(subject, "weight", weight + d, unit: "kg", at: daysAgo(d))])))
    }
    return out
}

/// Another pilot's messages, which must come through the switch untouched.
private func otherMessages() -> [(topic: String, payload: String)] {
    let topic = "pilots/\(other)/respdev-1/obs"
    var out: [(String, String)] = [(topic, obsMessage("r-1", [obs("p-resp-0001", "enrolled", at: daysAgo(30)),
                                                               obs("p-resp-0001", "spo2", 91, unit: "%", at: daysAgo(29))]))]
    for d in stride(from: 8.0, through: 1, by: -1) {
        out.append((topic, obsMessage("r-r\(Int(d))", [obs("p-resp-0001", "spo2", 90 + d / 2, unit: "%", at: daysAgo(d))])))
    }
    out.append((topic, obsMessage("r-x", [obs("p-resp-0001", "no_such_indicator", 2, at: daysAgo(1))])))
    return out
}

private func ndjson(_ messages: [(topic: String, payload: String)]) -> Data {
    Data(messages.map { "{\"topic\":\"\($0.topic)\",\"payload\":\($0.payload)}\n" }.joined().utf8)
}

/// The store's files (database, WAL, inbox segments) whose bytes hold one of the switched
/// pilot's values, pseudonym or device id: as text, and the weight as SQLite stores a REAL too.
private func storeFilesHoldingSwitchedData(_ ws: Workspace) -> [String] {
    let real = withUnsafeBytes(of: weight.bitPattern.bigEndian) { Data($0) }
    var needles: [(String, Data)] = [(subject, Data(subject.utf8)), (device, Data(device.utf8)),
                                     ("87.654321", Data("87.654321".utf8)), ("weight as REAL", real)]
    needles += (1...9).map { d in ("weight+\(d)", withUnsafeBytes(of: (weight + Double(d)).bitPattern.bigEndian) { Data($0) }) }
    var found: [String] = []
    let folder = URL(fileURLWithPath: ws.db).deletingLastPathComponent().path
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let name = enumerator?.nextObject() as? String {
        let path = folder + "/" + name
        guard path.hasPrefix(ws.db), let data = FileManager.default.contents(atPath: path) else { continue }
        for (label, bytes) in needles where data.range(of: bytes) != nil { found.append("\(name): \(label)") }
    }
    return found
}

/// The registry with the switched pilot reporting aggregates from the site `chu-lille`.
private func markAggregates(_ ws: Workspace) throws {
    let path = ws.dir + "/pilots.yaml"
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let entry = "    outcomes: [weight, hospitalisation]"
    guard text.contains(entry) else { throw TestFailure("the registry has no \(switched) entry to change") }
    try text.replacingOccurrences(of: entry, with: entry + "\n    reporting: aggregates\n    site: chu-lille")
        .write(toFile: path, atomically: true, encoding: .utf8)
}

/// The views of the other pilot as JSON, without what moves with the clock or the ingest state.
private func otherFigures(_ ws: Workspace, asOf: String) throws -> [String: NSDictionary] {
    func strip(_ v: Any) -> Any {
        if let d = v as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, x) in d where !["ingest", "last_seen", "last_heard_at", "status_at", "generated_at"].contains(k) { out[k] = strip(x) }
            return out
        }
        if let a = v as? [Any] { return a.map(strip) }
        return v
    }
    var out: [String: NSDictionary] = [:]
    let status = try ws.run(["status", "--as-of", asOf, "--format", "json"])
    guard status.status == 0 else { throw TestFailure("status: \(status.stderr)") }
    let pilots = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["pilots"] as? [[String: Any]] ?? []
    for p in pilots where p["pilot"] as? String != switched {
        out["status " + (p["pilot"] as? String ?? "?")] = strip(p) as? NSDictionary
    }
    let view = try ws.run(["pilot", other, "--as-of", asOf, "--format", "json"])
    guard view.status == 0 else { throw TestFailure("pilot: \(view.stderr)") }
    out["pilot \(other)"] = strip(try JSONSerialization.jsonObject(with: Data(view.stdout.utf8))) as? NSDictionary
    return out
}

/// A password file and ACL as `devices provision` leaves them, with a hand-written user block
/// for the switched pilot's device (which revocation must remove too).
private func writeAccounts(_ ws: Workspace) throws -> (passwd: String, acl: String) {
    let passwd = ws.dir + "/passwd", acl = ws.dir + "/acl"
    try """
    pilotwatch:$7$101$c2VydmljZQ==$c2VydmljZQ==
    \(switched)/\(device):$7$101$ZGV2aWNl$ZGV2aWNl
    \(switched)/cardsw-002:$7$101$ZGV2aWNl$ZGV2aWNm
    \(other)/respdev-1:$7$101$cmVzcA==$cmVzcA==

    """.write(toFile: passwd, atomically: true, encoding: .utf8)
    try """
    user pilotwatch
    topic read pilots/+/+/obs
    topic read pilots/+/+/status

    user \(switched)/\(device)
    topic read pilots/\(switched)/\(device)/config

    # Device accounts are named {pilot_id}/{device_id}.
    pattern write pilots/%u/obs
    pattern write pilots/%u/status

    """.write(toFile: acl, atomically: true, encoding: .utf8)
    return (passwd, acl)
}

@Suite("Switching a pilot to aggregates", .serialized)
struct PilotSwitchTests {
    @Test("while serve runs: raw rows and inbox records gone from every file, accounts revoked, the others' figures unchanged, config check quiet after")
    func switchWhileServing() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let (passwd, acl) = try writeAccounts(ws)
        #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)
        let serve = try ws.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        let all = switchedMessages() + otherMessages()
        for m in all { try publish(port: broker.port, topic: m.topic, message: m.payload) }
        try ws.waitFor("every message") { $0.accepted + $0.refused + $0.statuses >= all.count }
        #expect(storeFilesHoldingSwitchedData(ws).contains { $0.hasPrefix("pilotwatch.sqlite.inbox/") }, "the inbox holds the pilot's records")
        let asOf = Instant(seconds: Date().timeIntervalSince1970).description
        let before = try otherFigures(ws, asOf: asOf)

        // Refused while the registry says observations: nothing changes.
        let early = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd])
        #expect(early.status == 64 && early.stderr.contains("reporting: aggregates"), "\(early.stderr)")
        try markAggregates(ws)
        let check = try ws.run(["config", "check"])
        #expect(check.status == 0)
        #expect(check.stderr.contains("warning: pilot \(switched)") && check.stderr.contains("holds 38 raw rows"), "\(check.stderr)")

        // The dry run says rows and bytes and changes nothing.
        let passwdBefore = try String(contentsOfFile: passwd, encoding: .utf8), aclBefore = try String(contentsOfFile: acl, encoding: .utf8)
        let dry = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd, "--dry-run", "--format", "json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let plannedRows = try #require(planned["raw_rows"] as? [String: Any])
        #expect(plannedRows["rows"] as? Int == 38, "\(plannedRows)")
        #expect((plannedRows["bytes"] as? Int ?? 0) > 0)
        #expect(plannedRows["inbox_records"] as? Int == 13, "\(plannedRows)")
        #expect((planned["device_accounts"] as? [String: Any])?["accounts"] as? [String] == ["\(switched)/\(device)", "\(switched)/cardsw-002"])
        #expect(try String(contentsOfFile: passwd, encoding: .utf8) == passwdBefore)
        #expect(try String(contentsOfFile: acl, encoding: .utf8) == aclBefore)
        #expect(try openReadOnly(ws).rawRowCount(pilot: switched) == 38)
        #expect(storeFilesHoldingSwitchedData(ws).count > 0, "the dry run removed nothing")

        // The switch, handed over to serve.
        let r = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let done = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try #require(done["raw_rows"] as? [String: Any])
        let tables = try #require(rows["tables"] as? [String: [String: Int]])
        #expect(tables["observation"]?["rows"] == 10 && tables["event"]?["rows"] == 2 && tables["subject"]?["rows"] == 1, "\(tables)")
        #expect(tables["message"]?["rows"] == 11 && tables["device"]?["rows"] == 1 && tables["reject"]?["rows"] == 1, "\(tables)")
        #expect(rows["wal_emptied"] as? Bool == true)
        #expect(rows["inbox_records"] as? Int == plannedRows["inbox_records"] as? Int)
        #expect(serve.logText.contains("switch to aggregates handed over"), "\(serve.logText)")
        #expect(r.stderr.contains("Reload the broker"), "\(r.stderr)")

        // Nothing of it is left in the files, while serve still runs.
        #expect(storeFilesHoldingSwitchedData(ws) == [], "no value, pseudonym or device id left in the database, WAL or inbox")
        #expect(try openReadOnly(ws).rawRowCount(pilot: switched) == 0)
        #expect(try otherFigures(ws, asOf: asOf) == before, "the other pilots' figures are unchanged")
        let quiet = try ws.run(["config", "check"])
        #expect(quiet.status == 0 && !quiet.stderr.contains("warning"), "\(quiet.stderr)")

        // A device still publishing (a broker not reloaded) is refused from now on (serve reloaded
        // the registry), as hash only: its values and pseudonym reach no file. Its device id is
        // learned again with the refusal, and config check says so until the switch runs again.
        try publish(port: broker.port, topic: "pilots/\(switched)/\(device)/obs",
                    message: obsMessage("c-late", [obs(subject, "weight", weight, unit: "kg", at: daysAgo(0.1))]))
        try ws.waitFor("the late message refused") { ($0.refusedByReason[.aggregatePilot] ?? 0) >= 1 }
        Thread.sleep(forTimeInterval: 0.5)  // the applier overwrites the refused record after its commit
        #expect(storeFilesHoldingSwitchedData(ws).allSatisfy { $0.hasSuffix(": \(device)") }, "\(storeFilesHoldingSwitchedData(ws))")
        let loud = try ws.run(["config", "check"])
        #expect(loud.stderr.contains("holds 2 raw rows"), "\(loud.stderr)")
        #expect(try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd]).status == 0)
        #expect(serve.terminate() == 0)
        #expect(storeFilesHoldingSwitchedData(ws) == [])
        #expect(try otherFigures(ws, asOf: asOf) == before)
        let passwdAfter = try String(contentsOfFile: passwd, encoding: .utf8)
        #expect(!passwdAfter.contains(switched) && passwdAfter.contains("\(other)/respdev-1:") && passwdAfter.contains("pilotwatch:"), "\(passwdAfter)")
        let aclAfter = try String(contentsOfFile: acl, encoding: .utf8)
        #expect(!aclAfter.contains(device) && aclAfter.contains("pattern write pilots/%u/obs") && aclAfter.contains("user pilotwatch"), "\(aclAfter)")
        #expect(try ws.run(["db", "check"]).status == 0)
        let trail = try String(contentsOfFile: ws.db + ".audit", encoding: .utf8)
        #expect(trail.contains("\"command\":\"pilots switch-to-aggregates\"") && trail.contains("\"command\":\"pilots switch-to-aggregates --dry-run\""))
    }

    @Test("without serve: refused unknown pilots and files, then the switch; a second run finds nothing; devices revoke one device")
    func switchWithoutServe() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let (passwd, acl) = try writeAccounts(ws)
        #expect(try ws.run(["ingest", "-"], stdin: ndjson(switchedMessages() + otherMessages())).status == 0)
        let asOf = Instant(seconds: Date().timeIntervalSince1970).description
        let before = try otherFigures(ws, asOf: asOf)
        try markAggregates(ws)

        let unknown = try ws.run(["pilots", "switch-to-aggregates", "--pilot", "no-such-pilot", "--password-file", passwd])
        #expect(unknown.status == 64 && unknown.stderr.contains("no-such-pilot"), "\(unknown.stderr)")
        let bad = try ws.run(["pilots", "switch-to-aggregates", "--pilot", "Bad Id"])
        #expect(bad.status == 64 && bad.stderr.contains("Bad Id"), "\(bad.stderr)")
        let noFile = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", ws.dir + "/missing"])
        #expect(noFile.status != 0 && noFile.stderr.contains(ws.dir + "/missing"), "\(noFile.stderr)")
        #expect(try openReadOnly(ws).rawRowCount(pilot: switched) == 38, "nothing removed before the password file is known")

        let r = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("removed 38 raw rows") && r.stdout.contains("removed 2 accounts"), "\(r.stdout)")
        #expect(storeFilesHoldingSwitchedData(ws) == [])
        #expect(try otherFigures(ws, asOf: asOf) == before)
        #expect(try ws.run(["db", "check"]).status == 0)
        let again = try ws.run(["pilots", "switch-to-aggregates", "--pilot", switched, "--password-file", passwd])
        #expect(again.status == 0 && again.stdout.contains("removed 0 raw rows") && again.stdout.contains("no account"), "\(again.stdout)")

        // One device of another pilot.
        let missing = try ws.run(["devices", "revoke", "--pilot", other, "--device", "respdev-9", "--password-file", passwd])
        #expect(missing.status == 64 && missing.stderr.contains("\(other)/respdev-9"), "\(missing.stderr)")
        let one = try ws.run(["devices", "revoke", "--pilot", other, "--device", "respdev-1", "--password-file", passwd,
                              "--acl-file", acl, "--format", "json"])
        #expect(one.status == 0, "\(one.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
        #expect(out["accounts"] as? [String] == ["\(other)/respdev-1"] && out["dry_run"] as? Bool == false, "\(out)")
        #expect(try String(contentsOfFile: passwd, encoding: .utf8).split(separator: "\n") == ["pilotwatch:$7$101$c2VydmljZQ==$c2VydmljZQ=="])
    }

    @Test("devices revoke --broker-pid sends SIGHUP; --dry-run changes nothing")
    func revokeSignalsTheBroker() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let (passwd, _) = try writeAccounts(ws)
        let original = try String(contentsOfFile: passwd, encoding: .utf8)
        let dry = try ws.run(["devices", "revoke", "--pilot", switched, "--password-file", passwd, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("would remove 2 accounts") && dry.stdout.contains("would remove 2 lines"), "\(dry.stdout)")
        #expect(try String(contentsOfFile: passwd, encoding: .utf8) == original)
        // A stand-in for mosquitto that writes a file when it gets SIGHUP.
        let marker = ws.dir + "/hup"
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sh")
        sleeper.arguments = ["-c", "trap 'touch \(marker); exit 0' HUP; while true; do sleep 0.05; done"]
        try sleeper.run()
        defer { if sleeper.isRunning { sleeper.terminate() } }
        Thread.sleep(forTimeInterval: 0.3)
        let r = try ws.run(["devices", "revoke", "--pilot", switched, "--password-file", passwd, "--broker-pid", String(sleeper.processIdentifier)])
        #expect(r.status == 0 && r.stderr.contains("sent SIGHUP"), "\(r.stderr)")
        sleeper.waitUntilExit()
        #expect(FileManager.default.fileExists(atPath: marker))
    }
}

private func openReadOnly(_ ws: Workspace) throws -> Store {
    try Store(path: ws.db, options: StoreOptions(readOnly: true))
}
