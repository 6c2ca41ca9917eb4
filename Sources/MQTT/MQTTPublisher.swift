// An MQTT 5 publisher for the simulator, benchmarks and tests: libmosquitto's own network
// thread, and a bounded number of unacknowledged messages.
import CMosquitto
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Publishes messages over one connection with a clean session.
///
/// libmosquitto's network thread (`mosquitto_loop_start`) sends and reconnects; `publish` blocks
/// while `maxUnacknowledged` QoS 1 messages await their PUBACK, so memory stays bounded however
/// fast the caller publishes.
///
/// ```swift
/// let publisher = try MQTTPublisher(configuration: configuration, logger: logger)
/// try publisher.connect()
/// try publisher.publish(topic: "pilots/p1/observations", payload: Array(json.utf8))
/// try publisher.waitForAllAcknowledged(timeout: 30)
/// publisher.disconnect()
/// ```
// @unchecked Sendable: `mosq` and the configuration are immutable; libmosquitto's publish API is
// thread-safe once its own thread runs (it locks its queues). `connect` and `disconnect` are
// serialised by `lifecycle`, which also guards `loopStarted`. Everything the callbacks touch is
// in `PublisherState`, guarded by its condition's lock.
public final class MQTTPublisher: @unchecked Sendable {
    private let configuration: MQTTConfiguration
    private let logger: Logger
    private let maxUnacknowledged: Int
    private let flowControlTimeout: Double
    private let state: PublisherState
    private let retained: Unmanaged<PublisherState>
    private let mosq: OpaquePointer
    private let lifecycle = NSLock()
    private var loopStarted = false

