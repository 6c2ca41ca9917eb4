// Integration tests of MQTTPublisher, TLS, and configuration checks.
import Foundation
import MQTT
import Testing
import TestSupport

@Suite("MQTTPublisher against a real broker")
struct PublisherTests {
    @Test("20,000 QoS 1 messages are all acknowledged and all received exactly once")
    func twentyThousandMessages() throws {
        let broker = try TestBroker.start()
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-bulk"))
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())

        let count = 20_000
        let publisher = try MQTTPublisher(
            configuration: publisherConfiguration(broker, clientID: "pub-bulk"), logger: makeLogger(LogStore()))
        try publisher.connect()
        for index in 0..<count {
            try publisher.publish(topic: "t/bulk/\(index % 7)", payload: Array("n-\(index)".utf8))
        }
        try publisher.waitForAllAcknowledged(timeout: 120)
        publisher.disconnect()

        try #require(running.waitForMessages(count, timeout: 120))
        // Nothing more is on its way: a final marker arrives after everything before it.
        try mosquittoPub(broker: broker, topic: "t/bulk/end", message: "end")
        try #require(running.waitForMessages(count + 1, timeout: 30))
        let received = running.messages.filter { $0.topic != "t/bulk/end" }
        #expect(received.count == count)
        #expect(Set(texts(received)) == Set((0..<count).map { "n-\($0)" }))
        #expect(received.allSatisfy { $0.qos == 1 })
        // Batches never exceed the receive maximum.
        #expect(running.storedBatches.allSatisfy { $0.count <= 256 })
    }

    @Test("payloads published by MQTTPublisher arrive byte for byte", arguments: [0, 1, 255, 70_000, 1_048_576])
    func payloadSizes(size: Int) throws {
        let broker = try TestBroker.start()
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-size-\(size)"))
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())
        let payload = pseudoRandomBytes(count: size, seed: UInt64(size) + 7)
        let publisher = try MQTTPublisher(configuration: publisherConfiguration(broker), logger: makeLogger(LogStore()))
        try publisher.connect()
        try publisher.publish(topic: "t/size", payload: payload)
        try publisher.waitForAllAcknowledged(timeout: 30)
        publisher.disconnect()
        try #require(running.waitForMessages(1))
        #expect(running.messages.first?.payload == payload)
        #expect(running.messages.first?.topic == "t/size")
    }

    @Test("connecting to a port with no broker fails with the address and the system's reason")
    func connectionRefused() throws {
        let port = try freeLoopbackPort()
        let publisher = try MQTTPublisher(
            configuration: MQTTConfiguration(host: "127.0.0.1", port: port, clientID: ""),
            logger: makeLogger(LogStore()))
        #expect {
            try publisher.connect()
        } throws: { error in
            let text = String(describing: error)
            return text.contains("127.0.0.1:\(port)") && text.contains("Connection refused")
        }
    }

    @Test("publish before connect is refused with a sentence")
    func publishBeforeConnect() throws {
        let publisher = try MQTTPublisher(
            configuration: MQTTConfiguration(host: "127.0.0.1", port: 1883, clientID: ""),
            logger: makeLogger(LogStore()))
        #expect(throws: MQTTError.notConnected(host: "127.0.0.1", port: 1883)) {
            try publisher.publish(topic: "t", payload: [1])
        }
    }
}

@Suite("TLS")
struct TLSTests {
    /// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA.
    struct Certificates {
        let directory: String
        var ca: String { directory + "/ca.crt" }
        var otherCA: String { directory + "/other-ca.crt" }
        var serverCert: String { directory + "/server.crt" }
        var serverKey: String { directory + "/server.key" }

