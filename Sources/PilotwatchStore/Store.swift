import CSQLiteTuning
import Foundation
import GRDB
import PilotwatchCore

/// The pilotwatch database: one SQLite file in WAL mode, written by one serialized writer
/// and read concurrently (by `serve` itself and by the CLI in another process).
///
/// ```swift
/// let store = try Store(path: "var/pilotwatch.sqlite")
/// let outcomes = try store.ingest(items)       // one transaction for the batch
/// let stats = try store.stats()
/// ```
///
/// Thread safety: `Store` may be shared between tasks and threads. Writes (`ingest`, `replay`)
/// run one at a time; reads run concurrently with them on snapshot-isolated connections.
public final class Store: Sendable {
    public let path: String
    public let options: StoreOptions
    let pool: DatabasePool
    private let writer = WriterState()
    /// The erased subjects whose messages this store refuses (`erased_subject`); loaded at open
    /// (writable stores) and kept by ``erase(pilot:subject:keys:at:)``.
    public let tombstones = TombstoneSet()

    /// Process-wide SQLite settings for a process whose every SQLite connection is a store's:
    /// GRDB uses each connection on one thread at a time, so SQLite need not lock a mutex on each
    /// call into it (multi-thread mode), nor around every allocation to keep memory statistics
    /// nobody reads. Together those locks were about 4% of applying a backlog. Call before any
    /// store is opened (`pilotwatch`'s entry point does); false when SQLite was already in use,
    /// and nothing changed.
    @discardableResult
    public static func configureProcess() -> Bool {
        pilotwatch_sqlite_multithread() == 0 && pilotwatch_sqlite_memstatus_off() == 0
    }

    /// Opens (and, unless read-only, creates and migrates) the store at `path`.
    ///
    /// The folder must exist: a missing folder is a configuration mistake, not something to paper over.
    public init(path: String, options: StoreOptions = .init()) throws {
        self.path = path
        self.options = options
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw StoreError.folderMissing(path: path)
        }
        if options.readOnly, !FileManager.default.fileExists(atPath: path) {
            throw StoreError.fileMissing(path: path)
        }

