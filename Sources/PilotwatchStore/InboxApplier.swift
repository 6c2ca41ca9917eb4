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
/// first record after it last caught up) or ``ApplyPolicy/maxDeferredBytes`` are waiting; once a
/// bound has made it start, it goes on until it has caught up.
///
/// At light load it does not wait that long: once the first waiting record is
/// ``ApplyPolicy/due`` old, it starts if keeping up with what arrived meanwhile would take it at
/// most ``ApplyPolicy/lightShare`` of one core (see ``ApplyLoad``), asking again every 250 ms;
/// started by that rule, it applies what the inbox held then and waits again. A steady
/// stream never has the quiet that ends a burst: at light load the due rule makes it visible
/// within about `due`; near full speed (and while draining a backlog the broker queued)
/// acknowledging keeps the machine, and the bounds say how far the views may lag.
///
/// What the inbox held when ``start()`` was called (acknowledged before a restart) is applied at
/// once. Measured on the ingest benchmark (2 cores, publisher, broker and serve on the same
/// machine): with SQLite work running alongside a full-speed stream, the publisher's rate
/// through the broker fell by a quarter even at the lowest scheduling priority (`SCHED_IDLE`),
/// and deferring it raised the acknowledged rate by as much, with the same time until everything
/// is in SQLite.
// @unchecked Sendable: `inbox`, `store` and the closures are immutable and thread-safe (Store and
// Inbox document their own rules: the applier thread is the inbox's only reader, only scrubber and
// only remover of segments); every mutable property (`started`, `stopping`, `finished`, `failure`,
// `applied`, `lastArrival`, `replayEnd`, `work`) is read and written only with `condition` locked;
// `deferringSince`, `dueEnd` and `load` only on the applier's thread.
public final class InboxApplier: @unchecked Sendable {
    /// When SQLite work gives way to receiving.
    public struct ApplyPolicy: Sendable {
        /// A burst is over when nothing has arrived for this long.
        public let quiet: Duration
        /// How long the applier waits, from the first record after it last caught up.
        public let maxDelay: Duration
        /// How many bytes may wait for SQLite while a burst goes on.
        public let maxDeferredBytes: Int64
        /// At light load, how old the first waiting record may grow before the applier starts.
        public let due: Duration
        /// The share of one core that keeping up may take for the load to count as light (see
        /// ``ApplyLoad``); before the first batch is measured, any.
        public let lightShare: Double

        /// `quiet` 50 ms; `maxDelay` 10 s; `maxDeferredBytes` 64 MiB; `due` 0.5 s when keeping up
        /// takes at most a quarter of a core. Durations are capped at a day.
        public init(quiet: Duration = .milliseconds(50), maxDelay: Duration = .seconds(10),
                    maxDeferredBytes: Int64 = 64 << 20, due: Duration = .milliseconds(500),
                    lightShare: Double = 0.25) {
            self.quiet = min(max(quiet, .zero), .seconds(86_400))
            self.maxDelay = min(max(maxDelay, .zero), .seconds(86_400))
            self.maxDeferredBytes = maxDeferredBytes
            self.due = min(max(due, .zero), .seconds(86_400))
            self.lightShare = lightShare.isNaN ? 0 : max(lightShare, 0)
        }

        /// Applies as soon as records arrive (no deferral).
        public static let immediate = ApplyPolicy(quiet: .zero, maxDelay: .zero, maxDeferredBytes: 0, due: .zero, lightShare: .infinity)
    }

    private let inbox: Inbox
    private let store: Store
    private let makeItem: @Sendable (InboxRecord) -> IngestItem
    private let onApplied: @Sendable ([IngestOutcome]) -> Void
    private let onFailure: @Sendable (any Error) -> Void
    private let onTrouble: @Sendable (String) -> Void
    private let onCommit: @Sendable (Duration) -> Void
    private let onVisible: @Sendable ([Instant], Instant) -> Void
    private let onStored: @Sendable ([IngestItem], [IngestOutcome]) -> Void
    private let storedNeeds: @Sendable (IngestItem) -> Bool
    private var started = false
    private let maxRecords: Int
    private let maxTransactionRecords: Int
    private let niceness: Int32
    private let policy: ApplyPolicy
    private let condition = NSCondition()
    private var lastArrival: ContinuousClock.Instant?
    /// The inbox's end when ``start()`` was called: records up to it are applied without waiting.
    private var replayEnd = InboxPosition.start
    private var deferringSince: ContinuousClock.Instant?
    private var load = ApplyLoad()
    /// Where the records due when the light-load rule started the applier end.
    private var dueEnd: InboxPosition?
    private var work = ApplyWork()
    private var stopping = false
    private var finished = false
    private var failure: (any Error)?
    private var applied: InboxPosition
    /// Work handed to the applier's thread (``perform(_:)``), run between two batches.
    private var jobs: [@Sendable () -> Void] = []

