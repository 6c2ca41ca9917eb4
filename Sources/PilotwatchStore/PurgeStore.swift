import GRDB
import PilotwatchCore

/// What a purge removed (or, dry, would remove).
public struct PurgeSummary: Sendable, Hashable {
    /// Refused payloads dropped (their refusal rows stay: reason, time, topic, hash).
    public var refusedPayloads = 0
    public var refusedPayloadBytes = 0
    /// Devices whose last reported status (state, battery, firmware) was dropped.
    public var deviceStatuses = 0
    /// Ended pilots whose raw rows went (after their final figures were archived).
    public var endedPilots: [EndedPilotPurge] = []
    public init() {}
}

/// One ended pilot's raw rows removed by the retention policy, its final figures archived first.
public struct EndedPilotPurge: Sendable, Hashable {
    public var pilot: String
    public var rows: Int
    public var bytes: Int
    /// The day end its archive describes (its end date).
    public var archivedAsOf: Instant
    public init(pilot: String, rows: Int, bytes: Int, archivedAsOf: Instant) {
        self.pilot = pilot; self.rows = rows; self.bytes = bytes; self.archivedAsOf = archivedAsOf
    }
}

extension Store {
    /// Drops the payloads of refusals received before their pilot's cutoff: `cutoffs[pilot]`
    /// for the pilots that set their own, `otherwise` for every other refusal (other pilots,
    /// and topics that named none). With `dryRun`, only counts. Otherwise the deletion runs with
    /// `secure_delete` (what it frees is overwritten with zeros) and, when it dropped any, the
    /// file is rewritten (`VACUUM`) and the WAL checkpointed and truncated afterwards, so the
    /// bytes are gone from the files, not only from the tables: `secure_delete` alone leaves the
    /// copies that B-tree balancing makes of payloads moved before their turn came (a test finds
    /// some when runs of due payloads lie between kept ones).
    public func purgeRefusedPayloads(cutoffs: [String: Instant], otherwise: Instant, dryRun: Bool) throws -> PurgeSummary {
        if !dryRun && options.readOnly { throw StoreError.readOnly(path: path) }
        var clauses: [String] = []
        var arguments: [DatabaseValueConvertible] = []
        for (pilot, cutoff) in cutoffs.sorted(by: { $0.key < $1.key }) {
            clauses.append("(r.pilot = ? AND r.received_at < ?)")
            arguments += [pilot, cutoff.millis]
        }
        let named = cutoffs.keys.sorted()
        let others = named.isEmpty ? "1" : "r.pilot IS NULL OR r.pilot NOT IN (\(named.map { _ in "?" }.joined(separator: ",")))"
        clauses.append("((\(others)) AND r.received_at < ?)")
        arguments += named.map { $0 as DatabaseValueConvertible } + [otherwise.millis]
        let selection = "SELECT r.id FROM reject r WHERE " + clauses.joined(separator: " OR ")
        let args = StatementArguments(arguments.map { $0.databaseValue })

        let count = { (db: Database) throws -> PurgeSummary in
            var s = PurgeSummary()
            if let row = try Row.fetchOne(db, sql: """
                SELECT count(*), coalesce(sum(length(payload)), 0) FROM reject_payload WHERE reject_id IN (\(selection))
                """, arguments: args) {
                s.refusedPayloads = row[0]
                s.refusedPayloadBytes = row[1]
            }
            return s
        }
        if dryRun { return try read { try count($0.db) } }
        let summary = try writeDirect("purging refused payloads") { db, _ in
            try db.inTransaction {
                let s = try count(db)
                try db.execute(sql: "DELETE FROM reject_payload WHERE reject_id IN (\(selection))", arguments: args)
                return (.commit, s)
            }
        }
        if summary.refusedPayloads > 0 {
            try rewriteFile("rewriting the store after purging refused payloads")
            _ = emptyWAL()
        }
        return summary
    }
}

extension Store {
    /// Drops the last reported status (state, battery, firmware) of devices that reported it
    /// before their pilot's cutoff (`cutoffs[pilot]`, else `otherwise`); their counters and the
    /// times they were heard of stay. With `dryRun`, only counts. Otherwise, when it dropped any,
    /// the WAL is checkpointed and truncated: until then the old statuses are in the database
    /// file's pages and the WAL (a test finds them there without it). The rows are updated, not
    /// deleted: a test finds no copy left once the WAL is emptied, so the file is not rewritten.
    public func purgeDeviceStatuses(cutoffs: [String: Instant], otherwise: Instant, dryRun: Bool) throws -> Int {
        if !dryRun && options.readOnly { throw StoreError.readOnly(path: path) }
        let named = cutoffs.keys.sorted()
        var clauses = named.map { _ in "(p.code = ? AND d.status_received_at < ?)" }
        var arguments: [DatabaseValueConvertible] = named.flatMap { [$0, cutoffs[$0]!.millis] as [DatabaseValueConvertible] }
        clauses.append("(p.code NOT IN (\(named.map { _ in "?" }.joined(separator: ","))) AND d.status_received_at < ?)")
        arguments += named.map { $0 as DatabaseValueConvertible } + [otherwise.millis]
        let selection = "SELECT d.id FROM device d JOIN pilot p ON p.id = d.pilot_id WHERE d.status_received_at IS NOT NULL AND ("
            + clauses.joined(separator: " OR ") + ")"
        let args = StatementArguments(arguments.map { $0.databaseValue })
        if dryRun { return try read { try Int.fetchOne($0.db, sql: "SELECT count(*) FROM (\(selection))", arguments: args) ?? 0 } }
        let dropped = try Store.sqlite("dropping old device statuses") {
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE device SET status_state = NULL, status_at = NULL, status_received_at = NULL, battery_pct = NULL, firmware = NULL
                    WHERE id IN (\(selection))
                    """, arguments: args)
                return db.changesCount
            }
        }
        if dropped > 0 { _ = emptyWAL() }
        return dropped
    }
}

extension Database {
    /// Runs `body` in a transaction it commits or rolls back, and returns its value.
    func inTransaction<T>(_ body: () throws -> (Database.TransactionCompletion, T)) throws -> T {
        var value: T?
        try inTransaction(.immediate) {
            let (completion, v) = try body()
            value = v
            return completion
        }
        return value!
    }
}
