import PilotwatchCore

/// How the store opens its SQLite file.
///
/// ```swift
/// let store = try Store(path: "var/pilotwatch.sqlite", options: StoreOptions(synchronous: .normal))
/// ```
public struct StoreOptions: Sendable {
    /// SQLite's `synchronous` setting in WAL mode: `.full` syncs the WAL on every commit
    /// (a committed batch survives a power cut), `.normal` only at checkpoints (it survives
    /// a crash of the process, not of the machine).
    public enum Synchronous: String, Sendable, CaseIterable {
        case full = "FULL"
        case normal = "NORMAL"
    }

    public var synchronous: Synchronous = .full
    /// Page cache per connection, in MiB.
    public var cacheSizeMiB: Int = 32
    /// Opens an existing store for reading only (no migrations; `ingest` and `replay` throw).
    public var readOnly = false
    /// How long a connection waits for a lock held by another process (the CLI while `serve` writes).
    public var busyTimeoutSeconds: Double = 10
    /// WAL pages after which a commit checkpoints the WAL back into the database file.
    ///
    /// Larger values write hot pages back less often, at the price of a larger `-wal` file (up to
    /// `4 KiB × pages`, truncated back to twice that after a checkpoint). The default, 32,768 pages
    /// (128 MiB), measured about 15% less CPU per stored message than 8,192 on the ingest benchmark.
    public var walAutocheckpointPages: Int = 32_768

    public init(synchronous: Synchronous = .full, cacheSizeMiB: Int = 32, readOnly: Bool = false,
                busyTimeoutSeconds: Double = 10, walAutocheckpointPages: Int = 32_768) {
        self.synchronous = synchronous
        self.cacheSizeMiB = cacheSizeMiB
        self.readOnly = readOnly
        self.busyTimeoutSeconds = busyTimeoutSeconds
        self.walAutocheckpointPages = walAutocheckpointPages
    }
}

/// Consecutive inbox records for ``Store/ingest(_:more:)``: their items, those of them refused
/// as hash only (``IngestItem/keepsPayload``, to overwrite in the inbox once committed), and
/// where the records end.
public struct IngestChunk: Sendable {
    public var items: [IngestItem]
    public var scrubs: [InboxSpan]
    public var inboxPosition: InboxPosition?
    /// The slots of the items' codes, one for one, when the applier's preparer numbered them.
    var keys: BatchKeys?

    public init(items: [IngestItem], scrubs: [InboxSpan] = [], inboxPosition: InboxPosition? = nil) {
        self.items = items; self.scrubs = scrubs; self.inboxPosition = inboxPosition
    }

    init(items: [IngestItem], scrubs: [InboxSpan], inboxPosition: InboxPosition?, keys: BatchKeys?) {
        self.items = items; self.scrubs = scrubs; self.inboxPosition = inboxPosition; self.keys = keys
    }
}

/// One received message and what the contract said of it, ready to store.
public struct IngestItem: Sendable {
    /// The MQTT topic as received.
    public var topic: String
    public var receivedAt: Instant
    public var verdict: Verdict
    /// The raw payload; kept only in quarantine, and never for `identifying_data`.
    public var payload: [UInt8]
    /// The tombstones' generation ``Store/screen(_:)`` screened it under; 0: not screened.
    var screenedGeneration: UInt64 = 0

    public init(topic: String, receivedAt: Instant, verdict: Verdict, payload: [UInt8]) {
        self.topic = topic; self.receivedAt = receivedAt; self.verdict = verdict; self.payload = payload
    }

    /// A message as received from the broker, with the contract's verdict. When the topic
    /// itself is what was refused as identifying (a device id that is an e-mail address), it
    /// is not kept either: the quarantine records a placeholder in its place.
    public static func received(topic: String, receivedAt: Instant, verdict: Verdict, payload: [UInt8]) -> IngestItem {
        var kept = topic
        if case .refused(nil, let refusal) = verdict, refusal.reason == .identifyingData, refusal.detail.hasPrefix("topic:") {
            kept = "(withheld: identifying data in the topic)"
        }
        return IngestItem(topic: kept, receivedAt: receivedAt, verdict: verdict, payload: payload)
    }

    /// Whether the item's bytes may be kept: not for a refusal kept as hash only.
    public var keepsPayload: Bool {
        if case .refused(_, let refusal) = verdict { return refusal.reason.keepsPayload }
        return true
    }
}

/// What the store did with one ``IngestItem``.
public enum IngestOutcome: Sendable, Equatable {
    /// A new observation message: how many of its observations were new and how many
    /// were already stored (from another message).
    case accepted(newObservations: Int, duplicateObservations: Int)
    /// Its `(pilot, device, msg_id)` was already stored: acknowledged and ignored.
    case duplicateMessage
    /// A device status message, applied to the device.
    case status
    /// A pilot snapshot stored (contract 1.1); `replaced` when it replaced a lower revision of
    /// the same day end.
    case snapshot(replaced: Bool)
    /// A snapshot whose day end is held with an equal or higher revision: acknowledged, not stored.
    case duplicateSnapshot
    /// Refused and recorded in quarantine.
    case refused(ReasonCode)
}

