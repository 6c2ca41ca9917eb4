import GRDB
import PilotwatchCore

/// What the dashboards read of one pilot's subjects and message counters, as of `T`.
///
/// ```swift
/// let facts = try store.read { try $0.pilotFacts(pilot: "resp-copd-idf-01", asOf: t) }
/// Metrics.pilot(facts.subjects, target: 120, end: pilot.end, asOf: t).enrolled
/// ```
public struct PilotFacts: Sendable {
    public var pilot: String
    public var asOf: Instant
    /// Every subject with data at or before `T`, sorted by code.
    public var subjects: [SubjectFacts]
    /// Messages received on the 7 UTC days ending on `day(T)`.
    public var lastWeek: MessageCounts

    public init(pilot: String, asOf: Instant, subjects: [SubjectFacts], lastWeek: MessageCounts) {
        self.pilot = pilot; self.asOf = asOf; self.subjects = subjects; self.lastWeek = lastWeek
    }
}

/// Message counters of a pilot over UTC days *received*.
public struct MessageCounts: Sendable, Hashable {
    public var accepted = 0
    public var duplicate = 0
    public var refused = 0
    public var statuses = 0
    public var observations = 0
    public var duplicateObservations = 0
    public var refusedByReason: [ReasonCode: Int] = [:]

    public init() {}

    /// Observation messages received: accepted, duplicate and refused.
    public var received: Int { accepted + duplicate + refused }
}

/// The reads behind the dashboards: per pilot, over the roll-ups ingest keeps up to date
/// (`subject` with its activity roll-up, `subject_day`, `subject_indicator`, `event`, `pilot_day`, `refusal_day`,
/// `device`), never a scan of `observation`. Values come back as the inputs of ``Metrics``.
extension StoreReader {
    /// The pilot's subjects with data at or before `asOf`, with their enrolment, withdrawal,
    /// latest measurement or score, and the UTC days of the last `historyDays` (ending on
    /// `day(asOf)`) with a measurement or score at or before `asOf`.
    ///
    /// Reads one `subject` row per subject: its activity roll-up (``Schema/v2``) answers for
    /// every subject with nothing after `asOf`, which at "now" is all of them. A subject with
    /// data after `asOf` (an `--as-of` in the past), or a history longer than the roll-up's
    /// 128 days, is read from its `subject_day` rows instead.
    public func subjectFacts(pilot: String, asOf t: Instant,
                             historyDays: Int = Metrics.adherenceWindowDays) throws -> [SubjectFacts] {
        guard let pilotID = try pilotID(pilot) else { return [] }
        let covering = max(1, historyDays)
        guard covering <= ActivityMask.coveredDays else {
            return try subjectFactsFromDays(owner: "s.pilot_id", id: pilotID, asOf: t, covering: covering)
        }
        let query = try FastStatement(db, """
            SELECT \(Self.rollUpColumns) FROM subject WHERE pilot_id = ? AND first_at <= ?
            """)
        query.bind(1, pilotID)
        query.bind(2, t.millis)
        return try subjectsFromRollUp(query, asOf: t, covering: covering)[pilotID] ?? []
    }

    /// ``subjectFacts(pilot:asOf:historyDays:)`` of every pilot with subjects, by pilot code: one
    /// pass over the `subject` table, cheaper than a pilot at a time when most pilots are read.
    public func subjectFactsByPilot(asOf t: Instant,
                                    historyDays: Int = Metrics.adherenceWindowDays) throws -> [String: [SubjectFacts]] {
        let covering = max(1, historyDays)
        var codes: [Int64: String] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT id, code FROM pilot")) { codes[row[0]] = row[1] }
        var out: [String: [SubjectFacts]] = [:]
        guard covering <= ActivityMask.coveredDays else {
            for (_, code) in codes { out[code] = try subjectFacts(pilot: code, asOf: t, historyDays: historyDays) }
            return out
        }
        let query = try FastStatement(db, "SELECT \(Self.rollUpColumns) FROM subject WHERE first_at <= ?")
        query.bind(1, t.millis)
        for (id, list) in try subjectsFromRollUp(query, asOf: t, covering: covering) {
            if let code = codes[id] { out[code] = list }
        }
        return out
    }

