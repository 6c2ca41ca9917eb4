import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Strings planted in refused payloads: none may be left in any file once they are refused.
private let planted = ["jean.dupont@example.fr", "0612345678", "185057800608436", "Jean Dupont"]

/// A `sqlite3` process holding the database's write lock until `release()`: SQLite refuses
/// every other writer (SQLITE_BUSY) meanwhile.
// @unchecked Sendable: `release()` is called once, from one thread, after `init` returned.
private final class WriteLockHolder: @unchecked Sendable {
    let process = Process()
    let input = Pipe()

    init(database: String) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [database]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nINSERT INTO inbox_scrub VALUES (999999, 0, 1);\nSELECT 'held';\n".utf8))
        // Returns once sqlite3 says it holds the lock.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("held") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw TestFailure("sqlite3 ended before holding the lock") }
            seen.append(chunk)
        }
    }

    func release() {
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

@Suite("Hardening: one writer, no identifying bytes, backups", .serialized)
struct HardeningTests {
    /// A second serve on the same database refuses at once naming the holder; `ingest` beside
    /// the running serve is handed to it; a 20,000-message stream through the first is stored once.
    @Test func oneServePerDatabaseAndIngestIsHandedToIt() throws {
        try withRunningServe { broker, ws, serve in
            let second = try ws.startServe(port: broker.port)
            let code = second.waitExit(timeout: 10)
            #expect(code == 75, "the second serve exits 75 at once:\n\(second.logText)")
            #expect(second.logText.contains(ws.db), "it names the database:\n\(second.logText)")
            #expect(second.logText.contains("PID \(serve.pid)"), "and the PID that holds it:\n\(second.logText)")
            #expect(!second.logText.contains("MQTT connected"), "it never took the broker session")

            let publisher = Thread {
                try? publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-s1/obs", lines: stream("s", count: 20_000))
            }
            publisher.start()
            let base = Date().timeIntervalSince1970 - 86_400
            let lines = (0..<300).map { i in
                #"{"topic":"pilots/diab-cgm-idf-02/up-1/obs","payload":"#
                    + obsMessage("n-\(i)", [obs("p-0000\(1000 + i)", "hba1c", 7.1, unit: "%", at: Instant(seconds: base + Double(i)).description)])
                    + "}"
            }
            let ingest = try ws.run(["ingest", "-", "--format", "json"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(ingest.status == 0, "\(ingest.stderr)")
            #expect(ingest.stderr.contains("handing the import to `pilotwatch serve` (PID \(serve.pid)"), "\(ingest.stderr)")
            #expect(ingest.stdout.contains(#""accepted":300"#), "\(ingest.stdout)")
            while publisher.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
            try ws.waitFor("20,300 messages", timeout: 180) { $0.accepted >= 20_300 }
            Thread.sleep(forTimeInterval: 0.5)
            let s = try ws.stats()
            #expect(s.accepted == 20_300, "every message stored once")
            #expect(s.observations == 20_300)
            #expect(s.refused == 0)
            #expect(serve.isRunning)
        }
    }

    /// Identifying payloads over MQTT (valid JSON, truncated JSON, an unknown field, a top-level
    /// array): once applied, none of the planted strings is in any file beside the database,
    /// inbox included; the same when serve is killed between acknowledging and applying them.
    @Test func identifyingPayloadsLeaveNoBytesInAnyFile() throws {
        try withBrokerAndWorkspace() { broker, ws in
            let at = isoNow(minutesAgo: 60)
            let good = obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)
            let payloads = [
                obsMessage("id-1", [obs("jean.dupont@example.fr", "spo2", 94, unit: "%", at: at)]),
                #"{"msg_id":"id-2","observations":[{"subject":"p-7f3a9c21","note":"rappeler 0612345678"#,
                #"{"msg_id":"id-3","nir":"185057800608436","observations":["# + good + "]}",
                #"[{"name":"Jean Dupont","msg_id":"id-4"}]"#,
                // A NIR written as a number: refused as out of range, but its bytes are identifying.
                #"{"msg_id":"id-5","observations":[{"subject":"p-7f3a9c21","indicator":"spo2","value":185057800608436,"unit":"%","at":"# + "\"\(at)\"}]}",
            ]
            #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)

            // First round: serve running, the refusals applied at once.
            var serve = try ws.startServe(port: broker.port)
            try serve.waitUntilSubscribed()
            for (i, p) in payloads.enumerated() { try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-\(i)/obs", message: p) }
            // And a topic whose device level is the identifying part.
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/jean.dupont@example.fr/obs", message: obsMessage("id-6", [good]))
            try ws.waitFor("6 refusals") { $0.refused >= 6 }
            Thread.sleep(forTimeInterval: 0.3)
            #expect(try ws.stats().refusedByReason == [.identifyingData: 6])
            let topics = try ws.run(["rejects", "--format", "csv"]).stdout
            #expect(topics.contains("(withheld: identifying data in the topic)"), "\(topics)")
            #expect(try filesHolding(planted, under: ws.dir) == [])
            #expect(serve.terminate() == 0)

            // Second round: SQLite is held by another process, so serve acknowledges (inbox) but
            // cannot apply; it is killed there, and the restart applies and overwrites them.
            serve = try ws.startServe(port: broker.port)
            try serve.waitUntilSubscribed()
            let holder = try WriteLockHolder(database: ws.db)
            for (i, p) in payloads.enumerated() {
                try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-\(i)/obs", message: p.replacingOccurrences(of: "id-", with: "again-"))
            }
            let deadline = Date().addingTimeInterval(30)
            while try filesHolding(["jean.dupont@example.fr"], under: ws.dir + "/pilotwatch.sqlite.inbox").isEmpty && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            Thread.sleep(forTimeInterval: 0.5)
            let inInbox = try filesHolding(planted, under: ws.dir + "/pilotwatch.sqlite.inbox")
            #expect(Set(inInbox.map { $0.split(separator: " ").last.map(String.init) ?? "" }).count == planted.count,
                    "acknowledged: the payloads are in the inbox, not yet applied: \(inInbox)\n\(serve.logText)")
            serve.kill9()
            holder.release()
            serve = try ws.startServe(port: broker.port)
            defer { serve.terminate() }
            try ws.waitFor("11 refusals") { $0.refused >= 11 }
            Thread.sleep(forTimeInterval: 0.3)
            #expect(try filesHolding(planted, under: ws.dir) == [], "nothing identifying left after the restart")
            #expect(try ws.run(["db", "check"]).status == 0)
        }
    }

    /// `rejects replay` of 10,000 quarantined messages while serve ingests a stream: the
    /// replay is done by serve (with the registry as it is now), which keeps running, and both
    /// end with everything stored once.
    @Test func aLongReplayIsDoneByServeBesideAStream() throws {
        try withBrokerAndWorkspace() { broker, ws in
            // 10,000 messages for a pilot not yet in the registry: quarantined as unknown_pilot.
            let base = Date().timeIntervalSince1970 - 86_400
            let lines = (0..<10_000).map { i in
                #"{"topic":"pilots/resp-late-04/dev-r/obs","payload":"#
                    + obsMessage("r-\(i)", [obs("p-r" + String(format: "%07x", 0xa00_0000 + i % 400), "spo2", 95, unit: "%",
                                                at: Instant(seconds: base + Double(i)).description)]) + "}"
            }
            let first = try ws.run(["ingest", "-", "--format", "json"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(first.stdout.contains(#""unknown_pilot":10000"#), "\(first.stdout)")
            let late = """

              - id: resp-late-04
                name: Late COPD pilot
                programme: respiratory
                lead: Hopital Sud
                call: dhcdm-2026
                funders: [region-idf]
                start: 2026-01-05
                end: 2027-06-30
                enrolment_target: 50
                outcomes: [spo2]
            """
            let pilots = try String(contentsOfFile: ws.dir + "/pilots.yaml", encoding: .utf8)
            let serve = try ws.startServe(port: broker.port)
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            try (pilots + late).write(toFile: ws.dir + "/pilots.yaml", atomically: true, encoding: .utf8)

            let publisher = Thread {
                try? publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-r2/obs", lines: stream("q", count: 20_000))
            }
            publisher.start()
            try ws.waitFor("the stream to start") { $0.accepted > 500 }
            let replay = try ws.run(["rejects", "replay", "--format", "json", "--batch", "1000"])
            #expect(replay.status == 0, "\(replay.stderr)")
            #expect(replay.stderr.contains("handing the replay to `pilotwatch serve`"), "\(replay.stderr)")
            #expect(replay.stdout.contains(#""imported":10000"#), "\(replay.stdout)")
            #expect(serve.isRunning)
            while publisher.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
            try ws.waitFor("30,000 stored", timeout: 180) { $0.accepted >= 30_000 }
            Thread.sleep(forTimeInterval: 0.5)
            let s = try ws.stats()
            #expect(s.accepted == 30_000 && s.refused == 0 && s.observations == 30_000)
            #expect(serve.logText.contains("reloaded the registry"))
            #expect(try ws.run(["db", "check"]).status == 0)
        }
    }

    /// A backup taken while serve cannot apply (SQLite held by another process) holds every
    /// message acknowledged before it began; restored into a new folder it passes `db check`.
    @Test func aBackupHoldsWhatWasAcknowledgedAndRestores() throws {
        try withBrokerAndWorkspace(store: true) { broker, ws in
            let serve = try ws.startServe(port: broker.port)
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            let holder = try WriteLockHolder(database: ws.db)
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-b1/obs", lines: stream("b", count: 3000))
            let inbox = ws.db + ".inbox"
            let deadline = Date().addingTimeInterval(60)
            while InboxReport.check(directory: inbox, applied: nil).records < 3000 && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(try ws.stats().accepted == 0, "acknowledged, not yet applied")
            // More arrives while the backup runs.
            let publisher = Thread {
                try? publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-b2/obs", lines: stream("c", count: 5000))
            }
            publisher.start()
            let releaser = Thread {
                Thread.sleep(forTimeInterval: 2)
                holder.release()
            }
            releaser.start()
            let backupFile = ws.dir + "/backup.sqlite"
            let backup = try ws.run(["db", "backup", backupFile])
            #expect(backup.status == 0, "\(backup.stderr)")
            while publisher.isExecuting || releaser.isExecuting { Thread.sleep(forTimeInterval: 0.05) }

            let restored = NSTemporaryDirectory() + "pilotwatch-restore-" + UUID().uuidString.prefix(8).lowercased()
            try FileManager.default.createDirectory(atPath: restored, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: restored) }
            let target = restored + "/pilotwatch.sqlite"
            let restore = try ws.run(["db", "restore", backupFile, "--db", target])
            #expect(restore.status == 0, "\(restore.stderr)")
            var options = StoreOptions()
            options.readOnly = true
            let copy = try Store(path: target, options: options).stats()
            #expect(copy.accepted >= 3000, "every message acknowledged before the backup: \(copy.accepted)")
            #expect(copy.accepted <= 8000)
            let check = try ws.run(["db", "check", "--db", target])
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

            // Restoring over the live database is refused while serve writes it.
            let busy = try ws.run(["db", "restore", backupFile])
            #expect(busy.status == 75, "\(busy.stderr)")
            #expect(busy.stderr.contains("PID \(serve.pid)"), "\(busy.stderr)")
            try ws.waitFor("all 8000 in the live store", timeout: 120) { $0.accepted >= 8000 }
            let live = try ws.run(["db", "check"])
            #expect(live.status == 0, "\(live.stdout)")
            #expect(live.stdout.contains("inbox"), "db check reports the inbox: \(live.stdout)")
        #expect(live.stdout.contains("writer       `pilotwatch serve` (PID \(serve.pid)"), "and who writes: \(live.stdout)")
        }
    }

    /// Over the backlog limit serve stops taking batches but keeps its connection: with a
    /// 5-second keep-alive and SQLite held for 16 s (a catch-up longer than three keep-alives),
    /// the broker never drops it, and every message is stored once afterwards.
    @Test func aLongCatchUpKeepsTheBrokerConnection() throws {
        try withBrokerAndWorkspace() { broker, ws in
            try """
            broker: {host: 127.0.0.1, port: \(broker.port), client_id: pilotwatch-test, receive_maximum: 64, keepalive: 5}
            topic_root: pilots
            database: pilotwatch.sqlite
            registry: pilots.yaml
            catalogue: indicators.yaml
            """.write(toFile: ws.config, atomically: true, encoding: .utf8)
            #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)
            let serve = try ws.startServe(port: broker.port, extra: ["--max-backlog", "1"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            let holder = try WriteLockHolder(database: ws.db)
            // About 3 MiB: three times the backlog limit.
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-ka/obs", lines: stream("ka", count: 12_000))
            Thread.sleep(forTimeInterval: 16)
            let waiting = InboxReport.check(directory: ws.db + ".inbox", applied: nil).records
            #expect(try ws.stats().accepted == 0, "nothing applied while SQLite is held")
            #expect(waiting < 12_000, "serve stopped taking batches over the backlog limit: \(waiting) in the inbox")
            holder.release()
            try ws.waitFor("all 12,000 after the catch-up", timeout: 120) { $0.accepted >= 12_000 }
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try ws.stats().accepted == 12_000)
            let brokerLog = (try? String(contentsOfFile: broker.logPath, encoding: .utf8)) ?? ""
            #expect(!brokerLog.contains("exceeded timeout"), "the broker never dropped serve:\n\(brokerLog)")
            #expect(!serve.logText.contains("connection to") || !serve.logText.contains("lost"), "serve never lost its connection:\n\(serve.logText)")
            #expect(serve.logText.components(separatedBy: "MQTT connected").count == 2, "one connection only:\n\(serve.logText)")
        }
    }

    /// An inbox set aside because its database was deleted may hold messages never validated:
    /// the identifying ones are overwritten in it; the others stay for whoever looks into it.
    @Test func anInboxSetAsideKeepsNoIdentifyingBytes() throws {
        try withBrokerAndWorkspace(store: true) { broker, ws in
            let serve = try ws.startServe(port: broker.port)
            try serve.waitUntilSubscribed()
            let holder = try WriteLockHolder(database: ws.db)
            let at = isoNow(minutesAgo: 30)
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-o1/obs",
                        message: obsMessage("o-1", [obs("jean.dupont@example.fr", "spo2", 94, unit: "%", at: at)]))
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-o1/obs",
                        message: obsMessage("o-2", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)]))
            let deadline = Date().addingTimeInterval(30)
            while InboxReport.check(directory: ws.db + ".inbox", applied: nil).records < 2 && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            serve.kill9()
            holder.release()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ws.db + suffix) }

            let again = try ws.startServe(port: broker.port)
            defer { again.terminate() }
            try again.waitUntilSubscribed()
            #expect(again.logText.contains("(1 identifying messages in it overwritten)"), "\(again.logText)")
            #expect(try filesHolding(planted, under: ws.dir) == [])
            let aside = try #require(try FileManager.default.contentsOfDirectory(atPath: ws.dir).first { $0.contains(".inbox.orphan-") })
            #expect(try filesHolding(["p-7f3a9c21"], under: ws.dir + "/" + aside).count == 1, "the rest is left as it was")
        }
    }

    /// `db check` reads the inbox: a record whose checksum fails before others is damage, named
    /// with its file and byte; a healthy inbox is reported with its applied position.
    @Test func dbCheckFindsADamagedInboxRecord() throws {
        try withRunningServe { broker, ws, serve in
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-c1/obs", lines: stream("dc", count: 20))
            try ws.waitFor("20 stored") { $0.accepted >= 20 }
            #expect(serve.terminate() == 0)
            let healthy = try ws.run(["db", "check"])
            #expect(healthy.status == 0, "\(healthy.stdout)\(healthy.stderr)")
            #expect(healthy.stdout.contains("writer       none"), "\(healthy.stdout)")
            #expect(healthy.stdout.contains("20 records in 1 segment, applied up to segment 1 offset"), "\(healthy.stdout)")

            var reader = try Inbox(directory: ws.db + ".inbox").reader()
            let spans = try reader.readSpans(from: .start, maxRecords: 100, maxBytes: 1 << 20).spans
            reader.close()
            let segment = ws.db + ".inbox/00000000000000000001.log"
            let handle = try #require(FileHandle(forUpdatingAtPath: segment))
            try handle.seek(toOffset: UInt64(spans[5].offset + spans[5].length - 3))
            try handle.write(contentsOf: Data([0x5A]))
            try handle.close()
            let damaged = try ws.run(["db", "check"])
            #expect(damaged.status == 1)
            #expect(damaged.stdout.contains("inbox: \(segment) is damaged at byte \(spans[5].offset): a record checksum does not match"),
                    "\(damaged.stdout)")
        }
    }

    /// A line over 1 MiB is refused as too_large and kept as hash only (nothing in it is stored,
    /// it is never scanned whole); the lines after it are imported.
    @Test func anOverlongLineIsTooLargeAndKeptAsHashOnly() throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            let at = isoNow(minutesAgo: 30)
            let long = #"{"topic":"pilots/resp-copd-idf-01/d/obs","payload_text":""# + String(repeating: "x", count: 1_200_000)
                + #" jean.dupont@example.fr"}"#
            let good = #"{"topic":"pilots/resp-copd-idf-01/d/obs","payload":"# + obsMessage("g-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)]) + "}"
            let r = try ws.run(["ingest", "-", "--format", "json"], stdin: Data((long + "\n" + good + "\n").utf8))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains(#""too_large":1"#) && r.stdout.contains(#""accepted":1"#), "\(r.stdout)")
            #expect(try filesHolding(["jean.dupont", "xxxxxxxx"], under: ws.dir) == [])
        }
    }

    /// A hand-over cut short inside a line (the sending command killed): that line is not
    /// imported, the lines before it are, and serve goes on.
    @Test func aHandOverCutInsideALineImportsOnlyWholeLines() throws {
        try withRunningServe { _, ws, serve in
            let at = isoNow(minutesAgo: 30)
            let whole = #"{"topic":"pilots/resp-copd-idf-01/d/obs","payload":"# + obsMessage("h-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)]) + "}"
            let cut = #"{"topic":"pilots/resp-copd-idf-01/d/obs","payload":"# + obsMessage("h-2", [obs("p-7f3a9c21", "spo2", 95, unit: "%", at: at)])
            let reply = try rawRequest(ws.db + ".sock", #"{"op":"ingest","source":"cut","batch":10}"# + "\n" + whole + "\n" + cut)
            #expect(reply.contains(#""ok":false"#) && reply.contains("inside line 2"), "\(reply)")
            let s = try ws.waitFor("the whole line") { $0.accepted >= 1 }
            #expect(s.accepted == 1 && s.refused == 0, "the cut line is neither stored nor quarantined")
            #expect(serve.isRunning)
        }
    }

    /// A client that starts a hand-over and then stalls does not keep serve from stopping.
    @Test func aStalledHandOverDoesNotHoldServeAtItsStop() throws {
        try withRunningServe { _, ws, serve in
            let fd = try connectUnix(ws.db + ".sock")
            defer { close(fd) }
            let start = Array((#"{"op":"ingest","source":"stall"}"# + "\n" + #"{"topic":"#).utf8)
            _ = start.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            Thread.sleep(forTimeInterval: 0.5)
            let began = Date()
            #expect(serve.terminate(timeout: 20) == 0, "\(serve.logText)")
            #expect(Date().timeIntervalSince(began) < 20)
        }
    }
}

/// Connects to a Unix stream socket.
private func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard fd >= 0, rc == 0 else { throw TestFailure("cannot connect to \(path): \(String(cString: strerror(errno)))") }
    return fd
}

/// Sends `text` on serve's channel, ends the sending side, and returns the answer line.
private func rawRequest(_ path: String, _ text: String) throws -> String {
    let fd = try connectUnix(path)
    defer { close(fd) }
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    shutdown(fd, Int32(SHUT_WR))
    var answer = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer += buffer[..<n]
    }
    return String(decoding: answer, as: UTF8.self)
}