    /// - Parameters:
    ///   - configuration: broker, credentials and TLS; `subscriptions`, `sessionExpirySeconds` and
    ///     `receiveMaximum` are not used. An empty `clientID` lets libmosquitto pick one.
    ///   - maxUnacknowledged: QoS 1 messages allowed in flight before `publish` waits.
    ///   - flowControlTimeout: seconds `publish` waits for room before it throws.
    ///   - will: the message the broker publishes for this client when its connection ends
    ///     without a DISCONNECT (the process died, or the network went).
    public init(
        configuration: MQTTConfiguration, logger: Logger,
        maxUnacknowledged: Int = 1000, flowControlTimeout: Double = 60, will: MQTTMessage? = nil
    ) throws {
        var checked = configuration
        checked.subscriptions = []
        try checked.validate(requireClientID: false, requireSubscriptions: false)
        guard maxUnacknowledged >= 1 else {
            throw MQTTError.invalidConfiguration("max unacknowledged \(maxUnacknowledged) must be at least 1")
        }
        self.configuration = checked
        var logger = logger
        logger[metadataKey: "mqtt.host"] = "\(configuration.host)"
        logger[metadataKey: "mqtt.port"] = "\(configuration.port)"
        if !configuration.clientID.isEmpty {
            logger[metadataKey: "mqtt.client_id"] = "\(configuration.clientID)"
        }
        self.logger = logger
        self.maxUnacknowledged = maxUnacknowledged
        self.flowControlTimeout = flowControlTimeout
        let state = PublisherState(logger: logger, address: checked.address)
        self.state = state
        retained = Unmanaged.passRetained(state)
        var lines = LibraryLines()
        do {
            mosq = try makeClient(
                configuration: checked,
                clientID: checked.clientID.isEmpty ? nil : checked.clientID,
                cleanSession: true, userData: retained.toOpaque(), libraryLines: &lines)
        } catch {
            retained.release()
            throw error
        }
        // libmosquitto keeps at most this many in flight (fewer if the broker's receive maximum
        // is lower); the rest wait in its queue, which `publish` bounds to `maxUnacknowledged`.
        _ = mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, Int32(min(maxUnacknowledged, 65535)))
        if let will {
            let rc = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set_v5(mosq, will.topic, Int32(bytes.count), bytes.baseAddress, Int32(will.qos), will.retain, nil)
            }
            // Every stored property is set: throwing releases self, and deinit frees the client.
            guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
                throw MQTTError.invalidConfiguration("will on \(will.topic): \(describeResult(rc, errno: errno))")
            }
        }
        _ = mosquitto_reconnect_delay_set(
            mosq, UInt32(max(1, configuration.reconnectMin.rounded(.up))),
            UInt32(max(1, configuration.reconnectMax.rounded(.up))), true)
        installCallbacks()
    }

    deinit {
        disconnect()
        mosquitto_destroy(mosq)
        retained.release()
    }

    /// Connects and waits for the broker's CONNACK; throws with the broker's or the library's
    /// reason (OpenSSL's text for TLS failures). Then starts libmosquitto's network thread.
    public func connect() throws {
        try lifecycle.withLock {
            if loopStarted { return }
            state.resetForConnect()
            let rc = mosquitto_connect_bind_v5(
                mosq, configuration.host, Int32(configuration.port), Int32(configuration.keepAlive), nil, nil)
            let savedErrno = errno
            guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
                throw MQTTError.connectFailed(
                    host: configuration.host, port: configuration.port,
                    reason: describeFailure(rc, errno: savedErrno, libraryLines: state.takeLines()))
            }
            // Drive the handshake on this thread so a failure is reported here, not in a log.
            let deadline = ContinuousClock.now + duration(seconds: configuration.connectTimeout)
            while true {
                let loopRC = mosquitto_loop(mosq, 100, 1)
                let loopErrno = errno
                let progress = state.connectProgress()
                if progress.connected { break }
                if let refusal = progress.refusal {
                    throw MQTTError.refused(
                        host: configuration.host, port: configuration.port, reason: describeConnack(refusal))
                }
                if loopRC != Int32(MOSQ_ERR_SUCCESS.rawValue) {
                    throw MQTTError.connectFailed(
                        host: configuration.host, port: configuration.port,
                        reason: describeFailure(loopRC, errno: loopErrno, libraryLines: state.takeLines()))
                }
                if ContinuousClock.now >= deadline {
                    _ = mosquitto_disconnect(mosq)
                    throw MQTTError.timedOut(
                        host: configuration.host, port: configuration.port, waitingFor: "CONNACK",
                        seconds: configuration.connectTimeout)
                }
            }
            let startRC = mosquitto_loop_start(mosq)
            guard startRC == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
                _ = mosquitto_disconnect(mosq)
                throw MQTTError.library(call: "mosquitto_loop_start", reason: describeResult(startRC, errno: errno))
            }
            loopStarted = true
            logger.info("MQTT publisher connected to \(configuration.address)")
        }
    }

    /// Queues one message. With QoS 1 it may block while `maxUnacknowledged` messages await
    /// their PUBACK. While the connection is down, QoS 1 messages wait in libmosquitto's queue
    /// and go out after its automatic reconnect.
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) throws {
        func failure(_ reason: String) -> MQTTError {
            .publishFailed(host: configuration.host, port: configuration.port, topic: topic, reason: reason)
        }
        guard lifecycle.withLock({ loopStarted }) else {
            throw MQTTError.notConnected(host: configuration.host, port: configuration.port)
        }
        guard (0...2).contains(qos) else { throw failure("QoS \(qos) is not 0, 1 or 2") }
        guard isValidPublishTopic(topic) else { throw failure("not a valid topic name (empty, or has + or #)") }
        guard payload.count <= 268_435_455 else {
            throw failure("the payload of \(payload.count) bytes exceeds MQTT's 268435455")
        }
        let deadline = Date(timeIntervalSinceNow: flowControlTimeout)
        guard state.reserveSlot(limit: maxUnacknowledged, deadline: deadline) else {
            throw MQTTError.timedOut(
                host: configuration.host, port: configuration.port,
                waitingFor: "acknowledgements to make room for more messages", seconds: flowControlTimeout)
        }
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(mosq, &mid, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos), retain, nil)
        }
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) { return }
        if rc == Int32(MOSQ_ERR_NO_CONN.rawValue) && qos > 0 {
            // Kept in libmosquitto's outgoing queue; sent once its thread has reconnected.
            return
        }
        let reason = describeResult(rc, errno: errno)
        state.releaseSlot()
        throw failure(reason)
    }

    /// How many times the broker has accepted this client's connection (a reconnect adds one).
    public var connections: Int { state.connections }

    /// Whether the connection is up now.
    public var isConnected: Bool { state.connectProgress().connected }

    /// Waits until every message published so far has been acknowledged (QoS 1) or written
    /// (QoS 0). Throws on timeout, or if the broker rejected any message with a reason code.
    public func waitForAllAcknowledged(timeout: Double) throws {
        let outcome = state.waitUntilDrained(deadline: Date(timeIntervalSinceNow: timeout))
        if outcome.outstanding > 0 {
            throw MQTTError.timedOut(
                host: configuration.host, port: configuration.port,
                waitingFor: "acknowledgement of \(outcome.outstanding) message(s)", seconds: timeout)
        }
        if let rejection = outcome.rejection {
            throw MQTTError.publishFailed(
                host: configuration.host, port: configuration.port, topic: rejection.topic, reason: rejection.reason)
        }
    }

    /// Sends DISCONNECT and stops the network thread. Messages not yet acknowledged are dropped
    /// with the clean session; call `waitForAllAcknowledged` first to avoid that.
    public func disconnect() {
        lifecycle.withLock {
            guard loopStarted else { return }
            _ = mosquitto_disconnect_v5(mosq, Int32(MQTT_RC_NORMAL_DISCONNECTION.rawValue), nil)
            _ = mosquitto_loop_stop(mosq, false)
            loopStarted = false
            state.markClosed()
            logger.info("MQTT publisher disconnected from \(configuration.address)")
        }
    }

    private func installCallbacks() {
        mosquitto_connect_v5_callback_set(mosq) { _, userData, rc, _, _ in
            guard let userData else { return }
            Unmanaged<PublisherState>.fromOpaque(userData).takeUnretainedValue().connected(rc: rc)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, userData, rc, _ in
            guard let userData else { return }
            Unmanaged<PublisherState>.fromOpaque(userData).takeUnretainedValue().disconnected(rc: rc)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, userData, mid, reasonCode, _ in
            guard let userData else { return }
            Unmanaged<PublisherState>.fromOpaque(userData).takeUnretainedValue()
                .acknowledged(mid: mid, reasonCode: reasonCode)
        }
        mosquitto_log_callback_set(mosq) { _, userData, level, text in
            guard let userData, let text, isProblemLevel(level) else { return }
            Unmanaged<PublisherState>.fromOpaque(userData).takeUnretainedValue().libraryLine(String(cString: text))
        }
    }
}

