import Foundation
import PilotwatchCore
import PilotwatchStore

#if canImport(Glibc)
import Glibc
#endif

/// Runs `alerts.command` for one transition: the program and its arguments as configured (no
/// shell), the alert in `PILOTWATCH_ALERT_*` environment variables, standard input empty,
/// standard output discarded and standard error into serve's own (so the journal keeps what the
/// command said). A command still running after `timeout` seconds is stopped (SIGTERM, then
/// SIGKILL two seconds later) and counts as failed.
struct AlertCommand: Sendable {
    var argv: [String]
    var timeout: Double

    enum Outcome: Equatable {
        case succeeded
        case failed(String)
    }

    /// The environment variables of one transition.
    static func environment(for alert: AlertRecord, topic: String) -> [String: String] {
        var env: [String: String] = [
            "PILOTWATCH_ALERT_ID": String(alert.id),
            "PILOTWATCH_ALERT_RULE": alert.rule.rawValue,
            "PILOTWATCH_ALERT_TARGET": alert.target,
            "PILOTWATCH_ALERT_STATE": alert.clearedAt == nil ? "raised" : "cleared",
            "PILOTWATCH_ALERT_RAISED_AT": alert.raisedAt.description,
            "PILOTWATCH_ALERT_MESSAGE": alert.clearedAt == nil ? alert.raisedMessage : alert.message,
            "PILOTWATCH_ALERT_VALUES": String(decoding: JSON.encode(.object(alert.clearedAt == nil ? alert.raisedValues : alert.values)), as: UTF8.self),
            "PILOTWATCH_ALERT_TOPIC": topic,
        ]
        if let cleared = alert.clearedAt { env["PILOTWATCH_ALERT_CLEARED_AT"] = cleared.description }
        return env
    }

    /// Runs the command with `extra` added to serve's environment; waits for it at most
    /// `timeout` seconds (`limit` when lower), and stops it early once `shouldStop` says so
    /// (serve is stopping).
    ///
    /// posix_spawn, not Foundation's Process: the child starts with no signal blocked (serve
    /// blocks SIGTERM and SIGINT for its own handling, and a child would inherit that) and in a
    /// process group of its own, so that stopping it (SIGTERM, then SIGKILL two seconds later)
    /// reaches whatever it started too.
    func run(environment extra: [String: String], limit: Double? = nil, shouldStop: () -> Bool = { false }) -> Outcome {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)

        let args: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in args { free(p) } }
        // serve's environment without what is serve's alone (systemd's notify socket and watchdog)
        // or left over from another alert.
        let environment = ProcessInfo.processInfo.environment
            .filter { key, _ in !key.hasPrefix("PILOTWATCH_ALERT_") && !key.hasPrefix("WATCHDOG_") && key != "NOTIFY_SOCKET" }
            .merging(extra) { _, new in new }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, args, envp)
        guard rc == 0 else { return .failed("\(argv[0]) could not be started: \(String(cString: strerror(rc)))") }

        let allowed = min(timeout, limit ?? timeout)
        let deadline = ContinuousClock.now + .milliseconds(Int64(allowed * 1000))
        var status: Int32 = 0
        var interrupted = false
        while true {
            if waitpid(pid, &status, WNOHANG) == pid { return Self.outcome(argv[0], status) }
            if ContinuousClock.now >= deadline { break }
            if shouldStop() { interrupted = true; break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(-pid, SIGTERM)
        let grace = ContinuousClock.now + .seconds(2)
        var reaped = false
        while ContinuousClock.now < grace {
            if waitpid(pid, &status, WNOHANG) == pid { reaped = true; break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(-pid, SIGKILL)
        if !reaped { _ = waitpid(pid, &status, 0) }
        return .failed(interrupted ? "\(argv[0]) was stopped because serve is stopping"
                                   : "\(argv[0]) did not finish within \(Self.seconds(allowed)) s and was stopped")
    }

    private static func outcome(_ program: String, _ status: Int32) -> Outcome {
        let signal = status & 0x7f
        if signal != 0 { return .failed("\(program) was killed by signal \(signal)") }
        let code = (status >> 8) & 0xff
        return code == 0 ? .succeeded : .failed("\(program) exited with status \(code)")
    }

    private static func seconds(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(v)
    }
}
