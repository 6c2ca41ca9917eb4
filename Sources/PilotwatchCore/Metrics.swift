/// The metric definitions of `metrics.md` (version 1) as pure functions over values.
///
/// Every view (CLI table, JSON, CSV) and every export computes its numbers here, from
/// ``SubjectFacts``, ``Reading`` candidates and ``SubjectEvent``s that a store reader
/// gathers, so that a number has one implementation. `asOf` is the instant `T`: nothing
/// after it counts. Windows in days are exact spans of 24-hour days; bounds are inclusive
/// unless the definition says otherwise; a figure with no subject to stand on is nil (JSON
/// `null`), never 0.
///
/// ```swift
/// let figures = Metrics.pilot(subjects, target: 120, end: pilot.end, asOf: t)
/// figures.enrolled                 // 42
/// figures.transmissionAdherence    // 78.5 (percent), or nil with nobody in follow-up
/// ```
public enum Metrics {
    /// `active_7d` looks at observations in `(T - 7d, T]`.
    public static let activeWindowDays = 7.0
    /// `adherence_window(s)` is at most this many UTC days, ending on `day(T)`.
    public static let adherenceWindowDays = 28
    /// `enrolment_rate_30d` counts enrolments in `(T - 30d, T]`.
    public static let rateWindowDays = 30.0
    /// Days in a patient-month: 365.25 / 12.
    public static let daysPerMonth = 30.4375
    /// A pilot is silent when its latest measurement or score is older than this, in hours.
    public static let silentAfterHours = 48.0
    /// A pilot's refusal rate over the last 7 days above this percentage is flagged.
    public static let refusalRateFlagPct = 5.0

    // MARK: - Subjects and follow-up

    /// `enrolled`: subjects with an `enrolled` event at or before `T`.
    public static func enrolled(_ subjects: [SubjectFacts], asOf t: Instant) -> Int {
        subjects.reduce(0) { $0 + ($1.enrolment(asOf: t) != nil ? 1 : 0) }
    }

    /// `withdrawn`: enrolled subjects with a `withdrawn` event after their enrolment and at or before `T`.
    public static func withdrawn(_ subjects: [SubjectFacts], asOf t: Instant) -> Int {
        subjects.reduce(0) { $0 + ($1.withdrawal(asOf: t) != nil ? 1 : 0) }
    }

    /// `enrolment_pct`: `100 * enrolled / enrolment_target`; nil without a positive target.
    public static func enrolmentPct(enrolled: Int, target: Int) -> Double? {
        target > 0 ? 100 * Double(enrolled) / Double(target) : nil
    }

    /// `enrolment_rate_30d`: enrolments in `(T - 30d, T]`, per 30 days.
    public static func enrolmentRate30d(_ subjects: [SubjectFacts], asOf t: Instant) -> Double {
        let from = t.adding(days: -rateWindowDays)
        let n = subjects.reduce(0) { n, s in
            guard let e = s.enrolment(asOf: t), e > from else { return n }
            return n + 1
        }
        return Double(n) * 30 / rateWindowDays
    }

    /// `projected_target_date`: the UTC date of `T + 30d × (target - enrolled) / rate`;
    /// nil when the rate is 0 or the target is reached.
    public static func projectedTargetDate(enrolled: Int, target: Int, rate30d: Double, asOf t: Instant) -> Day? {
        let remaining = target - enrolled
        guard remaining > 0, rate30d > 0, rate30d.isFinite else { return nil }
        let days = 30 * Double(remaining) / rate30d
        guard days < 3_650_000 else { return nil }
        return t.adding(days: days).day
    }

    /// `on_track`: the target is reached, or the projected date is on or before the pilot's end
    /// date; false otherwise (also when nobody enrolled in the last 30 days).
    public static func onTrack(enrolled: Int, target: Int, projected: Day?, end: Day) -> Bool {
        if enrolled >= target { return true }
        guard let projected else { return false }
        return projected <= end
    }

    /// Whether an in-follow-up subject has a measurement or score in `(T - 7d, T]`.
    ///
    /// `s.lastObservationAt` must have been read as of `T` (the latest at or before `T`).
    public static func isActive7d(_ s: SubjectFacts, asOf t: Instant) -> Bool {
        guard s.isInFollowUp(asOf: t), let last = s.lastObservationAt else { return false }
        return last > t.adding(days: -activeWindowDays) && last <= t
    }

