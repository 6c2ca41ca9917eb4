import PilotwatchCore
import PilotwatchStore

/// Where a pilot's figures in a view come from when it reports aggregates: its latest day-end
/// snapshot at or before the view's `T`. Figures are computed as of the snapshot's `as_of`, with
/// the same functions as for a pilot whose rows the store holds.
public struct SnapshotSource: Sendable, Hashable {
    /// The snapshot's day end; nil when the site has sent none at or before `T`.
    public var asOf: Instant?
    public var revision: Int64
    public var minCell: Int
    /// Older than a day plus the site's grace at the view's `T` (the site, not the pilot, may be
    /// the cause).
    public var stale: Bool
    /// The archive of an ended pilot whose raw rows were purged (never stale), not a site's snapshot.
    public var archived: Bool = false
    /// The view's figures (by JSON key) that the snapshot does not give exactly: `{lt}`, held
    /// (with the day end it was published at) or withheld.
    public var marks: [String: SnapshotFigure]

    /// The mark of a figure, if it has one.
    public subscript(key: String) -> SnapshotFigure? { marks[key] }
}

extension Dashboard {
    /// The status row of a pilot that reports aggregates but has no snapshot at or before `T`:
    /// every figure withheld, stale.
    public static func pilotStatus(_ pilot: Pilot, missingSnapshotAt t: Instant, thresholds: AlertThresholds) -> PilotStatus {
        let keys = ["enrolled", "withdrawn", "in_follow_up", "enrolment_pct", "enrolment_rate_30d", "projected_target_date",
                    "on_track", "active_7d", "transmission_adherence", "unenrolled_subjects"]
        let figures = Metrics.pilot(PilotStatistics(), target: pilot.enrolmentTarget, end: pilot.end, asOf: t)
        return PilotStatus(pilot: pilot, figures: figures, nextMilestone: nil, lastWeek: MessageCounts(), refusalRate7d: nil,
                           devices: DeviceCounts(), thresholds: pilot.alertThresholds(thresholds), conditions: [],
                           snapshot: SnapshotSource(asOf: nil, revision: 0, minCell: 0, stale: true,
                                                    marks: Dictionary(uniqueKeysWithValues: keys.map { ($0, SnapshotFigure.withheld) })))
    }

    /// The grace a site has after a day end before its snapshot is late (federation.md, 2 h).
    public static let snapshotGraceSeconds = 7_200.0

