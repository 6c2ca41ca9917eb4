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

        // 2. Differencing over time, for what is still to be published.
        w.holdChanges(&s, milestones: milestones, curveDays: curveDays)

        // 3. Coarse times.
        s.lastObservationAt = exact.lastObservationAt.map { Instant(millis: $0.millis - (($0.millis % 3_600_000) + 3_600_000) % 3_600_000) }
        return (s, w.state)
    }

    static func milestonePath(_ d: Day) -> String { "enrolment.milestone@\(d)" }
    static func curvePath(_ d: Day) -> String { "enrolment.curve@\(d)" }

    /// The days of the curve's points, oldest first (every 7th day back from day(T)).
    static func curveDays(_ s: PilotSnapshot) -> [Day] {
        let n = s.enrolment.curve.count
        return (0..<n).map { s.asOf.day.advanced(by: -7 * (n - 1 - $0)) }
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

        /// A count of an attribute among `n` subjects: withheld when they are fewer than k,
        /// `lt` for 1...k-1 otherwise.
        func attribute(_ path: String, _ f: SnapshotFigure, among n: Int) -> SnapshotFigure {
            if n < k { return .withheld }
            return count(path, f, group: nil)
        }

        /// A figure hidden to protect another: `lt` for a small count, withheld otherwise.
        func hide(_ path: String, _ f: SnapshotFigure) -> SnapshotFigure {
            if let v = f.count, v < k { return .lessThan(k) }
            return .withheld
        }

        /// Rule 2 over every figure still shown; records what is published.
        mutating func holdChanges(_ s: inout PilotSnapshot, milestones: [Milestone], curveDays: [Day]) {
            func rule(_ path: String, _ f: inout SnapshotFigure) { f = hold(path, f) }
            rule("enrolment.enrolled", &s.enrolment.enrolled)
            rule("enrolment.withdrawn", &s.enrolment.withdrawn)
            rule("enrolment.in_follow_up", &s.enrolment.inFollowUp)
            rule("enrolment.enrolled_30d", &s.enrolment.enrolled30d)
            for (i, m) in milestones.enumerated() { rule(SnapshotDisclosure.milestonePath(m.date), &s.enrolment.milestones[i]) }
            for (i, d) in curveDays.enumerated() { rule(SnapshotDisclosure.curvePath(d), &s.enrolment.curve[i]) }
            rule("activity.active_7d", &s.activity.active7d)
            rule("activity.adherence_sum", &s.activity.adherenceSum)
            rule("activity.adherence_n", &s.activity.adherenceN)
            for i in s.activity.weekly.indices {
                let day = s.asOf.day.advanced(by: -7 * (s.activity.weekly.count - 1 - i))
                rule("activity.weekly@\(day).adherence_sum", &s.activity.weekly[i].adherenceSum)
                rule("activity.weekly@\(day).adherence_n", &s.activity.weekly[i].adherenceN)
            }
            for i in s.outcomes.indices {
                let p = "outcomes.\(s.outcomes[i].indicator)"
                rule(p + ".n_paired", &s.outcomes[i].nPaired)
                rule(p + ".sum_baseline", &s.outcomes[i].sumBaseline)
                rule(p + ".sum_latest", &s.outcomes[i].sumLatest)
                rule(p + ".sum_change", &s.outcomes[i].sumChange)
                rule(p + ".m2_change", &s.outcomes[i].m2Change)
                if var f = s.outcomes[i].inTarget { rule(p + ".in_target", &f); s.outcomes[i].inTarget = f }
                if var f = s.outcomes[i].improved { rule(p + ".improved", &f); s.outcomes[i].improved = f }
            }
            for i in s.events.indices {
                let p = "events.\(s.events[i].indicator)"
                rule(p + ".events", &s.events[i].events)
                rule(p + ".patient_days", &s.events[i].patientDays)
            }
            rule("devices.seen", &s.devices.seen)
            rule("devices.silent_48h", &s.devices.silent48h)
            rule("devices.battery_low", &s.devices.batteryLow)
            rule("quality.unenrolled_subjects", &s.quality.unenrolledSubjects)
        }

        /// A shown figure whose contributions changed for 1...k-1 members since its last
        /// published value repeats that value, held since then; otherwise it is published.
        mutating func hold(_ path: String, _ f: SnapshotFigure) -> SnapshotFigure {
            guard case .value(let v) = f else { return f }
            let now = c[path]
            if let last = state.figures[path] {
                let members = Set(now.keys).union(last.contributions.keys)
                let changed = members.filter { now[$0] != last.contributions[$0] }.count
                if changed > 0 && changed < k { return .held(last.value, since: Instant(millis: last.asOfMillis)) }
                if changed == 0 && last.value == v { return f }
            }
            state.figures[path] = DisclosureState.Published(value: v, asOfMillis: asOf.millis, contributions: now)
            return f
        }
    }
}

extension SnapshotFigure {
    /// Carries its current exact value.
    var isShown: Bool { if case .value = self { return true }; return false }

    /// The current exact value as a count (not a held one).
    var exact: Int? { isShown ? count : nil }
}
