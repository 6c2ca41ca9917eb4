import GRDB
import PilotwatchCore

/// A day-end snapshot a site instance has built for the cluster, waiting for (or past) the
/// broker's acknowledgement.
public struct QueuedSnapshot: Sendable, Hashable {
    public var pilot: String
    public var asOf: Instant
    public var revision: Int64
    public var msgID: String
    /// The message as it is published.
    public var payload: String

    public init(pilot: String, asOf: Instant, revision: Int64, msgID: String, payload: String) {
        self.pilot = pilot; self.asOf = asOf; self.revision = revision; self.msgID = msgID; self.payload = payload
    }
}

extension Store {
    /// What disclosure control has published of the pilot (its state, as JSON), if anything.
    public func federationState(pilot: String) throws -> String? {
        try read { try String.fetchOne($0.db, sql: "SELECT state FROM federation_state WHERE pilot = ?", arguments: [pilot]) }
    }

    /// Puts a built snapshot in the outbox (replacing one of the same day end) and records the
    /// disclosure state it leaves, in one transaction.
    public func queueSnapshot(_ q: QueuedSnapshot, state: String) throws {
        _ = try writeDirect("queueing a snapshot") { db, _ in
            try db.inTransaction {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO federation_outbox (pilot, as_of, revision, msg_id, payload) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [q.pilot, q.asOf.millis, q.revision, q.msgID, q.payload])
                try db.execute(sql: "INSERT OR REPLACE INTO federation_state (pilot, state) VALUES (?, ?)", arguments: [q.pilot, state])
                return (.commit, ())
            }
        }
    }

    /// The snapshots waiting for the broker's acknowledgement, oldest day end first.
    public func federationOutbox() throws -> [QueuedSnapshot] {
        try read { r in
            try Row.fetchAll(r.db, sql: "SELECT pilot, as_of, revision, msg_id, payload FROM federation_outbox ORDER BY as_of, pilot")
                .map { QueuedSnapshot(pilot: $0[0], asOf: Instant(millis: $0[1]), revision: $0[2], msgID: $0[3], payload: $0[4]) }
        }
    }

    /// The broker acknowledged `q`: out of the outbox (unless a newer revision replaced it there),
    /// and kept as sent.
    public func markSnapshotSent(_ q: QueuedSnapshot, at: Instant) throws {
        _ = try writeDirect("recording a sent snapshot") { db, _ in
            try db.inTransaction {
                try db.execute(sql: "DELETE FROM federation_outbox WHERE pilot = ? AND as_of = ? AND revision = ?",
                               arguments: [q.pilot, q.asOf.millis, q.revision])
                try db.execute(sql: """
                    INSERT OR REPLACE INTO federation_sent (pilot, as_of, revision, msg_id, sha256, sent_at, payload)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [q.pilot, q.asOf.millis, q.revision, q.msgID, SHA256.hex(Array(q.payload.utf8)), at.millis, q.payload])
                return (.commit, ())
            }
        }
    }

    /// The latest day end built for the pilot (queued or sent), if any.
    public func lastFederatedDayEnd(pilot: String) throws -> Instant? {
        try read { r in
            try Int64.fetchOne(r.db, sql: """
                SELECT max(as_of) FROM (SELECT as_of FROM federation_outbox WHERE pilot = ?1 UNION ALL SELECT as_of FROM federation_sent WHERE pilot = ?1)
                """, arguments: [pilot]).map(Instant.init(millis:))
        }
    }

    /// How many day ends were sent (acknowledged) for the pilot.
    public func sentSnapshotCount(pilot: String) throws -> Int {
        try read { try Int.fetchOne($0.db, sql: "SELECT count(*) FROM federation_sent WHERE pilot = ?", arguments: [pilot]) ?? 0 }
    }

    /// Makes the day ends of `pilot` from `day` on be built and sent again (late data, or an
    /// erasure that changed them): they leave the outbox and the sent list, so that the next round
    /// builds them with a new revision, which the cluster takes in place of the old. Returns how
    /// many day ends were sent or waiting.
    @discardableResult
    public func requeueFederation(pilot: String, from day: Day) throws -> Int {
        let from = day.start.millis
        return try writeDirect("resending day ends") { db, _ in
            try db.inTransaction {
                try db.execute(sql: "DELETE FROM federation_outbox WHERE pilot = ? AND as_of >= ?", arguments: [pilot, from])
                var n = db.changesCount
                try db.execute(sql: "DELETE FROM federation_sent WHERE pilot = ? AND as_of >= ?", arguments: [pilot, from])
                n += db.changesCount
                return (.commit, n)
            }
        }
    }
}
