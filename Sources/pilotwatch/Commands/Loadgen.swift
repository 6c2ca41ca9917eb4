import ArgumentParser
import Foundation
import Logging
import MQTT
import PilotwatchCore

/// Publishes synthetic, contract-valid observation messages at QoS 1: the load source of `make bench`.
struct Loadgen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Publish N synthetic contract messages at QoS 1 (benchmark load).",
        discussion: """
        Every message is valid under the contract: one SpO2 observation of one of --subjects \
        pseudonyms, each at a distinct instant in the last days, with a distinct msg_id, spread \
        over --devices devices of --pilot. Prints the publish rate.

        Example:
          pilotwatch loadgen --port 1883 --count 200000 --pilot resp-copd-idf-01
        """,
        shouldDisplay: false
    )

    @OptionGroup var broker: BrokerOptions

    @Option(help: "Messages to publish.") var count: Int = 200_000
    @Option(help: "Pilot id in the topics (must be in the registry for the messages to be accepted).")
    var pilot: String = "resp-copd-idf-01"
    @Option(help: "Devices to spread the messages over.") var devices: Int = 20
    @Option(help: "Distinct subjects.") var subjects: Int = 2000
    @Option(help: "A prefix that makes msg_ids unique across runs.") var runID: String = "r"
    @Option(help: "At most this many messages a second (default: as fast as the broker takes them).")
    var rate: Double?

    func validate() throws {
        guard count > 0, count <= 100_000_000 else { throw ValidationError("--count \(count) must be 1...100000000") }
        guard (1...100_000).contains(devices) else { throw ValidationError("--devices \(devices) must be 1...100000") }
        guard (1...10_000_000).contains(subjects) else { throw ValidationError("--subjects \(subjects) must be 1...10000000") }
        guard isValidCode(pilot) else { throw ValidationError("--pilot \(pilot) is not a pilot id") }
        if let rate, !(rate >= 1 && rate <= 10_000_000) { throw ValidationError("--rate \(rate) must be 1...10000000 (messages a second)") }
    }

    func run() throws {
        let logger = makeLogger("pilotwatch.loadgen", level: .warning)
        let config = MQTTConfiguration(host: broker.host ?? "127.0.0.1", port: broker.port ?? 1883,
                                       clientID: "pilotwatch-loadgen-\(runID)")
        let publisher = try MQTTPublisher(configuration: config, logger: logger)
        try publisher.connect()
        let start = Date()
        // Observation times: one second apart, ending an hour ago, so every one is distinct and valid.
        let base = Date().timeIntervalSince1970 - 3600 - Double(count)
        var payload: [UInt8] = []
        payload.reserveCapacity(256)
        for i in 0..<count {
            // Paced in steps of 1/100 s: ahead of the schedule, wait for it.
            if let rate, i % max(1, Int(rate / 100)) == 0 {
                let due = Double(i) / rate - Date().timeIntervalSince(start)
                if due > 0 { Thread.sleep(forTimeInterval: due) }
            }
            let device = "dev-\(i % devices)"
            let subject = "p-" + hex8(UInt32(truncatingIfNeeded: 0x1000_0000 &+ (i % subjects)))
            let at = Instant(seconds: base + Double(i)).description
            Self.observation(msgID: "\(runID)-\(i)", at: at, subject: subject, value: 88 + i % 10, into: &payload)
            try publisher.publish(topic: "pilots/\(pilot)/\(device)/obs", payload: payload, qos: 1)
        }
        try publisher.waitForAllAcknowledged(timeout: 300)
        publisher.disconnect()
        let secs = Date().timeIntervalSince(start)
        print(String(format: "published %d messages in %.2f s (%.0f msg/s)", count, secs, Double(count) / secs))
    }
}

extension Loadgen {
    /// Writes into `out` (emptied first) the message
    /// `{"msg_id":...,"sent_at":at,"observations":[{"subject":...,"indicator":"spo2","value":...,"unit":"%","at":at}]}`.
    static func observation(msgID: String, at: String, subject: String, value: Int, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        func raw(_ s: String) { out.append(contentsOf: s.utf8) }
        func string(_ s: String) { JSONString.append(s, to: &out, escaping: .wire) }
        raw("{\"msg_id\":"); string(msgID)
        raw(",\"sent_at\":"); string(at)
        raw(",\"observations\":[{\"subject\":"); string(subject)
        raw(",\"indicator\":\"spo2\",\"value\":"); raw(String(value))
        raw(",\"unit\":\"%\",\"at\":"); string(at)
        raw("}]}")
    }
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}
