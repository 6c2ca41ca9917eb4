import ArgumentParser
import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchStore

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the subscriber: validate every message and store it, until SIGTERM or SIGINT.",
        discussion: """
        Subscribes at QoS 1 to {root}/+/+/obs and {root}/+/+/status with a persistent session, so \
        that what the broker queued while pilotwatch was down arrives when it returns. A message \
        is acknowledged to the broker only after it is committed to SQLite; bursts are committed \
        in one transaction (group commit). On SIGTERM or SIGINT it finishes the batch it holds, \
        acknowledges it, disconnects and exits 0. If the database refuses a commit, it stops \
        without acknowledging (exit 1) so that the broker redelivers.

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

    @Option(help: ArgumentHelp("Stop after handling this many messages (benchmarks).", visibility: .hidden))
    var stopAfter: Int?

    func validate() throws {
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after \(stopAfter) must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not a level; use trace, debug, info, notice, warning or error")
        }
        guard countsEvery > 0 else { throw ValidationError("--counts-every \(countsEvery) must be above 0") }
    }

    func run() throws {
        let ctx = try Context.load(global, broker: broker)
        let logger = makeLogger("pilotwatch.serve", level: Logger.Level(rawValue: logLevel) ?? .info)
        let store = try openStore(ctx.service.databasePath)
        let validator = ContractValidator(registry: ctx.registry, catalogue: ctx.catalogue, topicRoot: ctx.service.topicRoot)
        let mqttConfig = try mqttConfiguration(ctx.service)
        let subscriber = try MQTTSubscriber(configuration: mqttConfig, logger: logger)
        let counts = IngestCounts()

        let signals = SignalWatcher(signals: [SIGTERM, SIGINT]) { sig in
            logger.notice("stopping: finishing the current batch", metadata: ["signal": "\(sig)"])
            subscriber.stop()
        }
        let ticker = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pilotwatch.counts"))
        ticker.schedule(deadline: .now() + countsEvery, repeating: countsEvery)
        ticker.setEventHandler { logger.info("\(counts.line())") }
        ticker.resume()
        defer { ticker.cancel(); signals.cancel() }

        logger.info("pilotwatch serve starting", metadata: [
            "db.path": "\(ctx.service.databasePath)", "mqtt.host": "\(mqttConfig.host)", "mqtt.port": "\(mqttConfig.port)",
            "mqtt.client_id": "\(mqttConfig.clientID)",
        ])
        do {
            try subscriber.run { batch in
                let now = Instant.now
                let items = batch.map { m in
                    IngestItem(topic: m.topic, receivedAt: now,
                               verdict: validator.validate(topic: m.topic, payload: m.payload, receivedAt: now),
                               payload: m.payload)
                }
                let outcomes = try store.ingest(items)
                let handled = counts.add(outcomes)
                if let stopAfter, handled >= stopAfter { subscriber.stop() }
            }
        } catch {
            logger.error("stopped without acknowledging the current batch: \(error)")
            logger.info("\(counts.line())")
            throw ExitCode.failure
        }
        logger.info("\(counts.line())")
        logger.notice("pilotwatch serve stopped cleanly")
    }
}

/// Builds the MQTT client configuration from the service configuration.
func mqttConfiguration(_ s: ServiceConfig) throws -> MQTTConfiguration {
    var password: String?
    if let file = s.broker.passwordFile {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw CLIError("broker.password_file \(file) cannot be read; check the path and its permissions")
        }
        password = text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let tls = s.broker.tls.map { MQTTTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) }
    return MQTTConfiguration(
        host: s.broker.host, port: s.broker.port, clientID: s.broker.clientID,
        username: s.broker.username, password: password, tls: tls,
        keepAlive: s.broker.keepAlive, sessionExpirySeconds: UInt32(s.broker.sessionExpirySeconds),
        receiveMaximum: s.broker.receiveMaximum,
        subscriptions: ["\(s.topicRoot)/+/+/obs", "\(s.topicRoot)/+/+/status"])
}

/// Opens the store, turning failures into a one-line error that names the file.
func openStore(_ path: String, readOnly: Bool = false) throws -> Store {
    if !readOnly {
        let folder = ConfigPath.folder(of: path)
        if !FileManager.default.fileExists(atPath: folder) {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
    } else if !FileManager.default.fileExists(atPath: path) {
        throw CLIError("no database at \(path) yet; run `pilotwatch serve` or `pilotwatch ingest` first, or pass --db FILE")
    }
    do {
        var options = StoreOptions()
        options.readOnly = readOnly
        return try Store(path: path, options: options)
    } catch {
        throw CLIError("cannot open the database \(path): \(error)")
    }
}

/// Running totals for the periodic log line; updated by the network thread, read by the timer.
final class IngestCounts: Sendable {
    private struct State {
        var accepted = 0, duplicate = 0, status = 0, observations = 0
        var refused: [ReasonCode: Int] = [:]
    }
    private let state = Mutex(State())

    /// Adds a batch's outcomes; returns how many messages have been handled in all.
    @discardableResult
    func add(_ outcomes: [IngestOutcome]) -> Int {
        state.withLock { s in
            for o in outcomes {
                switch o {
                case .accepted(let n, _): s.accepted += 1; s.observations += n
                case .duplicateMessage: s.duplicate += 1
                case .status: s.status += 1
                case .refused(let r): s.refused[r, default: 0] += 1
                }
            }
            return s.accepted + s.duplicate + s.status + s.refused.values.reduce(0, +)
        }
    }

    func line() -> String {
        state.withLock { s in
            let refused = s.refused.values.reduce(0, +)
            let byReason = s.refused.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " ")
            return "counts: accepted=\(s.accepted) duplicate=\(s.duplicate) status=\(s.status) refused=\(refused)\(byReason.isEmpty ? "" : " (\(byReason))") observations=\(s.observations)"
        }
    }
}
