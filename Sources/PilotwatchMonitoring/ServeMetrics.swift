import Foundation
import PilotwatchCore
import PilotwatchStore
import Prometheus

/// What `pilotwatch serve` shows an operator's Prometheus, in a swift-prometheus registry.
///
/// Counters count since the process started; no label holds a device or a subject id (the
/// refusal reason and the pilot id are the only labels).
///
/// | Metric | Type | From |
/// |---|---|---|
/// | `pilotwatch_messages_received_total` | counter | ``received(_:at:through:)`` |
/// | `pilotwatch_messages_accepted_total`, `_duplicate_total`, `_status_total` | counter | ``applied(outcomes:)`` |
/// | `pilotwatch_messages_refused_total{reason}` | counter | ``applied(outcomes:)`` |
/// | `pilotwatch_observations_stored_total` | counter | ``applied(outcomes:)`` |
/// | `pilotwatch_sqlite_commit_duration_seconds` | histogram | ``commitDuration(_:)`` |
/// | `pilotwatch_broker_connected` | gauge | ``setConnected(_:)`` |
/// | `pilotwatch_last_message_received_timestamp_seconds` | gauge | ``received(_:at:through:)`` |
/// | `pilotwatch_inbox_backlog_bytes`, `pilotwatch_apply_lag_seconds` | gauge | ``refresh(backlogBytes:appliedThrough:now:)`` |
/// | `pilotwatch_pilot_last_measurement_timestamp_seconds{pilot}` | gauge | ``setLastMeasurements(_:)`` |
/// | `pilotwatch_federation_cluster_refusals_total` | counter | ``clusterRefusal(at:)`` |
/// | `pilotwatch_federation_cluster_last_refusal_timestamp_seconds` | gauge | ``clusterRefusal(at:)`` |
/// | `pilotwatch_build_info{version}` | gauge (1) | `init` |
///
/// ```swift
/// let metrics = ServeMetrics(version: "0.1.0")
/// metrics.received(batch.count, at: now, through: try inbox.append(records))  // receiving thread
/// metrics.applied(outcomes: outcomes)                                        // applier thread
/// let text = metrics.render()                                                // Prometheus text format
/// ```
// @unchecked Sendable: `registry` and every metric handle are immutable references to
// swift-prometheus' Sendable types; `pending`, `pilotGauges` and `alertGauges`, the only mutable
// state, are read and written only with `lock` held.
public final class ServeMetrics: @unchecked Sendable {
    /// The registry the metrics live in (add more to it, or render it).
    public let registry: PrometheusCollectorRegistry

    private let messagesReceived: Counter
    private let messagesAccepted: Counter
    private let messagesDuplicate: Counter
    private let messagesStatus: Counter
    private let messagesRefused: [ReasonCode: Counter]
    private let observationsStored: Counter
    private let commitSeconds: DurationHistogram
    private let brokerConnected: Gauge
    private let lastReceived: Gauge
    private let backlogBytes: Gauge
    private let applyLag: Gauge
    private let clusterRefusals: Counter
    private let clusterLastRefusal: Gauge

    private let lock = NSLock()
    private var pending = PendingReceipts()
    private var pilotGauges: [String: Gauge] = [:]
    private var alertGauges: [AlertKey: Gauge] = [:]

