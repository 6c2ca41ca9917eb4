import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchMonitoring
import PilotwatchStore

// The steps of `Serve.run()` and what they build, each named for what it does.
extension Serve {
    /// The applier that validates what the inbox holds and commits it to SQLite, behind the
    /// broker; its policy comes from --apply-delay, --apply-due and --max-backlog.
    func makeApplier(_ storage: ServeStorage, from start: InboxPosition, tallies: ServeTallies, feedback: SiteFeedback?,
                             subscriber: MQTTSubscriber, logger: Logger) -> InboxApplier {
        let store = storage.store, validator = storage.validator
        let backlogLimit = Int64(maxBacklog) << 20
        let policy = applyDelay == 0
            ? InboxApplier.ApplyPolicy.immediate
            : InboxApplier.ApplyPolicy(maxDelay: .milliseconds(Int64(applyDelay * 1000)),
                                       maxDeferredBytes: min(64 << 20, backlogLimit / 2),
                                       due: .milliseconds(Int64(min(applyDue, applyDelay) * 1000)))
        let metrics = tallies.metrics, visibility = tallies.visibility
        return InboxApplier(
            inbox: storage.inbox, store: store, from: start, niceness: 10, policy: policy,
            // Validated under the lock, with the validator in place: a copy per message (a dozen
            // references retained and released) cost more than a tenth of validating.
            makeItem: { record in store.screen(validator.withLock { record.item(validatedBy: $0) }) },
            onApplied: tallies.recordOutcomes,
            onTrouble: { logger.warning("\($0)") },
            onFailure: { error in
                // Only an inbox that cannot be read or written, or a database still refusing
                // everything while serve stops: nothing more can be applied, so serve stops too.
                logger.error("stopping: the inbox cannot be applied (it keeps every message for the next start): \(error)")
                subscriber.stop()
            },
            onCommit: { metrics?.commitDuration($0) },
            onVisible: { visibility.record(received: $0, committed: $1) },
            onStored: { feedback?.record($0, $1) },
            storedNeeds: { feedback != nil && $0.verdict.parsedTopic?.kind == .agg })
    }

    /// Starts the applier, first saying how much the inbox held past the store's position
    /// (messages acknowledged before the last stop).
    func startApplying(_ storage: ServeStorage, applier: InboxApplier, from start: InboxPosition,
                               metrics: ServeMetrics?, logger: Logger) {
        metrics?.inboxHeldAtStart(storage.inbox, from: start)
        if storage.inbox.end > start {
            logger.notice("inbox: applying \(storage.inbox.backlogBytes(after: start)) bytes acknowledged before the last stop")
        }
        applier.start()
    }

    /// Opens and starts the channel through which maintenance commands hand their work over
    /// (``ServeChannel``).
    func openChannel(_ storage: ServeStorage, applier: InboxApplier, tallies: ServeTallies,
                             logger: Logger) throws -> ServeChannelServer {
        let store = storage.store, validator = storage.validator, inbox = storage.inbox
        let global = global, broker = broker
        let channel = try ServeChannelServer(path: ServeChannel.socketPath(forDatabase: storage.database)) { request, connection in
            Serve.handle(request, connection, store: store, validator: validator, inbox: inbox, applier: applier,
                         reload: { try Context.load(global, broker: broker) },
                         stored: tallies.recordOutcomes, logger: logger)
        }
        channel.start()
        return channel
    }

    /// Starts serving the metrics, when --metrics asks for them.
    func startMetricsServer(_ server: MetricsHTTPServer?, logger: Logger) {
        guard let server else { return }
        server.start()
        logger.notice("metrics: serving http://\(server.address)/metrics")
    }

    /// SIGTERM and SIGINT stop the subscriber, which finishes the current batch.
    func watchSignals(_ subscriber: MQTTSubscriber, notifier: SystemdNotifier, logger: Logger) -> SignalWatcher {
        SignalWatcher(signals: [SIGTERM, SIGINT]) { sig in
            logger.notice("stopping: finishing the current batch", metadata: ["signal": "\(sig)"])
            notifier.send("STOPPING=1")
            subscriber.stop()
        }
    }

    /// The counts line in the log every --counts-every seconds, and as the unit's status.
    func startCountsTicker(_ counts: IngestCounts, notifier: SystemdNotifier, logger: Logger) -> any DispatchSourceTimer {
        let ticker = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pilotwatch.counts"))
        ticker.schedule(deadline: .now() + countsEvery, repeating: countsEvery)
        ticker.setEventHandler {
            let line = counts.line()
            logger.info("\(line)")
            notifier.send("STATUS=\(line)")
        }
        ticker.resume()
        return ticker
    }

    /// Records a heartbeat in the store every --heartbeat-every seconds, with the inbox's backlog.
    func startHeartbeats(_ storage: ServeStorage, applier: InboxApplier, logger: Logger) -> Heartbeats {
        let beats = Heartbeats(store: storage.store, startedAt: .now, logger: logger) {
            storage.inbox.backlogBytes(after: applier.position)
        }
        beats.start(every: heartbeatEvery)
        return beats
    }