/// The views open with ingest health: running while serve beats, stopped (and since when) once
/// it stops, running again after a restart.
@Suite("Ingest health in the views", .serialized)
struct IngestHealthViewTests {
    private func ingest(_ ws: Workspace, _ args: [String]) throws -> [String: Any] {
        let r = try ws.run(args + ["--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        return try #require(object["ingest"] as? [String: Any], "\(r.stdout)")
    }

    @Test func statusPilotAndStatsSayWhenIngestStopped() throws {
        try withBrokerAndWorkspace { broker, ws in
            var serve = try ws.startServe(port: broker.port, extra: ["--heartbeat-every", "0.2"])
            try serve.waitUntilSubscribed()
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-h1/obs", lines: stream("hb", count: 5))
            try ws.waitFor("5 stored") { $0.accepted >= 5 }
            Thread.sleep(forTimeInterval: 0.5)
            for args in [["status"], ["pilot", "resp-copd-idf-01"], ["stats"]] {
                let health = try ingest(ws, args)
                #expect(health["state"] as? String == "running", "\(args): \(health)")
                #expect(health["broker_connected"] as? Bool == true)
                #expect(health["silence_may_be_ours"] as? Bool == false)
            }
            #expect(try ws.run(["status"]).stdout.hasPrefix("ingest: running since"))

            #expect(serve.terminate() == 0)
            for args in [["status"], ["pilot", "resp-copd-idf-01"], ["stats"]] {
                let health = try ingest(ws, args)
                #expect(health["state"] as? String == "stopped", "\(args): \(health)")
                #expect(health["since"] is String)
                #expect(health["silence_may_be_ours"] as? Bool == true)
            }
            let table = try ws.run(["status"]).stdout
            #expect(table.hasPrefix("INGEST STOPPED since") && table.contains("(serve stopped)"), "\(table)")
            // A view of the past says nothing of ingest: a heartbeat is about now.
            let past = try ws.run(["status", "--as-of", "2026-06-01", "--format", "json"]).stdout
            #expect(!past.contains("\"ingest\""))

            serve = try ws.startServe(port: broker.port, extra: ["--heartbeat-every", "0.2"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try ingest(ws, ["status"])["state"] as? String == "running", "the line clears after a restart")
        }
    }
}

@Suite("A topic root of several levels, over a real broker")
struct MultiLevelRootBrokerTests {
    /// `topic_root: region-idf/pilots` (which `config check` accepts): serve subscribes under it
    /// and stores what is published there.
    @Test func serveStoresWhatIsPublishedUnderIt() throws {
        try withBrokerAndWorkspace { broker, ws in
            try """
            broker: {host: 127.0.0.1, port: \(broker.port), client_id: pilotwatch-test}
            topic_root: region-idf/pilots
            database: pilotwatch.sqlite
            registry: pilots.yaml
            catalogue: indicators.yaml
            """.write(toFile: ws.config, atomically: true, encoding: .utf8)
            #expect(try ws.run(["config", "check"]).status == 0)
            let serve = try ws.startServe(port: broker.port)
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            try publish(port: broker.port, topic: "region-idf/pilots/resp-copd-idf-01/dev-r1/obs", lines: stream("mr", count: 20))
            try ws.waitFor("20 stored") { $0.accepted >= 20 }
            Thread.sleep(forTimeInterval: 0.3)
            #expect(try ws.stats().refused == 0)
        }
    }
}

@Suite("NDJSON lines that are JSON but not objects")
struct NDJSONShapeTests {
    /// As for a payload: valid JSON of another shape is `schema`, bytes that are not JSON are
    /// `malformed_json`.
    @Test func anArrayOrANumberIsSchemaBrokenBytesAreMalformed() throws {
        try withBrokerAndWorkspace(store: true) { _, ws in
            let r = try ws.run(["ingest", "-", "--format", "json"], stdin: Data("[1, 2]\n42\n{\"topic\": \n".utf8))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains(#""refused_by_reason":{"malformed_json":1,"schema":2}"#), "\(r.stdout)")
        }
    }
}

/// A serve that dies without a word: once the configured bound has passed with no heartbeat,
/// the views and `alerts` say ingest stopped; a restart clears it.
@Suite("Ingest health after a crash", .serialized)
struct IngestCrashHealthTests {
    @Test func aKilledServeIsCalledStoppedAfterTheBoundAndARestartClearsIt() throws {
        try withBrokerAndWorkspace { broker, ws in
            try (try String(contentsOfFile: ws.config, encoding: .utf8) + "\nalerts: {ingest_stale_seconds: 10}\n")
                .write(toFile: ws.config, atomically: true, encoding: .utf8)
            var serve = try ws.startServe(port: broker.port, extra: ["--heartbeat-every", "0.5"])
            try serve.waitUntilSubscribed()
            Thread.sleep(forTimeInterval: 1)
            #expect(try ws.run(["status"]).stdout.hasPrefix("ingest: running since"))
            serve.kill9()
            // Within the bound it may still be running (a beat is at most 10 s old) ...
            let early = try ws.run(["status", "--format", "json"]).stdout
            #expect(early.contains("\"state\":\"running\""), "\(early)")
            // ... past it, every view says stopped, and since when.
            Thread.sleep(forTimeInterval: 11)
            let table = try ws.run(["status"]).stdout
            #expect(table.hasPrefix("INGEST STOPPED since") && table.contains("no heartbeat from serve"), "\(table)")
            let json = try ws.run(["status", "--format", "json"]).stdout
            #expect(json.contains("\"state\":\"stopped\"") && json.contains("\"silence_may_be_ours\":true"), "\(json)")
            let alerts = try ws.run(["alerts", "--format", "json"])
            #expect(alerts.status == 0, "\(alerts.stderr)")
            #expect(alerts.stdout.contains("\"rule\": \"ingest_stopped\"") && alerts.stdout.contains("\"source\": \"heartbeat\""),
                    "\(alerts.stdout)")

            serve = try ws.startServe(port: broker.port, extra: ["--heartbeat-every", "0.5"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            Thread.sleep(forTimeInterval: 1)
            #expect(try ws.run(["status"]).stdout.hasPrefix("ingest: running since"), "the line clears after a restart")
            #expect(!(try ws.run(["alerts", "--format", "json"]).stdout.contains("ingest_stopped")))
        }
    }
}
