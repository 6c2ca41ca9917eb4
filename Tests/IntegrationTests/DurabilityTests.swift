import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

/// Lines for `mosquitto_pub -l`: `count` one-observation messages with msg ids `prefix-N`.
func stream(_ prefix: String, from: Int = 0, count: Int, subjects: Int = 50) -> [String] {
    let base = Date().timeIntervalSince1970 - 3 * 86_400
    return (from..<(from + count)).map { i in
        // Distinct instants, so every message carries a distinct observation.
        let at = Instant(seconds: base + Double(i)).description
        let subject = "p-" + String(format: "%08x", 0x1000_0000 + i % subjects)
        return obsMessage("\(prefix)-\(i)", [obs(subject, "spo2", Double(88 + i % 10), unit: "%", at: at)])
    }
}

@Suite("Durability: nothing lost, nothing counted twice", .serialized)
struct DurabilityTests {
    /// SIGTERM mid-stream, publish while down, restart: everything published arrives once.
    @Test func gracefulRestartLosesNothing() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let topic = "pilots/resp-copd-idf-01/oxi-7/obs"

        var serve = try ws.startServe(port: broker.port)
        try serve.waitUntilSubscribed()
        let publisher = Thread { try? publish(port: broker.port, topic: topic, lines: stream("a", count: 5000)) }
        publisher.start()
        try ws.waitFor("the stream to start") { $0.accepted > 200 }
        #expect(serve.terminate() == 0, "exit 0 on SIGTERM:\n\(serve.logText)")
        // While the service is down: more messages, queued by the broker for the persistent session.
        try publish(port: broker.port, topic: topic, lines: stream("b", count: 3000))
        while publisher.isExecuting { Thread.sleep(forTimeInterval: 0.05) }

