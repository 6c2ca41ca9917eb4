import PilotwatchCore
import Yams

/// How a pilot's data reaches the broker.
public enum Transport: String, Sendable, Hashable, CaseIterable {
    /// One home device per subject (`dev-0042`), sending the subject's readings of the day in one message.
    case device
    /// The pilot's back-end (`hub-01`...) batching everybody's data, up to `batch_max` observations a message.
    case backend
}

/// How often a measurement or score is taken.
public enum Cadence: Sendable, Hashable {
    /// Readings per day, spread over the waking day (a fraction adds one more reading with that probability).
    case perDay(Double)
    /// Readings per week (at most 7), on random days.
    case perWeek(Double)
    /// One value every so many days (lab results, questionnaires at visits).
    case everyDays(Double)
    /// At the same times as another indicator listed before it (diastolic with systolic, pulse with SpO2).
    case with(String)
}

/// Temporary excursions of a value (a heart-failure patient's fluid gain, a bad glycaemic week).
public struct Excursion: Sendable, Hashable {
    public var perYear: Double
    /// Added to the value at the peak, in the catalogue's unit.
    public var size: Double
    public var days: Double
}

/// How one measurement or score behaves in one pilot.
public struct IndicatorPlan: Sendable, Hashable {
    public var code: String
    public var cadence: Cadence
    /// Who sends it: the subject's device, or the pilot's back-end (lab results, questionnaires).
    public var source: Transport
    public var baselineMean: Double
    public var baselineSD: Double
    /// Mean change per month of follow-up, in the catalogue's unit; each subject draws its own.
    public var driftPerMonth: Double
    public var driftSD: Double
    /// The drift stops after this many months (an effect that plateaus); nil: it goes on.
    public var driftMonths: Double?
    /// Reading-to-reading noise (standard deviation).
    public var noise: Double
    /// Decimals of the value as sent, in the sent unit.
    public var decimals: Int
    /// The unit sent: the catalogue's, or one the catalogue converts from.
    public var unit: String
    /// `canonical = sent * factor + offset` (1 and 0 for the catalogue's unit).
    public var factor: Double
    public var offset: Double
    /// Values are kept inside this range (canonical unit), itself inside the catalogue's plausible range.
    public var range: ValueRange
    /// The catalogue's plausible range (what a deliberately out-of-range value must leave).
    public var plausible: ValueRange
    public var excursion: Excursion?
    /// For `everyDays`: the first value is taken up to this many days before enrolment (a baseline lab result).
    public var baselineBeforeDays: Double
}

/// A rate attached to an indicator code.
public struct RatePlan: Sendable, Hashable {
    public var code: String
    public var rate: Double
}

/// Enrolment pace: `perWeek` subjects a week once the ramp is over, on working days.
public struct EnrolmentPlan: Sendable, Hashable {
    public var perWeek: Double
    /// The pace grows linearly from zero over these weeks after the first enrolment day.
    public var rampWeeks: Double
    /// Days after the pilot's start before the first enrolment.
    public var delayDays: Double
}

/// Deliberate misbehaviours, so that pilotwatch's guards and quality views have something to catch.
public struct Misbehaviour: Sendable, Hashable {
    /// The pilot's fleet (its home devices, or its hubs for a back-end pilot) stops sending for the last weeks before the end.
    public var silentLastWeeks: Double = 0
    /// Per thousand valid messages: an extra message that is not valid JSON.
    public var malformedPer1000: Double = 0
    /// Per thousand valid messages: an extra copy carrying identifying data (an e-mail or phone number as subject, a `name` field).
    public var identifyingPer1000: Double = 0
    /// Per thousand valid messages: an extra copy with a unit typo or an out-of-range value.
    public var invalidPer1000: Double = 0
    /// Per thousand valid messages: the same message published again (a retry with the same msg_id).
    public var duplicatePer1000: Double = 0
    /// Subjects that send data but whose enrolment is never reported.
    public var unenrolledSubjects: Int = 0
    public init() {}
}

/// How one pilot behaves in the simulation.
public struct PilotPlan: Sendable {
    public var pilot: Pilot
    public var transport: Transport
    public var hubs: Int
    public var enrolment: EnrolmentPlan
    public var dropoutPerMonth: Double
    /// Share of scheduled readings that happen, on average (each subject draws its own).
    public var adherence: Double
    public var indicators: [IndicatorPlan]
    /// Events per patient-year of follow-up (hospitalisation, exacerbation...).
    public var events: [RatePlan]
    /// Pilot-level counts per subject in follow-up per week, reported weekly by the back-end without a subject.
    public var pilotCounts: [RatePlan]
    public var misbehaviour: Misbehaviour
    public var statusEveryDays: Double
    public var hubEveryHours: Double
    public var batchMax: Int
    public var firmware: String
    /// Whether the back-end adds the optional `pilot` field to its messages.
    public var pilotField: Bool
}

