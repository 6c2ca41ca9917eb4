import PilotwatchCore

// The figures of `pilotwatch export`, as one model that every format renders.
//
// The builder (ExportBuilder.swift) fills a `ExportReport` with every figure computed by
// `Metrics`; `Disclosure.apply` (Disclosure.swift) turns it into a `DisclosedReport`, the only
// thing the renderers accept, in which each figure is a `Cell` in one of its states: a value
// (zero included), missing (no subject to stand on) or suppressed (and why).

/// Why a figure is not shown.
public enum Suppression: String, Sendable, Hashable, CaseIterable {
    /// A count between 1 and k-1, shown as `<k`.
    case smallCount = "small_count"
    /// A statistic (or a count of an attribute) computed from fewer than k subjects: withheld.
    case fewSubjects = "few_subjects"
    /// Hidden so that another suppressed figure cannot be worked out from a total, a pooled
    /// figure or an identity.
    case secondary
    /// Not given exactly by the pilot's site (its day-end snapshot has it below its `min_cell`,
    /// held or withheld), or a pooled figure that would need such a part.
    case atSite = "at_site"
}

/// What a figure is, for disclosure control.
public enum CellKind: String, Sendable, Hashable {
    /// A count of subjects, events or messages: 1 to k-1 is suppressed.
    case count
    /// A mean, percentage, change, interval bound, rate or sum over subjects: withheld when it
    /// stands on fewer than k subjects.
    case statistic
    /// A registry fact (a target): not data about anyone, never suppressed.
    case fact
}

/// The state of one figure.
public enum CellState: Sendable, Hashable {
    /// A value; zero is a value.
    case value(Double)
    /// Nothing to compute it on (JSON `null`), never 0.
    case missing
    case suppressed(Suppression)
}

/// One figure of an export.
///
/// ```swift
/// Cell.count(7).state          // .value(7) before disclosure control
/// ```
public struct Cell: Sendable, Hashable {
    public var kind: CellKind
    public var state: CellState

    public init(kind: CellKind, state: CellState) { self.kind = kind; self.state = state }

    public static func count(_ n: Int) -> Cell { Cell(kind: .count, state: .value(Double(n))) }
    public static func statistic(_ v: Double?) -> Cell {
        Cell(kind: .statistic, state: v.flatMap { $0.isFinite ? .value($0) : nil } ?? .missing)
    }
    public static func fact(_ n: Int) -> Cell { Cell(kind: .fact, state: .value(Double(n))) }

    /// The value when shown.
    public var value: Double? {
        if case .value(let v) = state { return v }
        return nil
    }

    public var suppression: Suppression? {
        if case .suppressed(let s) = state { return s }
        return nil
    }

    public var isSuppressed: Bool { suppression != nil }
}

/// The metrics of an export, with the names of `metrics.md` (CSV `metric`, JSON keys).
public enum ExportMetric: String, Sendable, Hashable, CaseIterable, Comparable {
    case enrolled
    case enrolmentTarget = "enrolment_target"
    case enrolmentPct = "enrolment_pct"
    case withdrawn
    case inFollowUp = "in_follow_up"
    case transmissionAdherence = "transmission_adherence"
    /// Enrolments by a milestone's date (qualifier: the date).
    case milestoneEnrolled = "milestone_enrolled"
    /// A milestone's target (qualifier: the date).
    case milestoneTarget = "milestone_target"
    case nPaired = "n_paired"
    case meanBaseline = "mean_baseline"
    case meanLatest = "mean_latest"
    case meanChange = "mean_change"
    case changeCI95Lower = "change_ci95_lower"
    case changeCI95Upper = "change_ci95_upper"
    /// Paired subjects whose latest value is in the target range.
    case inTarget = "in_target"
    case pctInTarget = "pct_in_target"
    /// Paired subjects whose change is strictly in the good direction.
    case improved
    case improvedPct = "improved_pct"
    /// Enrolled subjects with follow-up inside the period (the subjects event rates stand on).
    case subjectsFollowed = "subjects_followed"
    case patientDays = "patient_days"
    case events
    case ratePer100PatientMonths = "rate_per_100_patient_months"
    /// Refused messages received in the period (qualifier: the reason).
    case refused
    case refusedTotal = "refused_total"
    case unenrolledSubjects = "unenrolled_subjects"

    public static func < (a: ExportMetric, b: ExportMetric) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }

    /// The five statistics of an outcome indicator's means, shown or withheld together.
    public static let outcomeMeans: [ExportMetric] = [.meanBaseline, .meanLatest, .meanChange, .changeCI95Lower, .changeCI95Upper]
}

/// A figure's name within a scope: a metric and, for per-indicator, per-reason and
/// per-milestone figures, its qualifier (indicator code, reason code or milestone date).
public struct FigureKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var metric: ExportMetric
    public var qualifier: String?

    public init(_ metric: ExportMetric, _ qualifier: String? = nil) { self.metric = metric; self.qualifier = qualifier }

    public static func < (a: FigureKey, b: FigureKey) -> Bool {
        a.metric != b.metric ? a.metric < b.metric : (a.qualifier ?? "") < (b.qualifier ?? "")
    }

    public var description: String { qualifier.map { "\(metric.rawValue)[\($0)]" } ?? metric.rawValue }
}

