// Public values of the MQTT module: configuration, received messages and errors.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One application message received from the broker.
///
/// Topic and payload are copies made inside libmosquitto's callback; they stay valid for as long
/// as the value lives.
public struct MQTTMessage: Sendable, Equatable {
    public let topic: String
    public let payload: [UInt8]
    /// The QoS the message was delivered with (0 or 1; subscriptions never ask for 2).
    public let qos: Int
    /// True when the broker sent a retained message on subscription.
    public let retain: Bool

    public init(topic: String, payload: [UInt8], qos: Int, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// TLS settings. The broker's certificate is always verified against `caFile`, and its name
/// against the host the client connects to.
public struct MQTTTLS: Sendable, Equatable {
    /// PEM file of the certificate authority that signed the broker's certificate.
    public var caFile: String
    /// Optional client certificate (PEM); give `keyFile` with it.
    public var certFile: String?
    /// Optional client private key (PEM, unencrypted); give `certFile` with it.
    public var keyFile: String?

    public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// Where and how to connect.
///
/// ```swift
/// let configuration = MQTTConfiguration(
///     host: "broker.example", port: 8883, clientID: "pilotwatch-ingest",
///     tls: MQTTTLS(caFile: "/etc/pilotwatch/ca.pem"),
///     subscriptions: ["pilots/+/observations", "pilots/+/status"])
/// ```
public struct MQTTConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Fixed client id: the broker keeps the session (subscriptions and queued messages) under it.
    public var clientID: String
    public var username: String?
    public var password: String?
    public var tls: MQTTTLS?
    /// Seconds between PINGREQs when the connection is idle (5...65535).
    public var keepAlive: Int
    /// How long the broker keeps the session after a disconnect (MQTT 5 session-expiry-interval).
    public var sessionExpirySeconds: UInt32
    /// How many unacknowledged QoS 1 messages the broker may have in flight to us (1...65535);
    /// it bounds the size of one batch.
    public var receiveMaximum: Int
    /// Topic filters subscribed with QoS 1 on every connect.
    public var subscriptions: [String]
    /// First reconnect delay in seconds; doubles after each failure up to `reconnectMax`.
    public var reconnectMin: Double
    public var reconnectMax: Double
    /// Seconds to wait for the broker's CONNACK after the TCP (and TLS) connection is made.
    public var connectTimeout: Double
    /// A batch stops growing once its payloads reach this many bytes (it always holds at least one message).
    public var maxBatchBytes: Int

    public init(
        host: String,
        port: Int,
        clientID: String,
        username: String? = nil,
        password: String? = nil,
        tls: MQTTTLS? = nil,
        keepAlive: Int = 30,
        sessionExpirySeconds: UInt32 = 604_800,
        receiveMaximum: Int = 256,
        subscriptions: [String] = [],
        reconnectMin: Double = 0.2,
        reconnectMax: Double = 10,
        connectTimeout: Double = 10,
        maxBatchBytes: Int = 16 * 1024 * 1024
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.username = username
        self.password = password
        self.tls = tls
        self.keepAlive = keepAlive
        self.sessionExpirySeconds = sessionExpirySeconds
        self.receiveMaximum = receiveMaximum
        self.subscriptions = subscriptions
        self.reconnectMin = reconnectMin
        self.reconnectMax = reconnectMax
        self.connectTimeout = connectTimeout
        self.maxBatchBytes = maxBatchBytes
    }

    /// The broker address as `host:port`, for messages.
    public var address: String { "\(host):\(port)" }

    /// Checks the values that do not need the network; throws `MQTTError.invalidConfiguration`.
    func validate(requireClientID: Bool, requireSubscriptions: Bool) throws {
        func invalid(_ text: String) -> MQTTError { .invalidConfiguration(text) }
        if host.isEmpty { throw invalid("the broker host is empty") }
        if !(1...65535).contains(port) { throw invalid("port \(port) is outside 1...65535") }
        if requireClientID && clientID.isEmpty {
            throw invalid("the client id is empty; a persistent session needs a fixed client id")
        }
        if clientID.utf8.count > 65535 { throw invalid("the client id is longer than 65535 bytes") }
        if !(5...65535).contains(keepAlive) { throw invalid("keep-alive \(keepAlive) s is outside 5...65535") }
        if !(1...65535).contains(receiveMaximum) {
            throw invalid("receive maximum \(receiveMaximum) is outside 1...65535")
        }
        if !(reconnectMin > 0 && reconnectMin <= reconnectMax && reconnectMax <= 86_400) {
            throw invalid(
                "reconnect delays \(reconnectMin) s ... \(reconnectMax) s must satisfy 0 < min <= max <= 86400")
        }
        if !(connectTimeout > 0 && connectTimeout <= 3_600) {
            throw invalid("connect timeout \(connectTimeout) s is outside (0, 3600]")
        }
        if maxBatchBytes < 1 { throw invalid("max batch bytes \(maxBatchBytes) must be positive") }
        if password != nil && username == nil { throw invalid("a password was given without a username") }
        if requireSubscriptions && subscriptions.isEmpty {
            throw invalid("no topic filters to subscribe to")
        }
        for filter in subscriptions where !isValidSubscription(filter) {
            throw invalid("\"\(filter)\" is not a valid MQTT topic filter")
        }
        if let tls {
            try requireReadable(tls.caFile, what: "TLS CA file")
            switch (tls.certFile, tls.keyFile) {
            case (nil, nil):
                break
            case let (cert?, key?):
                try requireReadable(cert, what: "TLS client certificate")
                try requireReadable(key, what: "TLS client key")
            default:
                throw invalid("a TLS client certificate and key must be given together")
            }
        }
    }
}

private func requireReadable(_ path: String, what: String) throws {
    if access(path, R_OK) != 0 {
        let reason = String(cString: strerror(errno))
        throw MQTTError.invalidConfiguration("the \(what) \(path) cannot be read: \(reason)")
    }
}

/// What went wrong talking to the broker, as a sentence a person can act on.
public enum MQTTError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A configuration value is unusable; the text names it.
    case invalidConfiguration(String)
    /// libmosquitto refused the TLS settings.
    case tlsSetup(host: String, port: Int, detail: String)
    /// The TCP or TLS connection could not be made; `reason` has the library's (and OpenSSL's) text.
    case connectFailed(host: String, port: Int, reason: String)
    /// The broker answered CONNECT with a refusal.
    case refused(host: String, port: Int, reason: String)
    /// An established connection broke.
    case connectionLost(host: String, port: Int, reason: String)
    /// Something did not happen in time.
    case timedOut(host: String, port: Int, waitingFor: String, seconds: Double)
    /// A publish was not accepted.
    case publishFailed(host: String, port: Int, topic: String, reason: String)
    /// The operation needs a connection and there is none.
    case notConnected(host: String, port: Int)
    /// `run` was called while another `run` of the same subscriber is in progress.
    case alreadyRunning(clientID: String)
    /// A libmosquitto call failed outside any connection.
    case library(call: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let text):
            return "Invalid MQTT configuration: \(text)."
        case let .tlsSetup(host, port, detail):
            return "Could not set up TLS for the MQTT broker \(host):\(port): \(detail). "
                + "Check the CA, certificate and key files."
        case let .connectFailed(host, port, reason):
            return "Could not connect to the MQTT broker \(host):\(port): \(reason)."
                + (reason.lowercased().contains("certificate")
                    ? " Check that the CA file signed the broker's certificate and that the certificate names \(host)."
                    : "")
        case let .refused(host, port, reason):
            return "The MQTT broker \(host):\(port) refused the connection: \(reason)."
        case let .connectionLost(host, port, reason):
            return "Lost the connection to the MQTT broker \(host):\(port): \(reason)."
        case let .timedOut(host, port, waitingFor, seconds):
            return "Timed out after \(seconds) s waiting for \(waitingFor) from the MQTT broker \(host):\(port)."
        case let .publishFailed(host, port, topic, reason):
            return "Could not publish to \"\(topic)\" on the MQTT broker \(host):\(port): \(reason)."
        case let .notConnected(host, port):
            return "Not connected to the MQTT broker \(host):\(port); call connect() first."
        case .alreadyRunning(let clientID):
            return "The MQTT subscriber \"\(clientID)\" is already running; one run at a time."
        case let .library(call, reason):
            return "libmosquitto \(call) failed: \(reason)."
        }
    }
}
