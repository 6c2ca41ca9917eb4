import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import TestSupport
import Testing

// Disclosure control over figure models built by hand: the 7-subject pilot, a programme with
// one small pilot beside large ones, and a property test over random datasets that checks, with
// an attacker written here independently of `Disclosure`, that no count of 1..k-1 is shown and
// that no suppressed figure can be worked out by subtraction (or from a share or a rate).

// MARK: - A small model builder

/// What a pilot's figures are made of; the builder derives the pooled programme figures.
struct ExportPilotSpec {
    var id: String
    var enrolled: Int
    var withdrawn: Int
    var adherence: Double? = 80
    /// indicator → (n_paired, in_target, improved)
    var outcomes: [(code: String, n: Int, inTarget: Int, improved: Int)] = []
    /// indicator → events
    var events: [(code: String, n: Int)] = []
    var followed: Int? = nil
    var patientDays: Double? = nil
    var refused: [ReasonCode: Int] = [:]
    var unenrolled = 0
    var target = 100
    var milestones: [(date: Day, target: Int, enrolled: Int, state: MilestoneState)] = []
    var series: [(day: Day, enrolled: Int)] = []
}

let fxSpo2 = ExportIndicator(Indicator(code: "spo2", name: "Oxygen saturation", kind: .measurement, unit: "%",
                                     range: ValueRange(min: 50, max: 100), programmes: ["respiratory"], direction: .higher,
                                     target: ValueRange(min: 92, max: 100)))
let fxCatScore = ExportIndicator(Indicator(code: "cat_score", name: "CAT", kind: .score, unit: "{score}",
                                         range: ValueRange(min: 0, max: 40), programmes: ["respiratory"], direction: .lower,
                                         target: ValueRange(min: 0, max: 9)))
let fxExacerbation = ExportIndicator(Indicator(code: "exacerbation", name: "Exacerbation", kind: .event, unit: "1",
                                             range: nil, programmes: ["respiratory"], direction: .lower))
let fxAsOf = Instant(millis: 1_790_000_000_000)

func fxIndicator(_ code: String) -> ExportIndicator {
    [fxSpo2, fxCatScore, fxExacerbation].first { $0.code == code } ?? fxSpo2
}

/// Figures of one scope from counts; statistics get plausible values (they only need to exist).
func fxFigures(enrolled: Int, withdrawn: Int, target: Int, adherence: Double?,
             outcomes: [(code: String, n: Int, inTarget: Int, improved: Int)], events: [(code: String, n: Int)],
             followed: Int, patientDays: Double, refused: [ReasonCode: Int], reasons: [ReasonCode],
             unenrolled: Int) -> [FigureKey: Cell] {
    var f: [FigureKey: Cell] = [
        FigureKey(.enrolled): .count(enrolled),
        FigureKey(.enrolmentTarget): .fact(target),
        FigureKey(.enrolmentPct): .statistic(target > 0 ? 100 * Double(enrolled) / Double(target) : nil),
        FigureKey(.withdrawn): .count(withdrawn),
        FigureKey(.inFollowUp): .count(enrolled - withdrawn),
        FigureKey(.transmissionAdherence): .statistic(enrolled - withdrawn > 0 ? adherence : nil),
        FigureKey(.unenrolledSubjects): .count(unenrolled),
    ]
    for o in outcomes {
        let n = o.n
        f[FigureKey(.nPaired, o.code)] = .count(n)
        f[FigureKey(.meanBaseline, o.code)] = .statistic(n > 0 ? 90 : nil)
        f[FigureKey(.meanLatest, o.code)] = .statistic(n > 0 ? 92.5 : nil)
        f[FigureKey(.meanChange, o.code)] = .statistic(n > 0 ? 2.5 : nil)
        f[FigureKey(.changeCI95Lower, o.code)] = .statistic(n > 1 ? 1.0 : nil)
        f[FigureKey(.changeCI95Upper, o.code)] = .statistic(n > 1 ? 4.0 : nil)
        f[FigureKey(.inTarget, o.code)] = .count(o.inTarget)
        f[FigureKey(.pctInTarget, o.code)] = .statistic(n > 0 ? 100 * Double(o.inTarget) / Double(n) : nil)
        f[FigureKey(.improved, o.code)] = .count(o.improved)
        f[FigureKey(.improvedPct, o.code)] = .statistic(n > 0 ? 100 * Double(o.improved) / Double(n) : nil)
    }
    if !events.isEmpty {
        f[FigureKey(.subjectsFollowed)] = .count(followed)
        f[FigureKey(.patientDays)] = .statistic(patientDays)
        for e in events {
            f[FigureKey(.events, e.code)] = .count(e.n)
            f[FigureKey(.ratePer100PatientMonths, e.code)] =
                .statistic(patientDays > 0 ? 100 * Double(e.n) / (patientDays / 30.4375) : nil)
        }
    }
    var total = 0
    for r in reasons {
        f[FigureKey(.refused, r.rawValue)] = .count(refused[r] ?? 0)
        total += refused[r] ?? 0
    }
    f[FigureKey(.refusedTotal)] = .count(total)
    return f
}

