import ArgumentParser
import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchMonitoring
import PilotwatchReports
import PilotwatchStore

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the subscriber: validate every message and store it, until SIGTERM or SIGINT.",
        discussion: """
        Subscribes at QoS 1 to {root}/+/+/obs and {root}/+/+/status with a persistent session, so \
        that what the broker queued while pilotwatch was down arrives when it returns; and to \
        {root}/+/+/agg, where site instances publish day-end snapshots of the pilots whose registry \
        entry says reporting: aggregates (contract 1.1). Snapshots take the same way as \
        observations (inbox, then SQLite); `pilotwatch snapshots` lists what is held.

        A message is acknowledged to the broker only once it is stored: written to the inbox, an \
        append-only journal next to the database ({database}.inbox/), and flushed to disk with \
        fdatasync, a burst at a time. A second thread validates what the inbox holds and commits \
        it to SQLite, recording in the same transaction how far it got; at start, serve first \
        applies whatever the inbox holds past that point (messages acknowledged before a crash). \
        So a burst is acknowledged at the speed of the disk, and SQLite catches up behind it: \
        at light load (keeping up takes the applier at most a quarter of a core), a message is \
        applied once it has waited --apply-due seconds; near full speed SQLite work waits while \
        messages keep arriving (it would slow receiving by a quarter), for at most --apply-delay \
        seconds or 64 MiB (half of --max-backlog when that is less); if more than --max-backlog \
        MiB wait in the inbox, serve stops taking messages from the broker (keeping its \
        connection alive) until SQLite has caught up.

        On SIGTERM or SIGINT it acknowledges what it has stored, disconnects, applies everything \
        left in the inbox and exits 0. If the database refuses a batch, serve stores it one \
        message at a time and quarantines a message refused on every try as store_error \
        (replayable, never counted against the pilot); a busy database is retried, never fatal.

        Operators: --metrics HOST:PORT serves Prometheus metrics at /metrics (and /healthz); under \
        systemd (Type=notify) serve says READY=1 once subscribed, pings the watchdog from its MQTT \
        loop and keeps its counts line as the unit's status.

        One serve per database: it holds an exclusive lock on {database}.lock, and a second serve \
        on the same database exits 75 at once, naming the holder. While it runs, `ingest` and \
        `rejects replay` hand their work to it through {database}.sock, and `db backup` waits for \
        it to apply everything acknowledged before the backup starts.

        Example:
          pilotwatch serve --config config/pilotwatch.yaml --port 1883
        """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions

    @Option(help: ArgumentHelp("Seconds between two lines of counts in the log.", valueName: "seconds"))
    var countsEvery: Double = 60

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    @Option(help: ArgumentHelp("MiB of inbox not yet in SQLite above which serve stops reading from the broker.",
                               valueName: "MiB"))
    var maxBacklog: Int = 256

    @Option(help: ArgumentHelp(
        "Seconds SQLite work may wait while a burst is arriving (0: apply every burst at once).",
        valueName: "seconds"))
    var applyDelay: Double = 10

    @Option(help: ArgumentHelp(
        "At light load, seconds a message may wait before SQLite work starts (at most --apply-delay).",
        valueName: "seconds"))
    var applyDue: Double = 0.5

    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics at http://HOST:PORT/metrics (a port alone listens on 127.0.0.1). Off by default.",
        valueName: "host:port"))
    var metrics: String?

    @Option(help: ArgumentHelp("Seconds between two heartbeats recorded in the store (the views tell from them whether ingest runs).",
                               valueName: "seconds"))
    var heartbeatEvery: Double = 5

    @Option(help: ArgumentHelp(
        "Seconds between two evaluations of the alert rules (default: alerts.every in the configuration, 60).",
        valueName: "seconds"))
    var alertsEvery: Double?

    @Option(help: ArgumentHelp(
        "On a site instance (federation: in the configuration): seconds between two rounds of building and sending day-end snapshots.",
        valueName: "seconds"))
    var federateEvery: Double = 300

    @Option(help: ArgumentHelp(
        "On a site instance: before building day ends, wait until connected to the broker this many seconds and every message received is applied, so that what the broker kept during an outage is in them.",
        valueName: "seconds"))
    var federateSettle: Double = 10

    @Option(help: ArgumentHelp("Stop after receiving this many messages (benchmarks).", visibility: .hidden))
    var stopAfter: Int?

    @Option(help: ArgumentHelp(
        "Tests: the time the federation rounds take for now when they decide which day ends are due (a time, a date, or 2d for two days ago; default: the clock).",
        valueName: "time", visibility: .hidden))
    var federateNow: String?

    func validate() throws {
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after \(stopAfter) must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not a level; use trace, debug, info, notice, warning or error")
        }
        guard countsEvery > 0 else { throw ValidationError("--counts-every \(countsEvery) must be above 0") }
        guard heartbeatEvery >= 0.1, heartbeatEvery <= 60 else {
            throw ValidationError("--heartbeat-every \(heartbeatEvery) must be between 0.1 and 60 (seconds; the views call ingest stopped after 120 s without one)")
        }
        guard maxBacklog >= 1 else { throw ValidationError("--max-backlog \(maxBacklog) must be at least 1 (MiB)") }
        guard applyDelay >= 0, applyDelay <= 3600 else {
            throw ValidationError("--apply-delay \(applyDelay) must be between 0 and 3600 (seconds)")
        }
        guard applyDue >= 0, applyDue <= 3600 else {
            throw ValidationError("--apply-due \(applyDue) must be between 0 and 3600 (seconds)")
        }
        guard federateEvery >= 0.5, federateEvery <= 86_400 else {
            throw ValidationError("--federate-every \(federateEvery) must be between 0.5 and 86400 (seconds)")
        }
        guard federateSettle >= 0, federateSettle <= 3600 else {
            throw ValidationError("--federate-settle \(federateSettle) must be between 0 and 3600 (seconds)")
        }
        if let alertsEvery, !(alertsEvery >= 0.5 && alertsEvery <= 3600) {
            throw ValidationError("--alerts-every \(alertsEvery) must be between 0.5 and 3600 (seconds)")
        }
        if let metrics {
            do { _ = try ListenAddress(parsing: metrics) } catch { throw ValidationError("--metrics \(metrics): \(error)") }
        }
        if let federateNow, parseTimeArgument(federateNow) == nil {
            throw ValidationError("--federate-now \(federateNow) is not a time; give \(timeArgumentHelp)")
        }
    }

    func run() throws {
        let ctx = try Context.load(global, broker: broker)
        let logger = makeLogger("pilotwatch.serve", level: Logger.Level(rawValue: logLevel) ?? .info)
        let lock = try takeWriterLock(ctx.service.databasePath, logger: logger)
        defer { lock.release() }
        let storage = try ServeStorage.open(ctx, logger: logger)
        let mqttConfig = try mqttConfiguration(ctx.service)
        let subscriber = try MQTTSubscriber(configuration: mqttConfig, logger: logger)
        let tallies = try ServeTallies(metrics: metrics)
        let feedback = makeSiteFeedback(ctx, mqttConfig: mqttConfig, store: storage.store, logger: logger)
        let start = try storage.store.inboxPosition()
        let applier = makeApplier(storage, from: start, tallies: tallies, feedback: feedback, subscriber: subscriber, logger: logger)
        let metricsServer = try tallies.makeMetricsServer(storage, applier: applier, logger: logger)
        defer { metricsServer?.stop() }
        startApplying(storage, applier: applier, from: start, metrics: tallies.metrics, logger: logger)
        let channel = try openChannel(storage, applier: applier, tallies: tallies, logger: logger)
        if let metricsServer {
            metricsServer.start()
            logger.notice("metrics: serving http://\(metricsServer.address)/metrics")
        }
        let notifier = SystemdNotifier()
        let signals = watchSignals(subscriber, notifier: notifier, logger: logger)
        let ticker = startCountsTicker(tallies.counts, notifier: notifier, logger: logger)
        defer { ticker.cancel(); signals.cancel() }
        // The last run's heartbeat, before this run's first beat replaces it: a run that ended
        // without a clean stop is an ingest_stopped alert to record (see AlertLoop).
        let previousHeartbeat = try? storage.store.heartbeat()
        let beats = Heartbeats(store: storage.store, startedAt: .now, logger: logger) {
            storage.inbox.backlogBytes(after: applier.position)
        }
        beats.start(every: heartbeatEvery)
        let connectedSince = followConnection(subscriber, mqttConfig: mqttConfig, beats: beats, metrics: tallies.metrics,
                                              notifier: notifier)
        let alerts = makeAlertLoop(ctx, mqttConfig: mqttConfig, store: storage.store, previous: previousHeartbeat,
                                   metrics: tallies.metrics, logger: logger)
        alerts.start(firstAfter: min(2, alerts.every))
        let federation = try startFederation(ctx, storage, applier: applier, connectedSince: connectedSince, logger: logger)
        defer { federation?.stop() }
        // And reads what the cluster says of its snapshots (refusals are logged and counted).
        let clusterStatus = try ctx.service.federation.map {
            try ClusterFeedback(service: ctx.service, federation: $0, metrics: tallies.metrics, logger: logger)
        }
        clusterStatus?.start()
        defer { clusterStatus?.stop() }
        let purger = scheduleRetention(ctx, store: storage.store, logger: logger)
        defer { purger.cancel() }

        logger.info("pilotwatch serve starting", metadata: [
            "db.path": "\(storage.database)", "inbox.path": "\(storage.inboxPath)", "mqtt.host": "\(mqttConfig.host)",
            "mqtt.port": "\(mqttConfig.port)", "mqtt.client_id": "\(mqttConfig.clientID)",
        ])
        let receiveError = receive(subscriber, into: storage, applier: applier, tallies: tallies, beats: beats, logger: logger)
        channel.stop()
        // Everything acknowledged goes into SQLite before exiting.
        let applyError = applier.finish()
        feedback?.stop()
        beats.stop()
        alerts.stop(clean: receiveError == nil && applyError == nil)
        tallies.logSummary(applier.applyWork, logger: logger)
        if receiveError != nil || applyError != nil { throw ExitCode.failure }
        logger.notice("pilotwatch serve stopped cleanly")
    }

    /// The applier that validates what the inbox holds and commits it to SQLite, behind the
    /// broker; its policy comes from --apply-delay, --apply-due and --max-backlog.
    private func makeApplier(_ storage: ServeStorage, from start: InboxPosition, tallies: ServeTallies, feedback: SiteFeedback?,
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
    private func startApplying(_ storage: ServeStorage, applier: InboxApplier, from start: InboxPosition,
                               metrics: ServeMetrics?, logger: Logger) {
        metrics?.inboxHeldAtStart(storage.inbox, from: start)
        if storage.inbox.end > start {
            logger.notice("inbox: applying \(storage.inbox.backlogBytes(after: start)) bytes acknowledged before the last stop")
        }
        applier.start()
    }

    /// Opens and starts the channel through which maintenance commands hand their work over
    /// (``ServeChannel``).
    private func openChannel(_ storage: ServeStorage, applier: InboxApplier, tallies: ServeTallies,
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

    /// SIGTERM and SIGINT stop the subscriber, which finishes the current batch.
    private func watchSignals(_ subscriber: MQTTSubscriber, notifier: SystemdNotifier, logger: Logger) -> SignalWatcher {
        SignalWatcher(signals: [SIGTERM, SIGINT]) { sig in
            logger.notice("stopping: finishing the current batch", metadata: ["signal": "\(sig)"])
            notifier.send("STOPPING=1")
            subscriber.stop()
        }
    }

    /// The counts line in the log every --counts-every seconds, and as the unit's status.
    private func startCountsTicker(_ counts: IngestCounts, notifier: SystemdNotifier, logger: Logger) -> any DispatchSourceTimer {
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

    /// Follows the broker connection for the heartbeats, the metrics and systemd (Type=notify):
    /// ready once subscribed, a watchdog ping from the MQTT loop, the broker's state as the
    /// unit's status line. Returns since when the connection is up (nil: down), for the
    /// federation's settling.
    private func followConnection(_ subscriber: MQTTSubscriber, mqttConfig: MQTTConfiguration, beats: Heartbeats,
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
    private func startFederation(_ ctx: Context, _ storage: ServeStorage, applier: InboxApplier,
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

    /// The retention policy, a minute after the start and then daily (db purge by hand).
    private func scheduleRetention(_ ctx: Context, store: Store, logger: Logger) -> any DispatchSourceTimer {
        let purger = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pilotwatch.purge"))
        purger.schedule(deadline: .now() + 60, repeating: 86_400)
        purger.setEventHandler { Serve.purge(ctx, store: store, logger: logger) }
        purger.resume()
        return purger
    }

    /// Receives from the broker until stopped: each batch is written to the inbox (and so
    /// acknowledged) and the applier woken. Returns the error that stopped it, if any.
    private func receive(_ subscriber: MQTTSubscriber, into storage: ServeStorage, applier: InboxApplier,
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
    private func makeAlertLoop(_ ctx: Context, mqttConfig: MQTTConfiguration, store: Store, previous: ServiceHeartbeat?,
                               metrics: ServeMetrics?, logger: Logger) -> AlertLoop {
        var settings = ctx.service.alerts
        if let alertsEvery { settings.every = alertsEvery }
        var config = mqttConfig
        config.clientID = String((mqttConfig.clientID + "-alerts").prefix(128))
        config.subscriptions = []
        // Connected from the alert thread at its first round (and retried at every round while
        // down), so that a broker away at start never holds up ingest.
        config.connectTimeout = min(config.connectTimeout, 3)
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

    /// The sites' retained statuses (federation.md, "Feedback"), on a connection of their own
    /// (client id `{client_id}-sites`); nil when no pilot reports aggregates.
    private func makeSiteFeedback(_ ctx: Context, mqttConfig: MQTTConfiguration, store: Store, logger: Logger) -> SiteFeedback? {
        guard ctx.registry.pilots.contains(where: { $0.site != nil }) else { return nil }
        var config = mqttConfig
        config.clientID = String((mqttConfig.clientID + "-sites").prefix(128))
        config.subscriptions = []
        config.connectTimeout = min(config.connectTimeout, 3)
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
    private func takeWriterLock(_ database: String, logger: Logger) throws -> WriterLock {
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
