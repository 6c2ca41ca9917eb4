// A persistent-session MQTT 5 subscriber whose acknowledgements leave only after the
// application has stored the messages ("stored before acknowledged", with group commit).
import CMosquitto
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Receives the messages of a persistent MQTT 5 session and hands them to the application in
/// batches; a batch's QoS 1 acknowledgements (PUBACKs) reach the broker only after the
/// application's handler has returned.
///
/// How: libmosquitto 2.0 queues the PUBACK for a QoS 1 message inside `handle__publish`,
/// *before* it calls `on_message`, and a client marked threaded (`mosquitto_threaded_set`) only
/// puts queued packets on the wire in `mosquitto_loop_write`. The subscriber drives the loop
/// itself on the calling thread: `poll` on the socket, `mosquitto_loop_read` for every packet
/// available (the messages are copied into a batch), the handler with the whole batch, and only
/// then `mosquitto_loop_write`. If the handler throws, the socket is shut down without a single
/// further byte written and the broker delivers the batch again on the next connection.
///
/// ```swift
/// let subscriber = try MQTTSubscriber(configuration: configuration, logger: logger)
/// signalSource.setEventHandler { subscriber.stop() }
/// try subscriber.run { batch in try store.commit(batch) }
/// ```
///
/// The session is persistent: a fixed client id, clean start off, a session-expiry interval on
/// CONNECT, and every subscription renewed (QoS 1) on every connect. The broker may therefore
/// deliver a message again after a crash or a lost connection; the handler must treat a repeat
/// as a duplicate, not as a new message.
///
/// Back-pressure: instead of blocking inside the handler (which stops all traffic, so that the
/// broker drops the connection after 1.5 keep-alives), pass a `readGate` to `run`; see there.
// @unchecked Sendable: the stored properties are immutable (`let`) except `running` and
// `connectionChange`, which are only read and written with `lock` held. Everything that touches
// libmosquitto lives in `run`'s local state on the one thread that called `run` (a second
// concurrent `run` is refused). `stop()` only writes one byte to a non-blocking pipe.
public final class MQTTSubscriber: @unchecked Sendable {
    private let configuration: MQTTConfiguration
    private let logger: Logger
    /// Readable once `stop()` has been called; never drained, so every later poll sees it.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let lock = NSLock()
    private var running = false
    private var connectionChange: (@Sendable (Bool) -> Void)?

    /// Called on `run`'s thread with `true` after each successful CONNACK and `false` when such a
    /// connection ends.
    public var onConnectionChange: (@Sendable (Bool) -> Void)? {
        get { lock.withLock { connectionChange } }
        set { lock.withLock { connectionChange = newValue } }
    }

    private var loopTurn: (@Sendable () -> Void)?

    /// Called on `run`'s thread at every turn of its loop (at least once a second), connected or
    /// waiting to reconnect: a sign of life for a watchdog. Must return at once.
    public var onLoopTurn: (@Sendable () -> Void)? {
        get { lock.withLock { loopTurn } }
        set { lock.withLock { loopTurn = newValue } }
    }