/// A pilot, or a programme pooled over the selected pilots.
public enum ScopeLevel: String, Sendable, Hashable {
    case pilot, programme
}

/// An outcome or event indicator as the report describes it.
public struct ExportIndicator: Sendable, Hashable {
    public var code: String
    public var name: String
    public var kind: IndicatorKind
    /// UCUM code of the catalogue unit.
    public var unit: String
    public var direction: Direction
    public var target: ValueRange?
    public var windows: OutcomeWindows
    public var loinc: String?

    public init(_ i: Indicator) {
        code = i.code; name = i.name; kind = i.kind; unit = i.unit; direction = i.direction
        target = i.target; windows = i.windows; loinc = i.loinc
    }
}

/// A milestone of a pilot, with where it stands (its enrolment count is the figure
/// `milestone_enrolled[date]`).
public struct ExportMilestone: Sendable, Hashable {
    public var date: Day
    public var target: Int
    public var state: MilestoneState
    /// Enrolments counted up to the end of the date, or up to `T` if earlier.
    public var cutoff: Instant
}

/// Cumulative enrolment at an instant, for the enrolment chart.
public struct EnrolmentPoint: Sendable, Hashable {
    public var day: Day
    /// Enrolments at or before this instant (the end of `day`, or `T`).
    public var at: Instant
    public var enrolled: Int
    public init(day: Day, at: Instant, enrolled: Int) { self.day = day; self.at = at; self.enrolled = enrolled }
}

/// The snapshot a pilot's figures were computed from (federation.md: exports name each
/// aggregate pilot's snapshot), or the archive of an ended pilot's final figures.
public struct ExportSource: Sendable, Hashable {
    /// Its day end; nil when there is none at or before `T` (every figure suppressed).
    public var asOf: Instant?
    public var revision: Int64
    public var minCell: Int
    /// The archive of an ended pilot (its raw rows are purged), not a site's snapshot.
    public var archived: Bool
    /// A site's snapshot more than a day plus the grace older than the export's `T` (the site,
    /// not the pilot, may be the cause).
    public var stale: Bool

    public init(asOf: Instant?, revision: Int64, minCell: Int, archived: Bool, stale: Bool = false) {
        self.asOf = asOf; self.revision = revision; self.minCell = minCell; self.archived = archived; self.stale = stale
    }

    /// `from its site's snapshot as of 2026-09-30T23:59:59.999Z (revision 17, min_cell 11)`.
    public var text: String {
        guard let asOf else { return "reports aggregates; no snapshot from its site at or before the export's as-of: every figure withheld" }
        if archived { return "ended; figures from its archive as of \(asOf) (its raw rows are purged)" }
        return "from its site's day-end snapshot as of \(asOf) (revision \(revision), min_cell \(minCell))" + (stale ? ", stale" : "")
    }
}

/// The figures of one pilot, or of one programme pooled over the selected pilots.
public struct ExportScope: Sendable {
    public var level: ScopeLevel
    /// The pilot id, or the programme name.
    public var id: String
    public var programme: String
    /// Registry facts (pilots only).
    public var pilot: Pilot?
    /// The pilots pooled (programmes only), in registry order.
    public var pilots: [String]
    /// Start of the period of events and refusals; nil: the whole life up to `T`.
    public var periodStart: Instant?
    /// `on_track` (pilots only); nil for a programme.
    public var onTrack: Bool?
    public var milestones: [ExportMilestone]
    /// Outcome indicators (measurements and scores), in the registry's order.
    public var outcomes: [ExportIndicator]
    /// Event indicators, in the registry's order.
    public var events: [ExportIndicator]
    /// Refusal reasons reported (those with a refusal in any pilot of the programme), sorted.
    public var reasons: [ReasonCode]
    public var figures: [FigureKey: Cell]
    /// Cumulative enrolment by week, from the pilot's start to `T` (before disclosure control:
    /// every week; after: only the points that may be published).
    public var enrolmentSeries: [EnrolmentPoint]
    /// Where a pilot's figures come from when not from its rows: its day-end snapshot, or the
    /// archive of an ended pilot.
    public var source: ExportSource?
    /// A programme's pilots whose snapshot lacks a part of a pooled figure (those figures are
    /// suppressed `at_site`).
    public var partsNotGivenBy: [String] = []

    public init(level: ScopeLevel, id: String, programme: String, pilot: Pilot?, pilots: [String], periodStart: Instant?,
                onTrack: Bool?, milestones: [ExportMilestone], outcomes: [ExportIndicator], events: [ExportIndicator],
                reasons: [ReasonCode], figures: [FigureKey: Cell], enrolmentSeries: [EnrolmentPoint], source: ExportSource? = nil) {
        self.level = level; self.id = id; self.programme = programme; self.pilot = pilot; self.pilots = pilots
        self.periodStart = periodStart; self.onTrack = onTrack; self.milestones = milestones; self.outcomes = outcomes
        self.events = events; self.reasons = reasons; self.figures = figures; self.enrolmentSeries = enrolmentSeries
        self.source = source
    }

