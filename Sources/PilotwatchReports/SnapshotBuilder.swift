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
        let t = day.advanced(by: 1).start.adding(millis: -1)
        return try store.read { reader in
            let weeks = Dashboard.weeks
            let facts = try reader.pilotFacts(pilot: pilot.id, asOf: t, historyDays: Metrics.historyDays(weeks: weeks))
            let subjects = facts.subjects
            let s = Metrics.statistics(subjects, asOf: t)

            // Outcomes and events as the pilot view lists them.
            var measured: [Indicator] = []
            var eventCodes: [String] = []
            for code in pilot.outcomes {
                guard let indicator = catalogue.indicator(code) else { continue }
                switch (indicator.kind, indicator.level) {
                case (.event, _): eventCodes.append(code)
                case (.measurement, .subject), (.score, .subject): measured.append(indicator)
                default: continue
                }
            }
            let pairs = try reader.outcomePairs(pilot: pilot.id, indicators: measured, asOf: t)
            let outcomes = zip(measured, pairs).map { Metrics.outcomeStatistics($0, pairs: $1) }
            let allEvents = try reader.pilotEvents(pilot: pilot.id)
            for code in Set(allEvents.map(\.indicator)).sorted()
            where !eventCodes.contains(code) && !Catalogue.requiredEvents.contains(code) {
                eventCodes.append(code)
            }
            let events = Metrics.eventStatistics(eventCodes, subjects: subjects, events: allEvents.filter { $0.at <= t },
                                                 since: nil, asOf: t)

            let mine = pilot.alertThresholds(thresholds)
            let devices = DeviceCounts(try reader.devices(pilot: pilot.id), thresholds: mine, asOf: t)
            let quality = try reader.messageCounts(pilot: pilot.id, from: nil, through: t.day)
            let lastWeek = facts.lastWeek

            func n(_ v: Int) -> SnapshotFigure { .count(v) }
            return PilotSnapshot(
                msgID: msgID, pilot: pilot.id, asOf: t, revision: revision, minCell: 0,
                registry: SnapshotRegistry(pilot: pilot, catalogue: catalogue),
                enrolment: .init(enrolled: n(s.enrolled), withdrawn: n(s.withdrawn), inFollowUp: n(s.inFollowUp),
                                 enrolled30d: n(s.enrolled30d),
                                 milestones: Metrics.milestoneCounts(pilot.milestones.filter { $0.date <= t.day }, subjects: subjects, asOf: t).map(n),
                                 curve: ExportBuilder.enrolmentSeries(subjects, start: pilot.start, asOf: t).map { n($0.enrolled) }),
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
        }
    }
}