    /// Checks the configuration (a client id and at least one valid topic filter are required).
    public init(configuration: MQTTConfiguration, logger: Logger) throws {
        try configuration.validate(requireClientID: true, requireSubscriptions: true)
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "mqtt.host"] = "\(configuration.host)"
        logger[metadataKey: "mqtt.port"] = "\(configuration.port)"
        logger[metadataKey: "mqtt.client_id"] = "\(configuration.clientID)"
        self.logger = logger
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw MQTTError.library(call: "pipe", reason: String(cString: strerror(errno)))
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Asks `run` to finish: it returns once the batch in hand is handled and acknowledged and the
    /// client has disconnected cleanly. Safe from any thread, and cheap enough for a signal
    /// handler (one `write` to a pipe). A stopped subscriber does not run again; make a new one.
    public func stop() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Blocks the calling thread: connects (retrying with capped exponential backoff), subscribes,
    /// and calls `handler` with every burst of messages; their acknowledgements leave only after
    /// `handler` returns.
    ///
    /// Returns after `stop()`. Throws what `handler` threw (after closing the connection without
    /// acknowledging that batch), or an `MQTTError` if the client cannot be set up. Connection
    /// failures are logged and retried, not thrown.
    ///
    /// - Parameters:
    ///   - readGate: asked on `run`'s thread on every turn of the loop (before each read, and at
    ///     least every 100 ms while it says false) whether the application wants more messages.
    ///     While it returns false the subscriber keeps the connection: it still writes (the
    ///     acknowledgements of batches already handled, PINGREQ) and stops reading the socket,
    ///     except once every half keep-alive (at least every second), so that the broker's
    ///     PINGRESP is read before libmosquitto gives up on it. Whatever such a read brings is handed to `handler` as a
    ///     normal batch, acknowledged only after `handler` returns; nothing is dropped.
    ///     **Bound:** while the gate is closed `handler` gets at most one batch per
    ///     `max(keepAlive / 2, 1)` seconds, plus one when a connection is made (the CONNACK is
    ///     always read), each of at most `receiveMaximum` messages and about `maxBatchBytes`
    ///     bytes. With keep-alive 30 s and receive maximum 256: at most 256 messages every 15 s.
    ///     Reading resumes at most 100 ms after the gate opens; `stop()` works while it is closed.
    ///   - handler: stores a batch; it must not block for long (see `readGate`).
    ///
    /// ```swift
    /// try subscriber.run(readGate: { store.backlogBytes <= limit }) { batch in
    ///     try store.commit(batch)   // returns at once, even over the limit
    /// }
    /// ```
    public func run(readGate: () -> Bool = { true }, handler: ([MQTTMessage]) throws -> Void) throws {
        try lock.withLock {
            if running { throw MQTTError.alreadyRunning(clientID: configuration.clientID) }
            running = true
        }
        defer { lock.withLock { running = false } }

        let session = SubscriberSession(configuration: configuration, logger: logger)
        let retained = Unmanaged.passRetained(session)
        defer { retained.release() }
        let mosq = try makeClient(
            configuration: configuration, clientID: configuration.clientID, cleanSession: false,
            userData: retained.toOpaque(), libraryLines: &session.libraryLines)
        defer { mosquitto_destroy(mosq) }
        var properties = try makeConnectProperties(sessionExpirySeconds: configuration.sessionExpirySeconds)
        defer { mosquitto_property_free_all(&properties) }

        // Threaded: libmosquitto never writes from inside its own calls; only loop_write writes.
        _ = mosquitto_threaded_set(mosq, true)
        installCallbacks(mosq)

        var delay = configuration.reconnectMin
        while !stopRequested() {
            let reason: String
            switch connect(mosq, session: session, properties: properties) {
            case .failure(let failure):
                reason = failure.reason
                logger.warning(
                    "MQTT connection to \(configuration.address) failed: \(reason); retrying in \(format(delay)) s")
            case .success:
                switch try serve(mosq, session: session, readGate: readGate, handler: handler) {
                case .stopped(let wasConnected):
                    disconnectCleanly(mosq, session: session, wasConnected: wasConnected)
                    logger.info("MQTT subscriber stopped")
                    return
                case .lost(let lostReason, let wasConnected):
                    reason = lostReason
                    if wasConnected {
                        delay = configuration.reconnectMin
                        notifyConnection(false)
                        logger.warning(
                            "MQTT connection to \(configuration.address) lost: \(reason); reconnecting in \(format(delay)) s")
                    } else {
                        logger.warning(
                            "MQTT connection to \(configuration.address) failed: \(reason); retrying in \(format(delay)) s")
                    }
                }
            }
            if waitForStop(seconds: delay) { break }
            delay = min(delay * 2, configuration.reconnectMax)
        }
        logger.info("MQTT subscriber stopped")
    }

