/// The sufficient statistics of the metrics: what a pilot's figures are computed from, and what
/// pools exactly across pilots (federation.md: a site sends these, the cluster computes the very
/// same figures from them). Every figure of ``Metrics`` is computed in two steps, statistics from
/// subjects, then figures from statistics, so a single instance, a site and a cluster cannot drift.
///
/// ```swift
/// let s = Metrics.statistics(subjects, asOf: t)                 // counts and sums, no subject
/// let f = Metrics.pilot(s, target: 120, end: pilot.end, asOf: t) // == Metrics.pilot(subjects, ...)
/// ```

/// The count, sum and sum of squared deviations from the mean (`m2`) of some values: what a mean,
/// a sample variance and a confidence interval need. Two sets combine exactly (the parallel
/// formula of Chan, Golub and LeVeque), so pooled figures never average means.
public struct MomentSums: Sendable, Hashable {
    public var n: Int
    public var sum: Double
    public var m2: Double

    public init(n: Int, sum: Double, m2: Double) { self.n = n; self.sum = sum; self.m2 = m2 }

    /// The sums of `values` (two passes: the mean, then the squared deviations from it).
    public init(_ values: [Double]) {
        n = values.count
        sum = values.reduce(0, +)
        guard n > 0 else { m2 = 0; return }
        let mean = sum / Double(n)
        m2 = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
    }

    public static let empty = MomentSums(n: 0, sum: 0, m2: 0)

    /// The sums of both sets together.
    public func combined(with other: MomentSums) -> MomentSums {
        guard n > 0 else { return other }
        guard other.n > 0 else { return self }
        let na = Double(n), nb = Double(other.n)
        let delta = other.sum / nb - sum / na
        return MomentSums(n: n + other.n, sum: sum + other.sum, m2: m2 + other.m2 + delta * delta * na * nb / (na + nb))
    }

    /// The mean; nil for no values.
    public var mean: Double? { n > 0 ? sum / Double(n) : nil }

    /// The 95% confidence interval of the mean, `mean ± t(0.975, n-1) · s / √n` with
    /// `s² = m2 / (n - 1)`; nil for fewer than two values.
    public var confidenceInterval95: Interval? {
        guard n >= 2, let m = mean, let t = Statistics.studentTQuantile(0.975, degreesOfFreedom: Double(n - 1)) else { return nil }
        let s = (max(0, m2) / Double(n - 1)).squareRoot()
        let half = t * s / Double(n).squareRoot()
        return Interval(lower: m - half, upper: m + half)
    }
}

/// The subject and follow-up statistics of one pilot at `T` (a snapshot's `enrolment` and
/// `activity` counts). Transmission adherence is kept as the sum, over in-follow-up subjects, of
/// each one's adherence in percent, and their number.
public struct PilotStatistics: Sendable, Hashable {
    public var enrolled = 0
    public var withdrawn = 0
    /// Enrolments in `(T - 30d, T]`.
    public var enrolled30d = 0
    public var active7d = 0
    public var adherenceSumPct = 0.0
    public var adherenceN = 0
    public var unenrolledSubjects = 0
    /// The latest measurement or score at or before `T`.
    public var lastObservationAt: Instant?

    public init() {}

    public var inFollowUp: Int { enrolled - withdrawn }

    /// Both pilots' statistics together (a programme's).
    public func combined(with o: PilotStatistics) -> PilotStatistics {
        var s = self
        s.enrolled += o.enrolled; s.withdrawn += o.withdrawn; s.enrolled30d += o.enrolled30d
        s.active7d += o.active7d; s.adherenceSumPct += o.adherenceSumPct; s.adherenceN += o.adherenceN
        s.unenrolledSubjects += o.unenrolledSubjects
        if let last = o.lastObservationAt, s.lastObservationAt.map({ last > $0 }) ?? true { s.lastObservationAt = last }
        return s
    }
}

/// One week of the pilot view's history: enrolments made on its 7 days, and the adherence sum
/// and count at the end of its last day.
public struct WeeklyStatistics: Sendable, Hashable {
    public var weekEnding: Day
    public var enrolments: Int
    public var adherenceSumPct: Double
    public var adherenceN: Int
    public init(weekEnding: Day, enrolments: Int, adherenceSumPct: Double, adherenceN: Int) {
        self.weekEnding = weekEnding; self.enrolments = enrolments
        self.adherenceSumPct = adherenceSumPct; self.adherenceN = adherenceN
    }
}

/// The statistics of one outcome indicator over the paired subjects (a snapshot's `outcomes`).
public struct OutcomeStatistics: Sendable, Hashable {
    public var indicator: String
    public var sumBaseline: Double
    public var sumLatest: Double
    /// The changes `latest - baseline`: `n` is `n_paired`.
    public var change: MomentSums
    /// Paired subjects whose latest value is in the target range; nil without a range.
    public var inTarget: Int?
    /// Paired subjects whose change is strictly in the good direction; nil for `stable`.
    public var improved: Int?