/// A report of programmes (name → pilots) with pooled figures summed from the pilots.
func makeExportReport(_ programmes: [(String, [ExportPilotSpec])]) -> ExportReport {
    var programmeScopes: [ExportScope] = []
    var pilotScopes: [ExportScope] = []
    for (name, specs) in programmes {
        let reasons = Array(Set(specs.flatMap { $0.refused.filter { $0.value > 0 }.keys })).sorted { $0.rawValue < $1.rawValue }
        var outcomeCodes: [String] = []
        var eventCodes: [String] = []
        for s in specs {
            for o in s.outcomes where !outcomeCodes.contains(o.code) { outcomeCodes.append(o.code) }
            for e in s.events where !eventCodes.contains(e.code) { eventCodes.append(e.code) }
        }
        for s in specs {
            let followed = s.followed ?? s.enrolled
            let days = s.patientDays ?? Double(followed) * 90
            var f = fxFigures(enrolled: s.enrolled, withdrawn: s.withdrawn, target: s.target, adherence: s.adherence,
                            outcomes: s.outcomes, events: s.events, followed: followed, patientDays: days,
                            refused: s.refused, reasons: reasons, unenrolled: s.unenrolled)
            var milestones: [ExportMilestone] = []
            for m in s.milestones {
                f[FigureKey(.milestoneEnrolled, m.date.description)] = .count(m.enrolled)
                f[FigureKey(.milestoneTarget, m.date.description)] = .fact(m.target)
                milestones.append(ExportMilestone(date: m.date, target: m.target, state: m.state,
                                                  cutoff: min(m.date.advanced(by: 1).start.adding(millis: -1), fxAsOf)))
            }
            let series = s.series.map {
                EnrolmentPoint(day: $0.day, at: $0.day == fxAsOf.day ? fxAsOf : $0.day.advanced(by: 1).start.adding(millis: -1),
                               enrolled: $0.enrolled)
            }
            pilotScopes.append(ExportScope(level: .pilot, id: s.id, programme: name,
                                           pilot: Pilot(id: s.id, name: "Pilot \(s.id)", programme: name, lead: "Lead \(s.id)",
                                                        call: "call-1", funders: ["funder-1"], start: Day(index: 20_000),
                                                        end: Day(index: 21_000), enrolmentTarget: s.target, milestones: [],
                                                        outcomes: s.outcomes.map(\.code) + s.events.map(\.code)),
                                           pilots: [], periodStart: nil, onTrack: true, milestones: milestones,
                                           outcomes: s.outcomes.map { fxIndicator($0.code) },
                                           events: s.events.map { fxIndicator($0.code) }, reasons: reasons, figures: f,
                                           enrolmentSeries: series))
        }
        // Pooled: sums of counts over the pilots that have the figure.
        var pooledOutcomes: [(code: String, n: Int, inTarget: Int, improved: Int)] = []
        for code in outcomeCodes {
            let os = specs.flatMap { $0.outcomes.filter { $0.code == code } }
            pooledOutcomes.append((code, os.reduce(0) { $0 + $1.n }, os.reduce(0) { $0 + $1.inTarget },
                                   os.reduce(0) { $0 + $1.improved }))
        }
        let eventPilots = specs.filter { !$0.events.isEmpty }
        var refused: [ReasonCode: Int] = [:]
        for s in specs { for (r, n) in s.refused { refused[r, default: 0] += n } }
        let followed = eventPilots.reduce(0) { $0 + ($1.followed ?? $1.enrolled) }
        let days = eventPilots.reduce(0.0) { $0 + ($1.patientDays ?? Double($1.followed ?? $1.enrolled) * 90) }
        let f = fxFigures(enrolled: specs.reduce(0) { $0 + $1.enrolled }, withdrawn: specs.reduce(0) { $0 + $1.withdrawn },
                        target: specs.reduce(0) { $0 + $1.target }, adherence: 75, outcomes: pooledOutcomes,
                        events: eventCodes.map { code in (code, specs.flatMap { $0.events.filter { $0.code == code } }.reduce(0) { $0 + $1.n }) },
                        followed: followed, patientDays: days, refused: refused, reasons: reasons,
                        unenrolled: specs.reduce(0) { $0 + $1.unenrolled })
        programmeScopes.append(ExportScope(level: .programme, id: name, programme: name, pilot: nil, pilots: specs.map(\.id),
                                           periodStart: nil, onTrack: nil, milestones: [],
                                           outcomes: outcomeCodes.map(fxIndicator), events: eventCodes.map(fxIndicator),
                                           reasons: reasons, figures: f, enrolmentSeries: []))
    }
    return ExportReport(asOf: fxAsOf, periodStart: nil, selection: ExportSelection(),
                        provenance: ExportProvenance(pilotwatchVersion: "test", databaseFingerprint: "sha256:test",
                                                     generatedAt: fxAsOf),
                        programmes: programmeScopes, pilots: pilotScopes)
}