    /// One pilot's status row from its snapshot. Figures the snapshot withholds or holds are
    /// marked (``SnapshotSource/marks``); those built from them (the enrolment percentage and
    /// projection from `enrolled`, adherence from its sum and count) carry the same mark.
    public static func pilotStatus(_ pilot: Pilot, snapshot: PilotSnapshot, thresholds: AlertThresholds, asOf t: Instant,
                                   graceSeconds: Double = Dashboard.snapshotGraceSeconds) -> PilotStatus {
        let at = snapshot.asOf
        var marks: [String: SnapshotFigure] = [:]
        func exact(_ key: String, _ f: SnapshotFigure) -> Int {
            if !f.isShown { marks[key] = f }
            return f.count ?? 0
        }
        var s = PilotStatistics()
        s.enrolled = exact("enrolled", snapshot.enrolment.enrolled)
        s.withdrawn = exact("withdrawn", snapshot.enrolment.withdrawn)
        s.enrolled30d = exact("enrolment_rate_30d", snapshot.enrolment.enrolled30d)
        s.active7d = exact("active_7d", snapshot.activity.active7d)
        s.unenrolledSubjects = exact("unenrolled_subjects", snapshot.quality.unenrolledSubjects)
        s.lastObservationAt = snapshot.lastObservationAt
        if snapshot.activity.adherenceSum.isShown && snapshot.activity.adherenceN.isShown {
            s.adherenceSumPct = 100 * (snapshot.activity.adherenceSum.value ?? 0)
            s.adherenceN = snapshot.activity.adherenceN.count ?? 0
        } else {
            marks["transmission_adherence"] = snapshot.activity.adherenceSum.isShown ? snapshot.activity.adherenceN : snapshot.activity.adherenceSum
        }
        if !snapshot.enrolment.inFollowUp.isShown { marks["in_follow_up"] = snapshot.enrolment.inFollowUp }
        // Figures built from others carry their mark.
        if let m = marks["enrolled"] { marks["enrolment_pct"] = m; marks["projected_target_date"] = m; marks["on_track"] = m }
        if let m = marks["enrolment_rate_30d"] { marks["projected_target_date"] = marks["projected_target_date"] ?? m; marks["on_track"] = marks["on_track"] ?? m }

        var figures = Metrics.pilot(s, target: pilot.enrolmentTarget, end: pilot.end, asOf: at)
        // in_follow_up as the snapshot gives it (with a held withdrawn, enrolled - withdrawn is
        // neither the site's value nor the published one).
        figures.inFollowUp = snapshot.enrolment.inFollowUp.count ?? 0
        for (key, f) in [("devices.seen", snapshot.devices.seen), ("devices.silent_48h", snapshot.devices.silent48h),
                         ("devices.battery_low", snapshot.devices.batteryLow)] where !f.isShown {
            marks[key] = f
        }
        // Milestones at or before the snapshot's day carry their counts; later ones stand at `enrolled`.
        let past = pilot.milestones.sorted { $0.date < $1.date }.filter { $0.date <= at.day }
        let counts = pilot.milestones.sorted { $0.date < $1.date }.map { m -> Int in
            guard let i = past.firstIndex(of: m), i < snapshot.enrolment.milestones.count else {
                // A later milestone stands at `enrolled`, and carries its mark.
                if let mark = marks["enrolled"] { marks["milestone@\(m.date)"] = mark }
                return s.enrolled
            }
            let f = snapshot.enrolment.milestones[i]
            if !f.isShown { marks["milestone@\(m.date)"] = f }
            return f.count ?? 0
        }
        let milestones = Metrics.milestones(pilot.milestones, counts: counts, asOf: at)
        var lastWeek = MessageCounts()
        lastWeek.refused = snapshot.devices.refusals7d.count ?? 0
        lastWeek.accepted = max(0, (snapshot.devices.messages7d.count ?? 0) - lastWeek.refused)
        var devices = DeviceCounts()
        devices.total = snapshot.devices.seen.count ?? 0
        devices.silent = snapshot.devices.silent48h.count ?? 0
        devices.lowBattery = snapshot.devices.batteryLow.count ?? 0
        let rate = Metrics.refusalRatePct(refused: lastWeek.refused, received: lastWeek.received)
        let mine = pilot.alertThresholds(thresholds)
        // Rules are evaluated only on what the snapshot gives exactly.
        let conditions = AlertEvaluator.pilot(pilot, figures: figures, milestones: milestones, lastWeek: lastWeek,
                                              refusalRate: rate, devices: devices, thresholds: mine, asOf: at)
            .filter { marks.isEmpty || !Self.restsOnMarked($0.rule, marks) }
        let archived = snapshot.msgID.hasPrefix(PilotSnapshot.archiveMsgIDPrefix)
        let stale = !archived && Double(t.millis - at.millis) / 1000 > 86_400 + graceSeconds
        return PilotStatus(pilot: pilot, figures: figures, nextMilestone: milestones.first { $0.state == .pending },
                           lastWeek: lastWeek, refusalRate7d: rate, devices: devices, thresholds: mine, conditions: conditions,
                           snapshot: SnapshotSource(asOf: at, revision: snapshot.revision, minCell: snapshot.minCell,
                                                    stale: stale, archived: archived, marks: marks))
    }

    /// Whether a rule's condition rests on a figure the snapshot does not give exactly.
    static func restsOnMarked(_ rule: AlertRule, _ marks: [String: SnapshotFigure]) -> Bool {
        switch rule {
        case .behindTarget: return marks["on_track"] != nil
        case .missedMilestone: return marks["enrolled"] != nil || marks.keys.contains { $0.hasPrefix("milestone@") }
        case .lowActivity: return marks["active_7d"] != nil || marks["in_follow_up"] != nil
        case .lowAdherence: return marks["transmission_adherence"] != nil
        case .unenrolledSubjects: return marks["unenrolled_subjects"] != nil
        case .devicesSilent: return marks["devices.seen"] != nil || marks["devices.silent_48h"] != nil
        case .lowBattery: return marks["devices.seen"] != nil || marks["devices.battery_low"] != nil
        default: return false
        }
    }

    /// The statistics a programme pools from a snapshot, or nil with the figures it lacks.
    static func poolable(_ snapshot: PilotSnapshot) -> PilotStatistics? {
        snapshot.pilotStatistics.flatMap { stats in
            let exact = [snapshot.enrolment.enrolled, snapshot.enrolment.withdrawn, snapshot.enrolment.enrolled30d,
                         snapshot.activity.active7d, snapshot.activity.adherenceSum, snapshot.activity.adherenceN,
                         snapshot.quality.unenrolledSubjects].allSatisfy(\.isShown)
            return exact ? stats : nil
        }
    }
}

