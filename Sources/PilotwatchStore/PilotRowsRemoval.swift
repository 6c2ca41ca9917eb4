import Foundation
import GRDB
import PilotwatchCore

/// What ``Store/removeRawRows(pilot:dryRun:)`` removed (or, dry, would remove): rows and bytes
/// per table, and the pilot's records overwritten in the inbox.
public struct RawRowsRemoval: Sendable, Equatable, Codable {
    /// One table's share: its rows, and the bytes of their values (8 a number, a text's or
    /// blob's length), about what SQLite stores of them.
    public struct Table: Sendable, Equatable, Codable {
        public var table: String
        public var rows: Int
        public var bytes: Int
        public init(table: String, rows: Int, bytes: Int) { self.table = table; self.rows = rows; self.bytes = bytes }
    }

    public var pilot: String
    public var dryRun: Bool
    /// In the order they are deleted; tables with no row of the pilot are listed with 0.
    public var tables: [Table] = []
    /// Records of the pilot's devices already applied from `serve`'s inbox, overwritten with zeros.
    public var inboxRecords = 0
    public var inboxBytes = 0
    /// The write-ahead log was checkpointed and truncated afterwards (false in a dry run).
    public var walEmptied = false
    /// The database and its write-ahead log, in bytes, before and after (the same in a dry run).
    public var fileBytesBefore: Int64 = 0
    public var fileBytesAfter: Int64 = 0

    public init(pilot: String, dryRun: Bool) { self.pilot = pilot; self.dryRun = dryRun }

    public var rows: Int { tables.reduce(0) { $0 + $1.rows } }
    /// The bytes of every row's values and of every inbox record.
    public var bytes: Int { tables.reduce(0) { $0 + $1.bytes } + inboxBytes }
    /// Nothing of the pilot's raw data is left to remove.
    public var isEmpty: Bool { rows == 0 && inboxRecords == 0 }
    public func rows(in table: String) -> Int { tables.first { $0.table == table }?.rows ?? 0 }

    enum CodingKeys: String, CodingKey {
        case pilot, dryRun = "dry_run", tables, inboxRecords = "inbox_records", inboxBytes = "inbox_bytes"
        case walEmptied = "wal_emptied", fileBytesBefore = "file_bytes_before", fileBytesAfter = "file_bytes_after"
    }
}

extension Store {
    /// Removes every raw row of `pilot`, for good: what a pilot switched from observations to
    /// aggregates (or ended, by the retention policy) must no longer hold at the cluster.
    ///
    /// ```swift
    /// let planned = try store.removeRawRows(pilot: "hf-nord-02", dryRun: true)   // counts only
    /// let done = try store.removeRawRows(pilot: "hf-nord-02")
    /// print(done.rows, done.bytes, done.walEmptied)
    /// ```
    ///
    /// Removed, in one transaction: its observations and events, its pilot-level observations,
    /// the subjects' roll-ups (`subject_day`, `subject_indicator`) and the subjects; its messages
    /// and its devices (with their counters and last status); its refused messages (the
    /// quarantine rows whose topic names it, payloads with them), taken back from `refusal_day`.
    /// `ingest_total` is taken back by what went, so that it still counts what the store holds
    /// (`db check` holds it to the rows).
    ///
    /// Kept: `pilot_day`, the pilot's counters by day received (messages accepted, duplicate,
    /// refused, statuses, observations): numbers about the pilot as a whole that name no subject
    /// and no device, and that say what it sent before the switch (`stats`, ingest health); the
    /// pilot row itself (its code, first seen), its day-end snapshots, alerts and tombstones.
    ///
    /// Bytes gone from the files, as for an erasure: deleted pages are overwritten (the store's
    /// writable connections run with `secure_delete`), the records of the pilot's devices
    /// already applied from `serve`'s inbox (`{database}.inbox`) are overwritten with zeros
    /// (recorded in `inbox_scrub` in the same transaction, so that a crash before they are is
    /// mended at the next start), the file is rewritten (`VACUUM`, which leaves no stale bytes
    /// in pages that B-tree balancing rebuilt; it costs a write of the whole file, once) and the
    /// write-ahead log is checkpointed and truncated.
    ///
    /// Runs by itself, holding no transaction of the caller's: from a command that holds the
    /// writer lock, from `db purge`'s policy, or on `serve`'s applier thread (which must be the
    /// only one applying the inbox: records before the applied position are never read again,
    /// so overwriting them does not disturb it). A second run finds nothing and changes nothing.
    public func removeRawRows(pilot: String, dryRun: Bool = false) throws -> RawRowsRemoval {
        guard isValidCode(pilot) else {
            throw StoreError.sqlite(operation: "removing the raw rows of a pilot",
                                    message: "\(pilot.debugDescription) is not a pilot id (1-64 characters of a-z 0-9 . _ -)")
        }
        if !dryRun && options.readOnly { throw StoreError.readOnly(path: path) }
        var summary = RawRowsRemoval(pilot: pilot, dryRun: dryRun)
        summary.fileBytesBefore = fileBytes()
        if dryRun {
            let (tables, spans) = try read { reader in
                let removal = RawRowsSelection(db: reader.db, pilot: pilot)
                return (try removal.count(), try removal.inboxRecords(directory: inboxDirectory))
            }
            summary.tables = tables
            summary.inboxRecords = spans.count
            summary.inboxBytes = Int(spans.reduce(0) { $0 + $1.length })
            summary.fileBytesAfter = summary.fileBytesBefore
            return summary
        }
        let spans = try writeDirect("removing the raw rows of \(pilot)") { db, state -> [InboxSpan] in
            do {
                let spans = try db.inTransaction { () -> (Database.TransactionCompletion, [InboxSpan]) in
                    let removal = RawRowsSelection(db: db, pilot: pilot)
                    summary.tables = try removal.count()
                    let spans = try removal.inboxRecords(directory: inboxDirectory)
                    try removal.delete()
                    for span in spans {
                        try db.execute(sql: "INSERT OR REPLACE INTO inbox_scrub (segment, offset, length) VALUES (?, ?, ?)",
                                       arguments: [span.segment, span.offset, span.length])
                    }
                    return (.commit, spans)
                }
                // Subjects and devices were deleted: ids the writer cached may be gone.
                state.reset()
                return spans
            } catch {
                state.reset()
                throw error
            }
        }
        if !spans.isEmpty {
            do {
                try Inbox.scrub(spans, directory: inboxDirectory)
            } catch {
                throw StoreError.sqlite(operation: "overwriting the inbox records of \(pilot)",
                                        message: "\(error); the rows are removed, and the next start of serve overwrites the records")
            }
            try clearInboxScrubs(spans)
        }
        summary.inboxRecords = spans.count
        summary.inboxBytes = Int(spans.reduce(0) { $0 + $1.length })
        if summary.rows > 0 {
            try rewriteFile("rewriting the store after removing the raw rows of \(pilot)")
        }
        summary.walEmptied = emptyWAL()
        summary.fileBytesAfter = fileBytes()
        return summary
    }