    public init(indicator: String, sumBaseline: Double, sumLatest: Double, change: MomentSums, inTarget: Int?, improved: Int?) {
        self.indicator = indicator; self.sumBaseline = sumBaseline; self.sumLatest = sumLatest
        self.change = change; self.inTarget = inTarget; self.improved = improved
    }

    public var nPaired: Int { change.n }

    /// The statistics of the same indicator over several pilots' subjects.
    public static func pooled(_ indicator: String, _ parts: [OutcomeStatistics]) -> OutcomeStatistics {
        var s = OutcomeStatistics(indicator: indicator, sumBaseline: 0, sumLatest: 0, change: .empty,
                                  inTarget: parts.first?.inTarget.map { _ in 0 }, improved: parts.first?.improved.map { _ in 0 })
        for p in parts {
            s.sumBaseline += p.sumBaseline
            s.sumLatest += p.sumLatest
            s.change = s.change.combined(with: p.change)
            if let n = p.inTarget { s.inTarget = (s.inTarget ?? 0) + n }
            if let n = p.improved { s.improved = (s.improved ?? 0) + n }
        }
        return s
    }
}

/// The statistics of one event indicator over a period (a snapshot's `events`).
public struct EventStatistics: Sendable, Hashable {
    public var indicator: String
    public var events: Int
    public var patientDays: Double
    public init(indicator: String, events: Int, patientDays: Double) {
        self.indicator = indicator; self.events = events; self.patientDays = patientDays
    }
}

extension Metrics {
    // MARK: - Statistics from subjects

    /// The subject and follow-up statistics of one pilot's subjects at `T`.
    public static func statistics(_ subjects: [SubjectFacts], asOf t: Instant) -> PilotStatistics {
        var s = PilotStatistics()
        let from30d = t.adding(days: -rateWindowDays)
        for subject in subjects {
            if let e = subject.enrolment(asOf: t) {
                s.enrolled += 1
                if e > from30d { s.enrolled30d += 1 }
            }
            if subject.withdrawal(asOf: t) != nil { s.withdrawn += 1 }
            if isActive7d(subject, asOf: t) { s.active7d += 1 }
            if let a = subjectAdherence(subject, asOf: t) { s.adherenceSumPct += a; s.adherenceN += 1 }
            if subject.isUnenrolled(asOf: t) { s.unenrolledSubjects += 1 }
        }
        s.lastObservationAt = lastObservation(subjects)
        return s
    }

    /// Enrolments made by the end of each milestone's date (or by `T`, if earlier), in the
    /// order of `milestones` sorted by date.
    public static func milestoneCounts(_ milestones: [Milestone], subjects: [SubjectFacts], asOf t: Instant) -> [Int] {
        milestones.sorted { $0.date < $1.date }.map { m in
            let cutoff = min(m.date.advanced(by: 1).start.adding(millis: -1), t)
            return subjects.reduce(0) { n, s in
                guard let e = s.enrolment(asOf: t), e <= cutoff else { return n }
                return n + 1
            }
        }
    }

    /// The weekly history's statistics, oldest first (see ``weekly(_:weeks:asOf:)``).
    public static func weeklyStatistics(_ subjects: [SubjectFacts], weeks: Int, asOf t: Instant) -> [WeeklyStatistics] {
        (0..<max(0, weeks)).reversed().map { w in
            let last = t.day.advanced(by: -7 * w)
            let first = last.advanced(by: -6)
            let end = w == 0 ? t : last.advanced(by: 1).start.adding(millis: -1)
            var n = 0, sum = 0.0, count = 0
            for s in subjects {
                if let e = s.enrolment(asOf: t), (first...last).contains(e.day) { n += 1 }
                if let a = subjectAdherence(s, asOf: end) { sum += a; count += 1 }
            }
            return WeeklyStatistics(weekEnding: last, enrolments: n, adherenceSumPct: sum, adherenceN: count)
        }
    }

    /// An outcome indicator's statistics from the paired subjects' baseline and latest values.
    public static func outcomeStatistics(_ indicator: Indicator, pairs: [OutcomePair]) -> OutcomeStatistics {
        let changes = pairs.map { $0.latest - $0.baseline }
        var improved: Int?
        switch indicator.direction {
        case .higher: improved = changes.filter { $0 > 0 }.count
        case .lower: improved = changes.filter { $0 < 0 }.count
        case .stable: improved = nil
        }
        return OutcomeStatistics(indicator: indicator.code,
                                 sumBaseline: pairs.reduce(0) { $0 + $1.baseline },
                                 sumLatest: pairs.reduce(0) { $0 + $1.latest },
                                 change: MomentSums(changes),
                                 inTarget: indicator.target.map { target in pairs.filter { target.contains($0.latest) }.count },
                                 improved: improved)
    }