    /// Commit durations' bucket bounds: 1 ms to 10 s.
    public static let commitBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .microseconds(2_500_000), .seconds(5), .seconds(10),
    ]

    /// Registers every metric (the refusal counter once per reason code, at 0) and sets
    /// `pilotwatch_build_info{version}` to 1.
    public init(version: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let r = registry
        messagesReceived = r.makeCounter(descriptor: Self.descriptor(
            "messages_received", "total", "Messages received from the broker and stored in the inbox (then acknowledged)."))
        messagesAccepted = r.makeCounter(descriptor: Self.descriptor(
            "messages_accepted", "total", "Observation messages applied to SQLite with a new msg_id."))
        messagesDuplicate = r.makeCounter(descriptor: Self.descriptor(
            "messages_duplicate", "total", "Observation messages whose msg_id was already stored (acknowledged and ignored)."))
        messagesStatus = r.makeCounter(descriptor: Self.descriptor(
            "messages_status", "total", "Device status messages applied to their device."))
        let refusedName = Self.descriptor(
            "messages_refused", "total", "Messages refused and quarantined, by the contract's reason code.")
        var refused: [ReasonCode: Counter] = [:]
        for reason in ReasonCode.allCases {
            refused[reason] = r.makeCounter(descriptor: refusedName, labels: [("reason", reason.rawValue)])
        }
        messagesRefused = refused
        observationsStored = r.makeCounter(descriptor: Self.descriptor(
            "observations_stored", "total", "Observations stored (not those already stored from another message)."))
        commitSeconds = r.makeDurationHistogram(descriptor: Self.descriptor(
            "sqlite_commit_duration", "seconds", "Time to write and commit one batch of messages to SQLite."),
                                                buckets: Self.commitBuckets)
        brokerConnected = r.makeGauge(descriptor: Self.descriptor(
            "broker_connected", "", "1 while connected to the MQTT broker, else 0."))
        lastReceived = r.makeGauge(descriptor: Self.descriptor(
            "last_message_received_timestamp", "seconds",
            "When the last message was received from the broker, in Unix time (0: none since start)."))
        backlogBytes = r.makeGauge(descriptor: Self.descriptor(
            "inbox_backlog", "bytes", "Bytes of inbox received and acknowledged but not yet applied to SQLite."))
        applyLag = r.makeGauge(descriptor: Self.descriptor(
            "apply_lag", "seconds", "Age of the oldest message received but not yet applied to SQLite (0 when caught up)."))
        clusterRefusals = r.makeCounter(descriptor: Self.descriptor(
            "federation_cluster_refusals", "total",
            "A site instance: snapshot refusals the cluster's status for this site reported (each once; one seen again after a restart counts again)."))
        clusterLastRefusal = r.makeGauge(descriptor: Self.descriptor(
            "federation_cluster_last_refusal_timestamp", "seconds",
            "A site instance: when the cluster last refused one of this site's snapshots, in Unix time (0: none reported since start)."))
        r.makeGauge(descriptor: Self.descriptor("build", "info", "1, labelled with the running pilotwatch version."),
                    labels: [("version", version)]).set(to: 1)
    }

    // MARK: - Events

    /// `count` messages received at `at` and appended to the inbox, which now ends at `end`.
    /// Cheap enough for the receiving thread: two atomic updates and a short lock.
    public func received(_ count: Int, at: Instant, through end: InboxPosition) {
        guard count > 0 else { return }
        messagesReceived.increment(by: Int64(count))
        lastReceived.set(to: Self.unixSeconds(at))
        lock.withLock { pending.received(at: at, through: end) }
    }

    /// The inbox held records past `position` when serve started (acknowledged before the last
    /// stop): their age counts in the apply lag from the first one's receiving time. Call it
    /// before the applier starts (it reads the inbox).
    public func inboxHeldAtStart(_ inbox: Inbox, from position: InboxPosition) {
        let end = inbox.end
        guard end > position else { return }
        var reader = inbox.reader()
        defer { reader.close() }
        guard let first = try? reader.read(from: position, maxRecords: 1, maxBytes: 1).records.first else { return }
        lock.withLock { pending.received(at: first.receivedAt, through: end) }
    }

    /// What the store did with one committed batch. A stored snapshot counts as an accepted
    /// message (with no observations), a snapshot already held as a duplicate.
    public func applied(outcomes: [IngestOutcome]) {
        var accepted = 0, duplicate = 0, status = 0, observations = 0
        var refused: [ReasonCode: Int] = [:]
        for outcome in outcomes {
            switch outcome {
            case .accepted(let new, _): accepted += 1; observations += new
            case .duplicateMessage, .duplicateSnapshot: duplicate += 1
            case .status: status += 1
            case .snapshot: accepted += 1
            case .refused(let reason): refused[reason, default: 0] += 1
            }
        }
        if accepted > 0 { messagesAccepted.increment(by: Int64(accepted)) }
        if duplicate > 0 { messagesDuplicate.increment(by: Int64(duplicate)) }
        if status > 0 { messagesStatus.increment(by: Int64(status)) }
        if observations > 0 { observationsStored.increment(by: Int64(observations)) }
        for (reason, n) in refused { messagesRefused[reason]?.increment(by: Int64(n)) }
    }

    /// How long one SQLite transaction took to write and commit a batch.
    public func commitDuration(_ duration: Duration) {
        commitSeconds.record(duration)
    }

    /// The broker connection went up or down.
    public func setConnected(_ connected: Bool) {
        brokerConnected.set(to: connected ? 1 : 0)
    }

    /// A site instance read in the cluster's status a refusal it had not seen, made at `at`.
    public func clusterRefusal(at: Instant) {
        clusterRefusals.increment()
        clusterLastRefusal.set(to: Self.unixSeconds(at))
    }

    // MARK: - Gauges refreshed before rendering

    /// The inbox's backlog and the applier's position: sets the backlog and the apply lag (the
    /// age, at `now`, of the oldest record past `position`; 0 when there is none).
    public func refresh(backlogBytes bytes: Int64, appliedThrough position: InboxPosition,
                        now: Instant = Instant(seconds: Date().timeIntervalSince1970)) {
        backlogBytes.set(to: Double(max(0, bytes)))
        let oldest = lock.withLock { pending.oldest(appliedThrough: position) }
        let lag = bytes > 0 ? oldest.map { max(0, Double(now.millis - $0.millis) / 1000) } ?? 0 : 0
        applyLag.set(to: lag)
    }

    /// Sets each pilot's last measurement time (the latest `at` stored for it). A pilot once
    /// set keeps its gauge; label values are pilot ids.
    public func setLastMeasurements(_ times: [String: Instant]) {
        let gauges = lock.withLock {
            times.keys.map { pilot in
                if let gauge = pilotGauges[pilot] { return (pilot, gauge) }
                let gauge = registry.makeGauge(descriptor: Self.lastMeasurementName, labels: [("pilot", pilot)])
                pilotGauges[pilot] = gauge
                return (pilot, gauge)
            }
        }
        for (pilot, gauge) in gauges {
            if let at = times[pilot] { gauge.set(to: Self.unixSeconds(at)) }
        }
    }

    /// The alerts open now: `pilotwatch_alerts_active{rule, target}` is 1 for each; an alert
    /// once seen keeps its series, at 0 after it cleared. Targets are pilot ids or "service".
    public func setActiveAlerts(_ open: [AlertKey]) {
        let active = Set(open)
        let gauges = lock.withLock {
            for key in active where alertGauges[key] == nil {
                alertGauges[key] = registry.makeGauge(descriptor: Self.alertName,
                                                      labels: [("rule", key.rule.rawValue), ("target", key.target)])
            }
            return alertGauges
        }
        for (key, gauge) in gauges { gauge.set(to: active.contains(key) ? 1 : 0) }
    }

    // MARK: - Rendering

    /// Every metric in the Prometheus text format (version 0.0.4), as rendered by swift-prometheus.
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }

    private static var alertName: MetricNameDescriptor {
        descriptor("alerts", "active", "1 while the alert of the rule for the target (a pilot id, or service) is raised, 0 once cleared.")
    }

    private static var lastMeasurementName: MetricNameDescriptor {
        descriptor(
            "pilot_last_measurement_timestamp", "seconds",
            "The latest measurement time (at) of any observation stored for the pilot, in Unix time.")
    }

    /// `pilotwatch_{metric}_{unit}` (no unit: `pilotwatch_{metric}`).
    private static func descriptor(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "pilotwatch", metricName: metric, unitName: unit, helpText: help)
    }

    private static func unixSeconds(_ instant: Instant) -> Double {
        Double(instant.millis) / 1000
    }
}