    /// `active_7d`: in-follow-up subjects with at least one measurement or score in `(T - 7d, T]`.
    public static func active7d(_ subjects: [SubjectFacts], asOf t: Instant) -> Int {
        subjects.reduce(0) { $0 + (isActive7d($1, asOf: t) ? 1 : 0) }
    }

    /// `follow_up_days(s)`: elapsed days from enrolment to `T` or withdrawal, whichever is
    /// first; nil for a subject not enrolled at `T`.
    public static func followUpDays(_ s: SubjectFacts, asOf t: Instant) -> Double? {
        guard let e = s.enrolment(asOf: t) else { return nil }
        return e.days(to: s.withdrawal(asOf: t) ?? t)
    }

    /// `adherence_window(s)`: UTC days from `max(day(T) - 27, day(enrolment))` to `day(T)`.
    public static func adherenceWindow(enrolment: Instant, asOf t: Instant) -> ClosedRange<Day> {
        let last = t.day
        let first = max(last.advanced(by: -(adherenceWindowDays - 1)), enrolment.day)
        return min(first, last)...last
    }

    /// One subject's share of its adherence window with at least one measurement or score,
    /// in percent; nil unless the subject is in follow-up at `T`.
    public static func subjectAdherence(_ s: SubjectFacts, asOf t: Instant) -> Double? {
        guard s.isInFollowUp(asOf: t), let e = s.enrolment(asOf: t) else { return nil }
        let window = adherenceWindow(enrolment: e, asOf: t)
        return 100 * Double(s.activity.count(in: window)) / Double(window.count)
    }

    /// `transmission_adherence`: the mean over in-follow-up subjects of their adherence, in
    /// percent; nil with nobody in follow-up.
    public static func transmissionAdherence(_ subjects: [SubjectFacts], asOf t: Instant) -> Double? {
        var sum = 0.0, n = 0
        for s in subjects {
            if let a = subjectAdherence(s, asOf: t) { sum += a; n += 1 }
        }
        return n > 0 ? sum / Double(n) : nil
    }

    /// `unenrolled_subjects`: subjects with data at or before `T` but no `enrolled` event at or before `T`.
    public static func unenrolledSubjects(_ subjects: [SubjectFacts], asOf t: Instant) -> Int {
        subjects.reduce(0) { $0 + ($1.isUnenrolled(asOf: t) ? 1 : 0) }
    }

    /// The latest measurement or score of any subject (the pilot's "last data").
    public static func lastObservation(_ subjects: [SubjectFacts]) -> Instant? {
        subjects.compactMap(\.lastObservationAt).max()
    }

    /// Every subject-and-follow-up figure of one pilot: its statistics, then the figures from them.
    public static func pilot(_ subjects: [SubjectFacts], target: Int, end: Day, asOf t: Instant) -> PilotFigures {
        pilot(statistics(subjects, asOf: t), target: target, end: end, asOf: t)
    }

    /// A programme's figures: counts are sums over its pilots, adherence is the mean over all
    /// their in-follow-up subjects (never a mean of pilot means); from the pilots' statistics.
    public static func programme(_ pilots: [(subjects: [SubjectFacts], target: Int)], asOf t: Instant) -> ProgrammeFigures {
        programme(pilots.map { (statistics($0.subjects, asOf: t), $0.target) })
    }

    // MARK: - Milestones and weekly history

    /// Each milestone with the enrolments made by the end of its date (or by `T` if earlier):
    /// met when they reach its number, missed when its date is past, pending otherwise.
    public static func milestones(_ milestones: [Milestone], subjects: [SubjectFacts], asOf t: Instant) -> [MilestoneProgress] {
        Metrics.milestones(milestones, counts: milestoneCounts(milestones, subjects: subjects, asOf: t), asOf: t)
    }

    /// The first milestone not yet met whose date has not passed.
    public static func nextMilestone(_ milestones: [Milestone], subjects: [SubjectFacts], asOf t: Instant) -> MilestoneProgress? {
        Metrics.milestones(milestones, subjects: subjects, asOf: t).first { $0.state == .pending }
    }

    /// The activity days a weekly history of `weeks` points needs: its oldest adherence window.
    public static func historyDays(weeks: Int) -> Int { 7 * max(0, weeks - 1) + adherenceWindowDays }

