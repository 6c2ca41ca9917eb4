import Foundation
import GRDB
import PilotwatchCore

/// What an erasure removed, in rows, and whether the write-ahead log could be emptied after it.
public struct ErasureSummary: Sendable, Equatable, Codable {
    public var tombstone = ""
    /// False when the subject had already been erased (its tombstone was there).
    public var newTombstone = true
    public var subjectRows = 0
    public var observations = 0
    public var events = 0
    public var dayRollups = 0
    public var indicatorRollups = 0
    public var messages = 0
    public var quarantined = 0
    public var devicesForgotten = 0
    /// Messages of the subject's that named other subjects too, or were stored before the store
    /// recorded whom a message was about: their counts (messages, observations) stay.
    public var messagesNotAttributed = 0
    public var walEmptied = false
    /// Inbox records overwritten (set by the caller that holds the inbox).
    public var inboxRecords = 0
    /// The subject's first data (milliseconds), as the store held it: the day ends from it on changed.
    public var firstDataAtMillis: Int64?
    /// Day ends of the pilot to be built and sent again to the cluster (a site instance).
    public var dayEndsResent = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case tombstone, newTombstone = "new_tombstone", subjectRows = "subject_rows", observations, events
        case dayRollups = "day_rollups", indicatorRollups = "indicator_rollups", messages, quarantined
        case devicesForgotten = "devices_forgotten", messagesNotAttributed = "messages_not_attributed"
        case walEmptied = "wal_emptied", inboxRecords = "inbox_records"
        case firstDataAtMillis = "first_data_at_ms", dayEndsResent = "day_ends_resent"
    }
}

extension Store {
    /// Loads the tombstones and the erasure keys (`{database}.key`). A store with tombstones
    /// and no readable key refuses to open for writing: it could not recognise the erased.
    func loadTombstones() throws {
        let stored = try read { reader in
            try Row.fetchAll(reader.db, sql: "SELECT hash, pilot, erased_at FROM erased_subject").map {
                Tombstone(hash: $0[0], pilot: $0[1], erasedAt: $0[2])
            }
        }
        var keys = try ErasureKeys.read(database: path)
        // A store without tombstones gets its key now if it has none (made at install, or here
        // at the first writable open); one with tombstones and no key must not get a new one.
        if stored.isEmpty && keys == nil { keys = try ErasureKeys.ensure(database: path) }
        if !stored.isEmpty && keys == nil {
            throw StoreError.erasureKey(path: ErasureKeys.path(forDatabase: path),
                                        reason: "it is missing, and the store holds \(stored.count) tombstones made with it; put the key file back (every backup carries it: `pilotwatch db restore` brings it back)")
        }
        tombstones.load(keys: keys, tombstones: stored)
    }

    /// `item` as the store takes it: an observation message naming an erased subject of its
    /// pilot becomes an `erased_subject` refusal (kept as hash only).
    ///
    /// A message refused for another reason whose payload would be kept (and could be replayed
    /// once the cause is fixed) is refused as `erased_subject` too when any run of pseudonym
    /// characters in it is an erased subject of the pilot.
    ///
    /// The item comes back stamped with the tombstones' generation it was screened under:
    /// ``ingest(_:inboxPosition:scrubs:)`` screens it again only if a tombstone came since.
    public func screen(_ item: IngestItem) -> IngestItem {
        // Read before the check: a tombstone added meanwhile leaves the item with an older stamp.
        let generation = tombstones.currentGeneration
        var screened = item
        switch item.verdict {
        case .observations(let topic, let message):
            if let hit = tombstones.erased(pilot: topic.pilot, subjects: message.observations.lazy.map(\.subject)) {
                let refusal = Refusal(.erasedSubject, "observations[\(hit.index)].subject: this subject was erased (tombstone \(SubjectTombstone.short(hit.hash)))")
                screened = IngestItem(topic: item.topic, receivedAt: item.receivedAt, verdict: .refused(topic, refusal), payload: item.payload)
            }
        case .refused(let topic?, let refusal) where refusal.reason.keepsPayload && tombstones.has(pilot: topic.pilot):
            let candidates = Array(PayloadMention.candidates(in: item.payload)).sorted()
            if let hit = tombstones.erased(pilot: topic.pilot, subjects: candidates.lazy.map { Optional($0) }) {
                let erased = Refusal(.erasedSubject, "payload: names a subject that was erased (tombstone \(SubjectTombstone.short(hit.hash))); it was refused as \(refusal.reason.rawValue) before that")
                screened = IngestItem(topic: item.topic, receivedAt: item.receivedAt, verdict: .refused(topic, erased), payload: item.payload)
            }
        default:
            break
        }
        screened.screenedGeneration = generation
        return screened
    }

