// Integration tests of MQTTSubscriber against a real mosquitto broker.
import Foundation
import MQTT
import Testing
import TestSupport

@Suite("MQTTSubscriber against a real broker")
struct SubscriberTests {
    @Test("messages from mosquitto_pub arrive with topic and payload intact, binary and 1 MB included")
    func receivesFromMosquittoPub() throws {
        let broker = try TestBroker.start()
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-intact"))
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())

        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let binary = (0...255).map { UInt8($0) } + [0, 0, 255, 10, 13, 0]
        let binaryPath = directory + "/binary.bin"
        try Data(binary).write(to: URL(fileURLWithPath: binaryPath))
        let big = pseudoRandomBytes(count: 1_048_576, seed: 42)
        let bigPath = directory + "/big.bin"
        try Data(big).write(to: URL(fileURLWithPath: bigPath))

        try mosquittoPub(broker: broker, topic: "t/text", message: "hello, pilots")
        try mosquittoPub(broker: broker, topic: "t/binary", file: binaryPath)
        try mosquittoPub(broker: broker, topic: "t/big", file: bigPath)
        try mosquittoPub(broker: broker, topic: "t/ünïcode/ß", message: "utf8 topic")
        try mosquittoPub(broker: broker, topic: "t/qos0", message: "at most once", qos: 0)
        try mosquittoPub(broker: broker, topic: "other/ignored", message: "not subscribed")

        try #require(running.waitForMessages(5))
        let byTopic = Dictionary(running.messages.map { ($0.topic, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byTopic["t/text"]?.payload == Array("hello, pilots".utf8))
        #expect(byTopic["t/text"]?.qos == 1)
        #expect(byTopic["t/binary"]?.payload == binary)
        #expect(byTopic["t/big"]?.payload.count == 1_048_576)
        #expect(byTopic["t/big"]?.payload == big)
        #expect(byTopic["t/ünïcode/ß"]?.payload == Array("utf8 topic".utf8))
        #expect(byTopic["t/qos0"]?.qos == 0)
        #expect(byTopic["other/ignored"] == nil)
        #expect(running.messages.count == 5)
    }

    @Test("a retained message is delivered with the retain flag once, not again on every reconnect")
    func retainedMessage() throws {
        let broker = try TestBroker.start()
        try mosquittoPub(broker: broker, topic: "t/retained", message: "kept", retain: true)
        let configuration = subscriberConfiguration(broker, clientID: "sub-retain")
        let first = try RunningSubscriber(configuration: configuration)
        try #require(first.waitForMessages(1))
        #expect(first.messages.first?.topic == "t/retained")
        #expect(first.messages.first?.retain == true)
        #expect(first.messages.first?.payload == Array("kept".utf8))
        try #require(first.stop())

        // The session (and its subscription) survives: no replay of the retained message.
        let second = try RunningSubscriber(configuration: configuration)
        defer { second.stop() }
        try #require(second.waitUntilSubscribed())
        try mosquittoPub(broker: broker, topic: "t/marker", message: "after")
        try #require(second.waitForMessages(1))
        #expect(texts(second.messages) == ["after"])
    }

    @Test("persistent session: messages published while the subscriber is down arrive when it returns")
    func persistentSession() throws {
        let broker = try TestBroker.start()
        let configuration = subscriberConfiguration(broker, clientID: "sub-persistent")

        let first = try RunningSubscriber(configuration: configuration)
        try #require(first.waitUntilSubscribed())
        let before = try publishNumbered(broker, topic: "t/p", prefix: "before", count: 5)
        try #require(first.waitForMessages(5))
        #expect(Set(texts(first.messages)) == before)
        try #require(first.stop())
        if case .failure(let error)? = first.runResult { Issue.record("run threw \(error)") }

        let whileDown = try publishNumbered(broker, topic: "t/p", prefix: "down", count: 10)

        let second = try RunningSubscriber(configuration: configuration)
        defer { second.stop() }
        try #require(second.waitForMessages(10))
        #expect(Set(texts(second.messages)) == whileDown)
        #expect(second.messages.count == 10)
    }

    @Test("stored before acknowledged: a batch whose handler throws is delivered again")
    func handlerFailureMeansRedelivery() throws {
        let broker = try TestBroker.start()
        // A small receive maximum makes the broker send the queue in several batches.
        let configuration = subscriberConfiguration(broker, clientID: "sub-redelivery", receiveMaximum: 10)

        // Create the session and its subscription, then go away.
        let setup = try RunningSubscriber(configuration: configuration)
        try #require(setup.waitUntilSubscribed())
        try #require(setup.stop())

        let sent = try publishNumbered(broker, topic: "t/r", prefix: "m", count: 50)

        // Store the first batch, fail on the second.
        let failing = try RunningSubscriber(configuration: configuration, lingerBeforeFailing: 0.5) { _, stored in
            stored >= 1
        }
        try #require(failing.waitForFinish(timeout: 60))
        guard case .failure(let error)? = failing.runResult else {
            Issue.record("run should have thrown the handler's error, got \(String(describing: failing.runResult))")
            return
        }
        #expect(error is HandlerFailure)
        let stored = Set(texts(failing.messages))
        let refused = Set(texts(failing.failed.flatMap { $0 }))
        #expect(failing.storedBatches.count == 1)
        // The receive maximum bounds every batch.
        #expect((failing.storedBatches + failing.failed).allSatisfy { !$0.isEmpty && $0.count <= 10 })
        #expect(!refused.isEmpty)
        #expect(stored.isDisjoint(with: refused))
        #expect(failing.logs.count(containing: "without acknowledging") == 1)

        // Same client id again: the broker delivers what was not acknowledged, the refused batch first of all.
        let again = try RunningSubscriber(configuration: configuration)
        defer { again.stop() }
        let remaining = sent.subtracting(stored)
        // Waiting is bounded; if acknowledgements had leaked, the refused messages never come back.
        _ = waitUntil(timeout: 30) { Set(texts(again.messages)).isSuperset(of: remaining) }
        let redelivered = Set(texts(again.messages))
        #expect(redelivered.isSuperset(of: refused))
        #expect(stored.union(redelivered) == sent)
    }

    @Test("reconnects after the broker restarts and receives what is published afterwards")
    func reconnectsAfterBrokerRestart() throws {
        let broker = try TestBroker.start(persistence: true)
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-reconnect"))
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())
        let before = try publishNumbered(broker, topic: "t/x", prefix: "before", count: 3)
        try #require(running.waitForMessages(3))

        broker.stop()
        try #require(waitUntil { running.connections.contains(false) })
        try broker.restart()
        try #require(waitUntil { running.connectCount >= 2 })

        let after = try publishNumbered(broker, topic: "t/x", prefix: "after", count: 20)
        try #require(running.waitForMessages(23))
        #expect(Set(texts(running.messages)) == before.union(after))
        #expect(running.connections == [true, false, true])
        #expect(running.logs.count(containing: "MQTT connection to 127.0.0.1:\(broker.port) lost") >= 1)
        #expect(running.logs.count(containing: "reconnecting in") >= 1)
    }

