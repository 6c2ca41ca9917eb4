import PilotwatchCore

/// One figure as a snapshot carries it (federation.md, "Disclosure control at the boundary"): its
/// value; a count between 1 and `min_cell - 1` as `{"lt": min_cell}`; a value held from an earlier
/// snapshot, `{"value": v, "held_since": "<as_of>"}`; or a statistic that does not leave, `null`.
public enum SnapshotFigure: Sendable, Hashable {
    case value(Double)
    case lessThan(Int)
    case held(Double, since: Instant)
    case withheld

    public static func count(_ n: Int) -> SnapshotFigure { .value(Double(n)) }

    /// The exact value, when the snapshot carries one (a held value is the one published then).
    public var value: Double? {
        switch self {
        case .value(let v): return v
        case .held(let v, _): return v
        case .lessThan, .withheld: return nil
        }
    }

    /// The value as a count, when it is a whole number.
    public var count: Int? { value.flatMap { $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil } }

    func write(_ w: inout JSONWriter, _ key: String) {
        switch self {
        case .value(let v): w.field(key, v)
        case .lessThan(let k): w.objectField(key) { $0.field("lt", k) }
        case .held(let v, let since): w.objectField(key) { o in o.field("value", v); o.field("held_since", since.description) }
        case .withheld: w.field(key, nil as Double?)
        }
    }

    func element(_ w: inout JSONWriter) {
        switch self {
        case .value(let v): w.element(v)
        case .lessThan(let k): w.object { $0.field("lt", k) }
        case .held(let v, let since): w.object { o in o.field("value", v); o.field("held_since", since.description) }
        case .withheld: w.element(nil as Double?)
        }
    }
}

/// The registry facts a snapshot was computed with (the cluster refuses one computed with others).
public struct SnapshotRegistry: Sendable, Hashable {
    public struct Outcome: Sendable, Hashable {
        public var indicator: String
        public var unit: String
        public var target: ValueRange?
        public var windows: OutcomeWindows
        public init(indicator: String, unit: String, target: ValueRange?, windows: OutcomeWindows) {
            self.indicator = indicator; self.unit = unit; self.target = target; self.windows = windows
        }
    }
    public var start: Day
    public var end: Day
    public var enrolmentTarget: Int
    public var milestones: [Milestone]
    public var outcomes: [Outcome]

    public init(start: Day, end: Day, enrolmentTarget: Int, milestones: [Milestone], outcomes: [Outcome]) {
        self.start = start; self.end = end; self.enrolmentTarget = enrolmentTarget
        self.milestones = milestones; self.outcomes = outcomes
    }

    public init(pilot: Pilot, catalogue: Catalogue) {
        start = pilot.start
        end = pilot.end
        enrolmentTarget = pilot.enrolmentTarget
        milestones = pilot.milestones.sorted { $0.date < $1.date }
        outcomes = pilot.outcomes.compactMap { code in
            catalogue.indicator(code).map { Outcome(indicator: $0.code, unit: $0.unit, target: $0.target, windows: $0.windows) }
        }
    }
}

/// A pilot's snapshot at a UTC day end: the sufficient statistics of every figure of metrics.md
/// (federation.md, "Snapshot message"), with nothing that names or points at a person or a device.
///
/// ```swift
/// let snapshot = try SnapshotBuilder.build(store: store, pilot: pilot, catalogue: catalogue,
///                                          day: day, revision: now.millis, msgID: "...")
/// print(snapshot.json())          // the message a site publishes on {root}/{pilot}/{site}/agg
/// ```
public struct PilotSnapshot: Sendable, Hashable {
    public struct Enrolment: Sendable, Hashable {
        public var enrolled, withdrawn, inFollowUp, enrolled30d: SnapshotFigure
        /// Enrolled by the end of each registry milestone date at or before `T`.
        public var milestones: [SnapshotFigure]
        /// Cumulative enrolled at the end of every 7th UTC day back from day(T), oldest first.
        public var curve: [SnapshotFigure]
    }
    public struct Week: Sendable, Hashable {
        /// Sum over in-follow-up subjects of each one's adherence ratio (0...1).
        public var adherenceSum: SnapshotFigure
        public var adherenceN: SnapshotFigure
    }
    public struct Activity: Sendable, Hashable {
        public var active7d: SnapshotFigure
        /// Sum over in-follow-up subjects of each one's adherence ratio (0...1).
        public var adherenceSum: SnapshotFigure
        public var adherenceN: SnapshotFigure
        /// The pilot view's weeks, oldest first.
        public var weekly: [Week]
    }
    public struct Outcome: Sendable, Hashable {
        public var indicator: String
        public var nPaired, sumBaseline, sumLatest, sumChange, m2Change: SnapshotFigure
        public var inTarget: SnapshotFigure?
        public var improved: SnapshotFigure?
    }
    public struct Event: Sendable, Hashable {
        public var indicator: String
        public var events, patientDays: SnapshotFigure
    }
    public struct Devices: Sendable, Hashable {
        public var seen, silent48h, batteryLow, messages7d, refusals7d: SnapshotFigure
    }
    public struct Quality: Sendable, Hashable {
        public var messages, accepted, duplicateMessages, duplicateObservations, unenrolledSubjects: SnapshotFigure
        public var refused: [(reason: ReasonCode, n: SnapshotFigure)]