    /// The last `weeks` weeks, oldest first. Week `w` (0 = the latest) is the 7 UTC days ending
    /// on `day(T) - 7w`: its enrolments are those made on these days (at or before `T`), and its
    /// adherence is `transmission_adherence` at the end of its last day (at `T` for week 0).
    ///
    /// The subjects' ``ActivityDays`` must cover ``historyDays(weeks:)`` days back from `day(T)`.
    public static func weekly(_ subjects: [SubjectFacts], weeks: Int, asOf t: Instant) -> [WeeklyPoint] {
        weekly(weeklyStatistics(subjects, weeks: weeks, asOf: t))
    }

    // MARK: - Outcome indicators

    /// The window of `baseline(s)`: `[enrolment - before, enrolment + after]`, cut at `T`.
    public static func baselineWindow(enrolment e: Instant, windows: OutcomeWindows, asOf t: Instant) -> ClosedRange<Instant>? {
        let lo = e.adding(days: -windows.baselineBeforeDays)
        let hi = min(e.adding(days: windows.baselineAfterDays), t)
        return lo <= hi ? lo...hi : nil
    }

    /// The window of `latest(s)`: `[enrolment + follow-up, T]`; nil before the follow-up is reached.
    public static func latestWindow(enrolment e: Instant, windows: OutcomeWindows, asOf t: Instant) -> ClosedRange<Instant>? {
        let lo = e.adding(days: windows.followUpDays)
        return lo <= t ? lo...t : nil
    }

    /// `baseline(s)`: among `values`, the one with the earliest time in the baseline window.
    public static func baseline(_ values: [Reading], enrolment: Instant, windows: OutcomeWindows, asOf t: Instant) -> Reading? {
        guard let window = baselineWindow(enrolment: enrolment, windows: windows, asOf: t) else { return nil }
        return values.filter { window.contains($0.at) }.min { $0.at < $1.at }
    }

    /// `latest(s)`: among `values`, the one with the latest time in `[enrolment + follow-up, T]`.
    public static func latest(_ values: [Reading], enrolment: Instant, windows: OutcomeWindows, asOf t: Instant) -> Reading? {
        guard let window = latestWindow(enrolment: enrolment, windows: windows, asOf: t) else { return nil }
        return values.filter { window.contains($0.at) }.max { $0.at < $1.at }
    }

    /// The outcome figures of one indicator from the paired subjects' baseline and latest values.
    public static func outcome(_ indicator: Indicator, pairs: [OutcomePair]) -> OutcomeFigures {
        outcome(outcomeStatistics(indicator, pairs: pairs))
    }

    // MARK: - Events

    /// The part of a subject's follow-up inside the period `[since, T]` (`since` nil: no lower
    /// bound); nil for a subject not enrolled at `T`.
    public static func followUpSpan(_ s: SubjectFacts, since: Instant?, asOf t: Instant) -> ClosedRange<Instant>? {
        guard let e = s.enrolment(asOf: t) else { return nil }
        let lo = max(e, since ?? e)
        let hi = s.withdrawal(asOf: t) ?? t
        return lo <= hi ? lo...hi : nil
    }

    /// `patient_days`: the elapsed days of follow-up inside the period, summed over enrolled subjects.
    public static func patientDays(_ subjects: [SubjectFacts], since: Instant?, asOf t: Instant) -> Double {
        subjects.reduce(0) { sum, s in
            guard let span = followUpSpan(s, since: since, asOf: t) else { return sum }
            return sum + span.lowerBound.days(to: span.upperBound)
        }
    }

    /// `events` and `rate_per_100_patient_months` for each of `indicators`: the events of
    /// enrolled subjects inside their follow-up and the period `[since, T]`.
    public static func events(_ indicators: [String], subjects: [SubjectFacts], events: [SubjectEvent],
                              since: Instant?, asOf t: Instant) -> [EventFigures] {
        eventStatistics(indicators, subjects: subjects, events: events, since: since, asOf: t).map(event)
    }

    // MARK: - Data quality

    /// The share of messages refused, in percent; nil when no message was received.
    public static func refusalRatePct(refused: Int, received: Int) -> Double? {
        received > 0 ? 100 * Double(refused) / Double(received) : nil
    }
}

/// What the metrics need to know about one subject, read as of an instant `T`.
///
/// ```swift
/// let s = SubjectFacts(code: "p-0001", enrolledAt: e, withdrawnAt: nil, firstDataAt: e,
///                      lastObservationAt: last, activity: ActivityDays(lastDay: t.day, days: days, covering: 28))
/// ```
public struct SubjectFacts: Sendable, Hashable {
    /// The pilot's pseudonym.
    public var code: String
    /// The subject's first `enrolled` event, whenever it happened.
    public var enrolledAt: Instant?
    /// Its first `withdrawn` event strictly after `enrolledAt`.
    public var withdrawnAt: Instant?
    /// Its earliest stored observation of any kind (measurement, score or event).
    public var firstDataAt: Instant?
    /// Its latest measurement or score at or before `T`.
    public var lastObservationAt: Instant?
    /// UTC days with at least one measurement or score at or before `T`.
    public var activity: ActivityDays