    /// Follows the broker connection for the heartbeats, the metrics and systemd (Type=notify):
    /// ready once subscribed, a watchdog ping from the MQTT loop, the broker's state as the
    /// unit's status line. Returns since when the connection is up (nil: down), for the
    /// federation's settling.
    func followConnection(_ subscriber: MQTTSubscriber, mqttConfig: MQTTConfiguration, beats: Heartbeats,
                                  metrics: ServeMetrics?, notifier: SystemdNotifier) -> Mutex<ContinuousClock.Instant?> {
        let ready = Mutex(false)
        let connectedSince = Mutex<ContinuousClock.Instant?>(nil)
        subscriber.onConnectionChange = { connected in
            connectedSince.withLock { $0 = connected ? ($0 ?? .now) : nil }
            beats.connection(connected)
            metrics?.setConnected(connected)
            notifier.send(connected ? "STATUS=connected to the broker \(mqttConfig.address)"
                                    : "STATUS=broker \(mqttConfig.address) disconnected; reconnecting (the inbox keeps what was acknowledged)")
            if connected, ready.withLock({ done in defer { done = true }; return !done }) { notifier.send("READY=1") }
        }
        subscriber.onLoopTurn = { notifier.watchdogIfDue() }
        return connectedSince
    }

    /// On a site instance, the loop that sends its pilots' day-end snapshots to the cluster; nil
    /// elsewhere.
    func startFederation(_ ctx: Context, _ storage: ServeStorage, applier: InboxApplier,
                                 connectedSince: Mutex<ContinuousClock.Instant?>, logger: Logger) throws -> FederationLoop? {
        let clock = try timeOption(federateNow, "--federate-now")
        let inbox = storage.inbox
        let federation = ctx.service.federation.map {
            FederationLoop(ctx: ctx, federation: $0, store: storage.store, logger: logger, every: federateEvery, now: clock) { [federateSettle] in
                // Settled: connected long enough for what the broker kept to arrive, and all of it applied.
                guard let since = connectedSince.withLock({ $0 }), ContinuousClock.now - since >= .seconds(federateSettle) else { return false }
                return applier.position >= inbox.end
            }
        }
        federation?.start()
        return federation
    }

    /// On a site instance, reads what the cluster says of its snapshots (refusals are logged and
    /// counted); nil elsewhere.
    func startClusterFeedback(_ ctx: Context, metrics: ServeMetrics?, logger: Logger) throws -> ClusterFeedback? {
        let clusterStatus = try ctx.service.federation.map {
            try ClusterFeedback(service: ctx.service, federation: $0, metrics: metrics, logger: logger)
        }
        clusterStatus?.start()
        return clusterStatus
    }

    /// The retention policy, a minute after the start and then daily (db purge by hand).
    func scheduleRetention(_ ctx: Context, store: Store, logger: Logger) -> any DispatchSourceTimer {
        let purger = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pilotwatch.purge"))
        purger.schedule(deadline: .now() + 60, repeating: 86_400)
        purger.setEventHandler { Serve.purge(ctx, store: store, logger: logger) }
        purger.resume()
        return purger
    }

    /// The log line that says what serve works on.
    func logStart(_ storage: ServeStorage, mqttConfig: MQTTConfiguration, logger: Logger) {
        logger.info("pilotwatch serve starting", metadata: [
            "db.path": "\(storage.database)", "inbox.path": "\(storage.inboxPath)", "mqtt.host": "\(mqttConfig.host)",
            "mqtt.port": "\(mqttConfig.port)", "mqtt.client_id": "\(mqttConfig.clientID)",
        ])
    }

    /// Receives from the broker until stopped: each batch is written to the inbox (and so
    /// acknowledged) and the applier woken. Returns the error that stopped it, if any.
    func receive(_ subscriber: MQTTSubscriber, into storage: ServeStorage, applier: InboxApplier,
                         tallies: ServeTallies, beats: Heartbeats, logger: Logger) -> (any Error)? {
        let inbox = storage.inbox, backlogLimit = Int64(maxBacklog) << 20
        do {
            // Over the backlog limit, serve stops taking batches from the broker (which queues
            // them) but keeps its connection alive; it goes on once SQLite has caught up.
            try subscriber.run(readGate: { inbox.backlogBytes(after: applier.position) <= backlogLimit }) { batch in
                let now = Instant.now
                let end = try inbox.append(batch.map { InboxRecord(receivedAt: now, topic: $0.topic, payload: $0.payload) })
                applier.wake()
                tallies.metrics?.received(batch.count, at: now, through: end)
                beats.received(at: now)
                let received = tallies.counts.addReceived(batch.count)
                if let stopAfter, received >= stopAfter, received - batch.count < stopAfter {
                    logger.notice("received \(received) messages (--stop-after \(stopAfter)); stopping")
                    subscriber.stop()
                }
            }
            return nil
        } catch {
            logger.error("stopped without acknowledging the current batch: \(error)")
            return error
        }
    }

