import Dispatch
import Logging
import Foundation
import PilotwatchCore
#if canImport(Glibc)
import Glibc
#endif

extension Instant {
    /// The current time.
    static var now: Instant { Instant(seconds: Date().timeIntervalSince1970) }
}

/// A lock around a value, for state shared between the network thread and timers.
final class Mutex<Value>: @unchecked Sendable {
    // Safe: `value` is only read or written inside `withLock`, under `lock`.
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Turns SIGTERM/SIGINT into a call on a dispatch queue instead of killing the process.
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        // A parent may have started us with these signals blocked (they are inherited through
        // exec); unblock them, or SIGTERM would never reach the dispatch source.
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let queue = DispatchQueue(label: "pilotwatch.signals")
        sources = signals.map { sig in
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            src.setEventHandler { handler(sig) }
            src.resume()
            return src
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

/// Log lines go to stderr; the bootstrap runs once, on first use.
private let loggingBootstrap: Void = LoggingSystem.bootstrap { label in
    StreamLogHandler.standardError(label: label)
}

/// A logger for a command, at `level`.
func makeLogger(_ label: String, level: Logger.Level = .info) -> Logger {
    _ = loggingBootstrap
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}
