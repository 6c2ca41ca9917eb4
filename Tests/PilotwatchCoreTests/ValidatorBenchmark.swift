import Foundation
import PilotwatchCore
import Testing

/// Throughput of the validator on simple one-observation messages. Not a test of speed (no timing
/// assertion): run it on demand, in release mode, to get the figure:
///
///     PILOTWATCH_BENCH=1 swift test -c release --filter ValidatorBenchmark
@Suite("Validator benchmark", .enabled(if: ProcessInfo.processInfo.environment["PILOTWATCH_BENCH"] != nil))
struct ValidatorBenchmark {
    @Test func oneObservationMessagesPerSecond() {
        let payloads = (0..<1000).map { i in
            Array(CF.message([CF.obs(value: "\(90 + i % 10)")], msgID: "\"dev-0042-\(1_000_000 + i)\"").utf8)
        }
        let count = 1_000_000
        let validator = CF.validator, topic = CF.resp, received = CF.received
        var accepted = 0
        let elapsed = ContinuousClock().measure {
            for k in 0..<count where validator.validate(topic: topic, payload: payloads[k % payloads.count],
                                                        receivedAt: received).isAccepted {
                accepted += 1
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("validator: \(count) messages of \(payloads[0].count) bytes in \(seconds) s = \(Int(Double(count) / seconds)) messages/s")
        #expect(accepted == count)

        let parsed = ContinuousClock().measure {
            for k in 0..<count { _ = try? JSON.parse(payloads[k % payloads.count]) }
        }
        let parseSeconds = Double(parsed.components.seconds) + Double(parsed.components.attoseconds) / 1e18
        print("JSON.parse alone: \(Int(Double(count) / parseSeconds)) messages/s")
    }
}