    public init(code: String, enrolledAt: Instant?, withdrawnAt: Instant?, firstDataAt: Instant?,
                lastObservationAt: Instant?, activity: ActivityDays) {
        self.code = code; self.enrolledAt = enrolledAt; self.withdrawnAt = withdrawnAt
        self.firstDataAt = firstDataAt; self.lastObservationAt = lastObservationAt; self.activity = activity
    }

    /// The enrolment, if it happened at or before `t`.
    public func enrolment(asOf t: Instant) -> Instant? {
        guard let e = enrolledAt, e <= t else { return nil }
        return e
    }

    /// The withdrawal, if the subject is enrolled at `t` and withdrew after enrolling and at or before `t`.
    public func withdrawal(asOf t: Instant) -> Instant? {
        guard let e = enrolment(asOf: t), let w = withdrawnAt, w > e, w <= t else { return nil }
        return w
    }

    /// Enrolled and not withdrawn at `t`.
    public func isInFollowUp(asOf t: Instant) -> Bool {
        enrolment(asOf: t) != nil && withdrawal(asOf: t) == nil
    }

    /// Has data at or before `t` but no enrolment at or before `t`.
    public func isUnenrolled(asOf t: Instant) -> Bool {
        guard let first = firstDataAt, first <= t else { return false }
        return enrolment(asOf: t) == nil
    }
}

/// UTC days with at least one measurement or score, as a bit set counted back from `lastDay`:
/// bit `k % 64` of `words[k / 64]` stands for the day `lastDay - k`.
///
/// ```swift
/// let a = ActivityDays(lastDay: today, days: [today, today.advanced(by: -3)], covering: 28)
/// a.count(in: today.advanced(by: -6)...today)  // 2
/// ```
public struct ActivityDays: Sendable, Hashable {
    public var lastDay: Day
    public var words: [UInt64]

    public init(lastDay: Day, words: [UInt64]) {
        self.lastDay = lastDay
        self.words = words
    }

    /// Days of `days` within the `covering` days ending on `lastDay` (others are dropped).
    public init(lastDay: Day, days: some Sequence<Day>, covering: Int) {
        self.lastDay = lastDay
        words = Array(repeating: 0, count: ActivityDays.words(forDays: covering))
        for d in days where d.distance(to: lastDay) < covering { insert(d) }
    }

    /// Adds `day`; a day after `lastDay` or older than the set covers changes nothing.
    public mutating func insert(_ day: Day) {
        let k = day.distance(to: lastDay)
        guard k >= 0, k < coveredDays else { return }
        words[k / 64] |= 1 << UInt64(k % 64)
    }

    /// The number of 64-bit words that cover `days` days.
    public static func words(forDays days: Int) -> Int { max(1, (days + 63) / 64) }

    /// No activity, covering `days` days ending on `lastDay`.
    public static func none(lastDay: Day, covering days: Int) -> ActivityDays {
        ActivityDays(lastDay: lastDay, words: Array(repeating: 0, count: words(forDays: days)))
    }

    /// The same days seen from another last day: those within the `covering` days ending on
    /// `newLastDay` (others are dropped). Days after `lastDay` are unknown to the set and come
    /// back empty.
    ///
    /// ```swift
    /// // A roll-up kept as of the subject's latest day, read for a dashboard as of today:
    /// ActivityDays(lastDay: latest, words: [lo, hi]).rebased(lastDay: today, covering: 28)
    /// ```
    public func rebased(lastDay newLastDay: Day, covering days: Int) -> ActivityDays {
        let shift = lastDay.distance(to: newLastDay)
        guard shift >= 0 else {
            return ActivityDays(lastDay: newLastDay, days: self.days, covering: days)
        }
        let words = self.words
        return ActivityDays(lastDay: newLastDay, words: Self.shifted(words.count, { words[$0] }, by: shift, covering: days))
    }

