import Foundation
import PilotwatchCore

/// Moves an ``Inbox``'s records into a ``Store`` on a thread of its own, a batch per transaction,
/// recording in each transaction how far it got.
///
/// `pilotwatch serve` appends what the broker delivers to the inbox, acknowledges it, and wakes
/// the applier; at start the applier first catches up with whatever the inbox holds past the
/// store's recorded position (messages acknowledged before a crash or a stop).
///
/// ```swift
/// let applier = InboxApplier(inbox: inbox, store: store, from: try store.inboxPosition(),
///                            makeItem: { r in validate(r) }, onApplied: { outcomes in log(outcomes) })
/// applier.start()
/// try inbox.append(records); applier.wake()
/// if let error = applier.finish() { ... }  // everything appended is in SQLite, or the error says why not
/// ```
///
/// While a burst is arriving (``wake()`` called again within ``ApplyPolicy/quiet``), the applier
/// waits, so that receiving and acknowledging have the machine to themselves; it catches up once
/// the burst is over, or earlier when it has been waiting for ``ApplyPolicy/maxDelay`` (since the
/// first record after it last caught up) or ``ApplyPolicy/maxDeferredBytes`` are waiting. Once
/// a bound has made it start, it goes on until it has caught up. What the inbox held when
/// ``start()`` was called (acknowledged before a restart) is applied at once. Measured on the
/// ingest benchmark (2 cores, publisher, broker and serve on the same machine): with SQLite work
/// running alongside, the publisher's rate through the broker fell by a quarter even at the
/// lowest scheduling priority (`SCHED_IDLE`), and deferring it raised the acknowledged rate by
/// as much, with the same time until everything is in SQLite.
// @unchecked Sendable: `inbox`, `store` and the closures are immutable and thread-safe (Store and
// Inbox document their own rules: the applier thread is the inbox's only reader and only remover of
// segments); every mutable property (`stopping`, `finished`, `failure`, `applied`, `lastArrival`,
// `replayEnd`) is read and written only with `condition` locked; `deferringSince` only on the
// applier's thread.
public final class InboxApplier: @unchecked Sendable {
    /// When SQLite work gives way to receiving.
    public struct ApplyPolicy: Sendable {
        /// A burst is over when nothing has arrived for this long.
        public let quiet: Duration
        /// How long the applier waits, from the first record after it last caught up.
        public let maxDelay: Duration
        /// How many bytes may wait for SQLite while a burst goes on.
        public let maxDeferredBytes: Int64

        /// `quiet` 50 ms; `maxDelay` 10 s; `maxDeferredBytes` 64 MiB. Durations are capped at a day.
        public init(quiet: Duration = .milliseconds(50), maxDelay: Duration = .seconds(10),
                    maxDeferredBytes: Int64 = 64 << 20) {
            self.quiet = min(max(quiet, .zero), .seconds(86_400))
            self.maxDelay = min(max(maxDelay, .zero), .seconds(86_400))
            self.maxDeferredBytes = maxDeferredBytes
        }

        /// Applies as soon as records arrive (no deferral).
        public static let immediate = ApplyPolicy(quiet: .zero, maxDelay: .zero, maxDeferredBytes: 0)
    }

    private let inbox: Inbox
    private let store: Store
    private let makeItem: @Sendable (InboxRecord) -> IngestItem
    private let onApplied: @Sendable ([IngestOutcome]) -> Void
    private let onFailure: @Sendable (any Error) -> Void
    private let maxRecords: Int
    private let niceness: Int32
    private let policy: ApplyPolicy
    private let condition = NSCondition()
    private var lastArrival: ContinuousClock.Instant?
    /// The inbox's end when ``start()`` was called: records up to it are applied without waiting.
    private var replayEnd = InboxPosition.start
    private var deferringSince: ContinuousClock.Instant?
    private var stopping = false
    private var finished = false
    private var failure: (any Error)?
    private var applied: InboxPosition