/// A parsed scenario (`seeds/scenario.yaml`), checked against the registry and the catalogue.
public struct Scenario: Sendable {
    public var file: String
    public var pilots: [PilotPlan]
    public init(file: String, pilots: [PilotPlan]) { self.file = file; self.pilots = pilots }
}

/// Parses a scenario file from its text (no I/O), naming file and line for every problem.
/// With `only`, the entries of other pilots are skipped unread (they need not be in `registry`:
/// a site instance's registry holds its own pilots only), and each pilot of `only` must have one.
///
/// ```swift
/// let (scenario, problems) = ScenarioParser.parse(yaml: text, file: "seeds/scenario.yaml",
///                                                 registry: registry, catalogue: catalogue)
/// ```
public enum ScenarioParser {
    static let settingKeys = ["dropout_per_month", "adherence", "status_every_days", "hub_every_hours", "batch_max",
                              "firmware", "pilot_field", "misbehaviour"]
    static let pilotKeys = ["transport", "hubs", "enrolment", "indicators", "events", "pilot_counts"] + settingKeys
    static let misbehaviourKeys = ["silent_last_weeks", "malformed_per_1000", "identifying_per_1000", "invalid_per_1000",
                                   "duplicate_per_1000", "unenrolled_subjects"]
    static let indicatorKeys = ["per_day", "per_week", "every_days", "with", "source", "baseline", "drift_per_month", "drift_sd",
                                "drift_months", "noise", "decimals", "unit", "clamp", "excursion", "baseline_before_days"]

    /// Settings that `defaults:` gives and each pilot may override.
    struct Settings {
        var dropout: Double?, adherence: Double?, statusEvery: Double?, hubEvery: Double?
        var batchMax: Int?, firmware: String?, pilotField: Bool?
        var misbehaviour: [String: Double] = [:]

        func over(_ base: Settings) -> Settings {
            var s = self
            s.dropout = dropout ?? base.dropout; s.adherence = adherence ?? base.adherence
            s.statusEvery = statusEvery ?? base.statusEvery; s.hubEvery = hubEvery ?? base.hubEvery
            s.batchMax = batchMax ?? base.batchMax; s.firmware = firmware ?? base.firmware
            s.pilotField = pilotField ?? base.pilotField
            s.misbehaviour = base.misbehaviour.merging(misbehaviour) { _, new in new }
            return s
        }
    }

    public static func parse(yaml: String, file: String, registry: Registry, catalogue: Catalogue,
                             only: Set<String>? = nil) -> (Scenario?, [ConfigProblem]) {
        var r = YAMLReader(file: file)
        guard let root = r.root(yaml, shape: "see seeds/scenario.yaml for its shape", topLevel: "a mapping with defaults: and pilots:") else { return (nil, r.problems) }
        r.checkKeys(root, allowed: ["defaults", "pilots"], path: "")
        var defaults = Settings()
        if let d = r.mapping(root, "defaults", path: "") {
            defaults = settings(&r, d, path: "defaults")
        }
        guard let pilotsMap = r.mapping(root, "pilots", path: "") else {
            if root["pilots"] == nil { r.problem(root.anyNode, "pilots is missing; add a mapping of pilot id to its behaviour") }
            return (nil, r.problems)
        }
        var plans: [PilotPlan] = []
        if let only {
            let described = Set(pilotsMap.compactMap { $0.key.string })
            for id in only.subtracting(described).sorted() {
                r.problem(pilotsMap.anyNode, "pilots has no entry for \(id); describe it, or leave it out of the selection")
            }
        }
        for (keyNode, valueNode) in pilotsMap {
            let id = keyNode.string ?? ""
            if let only, !only.contains(id) { continue }
            let path = "pilots.\(id)"
            guard let pilot = registry.pilot(id) else {
                let hint = closest(id, in: registry.pilots.map(\.id)).map { " (did you mean \($0)?)" } ?? ""
                r.problem(keyNode, "\(path): \"\(id)\" is not a pilot of the registry\(hint); the registry has \(registry.pilots.map(\.id).joined(separator: ", "))")
                continue
            }
            guard case .mapping(let m) = valueNode else {
                r.problem(valueNode, "\(path) must be a mapping: {transport: ..., enrolment: ..., indicators: ...}")
                continue
            }
            if let plan = pilotPlan(&r, m, pilot: pilot, defaults: defaults, catalogue: catalogue, path: path) {
                plans.append(plan)
            }
        }
        if plans.isEmpty, r.problems.isEmpty { r.problem(pilotsMap.anyNode, "pilots is empty; describe at least one pilot") }
        return (r.problems.isEmpty ? Scenario(file: file, pilots: plans) : nil, r.problems)
    }

