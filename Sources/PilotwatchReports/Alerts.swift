import PilotwatchCore
import PilotwatchStore

/// A pilot rule's mark in the views: `flags` in JSON, a letter in the status table.
public typealias AttentionFlag = AlertRule

extension AlertRule {
    /// The one-letter code of the status table.
    public var letter: String {
        switch self {
        case .behindTarget: return "B"
        case .missedMilestone: return "M"
        case .silent: return "S"
        case .lowActivity: return "A"
        case .lowAdherence: return "T"
        case .devicesSilent: return "D"
        case .lowBattery: return "L"
        case .refusals: return "R"
        case .unenrolledSubjects: return "U"
        case .ingestStopped: return "I"
        case .brokerDisconnected: return "N"
        case .backlog: return "K"
        case .quarantineGrowing: return "Q"
        }
    }

    /// What the rule means with thresholds `t`, for the table's legend and the alert list.
    public func meaning(_ t: AlertThresholds = .defaults) -> String {
        switch self {
        case .behindTarget: return "behind target"
        case .missedMilestone: return "milestone missed"
        case .silent: return "silent >\(Graphics.number(t.silentHours))h"
        case .lowActivity: return "active 7d <\(Graphics.number(t.lowActivityPct))% of follow-up"
        case .lowAdherence: return "adherence <\(Graphics.number(t.lowAdherencePct))%"
        case .devicesSilent: return "≥\(Graphics.number(t.devicesSilentSharePct))% devices silent"
        case .lowBattery: return "≥\(Graphics.number(t.lowBatterySharePct))% devices battery <\(Graphics.number(t.lowBatteryPct))%"
        case .refusals: return "refusals >\(Graphics.number(t.refusalRatePct))% (7d)"
        case .unenrolledSubjects: return "unenrolled subjects"
        case .ingestStopped: return "ingest stopped"
        case .brokerDisconnected: return "broker disconnected"
        case .backlog: return "inbox backlog above its limit"
        case .quarantineGrowing: return "quarantine >\(t.quarantinePerHour)/h"
        }
    }
}

/// A pilot's devices as the device rules see them.
public struct DeviceCounts: Sendable, Hashable {
    public var total = 0
    /// No message for `silent_hours` up to `T`.
    public var silent = 0
    /// Last reported battery below `low_battery_pct`.
    public var lowBattery = 0

    public init() {}

    /// A device silent for longer than this is retired (its patient left, say): it counts neither
    /// as silent nor in the pilot's devices.
    public static let retiredAfterDays = 30.0

    public init(_ devices: [DeviceRecord], thresholds t: AlertThresholds, asOf: Instant) {
        self.init(signs: devices.map(\.signs), thresholds: t, asOf: asOf)
    }

    public init(signs devices: [DeviceSigns], thresholds t: AlertThresholds, asOf: Instant) {
        let quietSince = asOf.adding(millis: -Int64(t.silentHours * 3_600_000))
        let retiredBefore = asOf.adding(days: -Self.retiredAfterDays)
        for d in devices where d.firstSeen <= asOf {
            if Self.lastSign(d) < retiredBefore { continue }
            total += 1
            if Self.isSilent(d, quietSince: quietSince) { silent += 1 }
            if let b = d.batteryPct, b < t.lowBatteryPct { lowBattery += 1 }
        }
    }

    /// When the device was last heard of: its last message, or the time its last status said it
    /// went offline when that is earlier (a back-end that relays a dead fleet's last statuses
    /// still sends messages; the devices do not).
    static func lastSign(_ d: DeviceSigns) -> Instant {
        if d.statusState == .offline, let at = d.statusAt, at < d.lastSeen { return at }
        return d.lastSeen
    }

    /// A device is silent when it was last heard of at or before `quietSince`.
    public static func isSilent(_ d: DeviceSigns, quietSince: Instant) -> Bool {
        lastSign(d) <= quietSince
    }

