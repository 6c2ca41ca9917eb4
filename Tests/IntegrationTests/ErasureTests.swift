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

/// The files under `folder` whose bytes hold `needle`.
private func filesHolding(_ needle: String, under folder: String) -> [String] {
    ((try? filesHolding([needle], under: folder)) ?? ["(cannot read \(folder))"]).map { String($0.prefix { $0 != ":" }) }
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
        let backups = ["with.sqlite"]
        #expect(Set(filesHolding(erased, under: ws.dir)) == ["with.sqlite"], "only the backup taken before the erasure holds it")
        let tombstones = try String(contentsOfFile: ws.db + ".erased", encoding: .utf8)
        #expect(tombstones.split(separator: "\n").count == 1)
        let trail = try String(contentsOfFile: ws.db + ".audit", encoding: .utf8)
        #expect(trail.contains("\"command\":\"subjects erase\""))
        #expect(trail.contains("subject_hash="))

        // A broker redelivery, a replayed line, and a message naming it that is refused for another
        // reason (its payload would be kept, and replayed once the cause is fixed): all refused
        // erased_subject, hash only.
        try publish(port: broker.port, topic: all[3].topic, message: all[3].payload)
        #expect(try ws.run(["ingest", "-"], stdin: ndjson([all[4]])).status == 0)
        try publish(port: broker.port, topic: all[3].topic,
                    message: obsMessage("late-1", [obs(erased, "no_such_indicator", 1, at: daysAgo(1))]))
        try ws.waitFor("three erased_subject refusals") { ($0.refusedByReason[.erasedSubject] ?? 0) >= 3 }
        #expect(try ws.stats().refusedByReason[.unknownIndicator] == nil)
        #expect(try ws.run(["rejects", "replay"]).status == 0)
        #expect(try ws.stats().refusedByReason[.erasedSubject] == 3, "a replay brings nothing back")
        let rejects = try ws.run(["rejects", "--reason", "erased_subject", "--format", "json"])
        #expect(!rejects.stdout.contains(erased), "\(rejects.stdout)")
        Thread.sleep(forTimeInterval: 0.5)  // the applier overwrites the inbox record after its commit
        #expect(try ws.run(["db", "check"]).status == 0)
        let leftovers = filesHolding(erased, under: ws.dir).filter { !backups.contains($0) }
        #expect(leftovers == [], "after the redelivery: \(leftovers)")
        let shown = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
        #expect(shown.stdout.contains("\"found\": false"), "\(shown.stdout)")
        #expect(serve.terminate() == 0)
        #expect(!serve.logText.contains(erased), "serve's log never names the subject")

        // A backup taken before the erasure restored: the subject is erased again at once.
        let restored = try ws.run(["db", "restore", backupWith])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("erased again"), "\(restored.stdout)")
        let again = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
        #expect(again.stdout.contains("\"found\": false"), "\(again.stdout)")
        let inStore = filesHolding(erased, under: ws.dir).filter { !backups.contains($0) }
        #expect(inStore == [], "after the restore: \(inStore)")
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

    @Test("erase without serve; a message naming another subject too stays with that subject's rows; a second erase says so")
    func eraseWithoutServe() throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            let mine = messages(of: erased, device: "dev-e")
            // A back-end's message naming two subjects: only the erased one's observation goes.
            let shared = ("pilots/\(pilot)/backend-1/obs",
                          obsMessage("b-1", [obs(erased, "spo2", 91, unit: "%", at: daysAgo(2.5)), obs(kept[0], "spo2", 92, unit: "%", at: daysAgo(2.5))]))
            #expect(try ws.run(["ingest", "-"], stdin: ndjson(mine + [shared])).status == 0)
            let first = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", "request R-7", "--format", "json"])
            #expect(first.status == 0, "\(first.stderr)")
            let summary = try #require((try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])?["erasure"] as? [String: Any])
            #expect(summary["observations"] as? Int == 22)
            #expect(summary["messages_not_attributed"] as? Int == 1, "\(summary)")
            let stats = try ws.stats()
            #expect(stats.accepted == 1, "the shared message stays")
            #expect(stats.observations == 1, "with the other subject's observation")
            let other = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", kept[0]])
            #expect(other.stdout.contains("\"found\": true") && other.stdout.contains("\"value\": 92"), "\(other.stdout)")
            #expect(try ws.run(["db", "check"]).status == 0)
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
            #expect(try ws.run(["ingest", "-"], stdin: ndjson(messages(of: erased, device: "dev-e"))).status == 0)
            for reason in ["asked by jean.dupont@example.fr", "call 0612345678", "erase \(erased)", " "] {
                let r = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", reason])
                #expect(r.status == 64, "\(reason): \(r.stderr)")
                #expect(r.stderr.contains("--reason"), "\(r.stderr)")
            }
            let still = try ws.run(["subjects", "show", "--pilot", pilot, "--subject", erased])
            #expect(still.stdout.contains("\"found\": true"), "nothing was erased: \(still.stdout)")
        }
    }

    @Test("a store with tombstones and no key refuses to mint a new one: erase, backup and serve say to put it back")
    func aMissingKeyIsNeverReplaced() throws {
        try withBrokerAndWorkspace(store: true) { broker, ws in
            #expect(try ws.run(["ingest", "-"], stdin: ndjson(messages(of: erased, device: "dev-e"))).status == 0)
            #expect(try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", erased, "--reason", "request R-9"]).status == 0)
            let key = try String(contentsOfFile: ws.db + ".key", encoding: .utf8)
            try FileManager.default.removeItem(atPath: ws.db + ".key")
            let erase = try ws.run(["subjects", "erase", "--pilot", pilot, "--subject", kept[0], "--reason", "request R-10"])
            #expect(erase.status != 0 && erase.stderr.contains("put the key file back"), "\(erase.stderr)")
            let backup = try ws.run(["db", "backup", ws.dir + "/b.sqlite"])
            #expect(backup.status != 0 && backup.stderr.contains("put the key file back"), "\(backup.stderr)")
            let serve = try ws.startServe(port: broker.port)
            #expect(serve.waitExit(timeout: 30) != 0)
            #expect(serve.logText.contains("put the key file back"), "\(serve.logText)")
            #expect(!FileManager.default.fileExists(atPath: ws.db + ".key"), "no new key was made")
            try key.write(toFile: ws.db + ".key", atomically: true, encoding: .utf8)
            #expect(try ws.run(["db", "backup", ws.dir + "/b.sqlite"]).status == 0)
        }
    }
}