    static func settings(_ r: inout YAMLReader, _ m: Node.Mapping, path: String) -> Settings {
        var s = Settings()
        s.dropout = r.number(m, "dropout_per_month", path: path, range: 0...1)
        s.adherence = r.number(m, "adherence", path: path, range: 0.01...1)
        s.statusEvery = r.number(m, "status_every_days", path: path, range: 1...365)
        s.hubEvery = r.number(m, "hub_every_hours", path: path, range: 1...24)
        s.batchMax = r.int(m, "batch_max", path: path, range: 1...ContractLimits.maxObservations)
        s.firmware = r.string(m, "firmware", path: path)
        s.pilotField = r.bool(m, "pilot_field", path: path)
        if let mb = r.mapping(m, "misbehaviour", path: path) {
            let mpath = "\(path).misbehaviour"
            r.checkKeys(mb, allowed: misbehaviourKeys, path: mpath)
            let ranges: [String: ClosedRange<Double>] = [
                "silent_last_weeks": 0...52, "malformed_per_1000": 0...1000, "identifying_per_1000": 0...1000,
                "invalid_per_1000": 0...1000, "duplicate_per_1000": 0...1000, "unenrolled_subjects": 0...1000,
            ]
            for key in misbehaviourKeys {
                if key == "unenrolled_subjects" {
                    if let v = r.int(mb, key, path: mpath, range: 0...1000) { s.misbehaviour[key] = Double(v) }
                } else if let range = ranges[key], let v = r.number(mb, key, path: mpath, range: range) {
                    s.misbehaviour[key] = v
                }
            }
        }
        return s
    }

    static func pilotPlan(_ r: inout YAMLReader, _ m: Node.Mapping, pilot: Pilot, defaults: Settings,
                          catalogue: Catalogue, path: String) -> PilotPlan? {
        let before = r.problems.count
        r.checkKeys(m, allowed: pilotKeys, path: path)
        let s = settings(&r, m, path: path).over(defaults)
        var transport = Transport.device
        if let t = r.string(m, "transport", path: path) {
            if let v = Transport(rawValue: t) { transport = v } else {
                r.problem(m["transport"], "\(path).transport: \"\(t)\" is not one of device, backend")
            }
        }
        let hubs = r.int(m, "hubs", path: path, range: 1...99) ?? 1

        var enrolment: EnrolmentPlan?
        if let e = r.mapping(m, "enrolment", path: path) {
            let epath = "\(path).enrolment"
            r.checkKeys(e, allowed: ["per_week", "ramp_weeks", "delay_days"], path: epath)
            let perWeek = r.number(e, "per_week", path: epath, range: 0.01...10_000, required: true)
            let ramp = r.number(e, "ramp_weeks", path: epath, range: 0...104) ?? 0
            let delay = r.number(e, "delay_days", path: epath, range: 0...3650) ?? 0
            if let perWeek { enrolment = EnrolmentPlan(perWeek: perWeek, rampWeeks: ramp, delayDays: delay) }
        } else if m["enrolment"] == nil {
            r.problem(m.anyNode, "\(path).enrolment is missing; add {per_week: 3, ramp_weeks: 4}")
        }

        var indicators: [IndicatorPlan] = []
        if let im = r.mapping(m, "indicators", path: path) {
            for (k, v) in im {
                let code = k.string ?? ""
                let ipath = "\(path).indicators.\(code)"
                guard let ind = indicatorFor(&r, k, code: code, pilot: pilot, catalogue: catalogue, path: ipath) else { continue }
                if ind.level == .pilot {
                    r.problem(k, "\(ipath): \(code) is a pilot-level count; list it under pilot_counts: with a rate per subject-week")
                    continue
                }
                if ind.kind == .event {
                    r.problem(k, "\(ipath): \(code) is an event; list it under events: with a rate per patient-year")
                    continue
                }
                guard case .mapping(let im2) = v else {
                    r.problem(v, "\(ipath) must be a mapping such as {per_day: 1, baseline: {mean: 93, sd: 2}}")
                    continue
                }
                if let plan = indicatorPlan(&r, im2, indicator: ind, transport: transport, earlier: indicators.map(\.code), path: ipath) {
                    indicators.append(plan)
                }
            }
        }

        let events = rates(&r, m, "events", path: path, range: 0...100) { r, k, code, epath in
            guard let ind = indicatorFor(&r, k, code: code, pilot: pilot, catalogue: catalogue, path: epath) else { return false }
            if ind.kind != .event || ind.level == .pilot {
                let where_ = ind.level == .pilot ? "pilot_counts:" : "indicators:"
                r.problem(k, "\(epath): \(code) is not a subject event; list it under \(where_)")
                return false
            }
            if Catalogue.requiredEvents.contains(code) {
                r.problem(k, "\(epath): \(code) events come from enrolment and dropout_per_month; remove this line")
                return false
            }
            return true
        }
        let counts = rates(&r, m, "pilot_counts", path: path, range: 0...1000) { r, k, code, cpath in
            guard let ind = indicatorFor(&r, k, code: code, pilot: pilot, catalogue: catalogue, path: cpath) else { return false }
            if ind.level != .pilot {
                r.problem(k, "\(cpath): \(code) is not a pilot-level count (level: pilot in the catalogue)")
                return false
            }
            return true
        }

        var mis = Misbehaviour()
        mis.silentLastWeeks = s.misbehaviour["silent_last_weeks"] ?? 0
        mis.malformedPer1000 = s.misbehaviour["malformed_per_1000"] ?? 0
        mis.identifyingPer1000 = s.misbehaviour["identifying_per_1000"] ?? 0
        mis.invalidPer1000 = s.misbehaviour["invalid_per_1000"] ?? 0
        mis.duplicatePer1000 = s.misbehaviour["duplicate_per_1000"] ?? 0
        mis.unenrolledSubjects = Int(s.misbehaviour["unenrolled_subjects"] ?? 0)

        guard r.problems.count == before, let enrolment else { return nil }
        return PilotPlan(pilot: pilot, transport: transport, hubs: hubs, enrolment: enrolment,
                         dropoutPerMonth: s.dropout ?? 0, adherence: s.adherence ?? 1, indicators: indicators,
                         events: events, pilotCounts: counts, misbehaviour: mis,
                         statusEveryDays: s.statusEvery ?? 7, hubEveryHours: s.hubEvery ?? 6,
                         batchMax: s.batchMax ?? 200, firmware: s.firmware ?? "1.0.0", pilotField: s.pilotField ?? false)
    }

