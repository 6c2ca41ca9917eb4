import Foundation
import PilotwatchCore
@testable import PilotwatchStore
import Testing

// Snapshots (contract 1.1) in the store: one row per (pilot, as_of), a higher revision replaces
// it, an equal or lower one is a duplicate; a refused snapshot is quarantined and counted
// store-wide, never as a device of the pilot. The reasons of 1.1 insert into the v4 tables.

private let dayEnd = day0.adding(millis: Instant.millisPerDay - 1)

private func snapshotItem(pilot: String = "hf-agg", site: String = "site-a", asOf: Instant = dayEnd, revision: Int64,
                          received: Instant = at(day: 1, hour: 3)) -> IngestItem {
    let payload = #"{"msg_id":"s-\#(revision)","pilot":"\#(pilot)","revision":\#(revision)}"#
    return IngestItem(topic: "pilots/\(pilot)/\(site)/agg", receivedAt: received,
                      verdict: .snapshot(Topic(pilot: pilot, device: site, kind: .agg),
                                         SnapshotReceipt(msgID: "s-\(revision)", site: site, asOf: asOf, revision: revision)),
                      payload: Array(payload.utf8))
}

private func refusedItem(_ topic: Topic, _ reason: ReasonCode) -> IngestItem {
    IngestItem(topic: "pilots/\(topic.pilot)/\(topic.device)/\(topic.kind.rawValue)", receivedAt: at(day: 1, hour: 4),
               verdict: .refused(topic, Refusal(reason, "test")), payload: Array("{}".utf8))
}

@Suite("Snapshots in the store")
struct SnapshotStoreTests {
    @Test func aHigherRevisionReplacesAnEqualOrLowerOneIsADuplicate() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        #expect(try store.ingest([snapshotItem(revision: 10)]) == [.snapshot(replaced: false)])
        #expect(try store.ingest([snapshotItem(revision: 10), snapshotItem(revision: 9)]) == [.duplicateSnapshot, .duplicateSnapshot])
        #expect(try store.ingest([snapshotItem(revision: 12)]) == [.snapshot(replaced: true)])
        #expect(try store.ingest([snapshotItem(asOf: dayEnd.adding(millis: Instant.millisPerDay), revision: 11)]) == [.snapshot(replaced: false)])

        let all = try store.snapshots()
        #expect(all.map(\.revision) == [12, 11], "one row per day end, the superseded revision gone")
        #expect(all[0].payload.contains("\"revision\":12") && all[0].sha256 == SHA256.hex(Array(all[0].payload.utf8)))
        #expect(try store.latestSnapshot(pilot: "hf-agg", atOrBefore: dayEnd.adding(millis: 1000))?.revision == 12)
        #expect(try store.latestSnapshot(pilot: "hf-agg", atOrBefore: dayEnd.adding(millis: -1)) == nil)
        let summary = try #require(try store.snapshotSummaries().first)
        #expect(summary.pilot == "hf-agg" && summary.site == "site-a" && summary.dayEnds == 2 && summary.revision == 11)
        let stats = try store.stats()
        #expect(stats.accepted == 0 && stats.observations == 0, "snapshots are not observation messages")
    }

    @Test func refusedSnapshotsAreQuarantinedWithoutADevice() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let agg = Topic(pilot: "hf-agg", device: "site-b", kind: .agg)
        let outcomes = try store.ingest([refusedItem(agg, .unknownSite), refusedItem(agg, .registryMismatch),
                                         refusedItem(Topic(pilot: "hf-agg", device: "scale-1", kind: .obs), .aggregatePilot)])
        #expect(outcomes == [.refused(.unknownSite), .refused(.registryMismatch), .refused(.aggregatePilot)])
        let stats = try store.stats()
        #expect(stats.refusedByReason == [.unknownSite: 1, .registryMismatch: 1, .aggregatePilot: 1])
        #expect(try store.read { try $0.devices(pilot: "hf-agg") }.map(\.code) == ["scale-1"], "a site is not a device")
        let rejects = try store.rejects(RejectFilter())
        #expect(Set(rejects.map(\.reason)) == [.unknownSite, .registryMismatch, .aggregatePilot])
        #expect(try store.snapshots().isEmpty)
    }

    @Test func aReplayedSnapshotRefusalIsStoredAndUncountedStoreWide() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let topic = Topic(pilot: "hf-agg", device: "site-a", kind: .agg)
        _ = try store.ingest([refusedItem(topic, .registryMismatch)])
        let reject = try #require(try store.rejects(RejectFilter()).first)
        // The registry was fixed: the replay re-validates it as a snapshot.
        let summary = try store.replay([(reject.id, snapshotItem(revision: 7))])
        #expect(summary.accepted == 1)
        let stats = try store.stats()
        #expect(stats.refused == 0 && stats.refusedByReason.values.allSatisfy { $0 == 0 }, "\(stats.refusedByReason)")
        #expect(try store.snapshots().map(\.revision) == [7])
        #expect(try store.read { try $0.devices(pilot: "hf-agg") }.isEmpty, "a site is not a device")
        #expect(try store.rejects(RejectFilter()).isEmpty)
    }
}
