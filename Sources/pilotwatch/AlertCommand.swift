import Dispatch
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
    func run(environment extra: [String: String], limit: Double? = nil, shouldStop: () -> Bool = { false }) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do {
            try process.run()
        } catch {
            return .failed("\(argv[0]) could not be started: \(error.localizedDescription)")
        }
        let allowed = min(timeout, limit ?? timeout)
        let deadline = DispatchTime.now() + allowed
        var finished = false
        var interrupted = false
        while !finished {
            finished = done.wait(timeout: min(deadline, .now() + 0.1)) == .success
            if finished || DispatchTime.now() >= deadline { break }
            if shouldStop() { interrupted = true; break }
        }
        if !finished {
            process.terminate()
            if done.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                done.wait()
            }
            return .failed(interrupted ? "\(argv[0]) was stopped because serve is stopping"
                                       : "\(argv[0]) did not finish within \(Self.seconds(allowed)) s and was stopped")
        }
        switch (process.terminationReason, process.terminationStatus) {
        case (.exit, 0): return .succeeded
        case (.exit, let status): return .failed("\(argv[0]) exited with status \(status)")
        case (_, let signal): return .failed("\(argv[0]) was killed by signal \(signal)")
        }
    }

    private static func seconds(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(v)
    }
}