    // MARK: - Connection phases

    private enum Outcome {
        case stopped(wasConnected: Bool)
        case lost(reason: String, wasConnected: Bool)
    }

    /// Opens the TCP (and TLS) connection and queues CONNECT; the CONNACK arrives in `serve`.
    private func connect(
        _ mosq: OpaquePointer, session: SubscriberSession, properties: OpaquePointer?
    ) -> Result<Void, ConnectFailure> {
        session.resetForConnect()
        let rc = mosquitto_connect_bind_v5(
            mosq, configuration.host, Int32(configuration.port), Int32(configuration.keepAlive), nil, properties)
        let savedErrno = errno
        guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
            return .failure(ConnectFailure(
                describeFailure(rc, errno: savedErrno, libraryLines: session.libraryLines.take())))
        }
        return .success(())
    }

    /// Runs one connection until it is lost or `stop()` is called.
    private func serve(
        _ mosq: OpaquePointer, session: SubscriberSession, readGate: () -> Bool,
        handler: ([MQTTMessage]) throws -> Void
    ) throws -> Outcome {
        let connackDeadline = ContinuousClock.now + duration(seconds: configuration.connectTimeout)
        var announced = false
        var keepAliveReads = KeepAliveReads(keepAlive: configuration.keepAlive)
        var paused = false
        let turn = onLoopTurn
        while true {
            turn?()
            if session.connected && !announced {
                announced = true
                logger.info(
                    "MQTT connected to \(configuration.address)",
                    metadata: ["mqtt.session_present": "\(session.sessionPresent)"])
                notifyConnection(true)
            }
            if let refusal = session.refusal {
                forceClose(mosq, session: session)
                return .lost(reason: "the broker refused the connection: \(describeConnack(refusal))", wasConnected: false)
            }
            let sock = mosquitto_socket(mosq)
            if sock < 0 {
                return .lost(reason: session.takeLossReason(), wasConnected: announced)
            }
            if !session.connected && ContinuousClock.now >= connackDeadline {
                forceClose(mosq, session: session)
                return .lost(
                    reason: "no CONNACK within \(format(configuration.connectTimeout)) s", wasConnected: false)
            }

            // Writing is allowed here: every PUBACK queued so far belongs to a batch that the
            // handler has already stored.
            if mosquitto_want_write(mosq) {
                let rc = mosquitto_loop_write(mosq, 1)
                if rc != Int32(MOSQ_ERR_SUCCESS.rawValue) || mosquitto_socket(mosq) < 0 {
                    return .lost(reason: session.lossReason(rc, errno: errno), wasConnected: announced)
                }
            }

            // The CONNACK is always read; after it the application's gate decides, except for the
            // reads that keep the connection alive.
            let receiving = !session.connected || readGate()
            if paused == receiving {
                paused = !receiving
                logger.debug(paused ? "MQTT delivery paused by the read gate" : "MQTT delivery resumed")
            }
            let keepAliveRead = paused && keepAliveReads.isDue()
            let reading = receiving || keepAliveRead
            let pendingTLS = reading && tlsHasPendingData(mosq)
            var events: Int16 = reading ? Int16(POLLIN) : 0
            if mosquitto_want_write(mosq) { events |= Int16(POLLOUT) }
            var fds = [
                pollfd(fd: sock, events: events, revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let timeout: Int32 = if pendingTLS || keepAliveRead {
                0
            } else if paused {
                keepAliveReads.pollTimeout()
            } else {
                session.connected ? 1000 : milliseconds(until: connackDeadline, cap: 1000)
            }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR {
                let reason = String(cString: strerror(errno))
                forceClose(mosq, session: session)
                return .lost(reason: "poll failed: \(reason)", wasConnected: announced)
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                return .stopped(wasConnected: announced)
            }
            let revents = fds[0].revents
            if revents & Int16(POLLOUT) != 0 {
                let rc = mosquitto_loop_write(mosq, 1)
                if rc != Int32(MOSQ_ERR_SUCCESS.rawValue) || mosquitto_socket(mosq) < 0 {
                    return .lost(reason: session.lossReason(rc, errno: errno), wasConnected: announced)
                }
            }
            if keepAliveRead { keepAliveReads.noteRead() }
            // While paused POLLIN is not asked for, but POLLERR and POLLHUP are always reported:
            // reading then notices the lost connection. If the gate closed while `poll` waited,
            // what came meanwhile waits too.
            let mustRead = keepAliveRead || !session.connected || revents & Int16(POLLERR | POLLHUP) != 0
            if (pendingTLS || revents & Int16(POLLIN | POLLERR | POLLHUP) != 0) && (mustRead || readGate()) {
                keepAliveReads.noteRead()
                let readRC = readBurst(mosq, session: session, socket: sock)
                let readErrno = errno
                let batch = session.takeBatch()
                if !batch.isEmpty {
                    do {
                        try handler(batch)
                    } catch {
                        // Not one more byte goes out: the PUBACKs of this batch stay unsent and
                        // the broker delivers the batch again on the next connection.
                        forceClose(mosq, session: session)
                        if announced { notifyConnection(false) }
                        logger.error(
                            "MQTT batch handler failed; closed the connection without acknowledging \(batch.count) message(s), which the broker will deliver again: \(error)")
                        throw error
                    }
                }
                if readRC != Int32(MOSQ_ERR_SUCCESS.rawValue) || mosquitto_socket(mosq) < 0 {
                    return .lost(reason: session.lossReason(readRC, errno: readErrno), wasConnected: announced)
                }
                // The batch is stored: release its acknowledgements.
                if mosquitto_want_write(mosq) {
                    let rc = mosquitto_loop_write(mosq, 1)
                    if rc != Int32(MOSQ_ERR_SUCCESS.rawValue) || mosquitto_socket(mosq) < 0 {
                        return .lost(reason: session.lossReason(rc, errno: errno), wasConnected: announced)
                    }
                }
            }
            // Keep-alive: queues PINGREQ when idle, closes the socket when the broker went silent.
            let miscRC = mosquitto_loop_misc(mosq)
            if mosquitto_socket(mosq) < 0 {
                return .lost(reason: session.lossReason(miscRC, errno: errno), wasConnected: announced)
            }
        }
    }

    /// Reads every packet available now, up to the batch bounds. Returns the first failing result.
    private func readBurst(_ mosq: OpaquePointer, session: SubscriberSession, socket: Int32) -> Int32 {
        while true {
            errno = 0
            let rc = mosquitto_loop_read(mosq, 1)
            if rc != Int32(MOSQ_ERR_SUCCESS.rawValue) || mosquitto_socket(mosq) < 0 { return rc }
            if session.batchIsFull { return rc }
            if !(tlsHasPendingData(mosq) || isReadable(socket)) { return rc }
        }
    }

    /// Shuts the socket in both directions, then lets libmosquitto notice and close it. Nothing
    /// queued (in particular no PUBACK) can be written after the shutdown. Messages read while
    /// draining are discarded; they were never acknowledged.
    private func forceClose(_ mosq: OpaquePointer, session: SubscriberSession) {
        let sock = mosquitto_socket(mosq)
        guard sock >= 0 else { return }
        _ = shutdown(sock, Int32(SHUT_RDWR))
        var attempts = 0
        while mosquitto_socket(mosq) >= 0 && attempts < 100_000 {
            _ = mosquitto_loop_read(mosq, 1)
            attempts += 1
        }
        _ = session.takeBatch()
        session.connected = false
    }

    /// Sends DISCONNECT (normal disconnection) after any acknowledgements still queued, waiting
    /// a bounded time for the socket to drain. The session stays on the broker.
    private func disconnectCleanly(_ mosq: OpaquePointer, session: SubscriberSession, wasConnected: Bool) {
        guard mosquitto_socket(mosq) >= 0 else { return }
        let rc = mosquitto_disconnect_v5(mosq, Int32(MQTT_RC_NORMAL_DISCONNECTION.rawValue), nil)
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) {
            let deadline = ContinuousClock.now + .seconds(5)
            while mosquitto_socket(mosq) >= 0 && ContinuousClock.now < deadline {
                let writeRC = mosquitto_loop_write(mosq, 1)
                if writeRC != Int32(MOSQ_ERR_SUCCESS.rawValue) { break }
                let sock = mosquitto_socket(mosq)
                if sock < 0 { break }
                var fd = pollfd(fd: sock, events: Int16(POLLOUT), revents: 0)
                _ = poll(&fd, 1, milliseconds(until: deadline, cap: 100))
            }
        }
        if mosquitto_socket(mosq) >= 0 {
            logger.warning("MQTT DISCONNECT could not be sent to \(configuration.address) in time; closing the socket")
            forceClose(mosq, session: session)
        }
        if wasConnected {
            notifyConnection(false)
        }
        logger.info("MQTT disconnected from \(configuration.address)")
    }

    // MARK: - Helpers

    private func stopRequested() -> Bool {
        isReadable(wakeRead)
    }

    /// Sleeps up to `seconds`, waking early for `stop()`; returns true if stop was requested.
    private func waitForStop(seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + duration(seconds: seconds)
        let turn = onLoopTurn
        while true {
            turn?()
            var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fd, 1, milliseconds(until: deadline, cap: 1000))
            if ready > 0 { return true }
            if ContinuousClock.now >= deadline { return false }
        }
    }

    private func notifyConnection(_ connected: Bool) {
        onConnectionChange?(connected)
    }

    private func installCallbacks(_ mosq: OpaquePointer) {
        mosquitto_connect_v5_callback_set(mosq) { mosq, userData, rc, flags, _ in
            guard let mosq, let userData else { return }
            Unmanaged<SubscriberSession>.fromOpaque(userData).takeUnretainedValue()
                .connected(mosq, rc: rc, flags: flags)
        }
        mosquitto_message_v5_callback_set(mosq) { _, userData, message, _ in
            guard let userData, let message else { return }
            Unmanaged<SubscriberSession>.fromOpaque(userData).takeUnretainedValue()
                .received(message.pointee)
        }
        mosquitto_subscribe_v5_callback_set(mosq) { _, userData, mid, count, granted, _ in
            guard let userData else { return }
            let grantedQoS = (0..<Int(max(count, 0))).map { granted?[$0] ?? 0x80 }
            Unmanaged<SubscriberSession>.fromOpaque(userData).takeUnretainedValue()
                .subscribed(mid: mid, granted: grantedQoS)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, userData, rc, _ in
            guard let userData else { return }
            Unmanaged<SubscriberSession>.fromOpaque(userData).takeUnretainedValue().disconnected(rc: rc)
        }
        mosquitto_log_callback_set(mosq) { _, userData, level, text in
            guard let userData, let text, isProblemLevel(level) else { return }
            Unmanaged<SubscriberSession>.fromOpaque(userData).takeUnretainedValue()
                .libraryLines.append(String(cString: text))
        }
    }
}