// MARK: - An attacker, written independently of Disclosure

/// Everything a reader of the export can work out by subtraction and from shares and rates,
/// starting from the shown figures; returns the suppressed figures it recovered.
func recoverableFigures(_ d: DisclosedReport) -> [String] {
    struct Ref: Hashable { var scope: String; var key: FigureKey }
    var known: [Ref: Double] = [:]
    var hidden: Set<Ref> = []
    var all: [String: ExportScope] = [:]
    for s in d.report.programmes + d.report.pilots {
        let name = "\(s.level.rawValue):\(s.id)"
        all[name] = s
        for (key, c) in s.figures {
            let r = Ref(scope: name, key: key)
            if let v = c.value { known[r] = v } else if c.isSuppressed { hidden.insert(r) }
        }
    }
    // Linear relations: total = sum(parts).
    var sums: [(Ref, [Ref])] = []
    // Ratios: a = factor × b / c.
    var ratios: [(a: Ref, b: Ref, c: Ref, factor: Double)] = []
    for p in d.report.programmes {
        let pname = "programme:\(p.id)"
        let pilots = d.report.pilots(of: p.id).map { "pilot:\($0.id)" }
        for key in p.figures.keys where [.enrolled, .withdrawn, .inFollowUp, .unenrolledSubjects, .refusedTotal, .refused,
                                         .nPaired, .inTarget, .improved, .events, .subjectsFollowed, .patientDays]
            .contains(key.metric) {
            let parts = pilots.map { Ref(scope: $0, key: key) }.filter { all[$0.scope]?.figures[key] != nil }
            sums.append((Ref(scope: pname, key: key), parts))
        }
    }
    for (name, s) in all {
        func r(_ m: ExportMetric, _ q: String? = nil) -> Ref { Ref(scope: name, key: FigureKey(m, q)) }
        sums.append((r(.enrolled), [r(.withdrawn), r(.inFollowUp)]))
        sums.append((r(.refusedTotal), s.reasons.map { r(.refused, $0.rawValue) }))
        ratios.append((r(.enrolmentPct), r(.enrolled), r(.enrolmentTarget), 100))
        for o in s.outcomes {
            ratios.append((r(.pctInTarget, o.code), r(.inTarget, o.code), r(.nPaired, o.code), 100))
            ratios.append((r(.improvedPct, o.code), r(.improved, o.code), r(.nPaired, o.code), 100))
        }
        for e in s.events {
            ratios.append((r(.ratePer100PatientMonths, e.code), r(.events, e.code), r(.patientDays), 100 * 30.4375))
        }
    }
    var recovered: [String] = []
    var progress = true
    while progress {
        progress = false
        for (total, parts) in sums {
            let members = [total] + parts
            let unknown = members.filter { known[$0] == nil }
            guard unknown.count == 1, let u = unknown.first else { continue }
            let others = parts.filter { $0 != u }.reduce(0.0) { $0 + (known[$1] ?? 0) }
            known[u] = u == total ? others : (known[total] ?? 0) - others
            if hidden.contains(u) { recovered.append("\(u.scope) \(u.key) by subtraction") }
            progress = true
        }
        for (a, b, c, factor) in ratios {
            let va = known[a], vb = known[b], vc = known[c]
            if va == nil, let vb, let vc, vc > 0 {
                known[a] = factor * vb / vc
                if hidden.contains(a) { recovered.append("\(a.scope) \(a.key) from \(b.key) and \(c.key)") }
                progress = true
            } else if vb == nil, let va, let vc {
                known[b] = va * vc / factor
                if hidden.contains(b) { recovered.append("\(b.scope) \(b.key) from \(a.key) and \(c.key)") }
                progress = true
            } else if vc == nil, let va, let vb, va > 0 {
                known[c] = factor * vb / va
                if hidden.contains(c) { recovered.append("\(c.scope) \(c.key) from \(a.key) and \(b.key)") }
                progress = true
            }
        }
    }
    return recovered
}