    public subscript(_ metric: ExportMetric, _ qualifier: String? = nil) -> Cell {
        figures[FigureKey(metric, qualifier)] ?? Cell(kind: .statistic, state: .missing)
    }

    /// The figure a figure stands on (the CSV `n` column): the subjects of a statistic or of
    /// a count of an attribute; nil for counts of people and facts.
    public static func basis(of key: FigureKey) -> FigureKey? {
        switch key.metric {
        case .enrolmentPct: return FigureKey(.enrolled)
        case .transmissionAdherence: return FigureKey(.inFollowUp)
        case .meanBaseline, .meanLatest, .meanChange, .changeCI95Lower, .changeCI95Upper, .inTarget, .pctInTarget,
             .improved, .improvedPct:
            return FigureKey(.nPaired, key.qualifier)
        case .patientDays, .events, .ratePer100PatientMonths: return FigureKey(.subjectsFollowed)
        default: return nil
        }
    }
}

/// Which pilots an export covers, as asked on the command line.
public struct ExportSelection: Sendable, Hashable {
    public var pilots: [String]
    public var programme: String?
    public var funder: String?
    public var call: String?

    public init(pilots: [String] = [], programme: String? = nil, funder: String? = nil, call: String? = nil) {
        self.pilots = pilots; self.programme = programme; self.funder = funder; self.call = call
    }

    /// The pilots of `registry` selected, in registry order: those named (all when none is),
    /// then kept only if they match every filter given.
    public func apply(to registry: Registry) -> [Pilot] {
        let named = Set(pilots)
        return registry.pilots.filter { p in
            (named.isEmpty || named.contains(p.id))
                && programme.map { p.programme == $0 } ?? true
                && funder.map { p.funders.contains($0) } ?? true
                && call.map { p.call == $0 } ?? true
        }
    }

    /// How the selection reads in a report: `all pilots`, `programme respiratory, funder feder-idf`.
    public var summary: String {
        var parts: [String] = []
        if !pilots.isEmpty { parts.append("pilots " + pilots.joined(separator: ", ")) }
        if let programme { parts.append("programme " + programme) }
        if let funder { parts.append("funder " + funder) }
        if let call { parts.append("call " + call) }
        return parts.isEmpty ? "all pilots" : parts.joined(separator: "; ")
    }
}

/// Where an export comes from: enough to reproduce it.
public struct ExportProvenance: Sendable, Hashable {
    public var pilotwatchVersion: String
    /// `sha256:` and 64 hex digits (see ``ExportFingerprint``).
    public var databaseFingerprint: String
    /// The generation time printed in the report: `--generated-at`, by default `T`.
    public var generatedAt: Instant

    public init(pilotwatchVersion: String, databaseFingerprint: String, generatedAt: Instant) {
        self.pilotwatchVersion = pilotwatchVersion; self.databaseFingerprint = databaseFingerprint
        self.generatedAt = generatedAt
    }
}

/// Every figure of an export before disclosure control.
public struct ExportReport: Sendable {
    public var asOf: Instant
    /// `--from`; nil: each pilot's whole life up to `T`.
    public var periodStart: Instant?
    public var selection: ExportSelection
    public var provenance: ExportProvenance
    /// Programmes in registry order, each followed in ``pilots`` by its pilots.
    public var programmes: [ExportScope]
    public var pilots: [ExportScope]

    public init(asOf: Instant, periodStart: Instant?, selection: ExportSelection, provenance: ExportProvenance,
                programmes: [ExportScope], pilots: [ExportScope]) {
        self.asOf = asOf; self.periodStart = periodStart; self.selection = selection; self.provenance = provenance
        self.programmes = programmes; self.pilots = pilots
    }

    /// The selected pilots of a programme, in order.
    public func pilots(of programme: String) -> [ExportScope] { pilots.filter { $0.programme == programme } }
}

/// An export after disclosure control: what every renderer takes. Only ``Disclosure/apply(_:k:)``
/// makes one, so no renderer can print a figure that did not go through it.
public struct DisclosedReport: Sendable {
    public let report: ExportReport
    /// The threshold: counts of 1 to k-1 are suppressed, statistics on fewer than k subjects withheld.
    public let k: Int
    /// How many figures were suppressed, by reason.
    public let suppressedCounts: [Suppression: Int]

    init(report: ExportReport, k: Int, suppressedCounts: [Suppression: Int]) {
        self.report = report; self.k = k; self.suppressedCounts = suppressedCounts
    }

    /// Every scope: each programme followed by its pilots.
    public var scopesInOrder: [ExportScope] {
        report.programmes.flatMap { [$0] + report.pilots(of: $0.id) }
    }
}
