import GRDB
import PilotwatchCore

/// An ended pilot's final figures, archived before the retention policy purges its raw rows:
/// its day-end snapshot as of its end date (JSON, every figure exact), which `status`, `pilot`
/// and `export` read from then on.
public struct PilotArchive: Sendable, Hashable {
    public var pilot: String
    /// The day end of the pilot's end date.
    public var asOf: Instant
    public var archivedAt: Instant
    /// The snapshot message (JSON text).
    public var payload: String
    /// SHA-256 of `payload`, hex.
    public var sha256: String

    public init(pilot: String, asOf: Instant, archivedAt: Instant, payload: String) {
        self.pilot = pilot; self.asOf = asOf; self.archivedAt = archivedAt; self.payload = payload
        sha256 = SHA256.hex(Array(payload.utf8))
    }
}

extension Store {
    /// Every archive held, by pilot.
    ///
    /// ```swift
    /// for a in try store.archives() { print(a.pilot, a.asOf) }
    /// ```
    public func archives() throws -> [PilotArchive] {
        try read { r in
            try Row.fetchAll(r.db, sql: "SELECT pilot, as_of, archived_at, payload FROM pilot_archive ORDER BY pilot").map {
                PilotArchive(pilot: $0[0], asOf: Instant(millis: $0[1]), archivedAt: Instant(millis: $0[2]), payload: $0[3])
            }
        }
    }

    /// Keeps an ended pilot's final figures. An archive already held is kept as it is: the first
    /// one was taken while the raw rows were all there.
    /// - Returns: whether it was stored (false: the pilot already had one).
    @discardableResult
    public func saveArchive(_ archive: PilotArchive) throws -> Bool {
        if options.readOnly { throw StoreError.readOnly(path: path) }
        return try Store.sqlite("archiving the final figures of \(archive.pilot)") {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO pilot_archive (pilot, as_of, archived_at, payload, sha256) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (pilot) DO NOTHING
                    """, arguments: [archive.pilot, archive.asOf.millis, archive.archivedAt.millis, archive.payload, archive.sha256])
                return db.changesCount > 0
            }
        }
    }
}

extension StoreReader {
    /// What figures are computed from besides the rows: each day-end snapshot held (the latest
    /// revision of each pilot and day end) and each ended pilot's archive, by pilot and day end,
    /// with the SHA-256 of its payload.
    public func snapshotDigests() throws -> [(kind: String, pilot: String, asOf: Instant, revision: Int64, sha256: String)] {
        try Row.fetchAll(db, sql: """
            SELECT 'archive', pilot, as_of, 0, sha256 FROM pilot_archive
            UNION ALL SELECT 'snapshot', pilot, as_of, revision, sha256 FROM snapshot
            ORDER BY 1, 2, 3
            """).map { (kind: $0[0], pilot: $0[1], asOf: Instant(millis: $0[2]), revision: $0[3], sha256: $0[4]) }
    }
}