private struct ConnectFailure: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// The state libmosquitto's callbacks reach through the user-data pointer. Used only on the
/// thread running `MQTTSubscriber.run` (every callback fires inside a libmosquitto call made there).
private final class SubscriberSession {
    let configuration: MQTTConfiguration
    let logger: Logger
    let maxBatchMessages: Int
    var libraryLines = LibraryLines()

    private(set) var batch: [MQTTMessage] = []
    private var batchBytes = 0
    var connected = false
    var sessionPresent = false
    var refusal: Int32?
    private var disconnectRC: Int32?
    private var subscriptionsByMid: [Int32: String] = [:]

    init(configuration: MQTTConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        maxBatchMessages = configuration.receiveMaximum
        batch.reserveCapacity(maxBatchMessages)
    }

    var batchIsFull: Bool {
        batch.count >= maxBatchMessages || batchBytes >= configuration.maxBatchBytes
    }

    func takeBatch() -> [MQTTMessage] {
        defer {
            batch = []
            batch.reserveCapacity(maxBatchMessages)
            batchBytes = 0
        }
        return batch
    }

    func resetForConnect() {
        connected = false
        sessionPresent = false
        refusal = nil
        disconnectRC = nil
        subscriptionsByMid.removeAll()
        _ = libraryLines.take()
    }

