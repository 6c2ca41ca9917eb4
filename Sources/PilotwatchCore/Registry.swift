/// A pilot project from the registry (`config/pilots.yaml`).
///
/// ```yaml
/// - id: resp-copd-idf-01
///   programme: respiratory
///   enrolment_target: 120
/// ```
public struct Pilot: Sendable, Hashable {
    public var id: String
    public var name: String
    public var programme: String
    public var lead: String
    public var call: String
    public var funders: [String]
    public var start: Day
    public var end: Day
    public var enrolmentTarget: Int
    public var milestones: [Milestone]
    /// Indicator codes reported to funders.
    public var outcomes: [String]
    /// The entry's `alerts:` block: thresholds of this pilot's rules that differ from the service's.
    public var alerts: AlertOverrides
    /// The entry's `retention:` block: how long this pilot's data is kept, where it differs.
    public var retention: RetentionOverrides
    /// How the pilot reports to this instance: observations from its devices (the default), or
    /// day-end snapshots from its site instance (federation.md).
    public var reporting: Reporting

    public init(id: String, name: String, programme: String, lead: String, call: String, funders: [String],
                start: Day, end: Day, enrolmentTarget: Int, milestones: [Milestone], outcomes: [String],
                alerts: AlertOverrides = AlertOverrides(), retention: RetentionOverrides = RetentionOverrides(),
                reporting: Reporting = .observations) {
        self.id = id; self.name = name; self.programme = programme; self.lead = lead; self.call = call
        self.funders = funders; self.start = start; self.end = end; self.enrolmentTarget = enrolmentTarget
        self.milestones = milestones; self.outcomes = outcomes; self.alerts = alerts
        self.retention = retention; self.reporting = reporting
    }

    /// The site that reports this pilot's aggregates, or nil when its devices report observations.
    public var site: String? {
        if case .aggregates(let site) = reporting { return site }
        return nil
    }

    /// This pilot's thresholds: `base` (the service's) with the entry's own.
    public func alertThresholds(_ base: AlertThresholds) -> AlertThresholds { alerts.applied(to: base) }
}

/// How a pilot reports (`reporting:` in its registry entry).
///
/// ```yaml
/// - id: hf-nord-02
///   reporting: aggregates
///   site: chu-lille      # the site instance that publishes its snapshots
/// ```
public enum Reporting: Sendable, Hashable {
    /// Devices publish observations to this instance (contract v1; the default).
    case observations
    /// The pilot's site instance publishes day-end snapshots on `{root}/{pilot}/{site}/agg`;
    /// observations for it are refused as `aggregate_pilot`.
    case aggregates(site: String)
}

/// An enrolment milestone: `enrolled` subjects by `date`.
public struct Milestone: Sendable, Hashable {
    public var date: Day
    public var enrolled: Int
    public init(date: Day, enrolled: Int) { self.date = date; self.enrolled = enrolled }
}

/// The pilot registry: every pilot the cluster follows, and the programmes they belong to.
public struct Registry: Sendable {
    public let pilots: [Pilot]
    public let programmes: [String]
    private let byID: [String: Int]

    /// The three programmes every registry knows; a registry may declare more.
    public static let builtInProgrammes = ["respiratory", "diabetes", "cardiac"]

    public init(pilots: [Pilot], programmes: [String] = Registry.builtInProgrammes) {
        self.pilots = pilots
        self.programmes = programmes
        var map: [String: Int] = [:]
        for (i, p) in pilots.enumerated() where map[p.id] == nil { map[p.id] = i }
        self.byID = map
    }

    public func pilot(_ id: some StringProtocol) -> Pilot? {
        byID[String(id)].map { pilots[$0] }
    }
}