    /// How many tombstones the store holds (read from the file, whatever the mode it was opened in).
    public func tombstoneCount() throws -> Int {
        try read { try Int.fetchOne($0.db, sql: "SELECT count(*) FROM erased_subject") ?? 0 }
    }

    /// Erases `subject` of `pilot`: its observations, events, roll-ups and subject row; the
    /// messages that named it alone (taken back from the day, device and store counters); the
    /// quarantine entries whose payload or detail names it (taken back from the refusal counts);
    /// a device that only it used. Then records its tombstone (the keyed hash under the current
    /// key), so that every later message naming it is refused.
    ///
    /// ```swift
    /// let s = try store.erase(pilot: "hf-nord-02", subject: "p-7f3a9c21", keys: keys, at: .now)
    /// if !s.walEmptied { /* readers held the WAL: run it again (it is idempotent) */ }
    /// ```
    ///
    /// Then every erasure rewrites the whole file (`VACUUM`) and empties the write-ahead log.
    /// Deleted cells are overwritten (`secure_delete`), but not the copies B-tree balancing
    /// leaves: deleting a subject's rows one after the other rebalances the pages they share with
    /// other subjects', and a row of the subject moved before its turn leaves its old bytes in
    /// the page's free space (a test finds readings so after the deletion). The rewrite writes
    /// the whole file (measured: 0.13 s for a 33 MiB store of 1 million observations) and needs
    /// as much free disk space again. A run that finds the subject gone rewrites too, so that
    /// running it again finishes one stopped before.
    ///
    /// The inbox is not touched here: its records are the caller's (the applier thread's).
    ///
    /// `scrubs` are the inbox records naming the subject that the caller will overwrite: they are
    /// recorded (`inbox_scrub`) in the erasure's transaction, so that a crash before they are
    /// overwritten is mended at the next start.
    public func erase(pilot: String, subject: String, keys: ErasureKeys, at: Instant,
                      scrubs: [InboxSpan] = []) throws -> ErasureSummary {
        guard let hash = keys.currentHash(pilot: pilot, subject: subject) else {
            throw StoreError.erasureKey(path: ErasureKeys.path(forDatabase: path), reason: "it holds no key")
        }
        var result = try writeDirect("erasing a subject") { db, state -> ErasureSummary in
            do {
                let summary = try db.inTransaction { () -> (Database.TransactionCompletion, ErasureSummary) in
                    var s = try SubjectEraser(db: db, pilot: pilot, subject: subject).run()
                    s.tombstone = hash
                    let hashes = keys.hashes(pilot: pilot, subject: subject)
                    let known = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM erased_subject WHERE hash IN (\(hashes.map { _ in "?" }.joined(separator: ","))))",
                                                  arguments: StatementArguments(hashes)) ?? false
                    s.newTombstone = !known
                    if !known {
                        try db.execute(sql: "INSERT INTO erased_subject (hash, pilot, erased_at) VALUES (?, ?, ?)",
                                       arguments: [hash, pilot, at.millis])
                    }
                    for span in scrubs {
                        try db.execute(sql: "INSERT OR REPLACE INTO inbox_scrub (segment, offset, length) VALUES (?, ?, ?)",
                                       arguments: [span.segment, span.offset, span.length])
                    }
                    return (.commit, s)
                }
                // Rows were deleted: ids the writer cached may be gone. The tombstone is known
                // before any other write can run (GRDB serialises them after this one).
                state.reset()
                tombstones.add(Tombstone(hash: hash, pilot: pilot, erasedAt: at.millis), keys: keys)
                return summary
            } catch {
                state.reset()
                throw error
            }
        }
        try rewriteFile("rewriting the store after erasing a subject")
        result.walEmptied = emptyWAL()
        return result
    }

    /// Re-applies tombstones after a restore or at a start: those of `file` (the append-only file
    /// beside the database) that the store lacks are added, and any subject that one of the store's
    /// or the file's tombstones stands for is erased again. Returns the store's tombstones that
    /// the file lacks (to append to it) and the hashes of the subjects erased again.
    public func reapplyTombstones(_ file: [Tombstone], keys: ErasureKeys?, at now: Instant) throws -> (missingFromFile: [Tombstone], erasedAgain: [String]) {
        let stored = try read { reader in
            try Row.fetchAll(reader.db, sql: "SELECT hash, pilot, erased_at FROM erased_subject").map {
                Tombstone(hash: $0[0], pilot: $0[1], erasedAt: $0[2])
            }
        }
        let storedHashes = Set(stored.map(\.hash))
        let fileHashes = Set(file.map(\.hash))
        let toAdd = file.filter { !storedHashes.contains($0.hash) }
        let all = stored + toAdd
        guard !all.isEmpty else { return ([], []) }
        guard let keys else {
            throw StoreError.erasureKey(path: ErasureKeys.path(forDatabase: path),
                                        reason: "it is missing, and there are \(all.count) tombstones to apply")
        }
        var byPilot: [String: Set<String>] = [:]
        for t in all { byPilot[t.pilot, default: []].insert(t.hash) }
        // Subjects still present that a tombstone stands for (an older backup put back).
        // Subjects still present, and pseudonyms still in a refused message (an older backup
        // restored may hold only those).
        let present = try read { reader -> [(String, String)] in
            var out = try Row.fetchAll(reader.db, sql: "SELECT p.code, s.code FROM subject s JOIN pilot p ON p.id = s.pilot_id")
                .map { ($0[0] as String, $0[1] as String) }
            for pilot in byPilot.keys.sorted() {
                var seen: Set<String> = []
                for row in try Row.fetchAll(reader.db, sql: """
                    SELECT r.detail, p.payload FROM reject r LEFT JOIN reject_payload p ON p.reject_id = r.id WHERE r.pilot = ?
                    """, arguments: [pilot]) {
                    seen.formUnion(PayloadMention.tokens(in: Array((row[0] as String).utf8)))
                    if let payload = row[1] as Data? { seen.formUnion(PayloadMention.candidates(in: payload)) }
                }
                out += seen.sorted().map { (pilot, $0) }
            }
            return out
        }
        var again: [(pilot: String, subject: String, hash: String)] = []
        var matched: Set<String> = []
        for (pilot, subject) in present {
            guard let hashes = byPilot[pilot] else { continue }
            if let hit = keys.hashes(pilot: pilot, subject: subject).first(where: hashes.contains),
               matched.insert(pilot + "\u{0}" + subject).inserted {
                again.append((pilot, subject, hit))
            }
        }
        if !toAdd.isEmpty {
            _ = try writeDirect("restoring tombstones") { db, _ in
                try db.inTransaction {
                    for t in toAdd {
                        try db.execute(sql: "INSERT OR IGNORE INTO erased_subject (hash, pilot, erased_at) VALUES (?, ?, ?)",
                                       arguments: [t.hash, t.pilot, t.erasedAt])
                    }
                    return (.commit, ())
                }
            }
        }
        tombstones.load(keys: keys, tombstones: all)
        for hit in again {
            _ = try erase(pilot: hit.pilot, subject: hit.subject, keys: keys, at: now)
        }
        return (stored.filter { !fileHashes.contains($0.hash) }, again.map(\.hash))
    }

    /// The erasure keys a backup copy carries (empty in a live store).
    public func keysCarried() throws -> [String] {
        try read { try String.fetchAll($0.db, sql: "SELECT key FROM erasure_key ORDER BY id") }
    }

    /// Empties `erasure_key` (a restored copy's keys are in the key file beside it now).
    public func dropCarriedKeys() throws {
        _ = try writeDirect("dropping the carried keys") { db, _ in try db.execute(sql: "DELETE FROM erasure_key") }
    }

    /// Rewrites the whole file (`VACUUM`): what deletions left in free space, and copies that
    /// B-tree balancing left in the pages' unused bytes, are not in the new file. The old pages
    /// stay in the database file until the write-ahead log is checkpointed: ``emptyWAL()`` next.
    func rewriteFile(_ operation: String) throws {
        _ = try writeDirect(operation) { db, _ in try db.execute(sql: "VACUUM") }
    }

    /// Checkpoints the WAL and truncates it, trying for a few seconds while readers hold old
    /// snapshots; true once it is empty.
    func emptyWAL() -> Bool {
        for attempt in 0..<20 {
            if attempt > 0 { Thread.sleep(forTimeInterval: 0.25) }
            let done = (try? writeDirect("emptying the write-ahead log") { db, _ -> Bool in
                guard let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") else { return false }
                return (row[0] as Int) == 0
            }) ?? false
            if done { return true }
        }
        return false
    }
}

