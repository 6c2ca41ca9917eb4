import Foundation
import PilotwatchCore
import Testing
@testable import PilotwatchSim

/// Everything the tests check about the full demo scenario, gathered in one pass (seed 1, to the demo's end).
struct FullRun: Sendable {
    struct PilotStats: Sendable {
        var kinds: [String: Int] = [:]
        var validObsMessages = 0
        var enrolled: Set<String> = []
        var subjectsWithData: Set<String> = []
        var lastDeviceMessage: Instant?
        var deviceOfflineAfterSilence = 0
    }

    var summary = SimulationSummary()
    var pilots: [String: PilotStats] = [:]
    /// Problems found, as sentences (empty when all is well); at most 30 kept.
    var problems: [String] = []
    var problemCount = 0
    var outOfOrder = 0
    var refusalReasons: [String: [String: Int]] = [:]
    var repeatedObservations = 0
    var offsets: Set<String> = []
    var seconds = 0.0

    mutating func problem(_ text: String) {
        problemCount += 1
        if problems.count < 30 { problems.append(text) }
    }

    static let shared: Result<FullRun, Fixtures.LoadError> = {
        do { return .success(try compute()) } catch { return .failure(Fixtures.LoadError(description: "\(error)")) }
    }()

    static func get() throws -> FullRun { try shared.get() }