        serve = try ws.startServe(port: broker.port)
        defer { serve.terminate() }
        let s = try ws.waitFor("8000 messages", timeout: 120) { $0.accepted + $0.duplicate >= 8000 }
        Thread.sleep(forTimeInterval: 0.5)
        let settled = try ws.stats()
        #expect(settled.accepted == 8000, "accepted \(s.accepted), duplicate \(s.duplicate)")
        #expect(settled.observations == 8000)
        #expect(settled.refused == 0)
    }

    /// The broker restarts (persistence on) while the service runs: it reconnects, nothing is lost.
    @Test func brokerRestartLosesNothing() throws {
        let broker = try TestBroker.start(persistence: true)
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let topic = "pilots/resp-copd-idf-01/oxi-8/obs"
        let serve = try ws.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        try publish(port: broker.port, topic: topic, lines: stream("c", count: 2000))
        try ws.waitFor("the first 2000") { $0.accepted >= 2000 }
        serve.terminate()
        // Queued for the stopped service, then the broker goes down and comes back.
        try publish(port: broker.port, topic: topic, lines: stream("d", count: 2000))
        try broker.restart()
        let again = try ws.startServe(port: broker.port)
        defer { again.terminate() }
        try again.waitUntilSubscribed()
        try ws.waitFor("the queued 2000") { $0.accepted >= 4000 }
        // And with the service running, the broker restarts under it.
        try broker.restart()
        try publish(port: broker.port, topic: topic, lines: stream("e", count: 2000))
        try ws.waitFor("6000 after the broker restart", timeout: 90) { $0.accepted >= 6000 }
        Thread.sleep(forTimeInterval: 0.5)
        let s = try ws.stats()
        #expect(s.accepted == 6000)
        #expect(s.observations == 6000)
        #expect(again.logText.contains("reconnect") || again.logText.contains("connection lost"), "the log tells of the lost connection")
    }

    /// `kill -9` the subscriber several times during a stream of 20,000 QoS 1 messages:
    /// every message is stored exactly once.
    @Test func killNineDuringAStreamStoresEveryMessageOnce() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let total = 20_000
        // Four publishers on four devices, 5,000 messages each.
        var publishers: [Thread] = []
        // Each burst applied at once (`--apply-delay 0`), so that what is stored follows what
        // arrives and the kills fall while the stream goes on.
        let applyAtOnce = ["--apply-delay", "0"]
        var serve = try ws.startServe(port: broker.port, extra: applyAtOnce)
        try serve.waitUntilSubscribed()
        for d in 0..<4 {
            let lines = stream("k\(d)", from: d * 5000, count: 5000)
            // Paced (about 800 messages a second each, the stream lasting ~6 s), so that three
            // kills and restarts fall inside it on a fast machine too.
            let th = Thread { try? publishPaced(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-k\(d)/obs", lines: lines) }
            th.start()
            publishers.append(th)
        }
        var kills = 0
        var lastSeen = 0
        // Killed after each of its next three commits (a commit may take a backlog of up to
        // 16,384 messages at once, so fixed thresholds could all be passed by one): each time,
        // what the broker delivered since and the inbox holds unapplied is at stake.
        for _ in 0..<3 {
            let s = try ws.waitFor("more than \(lastSeen) stored before kill \(kills + 1)", timeout: 120) { $0.accepted > lastSeen }
            guard s.accepted < total else { break }
            serve.kill9()
            kills += 1
            lastSeen = s.accepted
            serve = try ws.startServe(port: broker.port, extra: applyAtOnce)
        }
        defer { serve.terminate() }
        #expect(kills >= 2, "the stream outran the kills (last seen \(lastSeen)); kills: \(kills)")
        let publishing = ContinuousClock.now + .seconds(180)
        while publishers.contains(where: \.isExecuting) && ContinuousClock.now < publishing { Thread.sleep(forTimeInterval: 0.05) }
        try ws.waitFor("all \(total)", timeout: 180) { $0.accepted >= total }
        Thread.sleep(forTimeInterval: 1)
        let s = try ws.stats()
        #expect(s.accepted == total, "every message stored once")
        #expect(s.observations == total)
        // Messages redelivered after a kill were recognised, not stored again.
        #expect(s.accepted + s.duplicate >= total)
        #expect(s.refused == 0)
    }

    /// A message SQLite refuses on every try (a test trigger on the observation table): serve
    /// keeps running, quarantines that one as `store_error` and stores the rest of its batch;
    /// once the trigger is gone, `rejects replay` (handed to the running serve) stores it.
    @Test func aMessageTheDatabaseRefusesIsQuarantinedAndServeGoesOn() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let topic = "pilots/resp-copd-idf-01/oxi-9/obs"
        // The store exists, with a trigger that refuses one observation value.
        #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)
        let block = "CREATE TRIGGER block BEFORE INSERT ON observation WHEN NEW.value = 93 BEGIN SELECT RAISE(ABORT, 'blocked by the test'); END;"
        #expect(try runTool("/usr/bin/sqlite3", [ws.db, block]) == 0)

        let serve = try ws.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        // Values 88...97 in turn: one message in ten carries 93.
        try publish(port: broker.port, topic: topic, lines: stream("j", count: 500))
        let s = try ws.waitFor("500 messages decided", timeout: 60) { $0.accepted + $0.refused >= 500 }
        #expect(s.accepted == 450)
        #expect(s.refusedByReason == [.storeError: 50], "\(s.refusedByReason)")
        #expect(s.pilots.first { $0.pilot == "resp-copd-idf-01" }?.refused == 0, "store_error is not the pilot's")
        #expect(serve.isRunning, "serve keeps running:\n\(serve.logText)")
        #expect(serve.logText.contains("store_error"))
        let rejects = try ws.run(["rejects", "--reason", "store_error", "--format", "json", "--limit", "1"])
        #expect(rejects.stdout.contains("blocked by the test"), "the SQLite message is in the detail: \(rejects.stdout)")
        #expect(rejects.stdout.contains("1811") || rejects.stdout.contains("result code"), "and its result code: \(rejects.stdout)")

        // While the cause is still there, the replay leaves them in quarantine and says so.
        let early = try ws.run(["rejects", "replay", "--format", "json", "--batch", "20"])
        #expect(early.status == 1, "\(early.stdout)\(early.stderr)")
        #expect(early.stdout.contains("\"failed\":50") && early.stdout.contains("\"imported\":0"), "\(early.stdout)")
        #expect(try ws.stats().refusedByReason == [.storeError: 50])

        #expect(try runTool("/usr/bin/sqlite3", [ws.db, "DROP TRIGGER block;"]) == 0)
        let replay = try ws.run(["rejects", "replay", "--format", "json"])
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stderr.contains("handing the replay to `pilotwatch serve`"), "\(replay.stderr)")
        #expect(replay.stdout.contains("\"imported\":50"), "\(replay.stdout)")
        let after = try ws.stats()
        #expect(after.accepted == 500 && after.refused == 0 && after.observations == 500)
        #expect(serve.terminate() == 0)
        #expect(try ws.run(["db", "check"]).status == 0)
    }

    /// A database deleted while its inbox stays: the new database does not get the old inbox's
    /// messages; the inbox is set aside and a new one started.
    @Test func anInboxIsNeverAppliedToAnotherDatabase() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let ws = try Workspace(port: broker.port)
        defer { ws.remove() }
        let topic = "pilots/resp-copd-idf-01/oxi-10/obs"
        let first = try ws.startServe(port: broker.port)
        try first.waitUntilSubscribed()
        try publish(port: broker.port, topic: topic, lines: stream("o", count: 50))
        try ws.waitFor("the first 50") { $0.accepted >= 50 }
        #expect(first.terminate() == 0)
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ws.db + suffix) }

        let second = try ws.startServe(port: broker.port)
        defer { second.terminate() }
        try second.waitUntilSubscribed()
        #expect(second.logText.contains("holds messages for another database"), "\(second.logText)")
        try publish(port: broker.port, topic: topic, lines: stream("p", count: 10))
        try ws.waitFor("the next 10") { $0.accepted >= 10 }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try ws.stats().accepted == 10, "nothing of the old inbox reached the new database")
        let aside = try FileManager.default.contentsOfDirectory(atPath: ws.dir).filter { $0.contains(".inbox.orphan-") }
        #expect(aside.count == 1)
    }

    @Test func serveRefusesBadLimitsNamingTheValue() throws {
        let ws = try Workspace(port: 1)
        defer { ws.remove() }
        for (args, needle) in [(["--max-backlog", "0"], "--max-backlog 0 must be at least 1"),
                               (["--counts-every", "0"], "--counts-every 0.0 must be above 0"),
                               (["--max-backlog", "lots"], "lots"),
                               (["--apply-delay=-1"], "--apply-delay -1.0 must be between 0 and 3600"),
                               (["--apply-delay", "7200"], "--apply-delay 7200.0 must be between 0 and 3600"),
                               (["--apply-delay", "soon"], "soon"),
                               (["--apply-due=-0.5"], "--apply-due -0.5 must be between 0 and 3600")] {
            let r = try ws.run(["serve"] + args)
            #expect(r.status != 0, "\(args) should fail")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: ws.db + ".inbox"), "nothing is created on bad arguments")
        }
    }
}

/// Runs a tool to its end; returns its exit status.
func runTool(_ path: String, _ arguments: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// Publishes `lines` at QoS 1, 100 every 120 ms, from this process (a `mosquitto_pub -l` fed
/// through a pipe would wait for an end of file that never comes while a `serve` started
/// meanwhile holds the pipe's inherited write end), and waits for every acknowledgement.
private func publishPaced(port: Int, topic: String, lines: [String]) throws {
    let publisher = try MQTTPublisher(configuration: MQTTConfiguration(host: "127.0.0.1", port: port, clientID: ""),
                                      logger: Logger(label: "test.publisher"))
    try publisher.connect()
    defer { publisher.disconnect() }
    for start in stride(from: 0, to: lines.count, by: 100) {
        for line in lines[start..<min(start + 100, lines.count)] {
            try publisher.publish(topic: topic, payload: Array(line.utf8), qos: 1)
        }
        Thread.sleep(forTimeInterval: 0.12)
    }
    try publisher.waitForAllAcknowledged(timeout: 60)
}