    /// A roll-up's two words `lo`, `hi` (the days ending on `lastDay`) seen from `newLastDay`:
    /// `ActivityDays(lastDay: lastDay, words: [lo, hi]).rebased(lastDay: newLastDay, covering: days)`,
    /// without the first array (the overview reads one a subject, 50,000 at a time).
    public static func rebased(lastDay: Day, lo: UInt64, hi: UInt64, to newLastDay: Day, covering days: Int) -> ActivityDays {
        let shift = lastDay.distance(to: newLastDay)
        guard shift >= 0 else { return ActivityDays(lastDay: lastDay, words: [lo, hi]).rebased(lastDay: newLastDay, covering: days) }
        return ActivityDays(lastDay: newLastDay, words: shifted(2, { $0 == 0 ? lo : hi }, by: shift, covering: days))
    }

    /// The words of a set whose `count` words are `word(j)`, moved `shift` days older, covering `days`.
    private static func shifted(_ count: Int, _ word: (Int) -> UInt64, by shift: Int, covering days: Int) -> [UInt64] {
        let outCount = ActivityDays.words(forDays: days)
        var out = [UInt64](repeating: 0, count: outCount)
        let wordShift = shift / 64, bitShift = UInt64(shift % 64)
        for j in 0..<outCount {
            let source = j - wordShift
            guard source >= 0 else { continue }
            var w: UInt64 = source < count ? word(source) << bitShift : 0
            if bitShift > 0, source >= 1, source - 1 < count { w |= word(source - 1) >> (64 - bitShift) }
            out[j] = w
        }
        // Bits past `days` (the last word is rounded up to 64) are not known to the window.
        let spare = outCount * 64 - days
        if spare > 0 { out[outCount - 1] &= UInt64.max >> UInt64(spare) }
        return out
    }

    /// How many days back from `lastDay` (included) the set knows about.
    public var coveredDays: Int { words.count * 64 }

    public func contains(_ day: Day) -> Bool {
        let k = day.distance(to: lastDay)
        guard k >= 0, k < coveredDays else { return false }
        let bit: UInt64 = 1 << UInt64(k % 64)
        return words[k / 64] & bit != 0
    }

    /// Days of `range` with activity.
    public func count(in range: ClosedRange<Day>) -> Int {
        // Bits k (days lastDay - k) from the range's newest day to its oldest, a word at a time.
        var k = max(0, range.upperBound.distance(to: lastDay))
        let oldest = min(coveredDays - 1, range.lowerBound.distance(to: lastDay))
        var n = 0
        while k <= oldest {
            let end = min(oldest, (k / 64) * 64 + 63)
            let width = end - k + 1
            let mask: UInt64 = width == 64 ? .max : ((1 << UInt64(width)) - 1) << UInt64(k % 64)
            n += (words[k / 64] & mask).nonzeroBitCount
            k = end + 1
        }
        return n
    }

    /// Every day with activity, oldest first.
    public var days: [Day] {
        var out: [Day] = []
        for k in (0..<coveredDays).reversed() {
            let bit: UInt64 = 1 << UInt64(k % 64)
            if words[k / 64] & bit != 0 { out.append(lastDay.advanced(by: -k)) }
        }
        return out
    }
}

/// A measurement or score value and the instant it was observed.
public struct Reading: Sendable, Hashable {
    public var at: Instant
    public var value: Double
    public init(at: Instant, value: Double) { self.at = at; self.value = value }
}

/// A subject's baseline and latest value of one outcome indicator.
public struct OutcomePair: Sendable, Hashable {
    public var baseline: Double
    public var latest: Double
    /// The subject it belongs to, when the reader says (the site's disclosure control needs it).
    public var subject: String?
    public init(baseline: Double, latest: Double, subject: String? = nil) {
        self.baseline = baseline; self.latest = latest; self.subject = subject
    }
}

/// An event of a subject (hospitalisation, exacerbation, ...).
public struct SubjectEvent: Sendable, Hashable {
    /// The subject's pseudonym.
    public var subject: String
    public var indicator: String
    public var at: Instant
    public init(subject: String, indicator: String, at: Instant) {
        self.subject = subject; self.indicator = indicator; self.at = at
    }
}

/// The subject and follow-up figures of one pilot (JSON keys in comments).
public struct PilotFigures: Sendable, Hashable {
    public var enrolled: Int                 // enrolled
    public var withdrawn: Int                // withdrawn
    public var inFollowUp: Int               // in_follow_up
    public var enrolmentTarget: Int          // enrolment_target
    public var enrolmentPct: Double?         // enrolment_pct
    public var enrolmentRate30d: Double      // enrolment_rate_30d
    public var projectedTargetDate: Day?     // projected_target_date
    public var onTrack: Bool                 // on_track
    public var active7d: Int                 // active_7d
    public var transmissionAdherence: Double? // transmission_adherence
    public var unenrolledSubjects: Int       // unenrolled_subjects
    /// The latest measurement or score at or before `T` (`last_observation_at`).
    public var lastObservationAt: Instant?

