import Foundation
import MQTT
import PilotwatchCore

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
        subscriptions: ["\(s.topicRoot)/+/+/obs", "\(s.topicRoot)/+/+/status", "\(s.topicRoot)/+/+/agg"])
}