    /// The catalogue entry for `code`, checked against the pilot's programme.
    static func indicatorFor(_ r: inout YAMLReader, _ node: Node, code: String, pilot: Pilot,
                             catalogue: Catalogue, path: String) -> Indicator? {
        guard let ind = catalogue.indicator(code) else {
            let hint = closest(code, in: catalogue.indicators.map(\.code)).map { " (did you mean \($0)?)" } ?? ""
            r.problem(node, "\(path): \"\(code)\" is not in the indicator catalogue\(hint)")
            return nil
        }
        guard ind.programmes.contains(pilot.programme) else {
            r.problem(node, "\(path): \(code) is not allowed for programme \(pilot.programme) (the catalogue allows it for \(ind.programmes.joined(separator: ", ")))")
            return nil
        }
        return ind
    }

    static func rates(_ r: inout YAMLReader, _ m: Node.Mapping, _ key: String, path: String, range: ClosedRange<Double>,
                      check: (inout YAMLReader, Node, String, String) -> Bool) -> [RatePlan] {
        guard let map = r.mapping(m, key, path: path) else { return [] }
        var out: [RatePlan] = []
        for (k, _) in map {
            let code = k.string ?? ""
            let p = "\(path).\(key)"
            guard check(&r, k, code, "\(p).\(code)") else { continue }
            if let v = r.number(map, code, path: p, range: range) { out.append(RatePlan(code: code, rate: v)) }
        }
        return out
    }