    /// The subjects of `query`'s rows (``rollUpColumns``) by pilot id, each pilot's sorted by
    /// code as SQLite's BINARY collation sorts (UTF-8 bytes): from the activity roll-up where it
    /// answers, from `subject_day` where the subject has data after `t`.
    private func subjectsFromRollUp(_ query: FastStatement, asOf t: Instant,
                                    covering: Int) throws -> [Int64: [SubjectFacts]] {
        var byPilot: [Int64: [SubjectFacts]] = [:]
        var fromDays: [(pilot: Int64, index: Int, id: Int64)] = []
        try query.forEachRow { row in
            let (facts, complete) = Self.rollUpFacts(row, asOf: t, covering: covering)
            let pilot = row.int64(8)
            if !complete { fromDays.append((pilot, byPilot[pilot]?.count ?? 0, row.int64(0))) }
            byPilot[pilot, default: []].append(facts)
        }
        for (pilot, index, id) in fromDays {
            if let facts = try subjectFactsFromDays(owner: "s.id", id: id, asOf: t, covering: covering).first {
                byPilot[pilot]?[index] = facts
            }
        }
        for pilot in byPilot.keys {
            byPilot[pilot]?.sort { $0.code.utf8.lexicographicallyPrecedes($1.code.utf8) }
        }
        return byPilot
    }

    /// The `subject` columns ``rollUpFacts(_:asOf:covering:)`` reads, in its order, then the pilot id.
    static let rollUpColumns =
        "id, code, enrolled_at, withdrawn_at, first_at, last_measure_at, activity_lo, activity_hi, pilot_id"

    /// A subject's facts from its row and activity roll-up; `complete` is false when it has data
    /// after `t`, which the roll-up cannot leave out (read its `subject_day` rows instead).
    static func rollUpFacts(_ row: FastStatement.Columns, asOf t: Instant,
                            covering: Int) -> (facts: SubjectFacts, complete: Bool) {
        let last = row.optionalInt64(5)
        let activity: ActivityDays
        var complete = true
        if let last, last <= t.millis {
            activity = ActivityDays.rebased(lastDay: Instant(millis: last).day, lo: UInt64(bitPattern: row.int64(6)),
                                            hi: UInt64(bitPattern: row.int64(7)), to: t.day, covering: covering)
        } else {
            complete = last == nil
            activity = .none(lastDay: t.day, covering: covering)
        }
        let facts = SubjectFacts(code: row.text(1), enrolledAt: millis(row.optionalInt64(2)),
                                 withdrawnAt: millis(row.optionalInt64(3)), firstDataAt: millis(row.optionalInt64(4)),
                                 lastObservationAt: millis(last), activity: activity)
        return (facts, complete)
    }

    /// ``subjectFacts(pilot:asOf:historyDays:)`` from the `subject_day` rows of the subjects
    /// whose `owner` column (`s.pilot_id` or `s.id`) is `id`.
    ///
    /// Reads, per subject: its `subject` row and its `subject_day` rows inside the history, folded
    /// into a bit set by SQLite. A subject with no day inside the history costs one more key seek
    /// (its latest earlier day); a subject whose data on `day(asOf)` runs past `asOf` costs one
    /// bounded range read of that day's observations.
    func subjectFactsFromDays(owner: String, id: Int64, asOf t: Instant, covering: Int) throws -> [SubjectFacts] {
        let lastDay = t.day
        let words = ActivityDays.words(forDays: covering)
        let firstDay = lastDay.advanced(by: -(covering - 1))
        // Bit k of word j stands for day(T) - (64j + k); the k = 63 bit makes the SQLite integer
        // negative, and a sum of distinct powers of two never overflows.
        let wordColumns = (0..<words).map { j in
            "sum(CASE WHEN d.first_at <= :t AND :lastDay - d.day BETWEEN \(64 * j) AND \(64 * j + 63) "
                + "THEN 1 << (:lastDay - d.day - \(64 * j)) ELSE 0 END)"
        }.joined(separator: ", ")
        let sql = """
            SELECT s.id, s.code, s.enrolled_at, s.withdrawn_at, s.first_at,
                   coalesce(max(CASE WHEN d.last_at <= :t THEN d.last_at END),
                            (SELECT e.last_at FROM subject_day e WHERE e.subject_id = s.id AND e.day < :firstDay
                             ORDER BY e.day DESC LIMIT 1)),
                   max(CASE WHEN d.first_at <= :t AND d.last_at > :t THEN 1 ELSE 0 END),
                   \(wordColumns)
            FROM subject s
            LEFT JOIN subject_day d ON d.subject_id = s.id AND d.day BETWEEN :firstDay AND :lastDay
            WHERE \(owner) = :owner AND s.first_at <= :t
            GROUP BY s.code
            ORDER BY s.code
            """
        let arguments: StatementArguments = ["t": t.millis, "lastDay": lastDay.index, "firstDay": firstDay.index,
                                             "owner": id]
        var out: [SubjectFacts] = []
        var straddling: [(index: Int, id: Int64)] = []
        let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        while let row = try rows.next() {
            var bits: [UInt64] = []
            bits.reserveCapacity(words)
            for j in 0..<words {
                let w: Int64 = row[7 + j] ?? 0
                bits.append(UInt64(bitPattern: w))
            }
            let straddles: Int64 = row[6] ?? 0
            if straddles != 0 { straddling.append((out.count, row[0])) }
            out.append(SubjectFacts(code: row[1], enrolledAt: millis(row[2]), withdrawnAt: millis(row[3]),
                                    firstDataAt: millis(row[4]), lastObservationAt: millis(row[5]),
                                    activity: ActivityDays(lastDay: lastDay, words: bits)))
        }
        // Data on day(T) both before and after T: the latest at or before T is that day's
        // latest observation up to T, a bounded read of the subject's primary key.
        if !straddling.isEmpty {
            let seek = try db.cachedStatement(sql: """
                SELECT max(o.at) FROM subject_indicator si
                JOIN observation o ON o.subject_id = si.subject_id AND o.indicator_id = si.indicator_id
                                  AND o.at BETWEEN ? AND ?
                WHERE si.subject_id = ?
                """)
            for (index, id) in straddling {
                if let at = try Int64.fetchOne(seek, arguments: [lastDay.start.millis, t.millis, id]) {
                    out[index].lastObservationAt = Instant(millis: at)
                }
            }
        }
        return out
    }

