// MQTT client over libmosquitto 2.0: the pieces shared by the subscriber and the publisher.
//
// This is the only module that imports CMosquitto; no libmosquitto type appears in its
// public API.
import CMosquitto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mosquitto_lib_init` runs once per process, the first time a client is made.
/// A global `let` is initialised lazily and exactly once, even under concurrent first use.
private let libraryInitialised: Int32 = mosquitto_lib_init()

/// Makes sure libmosquitto is initialised; returns its result code.
func initialiseLibrary() -> Int32 {
    libraryInitialised
}

/// The libmosquitto result code as a sentence, with the system's text for `MOSQ_ERR_ERRNO`.
///
/// `savedErrno` must be read right after the failing call, before anything else can change it.
func describeResult(_ rc: Int32, errno savedErrno: Int32) -> String {
    if rc == Int32(MOSQ_ERR_ERRNO.rawValue) {
        return String(cString: strerror(savedErrno))
    }
    if rc >= 0x80 {
        // An MQTT 5 reason code, e.g. from the broker's DISCONNECT.
        return "\(fragment(mosquitto_reason_string(rc))) (reason code \(rc))"
    }
    return fragment(mosquitto_strerror(rc))
}

/// A library sentence without its final period, to be embedded in our own sentences.
private func fragment(_ text: UnsafePointer<CChar>?) -> String {
    guard let text else { return "unknown error" }
    var string = String(cString: text)
    while string.hasSuffix(".") { string.removeLast() }
    return string
}

/// The broker's refusal of a CONNECT (an MQTT 5 reason code, or an MQTT 3 CONNACK code).
func describeConnack(_ code: Int32) -> String {
    if code >= 0x80 {
        return "\(fragment(mosquitto_reason_string(code))) (reason code \(code))"
    }
    return "\(fragment(mosquitto_connack_string(code))) (code \(code))"
}

/// A description of `rc` followed by the library's own error lines (OpenSSL's text for TLS failures).
func describeFailure(_ rc: Int32, errno savedErrno: Int32, libraryLines: [String]) -> String {
    let base = describeResult(rc, errno: savedErrno)
    if libraryLines.isEmpty { return base }
    return base + " (" + libraryLines.joined(separator: "; ") + ")"
}

/// Error and warning lines from libmosquitto's log callback, kept so a failure can say what
/// OpenSSL or the library reported. At most `capacity` lines are kept (the newest).
struct LibraryLines {
    private(set) var lines: [String] = []
    let capacity = 8

    mutating func append(_ line: String) {
        if lines.count == capacity { lines.removeFirst() }
        lines.append(line)
    }

    /// Returns the collected lines and forgets them.
    mutating func take() -> [String] {
        defer { lines.removeAll() }
        return lines
    }
}

/// Whether a libmosquitto log level is one we keep for error messages.
func isProblemLevel(_ level: Int32) -> Bool {
    level & Int32(MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0
}

// MARK: - TLS pending data

/// `SSL_pending` from the OpenSSL that libmosquitto already loaded, looked up at run time so
/// that this package does not need OpenSSL's development files to link.
///
/// libmosquitto's `mosquitto_loop_read` keeps reading while OpenSSL holds decrypted bytes, but it
/// stops early whenever `errno` happens to be `EAGAIN` after a packet, and `poll` cannot see data
/// that OpenSSL has already pulled off the socket. Asking OpenSSL directly closes that gap.
private typealias SSLPendingFunction = @convention(c) (UnsafeMutableRawPointer?) -> Int32

private let sslPendingFunction: SSLPendingFunction? = {
    guard let handle = dlopen(nil, RTLD_LAZY) else { return nil }
    guard let symbol = dlsym(handle, "SSL_pending") else { return nil }
    return unsafeBitCast(symbol, to: SSLPendingFunction.self)
}()

/// True when the client's TLS session holds decrypted bytes not yet read by libmosquitto.
func tlsHasPendingData(_ mosq: OpaquePointer) -> Bool {
    guard let ssl = mosquitto_ssl_get(mosq), let pending = sslPendingFunction else { return false }
    return pending(ssl) > 0
}

// MARK: - Client set-up shared by subscriber and publisher

/// Creates a libmosquitto client speaking MQTT 5 with the configuration's credentials and TLS.
///
/// - Parameters:
///   - clientID: nil lets the broker assign one (only with a clean session).
///   - userData: handed back to every callback; the caller owns what it points to.
func makeClient(
    configuration: MQTTConfiguration,
    clientID: String?,
    cleanSession: Bool,
    userData: UnsafeMutableRawPointer,
    libraryLines: inout LibraryLines
) throws -> OpaquePointer {
    let initRC = initialiseLibrary()
    guard initRC == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
        throw MQTTError.library(call: "mosquitto_lib_init", reason: describeResult(initRC, errno: errno))
    }
    let made: OpaquePointer? = if let clientID {
        mosquitto_new(clientID, cleanSession, userData)
    } else {
        mosquitto_new(nil, cleanSession, userData)
    }
    guard let mosq = made else {
        let reason = String(cString: strerror(errno))
        throw MQTTError.library(call: "mosquitto_new", reason: reason)
    }
    do {
        try check(
            mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5),
            call: "mosquitto_int_option(MOSQ_OPT_PROTOCOL_VERSION)")
        try check(
            mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, Int32(configuration.receiveMaximum)),
            call: "mosquitto_int_option(MOSQ_OPT_RECEIVE_MAXIMUM)")
        if configuration.username != nil || configuration.password != nil {
            try check(
                mosquitto_username_pw_set(mosq, configuration.username, configuration.password),
                call: "mosquitto_username_pw_set")
        }
        if let tls = configuration.tls {
            let rc = mosquitto_tls_set(mosq, tls.caFile, nil, tls.certFile, tls.keyFile, nil)
            guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
                throw MQTTError.tlsSetup(
                    host: configuration.host, port: configuration.port,
                    detail: describeFailure(rc, errno: errno, libraryLines: libraryLines.take()))
            }
            // SSL_VERIFY_PEER (1): the broker's certificate must chain to the CA file.
            let optsRC = mosquitto_tls_opts_set(mosq, 1, nil, nil)
            guard optsRC == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
                throw MQTTError.tlsSetup(
                    host: configuration.host, port: configuration.port,
                    detail: describeResult(optsRC, errno: errno))
            }
        }
    } catch {
        mosquitto_destroy(mosq)
        throw error
    }
    return mosq
}

private func check(_ rc: Int32, call: String) throws {
    guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
        throw MQTTError.library(call: call, reason: describeResult(rc, errno: errno))
    }
}

/// CONNECT properties for a persistent MQTT 5 session: the session-expiry interval.
/// (The receive maximum is sent by libmosquitto from `MOSQ_OPT_RECEIVE_MAXIMUM`.)
/// The caller frees the list with `mosquitto_property_free_all`.
func makeConnectProperties(sessionExpirySeconds: UInt32) throws -> OpaquePointer? {
    var properties: OpaquePointer? = nil
    if sessionExpirySeconds > 0 {
        let rc = mosquitto_property_add_int32(
            &properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), sessionExpirySeconds)
        guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else {
            mosquitto_property_free_all(&properties)
            throw MQTTError.library(
                call: "mosquitto_property_add_int32(session-expiry-interval)",
                reason: describeResult(rc, errno: errno))
        }
    }
    return properties
}

/// Whether the topic filter is one libmosquitto accepts for SUBSCRIBE.
func isValidSubscription(_ filter: String) -> Bool {
    mosquitto_sub_topic_check(filter) == Int32(MOSQ_ERR_SUCCESS.rawValue)
}

/// Whether the topic is one libmosquitto accepts for PUBLISH (no wildcards).
func isValidPublishTopic(_ topic: String) -> Bool {
    mosquitto_pub_topic_check(topic) == Int32(MOSQ_ERR_SUCCESS.rawValue)
}

// MARK: - Small system helpers

/// Milliseconds until `deadline` for `poll`, clamped to `0...cap`.
func milliseconds(until deadline: ContinuousClock.Instant, cap: Int32) -> Int32 {
    let remaining = ContinuousClock.now.duration(to: deadline)
    if remaining <= .zero { return 0 }
    let (seconds, attoseconds) = remaining.components
    let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1
    return Int32(min(Int64(cap), ms))
}

func duration(seconds: Double) -> Duration {
    .nanoseconds(Int64((seconds * 1_000_000_000).rounded()))
}
