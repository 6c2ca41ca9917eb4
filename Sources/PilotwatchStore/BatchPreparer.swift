import Foundation
import PilotwatchCore

/// A batch read from the inbox and validated, ready for the store.
struct PreparedBatch: Sendable {
    /// Where the batch starts and where the next one does.
    var from: InboxPosition
    var next: InboxPosition
    /// Every record's span (scrubbed ones included), for the bytes the batch covers.
    var spans: [InboxSpan]
    /// The records still to apply (not scrubbed): their items, spans and receipt times.
    var items: [IngestItem]
    var keptSpans: [InboxSpan]
    var receivedAt: [Instant]
    /// The slots of the items' codes, when the preparer numbered them (``KeyInterner``).
    var keys: BatchKeys?
    /// CPU time spent reading and validating it, in seconds.
    var cpu: Double

    /// Reads up to `maxRecords` records from `position` and validates them with `makeItem`.
    /// With `interner`, numbers the items' codes too (`keys`).
    static func read(_ reader: inout InboxChunkReader, from position: InboxPosition, maxRecords: Int,
                     interner: KeyInterner? = nil, makeItem: (InboxRecord) -> IngestItem) throws -> PreparedBatch {
        let cpuStarted = ApplyLoad.threadCPU()
        let (records, spans, next) = try reader.readSpans(from: position, maxRecords: maxRecords, maxBytes: 4 << 20)
        // A record already overwritten (refused as hash only, applied once before a restore put
        // an older store back) has nothing left to apply.
        let kept = zip(records, spans).filter { !$0.0.isScrubbed }
        let items = kept.map { makeItem($0.0) }
        return PreparedBatch(from: position, next: next, spans: spans, items: items,
                             keptSpans: kept.map(\.1), receivedAt: kept.map(\.0.receivedAt),
                             keys: interner?.keys(of: items), cpu: ApplyLoad.threadCPU() - cpuStarted)
    }
}

/// Reads and validates the applier's next batch on a thread of its own while the applier
/// commits the current one, and numbers its codes (``KeyInterner``): validation (JSON, the
/// contract) is about a fifth of the apply path's time, and the second core is free once a
/// burst is over.
///
/// ```swift
/// let preparer = BatchPreparer(inbox: inbox, maxRecords: 4096, niceness: 10, makeItem: validate)
/// preparer.request(from: next)                  // starts reading and validating
/// let batch = try preparer.take(from: next)     // waits for it; nil if `next` was not asked for
/// preparer.close()
/// ```
// @unchecked Sendable: `inbox` and `makeItem` are immutable and thread-safe; `requested`,
// `result` and `closing` are read and written only with `condition` locked; `reader` and `interner`
// only on the preparer's thread.
final class BatchPreparer: @unchecked Sendable {
    private let inbox: Inbox
    private let maxRecords: Int
    private let niceness: Int32
    private let makeItem: @Sendable (InboxRecord) -> IngestItem
    private let condition = NSCondition()
    private var requested: InboxPosition?
    private var result: (from: InboxPosition, batch: Result<PreparedBatch, any Error>)?
    private var closing = false
    private var closed = false
    private var reader: InboxChunkReader
    private let interner = KeyInterner()

    init(inbox: Inbox, maxRecords: Int, niceness: Int32, makeItem: @escaping @Sendable (InboxRecord) -> IngestItem) {
        self.inbox = inbox
        self.maxRecords = maxRecords
        self.niceness = niceness
        self.makeItem = makeItem
        reader = InboxChunkReader(inbox: inbox)
        let thread = Thread { [self] in self.run() }
        thread.name = "pilotwatch.inbox-preparer"
        thread.start()
    }

    /// Starts reading and validating the batch at `position` (replacing a batch prepared
    /// earlier that was not taken).
    func request(from position: InboxPosition) {
        condition.lock()
        requested = position
        result = nil
        condition.broadcast()
        condition.unlock()
    }

    /// The batch at `position`, once prepared; nil when it was not requested.
    func take(from position: InboxPosition) throws -> PreparedBatch? {
        condition.lock()
        defer { condition.unlock() }
        while requested == position && result == nil { condition.wait() }
        guard let result, result.from == position else { return nil }
        self.result = nil
        return try result.batch.get()
    }

    /// Stops the thread and waits for it.
    func close() {
        condition.lock()
        closing = true
        condition.broadcast()
        while !closed { condition.wait() }
        condition.unlock()
    }

    private func run() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        nameThisThread("pw-validate")
        #endif
        defer { reader.close() }
        while true {
            condition.lock()
            while !closing && requested == nil { condition.wait() }
            guard !closing, let position = requested else {
                closed = true
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            let batch = Result { try PreparedBatch.read(&reader, from: position, maxRecords: maxRecords, interner: interner,
                                                              makeItem: makeItem) }
            condition.lock()
            if requested == position {
                result = (position, batch)
                requested = nil
            }
            condition.broadcast()
            condition.unlock()
        }
    }
}
