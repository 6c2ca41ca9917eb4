import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

// `subjects erase` end to end: the real binary, a real broker, real files. After an erasure every
// figure equals that of a store that never received the subject, the pseudonym's bytes are in no
// file, and nothing brings it back: a redelivery, a replayed line, an older backup restored, a
// failover restore on a machine that never saw it.

private let pilot = "resp-copd-idf-01"
private let erased = "p-erase-7f3a"
private let kept = ["p-keep-0001", "p-keep-0002", "p-keep-0003"]

private func daysAgo(_ d: Double) -> String { isoNow(minutesAgo: d * 1440) }

/// The messages of one subject on its own device: enrolment with a baseline, readings over the
/// follow-up, an exacerbation, and one reading out of range (refused, kept in quarantine).
private func messages(of subject: String, device: String) -> [(topic: String, payload: String)] {
    let topic = "pilots/\(pilot)/\(device)/obs"
    var out: [(String, String)] = [
        (topic, obsMessage("\(device)-1", [obs(subject, "enrolled", at: daysAgo(100)), obs(subject, "spo2", 89, unit: "%", at: daysAgo(99))])),
        (topic, obsMessage("\(device)-2", [obs(subject, "exacerbation", at: daysAgo(50))])),
        (topic, obsMessage("\(device)-3", [obs(subject, "spo2", 140, unit: "%", at: daysAgo(3))])),
    ]
    for d in stride(from: 20.0, through: 1, by: -1) {
        out.append((topic, obsMessage("\(device)-r\(Int(d))", [obs(subject, "spo2", 90 + d / 4, unit: "%", at: daysAgo(d))])))
    }
    return out
}

private func ndjson(_ messages: [(topic: String, payload: String)]) -> Data {
    Data(messages.map { "{\"topic\":\"\($0.topic)\",\"payload\":\($0.payload)}\n" }.joined().utf8)
}

/// Every file under `folder` whose bytes hold `needle`.
private func filesHolding(_ needle: String, under folder: String) -> [String] {
    var found: [String] = []
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let name = enumerator?.nextObject() as? String {
        let path = folder + "/" + name
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue,
              let data = FileManager.default.contents(atPath: path) else { continue }
        if data.range(of: Data(needle.utf8)) != nil { found.append(name) }
    }
    return found
}

/// The JSON of a view, without what differs between two stores fed at different moments: the
/// ingest state and the times devices were last heard of.
private func figures(_ ws: Workspace, _ args: [String]) throws -> NSDictionary {
    let r = try ws.run(args + ["--format", "json"])
    guard r.status == 0 else { throw TestFailure("\(args): \(r.stderr)") }
    let value = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    func strip(_ v: Any) -> Any {
        if let d = v as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, x) in d where !["ingest", "first_seen", "last_seen", "silent_since", "last_heard_at", "status_at", "generated_at"].contains(k) {
                out[k] = strip(x)
            }
            return out
        }
        if let a = v as? [Any] { return a.map(strip) }
        return v
    }
    return strip(value) as? NSDictionary ?? [:]
}

@Suite("Erasure", .serialized)
struct ErasureTests {
    @Test("an erased subject leaves every figure as if it had never sent anything, and no byte in any file")
    func erasureIsCompleteAndSticks() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let reference = try Workspace(port: broker.port)
        defer { reference.remove() }

        // The same bytes for both stores (the times are computed once).
        let mine = messages(of: erased, device: "dev-e")
        let others = kept.enumerated().flatMap { messages(of: $1, device: "dev-k\($0)") }
        let all = mine + others
        // The reference store never hears of the subject.
        #expect(try reference.run(["ingest", "-"], stdin: ndjson(others)).status == 0)

        #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)
        let backupBefore = ws.dir + "/before.sqlite"
        #expect(try ws.run(["db", "backup", backupBefore]).status == 0)
        let serve = try ws.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        for m in all { try publish(port: broker.port, topic: m.topic, message: m.payload) }
        try ws.waitFor("every message") { $0.accepted + $0.refused >= all.count }
        #expect(filesHolding(erased, under: ws.db + ".inbox").count > 0, "the subject's records are still in the inbox")
        let shownBefore = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
        #expect(shownBefore.stdout.contains("\"found\": true"), "\(shownBefore.stdout)")
        let backupWith = ws.dir + "/with.sqlite"
        #expect(try ws.run(["db", "backup", backupWith]).status == 0)

        // Erased while serve runs: handed over to it.
        let r = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", "consent withdrawn, request DPO-41", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let summary = try #require(out["erasure"] as? [String: Any])
        #expect(summary["observations"] as? Int == 21)
        #expect(summary["events"] as? Int == 2)
        #expect(summary["messages"] as? Int == 22)
        #expect(summary["quarantined"] as? Int == 1)
        #expect(summary["devices_forgotten"] as? Int == 1)
        #expect((summary["inbox_records"] as? Int ?? 0) >= 22)
        #expect(summary["wal_emptied"] as? Bool == true)
        #expect(serve.logText.contains("erase handed over"), "\(serve.logText)")

