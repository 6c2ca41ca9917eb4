import Foundation
import PilotwatchCore

/// Who stands behind each figure of a snapshot: for every figure (by its path, `enrolment.enrolled`,
/// `outcomes.hba1c.sum_change`, `enrolment.curve@2026-06-14`...), each contributing subject (or
/// device) and its contribution. Built by the site beside the snapshot, never sent: the rules of
/// disclosure control count subjects with it.
public struct SnapshotContributions: Sendable, Hashable {
    public var figures: [String: [String: Double]] = [:]
    public init() {}

    public subscript(path: String) -> [String: Double] {
        get { figures[path] ?? [:] }
        set { figures[path] = newValue }
    }

    /// `members` each contributing 1 (a count).
    mutating func count(_ path: String, _ members: some Sequence<String>) {
        self[path] = Dictionary(members.map { ($0, 1.0) }, uniquingKeysWith: { a, _ in a })
    }
}

/// What the site has published of each figure: the value and the contributions it rested on, and
/// when. Kept at the site (it holds the raw data anyway) to apply the rule against disclosure by
/// difference over time.
public struct DisclosureState: Sendable, Hashable, Codable {
    public struct Published: Sendable, Hashable, Codable {
        public var value: Double
        /// The `as_of` of the snapshot that published it, in milliseconds.
        public var asOfMillis: Int64
        public var contributions: [String: Double]
    }
    public var figures: [String: Published] = [:]
    public init() {}
}

