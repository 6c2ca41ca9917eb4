import PilotwatchCore
import PilotwatchStore

/// What an export is asked for: which pilots, the as-of instant `T`, the period, and the
/// provenance to print.
///
/// ```swift
/// let request = ExportRequest(selection: ExportSelection(programme: "respiratory"), asOf: t,
///                             periodStart: nil, pilotwatchVersion: "0.1.0", generatedAt: nil)
/// ```
public struct ExportRequest: Sendable {
    public var selection: ExportSelection
    /// `T`: nothing observed after it counts; the end of the period.
    public var asOf: Instant
    /// The start of the period of event rates and refused messages; nil: each pilot's whole life.
    public var periodStart: Instant?
    public var pilotwatchVersion: String
    /// The generation time printed in the provenance; nil: `T`, so that the same database and
    /// arguments give the same bytes.
    public var generatedAt: Instant?

    public init(selection: ExportSelection, asOf: Instant, periodStart: Instant?, pilotwatchVersion: String,
                generatedAt: Instant?) {
        self.selection = selection; self.asOf = asOf; self.periodStart = periodStart
        self.pilotwatchVersion = pilotwatchVersion; self.generatedAt = generatedAt
    }
}

/// Builds the figures of `pilotwatch export` from one snapshot of the store, every number
/// computed by ``Metrics`` (the same functions as the dashboards).
///
/// ```swift
/// let report = try ExportBuilder.build(store: store, registry: registry, catalogue: catalogue, request: request)
/// let disclosed = Disclosure.apply(report, k: 11)
/// print(disclosed.markdown())
/// ```
public enum ExportBuilder {
    /// Weeks of enrolment history at most in the enrolment chart.
    public static let maxSeriesWeeks = 520

    /// The export of `request`. A pilot named in `fromSnapshots` (one that reports aggregates,
    /// or an ended pilot whose raw rows were archived) is computed from its entry in `snapshots`
    /// (figures as of the snapshot's day end; what it does not give exactly is suppressed
    /// `at_site`, and so is every pooled figure that would need it); with no entry, all its
    /// figures are suppressed.
    public static func build(store: Store, registry: Registry, catalogue: Catalogue, request: ExportRequest,
                             snapshots: [String: PilotSnapshot] = [:], fromSnapshots: Set<String> = []) throws -> ExportReport {
        let selected = request.selection.apply(to: registry)
        let t = request.asOf
        let since = request.periodStart
        return try store.read { reader in
            let fingerprint = try ExportFingerprint.compute(reader)
            var programmeScopes: [ExportScope] = []
            var pilotScopes: [ExportScope] = []
            let programmes = registry.programmes.filter { p in selected.contains { $0.programme == p } }
                + Set(selected.map(\.programme)).subtracting(registry.programmes).sorted()
            for programme in programmes {
                var inputs: [PilotInput] = []
                for pilot in selected where pilot.programme == programme {
                    if fromSnapshots.contains(pilot.id) {
                        inputs.append(PilotInput(pilot, snapshot: snapshots[pilot.id], catalogue: catalogue, since: since, asOf: t))
                    } else {
                        inputs.append(try PilotInput.read(pilot, catalogue: catalogue, reader: reader, since: since, asOf: t))
                    }
                }
                let reasons = Array(Set(inputs.flatMap { $0.refusals.refusedByReason.filter { $0.value > 0 }.keys }))
                    .sorted { $0.rawValue < $1.rawValue }
                programmeScopes.append(pooledScope(programme, inputs, reasons: reasons, since: since))
                pilotScopes += inputs.map { pilotScope($0, reasons: reasons, since: since) }
            }
            let provenance = ExportProvenance(pilotwatchVersion: request.pilotwatchVersion,
                                              databaseFingerprint: fingerprint, generatedAt: request.generatedAt ?? t)
            return ExportReport(asOf: t, periodStart: since, selection: request.selection, provenance: provenance,
                                programmes: programmeScopes, pilots: pilotScopes)
        }
    }

    /// One pilot's statistics, from which its figures (and its part of its programme's) are
    /// computed: read from its subjects, or taken from its day-end snapshot.
    struct PilotInput {
        var pilot: Pilot
        /// The instant its figures are as of: `T`, or its snapshot's day end.
        var asOf: Instant
        var statistics: PilotStatistics
        /// Enrolments by each registry milestone (sorted by date).
        var milestoneCounts: [Int]
        var outcomes: [(indicator: Indicator, statistics: OutcomeStatistics)]
        var eventIndicators: [Indicator]
        /// One per event indicator.
        var events: [EventStatistics]
        var subjectsFollowed: Int
        var patientDays: Double
        var refusals: MessageCounts
        var enrolmentSeries: [EnrolmentPoint]
        /// Figures its snapshot does not give exactly (all of them when it has none).
        var inexact: Set<FigureKey> = []
        var allInexact = false
        var source: ExportSource?