        // Every figure as in the store that never received it.
        let asOf = ["--as-of", Instant(seconds: Date().timeIntervalSince1970).description]
        for view in [["status"], ["pilot", pilot], ["export"]] {
            let a = try figures(ws, view + asOf), b = try figures(reference, view + asOf)
            #expect(a == b, "\(view): after the erasure\n\(a)\nnever received\n\(b)")
        }
        // Its bytes are in no file: database, WAL, inbox, audit trail, tombstones.
        let backups = ["before.sqlite", "with.sqlite"]
        #expect(Set(filesHolding(erased, under: ws.dir)) == ["with.sqlite"], "only the backup taken before the erasure holds it")
        let tombstones = try String(contentsOfFile: ws.db + ".erased", encoding: .utf8)
        #expect(tombstones.split(separator: "\n").count == 1)
        let trail = try String(contentsOfFile: ws.db + ".audit", encoding: .utf8)
        #expect(trail.contains("\"command\":\"subjects erase\""))
        #expect(trail.contains("subject_hash="))

        // A broker redelivery and a replayed line: refused erased_subject, hash only.
        try publish(port: broker.port, topic: all[3].topic, message: all[3].payload)
        #expect(try ws.run(["ingest", "-"], stdin: ndjson([all[4]])).status == 0)
        try ws.waitFor("two erased_subject refusals") { ($0.refusedByReason[.erasedSubject] ?? 0) >= 2 }
        let rejects = try ws.run(["rejects", "--reason", "erased_subject", "--format", "json"])
        #expect(!rejects.stdout.contains(erased), "\(rejects.stdout)")
        Thread.sleep(forTimeInterval: 0.5)  // the applier overwrites the inbox record after its commit
        #expect(try ws.run(["db", "check"]).status == 0)
        let leftovers = filesHolding(erased, under: ws.dir).filter { !backups.contains($0) }
        #expect(leftovers == [], "after the redelivery: \(leftovers)")
        let shown = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
        #expect(shown.stdout.contains("\"found\": false"), "\(shown.stdout)")
        #expect(serve.terminate() == 0)

        // An older backup restored: the subject is erased again at once.
        for backup in [backupBefore, backupWith] {
            let restored = try ws.run(["db", "restore", backup])
            #expect(restored.status == 0, "\(restored.stderr)")
            let again = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
            #expect(again.stdout.contains("\"found\": false"), "\(backup): \(again.stdout)")
            let inStore = filesHolding(erased, under: ws.dir).filter { !backups.contains($0) }
            #expect(inStore == [], "\(backup): \(inStore)")
        }
        #expect(try ws.run(["ingest", "-"], stdin: ndjson([all[5]])).status == 0)
        #expect(try ws.stats().refusedByReason[.erasedSubject] == 1, "the restored store refuses it too")

        // Failover: a backup taken after the erasure, restored on a machine that never saw the
        // store (no key, no tombstone file): still erased.
        let backupAfter = ws.dir + "/after.sqlite"
        #expect(try ws.run(["db", "backup", backupAfter]).status == 0)
        let fresh = try Workspace(port: broker.port)
        defer { fresh.remove() }
        let failover = try fresh.run(["db", "restore", backupAfter])
        #expect(failover.status == 0, "\(failover.stderr)")
        #expect(try String(contentsOfFile: fresh.db + ".key", encoding: .utf8) == (try String(contentsOfFile: ws.db + ".key", encoding: .utf8)))
        #expect(try fresh.run(["ingest", "-"], stdin: ndjson([all[6]])).status == 0)
        #expect(try fresh.stats().refusedByReason[.erasedSubject] == 2)
        #expect(filesHolding(erased, under: fresh.dir) == [])
    }

    @Test("erase without serve applies the inbox first; a second erase of the same subject says so")
    func eraseWithoutServe() throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            let mine = messages(of: erased, device: "dev-e")
            #expect(try ws.run(["ingest", "-"], stdin: ndjson(mine)).status == 0)
            let first = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", "request R-7"])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("erased a subject of \(pilot)"), "\(first.stdout)")
            #expect(try ws.stats().accepted == 0)
            let second = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", "request R-7"])
            #expect(second.status == 0)
            #expect(second.stdout.contains("already erased"), "\(second.stdout)")
            #expect(try String(contentsOfFile: ws.db + ".erased", encoding: .utf8).split(separator: "\n").count == 1)
            #expect(filesHolding(erased, under: ws.dir) == [])
        }
    }

    @Test("a reason that identifies the person, or names the pseudonym, is refused before anything is erased")
    func identifyingReasonsAreRefused() throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            for reason in ["asked by jean.dupont@example.fr", "call 0612345678", "erase \(erased)", " "] {
                let r = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", reason])
                #expect(r.status == 64, "\(reason): \(r.stderr)")
                #expect(r.stderr.contains("--reason"), "\(r.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: ws.db + ".erased"))
        }
    }
}
