import Foundation
import GRDB
import GRDBSQLite
import PilotwatchCore

/// Surrogate ids the writer already knows, so that most messages need no id lookup.
///
/// Entries are added inside a write transaction; if that transaction rolls back, ``reset()``
/// forgets everything (a rolled-back id could otherwise be reused by SQLite for another row).
/// Rows are never deleted, so a committed entry stays true for the life of the file, even when
/// another process (the CLI replaying quarantine) writes to the same store.
final class WriterState: @unchecked Sendable {
    // @unchecked Sendable: this object is owned by one `Store`, and every read and write of its
    // properties happens inside that store's `DatabasePool.writeWithoutTransaction` closures.
    // GRDB runs those closures one at a time on the pool's serial writer queue, so no two
    // accesses ever overlap, and each one happens-after the previous one.
    var pilots: [String: Int64] = [:]
    var indicators: [String: Int64] = [:]
    var devices: [DeviceKey: Int64] = [:]
    var subjects: [SubjectKey: SubjectInfo] = [:]

    func reset() {
        pilots = [:]; indicators = [:]; devices = [:]; subjects = [:]
    }
}

struct DeviceKey: Hashable { var pilot: Int64; var code: String }
struct SubjectKey: Hashable { var pilot: Int64; var code: String }

/// What the writer remembers of a subject row, to skip updates that would change nothing.
struct SubjectInfo {
    var id: Int64
    var firstAt: Int64
    var firstMeasureAt: Int64?
}

/// A quarantine row being replayed.
struct ReplayedReject {
    var id: Int64
    var receivedAt: Instant
    var pilot: String?
    var device: String?
    var reason: ReasonCode
    /// A snapshot's refusal (topic `.../agg`): counted store-wide, with no device.
    var isSnapshot = false
}

/// Message and observation counters (deltas within a batch; negative when replay moves a refusal).
struct Counts {
    var accepted = 0, duplicate = 0, refused = 0, statuses = 0, observations = 0, duplicateObservations = 0
}

struct DayKey: Hashable { var pilot: Int64; var day: Int }
struct RefusalKey: Hashable { var pilot: Int64; var day: Int; var reason: ReasonCode }
struct SubjectDayKey: Hashable, Comparable {
    var subject: Int64; var day: Int
    static func < (a: Self, b: Self) -> Bool { (a.subject, a.day) < (b.subject, b.day) }
}
struct SubjectIndicatorKey: Hashable, Comparable {
    var subject: Int64; var indicator: Int64
    static func < (a: Self, b: Self) -> Bool { (a.subject, a.indicator) < (b.subject, b.indicator) }
}

struct DayAggregate {
    var firstAt: Int64 = .max, lastAt: Int64 = .min, n = 0

    mutating func add(at: Int64) {
        firstAt = min(firstAt, at); lastAt = max(lastAt, at); n += 1
    }
}

/// A subject's activity roll-up as the `subject` row stores it (``Schema/v2``): its latest
/// measurement or score and the days with one among the 128 ending on that one's day, as
/// ``ActivityDays`` of two words (`lo`: days 0-63 back, `hi`: 64-127).
struct ActivityMask: Equatable {
    static let coveredDays = 128

    private(set) var lastAt: Int64?
    private var days: ActivityDays

    init(lastAt: Int64? = nil, lo: UInt64 = 0, hi: UInt64 = 0) {
        self.lastAt = lastAt
        days = ActivityDays(lastDay: lastAt.map { Instant(millis: $0).day } ?? Day(index: 0), words: [lo, hi])
    }

    var lo: UInt64 { days.words[0] }
    var hi: UInt64 { days.words[1] }

    /// Adds a measurement or score at `at` (epoch milliseconds): a later day moves the set to
    /// end there (days older than 128 days before it fall off), an earlier day within the 128
    /// sets its bit, an older one changes nothing.
    mutating func add(at: Int64) {
        let day = Instant(millis: at).day
        if lastAt == nil || day > days.lastDay { days = days.rebased(lastDay: day, covering: Self.coveredDays) }
        days.insert(day)
        lastAt = max(lastAt ?? at, at)
    }
}