    @Test("keeps retrying while the broker is down, then connects")
    func retriesUntilBrokerComesUp() throws {
        let broker = try TestBroker.start(persistence: true)
        broker.stop()
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-retry"))
        defer { running.stop() }
        try #require(waitUntil { running.logs.count(containing: "retrying in") >= 2 })
        #expect(running.connectCount == 0)
        #expect(running.logs.messages(atLeast: .warning).contains { $0.contains("Connection refused") })
        try broker.restart()
        try #require(running.waitUntilSubscribed())
        let sent = try publishNumbered(broker, topic: "t/y", prefix: "late", count: 5)
        try #require(running.waitForMessages(5))
        #expect(Set(texts(running.messages)) == sent)
    }

    @Test("stop() makes run return and disconnects cleanly")
    func stopDisconnectsCleanly() throws {
        let broker = try TestBroker.start()
        let running = try RunningSubscriber(configuration: subscriberConfiguration(broker, clientID: "sub-stop"))
        try #require(running.waitUntilSubscribed())
        let sent = try publishNumbered(broker, topic: "t/s", prefix: "s", count: 10)
        try #require(running.waitForMessages(10))

        try #require(running.stop(timeout: 30))
        if case .failure(let error)? = running.runResult { Issue.record("run threw \(error)") }
        #expect(Set(texts(running.messages)) == sent)
        #expect(running.connections == [true, false])
        // mosquitto logs "Client <id> disconnected." only for a DISCONNECT packet.
        #expect(waitUntil(timeout: 10) { broker.log().contains("Client sub-stop disconnected.") })
        #expect(!broker.log().contains("Client sub-stop closed its connection."))
    }

    @Test("stop() before run makes run return without connecting")
    func stopBeforeRun() throws {
        let broker = try TestBroker.start()
        let logs = LogStore()
        let subscriber = try MQTTSubscriber(
            configuration: subscriberConfiguration(broker, clientID: "sub-early"), logger: makeLogger(logs))
        subscriber.stop()
        var batches = 0
        try subscriber.run { _ in batches += 1 }
        #expect(batches == 0)
        #expect(logs.count(containing: "MQTT connected") == 0)
        #expect(!broker.log().contains("sub-early"))
    }

    @Test("a broker that requires a password refuses anonymous subscribers and accepts the right credentials")
    func usernameAndPassword() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let passwordFile = directory + "/passwords"
        let result = try runProcess(
            "/usr/bin/mosquitto_passwd", ["-b", "-c", passwordFile, "pilot", "s3cret"])
        try #require(result.status == 0, "mosquitto_passwd failed: \(result.errorOutput)")
        let broker = try TestBroker.start(extraConfig: "allow_anonymous false\npassword_file \(passwordFile)")

        var wrong = subscriberConfiguration(broker, clientID: "sub-auth-wrong")
        wrong.username = "pilot"
        wrong.password = "guess"
        let refused = try RunningSubscriber(configuration: wrong)
        try #require(waitUntil { refused.logs.count(containing: "refused the connection") >= 1 })
        #expect(refused.connectCount == 0)
        #expect(refused.logs.messages(atLeast: .warning).contains { $0.contains("Not authorized") || $0.contains("Bad user name or password") })
        refused.stop()

        var right = subscriberConfiguration(broker, clientID: "sub-auth-right")
        right.username = "pilot"
        right.password = "s3cret"
        let accepted = try RunningSubscriber(configuration: right)
        defer { accepted.stop() }
        try #require(accepted.waitUntilSubscribed())
        try mosquittoPub(broker: broker, topic: "t/auth", message: "welcome", extra: ["-u", "pilot", "-P", "s3cret"])
        try #require(accepted.waitForMessages(1))
        #expect(accepted.messages.first?.payload == Array("welcome".utf8))
    }
}
