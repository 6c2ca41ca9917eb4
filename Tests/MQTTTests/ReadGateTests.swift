// Integration tests of the subscriber's read gate (back-pressure without losing the connection)
// against a real mosquitto broker.
import Foundation
import MQTT
import Testing
import TestSupport

@Suite("MQTTSubscriber read gate against a real broker")
struct ReadGateTests {
    @Test("a pause longer than three keep-alives keeps the connection and hands every message over once")
    func pauseKeepsTheConnection() throws {
        // Debug logging makes the broker write "Received PINGREQ from <id>".
        let broker = try TestBroker.start(extraConfig: "log_type debug")
        var configuration = subscriberConfiguration(broker, clientID: "sub-gate", receiveMaximum: 10)
        configuration.keepAlive = 5
        let gate = GateSwitch()
        let running = try RunningSubscriber(configuration: configuration, readGate: { gate.isOpen })
        defer { running.stop() }
        try #require(running.waitUntilSubscribed())

        let first = try publishNumbered(broker, topic: "t/g", prefix: "first", count: 10)
        try #require(running.waitForMessages(10))
        gate.set(open: false)
        let pauseStart = Date()
        let batchesBefore = running.storedBatches.count
        let pingsBefore = pingRequests(broker, "sub-gate")

        // 16 s (over three keep-alives): first quiet, so that only PINGREQ and PINGRESP keep the
        // connection, then with a queue on the broker that the receive maximum releases 10 at a time.
        Thread.sleep(forTimeInterval: 9)
        let paused = try publishNumbered(broker, topic: "t/g", prefix: "paused", count: 100)
        Thread.sleep(until: pauseStart.addingTimeInterval(16))
        let batchesDuringPause = Array(running.storedBatches.dropFirst(batchesBefore))
        let pingsDuringPause = pingRequests(broker, "sub-gate") - pingsBefore
        gate.set(open: true)

        let all = first.union(paused)
        try #require(waitUntil(timeout: 60) { Set(texts(running.messages)).isSuperset(of: all) })

        // (a) The subscriber never lost its connection.
        #expect(running.connections == [true])
        #expect(running.logs.count(containing: "lost") == 0)
        #expect(running.logs.messages(atLeast: .warning).isEmpty)
        // (b) Nor did the broker drop it, and keep-alive traffic went on during the pause.
        let log = broker.log()
        #expect(!log.contains("exceeded timeout"))
        #expect(!log.contains("Client sub-gate closed its connection"))
        #expect(!log.contains("Client sub-gate disconnected"))
        #expect(occurrences(of: " as sub-gate ", in: log) == 1)
        #expect(pingsDuringPause >= 1)
        // (c) Every message was handed over exactly once.
        let counts = Dictionary(texts(running.messages).map { ($0, 1) }, uniquingKeysWith: +)
        #expect(Set(counts.keys) == all)
        #expect(counts.filter { $0.value != 1 }.isEmpty)
        // The pause held delivery back: only the keep-alive reads' batches, each within the
        // receive maximum, came while the gate was closed.
        #expect(batchesDuringPause.flatMap { $0 }.count < paused.count)
        #expect(batchesDuringPause.allSatisfy { $0.count <= 10 })
    }

    @Test("stop() ends a paused run cleanly, and what the pause held back comes with the next connection")
    func stopWhilePaused() throws {
        let broker = try TestBroker.start()
        var configuration = subscriberConfiguration(broker, clientID: "sub-gate-stop")
        // A read every 30 s while paused: none happens during this test.
        configuration.keepAlive = 60
        let gate = GateSwitch()
        let paused = try RunningSubscriber(configuration: configuration, readGate: { gate.isOpen })
        try #require(paused.waitUntilSubscribed())
        gate.set(open: false)
        let held = try publishNumbered(broker, topic: "t/h", prefix: "held", count: 5)

        try #require(paused.stop(timeout: 30))
        if case .failure(let error)? = paused.runResult { Issue.record("run threw \(error)") }
        #expect(paused.messages.isEmpty)
        #expect(paused.connections == [true, false])
        #expect(waitUntil(timeout: 10) { broker.log().contains("Client sub-gate-stop disconnected.") })

        let next = try RunningSubscriber(configuration: configuration)
        defer { next.stop() }
        try #require(next.waitForMessages(5))
        #expect(Set(texts(next.messages)) == held)
        #expect(next.messages.count == 5)
    }
}

/// The gate a test opens and closes while the subscriber asks it on its own thread.
final class GateSwitch: @unchecked Sendable {
    // @unchecked Sendable: `open` is only read and written with `lock` held.
    private let lock = NSLock()
    private var open = true

    var isOpen: Bool { lock.withLock { open } }
    func set(open: Bool) { lock.withLock { self.open = open } }
}

/// How many PINGREQs from `clientID` the broker has logged (it needs `log_type debug`).
private func pingRequests(_ broker: TestBroker, _ clientID: String) -> Int {
    occurrences(of: "Received PINGREQ from \(clientID)\n", in: broker.log())
}

private func occurrences(of fragment: String, in text: String) -> Int {
    text.components(separatedBy: fragment).count - 1
}
