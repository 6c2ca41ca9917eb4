import GRDB
import PilotwatchCore

/// A day-end snapshot the store holds for an aggregate pilot (contract 1.1): its latest
/// revision, with the message as received.
public struct StoredSnapshot: Sendable, Hashable {
    public var pilot: String
    public var site: String
    /// The day end it describes.
    public var asOf: Instant
    public var revision: Int64
    public var msgID: String
    public var receivedAt: Instant
    /// The snapshot message as received (JSON text).
    public var payload: String
    /// SHA-256 of `payload`, hex.
    public var sha256: String
}

/// One pilot's snapshots in the store: its latest day end and how many it holds.
public struct SnapshotSummary: Sendable, Hashable {
    public var pilot: String
    /// The site of the latest snapshot.
    public var site: String
    public var latestAsOf: Instant
    public var revision: Int64
    public var receivedAt: Instant
    /// Day ends held (one row per day end).
    public var dayEnds: Int
}

extension Store {
    /// Every snapshot held, by pilot then day end; with `pilot`, that pilot's only.
    ///
    /// ```swift
    /// for s in try store.snapshots(pilot: "hf-nord-02") { print(s.asOf, s.revision) }
    /// ```
    public func snapshots(pilot: String? = nil) throws -> [StoredSnapshot] {
        try read { r in
            try Row.fetchAll(r.db, sql: """
                SELECT \(StoredSnapshot.columns) FROM snapshot WHERE ?1 IS NULL OR pilot = ?1 ORDER BY pilot, as_of
                """, arguments: [pilot]).map(StoredSnapshot.init(row:))
        }
    }

    /// The pilot's latest day-end snapshot at or before `t`, the one a view as of `t` uses.
    public func latestSnapshot(pilot: String, atOrBefore t: Instant) throws -> StoredSnapshot? {
        try read { r in
            try Row.fetchOne(r.db, sql: """
                SELECT \(StoredSnapshot.columns) FROM snapshot WHERE pilot = ? AND as_of <= ? ORDER BY as_of DESC LIMIT 1
                """, arguments: [pilot, t.millis]).map(StoredSnapshot.init(row:))
        }
    }

    /// Per pilot with snapshots: the latest day end, its site, revision and arrival, and how
    /// many day ends are held. Sorted by pilot.
    public func snapshotSummaries() throws -> [SnapshotSummary] {
        try read { r in
            try Row.fetchAll(r.db, sql: """
                SELECT s.pilot, s.site, s.as_of, s.revision, s.received_at, c.n
                FROM (SELECT pilot, max(as_of) AS latest, count(*) AS n FROM snapshot GROUP BY pilot) c
                JOIN snapshot s ON s.pilot = c.pilot AND s.as_of = c.latest
                ORDER BY s.pilot
                """).map { row in
                SnapshotSummary(pilot: row[0], site: row[1], latestAsOf: Instant(millis: row[2]), revision: row[3],
                                receivedAt: Instant(millis: row[4]), dayEnds: row[5])
            }
        }
    }
}

extension StoredSnapshot {
    static let columns = "pilot, site, as_of, revision, msg_id, received_at, payload, sha256"

    init(row: Row) {
        self.init(pilot: row[0], site: row[1], asOf: Instant(millis: row[2]), revision: row[3], msgID: row[4],
                  receivedAt: Instant(millis: row[5]), payload: row[6], sha256: row[7])
    }
}

extension BatchWriter {
    /// Stores an accepted snapshot in the batch's transaction: a new `(pilot, as_of)` is inserted,
    /// a higher revision replaces the row, an equal or lower one is a duplicate (not stored).
    func storeSnapshot(_ topic: Topic, _ receipt: SnapshotReceipt, payload: [UInt8], receivedAt: Instant) throws -> IngestOutcome {
        let held = try Int64.fetchOne(db.cachedStatement(sql: "SELECT revision FROM snapshot WHERE pilot = ? AND as_of = ?"),
                                      arguments: [topic.pilot, receipt.asOf.millis])
        if let held, held >= receipt.revision { return .duplicateSnapshot }
        try db.cachedStatement(sql: """
            INSERT INTO snapshot (pilot, as_of, site, revision, msg_id, received_at, payload, sha256)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (pilot, as_of) DO UPDATE SET site = excluded.site, revision = excluded.revision,
                msg_id = excluded.msg_id, received_at = excluded.received_at, payload = excluded.payload, sha256 = excluded.sha256
            """).execute(arguments: [topic.pilot, receipt.asOf.millis, receipt.site, receipt.revision, receipt.msgID,
                                     receivedAt.millis, String(decoding: payload, as: UTF8.self), SHA256.hex(payload)])
        return .snapshot(replaced: held != nil)
    }
}