    static func compute() throws -> FullRun {
        let loaded = try Fixtures.load()
        let end = try Fixtures.instant(Fixtures.endText)
        let validator = ContractValidator(registry: loaded.registry, catalogue: loaded.catalogue)
        let sim = Simulation(scenario: loaded.scenario, seed: 1, end: end)
        var run = FullRun()
        var previous = Instant(millis: Int64.min)
        var seen = Set<UInt64>()
        let clock = ContinuousClock()
        let started = clock.now
        let silenceStart = end.adding(days: -21)
        for m in sim {
            run.summary.add(m)
            if m.at < previous { run.outOfOrder += 1 }
            previous = m.at
            var stats = run.pilots[m.pilot] ?? PilotStats()
            stats.kinds[m.kind.rawValue, default: 0] += 1
            let device = m.topic.split(separator: "/")[2]
            if device.hasPrefix("dev-") {
                if m.kind == .status, m.at >= silenceStart, m.payload.starts(with: Array(#"{"state":"offline""#.utf8)) {
                    stats.deviceOfflineAfterSilence += 1
                } else {
                    stats.lastDeviceMessage = max(stats.lastDeviceMessage ?? m.at, m.at)
                }
            }
            if m.at > end { run.problem("\(m.topic) published at \(m.at), after the end") }
            // The contract's own validator, as pilotwatch runs it on reception.
            let verdict = validator.validate(topic: m.topic, payload: m.payload, receivedAt: m.at.adding(millis: 1000))
            switch (m.kind, verdict) {
            case (.obs, .observations(_, let msg)), (.duplicate, .observations(_, let msg)):
                if m.kind == .obs {
                    stats.validObsMessages += 1
                    for o in msg.observations {
                        if let s = o.subject {
                            stats.subjectsWithData.insert(s)
                            if o.indicator == "enrolled" { stats.enrolled.insert(s) }
                        }
                        var h = SplitMix64.mix(stableHash(m.pilot + "/" + (o.subject ?? "") + "/" + o.indicator), UInt64(bitPattern: o.at.millis))
                        h = SplitMix64.mix(h, 1)
                        if !seen.insert(h).inserted { run.repeatedObservations += 1 }
                        if o.at > m.at { run.problem("\(m.topic): observation at \(o.at) after its message at \(m.at)") }
                        if o.at > end { run.problem("\(m.topic): observation at \(o.at) after the end") }
                    }
                }
                if msg.observations.count != m.observations { run.problem("\(m.topic): \(msg.observations.count) observations, summary says \(m.observations)") }
            case (.status, .status):
                break
            case (.malformed, .refused(_, let r)), (.identifying, .refused(_, let r)), (.invalid, .refused(_, let r)):
                run.refusalReasons[m.kind.rawValue, default: [:]][r.reason.rawValue, default: 0] += 1
            default:
                run.problem("\(m.kind.rawValue) message on \(m.topic) got \(verdict): \(String(decoding: m.payload.prefix(300), as: UTF8.self))")
            }
            // Shape, read independently with Foundation (every misbehaving or status message, one in ten of the rest).
            if m.kind != .obs || run.summary.published % 10 == 0 { shape(m, end: end, into: &run) }
            run.pilots[m.pilot] = stats
        }
        run.seconds = Double((clock.now - started).components.seconds)
        return run
    }

    static let obsKeys: Set<String> = ["msg_id", "sent_at", "pilot", "observations"]
    static let observationKeys: Set<String> = ["subject", "indicator", "value", "unit", "at"]

    static func shape(_ m: SimMessage, end: Instant, into run: inout FullRun) {
        let parsed = try? JSONSerialization.jsonObject(with: Data(m.payload))
        if m.kind == .malformed {
            if parsed != nil { run.problem("malformed payload on \(m.topic) parses as JSON") }
            return
        }
        guard let obj = parsed as? [String: Any] else { run.problem("\(m.topic): payload is not a JSON object"); return }
        let parts = m.topic.split(separator: "/").map(String.init)
        guard parts.count == 4, parts[0] == "pilots", parts[1] == m.pilot,
              isValidCode(parts[2]), parts[2].hasPrefix("dev-") || parts[2].hasPrefix("hub-") else {
            run.problem("bad topic \(m.topic)"); return
        }
        for key in ["sent_at", "at"] {
            if let s = obj[key] as? String {
                run.offsets.insert(String(s.suffix(s.hasSuffix("Z") ? 1 : 6)))
                if RFC3339.parse(s) == nil { run.problem("\(m.topic): \(key) \(s) is not RFC 3339") }
            }
        }
        if parts[3] == "status" {
            if !m.retain || Set(obj.keys) != ["state", "at", "battery_pct", "firmware"] && Set(obj.keys) != ["state", "at", "firmware"] {
                run.problem("\(m.topic): status shape \(obj.keys.sorted())")
            }
            return
        }
        guard m.kind != .identifying else { return }
        if !Set(obj.keys).isSubset(of: obsKeys) || obj["msg_id"] == nil { run.problem("\(m.topic): keys \(obj.keys.sorted())") }
        guard let list = obj["observations"] as? [[String: Any]], (1...ContractLimits.maxObservations).contains(list.count) else {
            run.problem("\(m.topic): observations missing or empty"); return
        }
        if parts[2].hasPrefix("hub-"), list.count > 200 { run.problem("\(m.topic): \(list.count) observations in one back-end message") }
        for o in list {
            if !Set(o.keys).isSubset(of: observationKeys) { run.problem("\(m.topic): observation keys \(o.keys.sorted())") }
            guard let at = (o["at"] as? String).flatMap({ RFC3339.parse($0) }) else { run.problem("\(m.topic): observation without at"); continue }
            if at > m.at { run.problem("\(m.topic): observation at \(at) after the message") }
            if let s = o["subject"] as? String, m.kind == .obs || m.kind == .duplicate,
               !(s.count == 10 && s.hasPrefix("p-") && s.dropFirst(2).allSatisfy { $0.isHexDigit && !$0.isUppercase }) {
                run.problem("\(m.topic): subject \(s) is not a p-xxxxxxxx pseudonym")
            }
        }
    }
}

@Suite struct FullScenarioTests {
    @Test func theDemoScenarioStaysWithinItsBudget() throws {
        let run = try FullRun.get()
        let s = run.summary
        print("full seed scenario to \(Fixtures.endText) (seed 1): \(s.published) messages, \(s.observations) valid observations " +
              "(\(s.observationsSent) sent in all); by kind \(s.byKind.sorted { $0.key < $1.key }); generated and checked in ~\(Int(run.seconds)) s (debug)")
        #expect(s.published <= 150_000)
        #expect(s.observationsSent <= 1_500_000)
        #expect(s.published >= 50_000)
        #expect(s.observations >= 300_000)
    }