        public static func == (a: Quality, b: Quality) -> Bool {
            a.messages == b.messages && a.accepted == b.accepted && a.duplicateMessages == b.duplicateMessages
                && a.duplicateObservations == b.duplicateObservations && a.unenrolledSubjects == b.unenrolledSubjects
                && a.refused.map(\.reason) == b.refused.map(\.reason) && a.refused.map(\.n) == b.refused.map(\.n)
        }
        public func hash(into h: inout Hasher) { h.combine(messages); h.combine(accepted); h.combine(refused.map(\.n)) }
    }

    public static let kind = "pilot_snapshot"
    /// The `msg_id` prefix of an ended pilot's archived final figures (never published).
    public static let archiveMsgIDPrefix = "archive-"
    public static let metricsVersion = 1

    public var msgID: String
    public var pilot: String
    /// `T`: the end of a UTC day.
    public var asOf: Instant
    /// The site's computation time, in milliseconds since the epoch.
    public var revision: Int64
    public var minCell: Int
    public var registry: SnapshotRegistry
    public var enrolment: Enrolment
    public var activity: Activity
    public var outcomes: [Outcome]
    public var events: [Event]
    public var devices: Devices
    public var quality: Quality
    public var lastObservationAt: Instant?

    /// The message, as published: one JSON object, keys in the order of federation.md.
    public func json() -> String {
        var w = JSONWriter()
        w.object { o in
            o.field("msg_id", msgID)
            o.field("kind", Self.kind)
            o.field("pilot", pilot)
            o.field("as_of", asOf.description)
            o.field("revision", Int(revision))
            o.field("metrics_version", Self.metricsVersion)
            o.field("min_cell", minCell)
            o.objectField("registry") { r in
                r.field("start", registry.start.description)
                r.field("end", registry.end.description)
                r.field("enrolment_target", registry.enrolmentTarget)
                r.arrayField("milestones") { a in
                    for m in registry.milestones { a.object { e in e.field("date", m.date.description); e.field("enrolled", m.enrolled) } }
                }
                r.arrayField("outcomes") { a in
                    for i in registry.outcomes {
                        a.object { e in
                            e.field("indicator", i.indicator)
                            e.field("unit", i.unit)
                            if let t = i.target {
                                e.objectField("target") { $0.field("min", t.min); $0.field("max", t.max) }
                            } else {
                                e.field("target", nil as Double?)
                            }
                            e.objectField("windows") { w in
                                w.field("baseline_before_days", i.windows.baselineBeforeDays)
                                w.field("baseline_after_days", i.windows.baselineAfterDays)
                                w.field("follow_up_days", i.windows.followUpDays)
                            }
                        }
                    }
                }
            }
            o.objectField("enrolment") { e in
                enrolment.enrolled.write(&e, "enrolled")
                enrolment.withdrawn.write(&e, "withdrawn")
                enrolment.inFollowUp.write(&e, "in_follow_up")
                enrolment.enrolled30d.write(&e, "enrolled_30d")
                e.arrayField("milestones") { a in for m in enrolment.milestones { m.element(&a) } }
                e.arrayField("curve") { a in for c in enrolment.curve { c.element(&a) } }
            }
            o.objectField("activity") { a in
                activity.active7d.write(&a, "active_7d")
                activity.adherenceSum.write(&a, "adherence_sum")
                activity.adherenceN.write(&a, "adherence_n")
                a.arrayField("weekly") { list in
                    for week in activity.weekly {
                        list.object { e in
                            week.adherenceSum.write(&e, "adherence_sum")
                            week.adherenceN.write(&e, "adherence_n")
                        }
                    }
                }
            }
            o.arrayField("outcomes") { a in
                for x in outcomes {
                    a.object { e in
                        e.field("indicator", x.indicator)
                        x.nPaired.write(&e, "n_paired")
                        x.sumBaseline.write(&e, "sum_baseline")
                        x.sumLatest.write(&e, "sum_latest")
                        x.sumChange.write(&e, "sum_change")
                        x.m2Change.write(&e, "m2_change")
                        (x.inTarget ?? .withheld).write(&e, "in_target")
                        (x.improved ?? .withheld).write(&e, "improved")
                    }
                }
            }
            o.arrayField("events") { a in
                for x in events {
                    a.object { e in
                        e.field("indicator", x.indicator)
                        x.events.write(&e, "events")
                        x.patientDays.write(&e, "patient_days")
                    }
                }
            }
            o.objectField("devices") { d in
                devices.seen.write(&d, "seen")
                devices.silent48h.write(&d, "silent_48h")
                devices.batteryLow.write(&d, "battery_low")
                devices.messages7d.write(&d, "messages_7d")
                devices.refusals7d.write(&d, "refusals_7d")
            }
            o.objectField("quality") { q in
                quality.messages.write(&q, "messages")
                quality.accepted.write(&q, "accepted")
                q.objectField("refused") { r in for (reason, n) in quality.refused { n.write(&r, reason.rawValue) } }
                quality.duplicateMessages.write(&q, "duplicate_messages")
                quality.duplicateObservations.write(&q, "duplicate_observations")
                quality.unenrolledSubjects.write(&q, "unenrolled_subjects")
            }
            o.field("last_observation_at", lastObservationAt?.description)
        }
        return w.text
    }

