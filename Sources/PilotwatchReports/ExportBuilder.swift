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

    public static func build(store: Store, registry: Registry, catalogue: Catalogue, request: ExportRequest) throws -> ExportReport {
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
                    inputs.append(try PilotInput.read(pilot, catalogue: catalogue, reader: reader, since: since, asOf: t))
                }
                let reasons = Array(Set(inputs.flatMap { $0.refusals.refusedByReason.filter { $0.value > 0 }.keys }))
                    .sorted { $0.rawValue < $1.rawValue }
                programmeScopes.append(pooledScope(programme, inputs, reasons: reasons, since: since, asOf: t))
                pilotScopes += inputs.map { pilotScope($0, reasons: reasons, since: since, asOf: t) }
            }
            let provenance = ExportProvenance(pilotwatchVersion: request.pilotwatchVersion,
                                              databaseFingerprint: fingerprint, generatedAt: request.generatedAt ?? t)
            return ExportReport(asOf: t, periodStart: since, selection: request.selection, provenance: provenance,
                                programmes: programmeScopes, pilots: pilotScopes)
        }
    }

    /// What is read of one pilot.
    struct PilotInput {
        var pilot: Pilot
        var subjects: [SubjectFacts]
        var outcomes: [(indicator: Indicator, pairs: [OutcomePair])]
        var eventIndicators: [Indicator]
        var events: [SubjectEvent]
        var refusals: MessageCounts

        static func read(_ pilot: Pilot, catalogue: Catalogue, reader: StoreReader, since: Instant?,
                         asOf t: Instant) throws -> PilotInput {
            let subjects = try reader.subjectFacts(pilot: pilot.id, asOf: t)
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
            let outcomes = zip(measured, try reader.outcomePairs(pilot: pilot.id, indicators: measured, asOf: t))
                .map { (indicator: $0, pairs: $1) }
            let reported = Set(eventIndicators.map(\.code))
            let events = try reader.pilotEvents(pilot: pilot.id).filter { reported.contains($0.indicator) && $0.at <= t }
            let refusals = try reader.messageCounts(pilot: pilot.id, from: since?.day, through: t.day)
            return PilotInput(pilot: pilot, subjects: subjects, outcomes: outcomes, eventIndicators: eventIndicators,
                              events: events, refusals: refusals)
        }
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

    private static func subjectsFollowed(_ subjects: [SubjectFacts], since: Instant?, asOf t: Instant) -> Int {
        subjects.reduce(0) { $0 + (Metrics.followUpSpan($1, since: since, asOf: t) != nil ? 1 : 0) }
    }

    static func pilotScope(_ input: PilotInput, reasons: [ReasonCode], since: Instant?, asOf t: Instant) -> ExportScope {
        let pilot = input.pilot
        let p = Metrics.pilot(input.subjects, target: pilot.enrolmentTarget, end: pilot.end, asOf: t)
        var f: [FigureKey: Cell] = [
            FigureKey(.enrolled): .count(p.enrolled),
            FigureKey(.enrolmentTarget): .fact(p.enrolmentTarget),
            FigureKey(.enrolmentPct): .statistic(p.enrolmentPct),
            FigureKey(.withdrawn): .count(p.withdrawn),
            FigureKey(.inFollowUp): .count(p.inFollowUp),
            FigureKey(.transmissionAdherence): .statistic(p.transmissionAdherence),
        ]
        let progress = Metrics.milestones(pilot.milestones, subjects: input.subjects, asOf: t)
        var milestones: [ExportMilestone] = []
        for m in progress {
            let date = m.milestone.date.description
            f[FigureKey(.milestoneEnrolled, date)] = .count(m.enrolled)
            f[FigureKey(.milestoneTarget, date)] = .fact(m.milestone.enrolled)
            milestones.append(ExportMilestone(date: m.milestone.date, target: m.milestone.enrolled, state: m.state,
                                              cutoff: min(m.milestone.date.advanced(by: 1).start.adding(millis: -1), t)))
        }
        let events = Metrics.events(input.eventIndicators.map(\.code), subjects: input.subjects, events: input.events,
                                    since: since, asOf: t)
        common(into: &f, outcomes: input.outcomes.map { ($0.indicator, Metrics.outcome($0.indicator, pairs: $0.pairs)) },
               events: events, subjectsFollowed: subjectsFollowed(input.subjects, since: since, asOf: t),
               patientDays: Metrics.patientDays(input.subjects, since: since, asOf: t),
               refusals: input.refusals.refusedByReason, reasons: reasons, unenrolled: p.unenrolledSubjects)
        return ExportScope(level: .pilot, id: pilot.id, programme: pilot.programme, pilot: pilot, pilots: [],
                           periodStart: since, onTrack: p.onTrack, milestones: milestones,
                           outcomes: input.outcomes.map { ExportIndicator($0.indicator) },
                           events: input.eventIndicators.map(ExportIndicator.init), reasons: reasons, figures: f,
                           enrolmentSeries: enrolmentSeries(input.subjects, start: pilot.start, asOf: t))
    }

    /// A programme pooled over the subjects of its selected pilots: counts are sums, means and
    /// shares are over all their subjects (never a mean of pilot means).
    static func pooledScope(_ programme: String, _ inputs: [PilotInput], reasons: [ReasonCode], since: Instant?,
                            asOf t: Instant) -> ExportScope {
        let p = Metrics.programme(inputs.map { ($0.subjects, $0.pilot.enrolmentTarget) }, asOf: t)
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
            for (indicator, ps) in input.outcomes {
                if outcomeParts[indicator.code] == nil { outcomeOrder.append(indicator) }
                outcomeParts[indicator.code, default: []].append(Metrics.outcomeStatistics(indicator, pairs: ps))
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
                followed += subjectsFollowed(input.subjects, since: since, asOf: t)
                let own = Metrics.eventStatistics(input.eventIndicators.map(\.code), subjects: input.subjects,
                                                  events: input.events, since: since, asOf: t)
                if let first = own.first { patientDays += first.patientDays }
                for e in own {
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
        return ExportScope(level: .programme, id: programme, programme: programme, pilot: nil,
                           pilots: inputs.map(\.pilot.id), periodStart: since, onTrack: nil, milestones: [],
                           outcomes: outcomeOrder.map(ExportIndicator.init), events: eventOrder.map(ExportIndicator.init),
                           reasons: reasons, figures: f, enrolmentSeries: [])
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