    public static func isSilent(_ d: DeviceRecord, quietSince: Instant) -> Bool {
        isSilent(d.signs, quietSince: quietSince)
    }
}

/// The alert rules, evaluated from the views' own figures (``Metrics`` through ``Dashboard``):
/// a pilot's conditions are the flags of its `status` row, so a view and an alert never disagree.
public enum AlertEvaluator {
    /// The conditions that hold for one pilot at `t`. None before the pilot's start or after its
    /// end: a pilot not running is not a pilot to chase.
    public static func pilot(_ pilot: Pilot, figures f: PilotFigures, milestones: [MilestoneProgress],
                             lastWeek: MessageCounts, refusalRate: Double?, devices: DeviceCounts,
                             thresholds t: AlertThresholds, asOf: Instant) -> [AlertCondition] {
        guard pilot.start <= asOf.day, asOf.day <= pilot.end else { return [] }
        var out: [AlertCondition] = []
        func add(_ rule: AlertRule, _ values: [(String, JSONValue)], _ message: String) {
            guard t.isOn(rule) else { return }
            out.append(AlertCondition(rule: rule, target: pilot.id, values: JSONObject(values), message: message))
        }
        if !f.onTrack {
            add(.behindTarget, [("enrolled", .int(f.enrolled)), ("enrolment_target", .int(f.enrolmentTarget)),
                                ("enrolment_rate_30d", .double(f.enrolmentRate30d)),
                                ("projected_target_date", f.projectedTargetDate.map { .string($0.description) } ?? .null),
                                ("end", .string(pilot.end.description))],
                "\(f.enrolled) of \(f.enrolmentTarget) enrolled; " + (f.projectedTargetDate.map { "target projected for \($0), after the end \(pilot.end)" }
                    ?? "no enrolment in 30 days, the target cannot be projected"))
        }
        if let missed = milestones.last(where: { $0.milestone.date < asOf.day }), missed.state == .missed {
            add(.missedMilestone, [("milestone_date", .string(missed.milestone.date.description)),
                                   ("milestone_enrolled", .int(missed.milestone.enrolled)), ("enrolled_by_then", .int(missed.enrolled))],
                "milestone of \(missed.milestone.date) missed: \(missed.enrolled) of \(missed.milestone.enrolled) enrolled by then")
        }
        let quietSince = asOf.adding(millis: -Int64(t.silentHours * 3_600_000))
        if f.lastObservationAt.map({ $0 <= quietSince }) ?? true {
            add(.silent, [("last_observation_at", f.lastObservationAt.map { .string($0.description) } ?? .null),
                          ("silent_hours", .double(t.silentHours))],
                f.lastObservationAt.map { "no measurement since \(Graphics.minute($0)) UTC (over \(Graphics.number(t.silentHours)) h)" }
                    ?? "no measurement yet")
        }
        if f.inFollowUp > 0, Double(f.active7d) < Double(f.inFollowUp) * t.lowActivityPct / 100 {
            add(.lowActivity, [("active_7d", .int(f.active7d)), ("in_follow_up", .int(f.inFollowUp)),
                               ("threshold_pct", .double(t.lowActivityPct))],
                "\(f.active7d) of \(f.inFollowUp) in follow-up active in 7 days (below \(Graphics.number(t.lowActivityPct))%)")
        }
        if let a = f.transmissionAdherence, a < t.lowAdherencePct {
            add(.lowAdherence, [("transmission_adherence", .double(a)), ("threshold_pct", .double(t.lowAdherencePct))],
                "transmission adherence \(Graphics.percent(a)) (below \(Graphics.number(t.lowAdherencePct))%)")
        }
        if devices.total > 0, Double(devices.silent) >= Double(devices.total) * t.devicesSilentSharePct / 100, devices.silent > 0 {
            add(.devicesSilent, [("devices", .int(devices.total)), ("silent", .int(devices.silent)),
                                 ("silent_hours", .double(t.silentHours)), ("threshold_pct", .double(t.devicesSilentSharePct))],
                "\(devices.silent) of \(devices.total) devices silent for over \(Graphics.number(t.silentHours)) h")
        }
        if devices.total > 0, Double(devices.lowBattery) >= Double(devices.total) * t.lowBatterySharePct / 100, devices.lowBattery > 0 {
            add(.lowBattery, [("devices", .int(devices.total)), ("low_battery", .int(devices.lowBattery)),
                              ("battery_below_pct", .double(t.lowBatteryPct)), ("threshold_pct", .double(t.lowBatterySharePct))],
                "\(devices.lowBattery) of \(devices.total) devices report a battery below \(Graphics.number(t.lowBatteryPct))%")
        }
        if let rate = refusalRate, rate > t.refusalRatePct {
            add(.refusals, [("refused_7d", .int(lastWeek.refused)), ("received_7d", .int(lastWeek.received)),
                            ("refusal_rate_7d", .double(rate)), ("threshold_pct", .double(t.refusalRatePct))],
                "\(lastWeek.refused) of \(lastWeek.received) messages refused in 7 days (\(Graphics.percent(rate)))")
        }
        if f.unenrolledSubjects >= t.unenrolledSubjects {
            add(.unenrolledSubjects, [("unenrolled_subjects", .int(f.unenrolledSubjects))],
                "\(f.unenrolledSubjects) subject\(f.unenrolledSubjects == 1 ? "" : "s") send data with no enrolment")
        }
        return out
    }