    // MARK: - Statistics back from a snapshot

    /// The subject and follow-up statistics, when every figure they need is exact.
    public var pilotStatistics: PilotStatistics? {
        guard let enrolled = enrolment.enrolled.count, let withdrawn = enrolment.withdrawn.count,
              let enrolled30d = enrolment.enrolled30d.count, let active = activity.active7d.count,
              let sum = activity.adherenceSum.value, let n = activity.adherenceN.count,
              let unenrolled = quality.unenrolledSubjects.count else { return nil }
        var s = PilotStatistics()
        s.enrolled = enrolled; s.withdrawn = withdrawn; s.enrolled30d = enrolled30d; s.active7d = active
        s.adherenceSumPct = 100 * sum; s.adherenceN = n; s.unenrolledSubjects = unenrolled
        s.lastObservationAt = lastObservationAt
        return s
    }

    /// An outcome indicator's statistics, when exact.
    public func outcomeStatistics(_ o: Outcome) -> OutcomeStatistics? {
        guard let n = o.nPaired.count, let sb = o.sumBaseline.value, let sl = o.sumLatest.value,
              let sc = o.sumChange.value, let m2 = o.m2Change.value else { return nil }
        return OutcomeStatistics(indicator: o.indicator, sumBaseline: sb, sumLatest: sl, change: MomentSums(n: n, sum: sc, m2: m2),
                                 inTarget: o.inTarget?.count, improved: o.improved?.count)
    }

    /// The weekly history's statistics, when exact. A week's enrolments are the difference of
    /// two points of the enrolment curve (none before it starts).
    public var weeklyStatistics: [WeeklyStatistics]? {
        let curve = enrolment.curve.map(\.count)
        guard !curve.contains(nil) else { return nil }
        let points = curve.compactMap { $0 }
        /// Cumulative enrolled at the end of the day `w` weeks back from day(T).
        func cumulative(_ w: Int) -> Int {
            let i = points.count - 1 - w
            return i >= 0 ? points[i] : 0
        }
        var out: [WeeklyStatistics] = []
        for (i, week) in activity.weekly.enumerated() {
            guard let sum = week.adherenceSum.value, let n = week.adherenceN.count else { return nil }
            let w = activity.weekly.count - 1 - i
            out.append(WeeklyStatistics(weekEnding: asOf.day.advanced(by: -7 * w), enrolments: cumulative(w) - cumulative(w + 1),
                                        adherenceSumPct: 100 * sum, adherenceN: n))
        }
        return out
    }
}