        /// The outcome and event indicators of the export: the pilot's outcomes at subject level.
        static func indicators(_ pilot: Pilot, catalogue: Catalogue) -> (measured: [Indicator], events: [Indicator]) {
            var measured: [Indicator] = []
            var eventIndicators: [Indicator] = []
            for code in pilot.outcomes {
                guard let indicator = catalogue.indicator(code), indicator.level == .subject else { continue }
                switch indicator.kind {
                case .event:
                    if !Catalogue.requiredEvents.contains(code) { eventIndicators.append(indicator) }
                case .measurement, .score:
                    measured.append(indicator)
                }
            }
            return (measured, eventIndicators)
        }

        static func read(_ pilot: Pilot, catalogue: Catalogue, reader: StoreReader, since: Instant?,
                         asOf t: Instant) throws -> PilotInput {
            let subjects = try reader.subjectFacts(pilot: pilot.id, asOf: t)
            let (measured, eventIndicators) = indicators(pilot, catalogue: catalogue)
            let outcomes = zip(measured, try reader.outcomePairs(pilot: pilot.id, indicators: measured, asOf: t))
                .map { (indicator: $0, statistics: Metrics.outcomeStatistics($0, pairs: $1)) }
            let reported = Set(eventIndicators.map(\.code))
            let events = try reader.pilotEvents(pilot: pilot.id).filter { reported.contains($0.indicator) && $0.at <= t }
            let refusals = try reader.messageCounts(pilot: pilot.id, from: since?.day, through: t.day)
            return PilotInput(pilot: pilot, asOf: t, statistics: Metrics.statistics(subjects, asOf: t),
                              milestoneCounts: Metrics.milestoneCounts(pilot.milestones, subjects: subjects, asOf: t),
                              outcomes: outcomes, eventIndicators: eventIndicators,
                              events: Metrics.eventStatistics(eventIndicators.map(\.code), subjects: subjects, events: events,
                                                              since: since, asOf: t),
                              subjectsFollowed: subjects.reduce(0) { $0 + (Metrics.followUpSpan($1, since: since, asOf: t) != nil ? 1 : 0) },
                              patientDays: Metrics.patientDays(subjects, since: since, asOf: t), refusals: refusals,
                              enrolmentSeries: ExportBuilder.enrolmentSeries(subjects, start: pilot.start, asOf: t))
        }

        /// Whether a figure of this pilot is not given exactly.
        func isInexact(_ key: FigureKey) -> Bool { allInexact || inexact.contains(key) }
    }

    // MARK: - Figures

    /// The figures shared by pilots and programmes: outcomes, events, refusals.
    private static func common(into f: inout [FigureKey: Cell], outcomes: [(Indicator, OutcomeFigures)],
                               events: [EventFigures], subjectsFollowed: Int, patientDays: Double,
                               refusals: [ReasonCode: Int], reasons: [ReasonCode], unenrolled: Int) {
        for (indicator, o) in outcomes {
            let code = indicator.code
            f[FigureKey(.nPaired, code)] = .count(o.nPaired)
            f[FigureKey(.meanBaseline, code)] = .statistic(o.meanBaseline)
            f[FigureKey(.meanLatest, code)] = .statistic(o.meanLatest)
            f[FigureKey(.meanChange, code)] = .statistic(o.meanChange)
            f[FigureKey(.changeCI95Lower, code)] = .statistic(o.changeCI95?.lower)
            f[FigureKey(.changeCI95Upper, code)] = .statistic(o.changeCI95?.upper)
            // The numerators of the two shares (FHIR `numerator`), recovered from the shares
            // that Metrics computes over n_paired subjects.
            if let pct = o.pctInTarget {
                f[FigureKey(.inTarget, code)] = .count(Int((pct * Double(o.nPaired) / 100).rounded()))
            } else {
                f[FigureKey(.inTarget, code)] = Cell(kind: .count, state: .missing)
            }
            f[FigureKey(.pctInTarget, code)] = .statistic(o.pctInTarget)
            if let pct = o.improvedPct {
                f[FigureKey(.improved, code)] = .count(Int((pct * Double(o.nPaired) / 100).rounded()))
            } else {
                f[FigureKey(.improved, code)] = Cell(kind: .count, state: .missing)
            }
            f[FigureKey(.improvedPct, code)] = .statistic(o.improvedPct)
        }
        if !events.isEmpty {
            f[FigureKey(.subjectsFollowed)] = .count(subjectsFollowed)
            f[FigureKey(.patientDays)] = .statistic(patientDays)
        }
        for e in events {
            f[FigureKey(.events, e.indicator)] = .count(e.events)
            f[FigureKey(.ratePer100PatientMonths, e.indicator)] = .statistic(e.ratePer100PatientMonths)
        }
        var total = 0
        for r in reasons {
            let n = refusals[r] ?? 0
            total += n
            f[FigureKey(.refused, r.rawValue)] = .count(n)
        }
        f[FigureKey(.refusedTotal)] = .count(total)
        f[FigureKey(.unenrolledSubjects)] = .count(unenrolled)
    }