    /// Why the connection ended, from a libmosquitto result and what the callbacks saw.
    func lossReason(_ rc: Int32, errno savedErrno: Int32) -> String {
        if let refusal {
            _ = libraryLines.take()
            return "the broker refused the connection: \(describeConnack(refusal))"
        }
        let code = rc != Int32(MOSQ_ERR_SUCCESS.rawValue) ? rc : (disconnectRC ?? Int32(MOSQ_ERR_CONN_LOST.rawValue))
        disconnectRC = nil
        return describeFailure(code, errno: savedErrno, libraryLines: libraryLines.take())
    }

    func takeLossReason() -> String {
        lossReason(Int32(MOSQ_ERR_SUCCESS.rawValue), errno: 0)
    }

    // MARK: Callbacks

    func connected(_ mosq: OpaquePointer, rc: Int32, flags: Int32) {
        guard rc == 0 else {
            refusal = rc
            return
        }
        connected = true
        sessionPresent = flags & 1 != 0
        for filter in configuration.subscriptions {
            var mid: Int32 = 0
            // Retained messages only when the subscription is new: the session already holds
            // everything published since, so a reconnect does not replay them.
            let subscribeRC = mosquitto_subscribe_v5(
                mosq, &mid, filter, 1, Int32(MQTT_SUB_OPT_SEND_RETAIN_NEW.rawValue), nil)
            if subscribeRC == Int32(MOSQ_ERR_SUCCESS.rawValue) {
                subscriptionsByMid[mid] = filter
            } else {
                logger.error(
                    "MQTT could not subscribe",
                    metadata: ["mqtt.topic_filter": "\(filter)", "mqtt.reason": "\(describeResult(subscribeRC, errno: errno))"])
            }
        }
    }