        var config = Configuration()
        config.label = "pilotwatch.store"
        config.readonly = options.readOnly
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(options.busyTimeoutSeconds)
        let cacheKiB = max(1, options.cacheSizeMiB) * 1024
        let synchronous = options.synchronous.rawValue
        let checkpointPages = max(1, options.walAutocheckpointPages)
        let readOnly = options.readOnly
        // After a checkpoint, SQLite truncates a WAL that grew past twice the checkpoint size.
        let walLimitBytes = Int64(checkpointPages) * 4096 * 2
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(cacheKiB)")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(checkpointPages)")
            try db.execute(sql: "PRAGMA journal_size_limit = \(walLimitBytes)")
            if !readOnly {
                // Whatever is deleted is overwritten with zeros in the file: a replayed refusal's
                // payload, an erased subject's rows, a purged payload (see docs/privacy.md).
                try db.execute(sql: "PRAGMA secure_delete = ON")
            }
            if readOnly {
                // Readers (the dashboards) map the file instead of copying each page into SQLite's
                // cache: measured a fifth less time for `pilotwatch pilot` on a 479 MiB store.
                // Up to 2 GiB (SQLite's default ceiling); beyond that, pages are read as usual.
                try db.execute(sql: "PRAGMA mmap_size = 2147418112")
            }
        }
        let pool = try Store.sqlite("opening \(path)") { try DatabasePool(path: path, configuration: config) }
        self.pool = pool

        let migrator = Schema.migrator
        try Store.sqlite("migrating \(path)") {
            let (applied, complete) = try pool.read { db in
                (try migrator.appliedIdentifiers(db), try migrator.hasCompletedMigrations(db))
            }
            let unknown = applied.subtracting(Set(migrator.migrations)).sorted()
            if !unknown.isEmpty { throw StoreError.newerSchema(path: path, unknown: unknown) }
            if options.readOnly {
                if !complete { throw StoreError.schemaNotMigrated(path: path) }
            } else {
                try migrator.migrate(pool)
            }
        }
        if !options.readOnly { try loadTombstones() }
    }

    // MARK: - Writing

    /// Stores a batch of received messages in one transaction and says what became of each.
    ///
    /// Refused items go to quarantine; duplicates (`msg_id` already stored, in an earlier batch
    /// or earlier in this one) are acknowledged and ignored. If anything fails, nothing of the
    /// batch is kept and the error is thrown: do not acknowledge the messages, let the broker
    /// redeliver them; deduplication makes the redelivery harmless.
    ///
    /// ```swift
    /// let outcomes = try store.ingest([IngestItem(topic: t, receivedAt: now, verdict: v, payload: bytes)])
    /// ```
    ///
    /// With `inboxPosition`, the items are the inbox's records up to that position, and the
    /// position is recorded in the same transaction (``inboxPosition()``): after a crash, the
    /// inbox is read again from exactly there, so nothing is applied twice or skipped.
    ///
    /// `scrubs` are inbox records of the batch refused as hash only: they are recorded in the
    /// same transaction (``pendingInboxScrubs()``), for the caller to overwrite them in the
    /// inbox (``Inbox/scrub(_:)``) and then ``clearInboxScrubs(_:)``.
    @discardableResult
    public func ingest(_ items: [IngestItem], inboxPosition: InboxPosition? = nil,
                       scrubs: [InboxSpan] = []) throws -> [IngestOutcome] {
        try ingest(IngestChunk(items: items, scrubs: scrubs, inboxPosition: inboxPosition), more: { nil })
    }

    /// Stores `first` and then each chunk `more` returns, until it returns nil, in one
    /// transaction: the inbox's consecutive runs of records, each chunk's position recorded in
    /// turn (the last one is what commits). For a backlog: roll-ups and counters are written
    /// once per key for the whole transaction, and the items of a chunk stored need not stay in
    /// memory. If anything fails, nothing of any chunk is kept.
    ///
    /// ```swift
    /// let outcomes = try store.ingest(IngestChunk(items: a, inboxPosition: p1)) { takeNextChunk() }
    /// ```
    @discardableResult
    public func ingest(_ first: IngestChunk, more: () throws -> IngestChunk?) throws -> [IngestOutcome] {
        try write("storing \(first.items.count) messages") { batch in
            var outcomes: [IngestOutcome] = []
            outcomes.reserveCapacity(first.items.count)
            // Screened already (by the applier's preparer) unless a tombstone came since.
            let generation = tombstones.currentGeneration
            var chunk: IngestChunk? = first
            var position: InboxPosition?
            while let current = chunk {
                let keys = current.keys.flatMap { $0.items.count == current.items.count ? $0 : nil }
                batch.use(keys)
                for index in current.items.indices {
                    let slots = keys == nil ? nil : index
                    if current.items[index].screenedGeneration == generation {
                        outcomes.append(try batch.apply(current.items[index], slots: slots))
                    } else {
                        outcomes.append(try batch.apply(screen(current.items[index]), slots: slots))
                    }
                }
                for span in current.scrubs {
                    try batch.db.cachedStatement(sql: """
                        INSERT OR REPLACE INTO inbox_scrub (segment, offset, length) VALUES (?, ?, ?)
                        """).execute(arguments: [span.segment, span.offset, span.length])
                }
                position = current.inboxPosition ?? position
                chunk = try more()
            }
            if let p = position {
                try batch.db.cachedStatement(sql: "UPDATE inbox_applied SET segment = ?, offset = ? WHERE id = 1")
                    .execute(arguments: [p.segment, p.offset])
                guard batch.db.changesCount == 1 else {
                    throw StoreError.sqlite(operation: "recording the inbox position",
                                            message: "no inbox is adopted by this store (adoptInbox first)")
                }
            }
            return outcomes
        }
    }

    /// The inbox this store applies and how far, or nil when it never adopted one.
    public func inboxState() throws -> (id: String, position: InboxPosition)? {
        try read { reader in
            try Row.fetchOne(reader.db, sql: "SELECT inbox, segment, offset FROM inbox_applied WHERE id = 1")
                .map { ($0[0], InboxPosition(segment: $0[1], offset: $0[2])) }
        }
    }

    /// How far the adopted inbox has been applied (``InboxPosition/start`` when none is adopted).
    public func inboxPosition() throws -> InboxPosition {
        try inboxState()?.position ?? .start
    }

    /// Records `serve`'s heartbeat (one small transaction).
    public func recordHeartbeat(_ h: ServiceHeartbeat) throws {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        try Store.sqlite("recording the heartbeat") {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO service_heartbeat (id, pid, started_at, beat_at, broker_connected,
                        connection_since, last_message_at, backlog_bytes, apply_lag_ms, stopped_at)
                    VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [h.pid, h.startedAt.millis, h.beatAt.millis, h.brokerConnected ? 1 : 0,
                                     h.connectionSince.millis, h.lastMessageAt?.millis, max(0, h.backlogBytes),
                                     max(0, h.applyLagMillis), h.stoppedAt?.millis])
            }
        }
    }

    /// `serve`'s last recorded heartbeat; nil when it never ran on this store.
    public func heartbeat() throws -> ServiceHeartbeat? {
        try read { reader in
            try Row.fetchOne(reader.db, sql: """
                SELECT pid, started_at, beat_at, broker_connected, connection_since, last_message_at, backlog_bytes,
                       apply_lag_ms, stopped_at FROM service_heartbeat WHERE id = 1
                """).map { row in
                ServiceHeartbeat(pid: Int32(truncatingIfNeeded: row[0] as Int64), startedAt: Instant(millis: row[1]),
                                 beatAt: Instant(millis: row[2]), brokerConnected: (row[3] as Int64) == 1,
                                 connectionSince: Instant(millis: row[4]), lastMessageAt: (row[5] as Int64?).map(Instant.init(millis:)),
                                 backlogBytes: row[6], applyLagMillis: row[7], stoppedAt: (row[8] as Int64?).map(Instant.init(millis:)))
            }
        }
    }

    /// Inbox records refused as hash only whose bytes are still to be overwritten.
    public func pendingInboxScrubs() throws -> [InboxSpan] {
        try read { reader in
            try Row.fetchAll(reader.db, sql: "SELECT segment, offset, length FROM inbox_scrub ORDER BY segment, offset")
                .map { InboxSpan(segment: $0[0], offset: $0[1], length: $0[2]) }
        }
    }

    /// Forgets `spans` once their bytes are overwritten in the inbox and flushed.
    public func clearInboxScrubs(_ spans: [InboxSpan]) throws {
        guard !spans.isEmpty else { return }
        if options.readOnly { throw StoreError.readOnly(path: path) }
        try Store.sqlite("clearing \(spans.count) inbox scrubs") {
            try pool.write { db in
                for span in spans {
                    try db.execute(sql: "DELETE FROM inbox_scrub WHERE segment = ? AND offset = ?",
                                   arguments: [span.segment, span.offset])
                }
            }
        }
    }

    /// Makes `id` the inbox this store applies, from `position` on.
    public func adoptInbox(id: String, position: InboxPosition) throws {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        try Store.sqlite("adopting inbox \(id)") {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO inbox_applied (id, inbox, segment, offset) VALUES (1, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET inbox = excluded.inbox, segment = excluded.segment, offset = excluded.offset
                    """, arguments: [id, position.segment, position.offset])
            }
        }
    }

    /// Re-decides quarantined messages after re-validation, in one transaction.
    ///
    /// For each reject id, the item carries its new verdict (its `receivedAt` is ignored: the
    /// reject keeps its original time, so day counters move within the same day). An accepted,
    /// duplicate or status verdict stores the data and removes the reject from quarantine, and
    /// its count moves from refused to accepted, duplicate or statuses; a refused verdict keeps
    /// it in quarantine with the new reason and detail (and drops the payload if the new reason
    /// is `identifying_data`).
    @discardableResult
    public func replay(_ results: [(rejectID: Int64, item: IngestItem)]) throws -> ReplaySummary {
        try write("replaying \(results.count) quarantined messages") { batch in
            var summary = ReplaySummary()
            let find = try batch.db.cachedStatement(sql: """
                SELECT received_at, pilot, device, reason, topic FROM reject WHERE id = ?
                """)
            for (rejectID, item) in results {
                guard let row = try Row.fetchOne(find, arguments: [rejectID]) else { summary.missing += 1; continue }
                let reasonText: String = row[3]
                guard let reason = ReasonCode(rawValue: reasonText) else {
                    throw StoreError.sqlite(operation: "replaying reject \(rejectID)", message: "unknown reason \(reasonText)")
                }
                let old = ReplayedReject(id: rejectID, receivedAt: Instant(millis: row[0]), pilot: row[1],
                                         device: row[2], reason: reason, isSnapshot: (row[4] as String).hasSuffix("/agg"))
                switch try batch.apply(screen(item), replacing: old) {
                case .accepted(let stored, _): summary.accepted += 1; summary.newObservations += stored
                case .duplicateMessage: summary.duplicates += 1
                case .status: summary.statuses += 1
                case .snapshot: summary.accepted += 1
                case .duplicateSnapshot: summary.duplicates += 1
                case .refused: summary.stillRefused += 1
                }
            }
            return summary
        }
    }

    /// Runs `body` in one IMMEDIATE transaction with a batch writer, then writes the roll-ups.
    private func write<T>(_ operation: String, _ body: (inout BatchWriter) throws -> T) throws -> T {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        return try Store.sqlite(operation) {
            try pool.writeWithoutTransaction { db in
                do {
                    var result: T?
                    try db.inTransaction(.immediate) {
                        var batch = try BatchWriter(db: db, state: writer)
                        result = try body(&batch)
                        try batch.finish()
                        return .commit
                    }
                    guard let result else {
                        throw StoreError.sqlite(operation: operation, message: "the transaction produced no result")
                    }
                    return result
                } catch {
                    // Ids cached during a rolled-back transaction may be reused by SQLite for other rows.
                    writer.reset()
                    throw error
                }
            }
        }
    }

    // MARK: - Reading

    /// Runs `body` with the store's one write connection, outside any transaction (GRDB
    /// serialises it with the writer's batches).
    func writeDirect<T>(_ operation: String, _ body: (Database, WriterState) throws -> T) throws -> T {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        return try Store.sqlite(operation) { try pool.writeWithoutTransaction { db in try body(db, writer) } }
    }

    /// Runs `body` on one read-only snapshot of the store (concurrent with the writer).
    ///
    /// ```swift
    /// let subjects = try store.read { try $0.subjects(pilot: "hf-nord") }
    /// ```
    public func read<T>(_ body: (StoreReader) throws -> T) throws -> T {
        try Store.sqlite("reading") {
            try pool.read { db in try body(StoreReader(db: db)) }
        }
    }

    /// Store-wide and per-pilot counters.
    public func stats() throws -> StoreStats {
        try read { try $0.stats() }
    }

    /// Each pilot's latest observation or event time (`at`), for the pilots with any stored:
    /// one read of the `pilot` table, cheap enough for every metrics scrape.
    public func lastObservationTimes() throws -> [String: Instant] {
        try read { try $0.lastObservationTimes() }
    }

    /// Pilot codes seen in a parsed topic, sorted.
    public func pilotCodes() throws -> [String] {
        try read { try $0.pilotCodes() }
    }

    /// Quarantined messages, newest first, without their payloads.
    public func rejects(_ filter: RejectFilter) throws -> [RejectRecord] {
        try read { try $0.rejects(filter, withPayload: false) }
    }

    /// Quarantined messages that kept their payload (every reason but `identifying_data`),
    /// oldest first, with the payload bytes, for re-validation and ``replay(_:)``.
    public func replayCandidates(_ filter: RejectFilter) throws -> [RejectRecord] {
        try read { try $0.rejects(filter, withPayload: true) }
    }

    /// The identifier of this pilotwatch's last migration: what a store opened for writing is
    /// migrated to.
    public static var latestSchemaVersion: String { Schema.migrator.migrations.last ?? "" }

    /// The identifier of the last migration applied, for example `v1`.
    public func schemaVersion() throws -> String {
        try read { try Schema.migrator.appliedMigrations($0.db).last ?? "" }
    }

    /// Problems found by SQLite's integrity and foreign-key checks and by the store's own
    /// invariants (counters against rows); empty when the store is healthy.
    public func integrityCheck() throws -> [String] {
        try read { try $0.integrityProblems() }
    }

    /// Writes a consistent copy of the store to `path` (a new file) while it keeps running.
    /// With `keys`, the copy carries the store's erasure keys (in `erasure_key`, which is empty
    /// in a live store), so that a restore on another machine keeps erased subjects erased.
    public func backup(to destination: String, keys: ErasureKeys? = nil) throws {
        let folder = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw StoreError.folderMissing(path: destination)
        }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw StoreError.backupDestinationExists(path: destination)
        }
        try Store.sqlite("backing up to \(destination)") {
            let copy = try DatabaseQueue(path: destination)
            try pool.backup(to: copy)
            if let keys {
                try copy.write { db in
                    for key in keys.hexKeys { try db.execute(sql: "INSERT OR IGNORE INTO erasure_key (key) VALUES (?)", arguments: [key]) }
                }
            }
            try copy.close()
        }
    }

    /// Copies everything in the WAL into the database file and empties the WAL
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), so that the file alone holds the store.
    public func checkpoint() throws {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        try Store.sqlite("checkpointing \(path)") {
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
    }

    /// Runs `body`, turning SQLite errors into ``StoreError/sqlite(operation:message:code:sql:)``
    /// that keep SQLite's extended result code and the statement, so that callers can tell a
    /// busy database (retry) from a refused row (quarantine).
    static func sqlite<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw StoreError(operation, error)
        }
    }
}

extension StoreError {
    /// `error` as the store reports it: SQLite's message (its description when it has none),
    /// extended result code and statement, while doing `operation`.
    init(_ operation: String, _ error: DatabaseError) {
        self = .sqlite(operation: operation, message: error.message ?? error.description,
                       code: error.extendedResultCode.rawValue, sql: error.sql)
    }
}