struct IndicatorAggregate {
    var n = 0, firstAt: Int64 = 0, firstValue = 0.0, lastAt: Int64 = 0, lastValue = 0.0

    /// Counts a value; the first and last are those of the earliest and latest time (the
    /// first added of equal times).
    mutating func add(at: Int64, value: Double) {
        n += 1
        if n == 1 || at < firstAt { firstAt = at; firstValue = value }
        if n == 1 || at > lastAt { lastAt = at; lastValue = value }
    }
}

/// What a batch changes in a subject row: its first times, when lowered, and the times of its
/// new measurements and scores (for its activity roll-up).
struct SubjectChange {
    var firstAt: Int64?
    var firstMeasureAt: Int64?
    var measures: [Int64] = []
}

struct DeviceDelta {
    var firstSeen: Int64
    var lastSeen: Int64
    var messages = 0, duplicates = 0, refused = 0, statuses = 0, observations = 0
    var status: (state: String, at: Int64, battery: Double?, firmware: String?, receivedAt: Int64)?
}

/// A cached statement stepped through SQLite's C API, for the statements ingest runs once per
/// message or per roll-up key.
///
/// Binding integers, doubles and text directly skips GRDB's per-call argument boxing and
/// validation, which cost about a tenth of ingest CPU. For INSERT and UPDATE statements (no
/// result rows) run inside the writer's transaction, and for reads stepped by
/// ``forEachRow(_:)`` or ``firstRow(_:)``; GRDB still owns the statement.
struct FastStatement {
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        guard let connection = db.sqliteConnection else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the database connection is closed")
        }
        self.connection = connection
    }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    /// NaN binds as NULL (SQLite's rule), which NOT NULL columns refuse.
    func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(handle, index, value) }
    /// Binds the exact UTF-8 bytes (a NUL inside the text does not cut it short).
    func bind(_ index: Int32, _ value: String) {
        var text = value
        text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                if let start = chars.baseAddress {
                    _ = sqlite3_bind_text(handle, index, start, Int32(chars.count), sqliteTransient)
                } else {
                    // An empty buffer has no address, and a NULL pointer would bind NULL, not ''.
                    _ = "".withCString { sqlite3_bind_text(handle, index, $0, 0, sqliteTransient) }
                }
            }
        }
    }
    func bind(_ index: Int32, _ value: Int64?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Runs the statement with the values bound so far; returns the number of rows it changed.
    @discardableResult
    func run() throws -> Int {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(connection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
        return Int(sqlite3_changes(connection))
    }
}

extension FastStatement {
    /// The columns of the row a query statement is on, read through SQLite's C API.
    struct Columns {
        fileprivate let handle: OpaquePointer

        func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }
        func optionalInt64(_ index: Int32) -> Int64? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, index)
        }
        func text(_ index: Int32) -> String {
            guard let bytes = sqlite3_column_text(handle, index) else { return "" }
            let count = Int(sqlite3_column_bytes(handle, index))
            return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        }
        func optionalText(_ index: Int32) -> String? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : text(index)
        }
        func double(_ index: Int32) -> Double { sqlite3_column_double(handle, index) }
        func optionalDouble(_ index: Int32) -> Double? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_double(handle, index)
        }
        /// The text of the column compared with `known`'s bytes; `known` itself when equal (no new String).
        func text(_ index: Int32, reusing known: String) -> String {
            guard let bytes = sqlite3_column_text(handle, index) else { return "" }
            let buffer = UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, index)))
            return known.utf8.elementsEqual(buffer) ? known : String(decoding: buffer, as: UTF8.self)
        }
    }

    /// Runs a query with the values bound so far and returns `body` of its first row, if any.
    func firstRow<T>(_ body: (Columns) throws -> T) throws -> T? {
        var result: T?
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW {
            result = try body(Columns(handle: handle))
        } else if code != SQLITE_DONE {
            throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                message: String(cString: sqlite3_errmsg(connection)), sql: statement.sql)
        }
        return result
    }

    /// Runs a query with the values bound so far and calls `body` with each row, in order.
    /// For reads of many small rows, where decoding each column through GRDB's `Row` costs more
    /// than SQLite's own work.
    func forEachRow(_ body: (Columns) throws -> Void) throws {
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                    message: String(cString: sqlite3_errmsg(connection)), sql: statement.sql)
            }
            try body(Columns(handle: handle))
        }
    }
}