    public init(enrolled: Int, withdrawn: Int, inFollowUp: Int, enrolmentTarget: Int, enrolmentPct: Double?,
                enrolmentRate30d: Double, projectedTargetDate: Day?, onTrack: Bool, active7d: Int,
                transmissionAdherence: Double?, unenrolledSubjects: Int, lastObservationAt: Instant?) {
        self.enrolled = enrolled; self.withdrawn = withdrawn; self.inFollowUp = inFollowUp
        self.enrolmentTarget = enrolmentTarget; self.enrolmentPct = enrolmentPct
        self.enrolmentRate30d = enrolmentRate30d; self.projectedTargetDate = projectedTargetDate
        self.onTrack = onTrack; self.active7d = active7d; self.transmissionAdherence = transmissionAdherence
        self.unenrolledSubjects = unenrolledSubjects; self.lastObservationAt = lastObservationAt
    }
}

/// A programme's pooled figures: sums of counts, means over all subjects of its pilots.
public struct ProgrammeFigures: Sendable, Hashable {
    public var pilots: Int
    public var enrolled = 0
    public var withdrawn = 0
    public var inFollowUp = 0
    public var enrolmentTarget = 0
    public var enrolmentPct: Double?
    public var enrolmentRate30d = 0.0
    public var active7d = 0
    public var transmissionAdherence: Double?
    public var unenrolledSubjects = 0
    public var lastObservationAt: Instant?

    public init(pilots: Int) { self.pilots = pilots }
}

/// Where a milestone stands.
public enum MilestoneState: String, Sendable, Hashable {
    case met, missed, pending
}

/// A milestone with the enrolments made by its date.
public struct MilestoneProgress: Sendable, Hashable {
    public var milestone: Milestone
    /// Enrolments at or before the end of the milestone's date (or `T`, if earlier).
    public var enrolled: Int
    public var state: MilestoneState
    public init(milestone: Milestone, enrolled: Int, state: MilestoneState) {
        self.milestone = milestone; self.enrolled = enrolled; self.state = state
    }
}

/// One week of a pilot's history.
public struct WeeklyPoint: Sendable, Hashable {
    /// The last UTC day of the week.
    public var weekEnding: Day
    public var enrolments: Int
    public var transmissionAdherence: Double?
    public init(weekEnding: Day, enrolments: Int, transmissionAdherence: Double?) {
        self.weekEnding = weekEnding; self.enrolments = enrolments; self.transmissionAdherence = transmissionAdherence
    }
}

/// The figures of one outcome indicator (JSON keys in comments).
public struct OutcomeFigures: Sendable, Hashable {
    public var indicator: String             // indicator
    public var nPaired: Int                  // n_paired
    public var meanBaseline: Double?         // mean_baseline
    public var meanLatest: Double?           // mean_latest
    public var meanChange: Double?           // mean_change
    public var changeCI95: Interval?         // change_ci95
    public var pctInTarget: Double?          // pct_in_target
    public var improvedPct: Double?          // improved_pct

    public init(indicator: String, nPaired: Int, meanBaseline: Double? = nil, meanLatest: Double? = nil,
                meanChange: Double? = nil, changeCI95: Interval? = nil, pctInTarget: Double? = nil,
                improvedPct: Double? = nil) {
        self.indicator = indicator; self.nPaired = nPaired; self.meanBaseline = meanBaseline
        self.meanLatest = meanLatest; self.meanChange = meanChange; self.changeCI95 = changeCI95
        self.pctInTarget = pctInTarget; self.improvedPct = improvedPct
    }
}

/// The figures of one event indicator (JSON keys in comments).
public struct EventFigures: Sendable, Hashable {
    public var indicator: String                 // indicator
    public var events: Int                       // events
    /// Elapsed days of follow-up inside the period, summed over enrolled subjects.
    public var patientDays: Double               // patient_days
    public var ratePer100PatientMonths: Double?  // rate_per_100_patient_months

    public init(indicator: String, events: Int, patientDays: Double, ratePer100PatientMonths: Double?) {
        self.indicator = indicator; self.events = events; self.patientDays = patientDays
        self.ratePer100PatientMonths = ratePer100PatientMonths
    }
}