    func received(_ message: mosquitto_message) {
        let topic = message.topic.map { String(cString: $0) } ?? ""
        let count = Int(max(message.payloadlen, 0))
        let payload: [UInt8]
        if count > 0, let bytes = message.payload {
            payload = Array(UnsafeRawBufferPointer(start: bytes, count: count))
        } else {
            payload = []
        }
        batch.append(MQTTMessage(topic: topic, payload: payload, qos: Int(message.qos), retain: message.retain))
        batchBytes += count
    }

    func subscribed(mid: Int32, granted: [Int32]) {
        let filter = subscriptionsByMid.removeValue(forKey: mid) ?? "?"
        for code in granted where code >= 0x80 {
            logger.error(
                "MQTT broker refused the subscription",
                metadata: ["mqtt.topic_filter": "\(filter)", "mqtt.reason": "\(describeConnack(code))"])
        }
        for code in granted where code < 0x80 {
            logger.info(
                "MQTT subscribed", metadata: ["mqtt.topic_filter": "\(filter)", "mqtt.granted_qos": "\(code)"])
        }
    }

    func disconnected(rc: Int32) {
        disconnectRC = rc
        connected = false
    }
}

private func isReadable(_ fd: Int32) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&pfd, 1, 0) > 0 && pfd.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
}

private func format(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
}
