import Foundation
import GRDB
import PilotwatchCore

/// A value at a time.
public struct TimedValue: Sendable, Equatable {
    public var at: Instant
    public var value: Double
    public init(at: Instant, value: Double) { self.at = at; self.value = value }
}

/// A subject of a pilot, with the times metrics are built on.
public struct SubjectRecord: Sendable, Equatable {
    public var code: String
    /// The earliest `at` of any stored observation or event of the subject.
    public var firstAt: Instant
    /// The earliest measurement or score.
    public var firstMeasureAt: Instant?
    /// The subject's first `enrolled` event.
    public var enrolledAt: Instant?
    /// The subject's first `withdrawn` event strictly after `enrolledAt`.
    public var withdrawnAt: Instant?

    public init(code: String, firstAt: Instant, firstMeasureAt: Instant?, enrolledAt: Instant?, withdrawnAt: Instant?) {
        self.code = code; self.firstAt = firstAt; self.firstMeasureAt = firstMeasureAt
        self.enrolledAt = enrolledAt; self.withdrawnAt = withdrawnAt
    }
}

/// A UTC day on which a subject has measurements or scores.
public struct SubjectDayRecord: Sendable, Equatable {
    public var subject: String
    public var day: Day
    /// The first and last observation times of that day (for windows that start or end inside it).
    public var firstAt: Instant
    public var lastAt: Instant
    public var count: Int

    public init(subject: String, day: Day, firstAt: Instant, lastAt: Instant, count: Int) {
        self.subject = subject; self.day = day; self.firstAt = firstAt; self.lastAt = lastAt; self.count = count
    }
}

/// One measurement or score indicator of a subject: how many values, the first and the last.
public struct SubjectIndicatorRecord: Sendable, Equatable {
    public var subject: String
    public var indicator: String
    public var count: Int
    public var first: TimedValue
    public var last: TimedValue

    public init(subject: String, indicator: String, count: Int, first: TimedValue, last: TimedValue) {
        self.subject = subject; self.indicator = indicator; self.count = count; self.first = first; self.last = last
    }
}

/// A subject event.
public struct EventRecord: Sendable, Equatable {
    public var subject: String
    public var indicator: String
    public var at: Instant
    public var value: Double

    public init(subject: String, indicator: String, at: Instant, value: Double) {
        self.subject = subject; self.indicator = indicator; self.at = at; self.value = value
    }
}

/// Message counters of one pilot on one UTC day (the day messages were *received*).
public struct PilotDayRecord: Sendable, Equatable {
    public var day: Day
    public var accepted: Int
    public var duplicate: Int
    public var refused: Int
    public var statuses: Int
    public var observations: Int
    public var duplicateObservations: Int

    public init(day: Day, accepted: Int, duplicate: Int, refused: Int, statuses: Int, observations: Int,
                duplicateObservations: Int) {
        self.day = day; self.accepted = accepted; self.duplicate = duplicate; self.refused = refused
        self.statuses = statuses; self.observations = observations; self.duplicateObservations = duplicateObservations
    }
}

/// What a device's health is judged on (silent, retired, low battery): when it was first and
/// last heard of, its last status and battery level.
public struct DeviceSigns: Sendable, Equatable {
    public var firstSeen: Instant
    public var lastSeen: Instant
    public var statusState: DeviceStatus.State?
    public var statusAt: Instant?
    public var batteryPct: Double?

    public init(firstSeen: Instant, lastSeen: Instant, statusState: DeviceStatus.State?, statusAt: Instant?,
                batteryPct: Double?) {
        self.firstSeen = firstSeen; self.lastSeen = lastSeen; self.statusState = statusState
        self.statusAt = statusAt; self.batteryPct = batteryPct
    }
}