    /// `makeItem` validates a record (it runs on the applier's thread); `onApplied` gets each
    /// committed batch's outcomes; `onFailure` is called once if the store refuses a batch, after
    /// which the applier stops (the records stay in the inbox for the next start).
    ///
    /// `niceness` lowers the applier thread's scheduling priority (Linux), so that under load the
    /// CPU goes first to receiving and acknowledging; `policy` says how long SQLite work waits
    /// while a burst is arriving.
    public init(inbox: Inbox, store: Store, from position: InboxPosition, maxRecords: Int = 512, niceness: Int32 = 0,
                policy: ApplyPolicy = ApplyPolicy(),
                makeItem: @escaping @Sendable (InboxRecord) -> IngestItem,
                onApplied: @escaping @Sendable ([IngestOutcome]) -> Void = { _ in },
                onFailure: @escaping @Sendable (any Error) -> Void = { _ in }) {
        self.inbox = inbox
        self.store = store
        self.applied = position
        self.maxRecords = max(1, maxRecords)
        self.niceness = niceness
        self.policy = policy
        self.makeItem = makeItem
        self.onApplied = onApplied
        self.onFailure = onFailure
    }

    /// Starts the applier's thread.
    public func start() {
        condition.lock()
        replayEnd = inbox.end
        condition.unlock()
        let thread = Thread { [self] in self.loop() }
        thread.name = "pilotwatch.inbox-applier"
        thread.start()
    }

    /// Says that the inbox has grown (a burst is arriving).
    public func wake() {
        condition.lock()
        lastArrival = ContinuousClock.now
        condition.broadcast()
        condition.unlock()
    }

    /// How far the inbox is in the store.
    public var position: InboxPosition {
        condition.lock()
        defer { condition.unlock() }
        return applied
    }

    /// The error that stopped the applier, if one did.
    public var error: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Waits while more than `bytes` of the inbox are not yet in the store (back-pressure on the
    /// receiving side); returns at once if the applier has failed or finished.
    public func waitForBacklog(atMost bytes: Int64) {
        condition.lock()
        defer { condition.unlock() }
        while failure == nil && !finished && inbox.backlogBytes(after: applied) > bytes {
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5))
        }
    }

    /// Applies everything the inbox durably holds, stops the thread and waits for it; returns the
    /// error that stopped it early, if any.
    @discardableResult
    public func finish() -> (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        return failure
    }

    /// With `condition` locked: waits while a burst is arriving, within the policy's bounds.
    private func waitForBurstToEnd() {
        let first: ContinuousClock.Instant
        if let lastArrival {
            first = lastArrival
        } else if applied >= replayEnd {
            // Appended since the start, and noticed before the ``wake()`` that follows.
            first = ContinuousClock.now
            lastArrival = first
        } else {
            return  // what the inbox held at the start: acknowledged before a restart
        }
        let since = deferringSince ?? ContinuousClock.now
        deferringSince = since
        var last = first
        while !stopping {
            let now = ContinuousClock.now
            let quietAt = last + policy.quiet
            let giveUpAt = since + policy.maxDelay
            if now >= quietAt || now >= giveUpAt || inbox.backlogBytes(after: applied) >= policy.maxDeferredBytes {
                return
            }
            let wait = min(quietAt, giveUpAt) - now
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait.components.attoseconds) / 1e18
                                                               + Double(wait.components.seconds)))
            last = lastArrival ?? last
        }
    }

    private func loop() {
        #if os(Linux)
        // Below the receiving thread, the broker and local publishers: acknowledging comes first,
        // SQLite catches up with the CPU left. On Linux the nice value is per thread, and "0"
        // names the calling thread (setpriority(2), NOTES).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
        var reader = inbox.reader()
        defer { reader.close() }
        var at = position
        while true {
            condition.lock()
            while !stopping && inbox.end <= applied {
                deferringSince = nil
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
            }
            waitForBurstToEnd()
            let stop = stopping
            condition.unlock()
            do {
                let (records, next) = try reader.read(from: at, maxRecords: maxRecords, maxBytes: 4 << 20)
                if records.isEmpty && next == at {
                    if inbox.end <= next {
                        if stop { break }
                        continue
                    }
                    // Durably written bytes that cannot be read: a segment removed by hand.
                    throw InboxError.corrupt(path: Inbox.path(inbox.directory, at.segment), offset: at.offset,
                                             reason: "no record where the inbox says there are some (end: \(inbox.end))")
                }
                let outcomes = try store.ingest(records.map(makeItem), inboxPosition: next)
                at = next
                condition.lock()
                applied = next
                condition.broadcast()
                condition.unlock()
                if !outcomes.isEmpty { onApplied(outcomes) }
                if next.segment > inbox.oldestSegment { try inbox.removeSegments(before: next.segment) }
            } catch {
                condition.lock()
                failure = error
                condition.unlock()
                onFailure(error)
                break
            }
        }
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