/// Disclosure control at the boundary (federation.md, `min_cell` > 0), applied by the site to an
/// exact snapshot before it leaves:
///
/// 1. **Primary and secondary suppression.** A count of subjects (or devices) between 1 and
///    `min_cell - 1`, and a zero whose group has fewer than `min_cell` subjects, leaves as
///    `{"lt": min_cell}`; a statistic resting on fewer than `min_cell` subjects leaves as `null`
///    (so do a count of an attribute among them: in target, improved, events). Where one of
///    `enrolled = withdrawn + in_follow_up` is hidden, a second is; cumulative enrolment counts
///    (milestones at or before `T`, the curve, `enrolled`) that are published differ by 0 or at
///    least `min_cell`. Message counts (quality, messages and refusals of the week) count no one
///    and leave as they are.
/// 2. **No disclosure by difference over time.** A figure leaves with a new value only when the
///    subjects whose contribution changed since its last published value number 0 or at least
///    `min_cell`; otherwise the snapshot repeats the last published value with `held_since`.
/// 3. **Coarse times.** `last_observation_at` is rounded down to the hour.
///
/// ```swift
/// let (sent, state) = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: previous)
/// ```
public enum SnapshotDisclosure {
    public static func apply(_ exact: PilotSnapshot, contributions c: SnapshotContributions, minCell k: Int,
                             state: DisclosureState) -> (snapshot: PilotSnapshot, state: DisclosureState) {
        var s = exact
        s.minCell = k
        guard k > 0 else { return (s, state) }
        var w = Work(k: k, c: c, state: state, asOf: exact.asOf)

        // 1. Primary, figure by figure.
        let enrolled = exact.enrolment.enrolled.count ?? 0
        let follow = exact.enrolment.inFollowUp.count ?? 0
        s.enrolment.enrolled = w.count("enrolment.enrolled", exact.enrolment.enrolled, group: nil)
        s.enrolment.withdrawn = w.count("enrolment.withdrawn", exact.enrolment.withdrawn, group: enrolled)
        s.enrolment.inFollowUp = w.count("enrolment.in_follow_up", exact.enrolment.inFollowUp, group: enrolled)
        s.enrolment.enrolled30d = w.count("enrolment.enrolled_30d", exact.enrolment.enrolled30d, group: enrolled)
        let milestones = exact.registry.milestones.filter { $0.date <= exact.asOf.day }
        for (i, m) in zip(milestones, exact.enrolment.milestones).enumerated().map({ ($0.offset, $0.element.0) }) {
            s.enrolment.milestones[i] = w.count(Self.milestonePath(m.date), exact.enrolment.milestones[i], group: enrolled)
        }
        let curveDays = Self.curveDays(exact)
        for (i, day) in curveDays.enumerated() {
            s.enrolment.curve[i] = w.count(Self.curvePath(day), exact.enrolment.curve[i], group: enrolled)
        }
        s.activity.active7d = w.count("activity.active_7d", exact.activity.active7d, group: follow)
        s.activity.adherenceN = w.count("activity.adherence_n", exact.activity.adherenceN, group: follow)
        s.activity.adherenceSum = w.statistic("activity.adherence_sum", exact.activity.adherenceSum)
        for (i, week) in exact.activity.weekly.enumerated() {
            let day = exact.asOf.day.advanced(by: -7 * (exact.activity.weekly.count - 1 - i))
            s.activity.weekly[i].adherenceN = w.count("activity.weekly@\(day).adherence_n", week.adherenceN, group: nil)
            s.activity.weekly[i].adherenceSum = w.statistic("activity.weekly@\(day).adherence_sum", week.adherenceSum)
        }
        for (i, o) in exact.outcomes.enumerated() {
            let p = "outcomes.\(o.indicator)"
            let n = o.nPaired.count ?? 0
            s.outcomes[i].nPaired = w.count(p + ".n_paired", o.nPaired, group: follow)
            s.outcomes[i].sumBaseline = w.statistic(p + ".sum_baseline", o.sumBaseline)
            s.outcomes[i].sumLatest = w.statistic(p + ".sum_latest", o.sumLatest)
            s.outcomes[i].sumChange = w.statistic(p + ".sum_change", o.sumChange)
            s.outcomes[i].m2Change = w.statistic(p + ".m2_change", o.m2Change)
            s.outcomes[i].inTarget = o.inTarget.map { w.attribute(p + ".in_target", $0, among: n) }
            s.outcomes[i].improved = o.improved.map { w.attribute(p + ".improved", $0, among: n) }
        }
        for (i, e) in exact.events.enumerated() {
            let p = "events.\(e.indicator)"
            let resting = c[p + ".patient_days"].count
            s.events[i].patientDays = w.statistic(p + ".patient_days", e.patientDays)
            s.events[i].events = w.attribute(p + ".events", e.events, among: resting)
        }
        let seen = exact.devices.seen.count ?? 0
        s.devices.seen = w.count("devices.seen", exact.devices.seen, group: nil)
        s.devices.silent48h = w.count("devices.silent_48h", exact.devices.silent48h, group: seen)
        s.devices.batteryLow = w.count("devices.battery_low", exact.devices.batteryLow, group: seen)
        s.quality.unenrolledSubjects = w.count("quality.unenrolled_subjects", exact.quality.unenrolledSubjects, group: nil)

        // 1. Secondary: enrolled = withdrawn + in_follow_up, then the cumulative counts.
        let trio = [s.enrolment.enrolled, s.enrolment.withdrawn, s.enrolment.inFollowUp]
        if trio.filter({ !$0.isShown }).count == 1 {
            if s.enrolment.withdrawn.isShown { s.enrolment.withdrawn = w.hide("enrolment.withdrawn", s.enrolment.withdrawn) }
            else { s.enrolment.inFollowUp = w.hide("enrolment.in_follow_up", s.enrolment.inFollowUp) }
        }
        Self.cumulative(&s, &w, milestones: milestones, curveDays: curveDays)
        Self.weeklyCounts(&s, &w)

        // 2. Differencing over time, for what is still to be published.
        w.holdChanges(&s, milestones: milestones, curveDays: curveDays)
        Self.sameFigures(&s)

        // 3. Coarse times.
        s.lastObservationAt = exact.lastObservationAt.map { Instant(millis: $0.millis - (($0.millis % 3_600_000) + 3_600_000) % 3_600_000) }
        return (s, w.state)
    }

    static func milestonePath(_ d: Day) -> String { "enrolment.milestone@\(d)" }
    /// Each subject's follow-up (`code|e`: enrolment, `code|w`: withdrawal), for patient-days.
    static let followUpPath = "events.follow_up"
    static func curvePath(_ d: Day) -> String { "enrolment.curve@\(d)" }