/// A device and its health.
public struct DeviceRecord: Sendable, Equatable {
    public var pilot: String
    public var code: String
    public var firstSeen: Instant
    /// When the last message of any kind (accepted, duplicate, refused, status) was received.
    public var lastSeen: Instant
    public var messages: Int
    public var duplicates: Int
    public var refused: Int
    public var statuses: Int
    public var observations: Int
    /// The last status received, with its own `at` (or the time received when it had none).
    public var statusState: DeviceStatus.State?
    public var statusAt: Instant?
    /// The last battery level and firmware reported (kept when a later status omits them).
    public var batteryPct: Double?
    public var firmware: String?

    public init(pilot: String, code: String, firstSeen: Instant, lastSeen: Instant, messages: Int, duplicates: Int,
                refused: Int, statuses: Int, observations: Int, statusState: DeviceStatus.State?, statusAt: Instant?,
                batteryPct: Double?, firmware: String?) {
        self.pilot = pilot; self.code = code; self.firstSeen = firstSeen; self.lastSeen = lastSeen
        self.messages = messages; self.duplicates = duplicates; self.refused = refused; self.statuses = statuses
        self.observations = observations; self.statusState = statusState; self.statusAt = statusAt
        self.batteryPct = batteryPct; self.firmware = firmware
    }

    /// What its health is judged on.
    public var signs: DeviceSigns {
        DeviceSigns(firstSeen: firstSeen, lastSeen: lastSeen, statusState: statusState, statusAt: statusAt,
                    batteryPct: batteryPct)
    }
}

/// Read access to one consistent snapshot of the store, for metrics, views and exports.
///
/// Obtained from ``Store/read(_:)``; valid only inside that closure.
///
/// ```swift
/// let (subjects, days) = try store.read { r in
///     (try r.subjects(pilot: "hf-nord"), try r.subjectDays(pilot: "hf-nord", from: d0, through: d1))
/// }
/// ```
public struct StoreReader {
    let db: Database

    init(db: Database) { self.db = db }

    // MARK: Lookups

    /// Pilot codes seen in a parsed topic, sorted.
    public func pilotCodes() throws -> [String] {
        try String.fetchAll(db.cachedStatement(sql: "SELECT code FROM pilot ORDER BY code"))
    }