/// Pooled means (adherence, an outcome's mean change) next to exactly one hidden pilot mean: a
/// weighted mean with a single unknown.
func weightedMeanLeaks(_ d: DisclosedReport) -> [String] {
    var out: [String] = []
    for p in d.report.programmes {
        let pilots = d.report.pilots(of: p.id)
        var keys = [FigureKey(.transmissionAdherence)]
        keys += p.outcomes.map { FigureKey(.meanChange, $0.code) }
        for key in keys {
            let cells = ([p] + pilots).compactMap { $0.figures[key] }.filter { $0.value != nil || $0.isSuppressed }
            if cells.filter(\.isSuppressed).count == 1 { out.append("\(p.id) \(key)") }
        }
    }
    return out
}

/// Sums with a shown total whose hidden parts are all small counts adding up to the only
/// possible total (every one 1, or every one k-1), found with the values before suppression.
func pinnedSums(_ raw: ExportReport, _ d: DisclosedReport) -> [String] {
    var out: [String] = []
    func check(_ total: (ExportScope, FigureKey), _ parts: [(ExportScope, FigureKey)], _ what: String) {
        guard let t = total.0.figures[total.1], t.value != nil else { return }
        func disclosed(_ s: ExportScope, _ key: FigureKey) -> Cell? {
            (d.report.programmes + d.report.pilots).first { $0.id == s.id && $0.level == s.level }?.figures[key]
        }
        guard disclosed(total.0, total.1)?.isSuppressed == false else { return }
        let hidden = parts.filter { disclosed($0.0, $0.1)?.isSuppressed == true }
        guard !hidden.isEmpty,
              hidden.allSatisfy({ disclosed($0.0, $0.1)?.suppression == .smallCount }) else { return }
        let sum = hidden.reduce(0.0) { $0 + ($1.0.figures[$1.1]?.value ?? 0) }
        if sum == Double(hidden.count) || sum == Double(hidden.count * (d.k - 1)) { out.append(what) }
    }
    for p in raw.programmes {
        let pilots = raw.pilots(of: p.id)
        for key in p.figures.keys where p.figures[key]?.kind == .count && key.metric != .milestoneEnrolled {
            check((p, key), pilots.filter { $0.figures[key] != nil }.map { ($0, key) }, "\(p.id) \(key)")
        }
    }
    for s in raw.programmes + raw.pilots {
        check((s, FigureKey(.enrolled)), [(s, FigureKey(.withdrawn)), (s, FigureKey(.inFollowUp))], "\(s.id) identity")
        check((s, FigureKey(.refusedTotal)), s.reasons.map { (s, FigureKey(.refused, $0.rawValue)) }, "\(s.id) refusals")
    }
    return out
}