    /// `makeItem` validates a record (it runs on the applier's threads, one batch ahead of the
    /// commits); `onApplied` gets each
    /// committed batch's outcomes; `onTrouble` hears, in one line each, what the applier did
    /// about a store that refused work (retried a busy database, quarantined a message as
    /// `store_error`, waited for a database that refuses everything); `onFailure` is called
    /// once if the applier gives up (only while finishing, with a database that still refuses
    /// everything): the records stay in the inbox for the next start.
    ///
    /// A batch the store refuses is never a reason to stop: `SQLITE_BUSY` is retried with
    /// back-off; any other refusal makes the applier store the batch one message at a time, and
    /// a message refused on three tries goes to quarantine as `store_error` (replayable) while
    /// the rest of the batch is stored. Should even that fail, the store is unwell as a whole
    /// (disk full, I/O errors): the applier waits (up to 30 s between tries) and tries again,
    /// while `serve` stops reading from the broker once the backlog limit is reached.
    ///
    /// `onCommit` gets how long each transaction the store committed took (for monitoring);
    /// `onVisible`, once a batch is committed, when each of its records was received
    /// (acknowledged) and when it became visible to the views; `onStored`, once a batch is
    /// committed, those of its items `storedNeeds` picks, with their outcomes, one for one (on
    /// the applier's thread: hand anything slow to another; the others are not held until the
    /// commit).
    ///
    /// `maxRecords` records are read and validated at a time; while the inbox holds more, a
    /// transaction goes on with the next such chunk up to `maxTransactionRecords` records (a
    /// backlog's roll-ups and counters are then written once per key for many more messages).
    ///
    /// `niceness` lowers the applier thread's scheduling priority (Linux), so that under load the
    /// CPU goes first to receiving and acknowledging; `policy` says how long SQLite work waits
    /// while a burst is arriving.
    public init(inbox: Inbox, store: Store, from position: InboxPosition, maxRecords: Int = 4096,
                maxTransactionRecords: Int = 16384, niceness: Int32 = 0,
                policy: ApplyPolicy = ApplyPolicy(),
                makeItem: @escaping @Sendable (InboxRecord) -> IngestItem,
                onApplied: @escaping @Sendable ([IngestOutcome]) -> Void = { _ in },
                onTrouble: @escaping @Sendable (String) -> Void = { _ in },
                onFailure: @escaping @Sendable (any Error) -> Void = { _ in },
                onCommit: @escaping @Sendable (Duration) -> Void = { _ in },
                onVisible: @escaping @Sendable (_ received: [Instant], _ committed: Instant) -> Void = { _, _ in },
                onStored: @escaping @Sendable (_ items: [IngestItem], _ outcomes: [IngestOutcome]) -> Void = { _, _ in },
                storedNeeds: @escaping @Sendable (IngestItem) -> Bool = { _ in true }) {
        self.inbox = inbox
        self.store = store
        self.applied = position
        self.maxRecords = max(1, maxRecords)
        self.maxTransactionRecords = max(1, maxTransactionRecords)
        self.niceness = niceness
        self.policy = policy
        self.makeItem = makeItem
        self.onApplied = onApplied
        self.onFailure = onFailure
        self.onTrouble = onTrouble
        self.onCommit = onCommit
        self.onVisible = onVisible
        self.onStored = onStored
        self.storedNeeds = storedNeeds
    }

    /// Starts the applier's thread. Once only.
    public func start() {
        condition.lock()
        precondition(!started, "InboxApplier.start() called twice")
        started = true
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

    /// Runs `work` on the applier's thread between two batches and returns its result: work that
    /// must not interleave with applying (an erasure deletes rows and overwrites inbox records,
    /// and the applier is the inbox's only scrubber). Throws when the applier has stopped.
    /// Called on the applier's thread itself (from `onApplied`, say), the work runs at once.
    public func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        if Thread.current.threadDictionary[Self.threadKey] as? ObjectIdentifier == ObjectIdentifier(self) { return try work() }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        condition.lock()
        guard started, !finished, !stopping else {
            condition.unlock()
            throw StoreError.sqlite(operation: "handing work to the applier", message: "the applier has stopped")
        }
        jobs.append {
            box.set(Result { try work() })
            done.signal()
        }
        condition.broadcast()
        condition.unlock()
        done.wait()
        return try box.get()
    }