        init() throws {
            directory = temporaryDirectory(prefix: "pilotwatch-tls")
            let openssl = "/usr/bin/openssl"
            func run(_ arguments: [String]) throws {
                let result = try runProcess(openssl, arguments)
                try #require(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.errorOutput)")
            }
            try "subjectAltName=IP:127.0.0.1\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
            try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/ca.key",
                     "-out", directory + "/ca.crt", "-days", "2", "-subj", "/CN=pilotwatch test CA"])
            try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/other-ca.key",
                     "-out", directory + "/other-ca.crt", "-days", "2", "-subj", "/CN=unrelated CA"])
            try run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/server.key",
                     "-out", directory + "/server.csr", "-subj", "/CN=127.0.0.1"])
            try run(["x509", "-req", "-in", directory + "/server.csr", "-CA", directory + "/ca.crt",
                     "-CAkey", directory + "/ca.key", "-CAcreateserial", "-out", directory + "/server.crt",
                     "-days", "2", "-extfile", directory + "/san.ext"])
        }

        var brokerConfig: String {
            "cafile \(ca)\ncertfile \(serverCert)\nkeyfile \(serverKey)"
        }
    }

    @Test("with the right CA the subscriber receives over TLS")
    func rightCA() throws {
        let certificates = try Certificates()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let broker = try TestBroker.start(extraConfig: certificates.brokerConfig)
        var configuration = subscriberConfiguration(broker, clientID: "sub-tls")
        configuration.tls = MQTTTLS(caFile: certificates.ca)
        let running = try RunningSubscriber(configuration: configuration)
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())

        var publisherConfig = publisherConfiguration(broker)
        publisherConfig.tls = MQTTTLS(caFile: certificates.ca)
        let publisher = try MQTTPublisher(configuration: publisherConfig, logger: makeLogger(LogStore()))
        try publisher.connect()
        let count = 2_000
        for index in 0..<count {
            try publisher.publish(topic: "t/tls", payload: Array("tls-\(index)".utf8))
        }
        try publisher.waitForAllAcknowledged(timeout: 60)
        publisher.disconnect()
        try #require(running.waitForMessages(count))
        #expect(Set(texts(running.messages)) == Set((0..<count).map { "tls-\($0)" }))
    }

    @Test("a wrong CA produces an error that says the certificate failed verification")
    func wrongCA() throws {
        let certificates = try Certificates()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let broker = try TestBroker.start(extraConfig: certificates.brokerConfig)
        var configuration = publisherConfiguration(broker)
        configuration.tls = MQTTTLS(caFile: certificates.otherCA)
        let publisher = try MQTTPublisher(configuration: configuration, logger: makeLogger(LogStore()))
        var description = ""
        #expect(throws: MQTTError.self) {
            do {
                try publisher.connect()
            } catch {
                description = String(describing: error)
                throw error
            }
        }
        #expect(description.contains("certificate verify failed"))
        #expect(description.contains("127.0.0.1:\(broker.port)"))

        // The subscriber keeps retrying, and says why in its log.
        var subscriberConfig = subscriberConfiguration(broker, clientID: "sub-wrong-ca")
        subscriberConfig.tls = MQTTTLS(caFile: certificates.otherCA)
        let running = try RunningSubscriber(configuration: subscriberConfig)
        defer { running.stop() }
        try #require(waitUntil { running.logs.count(containing: "certificate verify failed") >= 1 })
        #expect(running.connectCount == 0)
    }
}

@Suite("Configuration checks")
struct ConfigurationTests {
    static let base = MQTTConfiguration(host: "127.0.0.1", port: 1883, clientID: "c", subscriptions: ["a/+/b"])

    @Test("a valid configuration is accepted")
    func valid() throws {
        _ = try MQTTSubscriber(configuration: Self.base, logger: makeLogger(LogStore()))
    }

    @Test("unusable values are refused with a sentence naming them", arguments: [
        ("filter", "a/#/b"),
        ("no subscriptions", ""),
        ("empty client id", ""),
        ("port", "0"),
        ("receive maximum", "0"),
        ("missing CA", "/nonexistent/ca.pem"),
        ("cert without key", "cert"),
    ])
    func invalid(field: String, value: String) throws {
        var configuration = Self.base
        var expected = value
        switch field {
        case "filter": configuration.subscriptions = [value]
        case "no subscriptions": configuration.subscriptions = []; expected = "no topic filters"
        case "empty client id": configuration.clientID = ""; expected = "client id is empty"
        case "port": configuration.port = 0; expected = "port 0"
        case "receive maximum": configuration.receiveMaximum = 0; expected = "receive maximum 0"
        case "missing CA": configuration.tls = MQTTTLS(caFile: value)
        case "cert without key":
            configuration.tls = MQTTTLS(caFile: "/etc/hostname", certFile: "/etc/hostname")
            expected = "must be given together"
        default: Issue.record("unknown case \(field)")
        }
        #expect {
            _ = try MQTTSubscriber(configuration: configuration, logger: makeLogger(LogStore()))
        } throws: { error in
            guard case MQTTError.invalidConfiguration = error else { return false }
            return String(describing: error).contains(expected)
        }
    }

    @Test("errors read as sentences with the broker address")
    func errorDescriptions() {
        let error = MQTTError.connectFailed(host: "broker.example", port: 8883, reason: "Connection refused")
        #expect(error.description == "Could not connect to the MQTT broker broker.example:8883: Connection refused.")
        let refused = MQTTError.refused(host: "b", port: 1, reason: "Not authorized (reason code 135)")
        #expect(refused.description.contains("refused the connection: Not authorized"))
    }
}