/// SQLite copies the bound bytes before the call returns.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// One write transaction: stores items one by one, aggregates roll-ups and counters in
/// memory, and writes them once per key in ``finish()``.
struct BatchWriter {
    let db: Database
    let state: WriterState

    private var totals = Counts()
    private var pilotDays: [DayKey: Counts] = [:]
    private var refusals: [RefusalKey: Int] = [:]
    private var devices: [Int64: DeviceDelta] = [:]
    private var subjectDays: [SubjectDayKey: DayAggregate] = [:]
    private var subjectIndicators: [SubjectIndicatorKey: IndicatorAggregate] = [:]
    private var subjectChanges: [Int64: SubjectChange] = [:]
    private var pilotLastObservation: [Int64: Int64] = [:]
    private var enrolmentToRecompute: Set<Int64> = []

    private let insertMessage: FastStatement
    private let insertObservation: FastStatement
    private let insertEvent: FastStatement
    private let insertPilotObservation: FastStatement

    init(db: Database, state: WriterState) throws {
        self.db = db
        self.state = state
        insertMessage = try FastStatement(db, """
            INSERT INTO message (device_id, msg_id, received_at, subject_id, observations) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertObservation = try FastStatement(db, """
            INSERT INTO observation (subject_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertEvent = try FastStatement(db, """
            INSERT INTO event (subject_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertPilotObservation = try FastStatement(db, """
            INSERT INTO pilot_observation (pilot_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
    }

    // MARK: - Items

    /// Stores one item; with `replacing`, the item is the re-validated verdict of that reject,
    /// whose refusal is un-counted (and whose time is kept) before the new verdict is counted.
    mutating func apply(_ item: IngestItem, replacing old: ReplayedReject? = nil) throws -> IngestOutcome {
        let receivedAt = old?.receivedAt ?? item.receivedAt
        let day = receivedAt.day.index
        if let old { try uncount(old) }

        switch item.verdict {
        case .observations(let topic, let message):
            let pilotID = try pilotID(topic.pilot, seenAt: receivedAt)
            let deviceID = try deviceID(pilot: pilotID, code: topic.device, seenAt: receivedAt)
            // The one subject the message is about, so that an erasure can take the message back.
            var only = try onlySubject(of: message, pilot: pilotID)
            insertMessage.bind(1, deviceID)
            insertMessage.bind(2, message.msgID)
            insertMessage.bind(3, receivedAt.millis)
            insertMessage.bind(4, only?.info.id)
            insertMessage.bind(5, message.observations.count)
            if try insertMessage.run() == 0 {
                count(pilot: pilotID, day: day) { $0.duplicate += 1 }
                touch(device: deviceID, at: receivedAt) { $0.duplicates += 1 }
                if let old { try deleteReject(old.id) }
                return .duplicateMessage
            }
            var stored = 0, duplicates = 0
            for obs in message.observations {
                if try store(obs, pilot: pilotID, device: deviceID, only: &only) { stored += 1 } else { duplicates += 1 }
            }
            count(pilot: pilotID, day: day) {
                $0.accepted += 1; $0.observations += stored; $0.duplicateObservations += duplicates
            }
            touch(device: deviceID, at: receivedAt) { $0.messages += 1; $0.observations += stored }
            if let old { try deleteReject(old.id) }
            return .accepted(newObservations: stored, duplicateObservations: duplicates)

        case .status(let topic, let status):
            let pilotID = try pilotID(topic.pilot, seenAt: receivedAt)
            let deviceID = try deviceID(pilot: pilotID, code: topic.device, seenAt: receivedAt)
            touch(device: deviceID, at: receivedAt)
            // The last status received wins (a replayed one keeps its original time).
            if let current = devices[deviceID]?.status, current.receivedAt > receivedAt.millis {
                // Received before one already applied in this batch: counted, not applied.
            } else {
                let previous = devices[deviceID]?.status
                devices[deviceID]?.status = (status.state.rawValue, (status.at ?? receivedAt).millis,
                                             status.batteryPct ?? previous?.battery,
                                             status.firmware ?? previous?.firmware, receivedAt.millis)
            }
            devices[deviceID]?.statuses += 1
            count(pilot: pilotID, day: day) { $0.statuses += 1 }
            if let old { try deleteReject(old.id) }
            return .status

        case .snapshot(let topic, let receipt):
            let outcome = try storeSnapshot(topic, receipt, payload: item.payload, receivedAt: receivedAt)
            if let old { try deleteReject(old.id) }
            return outcome

        case .refused(let topic, let refusal):
            // `store_error` is the service's own: counted store-wide (pilot 0), never against
            // the pilot or the device. So is a refused snapshot: its site sent it, not the
            // pilot's devices, and its site is no device (the site's status topic tells it).
            var pilotID: Int64 = 0
            if let topic, topic.kind != .agg {
                let id = try self.pilotID(topic.pilot, seenAt: receivedAt)
                let deviceID = try deviceID(pilot: id, code: topic.device, seenAt: receivedAt)
                touch(device: deviceID, at: receivedAt)
                if refusal.reason.countsAgainstPilot {
                    pilotID = id
                    devices[deviceID]?.refused += 1
                }
            }
            count(pilot: pilotID, day: day) { $0.refused += 1 }
            refusals[RefusalKey(pilot: pilotID, day: day, reason: refusal.reason), default: 0] += 1
            if let old {
                try db.cachedStatement(sql: """
                    UPDATE reject SET pilot = ?, device = ?, reason = ?, detail = ? WHERE id = ?
                    """).execute(arguments: [topic?.pilot, topic?.device, refusal.reason.rawValue, refusal.detail, old.id])
            } else {
                try quarantine(item, topic: topic, refusal: refusal)
            }
            return .refused(refusal.reason)
        }
    }

    /// The subject row of the one subject all of `message`'s observations name; nil when they
    /// name none (pilot-level indicators) or several.
    private mutating func onlySubject(of message: ObservationMessage, pilot pilotID: Int64) throws
        -> (key: SubjectKey, info: SubjectInfo)? {
        guard let code = message.observations.first?.subject else { return nil }
        var firstAt = Int64.max
        for obs in message.observations {
            guard obs.subject == code else { return nil }
            firstAt = min(firstAt, obs.at.millis)
        }
        let key = SubjectKey(pilot: pilotID, code: code)
        return (key, try subject(key, firstAt: firstAt))
    }

    /// Stores one observation; false when `(subject or pilot, indicator, at)` was already stored.
    /// `only` is the message's one subject (``onlySubject(of:pilot:)``), kept up to date here.
    private mutating func store(_ obs: Observation, pilot pilotID: Int64, device deviceID: Int64,
                                only: inout (key: SubjectKey, info: SubjectInfo)?) throws -> Bool {
        let indicatorID = try indicatorID(obs.indicator, kind: obs.kind)
        let at = obs.at.millis
        guard let code = obs.subject else {
            guard try insertRow(insertPilotObservation, pilotID, indicatorID, at, obs.value, deviceID) else { return false }
            notePilotObservation(pilotID, at: at)
            return true
        }
        let subjectKey = only?.key ?? SubjectKey(pilot: pilotID, code: code)
        let subject = try only?.info ?? subject(subjectKey, firstAt: at)
        let updated: SubjectInfo
        switch obs.kind {
        case .event:
            guard try insertRow(insertEvent, subject.id, indicatorID, at, obs.value, deviceID) else { return false }
            if obs.indicator == "enrolled" || obs.indicator == "withdrawn" {
                enrolmentToRecompute.insert(subject.id)
            }
            updated = noteSubject(subjectKey, subject, at: at, measure: false)
        case .measurement, .score:
            guard try insertRow(insertObservation, subject.id, indicatorID, at, obs.value, deviceID) else { return false }
            subjectDays[SubjectDayKey(subject: subject.id, day: obs.at.day.index), default: DayAggregate()].add(at: at)
            subjectIndicators[SubjectIndicatorKey(subject: subject.id, indicator: indicatorID), default: IndicatorAggregate()]
                .add(at: at, value: obs.value)
            updated = noteSubject(subjectKey, subject, at: at, measure: true)
        }
        if only != nil { only?.info = updated }
        notePilotObservation(pilotID, at: at)
        return true
    }

    /// Inserts `(owner, indicator, at, value, device)` unless the key is there; true when inserted.
    private func insertRow(_ statement: FastStatement, _ owner: Int64, _ indicator: Int64, _ at: Int64,
                           _ value: Double, _ device: Int64) throws -> Bool {
        statement.bind(1, owner)
        statement.bind(2, indicator)
        statement.bind(3, at)
        statement.bind(4, value)
        statement.bind(5, device)
        return try statement.run() > 0
    }

    private mutating func quarantine(_ item: IngestItem, topic: Topic?, refusal: Refusal) throws {
        try db.cachedStatement(sql: """
            INSERT INTO reject (received_at, topic, pilot, device, reason, detail, payload_sha256)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [item.receivedAt.millis, item.topic, topic?.pilot, topic?.device,
                                     refusal.reason.rawValue, refusal.detail, SHA256.hex(item.payload)])
        // A message refused for identifying data is never stored, not even in quarantine.
        guard refusal.reason.keepsPayload else { return }
        let id = db.lastInsertedRowID
        try db.cachedStatement(sql: "INSERT INTO reject_payload (reject_id, payload) VALUES (?, ?)")
            .execute(arguments: [id, Data(item.payload)])
    }

    private mutating func deleteReject(_ id: Int64) throws {
        try db.cachedStatement(sql: "DELETE FROM reject WHERE id = ?").execute(arguments: [id])
    }

    /// Takes back the counts of a refusal that replay is about to re-decide.
    private mutating func uncount(_ old: ReplayedReject) throws {
        let day = old.receivedAt.day.index
        var pilotID: Int64 = 0
        if let pilot = old.pilot, old.reason.countsAgainstPilot, !old.isSnapshot {
            pilotID = try self.pilotID(pilot, seenAt: old.receivedAt)
            if let device = old.device {
                let deviceID = try deviceID(pilot: pilotID, code: device, seenAt: old.receivedAt)
                touch(device: deviceID, at: old.receivedAt)
                devices[deviceID]?.refused -= 1
            }
        }
        count(pilot: pilotID, day: day) { $0.refused -= 1 }
        refusals[RefusalKey(pilot: pilotID, day: day, reason: old.reason), default: 0] -= 1
    }

    // MARK: - In-memory aggregation

    private mutating func count(pilot: Int64, day: Int, _ change: (inout Counts) -> Void) {
        change(&totals)
        if pilot != 0 { change(&pilotDays[DayKey(pilot: pilot, day: day), default: Counts()]) }
    }

    /// Notes that `device` was seen at `at`, and makes `change` to its counters.
    private mutating func touch(device: Int64, at: Instant, _ change: (inout DeviceDelta) -> Void = { _ in }) {
        let millis = at.millis
        touchDevice(&devices[device, default: DeviceDelta(firstSeen: millis, lastSeen: millis)], millis, change)
    }

    private func touchDevice(_ d: inout DeviceDelta, _ millis: Int64, _ change: (inout DeviceDelta) -> Void) {
        d.firstSeen = min(d.firstSeen, millis); d.lastSeen = max(d.lastSeen, millis)
        change(&d)
    }

    private mutating func notePilotObservation(_ pilot: Int64, at: Int64) {
        if let last = pilotLastObservation[pilot], last >= at { return }
        pilotLastObservation[pilot] = at
    }

    /// Lowers the subject's first times if `at` is earlier than what the row holds, and notes a
    /// measurement or score for its activity roll-up; returns the subject as it now is.
    private mutating func noteSubject(_ key: SubjectKey, _ subject: SubjectInfo, at: Int64, measure: Bool) -> SubjectInfo {
        var info = subject
        let lowersFirst = at < info.firstAt
        let lowersFirstMeasure = measure && (info.firstMeasureAt.map { at < $0 } ?? true)
        guard lowersFirst || lowersFirstMeasure || measure else { return info }
        if lowersFirst { info.firstAt = at }
        if lowersFirstMeasure { info.firstMeasureAt = at }
        noteChange(&subjectChanges[subject.id, default: SubjectChange()], firstAt: lowersFirst ? at : nil,
                   firstMeasureAt: lowersFirstMeasure ? at : nil, measure: measure ? at : nil)
        if lowersFirst || lowersFirstMeasure { state.subjects[key] = info }
        return info
    }

    private func noteChange(_ change: inout SubjectChange, firstAt: Int64?, firstMeasureAt: Int64?, measure: Int64?) {
        if let firstAt { change.firstAt = firstAt }
        if let firstMeasureAt { change.firstMeasureAt = firstMeasureAt }
        if let measure { change.measures.append(measure) }
    }

    // MARK: - Finishing the batch

    /// Writes the roll-ups, counters, device and subject updates aggregated during the batch.
    mutating func finish() throws {
        let upsertSubjectDay = try FastStatement(db, """
            INSERT INTO subject_day (subject_id, day, first_at, last_at, n) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (subject_id, day) DO UPDATE SET
                first_at = min(first_at, excluded.first_at),
                last_at = max(last_at, excluded.last_at),
                n = n + excluded.n
            """)
        for (key, d) in subjectDays.sorted(by: { $0.key < $1.key }) {
            upsertSubjectDay.bind(1, key.subject)
            upsertSubjectDay.bind(2, key.day)
            upsertSubjectDay.bind(3, d.firstAt)
            upsertSubjectDay.bind(4, d.lastAt)
            upsertSubjectDay.bind(5, d.n)
            try upsertSubjectDay.run()
        }

        let upsertSubjectIndicator = try FastStatement(db, """
            INSERT INTO subject_indicator (subject_id, indicator_id, n, first_at, first_value, last_at, last_value)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (subject_id, indicator_id) DO UPDATE SET
                n = n + excluded.n,
                first_value = CASE WHEN excluded.first_at < first_at THEN excluded.first_value ELSE first_value END,
                first_at = min(first_at, excluded.first_at),
                last_value = CASE WHEN excluded.last_at > last_at THEN excluded.last_value ELSE last_value END,
                last_at = max(last_at, excluded.last_at)
            """)
        for (key, s) in subjectIndicators.sorted(by: { $0.key < $1.key }) {
            upsertSubjectIndicator.bind(1, key.subject)
            upsertSubjectIndicator.bind(2, key.indicator)
            upsertSubjectIndicator.bind(3, s.n)
            upsertSubjectIndicator.bind(4, s.firstAt)
            upsertSubjectIndicator.bind(5, s.firstValue)
            upsertSubjectIndicator.bind(6, s.lastAt)
            upsertSubjectIndicator.bind(7, s.lastValue)
            try upsertSubjectIndicator.run()
        }

        // First times and the activity roll-up, one UPDATE per subject. The roll-up is read from
        // the row inside this transaction (not cached), so that another process writing to the
        // store (quarantine replay) is never overwritten.
        let readActivity = try FastStatement(db, """
            SELECT last_measure_at, activity_lo, activity_hi FROM subject WHERE id = ?
            """)
        let updateSubject = try FastStatement(db, """
            UPDATE subject SET
                first_at = min(first_at, coalesce(?1, first_at)),
                first_measure_at = CASE WHEN ?2 IS NULL THEN first_measure_at
                                        ELSE min(coalesce(first_measure_at, ?2), ?2) END,
                last_measure_at = coalesce(?4, last_measure_at),
                activity_lo = coalesce(?5, activity_lo),
                activity_hi = coalesce(?6, activity_hi)
            WHERE id = ?3
            """)
        for (id, change) in subjectChanges.sorted(by: { $0.key < $1.key }) {
            var mask: ActivityMask?
            if !change.measures.isEmpty {
                readActivity.bind(1, id)
                try readActivity.forEachRow { row in
                    mask = ActivityMask(lastAt: row.optionalInt64(0), lo: UInt64(bitPattern: row.int64(1)),
                                        hi: UInt64(bitPattern: row.int64(2)))
                }
                for at in change.measures { mask?.add(at: at) }
            }
            updateSubject.bind(1, change.firstAt)
            updateSubject.bind(2, change.firstMeasureAt)
            updateSubject.bind(3, id)
            updateSubject.bind(4, mask?.lastAt)
            updateSubject.bind(5, mask.map { Int64(bitPattern: $0.lo) })
            updateSubject.bind(6, mask.map { Int64(bitPattern: $0.hi) })
            try updateSubject.run()
        }

        if !enrolmentToRecompute.isEmpty {
            let enrolled = try existingIndicatorID(Catalogue.requiredEvents[0]) ?? -1
            let withdrawn = try existingIndicatorID(Catalogue.requiredEvents[1]) ?? -1
            let recompute = try db.cachedStatement(sql: """
                UPDATE subject SET
                    enrolled_at = (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?2),
                    withdrawn_at = (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?3
                                    AND at > (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?2))
                WHERE id = ?1
                """)
            for id in enrolmentToRecompute.sorted() {
                try recompute.execute(arguments: [id, enrolled, withdrawn])
            }
        }

        let updatePilot = try db.cachedStatement(sql: """
            UPDATE pilot SET last_observation_at = max(coalesce(last_observation_at, ?1), ?1) WHERE id = ?2
            """)
        for (id, at) in pilotLastObservation {
            try updatePilot.execute(arguments: [at, id])
        }

        let updateDevice = try FastStatement(db, """
            UPDATE device SET
                first_seen = min(first_seen, ?), last_seen = max(last_seen, ?),
                messages = messages + ?, duplicates = duplicates + ?, refused = refused + ?,
                statuses = statuses + ?, observations = observations + ?
            WHERE id = ?
            """)
        let updateStatus = try db.cachedStatement(sql: """
            UPDATE device SET
                status_state = ?1, status_at = ?2, status_received_at = ?6,
                battery_pct = coalesce(?3, battery_pct), firmware = coalesce(?4, firmware)
            WHERE id = ?5 AND (status_received_at IS NULL OR status_received_at <= ?6)
            """)
        for (id, d) in devices.sorted(by: { $0.key < $1.key }) {
            updateDevice.bind(1, d.firstSeen)
            updateDevice.bind(2, d.lastSeen)
            updateDevice.bind(3, d.messages)
            updateDevice.bind(4, d.duplicates)
            updateDevice.bind(5, d.refused)
            updateDevice.bind(6, d.statuses)
            updateDevice.bind(7, d.observations)
            updateDevice.bind(8, id)
            try updateDevice.run()
            if let s = d.status {
                try updateStatus.execute(arguments: [s.state, s.at, s.battery, s.firmware, id, s.receivedAt])
            }
        }

        // Counter deltas may be negative (replay moves a refusal), and SQLite checks CHECK
        // constraints on the row an upsert would insert before it finds the conflict: so update
        // the existing row, and insert only when there is none.
        let updatePilotDay = try db.cachedStatement(sql: """
            UPDATE pilot_day SET
                accepted = accepted + ?, duplicate = duplicate + ?, refused = refused + ?, statuses = statuses + ?,
                observations = observations + ?, duplicate_observations = duplicate_observations + ?
            WHERE pilot_id = ? AND day = ?
            """)
        let insertPilotDay = try db.cachedStatement(sql: """
            INSERT INTO pilot_day (accepted, duplicate, refused, statuses, observations, duplicate_observations,
                                   pilot_id, day)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (key, c) in pilotDays {
            let arguments: StatementArguments = [c.accepted, c.duplicate, c.refused, c.statuses, c.observations,
                                                 c.duplicateObservations, key.pilot, key.day]
            try updatePilotDay.execute(arguments: arguments)
            if db.changesCount == 0 { try insertPilotDay.execute(arguments: arguments) }
        }

        let updateRefusal = try db.cachedStatement(sql: """
            UPDATE refusal_day SET n = n + ? WHERE pilot_id = ? AND day = ? AND reason = ?
            """)
        let insertRefusal = try db.cachedStatement(sql: """
            INSERT INTO refusal_day (n, pilot_id, day, reason) VALUES (?, ?, ?, ?)
            """)
        for (key, n) in refusals where n != 0 {
            let arguments: StatementArguments = [n, key.pilot, key.day, key.reason.rawValue]
            try updateRefusal.execute(arguments: arguments)
            if db.changesCount == 0 { try insertRefusal.execute(arguments: arguments) }
        }

        try db.cachedStatement(sql: """
            UPDATE ingest_total SET
                accepted = accepted + ?, duplicate = duplicate + ?, refused = refused + ?, statuses = statuses + ?,
                observations = observations + ?, duplicate_observations = duplicate_observations + ?
            WHERE id = 1
            """).execute(arguments: [totals.accepted, totals.duplicate, totals.refused, totals.statuses,
                                     totals.observations, totals.duplicateObservations])
    }

    // MARK: - Surrogate ids

    private func pilotID(_ code: String, seenAt: Instant) throws -> Int64 {
        if let id = state.pilots[code] { return id }
        let id: Int64
        if let found = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM pilot WHERE code = ?"),
                                          arguments: [code]) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO pilot (code, first_seen) VALUES (?, ?)")
                .execute(arguments: [code, seenAt.millis])
            id = db.lastInsertedRowID
        }
        state.pilots[code] = id
        return id
    }

    private func existingIndicatorID(_ code: String) throws -> Int64? {
        if let id = state.indicators[code] { return id }
        return try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM indicator WHERE code = ?"), arguments: [code])
    }

    private func indicatorID(_ code: String, kind: IndicatorKind) throws -> Int64 {
        if let id = state.indicators[code] { return id }
        let id: Int64
        if let found = try existingIndicatorID(code) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO indicator (code, kind) VALUES (?, ?)")
                .execute(arguments: [code, kind.rawValue])
            id = db.lastInsertedRowID
        }
        state.indicators[code] = id
        return id
    }

    private func deviceID(pilot: Int64, code: String, seenAt: Instant) throws -> Int64 {
        let key = DeviceKey(pilot: pilot, code: code)
        if let id = state.devices[key] { return id }
        let id: Int64
        if let found = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM device WHERE pilot_id = ? AND code = ?"), arguments: [pilot, code]) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO device (pilot_id, code, first_seen, last_seen) VALUES (?, ?, ?, ?)")
                .execute(arguments: [pilot, code, seenAt.millis, seenAt.millis])
            id = db.lastInsertedRowID
        }
        state.devices[key] = id
        return id
    }

    private func subject(_ key: SubjectKey, firstAt: Int64) throws -> SubjectInfo {
        if let info = state.subjects[key] { return info }
        let info: SubjectInfo
        if let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, first_at, first_measure_at FROM subject WHERE pilot_id = ? AND code = ?"),
            arguments: [key.pilot, key.code]) {
            info = SubjectInfo(id: row[0], firstAt: row[1], firstMeasureAt: row[2])
        } else {
            try db.cachedStatement(sql: "INSERT INTO subject (pilot_id, code, first_at) VALUES (?, ?, ?)")
                .execute(arguments: [key.pilot, key.code, firstAt])
            info = SubjectInfo(id: db.lastInsertedRowID, firstAt: firstAt, firstMeasureAt: nil)
        }
        state.subjects[key] = info
        return info
    }
}