    /// The service's own conditions at `now`: ingest from the heartbeat (as the views tell it),
    /// the backlog against `backlogLimit` bytes (``AlertThresholds/backlogMiB`` when set), and the
    /// messages refused in the last hour.
    public static func service(health: IngestHealth, backlogLimit: Int64, refusedLastHour: Int,
                               thresholds t: AlertThresholds) -> [AlertCondition] {
        var out: [AlertCondition] = []
        func add(_ rule: AlertRule, _ values: [(String, JSONValue)], _ message: String) {
            guard t.isOn(rule) else { return }
            out.append(AlertCondition(rule: rule, target: AlertRule.service, values: JSONObject(values), message: message))
        }
        switch health.state {
        case .stopped:
            add(.ingestStopped, [("since", health.since.map { .string($0.description) } ?? .null),
                                 ("last_beat", health.heartbeat.map { .string($0.beatAt.description) } ?? .null)],
                health.since.map { "ingest stopped since \(Graphics.minute($0)) UTC" } ?? "serve never ran on this store")
        case .disconnected:
            add(.brokerDisconnected, [("since", health.since.map { .string($0.description) } ?? .null)],
                "broker disconnected since \(Graphics.minute(health.since)) UTC")
        case .running:
            break
        }
        let limit = t.backlogMiB.map { Int64($0) << 20 } ?? backlogLimit
        if let h = health.heartbeat, health.state != .stopped, h.backlogBytes > limit {
            add(.backlog, [("backlog_bytes", .int(Int(h.backlogBytes))), ("limit_bytes", .int(Int(limit))),
                           ("apply_lag_seconds", .double(Double(h.applyLagMillis) / 1000))],
                "\(h.backlogBytes >> 20) MiB wait in the inbox (limit \(limit >> 20) MiB) for \(IngestHealth.duration(h.applyLagMillis))")
        }
        if refusedLastHour > t.quarantinePerHour {
            add(.quarantineGrowing, [("refused_last_hour", .int(refusedLastHour)), ("threshold", .int(t.quarantinePerHour))],
                "\(refusedLastHour) messages refused in the last hour (threshold \(t.quarantinePerHour))")
        }
        return out
    }
}

extension JSONValue {
    static func int(_ v: Int) -> JSONValue { .number(JSONNumber(v)) }
    static func double(_ v: Double) -> JSONValue { JSONNumber(v).map(JSONValue.number) ?? .null }
}
