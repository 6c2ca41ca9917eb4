// Helpers for the MQTT tests: an in-memory log handler, a subscriber running on its own thread,
// and bounded waiting.
import Foundation
import Logging
import MQTT
import TestSupport

/// Log records kept in memory so tests can read what the module logged.
final class LogStore: @unchecked Sendable {
    // @unchecked Sendable: `entries` is only touched with `lock` held.
    private let lock = NSLock()
    private var entries: [(level: Logger.Level, text: String)] = []

    func append(level: Logger.Level, text: String) {
        lock.withLock { entries.append((level, text)) }
    }

    /// Every message (with its metadata) at or above `level`.
    func messages(atLeast level: Logger.Level = .trace) -> [String] {
        lock.withLock { entries.filter { $0.level >= level }.map(\.text) }
    }

    func count(containing fragment: String) -> Int {
        lock.withLock { entries.filter { $0.text.contains(fragment) }.count }
    }
}

struct CapturingLogHandler: LogHandler {
    let store: LogStore
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        for (key, value) in event.metadata ?? [:] { all[key] = value }
        let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        store.append(level: event.level, text: "\(event.message) [\(rendered)]")
    }
}

func makeLogger(_ store: LogStore, label: String = "mqtt-test") -> Logger {
    Logger(label: label) { _ in CapturingLogHandler(store: store) }
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass; returns whether it held.
/// The timeout only bounds a test that would otherwise hang; nothing asserts on elapsed time.
func waitUntil(timeout: Double = 30, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while !condition() {
        if Date() >= deadline { return false }
        usleep(10_000)
    }
    return true
}

struct HandlerFailure: Error, Equatable {
    let batchSize: Int
}

/// An `MQTTSubscriber` whose `run` executes on a dedicated thread, recording every batch.
final class RunningSubscriber: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is guarded by `lock`; `subscriber` is Sendable.
    let subscriber: MQTTSubscriber
    let logs: LogStore
    private let lock = NSLock()
    private var batches: [[MQTTMessage]] = []
    private var failedBatches: [[MQTTMessage]] = []
    private var result: Result<Void, Error>?
    private var connectionEvents: [Bool] = []
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - failWhen: decides, per batch (with the number of batches already stored), whether the
    ///     handler throws instead of storing it.
    ///   - lingerBeforeFailing: seconds a failing handler waits before it throws. This gives any
    ///     acknowledgement that leaked out early time to reach the broker and be applied, so that
    ///     a leak shows up as a missing redelivery instead of being hidden by the connection reset.
    ///   - readGate: handed to `run`; while it returns false, delivery is paused.
    init(
        configuration: MQTTConfiguration, logs: LogStore = LogStore(), lingerBeforeFailing: Double = 0,
        failWhen: @escaping @Sendable (_ batch: [MQTTMessage], _ storedBatches: Int) -> Bool = { _, _ in false },
        readGate: @escaping @Sendable () -> Bool = { true }
    ) throws {
        self.logs = logs
        subscriber = try MQTTSubscriber(configuration: configuration, logger: makeLogger(logs))
        subscriber.onConnectionChange = { [weak self] connected in
            guard let self else { return }
            self.lock.withLock { self.connectionEvents.append(connected) }
        }
        let thread = Thread { [self] in
            let outcome = Result<Void, Error> {
                try subscriber.run(readGate: readGate) { batch in
                    let stored = self.lock.withLock { self.batches.count }
                    if failWhen(batch, stored) {
                        self.lock.withLock { self.failedBatches.append(batch) }
                        if lingerBeforeFailing > 0 { usleep(UInt32(lingerBeforeFailing * 1_000_000)) }
                        throw HandlerFailure(batchSize: batch.count)
                    }
                    self.lock.withLock { self.batches.append(batch) }
                }
            }
            self.lock.withLock { self.result = outcome }
            self.finished.signal()
        }
        thread.start()
    }

    var messages: [MQTTMessage] { lock.withLock { batches.flatMap { $0 } } }
    var storedBatches: [[MQTTMessage]] { lock.withLock { batches } }
    var failed: [[MQTTMessage]] { lock.withLock { failedBatches } }
    var runResult: Result<Void, Error>? { lock.withLock { result } }
    var connections: [Bool] { lock.withLock { connectionEvents } }
    var connectCount: Int { connections.filter { $0 }.count }

    /// Waits until the broker has granted the subscriptions of `connects` connections.
    func waitUntilSubscribed(filters: Int = 1, connects: Int = 1, timeout: Double = 30) -> Bool {
        waitUntil(timeout: timeout) { logs.count(containing: "MQTT subscribed") >= filters * connects }
    }

    func waitForMessages(_ count: Int, timeout: Double = 60) -> Bool {
        waitUntil(timeout: timeout) { messages.count >= count }
    }

    /// Waits for `run` to return on its own (after a handler failure, for instance).
    func waitForFinish(timeout: Double = 30) -> Bool {
        if finished.wait(timeout: .now() + timeout) == .timedOut { return false }
        finished.signal()
        return true
    }

    /// Calls `stop()` and waits for `run` to return; true if it did.
    @discardableResult
    func stop(timeout: Double = 30) -> Bool {
        subscriber.stop()
        return waitForFinish(timeout: timeout)
    }
}

func subscriberConfiguration(
    _ broker: TestBroker, clientID: String, subscriptions: [String] = ["t/#"], receiveMaximum: Int = 256
) -> MQTTConfiguration {
    MQTTConfiguration(
        host: broker.host, port: broker.port, clientID: clientID, keepAlive: 10,
        receiveMaximum: receiveMaximum, subscriptions: subscriptions, reconnectMin: 0.1, reconnectMax: 0.5)
}

func publisherConfiguration(_ broker: TestBroker, clientID: String = "") -> MQTTConfiguration {
    MQTTConfiguration(host: broker.host, port: broker.port, clientID: clientID)
}

/// Publishes `count` QoS 1 messages `prefix-0`, `prefix-1`, ... to `topic` and waits for every PUBACK.
@discardableResult
func publishNumbered(
    _ broker: TestBroker, topic: String, prefix: String, count: Int, logs: LogStore = LogStore()
) throws -> Set<String> {
    let publisher = try MQTTPublisher(configuration: publisherConfiguration(broker), logger: makeLogger(logs))
    try publisher.connect()
    var sent = Set<String>()
    for index in 0..<count {
        let text = "\(prefix)-\(index)"
        try publisher.publish(topic: topic, payload: Array(text.utf8))
        sent.insert(text)
    }
    try publisher.waitForAllAcknowledged(timeout: 60)
    publisher.disconnect()
    return sent
}

func texts(_ messages: [MQTTMessage]) -> [String] {
    messages.map { String(decoding: $0.payload, as: UTF8.self) }
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8]()
    bytes.reserveCapacity(count)
    for _ in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes.append(UInt8(truncatingIfNeeded: state))
    }
    return bytes
}