/// Counts shown with a value between 1 and k-1.
func smallCountsShown(_ d: DisclosedReport) -> [String] {
    var out: [String] = []
    for s in d.report.programmes + d.report.pilots {
        for (key, c) in s.figures where c.kind == .count {
            if let v = c.value, v >= 1, v <= Double(d.k - 1) { out.append("\(s.id) \(key) = \(v)") }
        }
        for p in s.enrolmentSeries where p.enrolled >= 1 && p.enrolled < d.k {
            out.append("\(s.id) chart point \(p.day) = \(p.enrolled)")
        }
    }
    return out
}

/// Statistics shown although they stand on 1..k-1 subjects.
func statisticsOnFewShown(_ d: DisclosedReport) -> [String] {
    var out: [String] = []
    for s in d.report.programmes + d.report.pilots {
        for (key, c) in s.figures where c.kind == .statistic && c.value != nil {
            guard let basis = ExportScope.basis(of: key), let b = s.figures[basis] else { continue }
            if let n = b.value, n >= 1, n < Double(d.k) { out.append("\(s.id) \(key) on \(n) subjects") }
        }
    }
    return out
}

// MARK: - Tests

@Suite("Disclosure control")
struct DisclosureTests {
    static let sevenSubjects = ExportPilotSpec(
        id: "resp-seven", enrolled: 7, withdrawn: 1, adherence: 64.3,
        outcomes: [("spo2", 5, 3, 4), ("cat_score", 1, 0, 1)], events: [("exacerbation", 2)],
        refused: [.outOfRange: 3, .badUnit: 12], unenrolled: 0, target: 20)