    /// Each event indicator's events of enrolled subjects inside their follow-up and the period
    /// `[since, T]`, with the period's patient-days.
    public static func eventStatistics(_ indicators: [String], subjects: [SubjectFacts], events: [SubjectEvent],
                                       since: Instant?, asOf t: Instant) -> [EventStatistics] {
        var spans: [String: ClosedRange<Instant>] = [:]
        for s in subjects {
            if let span = followUpSpan(s, since: since, asOf: t) { spans[s.code] = span }
        }
        let days = patientDays(subjects, since: since, asOf: t)
        var counts: [String: Int] = [:]
        for ev in events {
            guard let span = spans[ev.subject], span.contains(ev.at) else { continue }
            counts[ev.indicator, default: 0] += 1
        }
        return indicators.map { EventStatistics(indicator: $0, events: counts[$0] ?? 0, patientDays: days) }
    }

    // MARK: - Figures from statistics

    /// Every subject-and-follow-up figure of one pilot, from its statistics.
    public static func pilot(_ s: PilotStatistics, target: Int, end: Day, asOf t: Instant) -> PilotFigures {
        let rate = Double(s.enrolled30d) * 30 / rateWindowDays
        let projected = projectedTargetDate(enrolled: s.enrolled, target: target, rate30d: rate, asOf: t)
        return PilotFigures(
            enrolled: s.enrolled, withdrawn: s.withdrawn, inFollowUp: s.inFollowUp, enrolmentTarget: target,
            enrolmentPct: enrolmentPct(enrolled: s.enrolled, target: target), enrolmentRate30d: rate,
            projectedTargetDate: projected,
            onTrack: onTrack(enrolled: s.enrolled, target: target, projected: projected, end: end),
            active7d: s.active7d,
            transmissionAdherence: s.adherenceN > 0 ? s.adherenceSumPct / Double(s.adherenceN) : nil,
            unenrolledSubjects: s.unenrolledSubjects,
            lastObservationAt: s.lastObservationAt)
    }

    /// A programme's figures from its pilots' statistics: counts are sums, adherence is the mean
    /// over all their in-follow-up subjects (never a mean of pilot means).
    public static func programme(_ pilots: [(statistics: PilotStatistics, target: Int)]) -> ProgrammeFigures {
        var f = ProgrammeFigures(pilots: pilots.count)
        let s = pilots.reduce(PilotStatistics()) { $0.combined(with: $1.statistics) }
        f.enrolled = s.enrolled
        f.withdrawn = s.withdrawn
        f.inFollowUp = s.inFollowUp
        f.enrolmentTarget = pilots.reduce(0) { $0 + $1.target }
        f.enrolmentPct = enrolmentPct(enrolled: f.enrolled, target: f.enrolmentTarget)
        f.enrolmentRate30d = Double(s.enrolled30d) * 30 / rateWindowDays
        f.active7d = s.active7d
        f.transmissionAdherence = s.adherenceN > 0 ? s.adherenceSumPct / Double(s.adherenceN) : nil
        f.unenrolledSubjects = s.unenrolledSubjects
        f.lastObservationAt = s.lastObservationAt
        return f
    }

    /// Each milestone with its enrolment count: met when it reaches its number, missed when its
    /// date is past, pending otherwise.
    public static func milestones(_ milestones: [Milestone], counts: [Int], asOf t: Instant) -> [MilestoneProgress] {
        zip(milestones.sorted { $0.date < $1.date }, counts).map { m, n in
            MilestoneProgress(milestone: m, enrolled: n, state: n >= m.enrolled ? .met : (m.date < t.day ? .missed : .pending))
        }
    }

    public static func weekly(_ statistics: [WeeklyStatistics]) -> [WeeklyPoint] {
        statistics.map {
            WeeklyPoint(weekEnding: $0.weekEnding, enrolments: $0.enrolments,
                        transmissionAdherence: $0.adherenceN > 0 ? $0.adherenceSumPct / Double($0.adherenceN) : nil)
        }
    }

    /// The outcome figures of one indicator from its statistics.
    public static func outcome(_ s: OutcomeStatistics) -> OutcomeFigures {
        let n = s.nPaired
        var f = OutcomeFigures(indicator: s.indicator, nPaired: n)
        guard n > 0 else { return f }
        f.meanBaseline = s.sumBaseline / Double(n)
        f.meanLatest = s.sumLatest / Double(n)
        f.meanChange = s.change.mean
        f.changeCI95 = s.change.confidenceInterval95
        f.pctInTarget = s.inTarget.map { 100 * Double($0) / Double(n) }
        f.improvedPct = s.improved.map { 100 * Double($0) / Double(n) }
        return f
    }

    /// `events` and `rate_per_100_patient_months` from an event indicator's statistics.
    public static func event(_ s: EventStatistics) -> EventFigures {
        EventFigures(indicator: s.indicator, events: s.events, patientDays: s.patientDays,
                     ratePer100PatientMonths: s.patientDays > 0 ? 100 * Double(s.events) / (s.patientDays / daysPerMonth) : nil)
    }
}
