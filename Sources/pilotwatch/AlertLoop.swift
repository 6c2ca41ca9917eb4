import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchMonitoring
import PilotwatchReports
import PilotwatchStore

/// `serve`'s alerts: every `alerts.every` seconds it evaluates the rules from the views' own
/// figures (``Dashboard/status(store:registry:programme:asOf:thresholds:)`` and
/// ``AlertEvaluator``), records each raise and clear once in the store, publishes the alert as a
/// retained message on `{root}/_cluster/alerts/{rule}/{pilot or "service"}` (an empty retained
/// message once cleared) and runs `alerts.command`. A delivery that fails (broker away, command
/// failing or too slow) stays pending in the store and is retried at the next evaluation.
///
/// It runs on a queue of its own: a slow command or a busy database delays alerts, never ingest.
/// Pilot rules are left as they are while serve is behind with the inbox, so that the service's
/// own lag never raises a pilot's "silent".
// @unchecked Sendable: every property is immutable but `timer` (a dispatch source, thread-safe,
// configured in `start` and cancelled in `stop`, both from serve's main thread), `stopping` (a
// lock), and `lastConnections` and `firstRound`, which only the loop's own serial queue reads and
// writes.
final class AlertLoop: @unchecked Sendable {
    struct Settings {
        var alerts: AlertSettings
        var topicRoot: String
        /// serve's --max-backlog in bytes (`backlog_high` when `alerts.backlog_mib` is not set).
        var backlogLimit: Int64
        /// Pilot rules wait while the inbox has held messages not yet in SQLite for longer.
        var lagBound: Double
    }

    private let store: Store
    private let registry: Registry
    private let settings: Settings
    private let publisher: MQTTPublisher?
    private let command: AlertCommand?
    private let metrics: ServeMetrics?
    private let logger: Logger
    private let queue = DispatchQueue(label: "pilotwatch.alerts")
    private let timer: any DispatchSourceTimer
    private var lastConnections = 0
    /// The last run's heartbeat, read before this run's first beat.
    private let previous: ServiceHeartbeat?
    private var firstRound = true
    /// Set by `stop`: deliveries in progress give up (a hanging command is stopped) so that serve
    /// stops at once.
    private let stopping = Mutex(false)
    /// At a stop, the command for `ingest_stopped` may run this long at most.
    static let stopCommandLimit = 5.0