    @Test("a pilot with 7 subjects: counts shown as <11, statistics withheld, zero stays zero")
    func sevenSubjectPilot() throws {
        let d = Disclosure.apply(makeExportReport([("respiratory", [DisclosureTests.sevenSubjects])]), k: 11)
        let p = try #require(d.report.pilots.first)
        #expect(p[.enrolled].state == .suppressed(.smallCount))
        #expect(p[.withdrawn].state == .suppressed(.smallCount))
        #expect(p[.inFollowUp].state == .suppressed(.smallCount))
        #expect(p[.enrolmentTarget].state == .value(20))            // a registry fact
        #expect(p[.enrolmentPct].state == .suppressed(.fewSubjects))
        #expect(p[.transmissionAdherence].state == .suppressed(.fewSubjects))
        #expect(p[.nPaired, "spo2"].state == .suppressed(.smallCount))
        for m in ExportMetric.outcomeMeans + [.pctInTarget, .improvedPct] {
            #expect(p[m, "spo2"].state == .suppressed(.fewSubjects), "\(m)")
            // n_paired = 1: the interval does not exist, but saying so would tell n = 1.
            #expect(p[m, "cat_score"].state == .suppressed(.fewSubjects), "cat_score \(m)")
        }
        // in_target 0 among 1 paired subject says something about that subject: withheld.
        #expect(p[.inTarget, "cat_score"].state == .suppressed(.fewSubjects))
        #expect(p[.events, "exacerbation"].state == .suppressed(.smallCount))
        #expect(p[.ratePer100PatientMonths, "exacerbation"].state == .suppressed(.fewSubjects))
        #expect(p[.patientDays].state == .suppressed(.fewSubjects))
        // Refusals: 3 is small, 12 is not; the total 15 would give the 3 away.
        #expect(p[.refused, "out_of_range"].state == .suppressed(.smallCount))
        #expect(p[.refused, "bad_unit"].isSuppressed || p[.refusedTotal].isSuppressed)
        #expect(p[.unenrolledSubjects].state == .value(0))
        #expect(smallCountsShown(d).isEmpty)
        #expect(recoverableFigures(d).isEmpty, "\(recoverableFigures(d))")

        // The programme is this one pilot: the same figures, suppressed the same way.
        let programme = try #require(d.report.programmes.first)
        #expect(programme[.enrolled].isSuppressed && programme[.inFollowUp].isSuppressed)
        #expect(programme[.meanChange, "spo2"].isSuppressed)

        // With k = 5 the 7 enrolled are shown; 1 withdrawn is still suppressed, so is in follow-up.
        let five = Disclosure.apply(makeExportReport([("respiratory", [DisclosureTests.sevenSubjects])]), k: 5)
        let p5 = try #require(five.report.pilots.first)
        #expect(p5[.enrolled].state == .value(7))
        #expect(p5[.withdrawn].state == .suppressed(.smallCount))
        #expect(p5[.inFollowUp].isSuppressed)
        #expect(p5[.meanChange, "spo2"].state == .value(2.5))
        #expect(five.k == 5 && smallCountsShown(five).isEmpty && recoverableFigures(five).isEmpty)

        // k can never go below 5.
        #expect(Disclosure.apply(makeExportReport([("respiratory", [DisclosureTests.sevenSubjects])]), k: 2).k == 5)
    }

    @Test("one small pilot among large ones: the programme figures that would give it away are hidden")
    func smallPilotInProgramme() throws {
        let small = ExportPilotSpec(id: "a-small", enrolled: 4, withdrawn: 0, outcomes: [("spo2", 3, 2, 2)],
                              events: [("exacerbation", 1)], refused: [.outOfRange: 25])
        let large1 = ExportPilotSpec(id: "b-large", enrolled: 60, withdrawn: 12, outcomes: [("spo2", 40, 30, 28)],
                               events: [("exacerbation", 35)], refused: [.outOfRange: 40])
        let large2 = ExportPilotSpec(id: "c-large", enrolled: 45, withdrawn: 14, outcomes: [("spo2", 30, 18, 20)],
                               events: [("exacerbation", 22)], refused: [.outOfRange: 31])
        let d = Disclosure.apply(makeExportReport([("respiratory", [small, large1, large2])]), k: 11)
        let a = try #require(d.report.pilots.first { $0.id == "a-small" })
        let b = try #require(d.report.pilots.first { $0.id == "b-large" })
        let c = try #require(d.report.pilots.first { $0.id == "c-large" })
        let p = try #require(d.report.programmes.first)

        #expect(a[.enrolled].state == .suppressed(.smallCount))
        #expect(a[.withdrawn].state == .value(0))
        #expect(a[.inFollowUp].state == .suppressed(.smallCount))
        // 109 enrolled in the programme, 60 and 45 shown: 4 would be a subtraction away.
        let enrolledHidden = [b[.enrolled], c[.enrolled], p[.enrolled]].filter(\.isSuppressed)
        #expect(enrolledHidden.count >= 1)
        #expect(enrolledHidden.allSatisfy { $0.suppression == .secondary })
        // The preferred second cell is the pooled total; the large pilots keep their figures.
        #expect(p[.enrolled].state == .suppressed(.secondary))
        #expect(b[.enrolled].state == .value(60) && c[.enrolled].state == .value(45))
        #expect(p[.enrolmentPct].isSuppressed)
        // The pooled identity enrolled = withdrawn + in follow-up must not give the total back.
        #expect(p[.withdrawn].isSuppressed || p[.inFollowUp].isSuppressed)
        // Pooled statistics are weighted means with a withheld pilot: hidden as well.
        #expect(p[.meanChange, "spo2"].isSuppressed && p[.meanBaseline, "spo2"].isSuppressed)
        #expect(p[.transmissionAdherence].isSuppressed)
        #expect(p[.nPaired, "spo2"].isSuppressed && p[.pctInTarget, "spo2"].isSuppressed)
        #expect(p[.events, "exacerbation"].isSuppressed && p[.ratePer100PatientMonths, "exacerbation"].isSuppressed)
        #expect(b[.meanChange, "spo2"].state == .value(2.5))
        // Refusals of 25 in the small pilot are not small: nothing to hide there.
        #expect(a[.refused, "out_of_range"].state == .value(25))
        #expect(smallCountsShown(d).isEmpty)
        #expect(statisticsOnFewShown(d).isEmpty)
        #expect(recoverableFigures(d).isEmpty, "\(recoverableFigures(d))")
        #expect(d.suppressedCounts[.secondary, default: 0] > 0)
    }