/// Counters of the whole store, exact and kept across restarts.
public struct StoreStats: Sendable, Equatable {
    /// New observation messages stored.
    public var accepted: Int
    /// Observation messages whose `msg_id` was already stored.
    public var duplicate: Int
    /// Messages refused (currently in quarantine, replayed ones moved out).
    public var refused: Int
    /// Device status messages applied.
    public var statuses: Int
    public var refusedByReason: [ReasonCode: Int]
    /// Observations stored (measurements, scores, events and pilot-level ones).
    public var observations: Int
    /// Observations that arrived again in another message and were stored once.
    public var duplicateObservations: Int
    /// One entry per pilot code seen in a topic, sorted by code.
    public var pilots: [PilotStats]

    public init(accepted: Int, duplicate: Int, refused: Int, statuses: Int, refusedByReason: [ReasonCode: Int],
                observations: Int, duplicateObservations: Int, pilots: [PilotStats]) {
        self.accepted = accepted; self.duplicate = duplicate; self.refused = refused; self.statuses = statuses
        self.refusedByReason = refusedByReason; self.observations = observations
        self.duplicateObservations = duplicateObservations; self.pilots = pilots
    }
}

/// Counters of one pilot.
public struct PilotStats: Sendable, Equatable {
    public var pilot: String
    public var observations: Int
    /// Distinct subjects with at least one stored observation or event.
    public var subjects: Int
    /// Devices that sent at least one message (accepted, duplicate or refused) with a parsed topic.
    public var devices: Int
    /// The latest `at` of any stored observation or event of the pilot.
    public var lastObservationAt: Instant?
    public var accepted: Int
    public var duplicate: Int
    public var refused: Int
    public var statuses: Int

    public init(pilot: String, observations: Int, subjects: Int, devices: Int, lastObservationAt: Instant?,
                accepted: Int = 0, duplicate: Int = 0, refused: Int = 0, statuses: Int = 0) {
        self.pilot = pilot; self.observations = observations; self.subjects = subjects; self.devices = devices
        self.lastObservationAt = lastObservationAt
        self.accepted = accepted; self.duplicate = duplicate; self.refused = refused; self.statuses = statuses
    }
}

/// Which quarantined messages to list. Every field left nil matches everything.
///
/// ```swift
/// try store.rejects(RejectFilter(pilot: "hf-nord", reason: .unknownIndicator, limit: 20))
/// ```
public struct RejectFilter: Sendable {
    public var pilot: String?
    public var reason: ReasonCode?
    /// Received at or after this instant.
    public var since: Instant?
    public var limit: Int?
    /// Only rejects with a larger id (to read the quarantine a page at a time, oldest first).
    public var afterID: Int64?

    public init(pilot: String? = nil, reason: ReasonCode? = nil, since: Instant? = nil, limit: Int? = nil,
                afterID: Int64? = nil) {
        self.pilot = pilot; self.reason = reason; self.since = since; self.limit = limit; self.afterID = afterID
    }
}

/// One quarantined (refused) message.
public struct RejectRecord: Sendable, Equatable {
    public var id: Int64
    public var receivedAt: Instant
    public var topic: String
    /// Pilot and device codes when the topic parsed.
    public var pilot: String?
    public var device: String?
    public var reason: ReasonCode
    public var detail: String
    /// Lower-case hex SHA-256 of the payload (kept for every reason, `identifying_data` included).
    public var payloadSHA256: String
    /// The payload, only from ``Store/replayCandidates(_:)``; never kept for `identifying_data`.
    public var payload: [UInt8]?

    public init(id: Int64, receivedAt: Instant, topic: String, pilot: String?, device: String?, reason: ReasonCode,
                detail: String, payloadSHA256: String, payload: [UInt8]?) {
        self.id = id; self.receivedAt = receivedAt; self.topic = topic; self.pilot = pilot; self.device = device
        self.reason = reason; self.detail = detail; self.payloadSHA256 = payloadSHA256; self.payload = payload
    }
}

/// What ``Store/replay(_:)`` did.
public struct ReplaySummary: Sendable, Equatable {
    /// Rejects whose new verdict was accepted: their observations are now stored.
    public var accepted: Int
    /// Rejects whose message had meanwhile been stored (same `msg_id`): removed from quarantine.
    public var duplicates: Int
    /// Status messages applied.
    public var statuses: Int
    /// Rejects refused again (reason and detail updated).
    public var stillRefused: Int
    /// Reject ids not found (already replayed, for example).
    public var missing: Int
    /// Observations newly stored by the replay.
    public var newObservations: Int
    /// Rejects the database refused to replay (they stay in quarantine as they were).
    public var failed: Int

    public init(accepted: Int = 0, duplicates: Int = 0, statuses: Int = 0, stillRefused: Int = 0, missing: Int = 0,
                newObservations: Int = 0, failed: Int = 0) {
        self.accepted = accepted; self.duplicates = duplicates; self.statuses = statuses
        self.stillRefused = stillRefused; self.missing = missing; self.newObservations = newObservations
        self.failed = failed
    }

