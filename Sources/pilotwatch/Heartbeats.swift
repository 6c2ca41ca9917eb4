import Dispatch
import Foundation
import Logging
import PilotwatchCore
import PilotwatchStore

#if canImport(Glibc)
import Glibc
#endif

/// `serve`'s heartbeat: every few seconds it records in the store that it runs, whether the
/// broker is connected and since when, its last message, the inbox backlog and how long the
/// inbox has held messages not yet in SQLite; at a clean stop, that it stopped. The views read it
/// (``IngestHealth``) so that our outage is never shown as the pilots' silence.
///
/// It writes on a queue of its own: a busy database delays a beat, never ingest.
// @unchecked Sendable: every property is immutable; `state` is a lock; `timer` (a dispatch
// source, thread-safe, not marked Sendable) is configured in `start` and cancelled in `stop`, both
// called from serve's main thread, and otherwise only fires its handler on its own queue.
final class Heartbeats: @unchecked Sendable {
    private struct State {
        var connected = false
        var connectionSince: Instant
        var lastMessageAt: Instant?
        var caughtUpAt: Instant
        var failures = 0
    }

    private let store: Store
    private let startedAt: Instant
    private let logger: Logger
    private let backlog: @Sendable () -> Int64
    private let state: Mutex<State>
    private let queue = DispatchQueue(label: "pilotwatch.heartbeat")
    private let timer: any DispatchSourceTimer

    init(store: Store, startedAt: Instant, logger: Logger, backlog: @escaping @Sendable () -> Int64) {
        self.store = store
        self.startedAt = startedAt
        self.logger = logger
        self.backlog = backlog
        state = Mutex(State(connectionSince: startedAt, caughtUpAt: startedAt))
        timer = DispatchSource.makeTimerSource(queue: queue)
    }

    /// Records a beat now, then every `seconds`.
    func start(every seconds: Double) {
        timer.schedule(deadline: .now(), repeating: seconds)
        timer.setEventHandler { [self] in beat(stopped: false) }
        timer.resume()
    }

    /// The broker connection changed.
    func connection(_ connected: Bool) {
        state.withLock { s in
            if s.connected != connected { s.connected = connected; s.connectionSince = .now }
        }
    }

    /// A batch arrived.
    func received(at: Instant) {
        state.withLock { $0.lastMessageAt = at }
    }

    /// Stops beating and records the clean stop (after any beat in progress: on the same queue).
    func stop() {
        timer.cancel()
        queue.sync { beat(stopped: true) }
    }

    private func beat(stopped: Bool) {
        let now = Instant.now
        let bytes = backlog()
        let s = state.withLock { s -> State in
            if bytes == 0 { s.caughtUpAt = now }
            return s
        }
        let heartbeat = ServiceHeartbeat(pid: getpid(), startedAt: startedAt, beatAt: now, brokerConnected: s.connected,
                                         connectionSince: s.connectionSince, lastMessageAt: s.lastMessageAt,
                                         backlogBytes: bytes, applyLagMillis: bytes == 0 ? 0 : now.millis - s.caughtUpAt.millis,
                                         stoppedAt: stopped ? now : nil)
        do {
            try store.recordHeartbeat(heartbeat)
            state.withLock { $0.failures = 0 }
        } catch {
            // Said once per run of failures: a held database would otherwise fill the log.
            if state.withLock({ s in defer { s.failures += 1 }; return s.failures == 0 }) {
                logger.warning("cannot record the heartbeat (the views will call ingest stopped if this lasts): \(error)")
            }
        }
    }
}
