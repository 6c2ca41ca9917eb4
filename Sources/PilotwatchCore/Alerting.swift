internal import Yams

/// An alert rule: a pilot's (the flags of `status`) or the service's own.
///
/// The raw value is the rule's name in JSON, CSV, the alert topics
/// (`{root}/_cluster/alerts/{rule}/{pilot or "service"}`) and the `alerts:` settings.
public enum AlertRule: String, Sendable, Hashable, CaseIterable, Comparable {
    // A pilot's.
    case behindTarget = "behind_target"
    case missedMilestone = "missed_milestone"
    case silent
    case lowActivity = "low_activity"
    case lowAdherence = "low_adherence"
    case devicesSilent = "devices_silent"
    case lowBattery = "low_battery"
    case refusals = "refusal_rate"
    case unenrolledSubjects = "unenrolled_subjects"
    // The service's own.
    case ingestStopped = "ingest_stopped"
    case brokerDisconnected = "broker_disconnected"
    case backlog = "backlog_high"
    case quarantineGrowing = "quarantine_growing"

    /// The target of a service rule's alert (in place of a pilot id).
    public static let service = "service"

    public var isServiceRule: Bool {
        switch self {
        case .ingestStopped, .brokerDisconnected, .backlog, .quarantineGrowing: return true
        default: return false
        }
    }

    public static var pilotRules: [AlertRule] { allCases.filter { !$0.isServiceRule } }
    public static var serviceRules: [AlertRule] { allCases.filter(\.isServiceRule) }

    public static func < (a: AlertRule, b: AlertRule) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The thresholds of the alert rules. Defaults here; `pilotwatch.yaml` (`alerts:`) overrides
/// them for every pilot, and a pilot's registry entry (`alerts:`) for that pilot.
///
/// ```yaml
/// alerts: {silent_hours: 72, low_adherence_pct: 50, off: [unenrolled_subjects]}
/// ```
public struct AlertThresholds: Sendable, Hashable {
    /// `silent`: no measurement or score for this long; also when a device counts as silent.
    public var silentHours: Double = 48
    /// `low_activity`: active in 7 days below this share of those in follow-up.
    public var lowActivityPct: Double = 50
    /// `low_adherence`: transmission adherence below this.
    public var lowAdherencePct: Double = 60
    /// `devices_silent`: at least this share of the pilot's devices silent for `silentHours`.
    public var devicesSilentSharePct: Double = 20
    /// `low_battery`: a device whose last battery level is below this counts as low...
    public var lowBatteryPct: Double = 20
    /// ... and the rule is raised when at least this share of the pilot's devices are.
    public var lowBatterySharePct: Double = 20
    /// `refusal_rate`: refused among received messages over 7 days above this.
    public var refusalRatePct: Double = 5
    /// `unenrolled_subjects`: at least this many subjects send data with no enrolment.
    public var unenrolledSubjects: Int = 1
    /// Service: `ingest_stopped` and `broker_disconnected` after this many seconds.
    public var ingestStaleSeconds: Double = 120
    /// Service: `backlog_high` above this many MiB in the inbox (nil: serve's --max-backlog).
    public var backlogMiB: Int? = nil
    /// Service: `quarantine_growing` when more messages than this were refused in the last hour.
    public var quarantinePerHour: Int = 1000
    /// Rules switched off.
    public var off: Set<AlertRule> = []

    public init() {}

    public static let defaults = AlertThresholds()

    public func isOn(_ rule: AlertRule) -> Bool { !off.contains(rule) }
}

/// A partial ``AlertThresholds``: what one `alerts:` block sets.
public struct AlertOverrides: Sendable, Hashable {
    var values: [String: Double] = [:]
    var off: Set<AlertRule>?

    public init() {}

    public var isEmpty: Bool { values.isEmpty && off == nil }

    /// `base` with what this block sets.
    public func applied(to base: AlertThresholds) -> AlertThresholds {
        var t = base
        for (key, v) in values {
            switch key {
            case "silent_hours": t.silentHours = v
            case "low_activity_pct": t.lowActivityPct = v
            case "low_adherence_pct": t.lowAdherencePct = v
            case "devices_silent_share_pct": t.devicesSilentSharePct = v
            case "low_battery_pct": t.lowBatteryPct = v
            case "low_battery_share_pct": t.lowBatterySharePct = v
            case "refusal_rate_pct": t.refusalRatePct = v
            case "unenrolled_subjects": t.unenrolledSubjects = Int(v)
            case "ingest_stale_seconds": t.ingestStaleSeconds = v
            case "backlog_mib": t.backlogMiB = Int(v)
            case "quarantine_per_hour": t.quarantinePerHour = Int(v)
            default: break
            }
        }
        if let off { t.off = off }
        return t
    }

    /// Threshold keys, what each takes, and whether a pilot's entry may set it.
    static let keys: [(key: String, range: ClosedRange<Double>, whole: Bool, perPilot: Bool)] = [
        ("silent_hours", 1...8760, false, true),
        ("low_activity_pct", 0...100, false, true),
        ("low_adherence_pct", 0...100, false, true),
        ("devices_silent_share_pct", 0...100, false, true),
        ("low_battery_pct", 0...100, false, true),
        ("low_battery_share_pct", 0...100, false, true),
        ("refusal_rate_pct", 0...100, false, true),
        ("unenrolled_subjects", 1...10_000_000, true, true),
        ("ingest_stale_seconds", 10...86_400, false, false),
        ("backlog_mib", 1...1_048_576, true, false),
        ("quarantine_per_hour", 1...100_000_000, true, false),
    ]