    /// The alert loop, with its own connection to the broker (client id `{client_id}-alerts`,
    /// the service account's credentials) whose will raises `ingest_stopped`.
    func makeAlertLoop(_ ctx: Context, mqttConfig: MQTTConfiguration, store: Store, previous: ServiceHeartbeat?,
                               metrics: ServeMetrics?, logger: Logger) -> AlertLoop {
        var settings = ctx.service.alerts
        if let alertsEvery { settings.every = alertsEvery }
        // Connected from the alert thread at its first round (and retried at every round while
        // down), so that a broker away at start never holds up ingest.
        let config = sideConnection(mqttConfig, "alerts")
        var publisher: MQTTPublisher?
        do {
            publisher = try MQTTPublisher(configuration: config, logger: logger, maxUnacknowledged: 100, flowControlTimeout: 5,
                                          will: AlertLoop.will(root: ctx.service.topicRoot, startedAt: .now))
        } catch {
            logger.warning("alerts: no alert connection to the broker (alerts are recorded, not published): \(error)")
        }
        return AlertLoop(store: store, registry: ctx.registry, previous: previous,
                         settings: AlertLoop.Settings(alerts: settings, topicRoot: ctx.service.topicRoot,
                                                      backlogLimit: Int64(maxBacklog) << 20,
                                                      lagBound: max(30, 2 * applyDelay)),
                         publisher: publisher, metrics: metrics, logger: logger)
    }

    /// A publishing connection of serve's beside the ingest one: client id `{client_id}-{name}`
    /// (at most 128 characters), no subscriptions, at most 3 s to connect.
    private func sideConnection(_ mqttConfig: MQTTConfiguration, _ name: String) -> MQTTConfiguration {
        var config = mqttConfig
        config.clientID = String((mqttConfig.clientID + "-" + name).prefix(128))
        config.subscriptions = []
        config.connectTimeout = min(config.connectTimeout, 3)
        return config
    }

    /// The sites' retained statuses (federation.md, "Feedback"), on a connection of their own
    /// (client id `{client_id}-sites`); nil when no pilot reports aggregates.
    func makeSiteFeedback(_ ctx: Context, mqttConfig: MQTTConfiguration, store: Store, logger: Logger) -> SiteFeedback? {
        guard ctx.registry.pilots.contains(where: { $0.site != nil }) else { return nil }
        let config = sideConnection(mqttConfig, "sites")
        var publisher: MQTTPublisher?
        do {
            publisher = try MQTTPublisher(configuration: config, logger: logger, maxUnacknowledged: 100, flowControlTimeout: 5)
        } catch {
            logger.warning("sites: no connection to the broker for the sites' statuses (snapshots are stored, statuses not published): \(error)")
        }
        let held = (try? store.snapshotSummaries()) ?? []
        return SiteFeedback(root: ctx.service.topicRoot, registry: ctx.registry, held: held, publisher: publisher, logger: logger)
    }

    /// Applies the retention policy (audited as `db purge (serve)`); a failure is logged and
    /// tried again the next day.
    static func purge(_ ctx: Context, store: Store, logger: Logger) {
        do {
            let summary = try audited("db purge (serve)", database: ctx.service.databasePath,
                                      selection: RetentionPolicy.selection, asOf: .now) { _ in
                try RetentionPolicy.apply(ctx, store: store, now: .now, dryRun: false)
            }
            logger.notice("retention: dropped \(summary.refusedPayloads) refused payloads (\(summary.refusedPayloadBytes) bytes) and \(summary.deviceStatuses) old device statuses")
            for e in summary.endedPilots {
                logger.notice("retention: ended pilot \(e.pilot): final figures archived as of \(e.archivedAsOf), \(e.rows) raw rows (\(e.bytes) bytes) removed")
            }
        } catch {
            logger.warning("retention: the daily purge failed (tried again tomorrow): \(error)")
        }
    }

    /// Takes the store's writer lock: refused at once (exit 75) when another `serve` has it;
    /// waited for when a maintenance command has it (it finishes by itself).
    func takeWriterLock(_ database: String, logger: Logger) throws -> WriterLock {
        makeFolder(of: database)
        do {
            return try WriterLock.acquire(database: database, role: "serve")
        } catch WriterLockError.held(_, let holder) where holder == nil || holder?.role == "serve" || holder?.role == "unknown" {
            throw CLIError("the database \(database) is already written by \(holder.map(\.description) ?? "another pilotwatch serve"); one serve per database: stop that one first, or give this one another --db",
                           kind: .busy)
        } catch WriterLockError.held {
            return try WriterLock.acquire(database: database, role: "serve", wait: true) { holder in
                logger.notice("waiting for \(holder) to finish writing \(database)")
            }
        } catch {
            throw CLIError("\(error)", cause: error)
        }
    }
}
