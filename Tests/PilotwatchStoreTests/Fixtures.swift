import Foundation
import PilotwatchCore
@testable import PilotwatchStore

/// A temporary directory removed when the value goes away.
final class TempDir {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "/pilotwatch-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

/// 2026-03-02T00:00:00Z.
let day0 = Instant(millis: 1_772_409_600_000)

func at(day: Int = 0, hour: Double) -> Instant {
    day0.adding(days: Double(day) + hour / 24)
}

func measurement(_ subject: String, _ indicator: String, _ value: Double, _ time: Instant,
                 kind: IndicatorKind = .measurement) -> Observation {
    Observation(subject: subject, indicator: indicator, kind: kind, value: value, at: time)
}

/// An SpO2 measurement.
func measurement(_ subject: String, _ value: Double, _ time: Instant) -> Observation {
    measurement(subject, "spo2", value, time)
}

func event(_ subject: String, _ indicator: String, _ time: Instant) -> Observation {
    Observation(subject: subject, indicator: indicator, kind: .event, value: 1, at: time)
}

func obsItem(pilot: String = "hf-nord", device: String = "dev-1", msgID: String, received: Instant = at(day: 0, hour: 12),
             _ observations: [Observation]) -> IngestItem {
    let topic = Topic(pilot: pilot, device: device, kind: .obs)
    return IngestItem(topic: "pilots/\(pilot)/\(device)/obs", receivedAt: received,
                      verdict: .observations(topic, ObservationMessage(msgID: msgID, sentAt: nil, observations: observations)),
                      payload: Array("{\"msg_id\":\"\(msgID)\"}".utf8))
}

func statusItem(pilot: String = "hf-nord", device: String = "dev-1", received: Instant,
                _ status: DeviceStatus) -> IngestItem {
    let topic = Topic(pilot: pilot, device: device, kind: .status)
    return IngestItem(topic: "pilots/\(pilot)/\(device)/status", receivedAt: received,
                      verdict: .status(topic, status), payload: Array("{\"state\":\"\(status.state)\"}".utf8))
}

func refusedItem(pilot: String? = "hf-nord", device: String = "dev-1", received: Instant = at(hour: 12),
                 _ reason: ReasonCode, _ detail: String, payload: String) -> IngestItem {
    let topic = pilot.map { Topic(pilot: $0, device: device, kind: .obs) }
    return IngestItem(topic: pilot.map { "pilots/\($0)/\(device)/obs" } ?? "pilots/BAD TOPIC/obs", receivedAt: received,
                      verdict: .refused(topic, Refusal(reason, detail)), payload: Array(payload.utf8))
}