    /// The days of the curve's points, oldest first (every 7th day back from day(T)).
    static func curveDays(_ s: PilotSnapshot) -> [Day] {
        let n = s.enrolment.curve.count
        return (0..<n).map { s.asOf.day.advanced(by: -7 * (n - 1 - $0)) }
    }

    /// The figures that are one figure under two names take one value: the curve's point at
    /// day(T) is `enrolled`, the latest week's adherence count and sum are the current ones
    /// (`adherence_n` is `in_follow_up`).
    static func sameFigures(_ s: inout PilotSnapshot) {
        if !s.enrolment.inFollowUp.isShown {
            // Hidden or held: adherence_n says the same, and the sum goes with its count.
            s.activity.adherenceN = s.enrolment.inFollowUp
            if s.activity.adherenceSum.isShown { s.activity.adherenceSum = .withheld }
        }
        if !s.activity.adherenceN.isShown, s.activity.adherenceSum.isShown { s.activity.adherenceSum = .withheld }
        if let last = s.enrolment.curve.indices.last { s.enrolment.curve[last] = s.enrolment.enrolled }
        if let last = s.activity.weekly.indices.last {
            s.activity.weekly[last].adherenceN = s.activity.adherenceN
            s.activity.weekly[last].adherenceSum = s.activity.adherenceSum
        }
    }

    /// The weekly adherence counts are `in_follow_up` at each week's end: published ones differ by
    /// 0 or at least `k` (with the curve's weekly enrolments they would count withdrawals), and
    /// a week whose count goes goes with its sum.
    static func weeklyCounts(_ s: inout PilotSnapshot, _ w: inout Work) {
        let k = w.k
        // From the latest week (in_follow_up itself) back: each published count differs from the
        // next published one by 0 or at least k.
        var next: Int? = s.enrolment.inFollowUp.exact
        for i in s.activity.weekly.indices.dropLast().reversed() {
            guard s.activity.weekly[i].adherenceN.isShown, let n = s.activity.weekly[i].adherenceN.count else {
                s.activity.weekly[i].adherenceSum = .withheld
                continue
            }
            if let ref = next, (1..<k).contains(abs(n - ref)) {
                s.activity.weekly[i].adherenceN = w.hide("", s.activity.weekly[i].adherenceN)
                s.activity.weekly[i].adherenceSum = .withheld
            } else {
                next = n
            }
        }
    }

    /// Published cumulative counts differ by 0 or at least `k` (as the export's chart).
    static func cumulative(_ s: inout PilotSnapshot, _ w: inout Work, milestones: [Milestone], curveDays: [Day]) {
        let k = w.k
        func gapAllowed(_ d: Int) -> Bool { d == 0 || d >= k }
        let total = s.enrolment.enrolled.isShown ? s.enrolment.enrolled.count : nil
        // Milestones in date order.
        var anchors: [(day: Day, n: Int, index: Int)] = []
        var prev = 0
        for (i, m) in milestones.enumerated() {
            guard s.enrolment.milestones[i].isShown, let n = s.enrolment.milestones[i].count else { continue }
            if gapAllowed(n - prev) { anchors.append((m.date, n, i)); prev = n }
            else { s.enrolment.milestones[i] = w.hide(milestonePath(m.date), s.enrolment.milestones[i]) }
        }
        if let total {
            while let last = anchors.last, !gapAllowed(total - last.n) {
                s.enrolment.milestones[last.index] = w.hide(milestonePath(last.day), s.enrolment.milestones[last.index])
                anchors.removeLast()
            }
        }
        var points = anchors.map { (day: $0.day, n: $0.n) }
        if let total { points.append((s.asOf.day, total)) }
        var last = 0, next = 0
        for (i, day) in curveDays.enumerated() {
            while next < points.count, points[next].day < day { last = points[next].n; next += 1 }
            guard s.enrolment.curve[i].isShown, let v = s.enrolment.curve[i].count else { continue }
            if day == s.asOf.day {
                if total == nil { s.enrolment.curve[i] = w.hide(curvePath(day), s.enrolment.curve[i]) }
                continue
            }
            let nextValue = next < points.count ? points[next].n : nil
            if gapAllowed(v - last), nextValue.map({ gapAllowed($0 - v) }) ?? true { last = v }
            else { s.enrolment.curve[i] = w.hide(curvePath(day), s.enrolment.curve[i]) }
        }
        // `enrolled - enrolled_30d` is the count 30 days back: it must keep the same distance
        // from every published cumulative count.
        if let total, let recent = s.enrolment.enrolled30d.exact {
            let back = total - recent
            let published = s.enrolment.curve.compactMap(\.exact) + s.enrolment.milestones.compactMap(\.exact)
            if published.contains(where: { !gapAllowed(abs($0 - back)) }) {
                s.enrolment.enrolled30d = w.hide("enrolment.enrolled_30d", s.enrolment.enrolled30d)
            }
        }
    }

