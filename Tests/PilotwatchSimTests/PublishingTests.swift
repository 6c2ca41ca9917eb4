import Foundation
import PilotwatchCore
import Testing
import TestSupport
@testable import PilotwatchSim

/// A value handed from a worker thread: written once before `done.signal()`, read after `done.wait()`.
// @unchecked Sendable: the semaphore orders the single write before the single read.
private final class Handoff<T>: @unchecked Sendable {
    var value: T?
}

@Suite struct PublishingTests {
    @Test func pacingFollowsSpeedAndRate() {
        let origin = Instant(millis: 0)
        let twoHours = Instant(millis: 7_200_000)
        #expect(Pacing().due(index: 500, at: twoHours, origin: origin) == 0)
        #expect(Pacing(speed: 3600).due(index: 500, at: twoHours, origin: origin) == 2)
        #expect(Pacing(rate: 100).due(index: 500, at: twoHours, origin: origin) == 5)
        #expect(Pacing(speed: 3600, rate: 1000).due(index: 500, at: twoHours, origin: origin) == 2)
        #expect(Pacing(speed: 0, rate: nil).due(index: 9, at: twoHours, origin: origin) == 0)
    }

    @Test func everyMessageReachesASubscriberThroughARealBroker() throws {
        let loaded = try Fixtures.load()
        let sim = Simulation(scenario: loaded.scenario, seed: 4, end: try Fixtures.instant("2026-02-20T00:00:00Z"), days: 2)
        let expected = Array(sim)
        #expect(expected.count > 50)
        let broker = try TestBroker.start()
        let candidates: [String] = ["/usr/bin/mosquitto_sub", "/usr/local/bin/mosquitto_sub"]
        let subscriber = candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "mosquitto_sub"
        let done = DispatchSemaphore(value: 0)
        let received = Handoff<Result<ProcessResult, any Error>>()
        let args = ["-h", broker.host, "-p", String(broker.port), "-t", "pilots/#", "-q", "1", "-v",
                    "-i", "sim-test-sub", "-C", String(expected.count), "-W", "60"]
        DispatchQueue.global().async {
            received.value = Result { try runProcess(subscriber, args, timeout: 90) }
            done.signal()
        }
        // Publish only once the subscriber is connected.
        let deadline = Date(timeIntervalSinceNow: 20)
        while !broker.log().contains("as sim-test-sub"), Date() < deadline { usleep(20_000) }
        #expect(broker.log().contains("as sim-test-sub"))

        let summary = try SimulationPublisher(simulation: sim, host: broker.host, port: broker.port).run()
        #expect(summary.published == expected.count)
        done.wait()
        let result = try #require(try received.value?.get())
        let lines = result.output.split(separator: "\n").map(String.init)
        let sent = expected.map { $0.topic + " " + String(decoding: $0.payload, as: UTF8.self) }
        #expect(lines.count == expected.count)
        #expect(lines.sorted() == sent.sorted())
        #expect(broker.log().contains("sim-resp-copd-home-01"))
    }

    @Test func anUnreachableBrokerIsNamedInTheError() throws {
        let loaded = try Fixtures.load()
        let sim = Simulation(scenario: loaded.scenario, seed: 1, end: try Fixtures.instant("2026-02-01T00:00:00Z"), days: 1)
        let port = try freeLoopbackPort()
        do {
            _ = try SimulationPublisher(simulation: sim, host: "127.0.0.1", port: port).run()
            Issue.record("publishing to a closed port succeeded")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(port)"), "\(error)")
        }
    }
}