/// The deletions and count corrections of one erasure, inside its transaction.
private struct SubjectEraser {
    let db: Database
    let pilot: String
    let subject: String

    func run() throws -> ErasureSummary {
        var s = ErasureSummary()
        let pilotID = try Int64.fetchOne(db, sql: "SELECT id FROM pilot WHERE code = ?", arguments: [pilot])
        var touchedDevices: Set<Int64> = []
        if let pilotID, let subjectID = try Int64.fetchOne(db, sql: "SELECT id FROM subject WHERE pilot_id = ? AND code = ?",
                                                            arguments: [pilotID, subject]) {
            s.firstDataAtMillis = try Int64.fetchOne(db, sql: "SELECT first_at FROM subject WHERE id = ?", arguments: [subjectID])
            for table in ["observation", "event"] {
                touchedDevices.formUnion(try Int64.fetchAll(db, sql: "SELECT DISTINCT device_id FROM \(table) WHERE subject_id = ?",
                                                            arguments: [subjectID]))
            }
            let storedRows = try Int.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM observation WHERE subject_id = ?) + (SELECT count(*) FROM event WHERE subject_id = ?)
                """, arguments: [subjectID, subjectID]) ?? 0
            try takeBackMessages(subjectID: subjectID, pilotID: pilotID, storedRows: storedRows, summary: &s, devices: &touchedDevices)
            s.messagesNotAttributed = try countUnattributed(subjectID: subjectID, devices: touchedDevices)
            s.observations = try delete("DELETE FROM observation WHERE subject_id = ?", subjectID)
            s.events = try delete("DELETE FROM event WHERE subject_id = ?", subjectID)
            s.dayRollups = try delete("DELETE FROM subject_day WHERE subject_id = ?", subjectID)
            s.indicatorRollups = try delete("DELETE FROM subject_indicator WHERE subject_id = ?", subjectID)
            s.subjectRows = try delete("DELETE FROM subject WHERE id = ?", subjectID)
            try db.execute(sql: """
                UPDATE pilot SET last_observation_at = (SELECT max(m) FROM (
                    SELECT max(o.at) AS m FROM observation o JOIN subject x ON x.id = o.subject_id WHERE x.pilot_id = ?1
                    UNION ALL SELECT max(e.at) FROM event e JOIN subject x ON x.id = e.subject_id WHERE x.pilot_id = ?1
                    UNION ALL SELECT max(at) FROM pilot_observation WHERE pilot_id = ?1))
                WHERE id = ?1
                """, arguments: [pilotID])
        }
        s.quarantined = try takeBackRejects(pilotID: pilotID, devices: &touchedDevices)
        s.devicesForgotten = try forgetDevices(touchedDevices)
        try db.execute(sql: "DELETE FROM pilot_day WHERE accepted = 0 AND duplicate = 0 AND refused = 0 AND statuses = 0 AND observations = 0 AND duplicate_observations = 0")
        try db.execute(sql: "DELETE FROM refusal_day WHERE n = 0")
        return s
    }

    private func delete(_ sql: String, _ id: Int64) throws -> Int {
        try db.execute(sql: sql, arguments: [id])
        return db.changesCount
    }

    /// The messages that named the subject alone: deleted, and taken back from their received
    /// day's counts, their device's and the store's. The subject's stored rows are taken back
    /// from the store's and their devices' observation counts exactly; by day, a message's rows
    /// are those it stored first (attributed in the order received), and the rows that came in
    /// messages naming other subjects too stay in their day's count.
    private func takeBackMessages(subjectID: Int64, pilotID: Int64, storedRows: Int,
                                  summary s: inout ErasureSummary, devices: inout Set<Int64>) throws {
        for row in try Row.fetchAll(db, sql: """
            SELECT device_id, count(*) FROM (SELECT device_id FROM observation WHERE subject_id = ?1
                                              UNION ALL SELECT device_id FROM event WHERE subject_id = ?1)
            GROUP BY device_id
            """, arguments: [subjectID]) {
            try db.execute(sql: "UPDATE device SET observations = max(observations - ?, 0) WHERE id = ?", arguments: [row[1] as Int, row[0] as Int64])
        }
        try db.execute(sql: "UPDATE ingest_total SET observations = max(observations - ?, 0) WHERE id = 1", arguments: [storedRows])
        let messages = try Row.fetchAll(db, sql: """
            SELECT device_id, received_at, coalesce(observations, 0) FROM message WHERE subject_id = ? ORDER BY received_at
            """, arguments: [subjectID])
        var remaining = storedRows
        for m in messages {
            let device: Int64 = m[0], receivedAt: Int64 = m[1], carried: Int = m[2]
            let stored = min(carried, remaining)
            remaining -= stored
            let duplicates = carried - stored
            let day = Instant(millis: receivedAt).day.index
            try db.execute(sql: """
                UPDATE pilot_day SET accepted = max(accepted - 1, 0), observations = max(observations - ?, 0),
                    duplicate_observations = max(duplicate_observations - ?, 0)
                WHERE pilot_id = ? AND day = ?
                """, arguments: [stored, duplicates, pilotID, day])
            try db.execute(sql: """
                UPDATE ingest_total SET accepted = max(accepted - 1, 0), duplicate_observations = max(duplicate_observations - ?, 0)
                WHERE id = 1
                """, arguments: [duplicates])
            try db.execute(sql: "UPDATE device SET messages = max(messages - 1, 0) WHERE id = ?", arguments: [device])
            devices.insert(device)
        }
        try db.execute(sql: "DELETE FROM message WHERE subject_id = ?", arguments: [subjectID])
        s.messages = messages.count
    }

    /// Messages on the subject's devices that the store cannot attribute (several subjects, or
    /// stored before messages recorded their subject): their counts stay.
    private func countUnattributed(subjectID: Int64, devices: Set<Int64>) throws -> Int {
        guard !devices.isEmpty else { return 0 }
        let list = devices.map(String.init).joined(separator: ",")
        return try Int.fetchOne(db, sql: "SELECT count(*) FROM message WHERE device_id IN (\(list)) AND subject_id IS NULL") ?? 0
    }

    /// Quarantine entries of the pilot (or of no known pilot) whose payload or detail names the
    /// subject: deleted, and taken back from the refusal counts.
    private func takeBackRejects(pilotID: Int64?, devices: inout Set<Int64>) throws -> Int {
        let rows = try Row.fetchAll(db, sql: """
            SELECT r.id, r.received_at, r.device, r.reason, r.detail, p.payload FROM reject r
            LEFT JOIN reject_payload p ON p.reject_id = r.id
            WHERE r.pilot = ? OR r.pilot IS NULL
            """, arguments: [pilot])
        var taken = 0
        for row in rows {
            let detail: String = row[4]
            let payload: Data? = row[5]
            guard PayloadMention.tokens(in: Array(detail.utf8)).contains(subject)
                    || payload.map({ PayloadMention.names(subject, in: $0) }) == true else { continue }
            let id: Int64 = row[0], receivedAt: Int64 = row[1], device: String? = row[2]
            let reason = ReasonCode(rawValue: row[3]) ?? .schema
            let day = Instant(millis: receivedAt).day.index
            var countedPilot: Int64 = 0
            if let pilotID, device != nil, reason.countsAgainstPilot {
                countedPilot = pilotID
                if let deviceID = try Int64.fetchOne(db, sql: "SELECT id FROM device WHERE pilot_id = ? AND code = ?", arguments: [pilotID, device]) {
                    try db.execute(sql: "UPDATE device SET refused = max(refused - 1, 0) WHERE id = ?", arguments: [deviceID])
                    devices.insert(deviceID)
                }
                try db.execute(sql: "UPDATE pilot_day SET refused = max(refused - 1, 0) WHERE pilot_id = ? AND day = ?", arguments: [pilotID, day])
            }
            try db.execute(sql: "UPDATE refusal_day SET n = max(n - 1, 0) WHERE pilot_id = ? AND day = ? AND reason = ?",
                           arguments: [countedPilot, day, reason.rawValue])
            try db.execute(sql: "UPDATE ingest_total SET refused = max(refused - 1, 0) WHERE id = 1")
            try db.execute(sql: "DELETE FROM reject WHERE id = ?", arguments: [id])
            taken += 1
        }
        return taken
    }

    /// Forgets the devices that carried nothing but the erased subject's messages: no message,
    /// refusal or status left (a device's observation rows all came with its messages, so none of
    /// anyone else's refer to it; the foreign keys would refuse the deletion otherwise).
    private func forgetDevices(_ devices: Set<Int64>) throws -> Int {
        var forgotten = 0
        for id in devices.sorted() {
            let unused = try Bool.fetchOne(db, sql: """
                SELECT messages = 0 AND refused = 0 AND statuses = 0
                    AND NOT EXISTS (SELECT 1 FROM message WHERE device_id = ?1)
                FROM device WHERE id = ?1
                """, arguments: [id]) ?? false
            if unused {
                try db.execute(sql: "DELETE FROM device WHERE id = ?", arguments: [id])
                forgotten += 1
            }
        }
        return forgotten
    }
}