    struct Work {
        let k: Int
        let c: SnapshotContributions
        var state: DisclosureState
        let asOf: Instant

        /// A count of people: `lt` for 1...k-1, and for 0 when its group has fewer than k.
        func count(_ path: String, _ f: SnapshotFigure, group: Int?) -> SnapshotFigure {
            guard let v = f.count else { return f }
            if (1..<k).contains(v) { return .lessThan(k) }
            if v == 0, let group, group < k { return .lessThan(k) }
            return f
        }

        /// A statistic (a sum): withheld when it rests on fewer than k subjects.
        func statistic(_ path: String, _ f: SnapshotFigure) -> SnapshotFigure {
            c[path].count < k ? .withheld : f
        }

        /// A count of an attribute among `n` subjects: withheld when they are fewer than k, or when
        /// those without it number 1...k-1 (`n - c` would name them); `lt` for 1...k-1 otherwise.
        func attribute(_ path: String, _ f: SnapshotFigure, among n: Int) -> SnapshotFigure {
            if n < k { return .withheld }
            if let v = f.count, (1..<k).contains(n - v) { return .withheld }
            return count(path, f, group: nil)
        }

        /// A figure hidden to protect another: `lt` for a small count, withheld otherwise.
        func hide(_ path: String, _ f: SnapshotFigure) -> SnapshotFigure {
            if let v = f.count, v < k { return .lessThan(k) }
            return .withheld
        }