    /// Each pilot's latest observation or event time, for the pilots with any stored.
    public func lastObservationTimes() throws -> [String: Instant] {
        var out: [String: Instant] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: """
            SELECT code, last_observation_at FROM pilot WHERE last_observation_at IS NOT NULL
            """)) {
            out[row[0]] = Instant(millis: row[1])
        }
        return out
    }

    /// Indicator codes with stored data, sorted.
    public func indicatorCodes() throws -> [String] {
        try String.fetchAll(db.cachedStatement(sql: "SELECT code FROM indicator ORDER BY code"))
    }

    func pilotID(_ code: String) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM pilot WHERE code = ?"), arguments: [code])
    }

    func indicatorID(_ code: String) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM indicator WHERE code = ?"), arguments: [code])
    }

    func subjectID(pilot: String, subject: String) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: """
            SELECT s.id FROM subject s JOIN pilot p ON p.id = s.pilot_id WHERE p.code = ? AND s.code = ?
            """), arguments: [pilot, subject])
    }

    // MARK: Subjects and activity

    /// The subjects of a pilot (every pseudonym with a stored observation or event), sorted by code.
    public func subjects(pilot: String) throws -> [SubjectRecord] {
        guard let pilotID = try pilotID(pilot) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT code, first_at, first_measure_at, enrolled_at, withdrawn_at FROM subject
            WHERE pilot_id = ? ORDER BY code
            """), arguments: [pilotID]).map { row in
            SubjectRecord(code: row[0], firstAt: Instant(millis: row[1]), firstMeasureAt: instant(row[2]),
                          enrolledAt: instant(row[3]), withdrawnAt: instant(row[4]))
        }
    }

    /// The days in `from...through` on which the pilot's subjects have measurements or scores,
    /// sorted by subject code then day (for `active_7d` and `transmission_adherence`).
    public func subjectDays(pilot: String, from: Day, through: Day) throws -> [SubjectDayRecord] {
        guard let pilotID = try pilotID(pilot) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT s.code, d.day, d.first_at, d.last_at, d.n
            FROM subject s JOIN subject_day d ON d.subject_id = s.id
            WHERE s.pilot_id = ? AND d.day BETWEEN ? AND ?
            ORDER BY s.code, d.day
            """), arguments: [pilotID, from.index, through.index]).map { row in
            SubjectDayRecord(subject: row[0], day: Day(index: row[1]), firstAt: Instant(millis: row[2]),
                             lastAt: Instant(millis: row[3]), count: row[4])
        }
    }

    /// Per subject of the pilot: count, first and last value of a measurement or score indicator.
    public func subjectIndicators(pilot: String, indicator: String) throws -> [SubjectIndicatorRecord] {
        guard let pilotID = try pilotID(pilot), let indicatorID = try indicatorID(indicator) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT s.code, si.n, si.first_at, si.first_value, si.last_at, si.last_value
            FROM subject s JOIN subject_indicator si ON si.subject_id = s.id AND si.indicator_id = ?
            WHERE s.pilot_id = ? ORDER BY s.code
            """), arguments: [indicatorID, pilotID]).map { row in
            SubjectIndicatorRecord(subject: row[0], indicator: indicator, count: row[1],
                                   first: TimedValue(at: Instant(millis: row[2]), value: row[3]),
                                   last: TimedValue(at: Instant(millis: row[4]), value: row[5]))
        }
    }

    // MARK: Values

    /// The subject's measurement or score with the earliest time in `from...through` (a baseline).
    public func firstValue(pilot: String, subject: String, indicator: String,
                           from: Instant, through: Instant) throws -> TimedValue? {
        guard let s = try subjectID(pilot: pilot, subject: subject), let i = try indicatorID(indicator) else { return nil }
        return try timedValue(db.cachedStatement(sql: """
            SELECT at, value FROM observation WHERE subject_id = ? AND indicator_id = ? AND at BETWEEN ? AND ?
            ORDER BY at ASC LIMIT 1
            """), [s, i, from.millis, through.millis])
    }

    /// The subject's measurement or score with the latest time in `from...through` (a latest value).
    public func lastValue(pilot: String, subject: String, indicator: String,
                          from: Instant, through: Instant) throws -> TimedValue? {
        guard let s = try subjectID(pilot: pilot, subject: subject), let i = try indicatorID(indicator) else { return nil }
        return try timedValue(db.cachedStatement(sql: """
            SELECT at, value FROM observation WHERE subject_id = ? AND indicator_id = ? AND at BETWEEN ? AND ?
            ORDER BY at DESC LIMIT 1
            """), [s, i, from.millis, through.millis])
    }

    /// All measurements or scores of one subject and indicator in `from...through`, by time.
    public func values(pilot: String, subject: String, indicator: String,
                       from: Instant, through: Instant) throws -> [TimedValue] {
        guard let s = try subjectID(pilot: pilot, subject: subject), let i = try indicatorID(indicator) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT at, value FROM observation WHERE subject_id = ? AND indicator_id = ? AND at BETWEEN ? AND ?
            ORDER BY at
            """), arguments: [s, i, from.millis, through.millis]).map { TimedValue(at: Instant(millis: $0[0]), value: $0[1]) }
    }

    /// The events of the pilot's subjects, for the given event indicators (all when nil),
    /// sorted by subject, indicator and time.
    public func events(pilot: String, indicators: [String]? = nil) throws -> [EventRecord] {
        guard let pilotID = try pilotID(pilot) else { return [] }
        let wanted = indicators.map(Set.init)
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT s.code, i.code, e.at, e.value
            FROM subject s JOIN event e ON e.subject_id = s.id JOIN indicator i ON i.id = e.indicator_id
            WHERE s.pilot_id = ? ORDER BY s.code, i.code, e.at
            """), arguments: [pilotID]).compactMap { row in
            let indicator: String = row[1]
            if let wanted, !wanted.contains(indicator) { return nil }
            return EventRecord(subject: row[0], indicator: indicator, at: Instant(millis: row[2]), value: row[3])
        }
    }

    /// Pilot-level observations of one indicator in `from...through`, by time.
    public func pilotObservations(pilot: String, indicator: String,
                                  from: Instant, through: Instant) throws -> [TimedValue] {
        guard let p = try pilotID(pilot), let i = try indicatorID(indicator) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT at, value FROM pilot_observation WHERE pilot_id = ? AND indicator_id = ? AND at BETWEEN ? AND ?
            ORDER BY at
            """), arguments: [p, i, from.millis, through.millis]).map { TimedValue(at: Instant(millis: $0[0]), value: $0[1]) }
    }

    // MARK: Ingest counters

    /// Message counters of a pilot per day received, in `from...through`, by day.
    public func pilotDays(pilot: String, from: Day, through: Day) throws -> [PilotDayRecord] {
        guard let p = try pilotID(pilot) else { return [] }
        return try Row.fetchAll(db.cachedStatement(sql: """
            SELECT day, accepted, duplicate, refused, statuses, observations, duplicate_observations
            FROM pilot_day WHERE pilot_id = ? AND day BETWEEN ? AND ? ORDER BY day
            """), arguments: [p, from.index, through.index]).map { row in
            PilotDayRecord(day: Day(index: row[0]), accepted: row[1], duplicate: row[2], refused: row[3],
                           statuses: row[4], observations: row[5], duplicateObservations: row[6])
        }
    }

    /// Refusals by reason among messages received in `from...through`: of one pilot, or of all
    /// messages (including those whose topic did not parse) when `pilot` is nil.
    public func refusals(pilot: String?, from: Day, through: Day) throws -> [ReasonCode: Int] {
        var arguments: StatementArguments = [from.index, through.index]
        var sql = "SELECT reason, sum(n) FROM refusal_day WHERE day BETWEEN ? AND ?"
        if let pilot {
            guard let p = try pilotID(pilot) else { return [:] }
            sql += " AND pilot_id = ?"
            arguments += [p]
        }
        sql += " GROUP BY reason"
        var out: [ReasonCode: Int] = [:]
        for row in try Row.fetchAll(db, sql: sql, arguments: arguments) {
            let n: Int = row[1]
            if n > 0, let reason = ReasonCode(rawValue: row[0]) { out[reason] = n }
        }
        return out
    }

    /// Devices (of one pilot, or all), sorted by pilot and code.
    public func devices(pilot: String? = nil) throws -> [DeviceRecord] {
        var sql = """
            SELECT p.code, d.code, d.first_seen, d.last_seen, d.messages, d.duplicates, d.refused, d.statuses,
                   d.observations, d.status_state, d.status_at, d.battery_pct, d.firmware
            FROM device d JOIN pilot p ON p.id = d.pilot_id
            """
        if pilot != nil { sql += " WHERE p.code = ?" }
        sql += " ORDER BY p.code, d.code"
        let query = try FastStatement(db, sql)
        if let pilot { query.bind(1, pilot) }
        var out: [DeviceRecord] = []
        var pilotCode = pilot ?? ""
        try query.forEachRow { row in
            pilotCode = row.text(0, reusing: pilotCode)
            out.append(DeviceRecord(
                pilot: pilotCode, code: row.text(1), firstSeen: Instant(millis: row.int64(2)),
                lastSeen: Instant(millis: row.int64(3)), messages: Int(row.int64(4)), duplicates: Int(row.int64(5)),
                refused: Int(row.int64(6)), statuses: Int(row.int64(7)), observations: Int(row.int64(8)),
                statusState: row.optionalText(9).flatMap(DeviceStatus.State.init(rawValue:)),
                statusAt: row.optionalInt64(10).map(Instant.init(millis:)), batteryPct: row.optionalDouble(11),
                firmware: row.optionalText(12)))
        }
        return out
    }

    /// The ``DeviceSigns`` of every device, by pilot code, each pilot's in no particular order:
    /// one pass over the `device` table in storage order, reading only those columns (where
    /// ``devices(pilot:)`` of all pilots walks the `(pilot, code)` index and seeks each row): what
    /// `status` counts at 50,000 devices.
    public func deviceSignsByPilot() throws -> [String: [DeviceSigns]] {
        var slots: [Int64: Int] = [:]
        var lists: [[DeviceSigns]] = []
        var codes: [String] = []
        try FastStatement(db, "SELECT id, code FROM pilot").forEachRow { row in
            slots[row.int64(0)] = lists.count
            lists.append([])
            codes.append(row.text(1))
        }
        let query = try FastStatement(db, """
            SELECT pilot_id, first_seen, last_seen, status_state, status_at, battery_pct FROM device
            """)
        try query.forEachRow { row in
            guard let slot = slots[row.int64(0)] else { return }
            lists[slot].append(DeviceSigns(
                firstSeen: Instant(millis: row.int64(1)), lastSeen: Instant(millis: row.int64(2)),
                statusState: row.optionalText(3).flatMap(DeviceStatus.State.init(rawValue:)),
                statusAt: row.optionalInt64(4).map(Instant.init(millis:)), batteryPct: row.optionalDouble(5)))
        }
        var out: [String: [DeviceSigns]] = [:]
        for (index, list) in lists.enumerated() where !list.isEmpty { out[codes[index]] = list }
        return out
    }

    /// Store-wide and per-pilot counters.
    public func stats() throws -> StoreStats {
        guard let totals = try Row.fetchOne(db, sql: """
            SELECT accepted, duplicate, refused, statuses, observations, duplicate_observations
            FROM ingest_total WHERE id = 1
            """) else {
            throw StoreError.sqlite(operation: "reading counters", message: "the ingest_total row is missing")
        }
        var byReason: [ReasonCode: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT reason, sum(n) FROM refusal_day GROUP BY reason") {
            let n: Int = row[1]
            if n > 0, let reason = ReasonCode(rawValue: row[0]) { byReason[reason] = n }
        }
        let pilots = try Row.fetchAll(db, sql: """
            SELECT p.code, p.last_observation_at,
                   (SELECT count(*) FROM subject s WHERE s.pilot_id = p.id),
                   (SELECT count(*) FROM device d WHERE d.pilot_id = p.id),
                   coalesce(sum(pd.observations), 0), coalesce(sum(pd.accepted), 0), coalesce(sum(pd.duplicate), 0),
                   coalesce(sum(pd.refused), 0), coalesce(sum(pd.statuses), 0)
            FROM pilot p LEFT JOIN pilot_day pd ON pd.pilot_id = p.id
            GROUP BY p.id ORDER BY p.code
            """).map { row in
            PilotStats(pilot: row[0], observations: row[4], subjects: row[2], devices: row[3],
                       lastObservationAt: instant(row[1]), accepted: row[5], duplicate: row[6], refused: row[7],
                       statuses: row[8])
        }
        return StoreStats(accepted: totals[0], duplicate: totals[1], refused: totals[2], statuses: totals[3],
                          refusedByReason: byReason, observations: totals[4], duplicateObservations: totals[5],
                          pilots: pilots)
    }

    // MARK: Quarantine

    func rejects(_ filter: RejectFilter, withPayload: Bool) throws -> [RejectRecord] {
        var sql = """
            SELECT r.id, r.received_at, r.topic, r.pilot, r.device, r.reason, r.detail, r.payload_sha256\
            \(withPayload ? ", rp.payload FROM reject r JOIN reject_payload rp ON rp.reject_id = r.id" : " FROM reject r")
            """
        var conditions: [String] = []
        var arguments = StatementArguments()
        if let pilot = filter.pilot { conditions.append("r.pilot = ?"); arguments += [pilot] }
        if let reason = filter.reason { conditions.append("r.reason = ?"); arguments += [reason.rawValue] }
        if let since = filter.since { conditions.append("r.received_at >= ?"); arguments += [since.millis] }
        if let afterID = filter.afterID { conditions.append("r.id > ?"); arguments += [afterID] }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += withPayload ? " ORDER BY r.id ASC" : " ORDER BY r.id DESC"
        if let limit = filter.limit { sql += " LIMIT ?"; arguments += [max(0, limit)] }
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            let reasonText: String = row[5]
            guard let reason = ReasonCode(rawValue: reasonText) else {
                throw StoreError.sqlite(operation: "reading quarantine", message: "unknown reason \(reasonText)")
            }
            let payload: [UInt8]? = withPayload ? (row[8] as Data?).map { [UInt8]($0) } : nil
            return RejectRecord(id: row[0], receivedAt: Instant(millis: row[1]), topic: row[2], pilot: row[3],
                                device: row[4], reason: reason, detail: row[6], payloadSHA256: row[7], payload: payload)
        }
    }

    // MARK: Integrity

    func integrityProblems() throws -> [String] {
        var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
        for row in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") {
            let table: String = row[0], parent: String = row[2]
            let rowid: Int64? = row[1]
            problems.append("foreign key: \(table) row \(rowid.map(String.init) ?? "?") points to a missing \(parent)")
        }
        // The store's own invariants: counters kept at ingest agree with the rows.
        let checks: [(String, String)] = [
            ("accepted messages vs message rows",
             "SELECT (SELECT accepted FROM ingest_total), (SELECT count(*) FROM message)"),
            ("refused messages vs quarantine rows",
             "SELECT (SELECT refused FROM ingest_total), (SELECT count(*) FROM reject)"),
            ("observations vs stored rows", """
             SELECT (SELECT observations FROM ingest_total),
                    (SELECT count(*) FROM observation) + (SELECT count(*) FROM event) + (SELECT count(*) FROM pilot_observation)
             """),
            ("refusals by day vs total", "SELECT (SELECT refused FROM ingest_total), (SELECT coalesce(sum(n), 0) FROM refusal_day)"),
            ("measurements by subject-day vs rows",
             "SELECT (SELECT coalesce(sum(n), 0) FROM subject_day), (SELECT count(*) FROM observation)"),
            ("measurements by subject-indicator vs rows",
             "SELECT (SELECT coalesce(sum(n), 0) FROM subject_indicator), (SELECT count(*) FROM observation)"),
            ("subjects whose latest measurement disagrees with subject_day (expected, found)", """
             SELECT 0, count(*) FROM subject s
             WHERE s.last_measure_at IS NOT (SELECT max(d.last_at) FROM subject_day d WHERE d.subject_id = s.id)
             """),
            ("subjects whose activity days disagree with subject_day (expected, found)", """
             SELECT 0, count(*) FROM subject s
             WHERE s.last_measure_at IS NOT NULL
               AND (s.activity_lo != \(Schema.activityWordFromDays(subject: "s", word: 0))
                    OR s.activity_hi != \(Schema.activityWordFromDays(subject: "s", word: 1)))
             """),
            ("device messages vs total",
             "SELECT (SELECT accepted FROM ingest_total), (SELECT coalesce(sum(messages), 0) FROM device)"),
        ]
        for (name, sql) in checks {
            guard let row = try Row.fetchOne(db, sql: sql) else { continue }
            let a: Int64? = row[0], b: Int64? = row[1]
            if a != b { problems.append("\(name): \(a.map(String.init) ?? "missing") != \(b.map(String.init) ?? "missing")") }
        }
        return problems
    }

    private func timedValue(_ statement: Statement, _ arguments: StatementArguments) throws -> TimedValue? {
        try Row.fetchOne(statement, arguments: arguments).map { TimedValue(at: Instant(millis: $0[0]), value: $0[1]) }
    }
}

private func instant(_ millis: Int64?) -> Instant? { millis.map(Instant.init(millis:)) }