    /// Suppresses the figures an input does not give exactly (`at_site`).
    private static func suppressInexact(_ f: inout [FigureKey: Cell], where inexact: (FigureKey) -> Bool) {
        for (key, c) in f where c.kind != .fact && inexact(key) {
            f[key] = Cell(kind: c.kind, state: .suppressed(.atSite))
        }
    }

    static func pilotScope(_ input: PilotInput, reasons: [ReasonCode], since: Instant?) -> ExportScope {
        let pilot = input.pilot
        let t = input.asOf
        let p = Metrics.pilot(input.statistics, target: pilot.enrolmentTarget, end: pilot.end, asOf: t)
        var f: [FigureKey: Cell] = [
            FigureKey(.enrolled): .count(p.enrolled),
            FigureKey(.enrolmentTarget): .fact(p.enrolmentTarget),
            FigureKey(.enrolmentPct): .statistic(p.enrolmentPct),
            FigureKey(.withdrawn): .count(p.withdrawn),
            FigureKey(.inFollowUp): .count(p.inFollowUp),
            FigureKey(.transmissionAdherence): .statistic(p.transmissionAdherence),
        ]
        let progress = Metrics.milestones(pilot.milestones, counts: input.milestoneCounts, asOf: t)
        var milestones: [ExportMilestone] = []
        for m in progress {
            let date = m.milestone.date.description
            f[FigureKey(.milestoneEnrolled, date)] = .count(m.enrolled)
            f[FigureKey(.milestoneTarget, date)] = .fact(m.milestone.enrolled)
            milestones.append(ExportMilestone(date: m.milestone.date, target: m.milestone.enrolled, state: m.state,
                                              cutoff: min(m.milestone.date.advanced(by: 1).start.adding(millis: -1), t)))
        }
        common(into: &f, outcomes: input.outcomes.map { ($0.indicator, Metrics.outcome($0.statistics)) },
               events: input.events.map(Metrics.event), subjectsFollowed: input.subjectsFollowed,
               patientDays: input.patientDays, refusals: input.refusals.refusedByReason, reasons: reasons,
               unenrolled: p.unenrolledSubjects)
        suppressInexact(&f, where: input.isInexact)
        let onTrackKnown = !input.isInexact(FigureKey(.enrolled)) && input.source.map { $0.asOf != nil } ?? true
        return ExportScope(level: .pilot, id: pilot.id, programme: pilot.programme, pilot: pilot, pilots: [],
                           periodStart: since, onTrack: onTrackKnown ? p.onTrack : nil, milestones: milestones,
                           outcomes: input.outcomes.map { ExportIndicator($0.indicator) },
                           events: input.eventIndicators.map(ExportIndicator.init), reasons: reasons, figures: f,
                           enrolmentSeries: input.allInexact ? [] : input.enrolmentSeries, source: input.source)
    }

