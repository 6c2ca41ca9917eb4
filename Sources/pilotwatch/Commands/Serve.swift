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
        startMetricsServer(metricsServer, logger: logger)
        let notifier = SystemdNotifier()
        let signals = watchSignals(subscriber, notifier: notifier, logger: logger)
        let ticker = startCountsTicker(tallies.counts, notifier: notifier, logger: logger)
        defer { ticker.cancel(); signals.cancel() }
        // The last run's heartbeat, before this run's first beat replaces it: a run that ended
        // without a clean stop is an ingest_stopped alert to record (see AlertLoop).
        let previousHeartbeat = try? storage.store.heartbeat()
        let beats = startHeartbeats(storage, applier: applier, logger: logger)
        let connectedSince = followConnection(subscriber, mqttConfig: mqttConfig, beats: beats, metrics: tallies.metrics,
                                              notifier: notifier)
        let alerts = makeAlertLoop(ctx, mqttConfig: mqttConfig, store: storage.store, previous: previousHeartbeat,
                                   metrics: tallies.metrics, logger: logger)
        alerts.start(firstAfter: min(2, alerts.every))
        let federation = try startFederation(ctx, storage, applier: applier, connectedSince: connectedSince, logger: logger)
        defer { federation?.stop() }
        let clusterStatus = try startClusterFeedback(ctx, metrics: tallies.metrics, logger: logger)
        defer { clusterStatus?.stop() }
        let purger = scheduleRetention(ctx, store: storage.store, logger: logger)
        defer { purger.cancel() }

        logStart(storage, mqttConfig: mqttConfig, logger: logger)
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
}