    /// How many raw rows of `pilot` the store holds (what ``removeRawRows(pilot:dryRun:)``
    /// would remove, without its byte count and inbox scan): cheap enough for `config check`.
    public func rawRowCount(pilot: String) throws -> Int {
        try read { reader in try RawRowsSelection(db: reader.db, pilot: pilot).count(bytes: false).reduce(0) { $0 + $1.rows } }
    }

    /// The inbox `serve` keeps beside the database (`pilotwatch serve`, `StoreWork.openInbox`).
    var inboxDirectory: String { path + ".inbox" }

    /// The database file and its write-ahead log, in bytes.
    private func fileBytes() -> Int64 {
        [path, path + "-wal"].reduce(Int64(0)) { total, file in
            total + (((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }
}

/// The rows of one pilot that ``Store/removeRawRows(pilot:dryRun:)`` removes, table by table,
/// in an order the foreign keys accept.
private struct RawRowsSelection {
    let db: Database
    let pilot: String

    /// `?1` is the pilot's code.
    private static let subjects = "SELECT s.id FROM subject s JOIN pilot p ON p.id = s.pilot_id WHERE p.code = ?1"
    private static let devices = "SELECT d.id FROM device d JOIN pilot p ON p.id = d.pilot_id WHERE p.code = ?1"
    /// Refusals of messages from the pilot's devices (a topic that named it), or whose topic did
    /// not parse but has it as a level. A site's refused snapshots (`.../agg`) are aggregates: kept.
    private static let rejects = """
        SELECT id FROM reject WHERE (pilot = ?1 AND substr(topic, -4) != '/agg')
            OR (pilot IS NULL AND instr('/' || topic || '/', '/' || ?1 || '/') > 0)
        """

    private static let tables: [(table: String, where: String)] = [
        ("observation", "subject_id IN (\(subjects)) OR device_id IN (\(devices))"),
        ("event", "subject_id IN (\(subjects)) OR device_id IN (\(devices))"),
        ("pilot_observation", "pilot_id = (SELECT id FROM pilot WHERE code = ?1) OR device_id IN (\(devices))"),
        ("subject_day", "subject_id IN (\(subjects))"),
        ("subject_indicator", "subject_id IN (\(subjects))"),
        ("subject", "id IN (\(subjects))"),
        ("message", "device_id IN (\(devices))"),
        ("device", "id IN (\(devices))"),
        ("reject_payload", "reject_id IN (\(rejects))"),
        ("reject", "id IN (\(rejects))"),
    ]

    func count(bytes: Bool = true) throws -> [RawRowsRemoval.Table] {
        try Self.tables.map { table, condition in
            let sum = bytes ? "coalesce(sum(\(try valueBytes(of: table))), 0)" : "0"
            let row = try Row.fetchOne(db, sql: "SELECT count(*), \(sum) FROM \(table) WHERE \(condition)", arguments: [pilot])
            return RawRowsRemoval.Table(table: table, rows: row?[0] ?? 0, bytes: row?[1] ?? 0)
        }
    }

    /// An SQL expression for the bytes of a row's values in `table`.
    private func valueBytes(of table: String) throws -> String {
        let columns = try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table]).map { $0[0] as String }
        guard !columns.isEmpty else { return "0" }
        return columns.map { c in
            "(CASE typeof(\"\(c)\") WHEN 'null' THEN 0 WHEN 'text' THEN length(CAST(\"\(c)\" AS BLOB)) WHEN 'blob' THEN length(\"\(c)\") ELSE 8 END)"
        }.joined(separator: " + ")
    }

    /// Takes the counters back by what goes, then deletes, table by table.
    func delete() throws {
        let counts = try count(bytes: false)
        func rows(_ table: String) -> Int { counts.first { $0.table == table }?.rows ?? 0 }
        let pilotID = try Int64.fetchOne(db, sql: "SELECT id FROM pilot WHERE code = ?", arguments: [pilot]) ?? 0
        // A refusal counted against a pilot is in refusal_day under its id; the others under 0.
        for row in try Row.fetchAll(db, sql: """
            SELECT CASE WHEN pilot IS NOT NULL AND device IS NOT NULL AND reason != 'store_error' THEN ?2 ELSE 0 END,
                   received_at / 86400000 - (received_at < 0 AND received_at % 86400000 != 0), reason, count(*)
            FROM reject WHERE id IN (\(Self.rejects)) GROUP BY 1, 2, 3
            """, arguments: [pilot, pilotID]) {
            try db.execute(sql: "UPDATE refusal_day SET n = max(n - ?, 0) WHERE pilot_id = ? AND day = ? AND reason = ?",
                           arguments: [row[3] as Int, row[0] as Int64, row[1] as Int64, row[2] as String])
        }
        try db.execute(sql: "DELETE FROM refusal_day WHERE n = 0")
        try db.execute(sql: """
            UPDATE ingest_total SET accepted = max(accepted - ?, 0), observations = max(observations - ?, 0),
                refused = max(refused - ?, 0)
            WHERE id = 1
            """, arguments: [rows("message"), rows("observation") + rows("event") + rows("pilot_observation"), rows("reject")])
        for (table, condition) in Self.tables {
            try db.execute(sql: "DELETE FROM \(table) WHERE \(condition)", arguments: [pilot])
        }
        try db.execute(sql: "UPDATE pilot SET last_observation_at = NULL WHERE id = ?", arguments: [pilotID])
    }

    /// The records of `directory`'s inbox before the store's applied position whose topic is
    /// one of the pilot's devices' (`{root}/{pilot}/{device}/obs` or `/status`), not yet
    /// overwritten. None when the store applies no inbox, or another one than the folder holds.
    func inboxRecords(directory: String) throws -> [InboxSpan] {
        guard let row = try Row.fetchOne(db, sql: "SELECT inbox, segment, offset FROM inbox_applied WHERE id = 1"),
              Inbox.existingID(directory: directory) == (row[0] as String) else { return [] }
        let applied = InboxPosition(segment: row[1], offset: row[2])
        let pending = Set(try Row.fetchAll(db, sql: "SELECT segment, offset FROM inbox_scrub")
            .map { InboxPosition(segment: $0[0], offset: $0[1]) })
        let files = SegmentFiles(directory: directory)
        defer { files.close() }
        var found: [InboxSpan] = []
        for segment in try Inbox.segments(in: directory) where segment <= applied.segment {
            let limit = segment == applied.segment ? applied.offset : Int64.max
            var offset: Int64 = 0
            while true {
                let record: InboxRecord, length: Int
                do {
                    guard let (r, n) = try files.record(segment: segment, offset: offset, limit: limit) else { break }
                    (record, length) = (r, n)
                } catch InboxError.corrupt where pending.contains(InboxPosition(segment: segment, offset: offset)) {
                    // Being overwritten already (a scrub a crash tore, redone at the next start).
                    guard let n = try files.recordLength(segment: segment, offset: offset) else { break }
                    offset += Int64(n)
                    continue
                }
                if !record.isScrubbed && Self.isDeviceTopic(record.topic, of: pilot) {
                    found.append(InboxSpan(segment: segment, offset: offset, length: Int64(length)))
                }
                offset += Int64(length)
            }
        }
        return found
    }

    /// `{root}/{pilot}/{device}/obs` or `/status`, whatever the root.
    static func isDeviceTopic(_ topic: String, of pilot: String) -> Bool {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count >= 4, let kind = levels.last, kind == "obs" || kind == "status" else { return false }
        return levels[levels.count - 3] == pilot
    }
}