    /// Reads the threshold keys of `map` (and `off`), reporting every problem with its line.
    /// `extra` are the other keys the block may hold (read by the caller).
    static func read(_ r: inout YAMLReader, _ map: Node.Mapping, path: String, perPilot: Bool, extra: [String]) -> AlertOverrides {
        let usable = keys.filter { perPilot ? $0.perPilot : true }
        r.checkKeys(map, allowed: usable.map(\.key) + ["off"] + extra, path: path)
        var o = AlertOverrides()
        for k in usable {
            guard let node = map[k.key] else { continue }
            guard let v = r.double(node, path: "\(path).\(k.key)") else { continue }
            if k.whole && v != v.rounded() { r.problem(node, "\(path).\(k.key): \(r.quoted(node)) must be a whole number"); continue }
            if !k.range.contains(v) {
                r.problem(node, "\(path).\(k.key): \(r.quoted(node)) is outside \(Int(k.range.lowerBound))...\(Int(k.range.upperBound))")
                continue
            }
            o.values[k.key] = v
        }
        if map["off"] != nil, let names = r.strings(map, "off", path: path, required: false) {
            var off: Set<AlertRule> = []
            let allowed = perPilot ? AlertRule.pilotRules : AlertRule.allCases
            for name in names {
                if let rule = AlertRule(rawValue: name), allowed.contains(rule) {
                    off.insert(rule)
                } else {
                    let hint = closest(name, in: allowed.map(\.rawValue)).map { " (did you mean \($0)?)" } ?? ""
                    r.problem(map["off"], "\(path).off: \"\(name)\" is not a rule\(perPilot ? " of a pilot" : "")\(hint); rules are \(allowed.map(\.rawValue).joined(separator: ", "))")
                }
            }
            o.off = off
        }
        return o
    }
}

/// The `alerts:` block of `pilotwatch.yaml`: thresholds for every pilot and the service, how
/// often `serve` evaluates the rules, and the optional command run on each transition.
///
/// ```yaml
/// alerts:
///   every: 60
///   command: [/usr/local/bin/page-oncall, --team, cluster]
///   command_timeout: 10
///   low_adherence_pct: 55
///   off: [unenrolled_subjects]
/// ```
public struct AlertSettings: Sendable, Hashable {
    public var thresholds = AlertThresholds()
    /// Seconds between two evaluations in `serve`.
    public var every: Double = 60
    /// argv (not a shell) run on each raise and clear; alert fields in `PILOTWATCH_ALERT_*`.
    public var command: [String]? = nil
    /// Seconds the command may run before it is stopped (and retried at the next evaluation).
    public var commandTimeout: Double = 10

    public init() {}

    static func read(_ r: inout YAMLReader, _ node: Node, folder: String) -> AlertSettings {
        var s = AlertSettings()
        guard case .mapping(let m) = node else {
            r.problem(node, "alerts must be a mapping, such as {every: 60, low_adherence_pct: 55}")
            return s
        }
        s.thresholds = AlertOverrides.read(&r, m, path: "alerts", perPilot: false,
                                           extra: ["every", "command", "command_timeout"]).applied(to: s.thresholds)
        if let n = m["every"], let v = r.double(n, path: "alerts.every") {
            if (5...3600).contains(v) { s.every = v } else { r.problem(n, "alerts.every: \(r.quoted(n)) is outside 5...3600 (seconds)") }
        }
        if let n = m["command_timeout"], let v = r.double(n, path: "alerts.command_timeout") {
            if (1...600).contains(v) { s.commandTimeout = v } else { r.problem(n, "alerts.command_timeout: \(r.quoted(n)) is outside 1...600 (seconds)") }
        }
        if m["command"] != nil, let argv = r.strings(m, "command", path: "alerts", required: false) {
            if argv.isEmpty {
                r.problem(m["command"], "alerts.command: give the program and its arguments as a list, such as [/usr/local/bin/notify, --team, ops]")
            } else {
                s.command = [ConfigPath.resolve(argv[0], against: folder)] + argv.dropFirst()
                if !argv[0].contains("/") {
                    r.problem(m["command"], "alerts.command: \"\(argv[0])\" must be a path (no shell and no PATH lookup run it), such as /usr/local/bin/\(argv[0])")
                }
            }
        }
        return s
    }
}

/// A rule's condition holding now for one pilot or the service: what would raise an alert (or
/// keeps one raised), with the values that make it hold.
public struct AlertCondition: Sendable, Hashable {
    public var rule: AlertRule
    /// The pilot id, or ``AlertRule/service``.
    public var target: String
    /// What made it hold (figures and their thresholds), as a JSON object.
    public var values: JSONObject
    /// One line for a person.
    public var message: String

    public init(rule: AlertRule, target: String, values: JSONObject, message: String) {
        self.rule = rule; self.target = target; self.values = values; self.message = message
    }

    public var key: AlertKey { AlertKey(rule: rule, target: target) }
}

/// What identifies an alert: its rule and its pilot (or the service).
public struct AlertKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var rule: AlertRule
    public var target: String
    public init(rule: AlertRule, target: String) { self.rule = rule; self.target = target }
    public static func < (a: AlertKey, b: AlertKey) -> Bool { (a.target, a.rule) < (b.target, b.rule) }
    public var description: String { "\(rule.rawValue)/\(target)" }
}
