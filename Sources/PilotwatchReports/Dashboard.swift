import PilotwatchCore
import PilotwatchStore

/// One pilot's row of the cluster overview.
public struct PilotStatus: Sendable {
    public var pilot: Pilot
    public var figures: PilotFigures
    public var nextMilestone: MilestoneProgress?
    /// Messages received on the 7 UTC days ending on `day(T)`.
    public var lastWeek: MessageCounts
    /// `refusal_rate_7d`: refused among received messages of the last 7 days, in percent.
    public var refusalRate7d: Double?
    /// The pilot's devices as the device rules count them.
    public var devices: DeviceCounts
    /// The thresholds of this pilot's rules (the service's with the registry entry's own).
    public var thresholds: AlertThresholds
    /// The alert rules that hold for the pilot at `T`, with their values.
    public var conditions: [AlertCondition]
    /// The rules that hold, in rule order: the flags of the views.
    public var flags: [AttentionFlag] { conditions.map(\.rule) }
    /// For a pilot that reports aggregates: the snapshot its figures come from.
    public var snapshot: SnapshotSource? = nil
}

/// One programme's row of the cluster overview (pooled over its pilots).
public struct ProgrammeStatus: Sendable {
    public var programme: String
    public var figures: ProgrammeFigures
    /// Pilots reporting aggregates whose snapshot lacks a part of the pooled figures (withheld
    /// or held): the programme's subject figures are withheld, naming them.
    public var withheldFor: [String] = []
}

/// `pilotwatch status`: the cluster overview as of `T`.
public struct StatusBoard: Sendable {
    public var asOf: Instant
    public var programmes: [ProgrammeStatus]
    public var pilots: [PilotStatus]
    /// Whether ingest runs (views at "now" only: a heartbeat says nothing of the past).
    public var ingest: IngestHealth? = nil
    /// The service's thresholds (the legend's).
    public var thresholds: AlertThresholds = .defaults
}

/// A device of the pilot and whether it has gone quiet.
public struct DeviceHealth: Sendable {
    public var device: DeviceRecord
    /// No message from it in the 48 hours (`silent_hours`) up to `T`, or its last status said
    /// offline before then.
    public var silent: Bool
}

/// The data-quality part of the pilot view.
public struct QualityFigures: Sendable {
    /// Messages of the period (by day received).
    public var period: MessageCounts
    /// Pseudonyms with data at or before `T` and no enrolment, sorted.
    public var unenrolledSubjects: [String]
}

/// `pilotwatch pilot ID`: one pilot in depth as of `T`.
public struct PilotBoard: Sendable {
    public var asOf: Instant
    /// The start of the period of event rates and data quality (nil: the pilot's whole life).
    public var since: Instant?
    public var status: PilotStatus
    public var milestones: [MilestoneProgress]
    public var weekly: [WeeklyPoint]
    public var outcomes: [(indicator: Indicator, figures: OutcomeFigures)]
    public var events: [EventFigures]
    public var devices: [DeviceHealth]
    public var quality: QualityFigures
    /// Whether ingest runs (views at "now" only).
    public var ingest: IngestHealth? = nil
    /// For a pilot that reports aggregates: its figures the snapshot does not give exactly, by
    /// path (`outcomes.hba1c.n_paired`, `events.hospitalisation.events`, `weekly`).
    public var snapshotMarks: [String: SnapshotFigure] = [:]

    public var pilot: Pilot { status.pilot }
    public var figures: PilotFigures { status.figures }
}

/// Builds the dashboards: reads the roll-ups through ``StoreReader`` (one snapshot per view)
/// and computes every number with ``Metrics``.
///
/// ```swift
/// let board = try Dashboard.status(store: store, registry: registry, programme: nil, asOf: t)
/// print(board.table(colour: false))
/// ```
public enum Dashboard {
    /// Weeks of history in the pilot view's sparklines.
    public static let weeks = 12

    /// The cluster overview: every pilot of the registry (of one programme when given), grouped
    /// by programme in the registry's order.
    ///
    /// `snapshots` holds, for the pilots that report aggregates, their latest day-end snapshot at
    /// or before `T`: their rows and their part of the programmes come from it.
    public static func status(store: Store, registry: Registry, programme: String?, asOf t: Instant,
                              thresholds: AlertThresholds = .defaults,
                              snapshots: [String: PilotSnapshot] = [:]) throws -> StatusBoard {
        let programmes = registry.programmes.filter { p in
            programme.map { $0 == p } ?? registry.pilots.contains { $0.programme == p }
        }
        var rows: [ProgrammeStatus] = []
        var pilots: [PilotStatus] = []
        try store.read { reader in
            let subjects = try reader.subjectFactsByPilot(asOf: t)
            // Counted only: what their health is judged on, in no particular order.
            let devices = try reader.deviceSignsByPilot()
            for p in programmes {
                var pooled: [(statistics: PilotStatistics, target: Int)] = []
                var lacking: [String] = []
                for pilot in registry.pilots where pilot.programme == p {
                    if let snapshot = snapshots[pilot.id] {
                        pilots.append(pilotStatus(pilot, snapshot: snapshot, thresholds: thresholds, asOf: t))
                        if let stats = poolable(snapshot) { pooled.append((stats, pilot.enrolmentTarget)) } else { lacking.append(pilot.id) }
                        continue
                    }
                    if pilot.site != nil {
                        // Reports aggregates, and its site has sent nothing for T yet.
                        pilots.append(pilotStatus(pilot, missingSnapshotAt: t, thresholds: thresholds))
                        lacking.append(pilot.id)
                        continue
                    }
                    let facts = try reader.pilotFacts(pilot: pilot.id, asOf: t, subjects: subjects[pilot.id] ?? [])
                    pooled.append((Metrics.statistics(facts.subjects, asOf: t), pilot.enrolmentTarget))
                    pilots.append(pilotStatus(pilot, facts: facts, devices: devices[pilot.id] ?? [], thresholds: thresholds, asOf: t))
                }
                var figures = Metrics.programme(pooled)
                if !lacking.isEmpty {
                    figures.pilots = pooled.count + lacking.count
                    figures.enrolmentTarget = registry.pilots.filter { $0.programme == p }.reduce(0) { $0 + $1.enrolmentTarget }
                }
                rows.append(ProgrammeStatus(programme: p, figures: figures, withheldFor: lacking))
            }
        }
        return StatusBoard(asOf: t, programmes: rows, pilots: pilots, thresholds: thresholds)
    }

