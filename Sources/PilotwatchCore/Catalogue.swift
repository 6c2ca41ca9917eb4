/// What an indicator is: a measured value, a questionnaire score, or an event.
public enum IndicatorKind: String, Sendable, Codable, CaseIterable {
    case measurement, score, event
}

/// Which way is good for an outcome.
public enum Direction: String, Sendable, Codable, CaseIterable {
    case higher, lower, stable
}

/// Whether an indicator is reported about a subject (the default) or about the pilot as a whole.
public enum IndicatorLevel: String, Sendable, Codable, CaseIterable {
    case subject, pilot
}

/// A closed numeric interval `[min, max]`.
public struct ValueRange: Sendable, Hashable, Codable, CustomStringConvertible {
    public var min: Double
    public var max: Double
    public init(min: Double, max: Double) { self.min = min; self.max = max }
    public func contains(_ v: Double) -> Bool { v >= min && v <= max }
    public var description: String { "\(formatNumber(min))..\(formatNumber(max))" }
}

/// A unit the catalogue converts from: `canonical = value * factor + offset`.
public struct UnitConversion: Sendable, Hashable {
    public var unit: String
    public var factor: Double
    public var offset: Double
    public init(unit: String, factor: Double, offset: Double = 0) { self.unit = unit; self.factor = factor; self.offset = offset }
}

/// Windows of the outcome metrics, in days (metrics.md defaults: 30, 14, 60).
public struct OutcomeWindows: Sendable, Hashable {
    public var baselineBeforeDays: Double
    public var baselineAfterDays: Double
    public var followUpDays: Double
    public static let standard = OutcomeWindows(baselineBeforeDays: 30, baselineAfterDays: 14, followUpDays: 60)
    public init(baselineBeforeDays: Double, baselineAfterDays: Double, followUpDays: Double) {
        self.baselineBeforeDays = baselineBeforeDays
        self.baselineAfterDays = baselineAfterDays
        self.followUpDays = followUpDays
    }
}

/// One entry of the indicator catalogue (`config/indicators.yaml`).
public struct Indicator: Sendable, Hashable {
    public var code: String
    public var name: String
    public var loinc: String?
    public var kind: IndicatorKind
    /// UCUM code of the stored unit (`1` for events).
    public var unit: String
    /// Plausible range in `unit`; values outside are refused as `out_of_range`.
    public var range: ValueRange?
    public var programmes: [String]
    public var direction: Direction
    public var target: ValueRange?
    public var convert: [UnitConversion]
    public var level: IndicatorLevel
    public var windows: OutcomeWindows

    public init(code: String, name: String, loinc: String? = nil, kind: IndicatorKind, unit: String,
                range: ValueRange?, programmes: [String], direction: Direction, target: ValueRange? = nil,
                convert: [UnitConversion] = [], level: IndicatorLevel = .subject, windows: OutcomeWindows = .standard) {
        self.code = code; self.name = name; self.loinc = loinc; self.kind = kind; self.unit = unit
        self.range = range; self.programmes = programmes; self.direction = direction; self.target = target
        self.convert = convert; self.level = level; self.windows = windows
    }

    /// Converts `value` given in `unit` to the catalogue unit; nil when the unit is not accepted.
    public func canonical(_ value: Double, unit given: String) -> Double? {
        if given == unit { return value }
        guard let c = convert.first(where: { $0.unit == given }) else { return nil }
        return value * c.factor + c.offset
    }

    /// The units a message may use for this indicator, the catalogue's first.
    public var acceptedUnits: [String] { [unit] + convert.map(\.unit) }
}

/// The indicator catalogue.
public struct Catalogue: Sendable {
    public let indicators: [Indicator]
    private let byCode: [String: Int]

    /// Events that every catalogue must define, because metrics are built on them.
    public static let requiredEvents = ["enrolled", "withdrawn"]

    public init(indicators: [Indicator]) {
        self.indicators = indicators
        var map: [String: Int] = [:]
        for (i, ind) in indicators.enumerated() where map[ind.code] == nil { map[ind.code] = i }
        byCode = map
    }

    public func indicator(_ code: some StringProtocol) -> Indicator? {
        byCode[String(code)].map { indicators[$0] }
    }
}

/// Formats a number without a trailing `.0`: `140`, `3.9`, `0.0555`.
public func formatNumber(_ v: Double) -> String {
    if v.isFinite, v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(v)
}