extension Dashboard {
    /// One pilot in depth from its snapshot: its status row, milestones, weekly history, outcomes
    /// and events from the statistics, its devices as counts (the status row's) and its message
    /// counts; a statistic the snapshot withholds stays null, a count it gives as `{lt}` or held
    /// is marked (``PilotBoard/snapshotMarks``).
    public static func pilot(_ pilot: Pilot, snapshot: PilotSnapshot, catalogue: Catalogue, asOf t: Instant,
                             thresholds: AlertThresholds = .defaults) -> PilotBoard {
        let status = pilotStatus(pilot, snapshot: snapshot, thresholds: thresholds, asOf: t)
        var marks: [String: SnapshotFigure] = [:]
        var outcomes: [(indicator: Indicator, figures: OutcomeFigures)] = []
        for o in snapshot.outcomes {
            guard let indicator = catalogue.indicator(o.indicator) else { continue }
            let parts = [o.nPaired, o.sumBaseline, o.sumLatest, o.sumChange, o.m2Change]
            // All held since one day end: the figures published then, marked held.
            let heldSince = Set(parts.compactMap { f -> Instant? in if case .held(_, let since) = f { return since }; return nil })
            let allHeld = heldSince.count == 1 && parts.allSatisfy { !$0.isShown }
            if let stats = snapshot.outcomeStatistics(o), parts.allSatisfy(\.isShown) || allHeld {
                var f = Metrics.outcome(stats)
                if allHeld, let since = heldSince.first {
                    marks["outcomes.\(o.indicator).n_paired"] = o.nPaired
                    marks["outcomes.\(o.indicator)"] = .held(f.meanChange ?? 0, since: since)
                }
                // A share is shown when its count is given as its n is (both exact, or both held from then).
                func sameGiving(_ m: SnapshotFigure) -> Bool { allHeld ? m == .held(m.value ?? -1, since: heldSince.first!) : m.isShown }
                if let m = o.inTarget, !sameGiving(m) { f.pctInTarget = nil; marks["outcomes.\(o.indicator).pct_in_target"] = m }
                if let m = o.improved, !sameGiving(m) { f.improvedPct = nil; marks["outcomes.\(o.indicator).improved_pct"] = m }
                outcomes.append((indicator, f))
            } else {
                if !o.nPaired.isShown { marks["outcomes.\(o.indicator).n_paired"] = o.nPaired }
                // The means, change and interval are not given exactly.
                marks["outcomes.\(o.indicator)"] = [o.sumChange, o.sumBaseline, o.sumLatest, o.m2Change].first { !$0.isShown } ?? .withheld
                outcomes.append((indicator, OutcomeFigures(indicator: o.indicator, nPaired: o.nPaired.count ?? 0)))
            }
        }
        let events: [EventFigures] = snapshot.events.map { e in
            if e.events.isShown, e.patientDays.isShown, let n = e.events.count, let d = e.patientDays.value {
                return Metrics.event(EventStatistics(indicator: e.indicator, events: n, patientDays: d))
            }
            if !e.events.isShown { marks["events.\(e.indicator).events"] = e.events }
            // Held patient-days are the value published then, marked so, with no rate.
            if !e.patientDays.isShown { marks["events.\(e.indicator).patient_days"] = e.patientDays }
            return EventFigures(indicator: e.indicator, events: e.events.count ?? 0, patientDays: e.patientDays.value ?? 0,
                                ratePer100PatientMonths: nil)
        }
        let weekly: [WeeklyPoint]
        if let stats = snapshot.weeklyStatistics, snapshot.enrolment.curve.allSatisfy(\.isShown),
           snapshot.activity.weekly.allSatisfy({ $0.adherenceSum.isShown && $0.adherenceN.isShown }) {
            weekly = Metrics.weekly(stats)
        } else {
            // Not given exactly: the weeks without figures.
            weekly = (0..<snapshot.activity.weekly.count).reversed().map {
                WeeklyPoint(weekEnding: snapshot.asOf.day.advanced(by: -7 * $0), enrolments: 0, transmissionAdherence: nil)
            }
            marks["weekly"] = .withheld
        }
        var period = MessageCounts()
        period.accepted = snapshot.quality.accepted.count ?? 0
        period.duplicate = snapshot.quality.duplicateMessages.count ?? 0
        period.duplicateObservations = snapshot.quality.duplicateObservations.count ?? 0
        for (reason, n) in snapshot.quality.refused { period.refusedByReason[reason] = n.count ?? 0 }
        period.refused = period.refusedByReason.values.reduce(0, +)
        let past = pilot.milestones.sorted { $0.date < $1.date }.filter { $0.date <= snapshot.asOf.day }
        let milestoneCounts = pilot.milestones.sorted { $0.date < $1.date }.map { m -> Int in
            guard let i = past.firstIndex(of: m), i < snapshot.enrolment.milestones.count else { return status.figures.enrolled }
            return snapshot.enrolment.milestones[i].count ?? 0
        }
        for (key, mark) in status.snapshot?.marks ?? [:] where key.hasPrefix("milestone@") { marks[key] = mark }
        return PilotBoard(asOf: snapshot.asOf, since: nil, status: status,
                          milestones: Metrics.milestones(pilot.milestones, counts: milestoneCounts, asOf: snapshot.asOf),
                          weekly: weekly, outcomes: outcomes, events: events, devices: [],
                          quality: QualityFigures(period: period, unenrolledSubjects: []), snapshotMarks: marks)
    }
}
