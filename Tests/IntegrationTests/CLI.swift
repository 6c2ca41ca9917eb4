import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

/// The package root (for the shipped configuration).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Finds the `pilotwatch` binary built beside the test bundle (or `PILOTWATCH_BIN`).
func pilotwatchBinary() throws -> String {
    if let env = ProcessInfo.processInfo.environment["PILOTWATCH_BIN"] { return env }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("pilotwatch").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    throw TestFailure("pilotwatch binary not found beside \(CommandLine.arguments[0]); build it first or set PILOTWATCH_BIN")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The result of one CLI run.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A scratch folder with a configuration for one test: pilots, the shipped catalogue, a database path.
struct Workspace {
    let dir: String
    var config: String { dir + "/pilotwatch.yaml" }
    var db: String { dir + "/pilotwatch.sqlite" }

    static let defaultPilots = """
    pilots:
      - id: resp-copd-idf-01
        name: Telemonitoring of COPD after discharge
        programme: respiratory
        lead: Hopital Nord + BreathCo
        call: dhcdm-2026
        funders: [feder-idf, horizon-europe]
        start: 2026-01-05
        end: 2027-06-30
        enrolment_target: 120
        milestones: [{date: 2026-06-30, enrolled: 60}]
        outcomes: [spo2, cat_score, exacerbation]
      - id: diab-cgm-idf-02
        name: CGM coaching
        programme: diabetes
        lead: CHU Est + GlucoNet
        call: dhcdm-2026
        funders: [feder-idf]
        start: 2026-02-01
        end: 2027-07-31
        enrolment_target: 200
        outcomes: [hba1c, cgm_tir]
      - id: card-hf-idf-03
        name: Heart-failure telemonitoring
        programme: cardiac
        lead: Clinique Saint-Louis + CardioLink
        call: dhcdm-2026
        funders: [region-idf]
        start: 2026-03-01
        end: 2027-08-31
        enrolment_target: 150
        outcomes: [weight, hospitalisation]
    """

    init(port: Int = 1883, pilots: String = Workspace.defaultPilots, clientID: String = "pilotwatch-test") throws {
        dir = NSTemporaryDirectory() + "pilotwatch-it-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let catalogue = try String(contentsOf: packageRoot.appendingPathComponent("config/indicators.yaml"), encoding: .utf8)
        try catalogue.write(toFile: dir + "/indicators.yaml", atomically: true, encoding: .utf8)
        try pilots.write(toFile: dir + "/pilots.yaml", atomically: true, encoding: .utf8)
        try writeService(port: port, clientID: clientID)
    }

    func writeService(port: Int, clientID: String = "pilotwatch-test") throws {
        let yaml = """
        broker: {host: 127.0.0.1, port: \(port), client_id: \(clientID), receive_maximum: 256}
        topic_root: pilots
        database: pilotwatch.sqlite
        registry: pilots.yaml
        catalogue: indicators.yaml
        """
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// Runs `pilotwatch ARGS --config <this workspace>` and waits for it; `environment` is set
    /// on the child on top of this process's (without `PILOTWATCH_DB` and `PILOTWATCH_CONFIG`).
    func run(_ args: [String], stdin: Data? = nil, addConfig: Bool = true, environment: [String: String] = [:]) throws -> CLIResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try pilotwatchBinary())
        p.arguments = args + (addConfig ? ["--config", config] : [])
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "PILOTWATCH_DB")
        env.removeValue(forKey: "PILOTWATCH_CONFIG")
        env.merge(environment) { _, given in given }
        p.environment = env
        let inPipe = Pipe()
        if stdin != nil { p.standardInput = inPipe }
        try p.run()
        if let stdin {
            inPipe.fileHandleForWriting.write(stdin)
            try inPipe.fileHandleForWriting.close()
        }
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Starts `pilotwatch serve` in the background; its log goes to `log`.
    func startServe(port: Int, extra: [String] = [], environment: [String: String] = [:]) throws -> ServeProcess {
        try ServeProcess(binary: try pilotwatchBinary(), args: ["serve", "--config", config, "--port", String(port)] + extra,
                         log: dir + "/serve-\(UUID().uuidString.prefix(6)).log", environment: environment)
    }

    /// Opens the store read-only to check what was stored.
    func stats() throws -> StoreStats {
        var options = StoreOptions()
        options.readOnly = true
        return try Store(path: db, options: options).stats()
    }

    /// Waits until `done(stats)` holds, or throws after `timeout` seconds with the last stats.
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 60, _ done: (StoreStats) -> Bool) throws -> StoreStats {
        let deadline = Date().addingTimeInterval(timeout)
        var last: StoreStats?
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: db), let s = try? stats() {
                last = s
                if done(s) { return s }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestFailure("timed out waiting for \(what); last stats: \(String(describing: last))")
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

/// A running `pilotwatch serve`, started with a clean signal mask so SIGTERM reaches it.
final class ServeProcess {
    let pid: pid_t
    let log: String
    private var exitStatus: Int32?

    init(binary: String, args: [String], log: String, environment: [String: String] = [:]) throws {
        self.log = log
        pid = try spawnWithCleanSignals(binary, args, outputPath: log, environment: environment)
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    var isRunning: Bool { poll() == nil }

    /// The exit status once the process has ended (nil while it runs).
    private func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    /// Waits until the log shows the subscriptions (the service is ready to receive).
    func waitUntilSubscribed(timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logText.contains("MQTT subscribed") { return }
            if let code = poll() { throw TestFailure("serve exited early (\(code)):\n\(logText)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("serve did not subscribe within \(timeout)s:\n\(logText)")
    }

    /// SIGTERM, then wait; returns the exit status.
    @discardableResult
    func terminate(timeout: Double = 30) -> Int32 {
        if let code = poll() { return code }
        kill(pid, SIGTERM)
        return waitExit(timeout: timeout)
    }

    /// SIGKILL: no chance to finish anything.
    func kill9() {
        guard poll() == nil else { return }
        kill(pid, SIGKILL)
        _ = waitExit(timeout: 10)
    }

    func waitExit(timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let code = poll() { return code }
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(pid, SIGKILL)
        while poll() == nil { Thread.sleep(forTimeInterval: 0.01) }
        return poll() ?? -1
    }

    deinit { if poll() == nil { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) } }
}

/// Publishes with `mosquitto_pub`: one message, or every line of `lines` as a message (`-l`).
func publish(port: Int, topic: String, message: String? = nil, lines: [String]? = nil, file: String? = nil, qos: Int = 1) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_pub")
    var args = ["-h", "127.0.0.1", "-p", String(port), "-q", String(qos), "-t", topic, "-i", "pub-" + UUID().uuidString.prefix(8)]
    let input = Pipe()
    var tempFile: String?
    defer { if let tempFile { try? FileManager.default.removeItem(atPath: tempFile) } }
    if let message, message.utf8.count > 64 * 1024 {
        // Large payloads go through a file: one argument may not exceed the kernel's limit.
        let path = NSTemporaryDirectory() + "pw-msg-" + UUID().uuidString
        try Data(message.utf8).write(to: URL(fileURLWithPath: path))
        tempFile = path
        args += ["-f", path]
    } else if let message { args += ["-m", message] }
    else if let file { args += ["-f", file] }
    else { args += ["-l"]; p.standardInput = input }
    p.arguments = args
    let err = Pipe()
    p.standardError = err
    try p.run()
    if let lines {
        input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
    }
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw TestFailure("mosquitto_pub failed (\(p.terminationStatus)): \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
    }
}

/// An RFC 3339 UTC time `minutesAgo` before now.
func isoNow(minutesAgo: Double = 0) -> String {
    Instant(seconds: Date().timeIntervalSince1970 - minutesAgo * 60).description
}

/// One observation message as JSON text.
func obsMessage(_ msgID: String, _ observations: [String]) -> String {
    "{\"msg_id\":\"\(msgID)\",\"observations\":[\(observations.joined(separator: ","))]}"
}

func obs(_ subject: String, _ indicator: String, _ value: Double? = nil, unit: String? = nil, at: String) -> String {
    var parts = ["\"subject\":\"\(subject)\"", "\"indicator\":\"\(indicator)\""]
    if let value { parts.append("\"value\":\(formatNumber(value))") }
    if let unit { parts.append("\"unit\":\"\(unit)\"") }
    parts.append("\"at\":\"\(at)\"")
    return "{" + parts.joined(separator: ",") + "}"
}

/// Runs `body` with a fresh broker and a workspace configured for it (with its store made, when
/// `store`); stops and removes both afterwards.
func withBrokerAndWorkspace(store: Bool = false, _ body: (TestBroker, Workspace) throws -> Void) throws {
    let broker = try TestBroker.start()
    defer { broker.stop() }
    let ws = try Workspace(port: broker.port)
    defer { ws.remove() }
    if store {
        let made = try ws.run(["ingest", "-"], stdin: Data())
        guard made.status == 0 else { throw TestFailure("cannot make the store: \(made.stderr)") }
    }
    try body(broker, ws)
}

/// Runs `body` with a fresh broker, a workspace configured for it and a subscribed `serve`;
/// stops and removes all three afterwards.
func withRunningServe(_ body: (TestBroker, Workspace, ServeProcess) throws -> Void) throws {
    let broker = try TestBroker.start()
    defer { broker.stop() }
    let ws = try Workspace(port: broker.port)
    defer { ws.remove() }
    let serve = try ws.startServe(port: broker.port)
    defer { serve.terminate() }
    try serve.waitUntilSubscribed()
    try body(broker, ws, serve)
}

/// Every file under `folder` (recursively) whose bytes contain one of `needles`, with the needle.
func filesHolding(_ needles: [String], under folder: String) throws -> [String] {
    var found: [String] = []
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let name = enumerator?.nextObject() as? String {
        let path = folder + "/" + name
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue,
              !name.hasSuffix(".log") || path.contains(".inbox"),  // serve's own log files are not the store's
              let data = FileManager.default.contents(atPath: path) else { continue }
        for needle in needles where data.range(of: Data(needle.utf8)) != nil { found.append("\(name): \(needle)") }
    }
    return found
}
