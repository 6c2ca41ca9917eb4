import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import PilotwatchStore
import Testing

// The cluster reads a snapshot for an aggregate pilot against its own registry entry and
// catalogue: the same facts are accepted, any difference is `registry_mismatch` naming the first
// field that differs, a snapshot of another pilot is `pilot_mismatch`.

private let catalogue = Catalogue(indicators: [spo2, respRate])
private let pilot = Pilot(id: "p-agg", name: "Agg", programme: "respiratory", lead: "L", call: "C", funders: [],
                          start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                          milestones: [Milestone(date: Day(parsing: "2026-03-31")!, enrolled: 10)],
                          outcomes: ["spo2", "resp_rate"], reporting: .aggregates(site: "site-a"))

@Suite("Snapshot intake: the cluster's registry is the reference")
struct SnapshotIntakeTests {
    let data: RandomStore

    init() throws { data = try RandomStore(seed: 5) }

    func payload(_ change: (inout PilotSnapshot) -> Void = { _ in }) throws -> [UInt8] {
        var s = try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue, day: t0.day,
                                          revision: 1_781_600_000_000, msgID: "snap-1")
        change(&s)
        return Array(s.json().utf8)
    }

    @Test func theSameFactsAreAccepted() throws {
        let receipt = try SnapshotIntake().check(try payload(), pilot: pilot, site: "site-a", catalogue: catalogue)
        #expect(receipt == SnapshotReceipt(msgID: "snap-1", site: "site-a", asOf: t0.day.advanced(by: 1).start.adding(millis: -1),
                                           revision: 1_781_600_000_000))
    }

    @Test(arguments: [
        ("enrolment_target", "registry.enrolment_target: 120 is not the cluster's 80"),
        ("end", "registry.end: 2027-06-30 is not the cluster's 2026-12-31"),
        ("milestone", "registry.milestones[0].enrolled: 12 is not the cluster's 10"),
        ("unit", "registry.outcomes[0] (spo2).unit: \"1\" is not the cluster's \"%\""),
        ("target", "registry.outcomes[0] (spo2).target: 88..100 is not the cluster's"),
        ("window", "registry.outcomes[1] (resp_rate).windows.follow_up_days: 90 is not the cluster's 45"),
        ("outcome", "registry.outcomes[1]: missing; the cluster's has resp_rate"),
    ])
    func aDifferenceIsRefusedNamingTheField(change: String, detail: String) throws {
        let bytes = try payload { s in
            switch change {
            case "enrolment_target": s.registry.enrolmentTarget = 120
            case "end": s.registry.end = Day(parsing: "2027-06-30")!
            case "milestone": s.registry.milestones[0].enrolled = 12
            case "unit": s.registry.outcomes[0].unit = "1"
            case "target": s.registry.outcomes[0].target = ValueRange(min: 88, max: 100)
            case "window": s.registry.outcomes[1].windows.followUpDays = 90
            default: s.registry.outcomes.removeLast()
            }
        }
        do {
            _ = try SnapshotIntake().check(bytes, pilot: pilot, site: "site-a", catalogue: catalogue)
            Issue.record("accepted a snapshot computed with other registry facts (\(change))")
        } catch {
            #expect(error.reason == .registryMismatch)
            #expect(error.detail.hasPrefix(detail), "\(error.detail)")
        }
    }

    @Test func everyFieldOfABuiltSnapshotIsKnownToTheIdentifyingDataScan() throws {
        func names(_ v: JSONValue) -> [String] {
            switch v {
            case .object(let o): return o.members.flatMap { [$0.key] + names($0.value) }
            case .array(let a): return a.flatMap(names)
            default: return []
            }
        }
        let all = Set(names(try JSON.parse(try payload())))
        #expect(all.subtracting(SnapshotIntake.fieldNames).isEmpty, "\(all.subtracting(SnapshotIntake.fieldNames))")
        // With them known, a built snapshot passes the scan the validator runs on every snapshot.
        let validator = ContractValidator(registry: Registry(pilots: [pilot]), catalogue: catalogue, snapshots: SnapshotIntake())
        let verdict = validator.validate(topic: "pilots/p-agg/site-a/agg", payload: try payload(), receivedAt: t0.adding(days: 1))
        guard case .snapshot = verdict else { Issue.record("\(verdict)"); return }
        // An identifier inside a snapshot is still found (and kept as hash only).
        let named = String(decoding: try payload(), as: UTF8.self).replacingOccurrences(of: "\"msg_id\":\"snap-1\"", with: "\"msg_id\":\"jean.dupont@example.fr\"")
        let refused = validator.validate(topic: "pilots/p-agg/site-a/agg", payload: Array(named.utf8), receivedAt: t0.adding(days: 1))
        guard case .refused(_, let r) = refused else { Issue.record("\(refused)"); return }
        #expect(r.reason == .identifyingData)
    }

    @Test func anotherPilotsSnapshotIsAPilotMismatch() throws {
        let bytes = try payload { $0.pilot = "p-other" }
        #expect(throws: Refusal.self) { try SnapshotIntake().check(bytes, pilot: pilot, site: "site-a", catalogue: catalogue) }
        do { _ = try SnapshotIntake().check(bytes, pilot: pilot, site: "site-a", catalogue: catalogue) } catch {
            #expect(error.reason == .pilotMismatch && error.detail.contains("p-other"))
        }
    }
}
