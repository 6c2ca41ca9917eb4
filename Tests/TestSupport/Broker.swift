// A real mosquitto broker for tests, on a free loopback port, in its own temporary directory.
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a test broker could not be started.
public struct TestBrokerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A mosquitto broker process for one test.
///
/// ```swift
/// let broker = try TestBroker.start(persistence: true)
/// // connect to broker.host:broker.port
/// try broker.restart()   // same port, same persistence directory
/// ```
// @unchecked Sendable: `host`, `port`, `directory`, `configPath` and `logPath` are immutable;
// `ownsDirectory` is only written in `start` before the instance is returned; `pid` and
// `exitDescription` are only read and written with `lock` held.
public final class TestBroker: @unchecked Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The broker's own temporary directory (config, log, persistence database).
    public let directory: String
    public let configPath: String
    public let logPath: String
    private let lock = NSLock()
    private var pid: pid_t?
    private var exitDescription = "still running"
    /// Whether `deinit` removes `directory` (true when `start` made it). Only changed in `start`,
    /// before the broker is shared.
    private var ownsDirectory: Bool

    /// Starts `mosquitto` on a free loopback port and waits until it accepts connections.
    ///
    /// - Parameters:
    ///   - extraConfig: lines appended to the generated mosquitto.conf (they apply to the listener).
    ///   - persistence: keep sessions and queued messages in a database across `restart()`.
    ///   - dataDir: where to put config, log and database; a fresh temporary directory by default.
    public static func start(extraConfig: String = "", persistence: Bool = false, dataDir: String? = nil) throws -> TestBroker {
        let ownsDirectory = dataDir == nil
        let directory = try dataDir ?? makeTemporaryDirectory(prefix: "pilotwatch-broker")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastError: Error = TestBrokerError("no attempt made")
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            let broker = try TestBroker(
                port: port, directory: directory, ownsDirectory: ownsDirectory,
                extraConfig: extraConfig, persistence: persistence)
            do {
                try broker.launch()
                return broker
            } catch {
                // Most likely someone took the port between our probe and the broker's bind.
                lastError = error
                broker.stop()
                broker.ownsDirectory = false  // the next attempt reuses it
            }
        }
        throw lastError
    }

    private init(port: Int, directory: String, ownsDirectory: Bool, extraConfig: String, persistence: Bool) throws {
        self.port = port
        self.directory = directory
        self.ownsDirectory = ownsDirectory
        configPath = directory + "/mosquitto.conf"
        logPath = directory + "/mosquitto.log"
        var lines = [
            "listener \(port) 127.0.0.1",
            "allow_anonymous true",
            "max_inflight_messages 1000",
            "max_queued_messages 1000000",
            "log_dest file \(logPath)",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        // Running as root, mosquitto would switch to the "mosquitto" user, which cannot write here.
        if geteuid() == 0 { lines.append("user root") }
        if persistence {
            lines += [
                "persistence true",
                "persistence_location \(directory)/",
                "persistence_file mosquitto.db",
                "autosave_interval 1",
            ]
        } else {
            lines.append("persistence false")
        }
        if !extraConfig.isEmpty { lines.append(extraConfig) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        stop()
        if ownsDirectory {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// The path of the mosquitto executable: from PATH, else /usr/sbin/mosquitto.
    public static func brokerExecutable() -> String {
        findExecutable("mosquitto", fallbacks: ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"])
    }

    private func launch() throws {
        let pid = try spawnWithCleanSignals(
            Self.brokerExecutable(), ["-c", configPath], outputPath: directory + "/mosquitto.stderr")
        lock.withLock { self.pid = pid }
        let deadline = Date(timeIntervalSinceNow: 15)
        while Date() < deadline {
            if !isRunning {
                throw TestBrokerError(
                    "mosquitto exited (\(lock.withLock { exitDescription })) before accepting connections on port \(port).\n"
                        + logTail())
            }
            if canConnect(port: port) { return }
            usleep(20_000)
        }
        throw TestBrokerError("mosquitto did not accept connections on port \(port) within 15 s.\n" + logTail())
    }

    /// The last lines of the broker's log and stderr, for failure messages.
    public func logTail(lines count: Int = 30) -> String {
        var parts: [String] = []
        for path in [logPath, directory + "/mosquitto.stderr"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty {
                let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count)
                parts.append("--- \(path) ---\n" + tail.joined(separator: "\n"))
            }
        }
        return parts.isEmpty ? "(the broker wrote no log)" : parts.joined(separator: "\n")
    }

    /// The broker's whole log so far.
    public func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// True while the broker process runs.
    public var isRunning: Bool {
        lock.withLock { reapIfExited() }
    }

    /// SIGTERM, then waits (up to 10 s, then SIGKILL). A persistent broker saves its database.
    public func stop() {
        terminate(signal: SIGTERM)
    }

    /// SIGKILL: the broker dies without saving anything since its last autosave.
    public func kill() {
        terminate(signal: SIGKILL)
    }

    /// Starts the broker again on the same port with the same configuration and persistence directory.
    public func restart() throws {
        stop()
        try launch()
    }

    private func terminate(signal: Int32) {
        lock.withLock {
            guard reapIfExited(), let pid else { return }
            _ = Glibc.kill(pid, signal)
            if !waitForExit(seconds: 10) {
                _ = Glibc.kill(pid, SIGKILL)
                _ = waitForExit(seconds: 10)
            }
        }
    }

    /// With `lock` held: true while the child runs; reaps it once it has exited.
    private func reapIfExited() -> Bool {
        guard let pid else { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return true }
        if result == pid {
            let signalled = status & 0x7f
            exitDescription = signalled == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(signalled)"
        }
        self.pid = nil
        return false
    }

    /// With `lock` held.
    private func waitForExit(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while reapIfExited() {
            if Date() >= deadline { return false }
            usleep(5_000)
        }
        return true
    }
}

/// Starts `path` with stdin from /dev/null and stdout (and stderr, unless `errorPath` is given)
/// appended to `outputPath`, with an empty signal mask and default dispositions for the usual
/// signals; returns the child's pid (reap it with `waitpid`).
///
/// Use it for any child a test means to stop with SIGTERM or SIGINT: the test runner's threads
/// block most signals and `Foundation.Process` passes that mask on, so such a child never sees
/// the signal (mosquitto, for one, ignored SIGTERM until killed).
public func spawnWithCleanSignals(
    _ path: String, _ arguments: [String], outputPath: String, errorPath: String? = nil,
    environment extra: [String: String] = [:]
) throws -> pid_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    if let errorPath {
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    } else {
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in envp { free(pointer) } }
    var pid = pid_t()
    let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard rc == 0 else {
        throw TestBrokerError("could not start \(path): \(String(cString: strerror(rc)))")
    }
    return pid
}

// MARK: - Helpers

/// Creates a fresh directory under the system's temporary directory and returns its path.
public func temporaryDirectory(prefix: String = "pilotwatch-test") -> String {
    (try? makeTemporaryDirectory(prefix: prefix))
        ?? (NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString)")
}

private func makeTemporaryDirectory(prefix: String) throws -> String {
    let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
    let path = base + "\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// What a finished process left: exit status and both output streams.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let output: String
    public let errorOutput: String
}

/// Runs an executable to completion, capturing stdout and stderr (through files, so large
/// outputs cannot fill a pipe and stall the child). Killed after `timeout` seconds.
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String], timeout: Double = 60) throws -> ProcessResult {
    let scratch = try makeTemporaryDirectory(prefix: "pilotwatch-process")
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let outPath = scratch + "/stdout", errPath = scratch + "/stderr"
    let pid = try spawnWithCleanSignals(executable, arguments, outputPath: outPath, errorPath: errPath)
    let deadline = Date(timeIntervalSinceNow: timeout)
    var status: Int32 = 0
    while true {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { break }
        if result < 0 && errno != EINTR {
            throw TestBrokerError("waitpid for \(executable) failed: \(String(cString: strerror(errno)))")
        }
        if Date() >= deadline {
            _ = kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw TestBrokerError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        usleep(2_000)
    }
    let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let errorOutput = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return ProcessResult(status: exitStatus, output: output, errorOutput: errorOutput)
}

/// Publishes with the `mosquitto_pub` command-line client; throws if it exits non-zero.
///
/// - Parameters:
///   - message: the payload as text (`-m`), or
///   - file: a file whose bytes are the payload (`-f`, binary-safe).
///   - extra: further arguments, e.g. `["-V", "mqttv5"]`.
public func mosquittoPub(
    broker: TestBroker, topic: String, message: String? = nil, file: String? = nil,
    qos: Int = 1, retain: Bool = false, extra: [String] = []
) throws {
    var arguments = ["-h", broker.host, "-p", String(broker.port), "-t", topic, "-q", String(qos)]
    if let message { arguments += ["-m", message] }
    if let file { arguments += ["-f", file] }
    if message == nil && file == nil { arguments += ["-n"] }
    if retain { arguments.append("-r") }
    arguments += extra
    let result = try runProcess(findExecutable("mosquitto_pub", fallbacks: ["/usr/bin/mosquitto_pub"]), arguments)
    guard result.status == 0 else {
        throw TestBrokerError("mosquitto_pub exited with \(result.status): \(result.errorOutput)")
    }
}

/// Subscribes with `mosquitto_sub` until `count` messages arrived (or `timeout` seconds passed)
/// and returns their payloads, one per line.
public func mosquittoSub(broker: TestBroker, topic: String, count: Int, timeout: Int = 10) throws -> [String] {
    let arguments = [
        "-h", broker.host, "-p", String(broker.port), "-t", topic, "-q", "1",
        "-C", String(count), "-W", String(timeout),
    ]
    let result = try runProcess(
        findExecutable("mosquitto_sub", fallbacks: ["/usr/bin/mosquitto_sub"]), arguments,
        timeout: Double(timeout) + 10)
    return result.output.split(separator: "\n").map(String.init)
}

private func findExecutable(_ name: String, fallbacks: [String]) -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    for candidate in fallbacks where access(candidate, X_OK) == 0 {
        return candidate
    }
    return fallbacks.first ?? name
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestBrokerError("socket() failed: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw TestBrokerError("bind() failed: \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestBrokerError("getsockname() failed: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// True if a TCP connection to 127.0.0.1:`port` succeeds right now.
public func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = loopbackAddress(port: port)
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return result == 0
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}