    /// One pilot in depth; `since` bounds the period of event rates and data quality.
    public static func pilot(store: Store, pilot: Pilot, catalogue: Catalogue, since: Instant?, asOf t: Instant,
                             weeks: Int = Dashboard.weeks, thresholds: AlertThresholds = .defaults) throws -> PilotBoard {
        try store.read { reader in
            let facts = try reader.pilotFacts(pilot: pilot.id, asOf: t, historyDays: Metrics.historyDays(weeks: weeks))
            let deviceRecords = try reader.devices(pilot: pilot.id)
            let status = pilotStatus(pilot, facts: facts, devices: deviceRecords.map(\.signs), thresholds: thresholds, asOf: t)

            let (measured, listed) = viewIndicators(pilot, catalogue: catalogue)
            let pairs = try reader.outcomePairs(pilot: pilot.id, indicators: measured, asOf: t)
            let outcomes = zip(measured, pairs).map { ($0, Metrics.outcome($0, pairs: $1)) }
            // One read of the pilot's events: the indicators it has events of (at any time), and
            // the events up to T.
            let allEvents = try reader.pilotEvents(pilot: pilot.id)
            let eventCodes = eventCodes(listed: listed, events: allEvents)
            let events = allEvents.filter { $0.at <= t }

            let silentBefore = t.adding(millis: -Int64(status.thresholds.silentHours * 3_600_000))
            let devices = deviceRecords.map { DeviceHealth(device: $0, silent: DeviceCounts.isSilent($0, quietSince: silentBefore)) }
            let period = try reader.messageCounts(pilot: pilot.id, from: since?.day, through: t.day)
            let unenrolled = facts.subjects.filter { $0.isUnenrolled(asOf: t) }.map(\.code)

            return PilotBoard(
                asOf: t, since: since, status: status,
                milestones: Metrics.milestones(pilot.milestones, subjects: facts.subjects, asOf: t),
                weekly: Metrics.weekly(facts.subjects, weeks: weeks, asOf: t),
                outcomes: outcomes,
                events: Metrics.events(eventCodes, subjects: facts.subjects, events: events, since: since, asOf: t),
                devices: devices,
                quality: QualityFigures(period: period, unenrolledSubjects: unenrolled))
        }
    }

    /// The pilot's outcome indicators the pilot view shows: measurements and scores of subjects
    /// (paired outcomes), and event indicators (rates).
    static func viewIndicators(_ pilot: Pilot, catalogue: Catalogue) -> (measured: [Indicator], events: [String]) {
        var measured: [Indicator] = []
        var events: [String] = []
        for code in pilot.outcomes {
            guard let indicator = catalogue.indicator(code) else { continue }
            switch (indicator.kind, indicator.level) {
            case (.event, _): events.append(code)
            case (.measurement, .subject), (.score, .subject): measured.append(indicator)
            default: continue
            }
        }
        return (measured, events)
    }

    /// The event indicators the pilot view lists: its outcomes', then any other it has events of
    /// (but enrolment and withdrawal).
    static func eventCodes(listed: [String], events: [SubjectEvent]) -> [String] {
        var codes = listed
        for code in Set(events.map(\.indicator)).sorted() where !codes.contains(code) && !Catalogue.requiredEvents.contains(code) {
            codes.append(code)
        }
        return codes
    }

    /// The indicators of the catalogue, of one programme when given, in catalogue order.
    public static func indicators(_ catalogue: Catalogue, programme: String?) -> [Indicator] {
        catalogue.indicators.filter { i in programme.map { i.programmes.contains($0) } ?? true }
    }

    /// One pilot's row: its figures, and the alert rules that hold with `thresholds` (the
    /// service's; the pilot's registry entry may change them).
    static func pilotStatus(_ pilot: Pilot, facts: PilotFacts, devices: [DeviceSigns], thresholds: AlertThresholds,
                            asOf t: Instant) -> PilotStatus {
        let figures = Metrics.pilot(facts.subjects, target: pilot.enrolmentTarget, end: pilot.end, asOf: t)
        let rate = Metrics.refusalRatePct(refused: facts.lastWeek.refused, received: facts.lastWeek.received)
        let mine = pilot.alertThresholds(thresholds)
        let counts = DeviceCounts(signs: devices, thresholds: mine, asOf: t)
        let milestones = Metrics.milestones(pilot.milestones, subjects: facts.subjects, asOf: t)
        let conditions = AlertEvaluator.pilot(pilot, figures: figures, milestones: milestones, lastWeek: facts.lastWeek,
                                              refusalRate: rate, devices: counts, thresholds: mine, asOf: t)
        return PilotStatus(pilot: pilot, figures: figures,
                           nextMilestone: milestones.first { $0.state == .pending },
                           lastWeek: facts.lastWeek, refusalRate7d: rate, devices: counts, thresholds: mine,
                           conditions: conditions)
    }
}
