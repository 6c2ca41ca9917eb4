import PilotwatchCore
import PilotwatchStore

/// Builds a pilot's day-end snapshot from the store: the same reads and the same statistics as the
/// pilot view and the export, so that figures computed from the snapshot are theirs.
///
/// Disclosure control (`min_cell` > 0: small counts, differencing, coarse times) is applied to the
/// statistics after they are built; at `min_cell` 0 every figure is exact.
public enum SnapshotBuilder {
    /// The snapshot of `pilot` as of the end of `day`, every figure exact (`min_cell` 0).
    public static func build(store: Store, pilot: Pilot, catalogue: Catalogue, day: Day, revision: Int64, msgID: String,
                             thresholds: AlertThresholds = .defaults) throws -> PilotSnapshot {
        try buildWithContributions(store: store, pilot: pilot, catalogue: catalogue, day: day, revision: revision,
                                   msgID: msgID, thresholds: thresholds).snapshot
    }

    /// The exact snapshot and who stands behind each of its figures (for ``SnapshotDisclosure``).
    public static func buildWithContributions(store: Store, pilot: Pilot, catalogue: Catalogue, day: Day, revision: Int64,
                                              msgID: String, thresholds: AlertThresholds = .defaults)
        throws -> (snapshot: PilotSnapshot, contributions: SnapshotContributions) {
        let t = day.advanced(by: 1).start.adding(millis: -1)
        return try store.read { reader in
            let weeks = Dashboard.weeks
            let facts = try reader.pilotFacts(pilot: pilot.id, asOf: t, historyDays: Metrics.historyDays(weeks: weeks))
            let subjects = facts.subjects
            let s = Metrics.statistics(subjects, asOf: t)

            // Outcomes and events as the pilot view lists them.
            let (measured, listed) = Dashboard.viewIndicators(pilot, catalogue: catalogue)
            let pairs = try reader.outcomePairs(pilot: pilot.id, indicators: measured, asOf: t)
            let outcomes = zip(measured, pairs).map { Metrics.outcomeStatistics($0, pairs: $1) }
            let allEvents = try reader.pilotEvents(pilot: pilot.id)
            let eventCodes = Dashboard.eventCodes(listed: listed, events: allEvents)
            let events = Metrics.eventStatistics(eventCodes, subjects: subjects, events: allEvents.filter { $0.at <= t },
                                                 since: nil, asOf: t)

            let mine = pilot.alertThresholds(thresholds)
            let deviceRecords = try reader.devices(pilot: pilot.id)
            let devices = DeviceCounts(deviceRecords, thresholds: mine, asOf: t)
            let quality = try reader.messageCounts(pilot: pilot.id, from: nil, through: t.day)
            let lastWeek = facts.lastWeek

            func n(_ v: Int) -> SnapshotFigure { .count(v) }
            let curve = ExportBuilder.enrolmentSeries(subjects, start: pilot.start, asOf: t)
            let contributions = Self.contributions(subjects, pilot: pilot, asOf: t, curve: curve.map(\.at),
                                                   outcomes: zip(measured, pairs).map { ($0, $1) },
                                                   events: allEvents.filter { $0.at <= t }, eventCodes: eventCodes,
                                                   devices: deviceRecords, thresholds: mine)
            let snapshot = PilotSnapshot(
                msgID: msgID, pilot: pilot.id, asOf: t, revision: revision, minCell: 0,
                registry: SnapshotRegistry(pilot: pilot, catalogue: catalogue),
                enrolment: .init(enrolled: n(s.enrolled), withdrawn: n(s.withdrawn), inFollowUp: n(s.inFollowUp),
                                 enrolled30d: n(s.enrolled30d),
                                 milestones: Metrics.milestoneCounts(pilot.milestones.filter { $0.date <= t.day }, subjects: subjects, asOf: t).map(n),
                                 curve: curve.map { n($0.enrolled) }),
                activity: .init(active7d: n(s.active7d), adherenceSum: .value(s.adherenceSumPct / 100), adherenceN: n(s.adherenceN),
                                weekly: Metrics.weeklyStatistics(subjects, weeks: weeks, asOf: t).map {
                                    .init(adherenceSum: .value($0.adherenceSumPct / 100), adherenceN: n($0.adherenceN))
                                }),
                outcomes: outcomes.map { o in
                    .init(indicator: o.indicator, nPaired: n(o.nPaired), sumBaseline: .value(o.sumBaseline), sumLatest: .value(o.sumLatest),
                          sumChange: .value(o.change.sum), m2Change: .value(o.change.m2),
                          inTarget: o.inTarget.map(n), improved: o.improved.map(n))
                },
                events: events.map { .init(indicator: $0.indicator, events: n($0.events), patientDays: .value($0.patientDays)) },
                devices: .init(seen: n(devices.total), silent48h: n(devices.silent), batteryLow: n(devices.lowBattery),
                               messages7d: n(lastWeek.received), refusals7d: n(lastWeek.refused)),
                quality: .init(messages: n(quality.received), accepted: n(quality.accepted),
                               duplicateMessages: n(quality.duplicate), duplicateObservations: n(quality.duplicateObservations),
                               unenrolledSubjects: n(s.unenrolledSubjects),
                               refused: quality.refusedByReason.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key, n($0.value)) }),
                lastObservationAt: s.lastObservationAt)
            return (snapshot, contributions)
        }
    }

    /// Each figure's contributors, by the same definitions as the figures.
    static func contributions(_ subjects: [SubjectFacts], pilot: Pilot, asOf t: Instant, curve: [Instant],
                              outcomes: [(Indicator, [OutcomePair])], events: [SubjectEvent], eventCodes: [String],
                              devices: [DeviceRecord], thresholds: AlertThresholds) -> SnapshotContributions {
        var c = SnapshotContributions()
        let from30d = t.adding(days: -Metrics.rateWindowDays)
        c.count("enrolment.enrolled", subjects.filter { $0.enrolment(asOf: t) != nil }.map(\.code))
        c.count("enrolment.withdrawn", subjects.filter { $0.withdrawal(asOf: t) != nil }.map(\.code))
        c.count("enrolment.in_follow_up", subjects.filter { $0.isInFollowUp(asOf: t) }.map(\.code))
        c.count("enrolment.enrolled_30d", subjects.filter { ($0.enrolment(asOf: t).map { $0 > from30d }) ?? false }.map(\.code))
        for m in pilot.milestones where m.date <= t.day {
            let cutoff = min(m.date.advanced(by: 1).start.adding(millis: -1), t)
            c.count(SnapshotDisclosure.milestonePath(m.date), subjects.filter { ($0.enrolment(asOf: t).map { $0 <= cutoff }) ?? false }.map(\.code))
        }
        for at in curve {
            c.count(SnapshotDisclosure.curvePath(at.day), subjects.filter { $0.enrolment(asOf: at) != nil }.map(\.code))
        }
        c.count("activity.active_7d", subjects.filter { Metrics.isActive7d($0, asOf: t) }.map(\.code))
        func adherence(_ path: String, at: Instant) {
            var ratios: [String: Double] = [:]
            for s in subjects { if let a = Metrics.subjectAdherence(s, asOf: at) { ratios[s.code] = a / 100 } }
            c[path + ".adherence_sum"] = ratios
            c.count(path + ".adherence_n", ratios.keys)
        }
        adherence("activity", at: t)
        for w in 0..<Dashboard.weeks {
            let last = t.day.advanced(by: -7 * w)
            adherence("activity.weekly@\(last)", at: w == 0 ? t : last.advanced(by: 1).start.adding(millis: -1))
        }
        for (indicator, pairs) in outcomes {
            let p = "outcomes.\(indicator.code)"
            let keyed = pairs.enumerated().map { ($0.element.subject ?? "#\($0.offset)", $0.element) }
            c.count(p + ".n_paired", keyed.map(\.0))
            c[p + ".sum_baseline"] = Dictionary(keyed.map { ($0.0, $0.1.baseline) }, uniquingKeysWith: { a, _ in a })
            c[p + ".sum_latest"] = Dictionary(keyed.map { ($0.0, $0.1.latest) }, uniquingKeysWith: { a, _ in a })
            c[p + ".sum_change"] = Dictionary(keyed.map { ($0.0, $0.1.latest - $0.1.baseline) }, uniquingKeysWith: { a, _ in a })
            c[p + ".m2_change"] = c[p + ".sum_change"]
            if let target = indicator.target { c.count(p + ".in_target", keyed.filter { target.contains($0.1.latest) }.map(\.0)) }
            let good: ((Double) -> Bool)? = indicator.direction == .higher ? { $0 > 0 } : indicator.direction == .lower ? { $0 < 0 } : nil
            if let good { c.count(p + ".improved", keyed.filter { good($0.1.latest - $0.1.baseline) }.map(\.0)) }
        }
        var followUp: [String: Double] = [:]
        for s in subjects {
            guard let e = s.enrolment(asOf: t) else { continue }
            followUp[s.code + "|e"] = Double(e.millis)
            followUp[s.code + "|w"] = s.withdrawal(asOf: t).map { Double($0.millis) } ?? -1
        }
        c[SnapshotDisclosure.followUpPath] = followUp
        var spans: [String: ClosedRange<Instant>] = [:]
        for s in subjects { if let span = Metrics.followUpSpan(s, since: nil, asOf: t) { spans[s.code] = span } }
        let days = Dictionary(spans.map { ($0.key, $0.value.lowerBound.days(to: $0.value.upperBound)) }, uniquingKeysWith: { a, _ in a })
        for code in eventCodes {
            let p = "events.\(code)"
            c[p + ".patient_days"] = days
            var counts: [String: Double] = [:]
            for e in events where e.indicator == code {
                if let span = spans[e.subject], span.contains(e.at) { counts[e.subject, default: 0] += 1 }
            }
            c[p + ".events"] = counts
        }
        // Devices, each counted alone by the device rules.
        var seen: [String] = [], silent: [String] = [], low: [String] = []
        for d in devices {
            let one = DeviceCounts([d], thresholds: thresholds, asOf: t)
            if one.total > 0 { seen.append(d.code) }
            if one.silent > 0 { silent.append(d.code) }
            if one.lowBattery > 0 { low.append(d.code) }
        }
        c.count("devices.seen", seen)
        c.count("devices.silent_48h", silent)
        c.count("devices.battery_low", low)
        c.count("quality.unenrolled_subjects", subjects.filter { $0.isUnenrolled(asOf: t) }.map(\.code))
        return c
    }
}