    @Test("two small counts adding up to the only possible total are not left pinned")
    func pinnedSmallCounts() throws {
        // Two pilots with 1 unenrolled subject each, a third with 12 and a programme total of 14:
        // the two hidden ones add up to 2, so each must be 1 unless a third figure is hidden.
        let a = ExportPilotSpec(id: "a", enrolled: 30, withdrawn: 0, unenrolled: 1)
        let b = ExportPilotSpec(id: "b", enrolled: 40, withdrawn: 0, unenrolled: 1)
        let c = ExportPilotSpec(id: "c", enrolled: 50, withdrawn: 0, unenrolled: 12)
        let d = Disclosure.apply(makeExportReport([("cardiac", [a, b, c])]), k: 11)
        let p = try #require(d.report.programmes.first)
        let pilots = d.report.pilots
        #expect(pilots[0][.unenrolledSubjects].state == .suppressed(.smallCount))
        #expect(pilots[1][.unenrolledSubjects].state == .suppressed(.smallCount))
        #expect(p[.unenrolledSubjects].isSuppressed || pilots[2][.unenrolledSubjects].isSuppressed)
    }

    @Test("milestone counts and chart points move by 0 or at least k")
    func cumulativeEnrolment() throws {
        let d0 = Day(index: 20_000)
        let t = fxAsOf.day
        var spec = ExportPilotSpec(id: "m", enrolled: 40, withdrawn: 0)
        spec.milestones = [(d0.advanced(by: 30), 10, 12, .met), (d0.advanced(by: 60), 20, 18, .missed),
                           (d0.advanced(by: 90), 30, 35, .met)]
        spec.series = [(d0, 0), (d0.advanced(by: 7), 3), (d0.advanced(by: 14), 11), (d0.advanced(by: 21), 12),
                       (d0.advanced(by: 70), 22), (d0.advanced(by: 77), 26), (t, 40)]
        let d = Disclosure.apply(makeExportReport([("respiratory", [spec])]), k: 11)
        let p = try #require(d.report.pilots.first)
        // 12 (kept), 18 (6 more: hidden), 35 (23 more than 12: kept), then 40 is only 5 more: 35 goes.
        #expect(p[.milestoneEnrolled, d0.advanced(by: 30).description].state == .value(12))
        #expect(p[.milestoneEnrolled, d0.advanced(by: 60).description].state == .suppressed(.secondary))
        #expect(p[.milestoneEnrolled, d0.advanced(by: 90).description].state == .suppressed(.secondary))
        #expect(p[.enrolled].state == .value(40))
        let published = [0] + p.enrolmentSeries.map(\.enrolled)
        #expect(p.enrolmentSeries.last?.enrolled == 40)
        var shown = [(fxAsOf, 40)] + p.enrolmentSeries.map { ($0.at, $0.enrolled) }
        for m in p.milestones { if let v = p[.milestoneEnrolled, m.date.description].value { shown.append((m.cutoff, Int(v))) } }
        shown.sort { $0.0 < $1.0 }
        let values = [0] + shown.map(\.1)
        for (x, y) in zip(values, values.dropFirst()) { #expect(y - x == 0 || y - x >= 11, "\(values)") }
        #expect(published.allSatisfy { $0 == 0 || $0 >= 11 })
    }

    @Test("random datasets: no count of 1..k-1 shown, nothing suppressed recoverable", arguments: 0..<4)
    func randomDatasets(batch: Int) {
        var rng = SplitMix(seed: 0x5eed_0000 + UInt64(batch))
        var failures: [String] = []
        for round in 0..<100 {
            let k = Int.random(in: 5...15, using: &rng)
            let report = randomReport(&rng)
            let d = Disclosure.apply(report, k: k)
            let small = smallCountsShown(d), few = statisticsOnFewShown(d), recovered = recoverableFigures(d)
            let means = weightedMeanLeaks(d), pinned = pinnedSums(report, d)
            if !small.isEmpty || !few.isEmpty || !recovered.isEmpty || !means.isEmpty || !pinned.isEmpty {
                failures.append("batch \(batch) round \(round) k \(k): \(small) \(few) \(recovered) \(means) \(pinned)")
            }
            // Every suppressed figure is marked, and no value is left behind it.
            for s in d.report.programmes + d.report.pilots {
                for (key, c) in s.figures where c.isSuppressed && c.value != nil { failures.append("\(s.id) \(key) keeps a value") }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    func randomReport(_ rng: inout SplitMix) -> ExportReport {
        let sizes = [0, 1, 2, 3, 5, 8, 10, 11, 12, 15, 20, 25, 40, 80, 150]
        var programmes: [(String, [ExportPilotSpec])] = []
        for p in 0..<Int.random(in: 1...3, using: &rng) {
            var specs: [ExportPilotSpec] = []
            for i in 0..<Int.random(in: 1...4, using: &rng) {
                let enrolled = sizes.randomElement(using: &rng) ?? 0
                let withdrawn = Int.random(in: 0...max(0, enrolled / 3), using: &rng)
                var outcomes: [(code: String, n: Int, inTarget: Int, improved: Int)] = []
                for code in ["spo2", "cat_score"] where Bool.random(using: &rng) {
                    let n = Int.random(in: 0...enrolled, using: &rng)
                    outcomes.append((code, n, Int.random(in: 0...n, using: &rng), Int.random(in: 0...n, using: &rng)))
                }
                var refused: [ReasonCode: Int] = [:]
                for r in [ReasonCode.outOfRange, .badUnit, .schema] where Bool.random(using: &rng) {
                    refused[r] = [1, 2, 4, 9, 10, 11, 14, 30, 200].randomElement(using: &rng)
                }
                let events: [(code: String, n: Int)] = Bool.random(using: &rng)
                    ? [("exacerbation", [0, 1, 3, 10, 11, 12, 30].randomElement(using: &rng) ?? 0)] : []
                specs.append(ExportPilotSpec(id: "p\(p)-\(i)", enrolled: enrolled, withdrawn: withdrawn,
                                       adherence: Double.random(in: 0...100, using: &rng), outcomes: outcomes,
                                       events: events, refused: refused,
                                       unenrolled: [0, 0, 1, 2, 12].randomElement(using: &rng) ?? 0,
                                       target: Int.random(in: 1...200, using: &rng)))
            }
            programmes.append(("programme-\(p)", specs))
        }
        return makeExportReport(programmes)
    }
}