    /// Message counters of the pilot for the UTC days received in `from...through` (`from` nil:
    /// since the first day).
    public func messageCounts(pilot: String, from: Day?, through: Day) throws -> MessageCounts {
        var c = MessageCounts()
        guard let pilotID = try pilotID(pilot) else { return c }
        let lo = (from ?? Day(index: Int(Int32.min))).index
        if let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT coalesce(sum(accepted), 0), coalesce(sum(duplicate), 0), coalesce(sum(refused), 0),
                   coalesce(sum(statuses), 0), coalesce(sum(observations), 0), coalesce(sum(duplicate_observations), 0)
            FROM pilot_day WHERE pilot_id = ? AND day BETWEEN ? AND ?
            """), arguments: [pilotID, lo, through.index]) {
            c.accepted = row[0]; c.duplicate = row[1]; c.refused = row[2]
            c.statuses = row[3]; c.observations = row[4]; c.duplicateObservations = row[5]
        }
        for row in try Row.fetchAll(db.cachedStatement(sql: """
            SELECT reason, sum(n) FROM refusal_day WHERE pilot_id = ? AND day BETWEEN ? AND ? GROUP BY reason
            """), arguments: [pilotID, lo, through.index]) {
            let n: Int = row[1]
            if n > 0, let reason = ReasonCode(rawValue: row[0]) { c.refusedByReason[reason] = n }
        }
        return c
    }

    /// Subjects, activity over `historyDays` and the last 7 days' message counters of one pilot:
    /// everything `pilotwatch status` shows of it.
    /// `subjects`, when given, are that pilot's from ``subjectFactsByPilot(asOf:historyDays:)``.
    public func pilotFacts(pilot: String, asOf t: Instant,
                           historyDays: Int = Metrics.adherenceWindowDays,
                           subjects: [SubjectFacts]? = nil) throws -> PilotFacts {
        PilotFacts(pilot: pilot, asOf: t,
                   subjects: try subjects ?? subjectFacts(pilot: pilot, asOf: t, historyDays: historyDays),
                   lastWeek: try messageCounts(pilot: pilot, from: t.day.advanced(by: -6), through: t.day))
    }

    /// Baseline and latest value of one measurement or score for each subject enrolled at or
    /// before `asOf` that has both (`metrics.md`, outcome indicators), in subject order.
    public func outcomePairs(pilot: String, indicator: Indicator, asOf t: Instant) throws -> [OutcomePair] {
        try outcomePairs(pilot: pilot, indicators: [indicator], asOf: t)[0]
    }

    /// ``outcomePairs(pilot:indicator:asOf:)`` of several indicators (in their order), in one
    /// pass over the pilot's subjects.
    ///
    /// Reads the subjects' `subject_indicator` rows (first and last value); a subject whose
    /// first value is older than its baseline window, or whose last value is later than `asOf`,
    /// costs one primary-key seek into `observation` for that end.
    public func outcomePairs(pilot: String, indicators: [Indicator], asOf t: Instant) throws -> [[OutcomePair]] {
        var pairs = [[OutcomePair]](repeating: [], count: indicators.count)
        guard let pilotID = try pilotID(pilot) else { return pairs }
        // Where each stored indicator's pairs go (an indicator asked for twice fills both places).
        var slots: [Int64: [Int]] = [:]
        for (i, indicator) in indicators.enumerated() {
            if let id = try indicatorID(indicator.code) { slots[id, default: []].append(i) }
        }
        guard !slots.isEmpty else { return pairs }
        let firstFrom = try FastStatement(db, """
            SELECT at, value FROM observation WHERE subject_id = ? AND indicator_id = ? AND at >= ? ORDER BY at ASC LIMIT 1
            """)
        let lastUpTo = try FastStatement(db, """
            SELECT at, value FROM observation WHERE subject_id = ? AND indicator_id = ? AND at <= ? ORDER BY at DESC LIMIT 1
            """)
        func reading(_ statement: FastStatement, _ subject: Int64, _ indicatorID: Int64, _ at: Instant) throws -> Reading? {
            statement.bind(1, subject)
            statement.bind(2, indicatorID)
            statement.bind(3, at.millis)
            return try statement.firstRow { Reading(at: Instant(millis: $0.int64(0)), value: $0.double(1)) }
        }
        // One indicator: a key seek per subject. Several: a subject's few rows in one range read.
        let one = slots.count == 1
        let rows = try FastStatement(db, """
            SELECT s.id, s.enrolled_at, si.indicator_id, si.first_at, si.first_value, si.last_at, si.last_value, s.code
            FROM subject s JOIN subject_indicator si ON si.subject_id = s.id\(one ? " AND si.indicator_id = ?3" : "")
            WHERE s.pilot_id = ?1 AND s.enrolled_at <= ?2
            ORDER BY s.code
            """)
        rows.bind(1, pilotID)
        rows.bind(2, t.millis)
        if one, let only = slots.keys.first { rows.bind(3, only) }
        try rows.forEachRow { row in
            let indicatorID = row.int64(2)
            guard let places = slots[indicatorID], let i = places.first else { return }
            let windows = indicators[i].windows
            let id = row.int64(0)
            let enrolment = Instant(millis: row.int64(1))
            let first = Reading(at: Instant(millis: row.int64(3)), value: row.double(4))
            let last = Reading(at: Instant(millis: row.int64(5)), value: row.double(6))
            guard let bw = Metrics.baselineWindow(enrolment: enrolment, windows: windows, asOf: t),
                  let lw = Metrics.latestWindow(enrolment: enrolment, windows: windows, asOf: t),
                  first.at <= bw.upperBound, last.at >= lw.lowerBound
            else { return }
            // The earliest value at or after the window's start, and the latest at or before T:
            // each is `Metrics.baseline`/`latest` of the subject's values when it lies in its
            // window (the windows computed above; no array a subject).
            let baselineCandidate = first.at >= bw.lowerBound
                ? first : try reading(firstFrom, id, indicatorID, bw.lowerBound)
            guard let baseline = baselineCandidate, bw.contains(baseline.at) else { return }
            let latestCandidate = last.at <= t ? last : try reading(lastUpTo, id, indicatorID, t)
            guard let latest = latestCandidate, lw.contains(latest.at) else { return }
            let code = row.text(7)
            for place in places { pairs[place].append(OutcomePair(baseline: baseline.value, latest: latest.value, subject: code)) }
        }
        return pairs
    }

    /// Every stored event of the pilot's subjects, at any time and of every event indicator, in
    /// subject code, indicator and time order: one pass over the subjects' `event` keys. Callers
    /// keep the indicators and the period they want (the events are few next to observations).
    public func pilotEvents(pilot: String) throws -> [SubjectEvent] {
        guard let pilotID = try pilotID(pilot) else { return [] }
        var codes: [Int64: String] = [:]
        let indicators = try FastStatement(db, "SELECT id, code FROM indicator WHERE kind = 'event'")
        try indicators.forEachRow { codes[$0.int64(0)] = $0.text(1) }
        let rows = try FastStatement(db, """
            SELECT s.code, e.indicator_id, e.at FROM subject s JOIN event e ON e.subject_id = s.id
            WHERE s.pilot_id = ?
            ORDER BY s.code, e.indicator_id, e.at
            """)
        rows.bind(1, pilotID)
        var out: [SubjectEvent] = []
        var previous = ""
        try rows.forEachRow { row in
            guard let code = codes[row.int64(1)] else { return }
            previous = row.text(0, reusing: previous)
            out.append(SubjectEvent(subject: previous, indicator: code, at: Instant(millis: row.int64(2))))
        }
        return out
    }
}

private func millis(_ value: Int64?) -> Instant? { value.map(Instant.init(millis:)) }
