import Testing
@testable import PilotwatchCore

// Contract 1.1 at the validator: a pilot that reports aggregates takes no observations
// (`aggregate_pilot`, hash only) and takes snapshots only from its registered site
// (`unknown_site`), and a pilot that reports observations takes no snapshots (`pilot_mismatch`).
// The snapshot payload itself is read by a `SnapshotChecking` (PilotwatchReports'
// SnapshotIntake, tested in SnapshotIntakeTests and over the broker in FederationIntakeTests).

/// Accepts any payload that is the text "ok", refusing anything else as `schema`.
private struct StubSnapshots: SnapshotChecking {
    var fieldNames: Set<String> { ["ok"] }
    func check(_ payload: [UInt8], pilot: Pilot, site: String, catalogue: Catalogue) throws(Refusal) -> SnapshotReceipt {
        guard payload == Array("{\"ok\":1}".utf8) else { throw Refusal(.schema, "payload: not ok") }
        return SnapshotReceipt(msgID: "m", site: site, asOf: Instant(millis: 86_400_000 - 1), revision: 1)
    }
}

private let aggregate = Pilot(id: "hf-agg", name: "agg", programme: "cardiac", lead: "l", call: "c", funders: [],
                              start: CF.day(2026, 3, 1), end: CF.day(2027, 12, 31), enrolmentTarget: 50, milestones: [],
                              outcomes: [], reporting: .aggregates(site: "chu-lille"))
private let validator = ContractValidator(registry: Registry(pilots: CF.registry.pilots + [aggregate]), catalogue: CF.catalogue,
                                          snapshots: StubSnapshots())

private func verdict(_ topic: String, _ payload: String) -> Verdict {
    validator.validate(topic: topic, payload: Array(payload.utf8), receivedAt: CF.received)
}

@Suite("Aggregate pilots and snapshot topics (contract 1.1)")
struct AggregatePilotTests {
    @Test func observationsForAnAggregatePilotAreRefusedAsHashOnly() {
        let message = CF.message()
        let refused = verdict("pilots/hf-agg/scale-1/obs", message)
        #expect(refused.reason == .aggregatePilot)
        #expect(refused.refusal?.detail.contains("hf-agg/chu-lille/agg") == true, "\(refused)")
        #expect(refused.refusal?.detail.contains("p-7f3a9c21") == false, "the detail names no subject")
        #expect(!ReasonCode.aggregatePilot.keepsPayload)
        #expect(verdict("pilots/hf-agg/scale-1/status", #"{"state":"online"}"#).reason == .aggregatePilot)
        // The same message for a pilot that reports observations is accepted.
        #expect(verdict("pilots/card-hf-idf-03/scale-1/obs", message).isAccepted)
    }

    @Test func snapshotTopicsAreCheckedInOrder() {
        let ok = #"{"ok":1}"#
        guard case .snapshot(let topic, let receipt) = verdict("pilots/hf-agg/chu-lille/agg", ok) else {
            Issue.record("expected a snapshot"); return
        }
        #expect(topic == Topic(pilot: "hf-agg", device: "chu-lille", kind: .agg))
        #expect(receipt.site == "chu-lille")
        #expect(verdict("pilots/hf-none/chu-lille/agg", ok).reason == .unknownPilot)
        let observations = verdict("pilots/card-hf-idf-03/chu-lille/agg", ok)
        #expect(observations.reason == .pilotMismatch && observations.refusal?.detail.contains("reports observations") == true)
        let site = verdict("pilots/hf-agg/scale-1/agg", ok)
        #expect(site.reason == .unknownSite && site.refusal?.detail.contains("\"scale-1\" is not the site of pilot hf-agg") == true, "\(site)")
        #expect(verdict("pilots/hf-agg/chu-lille/agg", #"{"ok":2}"#).reason == .schema)
        #expect(verdict("pilots/hf-agg/Chu/agg", ok).refusal?.detail.contains("site id \"Chu\"") == true)
        #expect(verdict("pilots/hf-agg/chu-lille/aggs", ok).refusal?.detail.contains("must be obs, status or agg") == true)
        let large = verdict("pilots/hf-agg/chu-lille/agg", String(repeating: " ", count: ContractLimits.maxPayloadBytes + 1))
        #expect(large.reason == .tooLarge)
    }

    @Test func withoutASnapshotReaderSnapshotsAreRefused() {
        let plain = ContractValidator(registry: Registry(pilots: [aggregate]), catalogue: CF.catalogue)
        let v = plain.validate(topic: "pilots/hf-agg/chu-lille/agg", payload: Array(#"{"ok":1}"#.utf8), receivedAt: CF.received)
        #expect(v.reason == .schema)
    }

    /// A snapshot's sums and means have long fractions whose digits can fall into an identifier's
    /// shape (a NIR's 15 digits, a phone number's 10): they are statistics, not identifiers. Its
    /// strings and integers are still read.
    @Test func aSnapshotsFractionsAreNotReadAsIdentifiersItsStringsAre() {
        struct AnySnapshots: SnapshotChecking {
            var fieldNames: Set<String> { ["sum", "days", "note", "n"] }
            func check(_ payload: [UInt8], pilot: Pilot, site: String, catalogue: Catalogue) throws(Refusal) -> SnapshotReceipt {
                SnapshotReceipt(msgID: "m", site: site, asOf: Instant(millis: 86_400_000 - 1), revision: 1)
            }
        }
        let v = ContractValidator(registry: Registry(pilots: [aggregate]), catalogue: CF.catalogue, snapshots: AnySnapshots())
        func verdict(_ payload: String) -> Verdict {
            v.validate(topic: "pilots/hf-agg/chu-lille/agg", payload: Array(payload.utf8), receivedAt: CF.received)
        }
        let fractions = #"{"sum":19.284126984126985,"days":489377.0538085177,"n":12}"#
        #expect(verdict(fractions).isAccepted, "\(verdict(fractions))")
        #expect(verdict(#"{"sum":1.5,"note":"jean.dupont@example.fr"}"#).reason == .identifyingData)
        // Not a snapshot: the same digits in an identifier's shape are refused where they are read.
        #expect(v.identifyingRefusal(rawBytes: Array(fractions.utf8), receivedAt: CF.received, knownNames: ["sum", "days", "n"]) != nil)
        #expect(v.identifyingRefusal(rawBytes: Array(fractions.utf8), receivedAt: CF.received, knownNames: ["sum", "days", "n"],
                                     fractionsAreStatistics: true) == nil)
    }
}