    /// Runs the work handed over; on the applier's thread, with `condition` unlocked. True when
    /// there was some.
    @discardableResult
    private func runJobs() -> Bool {
        condition.lock()
        let pending = jobs
        jobs = []
        condition.unlock()
        for job in pending { job() }
        return !pending.isEmpty
    }

    /// How far the inbox is in the store.
    public var position: InboxPosition {
        condition.lock()
        defer { condition.unlock() }
        return applied
    }

    /// How many records the applier has stored and how long it took, reading, validating and
    /// committing them (waits excluded): the apply path's own rate.
    public var applyWork: ApplyWork {
        condition.lock()
        defer { condition.unlock() }
        return work
    }

    /// The error that stopped the applier, if one did.
    public var error: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Applies everything the inbox durably holds, stops the thread and waits for it; returns the
    /// error that stopped it early, if any.
    /// Once only, after ``start()``.
    @discardableResult
    public func finish() -> (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        precondition(started, "InboxApplier.finish() called before start()")
        precondition(!stopping, "InboxApplier.finish() called twice")
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        return failure
    }

    /// With `condition` locked: waits while a burst is arriving, within the policy's bounds, and
    /// at light load until the first waiting record is due.
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
        if deferringSince == nil { load.startWaiting(arrived: arrivedBytes) }
        if let dueEnd, applied < dueEnd { return }  // still applying what was due
        let since = deferringSince ?? ContinuousClock.now
        deferringSince = since
        var last = first
        while !stopping && jobs.isEmpty {
            let now = ContinuousClock.now
            let quietAt = last + policy.quiet
            let giveUpAt = since + policy.maxDelay
            let dueAt = since + policy.due
            if now >= quietAt || now >= giveUpAt || inbox.backlogBytes(after: applied) >= policy.maxDeferredBytes {
                return
            }
            if now >= dueAt, load.share(arrived: arrivedBytes, at: now).map({ $0 <= policy.lightShare }) ?? true {
                dueEnd = inbox.end
                return  // light load: keeping up fits beside receiving
            }
            let until = min(quietAt, giveUpAt, now < dueAt ? dueAt : now + .milliseconds(250))
            let wait = until - now
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(wait.components.attoseconds) / 1e18
                                                               + Double(wait.components.seconds)))
            last = lastArrival ?? last
        }
    }

    private static let threadKey = "pilotwatch.inbox-applier"

    /// With `condition` locked: every byte the inbox has received (applied, or waiting).
    private var arrivedBytes: Int64 { work.bytes + inbox.backlogBytes(after: applied) }

    private func loop() {
        Thread.current.threadDictionary[Self.threadKey] = ObjectIdentifier(self)
        #if os(Linux)
        // Below the receiving thread, the broker and local publishers: acknowledging comes first,
        // SQLite catches up with the CPU left. On Linux the nice value is per thread, and "0"
        // names the calling thread (setpriority(2), NOTES).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        // Named for `top -H`, `ps -L` and profilers (Foundation's name is not the system's).
        nameThisThread("pw-apply")
        #endif
        var reader = InboxChunkReader(inbox: inbox)
        defer { reader.close() }
        // The next batch is read and validated while this one is committed.
        let preparer = BatchPreparer(inbox: inbox, maxRecords: maxRecords, niceness: niceness, makeItem: makeItem)
        var at = position
        while true {
            condition.lock()
            while !stopping && inbox.end <= applied && jobs.isEmpty {
                deferringSince = nil
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
            }
            waitForBurstToEnd()
            let stop = stopping
            condition.unlock()
            // Work handed over (an erasure) runs between batches; a batch validated before it
            // is validated again (the erasure may have made some of its messages refusals).
            let ranJobs = runJobs()
            let batchStarted = ContinuousClock.now
            let cpuStarted = ApplyLoad.threadCPU()
            do {
                let waitStarted = ContinuousClock.now
                let taken = try preparer.take(from: at)
                let waited = ContinuousClock.now - waitStarted
                let prepared = ranJobs ? nil : taken
                let batch = try prepared ?? PreparedBatch.read(&reader, from: at, maxRecords: maxRecords, makeItem: makeItem)
                if batch.spans.isEmpty && batch.next == at {
                    if inbox.end <= at {
                        if stop { break }
                        continue
                    }
                    // Durably written bytes that cannot be read: a segment removed by hand.
                    throw InboxError.corrupt(path: Inbox.path(inbox.directory, at.segment), offset: at.offset,
                                             reason: "no record where the inbox says there are some (end: \(inbox.end))")
                }
                if inbox.end > batch.next { preparer.request(from: batch.next) }
                var run = AppliedRun(batch, prepared: prepared != nil, storedNeeds: storedNeeds)
                let outcomes = try store(batch, run: &run, preparer: preparer, reader: &reader)
                let next = run.next
                onVisible(run.receivedAt, Instant(seconds: Date().timeIntervalSince1970))
                at = next
                condition.lock()
                applied = next
                work.add(records: run.items, bytes: run.bytes, took: ContinuousClock.now - batchStarted,
                         waited: waited + run.waited)
                load.applied(bytes: run.bytes, cpu: ApplyLoad.threadCPU() - cpuStarted + run.preparedCPU)
                if inbox.end <= next || dueEnd.map({ next >= $0 }) == true {
                    // Caught up, or applied what was due: the next record starts a new wait.
                    deferringSince = nil
                    dueEnd = nil
                }
                condition.broadcast()
                condition.unlock()
                if !outcomes.isEmpty {
                    onApplied(outcomes)
                    let picked = zip(run.storedItems, run.storedOutcomeIndex).map { ($0, outcomes[$1]) }
                    if !picked.isEmpty { onStored(picked.map(\.0), picked.map(\.1)) }
                }
                if next.segment > inbox.oldestSegment { try inbox.removeSegments(before: next.segment) }
            } catch {
                condition.lock()
                failure = error
                condition.unlock()
                onFailure(error)
                break
            }
        }
        preparer.close()
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
        // Work handed over while the last batch ran: done now, on this thread still.
        runJobs()
    }

    /// Stores a batch read from the inbox and records its end with it, going on in the same
    /// transaction with the next batches while the inbox holds more (up to
    /// `maxTransactionRecords`; `run` says how far it went); then overwrites, in the inbox, the
    /// records refused as hash only. Throws only when giving up (finishing with a store that
    /// refuses everything) or for an inbox I/O error.
    ///
    /// Should that longer transaction fail in any way, `batch` is stored alone as below and the
    /// rest is read again from the inbox for the next transaction.
    private func store(_ batch: PreparedBatch, run: inout AppliedRun, preparer: BatchPreparer,
                       reader: inout InboxChunkReader) throws -> [IngestOutcome] {
        let first = IngestChunk(items: batch.items, scrubs: Self.scrubs(batch), inboxPosition: batch.next, keys: batch.keys)
        if batch.items.count < maxTransactionRecords && inbox.end > batch.next && !hasJobs {
            var more = run
            let started = ContinuousClock.now
            var tried: [IngestOutcome]?
            do {
                tried = try store.ingest(first) {
                    guard more.items < self.maxTransactionRecords, self.inbox.end > more.next, !self.hasJobs else { return nil }
                    let waitStarted = ContinuousClock.now
                    let taken = try preparer.take(from: more.next)
                    more.waited += ContinuousClock.now - waitStarted
                    let next = try taken ?? PreparedBatch.read(&reader, from: more.next, maxRecords: self.maxRecords,
                                                               makeItem: self.makeItem)
                    if next.spans.isEmpty && next.next == more.next { return nil }
                    if self.inbox.end > next.next { preparer.request(from: next.next) }
                    more.add(next, prepared: taken != nil, storedNeeds: self.storedNeeds)
                    return IngestChunk(items: next.items, scrubs: Self.scrubs(next), inboxPosition: next.next, keys: next.keys)
                }
            } catch {
                // Stored alone below; what the preparer was asked for is asked again.
                if more.next != batch.next { preparer.request(from: batch.next) }
            }
            if let outcomes = tried {
                onCommit(ContinuousClock.now - started)
                run = more
                try scrub(run.scrubs)
                return outcomes
            }
        }
        return try store(batch.items, spans: batch.keptSpans, next: batch.next)
    }

    private static func scrubs(_ batch: PreparedBatch) -> [InboxSpan] {
        zip(batch.items, batch.keptSpans).filter { !$0.0.keepsPayload }.map(\.1)
    }

    /// Overwrites in the inbox the records refused as hash only, once their refusals (and their
    /// rows in `inbox_scrub`) are committed.
    private func scrub(_ scrubs: [InboxSpan]) throws {
        guard !scrubs.isEmpty else { return }
        try inbox.scrub(scrubs)
        try retryingBusy { try store.clearInboxScrubs(scrubs) }
    }

    private var hasJobs: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !jobs.isEmpty
    }

    /// Stores a batch read from the inbox and records `next` with it; then overwrites, in the
    /// inbox, the records refused as hash only. Throws only when giving up (finishing with a
    /// store that refuses everything) or for an inbox I/O error.
    private func store(_ items: [IngestItem], spans: [InboxSpan], next: InboxPosition) throws -> [IngestOutcome] {
        let scrubs = zip(items, spans).filter { !$0.0.keepsPayload }.map(\.1)
        let outcomes: [IngestOutcome]
        do {
            outcomes = try retryingBusy { try commit(items, inboxPosition: next, scrubs: scrubs) }
        } catch let error as StoreError where error.isBusy {
            throw error  // busy for a minute while finishing: the inbox keeps the batch
        } catch {
            onTrouble("the database refused a batch of \(items.count) messages (\(error)); storing them one at a time")
            var one: [IngestOutcome] = []
            if items.isEmpty { _ = try waitingForStore { try commit([], inboxPosition: next) } }
            for (index, (item, span)) in zip(items, spans).enumerated() {
                let end = index == items.count - 1 ? next : InboxPosition(segment: span.segment, offset: span.offset + span.length)
                one.append(try storeOne(item, span: span, end: end))
            }
            outcomes = one
        }
        try scrub(scrubs)
        return outcomes
    }

    /// `store.ingest`, timed for `onCommit` when it commits.
    private func commit(_ items: [IngestItem], inboxPosition: InboxPosition, scrubs: [InboxSpan] = []) throws -> [IngestOutcome] {
        let started = ContinuousClock.now
        let outcomes = try store.ingest(items, inboxPosition: inboxPosition, scrubs: scrubs)
        onCommit(ContinuousClock.now - started)
        return outcomes
    }

    /// Stores one message, trying three times; then, when SQLite refused the message itself (a
    /// constraint, a value too big or of the wrong type), quarantines it as `store_error`. A
    /// store that refuses everything (disk full, I/O error, read-only file) is waited for on the
    /// message itself: quarantining good messages during an outage would blame their pilots'
    /// data for ours.
    private func storeOne(_ item: IngestItem, span: InboxSpan, end: InboxPosition) throws -> IngestOutcome {
        let scrubs = item.keepsPayload ? [] : [span]
        var lastError: any Error = StoreError.sqlite(operation: "storing", message: "no attempt")
        for _ in 0..<3 {
            do {
                return try retryingBusy { try commit([item], inboxPosition: end, scrubs: scrubs) }[0]
            } catch {
                lastError = error
                if !Self.refusesTheMessage(error) { break }
            }
        }
        guard item.keepsPayload, Self.refusesTheMessage(lastError) else {
            return try waitingForStore { try commit([item], inboxPosition: end, scrubs: scrubs)[0] }
        }
        let refusal = Refusal(.storeError, "the database refused this message on 3 tries: \(lastError)")
        onTrouble("quarantined a message on \(item.topic) as store_error: \(lastError)")
        func quarantined(_ topic: Topic?) -> IngestItem {
            IngestItem(topic: item.topic, receivedAt: item.receivedAt, verdict: .refused(topic, refusal), payload: item.payload)
        }
        // With its pilot and device when those rows can be written, else without (replay finds
        // them again from the topic).
        if let withTopic = try? retryingBusy({ try commit([quarantined(item.verdict.topic)], inboxPosition: end) }) {
            return withTopic[0]
        }
        return try waitingForStore { try commit([quarantined(nil)], inboxPosition: end)[0] }
    }

    /// SQLite refused this message for what it holds (`SQLITE_TOOBIG`, `SQLITE_CONSTRAINT`,
    /// `SQLITE_MISMATCH`), not for the state of the database.
    static func refusesTheMessage(_ error: any Error) -> Bool {
        guard let code = (error as? StoreError)?.sqliteResultCode else { return false }
        return code == 18 || code == 19 || code == 20
    }

    /// Runs `body`, retrying while the database is busy (another connection holds its write
    /// lock past the busy timeout), with back-off from 50 ms to 2 s; gives up on busy only when
    /// finishing and it has lasted a minute.
    private func retryingBusy<T>(_ body: () throws -> T) throws -> T {
        var delay = 0.05
        let since = ContinuousClock.now
        while true {
            do {
                return try body()
            } catch let error as StoreError where error.isBusy {
                if isStopping && ContinuousClock.now - since > .seconds(60) { throw error }
                onTrouble("the database is busy (another process holds its write lock); retrying in \(delay) s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
    }

    /// Runs `body` until the store takes it: the store refuses even a quarantine row, so it is
    /// unwell as a whole. Waits up to 30 s between tries; gives up only when finishing.
    private func waitingForStore<T>(_ body: () throws -> T) throws -> T {
        var delay = 1.0
        while true {
            do {
                return try retryingBusy(body)
            } catch {
                if isStopping { throw error }
                onTrouble("the database refuses to store anything (\(error)); trying again in \(Int(delay)) s, the inbox keeps every message")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 30)
            }
        }
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }
}

/// What one transaction of the applier covered: one prepared batch or several in a row.
private struct AppliedRun {
    /// Where the last batch ends.
    var next: InboxPosition
    /// Items stored (records not scrubbed before), and the bytes of every record read.
    private(set) var items = 0
    var bytes: Int64 = 0
    /// CPU time the preparer's thread spent on the batches taken from it.
    var preparedCPU = 0.0
    /// Time spent waiting for the preparer within the transaction.
    var waited = Duration.zero
    var receivedAt: [Instant] = []
    /// Records refused as hash only, to overwrite in the inbox once committed.
    var scrubs: [InboxSpan] = []
    /// The items `onStored` needs, with their places among the transaction's outcomes.
    var storedItems: [IngestItem] = []
    var storedOutcomeIndex: [Int] = []

    init(_ batch: PreparedBatch, prepared: Bool, storedNeeds: (IngestItem) -> Bool) {
        next = batch.from
        add(batch, prepared: prepared, storedNeeds: storedNeeds)
    }

    mutating func add(_ batch: PreparedBatch, prepared: Bool, storedNeeds: (IngestItem) -> Bool) {
        next = batch.next
        bytes += batch.spans.reduce(0) { $0 + $1.length }
        if prepared { preparedCPU += batch.cpu }
        receivedAt += batch.receivedAt
        for (item, span) in zip(batch.items, batch.keptSpans) where !item.keepsPayload { scrubs.append(span) }
        for (index, item) in batch.items.enumerated() where storedNeeds(item) {
            storedItems.append(item)
            storedOutcomeIndex.append(items + index)
        }
        items += batch.items.count
    }
}

/// Records the applier has stored, their bytes in the inbox, and the time spent on them.
public struct ApplyWork: Sendable, Equatable {
    public var records = 0
    public var bytes: Int64 = 0
    public var busy = Duration.zero
    /// Of `busy`, the time spent waiting for the next batch to be read and validated (the
    /// preparer's thread runs one batch ahead; waiting means validating is the slower half).
    public var waitingForValidation = Duration.zero

    mutating func add(records: Int, bytes: Int64, took: Duration, waited: Duration = .zero) {
        self.records += records
        self.bytes += bytes
        busy += took
        waitingForValidation += waited
    }
}

extension Verdict {
    /// The parsed topic, whatever the verdict.
    var topic: Topic? {
        switch self {
        case .observations(let topic, _), .status(let topic, _), .snapshot(let topic, _): return topic
        case .refused(let topic, _): return topic
        }
    }
}

/// The result of work handed to the applier's thread, for the thread that waits for it.
// @unchecked Sendable: `result` is written once by the applier's thread before it signals the
// semaphore the waiting thread blocks on, and read by that thread only after the signal
// (DispatchSemaphore orders the two); `lock` guards it all the same.
private final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    func set(_ r: Result<T, any Error>) { lock.withLock { result = r } }
    func get() throws -> T {
        guard let r = lock.withLock({ result }) else {
            throw StoreError.sqlite(operation: "handing work to the applier", message: "the work did not run")
        }
        return try r.get()
    }
}