    /// A programme pooled over the statistics of its selected pilots: counts are sums, means and
    /// shares are over all their subjects (never a mean of pilot means). A pooled figure that
    /// needs a part some pilot's snapshot does not give exactly is suppressed (`at_site`), and the
    /// scope names those pilots.
    static func pooledScope(_ programme: String, _ inputs: [PilotInput], reasons: [ReasonCode], since: Instant?) -> ExportScope {
        let p = Metrics.programme(inputs.map { ($0.statistics, $0.pilot.enrolmentTarget) })
        var f: [FigureKey: Cell] = [
            FigureKey(.enrolled): .count(p.enrolled),
            FigureKey(.enrolmentTarget): .fact(p.enrolmentTarget),
            FigureKey(.enrolmentPct): .statistic(p.enrolmentPct),
            FigureKey(.withdrawn): .count(p.withdrawn),
            FigureKey(.inFollowUp): .count(p.inFollowUp),
            FigureKey(.transmissionAdherence): .statistic(p.transmissionAdherence),
        ]
        // Outcome indicators in order of first appearance; the statistics of every pilot reporting
        // it, pooled exactly (n, sums, m2), never from pilot means.
        var outcomeOrder: [Indicator] = []
        var outcomeParts: [String: [OutcomeStatistics]] = [:]
        var eventOrder: [Indicator] = []
        for input in inputs {
            for (indicator, statistics) in input.outcomes {
                if outcomeParts[indicator.code] == nil { outcomeOrder.append(indicator) }
                outcomeParts[indicator.code, default: []].append(statistics)
            }
            for e in input.eventIndicators where !eventOrder.contains(where: { $0.code == e.code }) { eventOrder.append(e) }
        }
        var refusals: [ReasonCode: Int] = [:]
        for input in inputs {
            for (r, n) in input.refusals.refusedByReason { refusals[r, default: 0] += n }
        }
        // An event indicator's rate pools the pilots that report it: each pilot's statistics
        // (events, patient-days) are summed, never its rate.
        var eventFigures: [EventFigures] = []
        var followed = 0
        var patientDays = 0.0
        if !eventOrder.isEmpty {
            var parts: [String: EventStatistics] = [:]
            for input in inputs where !input.eventIndicators.isEmpty {
                followed += input.subjectsFollowed
                patientDays += input.patientDays
                for e in input.events {
                    var sum = parts[e.indicator] ?? EventStatistics(indicator: e.indicator, events: 0, patientDays: 0)
                    sum.events += e.events
                    sum.patientDays += e.patientDays
                    parts[e.indicator] = sum
                }
            }
            eventFigures = eventOrder.map { Metrics.event(parts[$0.code] ?? EventStatistics(indicator: $0.code, events: 0, patientDays: 0)) }
        }
        // The pooled rate of an indicator that only some pilots report stands on their subjects;
        // the programme's `patient_days` and `subjects_followed` sum those of its pilots that
        // report an event indicator.
        common(into: &f, outcomes: outcomeOrder.map { ($0, Metrics.outcome(OutcomeStatistics.pooled($0.code, outcomeParts[$0.code] ?? []))) },
               events: eventFigures, subjectsFollowed: followed, patientDays: patientDays, refusals: refusals,
               reasons: reasons, unenrolled: p.unenrolledSubjects)
        // A pooled figure rests on the same figure of each pilot (a refusal count on the pilot's
        // count of that reason, a pooled rate on each pilot's events and patient-days).
        func needs(_ input: PilotInput, _ key: FigureKey) -> Bool {
            switch key.metric {
            case .ratePer100PatientMonths:
                return input.eventIndicators.contains { $0.code == key.qualifier }
                    && (input.isInexact(key) || input.isInexact(FigureKey(.events, key.qualifier)) || input.isInexact(FigureKey(.patientDays)))
            case .refused, .refusedTotal:
                return input.isInexact(key) || input.isInexact(FigureKey(.refusedTotal))
            case .subjectsFollowed, .patientDays:
                return !input.eventIndicators.isEmpty && input.isInexact(key)
            case .nPaired, .inTarget, .improved, .pctInTarget, .improvedPct, .meanBaseline, .meanLatest, .meanChange,
                 .changeCI95Lower, .changeCI95Upper, .events:
                return (input.outcomes.contains { $0.indicator.code == key.qualifier }
                        || input.eventIndicators.contains { $0.code == key.qualifier }) && input.isInexact(key)
            default:
                return input.isInexact(key)
            }
        }
        var lacking: [String] = []
        for input in inputs where input.source != nil {
            if f.keys.contains(where: { f[$0]?.kind != .fact && needs(input, $0) }) { lacking.append(input.pilot.id) }
        }
        if !lacking.isEmpty {
            suppressInexact(&f) { key in inputs.contains { $0.source != nil && needs($0, key) } }
        }
        var scope = ExportScope(level: .programme, id: programme, programme: programme, pilot: nil,
                                pilots: inputs.map(\.pilot.id), periodStart: since, onTrack: nil, milestones: [],
                                outcomes: outcomeOrder.map(ExportIndicator.init), events: eventOrder.map(ExportIndicator.init),
                                reasons: reasons, figures: f, enrolmentSeries: [])
        scope.partsNotGivenBy = lacking
        return scope
    }