        /// Rule 2 over every figure still shown, by groups of figures that identities tie
        /// together (one held, all held); records what is published.
        mutating func holdChanges(_ s: inout PilotSnapshot, milestones: [Milestone], curveDays: [Day]) {
            // References to the snapshot's figures, by path.
            typealias Slot = (path: String, get: (PilotSnapshot) -> SnapshotFigure, set: (inout PilotSnapshot, SnapshotFigure) -> Void)
            func slot(_ path: String, _ kp: WritableKeyPath<PilotSnapshot, SnapshotFigure>) -> Slot {
                (path, { $0[keyPath: kp] }, { $0[keyPath: kp] = $1 })
            }
            var identity: [Slot] = [
                slot("enrolment.enrolled", \.enrolment.enrolled), slot("enrolment.withdrawn", \.enrolment.withdrawn),
                slot("enrolment.in_follow_up", \.enrolment.inFollowUp), slot("enrolment.enrolled_30d", \.enrolment.enrolled30d),
                slot("activity.adherence_n", \.activity.adherenceN),
            ]
            for (i, m) in milestones.enumerated() { identity.append(slot(SnapshotDisclosure.milestonePath(m.date), \.enrolment.milestones[i])) }
            for (i, d) in curveDays.enumerated().dropLast() { identity.append(slot(SnapshotDisclosure.curvePath(d), \.enrolment.curve[i])) }
            let weeks = s.activity.weekly.count
            for i in 0..<max(0, weeks - 1) {
                let day = s.asOf.day.advanced(by: -7 * (weeks - 1 - i))
                identity.append(slot("activity.weekly@\(day).adherence_n", \.activity.weekly[i].adherenceN))
            }
            var groups: [[Slot]] = [identity]
            groups.append([slot("activity.active_7d", \.activity.active7d)])
            groups.append([slot("activity.adherence_sum", \.activity.adherenceSum)])
            for i in 0..<max(0, weeks - 1) {
                let day = s.asOf.day.advanced(by: -7 * (weeks - 1 - i))
                groups.append([slot("activity.weekly@\(day).adherence_sum", \.activity.weekly[i].adherenceSum)])
            }
            for i in s.outcomes.indices {
                let p = "outcomes.\(s.outcomes[i].indicator)"
                var g = [slot(p + ".n_paired", \.outcomes[i].nPaired), slot(p + ".sum_baseline", \.outcomes[i].sumBaseline),
                         slot(p + ".sum_latest", \.outcomes[i].sumLatest), slot(p + ".sum_change", \.outcomes[i].sumChange),
                         slot(p + ".m2_change", \.outcomes[i].m2Change)]
                if s.outcomes[i].inTarget != nil {
                    g.append((p + ".in_target", { $0.outcomes[i].inTarget ?? .withheld }, { $0.outcomes[i].inTarget = $1 }))
                }
                if s.outcomes[i].improved != nil {
                    g.append((p + ".improved", { $0.outcomes[i].improved ?? .withheld }, { $0.outcomes[i].improved = $1 }))
                }
                groups.append(g)
            }
            // Patient-days: one figure for all event indicators; their counts each alone.
            groups.append(s.events.indices.map { slot("events.\(s.events[$0].indicator).patient_days", \.events[$0].patientDays) })
            for i in s.events.indices { groups.append([slot("events.\(s.events[i].indicator).events", \.events[i].events)]) }
            groups.append([slot("devices.seen", \.devices.seen)])
            groups.append([slot("devices.silent_48h", \.devices.silent48h)])
            groups.append([slot("devices.battery_low", \.devices.batteryLow)])
            groups.append([slot("quality.unenrolled_subjects", \.quality.unenrolledSubjects)])

            for group in groups where !group.isEmpty {
                let shown = group.filter { $0.get(s).isShown }
                let hold = shown.contains { small(changes($0.path)) }
                for member in shown {
                    if hold {
                        member.set(&s, held(member.path))
                    } else if case .value(let v) = member.get(s) {
                        state.figures[member.path] = DisclosureState.Published(value: v, asOfMillis: asOf.millis, contributions: tracked(member.path))
                    }
                }
            }
        }

        func small(_ changed: Int) -> Bool { changed > 0 && changed < k }

        /// What a figure's changes are counted on: its contributions; for patient-days, whether
        /// each subject entered, left or ended its follow-up (its growth with time says nothing).
        func tracked(_ path: String) -> [String: Double] {
            path.hasSuffix(".patient_days") ? c[SnapshotDisclosure.followUpPath] : c[path]
        }

        /// Subjects whose contribution changed since the figure's last published value.
        func changes(_ path: String) -> Int {
            guard let last = state.figures[path] else { return 0 }
            let now = tracked(path)
            let members = Set(now.keys).union(last.contributions.keys)
            return Set(members.filter { now[$0] != last.contributions[$0] }.map { $0.split(separator: "|").first.map(String.init) ?? $0 }).count
        }

        /// The last published value, held since its day end; withheld when there is none, or
        /// when it was published for this day end (an earlier revision) or a later one (a resend
        /// of an earlier day end): `held_since` is before `as_of`.
        func held(_ path: String) -> SnapshotFigure {
            guard let last = state.figures[path], last.asOfMillis < asOf.millis else { return .withheld }
            return .held(last.value, since: Instant(millis: last.asOfMillis))
        }
    }
}

extension SnapshotFigure {
    /// Carries its current exact value.
    var isShown: Bool { if case .value = self { return true }; return false }

    /// The current exact value as a count (not a held one).
    var exact: Int? { isShown ? count : nil }
}