/// What the publisher's callbacks share with the calling threads.
// @unchecked Sendable: every mutable property is read and written only with `condition` locked.
private final class PublisherState: @unchecked Sendable {
    private let condition = NSCondition()
    private let logger: Logger
    private let address: String
    private var isConnected = false
    private var everConnected = false
    private var connectionCount = 0
    private var refusal: Int32?
    private var unacknowledged = 0
    /// Threads in `publish` waiting for room, and the count they wait to fall below.
    private var publishWaiters = 0
    private var resumeBelow = 1
    /// True while `waitUntilDrained` waits.
    private var drainWaiters = 0
    private var rejection: (topic: String, reason: String)?
    private var lines = LibraryLines()

    init(logger: Logger, address: String) {
        self.logger = logger
        self.address = address
    }

    func resetForConnect() {
        condition.withLock {
            isConnected = false
            everConnected = false
            refusal = nil
            unacknowledged = 0
            rejection = nil
            _ = lines.take()
        }
    }

    func connectProgress() -> (connected: Bool, refusal: Int32?) {
        condition.withLock { (isConnected, refusal) }
    }

    var connections: Int { condition.withLock { connectionCount } }

    func takeLines() -> [String] {
        condition.withLock { lines.take() }
    }

    /// Waits for room under `limit` unacknowledged messages and takes it; false on timeout.
    ///
    /// A full window is refilled in bulk: the waiting publisher resumes once half the window has
    /// been acknowledged, instead of being woken for every single PUBACK.
    func reserveSlot(limit: Int, deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if unacknowledged >= limit {
            let lowWater = max(1, limit / 2)
            publishWaiters += 1
            defer { publishWaiters -= 1 }
            resumeBelow = lowWater
            while unacknowledged >= lowWater {
                if !condition.wait(until: deadline) {
                    // Timed out: go on if there is any room at all, else give up.
                    if unacknowledged >= limit { return false }
                    break
                }
            }
        }
        unacknowledged += 1
        return true
    }

    func releaseSlot() {
        condition.withLock {
            unacknowledged -= 1
            condition.broadcast()
        }
    }

    func waitUntilDrained(deadline: Date) -> (outstanding: Int, rejection: (topic: String, reason: String)?) {
        condition.lock()
        defer { condition.unlock() }
        drainWaiters += 1
        defer { drainWaiters -= 1 }
        while unacknowledged > 0 {
            if !condition.wait(until: deadline) { break }
        }
        // A rejection is reported once: the next wait is about what is published after it.
        defer { rejection = nil }
        return (unacknowledged, rejection)
    }

    func markClosed() {
        condition.withLock {
            isConnected = false
            condition.broadcast()
        }
    }

    // Callbacks (on the connecting thread during `connect`, then on libmosquitto's thread).

    func connected(rc: Int32) {
        condition.withLock {
            if rc == 0 {
                if everConnected {
                    logger.info("MQTT publisher reconnected to \(address)")
                }
                isConnected = true
                everConnected = true
                connectionCount += 1
            } else {
                refusal = rc
                logger.warning("MQTT broker \(address) refused the publisher: \(describeConnack(rc))")
            }
            condition.broadcast()
        }
    }

    func disconnected(rc: Int32) {
        condition.withLock {
            if isConnected && rc != 0 {
                logger.warning(
                    "MQTT publisher lost the connection to \(address): \(describeFailure(rc, errno: errno, libraryLines: lines.take())); libmosquitto reconnects")
            }
            isConnected = false
            condition.broadcast()
        }
    }

    func acknowledged(mid: Int32, reasonCode: Int32) {
        condition.withLock {
            unacknowledged = max(0, unacknowledged - 1)
            if reasonCode >= 0x80 && rejection == nil {
                rejection = ("message id \(mid)", describeConnack(reasonCode))
            }
            if publishWaiters > 0 && unacknowledged < resumeBelow {
                condition.broadcast()
            } else if drainWaiters > 0 && unacknowledged == 0 {
                condition.broadcast()
            }
        }
    }

    func libraryLine(_ line: String) {
        condition.withLock { lines.append(line) }
    }
}