    /// Cumulative enrolment at the end of every 7th day back from `day(T)` (the last point at
    /// `T`), from the week of the pilot's start or its first enrolment, whichever is earlier.
    static func enrolmentSeries(_ subjects: [SubjectFacts], start: Day, asOf t: Instant) -> [EnrolmentPoint] {
        let firstEnrolment = subjects.compactMap { $0.enrolment(asOf: t) }.min()?.day
        let first = min(start, firstEnrolment ?? start)
        guard first <= t.day else { return [] }
        let weeks = min(maxSeriesWeeks, first.distance(to: t.day) / 7 + 1)
        return (0..<weeks).reversed().map { w in
            let day = t.day.advanced(by: -7 * w)
            let at = w == 0 ? t : day.advanced(by: 1).start.adding(millis: -1)
            return EnrolmentPoint(day: day, at: at, enrolled: Metrics.enrolled(subjects, asOf: at))
        }
    }
}

extension ExportBuilder.PilotInput {
    /// From the pilot's snapshot at or before `T` (nil: none; every figure is then suppressed).
    /// Its statistics cover the pilot's whole life: with a period start, its events, patient-days
    /// and refusals are suppressed too.
    init(_ pilot: Pilot, snapshot: PilotSnapshot?, catalogue: Catalogue, since: Instant?, asOf t: Instant) {
        let (measured, eventIndicators) = Self.indicators(pilot, catalogue: catalogue)
        self.pilot = pilot
        self.eventIndicators = eventIndicators
        guard let snapshot else {
            asOf = t
            statistics = PilotStatistics()
            milestoneCounts = pilot.milestones.map { _ in 0 }
            outcomes = measured.map { ($0, OutcomeStatistics(indicator: $0.code, sumBaseline: 0, sumLatest: 0, change: MomentSums([]),
                                                             inTarget: $0.target.map { _ in 0 }, improved: $0.direction == .stable ? nil : 0)) }
            events = eventIndicators.map { EventStatistics(indicator: $0.code, events: 0, patientDays: 0) }
            subjectsFollowed = 0
            patientDays = 0
            refusals = MessageCounts()
            enrolmentSeries = []
            allInexact = true
            source = ExportSource(asOf: nil, revision: 0, minCell: 0, archived: false, stale: true)
            return
        }
        let at = snapshot.asOf
        asOf = at
        let archived = snapshot.msgID.hasPrefix(PilotSnapshot.archiveMsgIDPrefix)
        source = ExportSource(asOf: at, revision: snapshot.revision, minCell: snapshot.minCell, archived: archived,
                              stale: !archived && Double(t.millis - at.millis) / 1000 > 86_400 + Dashboard.snapshotGraceSeconds)
        var inexact: Set<FigureKey> = []
        func exact(_ f: SnapshotFigure, _ keys: FigureKey...) -> Int {
            if !f.isShown { inexact.formUnion(keys) }
            return f.count ?? 0
        }
        var s = PilotStatistics()
        s.enrolled = exact(snapshot.enrolment.enrolled, FigureKey(.enrolled), FigureKey(.enrolmentPct), FigureKey(.subjectsFollowed))
        s.withdrawn = exact(snapshot.enrolment.withdrawn, FigureKey(.withdrawn))
        s.enrolled30d = exact(snapshot.enrolment.enrolled30d)
        s.active7d = snapshot.activity.active7d.count ?? 0
        s.unenrolledSubjects = exact(snapshot.quality.unenrolledSubjects, FigureKey(.unenrolledSubjects))
        s.lastObservationAt = snapshot.lastObservationAt
        if let sum = snapshot.activity.adherenceSum.value, let n = snapshot.activity.adherenceN.count,
           snapshot.activity.adherenceSum.isShown, snapshot.activity.adherenceN.isShown {
            s.adherenceSumPct = 100 * sum
            s.adherenceN = n
        } else {
            inexact.insert(FigureKey(.transmissionAdherence))
        }
        if !snapshot.enrolment.inFollowUp.isShown { inexact.insert(FigureKey(.inFollowUp)) }
        statistics = s
        // Milestones at or before the snapshot's day carry their counts; later ones stand at `enrolled`.
        let sorted = pilot.milestones.sorted { $0.date < $1.date }
        let past = sorted.filter { $0.date <= at.day }
        milestoneCounts = sorted.enumerated().map { i, m in
            let key = FigureKey(.milestoneEnrolled, m.date.description)
            guard i < past.count, i < snapshot.enrolment.milestones.count else {
                if inexact.contains(FigureKey(.enrolled)) { inexact.insert(key) }
                return s.enrolled
            }
            return exact(snapshot.enrolment.milestones[i], key)
        }
        var outcomes: [(indicator: Indicator, statistics: OutcomeStatistics)] = []
        for indicator in measured {
            let code = indicator.code
            let keys = [ExportMetric.nPaired, .inTarget, .improved, .pctInTarget, .improvedPct] + ExportMetric.outcomeMeans
            guard let o = snapshot.outcomes.first(where: { $0.indicator == code }),
                  let n = o.nPaired.count, o.nPaired.isShown else {
                inexact.formUnion(keys.map { FigureKey($0, code) })
                outcomes.append((indicator, OutcomeStatistics(indicator: code, sumBaseline: 0, sumLatest: 0, change: MomentSums([]),
                                                              inTarget: nil, improved: nil)))
                continue
            }
            let sums = [o.sumBaseline, o.sumLatest, o.sumChange, o.m2Change]
            if !sums.allSatisfy(\.isShown) { inexact.formUnion(ExportMetric.outcomeMeans.map { FigureKey($0, code) }) }
            if let m = o.inTarget, !m.isShown { inexact.formUnion([FigureKey(.inTarget, code), FigureKey(.pctInTarget, code)]) }
            if let m = o.improved, !m.isShown { inexact.formUnion([FigureKey(.improved, code), FigureKey(.improvedPct, code)]) }
            outcomes.append((indicator, OutcomeStatistics(indicator: code, sumBaseline: o.sumBaseline.value ?? 0,
                                                          sumLatest: o.sumLatest.value ?? 0,
                                                          change: MomentSums(n: n, sum: o.sumChange.value ?? 0, m2: o.m2Change.value ?? 0),
                                                          inTarget: o.inTarget.map { $0.count ?? 0 }, improved: o.improved.map { $0.count ?? 0 })))
        }
        self.outcomes = outcomes
        var events: [EventStatistics] = []
        var days = 0.0
        for indicator in eventIndicators {
            let code = indicator.code
            guard let e = snapshot.events.first(where: { $0.indicator == code }) else {
                inexact.formUnion([FigureKey(.events, code), FigureKey(.ratePer100PatientMonths, code)])
                events.append(EventStatistics(indicator: code, events: 0, patientDays: 0))
                continue
            }
            let n = exact(e.events, FigureKey(.events, code), FigureKey(.ratePer100PatientMonths, code))
            if e.patientDays.isShown, let d = e.patientDays.value {
                days = d
            } else {
                inexact.formUnion([FigureKey(.patientDays), FigureKey(.ratePer100PatientMonths, code)])
            }
            events.append(EventStatistics(indicator: code, events: n, patientDays: e.patientDays.value ?? 0))
        }
        self.events = events
        patientDays = days
        // The whole life up to `T`: every enrolled subject has follow-up.
        subjectsFollowed = s.enrolled
        var refusals = MessageCounts()
        for (reason, n) in snapshot.quality.refused {
            refusals.refusedByReason[reason] = exact(n, FigureKey(.refused, reason.rawValue), FigureKey(.refusedTotal))
        }
        refusals.refused = refusals.refusedByReason.values.reduce(0, +)
        self.refusals = refusals
        if since != nil {
            // A period other than the whole life is not in a snapshot.
            inexact.formUnion([FigureKey(.subjectsFollowed), FigureKey(.patientDays), FigureKey(.refusedTotal)])
            inexact.formUnion(eventIndicators.flatMap { [FigureKey(.events, $0.code), FigureKey(.ratePer100PatientMonths, $0.code)] })
            inexact.formUnion(ReasonCode.allCases.map { FigureKey(.refused, $0.rawValue) })
        }
        // The chart's points, when the snapshot gives them all.
        if snapshot.enrolment.curve.allSatisfy(\.isShown) {
            let points = snapshot.enrolment.curve.compactMap(\.count)
            enrolmentSeries = points.enumerated().map { i, n in
                let w = points.count - 1 - i
                let day = at.day.advanced(by: -7 * w)
                return EnrolmentPoint(day: day, at: w == 0 ? at : day.advanced(by: 1).start.adding(millis: -1), enrolled: n)
            }
        } else {
            enrolmentSeries = []
        }
        self.inexact = inexact
    }
}
