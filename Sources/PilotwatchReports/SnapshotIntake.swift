import PilotwatchCore

/// The cluster's reading of a snapshot payload (contract 1.1), for the validator: the strict
/// schema (``SnapshotParser``), the `pilot` field against the topic's pilot (`pilot_mismatch`),
/// and the registry echo against the cluster's registry entry and catalogue
/// (`registry_mismatch`, naming the first difference).
///
/// ```swift
/// let validator = ContractValidator(registry: registry, catalogue: catalogue, snapshots: SnapshotIntake())
/// // pilots/hf-nord-02/chu-lille/agg with enrolment_target 150 where the cluster says 120:
/// // registry_mismatch: registry.enrolment_target: 150 is not the cluster's 120 for pilot hf-nord-02
/// ```
public struct SnapshotIntake: SnapshotChecking {
    public init() {}

    public var fieldNames: Set<String> { Self.fieldNames }

    /// Every field name of federation.md's snapshot message (and the reason codes that key
    /// `quality.refused`). SnapshotIntakeTests checks that a built snapshot uses no other.
    static let fieldNames: Set<String> = Set([
        "msg_id", "kind", "pilot", "as_of", "revision", "metrics_version", "min_cell", "registry", "enrolment", "activity",
        "outcomes", "events", "devices", "quality", "last_observation_at",
        "start", "end", "enrolment_target", "milestones", "date", "enrolled", "indicator", "unit", "target", "min", "max",
        "windows", "baseline_before_days", "baseline_after_days", "follow_up_days",
        "withdrawn", "in_follow_up", "enrolled_30d", "curve", "active_7d", "adherence_sum", "adherence_n", "weekly",
        "n_paired", "sum_baseline", "sum_latest", "sum_change", "m2_change", "in_target", "improved", "patient_days",
        "seen", "silent_48h", "battery_low", "messages_7d", "refusals_7d",
        "messages", "accepted", "refused", "duplicate_messages", "duplicate_observations", "unenrolled_subjects",
        "lt", "value", "held_since",
    ] + ReasonCode.allCases.map(\.rawValue))

    public func check(_ payload: [UInt8], pilot: Pilot, site: String, catalogue: Catalogue) throws(Refusal) -> SnapshotReceipt {
        let snapshot = try SnapshotParser.parse(payload)
        guard snapshot.pilot == pilot.id else {
            throw Refusal(.pilotMismatch, "pilot: \(SettingRules.quoted(snapshot.pilot)) does not match the topic's pilot \(SettingRules.quoted(pilot.id))")
        }
        if let difference = Self.difference(snapshot.registry, SnapshotRegistry(pilot: pilot, catalogue: catalogue)) {
            throw Refusal(.registryMismatch, "\(difference) for pilot \(pilot.id); the site must compute with the cluster's registry entry and catalogue")
        }
        return SnapshotReceipt(msgID: snapshot.msgID, site: site, asOf: snapshot.asOf, revision: snapshot.revision)
    }

    /// The first field where `sent` differs from `cluster`, as `registry.<field>: <sent> is not
    /// the cluster's <value>`; nil when they agree.
    static func difference(_ sent: SnapshotRegistry, _ cluster: SnapshotRegistry) -> String? {
        func differs(_ field: String, _ a: some CustomStringConvertible, _ b: some CustomStringConvertible) -> String {
            "registry.\(field): \(a) is not the cluster's \(b)"
        }
        if sent.start != cluster.start { return differs("start", sent.start, cluster.start) }
        if sent.end != cluster.end { return differs("end", sent.end, cluster.end) }
        if sent.enrolmentTarget != cluster.enrolmentTarget { return differs("enrolment_target", sent.enrolmentTarget, cluster.enrolmentTarget) }
        for i in 0..<max(sent.milestones.count, cluster.milestones.count) {
            let field = "milestones[\(i)]"
            guard i < sent.milestones.count else { return "registry.\(field): missing; the cluster's has \(cluster.milestones[i].date): \(cluster.milestones[i].enrolled)" }
            guard i < cluster.milestones.count else { return "registry.\(field): \(sent.milestones[i].date) is not in the cluster's registry entry" }
            let (a, b) = (sent.milestones[i], cluster.milestones[i])
            if a.date != b.date { return differs(field + ".date", a.date, b.date) }
            if a.enrolled != b.enrolled { return differs(field + ".enrolled", a.enrolled, b.enrolled) }
        }
        for i in 0..<max(sent.outcomes.count, cluster.outcomes.count) {
            let field = "outcomes[\(i)]"
            guard i < sent.outcomes.count else { return "registry.\(field): missing; the cluster's has \(cluster.outcomes[i].indicator)" }
            guard i < cluster.outcomes.count else { return "registry.\(field): \(SettingRules.quoted(sent.outcomes[i].indicator)) is not an outcome in the cluster's registry entry" }
            let (a, b) = (sent.outcomes[i], cluster.outcomes[i])
            if a.indicator != b.indicator { return differs(field + ".indicator", SettingRules.quoted(a.indicator), SettingRules.quoted(b.indicator)) }
            let label = "\(field) (\(a.indicator))"
            if a.unit != b.unit { return differs(label + ".unit", SettingRules.quoted(a.unit), SettingRules.quoted(b.unit)) }
            if a.target != b.target {
                return differs(label + ".target", a.target.map(\.description) ?? "none", b.target.map(\.description) ?? "none")
            }
            let (w, v) = (a.windows, b.windows)
            if w.baselineBeforeDays != v.baselineBeforeDays {
                return differs(label + ".windows.baseline_before_days", formatNumber(w.baselineBeforeDays), formatNumber(v.baselineBeforeDays))
            }
            if w.baselineAfterDays != v.baselineAfterDays {
                return differs(label + ".windows.baseline_after_days", formatNumber(w.baselineAfterDays), formatNumber(v.baselineAfterDays))
            }
            if w.followUpDays != v.followUpDays {
                return differs(label + ".windows.follow_up_days", formatNumber(w.followUpDays), formatNumber(v.followUpDays))
            }
        }
        return nil
    }
}