    init(store: Store, registry: Registry, previous: ServiceHeartbeat?, settings: Settings, publisher: MQTTPublisher?,
         metrics: ServeMetrics?, logger: Logger) {
        self.store = store
        self.previous = previous
        self.registry = registry
        self.settings = settings
        self.publisher = publisher
        self.command = settings.alerts.command.map { AlertCommand(argv: $0, timeout: settings.alerts.commandTimeout) }
        self.metrics = metrics
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: queue)
    }

    /// Seconds between two evaluations.
    var every: Double { settings.alerts.every }

    /// The topic of an alert's retained message.
    static func topic(root: String, _ key: AlertKey) -> String {
        "\(root)/_cluster/alerts/\(key.rule.rawValue)/\(key.target)"
    }

    /// The retained message of a raised alert (JSON); a cleared alert's is empty.
    static func payload(_ alert: AlertRecord, programme: String?) -> [UInt8] {
        guard alert.clearedAt == nil else { return [] }
        var w = JSONWriter()
        w.object { o in
            o.field("rule", alert.rule.rawValue)
            o.field("target", alert.target)
            if let programme { o.field("programme", programme) }
            o.field("state", "raised")
            o.field("raised_at", alert.raisedAt.description)
            o.field("message", alert.raisedMessage)
            o.field("values", raw: String(decoding: JSON.encode(.object(alert.raisedValues)), as: UTF8.self))
        }
        return Array(w.text.utf8)
    }

    /// The will of the alert connection: `ingest_stopped` raised, published by the broker if
    /// serve's connection ends without a goodbye (a crash, a kill, a lost network).
    static func will(root: String, startedAt: Instant) -> MQTTMessage {
        var w = JSONWriter()
        w.object { o in
            o.field("rule", AlertRule.ingestStopped.rawValue)
            o.field("target", AlertRule.service)
            o.field("state", "raised")
            o.field("raised_at", nil as String?)
            o.field("message", "serve's connection to the broker ended without a goodbye (serve started \(startedAt)); ingest has probably stopped")
            o.field("values", raw: "{\"serve_started_at\":\(JSONWriter.quote(startedAt.description))}")
        }
        return MQTTMessage(topic: topic(root: root, AlertKey(rule: .ingestStopped, target: AlertRule.service)),
                           payload: Array(w.text.utf8), qos: 1, retain: true)
    }

    /// Evaluates now and then every `alerts.every` seconds; the first round comes after
    /// `firstAfter` seconds (the heartbeat and the broker connection settle first).
    func start(firstAfter: Double) {
        timer.schedule(deadline: .now() + firstAfter, repeating: settings.alerts.every)
        timer.setEventHandler { [self] in round(now: .now) }
        timer.resume()
    }

    /// Stops evaluating (a delivery in progress gives up at once), then records and delivers
    /// `ingest_stopped` (the views call ingest stopped from then on, and so do the alerts; its
    /// command may run for ``stopCommandLimit`` seconds), then disconnects the alert connection.
    func stop(clean: Bool) {
        stopping.withLock { $0 = true }
        timer.cancel()
        queue.sync {
            stopping.withLock { $0 = false }
            let stopped = AlertCondition(rule: .ingestStopped, target: AlertRule.service,
                                         values: JSONObject([("stopped_at", .string(Instant.now.description)), ("clean", .bool(clean))]),
                                         message: clean ? "serve stopped" : "serve stopped on an error (see its log)")
            if settings.alerts.thresholds.isOn(.ingestStopped) {
                record(raise: [stopped], clear: [], at: .now)
                // Everything is published (quick); of the commands, only ingest_stopped's runs now,
                // the others wait for the next start.
                deliver(commandLimit: Self.stopCommandLimit, commandsFor: [stopped.key])
            }
            publisher?.disconnect()
        }
    }

    /// One evaluation: the conditions that hold, the transitions against the open alerts, the
    /// deliveries still pending.
    func round(now: Instant) {
        // Connect (arming the will) at the first round, and again while the broker is away;
        // once connected, libmosquitto's own thread reconnects.
        if let publisher, !publisher.isConnected {
            do { try publisher.connect() } catch {
                logger.warning("alerts: no connection to the broker for the alerts (alerts stay pending; next try in \(Int(settings.alerts.every)) s): \(error)")
            }
        }
        if firstRound {
            firstRound = false
            recordPreviousCrash()
        }
        do {
            let thresholds = settings.alerts.thresholds
            let heartbeat = try store.heartbeat()
            let health = IngestHealth.evaluate(heartbeat, now: now, staleAfter: thresholds.ingestStaleSeconds)
            var conditions = AlertEvaluator.service(
                health: health, backlogLimit: settings.backlogLimit,
                refusedLastHour: try store.refusedCount(since: now.adding(millis: -3_600_000)), thresholds: thresholds)
            // Our own heartbeat: "stopped" here means it cannot be recorded, never that serve has not beaten yet.
            if heartbeat == nil { conditions.removeAll { $0.rule == .ingestStopped } }
            // While ingest is unwell (broker away for longer than the bound) or SQLite is behind
            // the inbox, the pilots' figures say more about us than about them: their rules wait,
            // neither raised nor cleared.
            let lag = Double(heartbeat?.applyLagMillis ?? 0) / 1000
            let pilotsEvaluated = lag <= settings.lagBound && (heartbeat == nil || health.state == .running)
            if pilotsEvaluated {
                let board = try Dashboard.status(store: store, registry: registry, programme: nil, asOf: now, thresholds: thresholds)
                conditions += board.pilots.flatMap(\.conditions)
            } else {
                logger.notice("alerts: pilot rules wait: ingest is \(health.state.rawValue), SQLite \(Int(lag)) s behind the inbox (the pilots' figures are not current)")
            }
            let open = try store.openAlerts()
            let holding = Set(conditions.map(\.key))
            let openKeys = Set(open.map(\.key))
            let raise = conditions.filter { !openKeys.contains($0.key) }
            let still = conditions.filter { openKeys.contains($0.key) }
            let clear = open.map(\.key).filter { key in
                !holding.contains(key) && (key.rule.isServiceRule || pilotsEvaluated)
            }
            record(raise: raise, holding: still, clear: clear, at: now)
        } catch {
            logger.warning("alerts: cannot evaluate the rules now (next try in \(Int(settings.alerts.every)) s): \(error)")
        }
        // After a reconnect, the broker may have published the will: say again that ingest runs.
        if let publisher, publisher.connections != lastConnections, publisher.isConnected {
            lastConnections = publisher.connections
            let key = AlertKey(rule: .ingestStopped, target: AlertRule.service)
            if (try? store.openAlerts().contains { $0.key == key }) == false {
                try? publisher.publish(topic: Self.topic(root: settings.topicRoot, key), payload: [], qos: 1, retain: true)
            }
        }
        deliver()
        if let metrics, let open = try? store.openAlerts() { metrics.setActiveAlerts(open.map(\.key)) }
    }

    /// The last run ended without a clean stop (a crash, a kill, a power loss): only the broker
    /// said so, through the will. Recorded now as raised at its last heartbeat and delivered;
    /// this round clears it, since ingest runs again.
    private func recordPreviousCrash() {
        guard let previous, previous.stoppedAt == nil, settings.alerts.thresholds.isOn(.ingestStopped) else { return }
        let key = AlertKey(rule: .ingestStopped, target: AlertRule.service)
        guard (try? store.openAlerts().contains { $0.key == key }) == false else { return }
        let crash = AlertCondition(
            rule: .ingestStopped, target: AlertRule.service,
            values: JSONObject([("last_beat", .string(previous.beatAt.description)), ("pid", .number(JSONNumber(Int(previous.pid)))),
                                ("clean", .bool(false))]),
            message: "serve (pid \(previous.pid)) stopped without a clean stop after \(Graphics.minute(previous.beatAt)) UTC (crash, kill or power loss)")
        record(raise: [crash], clear: [], at: previous.beatAt)
        deliver()
    }

    private func record(raise: [AlertCondition], holding: [AlertCondition] = [], clear: [AlertKey], at now: Instant) {
        do {
            let changed = try store.recordAlertTransitions(raise: raise, holding: holding, clear: clear, at: now,
                                                           publish: publisher != nil, command: command != nil)
            for a in changed {
                if a.clearedAt == nil {
                    logger.notice("alert raised: \(a.key): \(a.message)")
                } else {
                    logger.notice("alert cleared: \(a.key) (raised \(Graphics.minute(a.raisedAt)) UTC)")
                }
            }
        } catch {
            logger.warning("alerts: cannot record \(raise.count) raised and \(clear.count) cleared (retried at the next evaluation): \(error)")
        }
    }

    /// Publishes and runs the command for every pending transition; what fails stays pending.
    private func deliver(commandLimit: Double? = nil, commandsFor only: Set<AlertKey>? = nil) {
        guard publisher != nil || command != nil, let pending = try? store.pendingAlertDeliveries(), !pending.isEmpty else { return }
        let programmes = Dictionary(registry.pilots.map { ($0.id, $0.programme) }) { a, _ in a }
        var published: Set<Int64> = []
        if let publisher {
            let toPublish = pending.filter(\.publishPending)
            if !toPublish.isEmpty {
                do {
                    guard publisher.isConnected else { throw CLIError("the alert connection to the broker is down") }
                    for a in toPublish {
                        try publisher.publish(topic: Self.topic(root: settings.topicRoot, a.key),
                                              payload: Self.payload(a, programme: programmes[a.target]), qos: 1, retain: true)
                    }
                    try publisher.waitForAllAcknowledged(timeout: 5)
                    published = Set(toPublish.map(\.id))
                } catch {
                    logger.warning("alerts: \(toPublish.count) not published (retried at the next evaluation): \(error)")
                }
            }
        }
        // A failed run holds back the later transitions of the same alert, so that the command
        // hears them in order.
        var failed: Set<AlertKey> = []
        for a in pending {
            var ran = false
            if let command, a.commandPending, only.map({ $0.contains(a.key) }) ?? true, !failed.contains(a.key),
               !stopping.withLock({ $0 }) {
                switch command.run(environment: AlertCommand.environment(for: a, topic: Self.topic(root: settings.topicRoot, a.key)),
                                   limit: commandLimit, shouldStop: { self.stopping.withLock { $0 } }) {
                case .succeeded: ran = true
                case .failed(let why):
                    failed.insert(a.key)
                    logger.warning("alerts: the alert command failed for \(a.key) (retried at the next evaluation): \(why)")
                }
            }
            do {
                try store.markAlertDelivered(id: a.id, published: published.contains(a.id), commandRan: ran)
            } catch {
                logger.warning("alerts: cannot mark alert \(a.id) delivered (it may be delivered again): \(error)")
            }
        }
    }
}