    /// Adds another part's counts.
    public mutating func add(_ other: ReplaySummary) {
        accepted += other.accepted; duplicates += other.duplicates; statuses += other.statuses
        stillRefused += other.stillRefused; missing += other.missing; newObservations += other.newObservations
        failed += other.failed
    }
}

/// Why the store could not do what was asked.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// SQLite's primary result code, when the error came from SQLite (`SQLITE_CONSTRAINT` is 19).
    public var sqliteResultCode: Int32? { sqliteExtendedResultCode.map { $0 & 0xFF } }

    /// SQLite's extended result code, when the error came from SQLite (`SQLITE_CONSTRAINT_NOTNULL`
    /// is 1299, `SQLITE_CONSTRAINT_TRIGGER` 1811); equal to the primary one when SQLite gave no
    /// more detail.
    public var sqliteExtendedResultCode: Int32? {
        if case .sqlite(_, _, let code?, _) = self { return code }
        return nil
    }

    /// The SQL statement SQLite refused, when known (its text only, with `?` for the values).
    public var sql: String? {
        if case .sqlite(_, _, _, let sql?) = self { return sql }
        return nil
    }

    /// The database was locked by another connection past the busy timeout (`SQLITE_BUSY`,
    /// `SQLITE_LOCKED`): worth retrying later, never a reason to give up on a message.
    public var isBusy: Bool { sqliteResultCode == 5 || sqliteResultCode == 6 }

    /// The folder that should hold the database file does not exist.
    case folderMissing(path: String)
    /// A read-only store was asked to open a file that does not exist.
    case fileMissing(path: String)
    /// `ingest` or `replay` on a store opened read-only.
    case readOnly(path: String)
    /// The file was written by a newer pilotwatch (it has migrations this one does not know).
    case newerSchema(path: String, unknown: [String])
    /// A read-only store was opened on a file whose schema is not fully migrated.
    case schemaNotMigrated(path: String)
    /// The backup destination already exists.
    case backupDestinationExists(path: String)
    /// SQLite reported an error; `code` is SQLite's extended result code when SQLite gave one
    /// (`SQLITE_BUSY` is 5, `SQLITE_CONSTRAINT_TRIGGER` 1811...), `sql` the statement it refused
    /// when known. Neither is part of ``description``'s sentence but the code.
    case sqlite(operation: String, message: String, code: Int32? = nil, sql: String? = nil)
    /// The erasure key file or the tombstone file beside the database cannot be used.
    case erasureKey(path: String, reason: String)

    public var description: String {
        switch self {
        case .erasureKey(let path, let reason):
            return "the erasure key or tombstone file \(path): \(reason); erased subjects cannot be recognised without it (see docs/privacy.md)"
        case .folderMissing(let path):
            return "the folder for the database \(path) does not exist; create it first (mkdir -p) or choose another --db path"
        case .fileMissing(let path):
            return "the database \(path) does not exist; run `pilotwatch serve` (or point --db at an existing store)"
        case .readOnly(let path):
            return "the database \(path) was opened read-only; it cannot store messages"
        case .newerSchema(let path, let unknown):
            return "the database \(path) was written by a newer pilotwatch (unknown migrations: \(unknown.joined(separator: ", "))); upgrade pilotwatch"
        case .schemaNotMigrated(let path):
            return "the database \(path) is not initialised by this pilotwatch version; open it once read-write (pilotwatch serve) to migrate it"
        case .backupDestinationExists(let path):
            return "the backup destination \(path) already exists; choose a new file name"
        case .sqlite(let operation, let message, let code, _):
            return "database error while \(operation): \(message)\(code.map { " (SQLite result code \($0))" } ?? "")"
        }
    }
}

/// `serve`'s last sign of life, as it records it in the store every few seconds.
public struct ServiceHeartbeat: Sendable, Equatable {
    public var pid: Int32
    public var startedAt: Instant
    public var beatAt: Instant
    public var brokerConnected: Bool
    /// Since when the broker has been connected (or disconnected, or never yet connected).
    public var connectionSince: Instant
    public var lastMessageAt: Instant?
    public var backlogBytes: Int64
    /// How long the inbox has held messages not yet in SQLite (0 when caught up).
    public var applyLagMillis: Int64
    /// Set when serve stopped cleanly.
    public var stoppedAt: Instant?

    public init(pid: Int32, startedAt: Instant, beatAt: Instant, brokerConnected: Bool, connectionSince: Instant,
                lastMessageAt: Instant?, backlogBytes: Int64, applyLagMillis: Int64, stoppedAt: Instant? = nil) {
        self.pid = pid; self.startedAt = startedAt; self.beatAt = beatAt; self.brokerConnected = brokerConnected
        self.connectionSince = connectionSince; self.lastMessageAt = lastMessageAt; self.backlogBytes = backlogBytes
        self.applyLagMillis = applyLagMillis; self.stoppedAt = stoppedAt
    }
}