    @Test func everyMessageHasTheContractsShapeAndVerdict() throws {
        let run = try FullRun.get()
        #expect(run.problemCount == 0, "\(run.problems.joined(separator: "\n"))")
        #expect(run.outOfOrder == 0)
        #expect(run.repeatedObservations == 0)
        #expect(run.offsets.contains("Z") && run.offsets.contains("+01:00") && run.offsets.contains("+02:00"))
        // Every pilot of the scenario sends something.
        #expect(run.pilots.count == 15)
    }

    @Test func deliberateMisbehavioursAreRefusedForTheirReason() throws {
        let run = try FullRun.get()
        func reasons(_ kind: String) -> Set<String> { Set((run.refusalReasons[kind] ?? [:]).keys) }
        print("refusal reasons by kind: \(run.refusalReasons)")
        #expect(reasons("malformed") == ["malformed_json"])
        #expect(reasons("identifying") == ["identifying_data"])
        #expect(reasons("invalid") == ["bad_unit", "out_of_range"])
    }

    @Test func misbehaviourRatesAreRoughlyAsConfigured() throws {
        let run = try FullRun.get()
        let patch = try #require(run.pilots["card-hf-patch-12"])
        let n = Double(patch.validObsMessages)
        print("card-hf-patch-12: \(patch.validObsMessages) valid messages, kinds \(patch.kinds.sorted { $0.key < $1.key })")
        // 18, 12 and 30 per thousand (an invalid copy needs a measurement, which nearly every message has).
        for (kind, perThousand) in [("malformed", 18.0), ("identifying", 12.0), ("invalid", 30.0)] {
            let got = Double(patch.kinds[kind] ?? 0)
            #expect(got >= 0.4 * perThousand * n / 1000 && got <= 2 * perThousand * n / 1000, "\(kind): \(got) for \(n) messages")
        }
        // Nobody else misbehaves that way.
        for (id, p) in run.pilots where id != "card-hf-patch-12" {
            #expect((p.kinds["malformed"] ?? 0) + (p.kinds["identifying"] ?? 0) + (p.kinds["invalid"] ?? 0) == 0, "\(id)")
        }
        // Retries: 15 per thousand for the gestational-diabetes app, 2 per thousand elsewhere.
        let gest = try #require(run.pilots["diab-gest-08"])
        let gestRate = Double(gest.kinds["duplicate"] ?? 0) / Double(gest.validObsMessages) * 1000
        #expect(gestRate > 10 && gestRate < 20, "\(gestRate)")
        let others = run.pilots.filter { $0.key != "diab-gest-08" }.values
        let otherRate = Double(others.map { $0.kinds["duplicate"] ?? 0 }.reduce(0, +)) / Double(others.map(\.validObsMessages).reduce(0, +)) * 1000
        #expect(otherRate > 1 && otherRate < 3.5, "\(otherRate)")
    }

    @Test func unenrolledSubjectsSilentFleetAndLaggingPilotShowUp() throws {
        let run = try FullRun.get()
        let end = try Fixtures.instant(Fixtures.endText)
        for (id, expected) in [("resp-ild-spiro-05", 2), ("diab-cgm-t2-06", 3), ("card-hf-nurse-14", 2), ("card-hf-weight-11", 0)] {
            let p = try #require(run.pilots[id])
            #expect(p.subjectsWithData.subtracting(p.enrolled).count == expected, "\(id)")
        }
        let silent = try #require(run.pilots["card-hf-ai-13"])
        let last = try #require(silent.lastDeviceMessage)
        #expect(last < end.adding(days: -21))
        #expect(last > end.adding(days: -22))
        #expect(silent.deviceOfflineAfterSilence > 50)
        // Other device fleets keep sending to the end.
        let live = try #require(run.pilots["card-hf-weight-11"]?.lastDeviceMessage)
        #expect(live > end.adding(days: -1))
        // The rehabilitation pilot is far below its milestone of 60 by 2026-09-30.
        let rehab = try #require(run.pilots["resp-copd-rehab-03"])
        #expect(rehab.enrolled.count < 45, "\(rehab.enrolled.count)")
        let onTrack = try #require(run.pilots["card-hf-weight-11"])
        #expect(onTrack.enrolled.count >= 200 && onTrack.enrolled.count <= 250, "\(onTrack.enrolled.count)")
    }
}