    static func indicatorPlan(_ r: inout YAMLReader, _ m: Node.Mapping, indicator ind: Indicator,
                              transport: Transport, earlier: [String], path: String) -> IndicatorPlan? {
        let before = r.problems.count
        r.checkKeys(m, allowed: indicatorKeys, path: path)
        let perDay = r.number(m, "per_day", path: path, range: 0.01...48)
        let perWeek = r.number(m, "per_week", path: path, range: 0.01...7)
        let every = r.number(m, "every_days", path: path, range: 1...400)
        let with = r.string(m, "with", path: path)
        if let with, !earlier.contains(with) {
            r.problem(m["with"], "\(path).with: \"\(with)\" is not an indicator listed before \(ind.code) in this pilot; list it first")
        }
        let given = [perDay.map { Cadence.perDay($0) }, perWeek.map { Cadence.perWeek($0) }, every.map { Cadence.everyDays($0) },
                     with.map { Cadence.with($0) }].compactMap { $0 }
        if given.count != 1, r.problems.count == before {
            r.problem(m.anyNode, "\(path): give exactly one of per_day, per_week (at most 7), every_days or with")
        }
        var source = transport
        if let s = r.string(m, "source", path: path) {
            if let v = Transport(rawValue: s) { source = v } else { r.problem(m["source"], "\(path).source: \"\(s)\" is not one of device, backend") }
            if source == .device, transport == .backend {
                r.problem(m["source"], "\(path).source: device needs the pilot's transport: device; a back-end pilot sends everything through its hubs")
            }
        }
        let plausibleRange = ind.range ?? ValueRange(min: -1e15, max: 1e15)
        var range = plausibleRange
        if let c = r.mapping(m, "clamp", path: path) {
            r.checkKeys(c, allowed: ["min", "max"], path: "\(path).clamp")
            let lo = r.number(c, "min", path: "\(path).clamp", range: range.min...range.max, required: true)
            let hi = r.number(c, "max", path: "\(path).clamp", range: range.min...range.max, required: true)
            if let lo, let hi {
                if lo > hi { r.problem(m["clamp"], "\(path).clamp: min \(formatNumber(lo)) is above max \(formatNumber(hi))") }
                else { range = ValueRange(min: lo, max: hi) }
            }
        }
        var mean: Double?, sd = 0.0
        if let b = r.mapping(m, "baseline", path: path) {
            r.checkKeys(b, allowed: ["mean", "sd"], path: "\(path).baseline")
            mean = r.number(b, "mean", path: "\(path).baseline", range: range.min...range.max, required: true,
                            why: "the plausible range of \(ind.code) (\(range))")
            sd = r.number(b, "sd", path: "\(path).baseline", range: 0...1e9) ?? 0
        } else if m["baseline"] == nil {
            r.problem(m.anyNode, "\(path).baseline is missing; add {mean: ..., sd: ...} in \(ind.unit)")
        }
        let drift = r.number(m, "drift_per_month", path: path, range: -1e9...1e9) ?? 0
        let driftSD = r.number(m, "drift_sd", path: path, range: 0...1e9) ?? abs(drift) / 2
        let driftMonths = r.number(m, "drift_months", path: path, range: 0...120)
        let noise = r.number(m, "noise", path: path, range: 0...1e9) ?? 0
        let decimals = r.int(m, "decimals", path: path, range: 0...4) ?? (ind.kind == .score ? 0 : 1)
        var unit = ind.unit, factor = 1.0, offset = 0.0
        if let u = r.string(m, "unit", path: path), u != ind.unit {
            if let c = ind.convert.first(where: { $0.unit == u }) {
                unit = u; factor = c.factor; offset = c.offset
            } else {
                r.problem(m["unit"], "\(path).unit: \"\(u)\" is not accepted for \(ind.code); the catalogue takes \(ind.acceptedUnits.joined(separator: ", "))")
            }
        }
        var excursion: Excursion?
        if let e = r.mapping(m, "excursion", path: path) {
            let epath = "\(path).excursion"
            r.checkKeys(e, allowed: ["per_year", "size", "days"], path: epath)
            if let py = r.number(e, "per_year", path: epath, range: 0...365, required: true),
               let size = r.number(e, "size", path: epath, range: -1e9...1e9, required: true),
               let days = r.number(e, "days", path: epath, range: 1...90, required: true) {
                excursion = Excursion(perYear: py, size: size, days: days)
            }
        }
        let lead = r.number(m, "baseline_before_days", path: path, range: 0...365) ?? 0
        if lead > 0 {
            if every == nil { r.problem(m["baseline_before_days"], "\(path).baseline_before_days goes with every_days (a baseline lab result before enrolment)") }
            if source != .backend { r.problem(m["baseline_before_days"], "\(path).baseline_before_days needs source: backend; a home device does not exist before enrolment") }
        }
        guard r.problems.count == before, let cadence = given.first, let mean else { return nil }
        return IndicatorPlan(code: ind.code, cadence: cadence, source: source, baselineMean: mean, baselineSD: sd,
                             driftPerMonth: drift, driftSD: driftSD, driftMonths: driftMonths, noise: noise,
                             decimals: decimals, unit: unit, factor: factor, offset: offset, range: range, plausible: plausibleRange,
                             excursion: excursion, baselineBeforeDays: lead)
    }
}
