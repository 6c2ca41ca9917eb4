import Foundation
import PilotwatchCore
import Testing
@testable import PilotwatchStore

@Suite struct LifecycleTests {
    @Test func replayMovesARejectIntoTheData() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let payload = #"{"msg_id":"m-1","observations":[{"subject":"p-aaaaaa","indicator":"nt_probnp","value":900}]}"#
        try store.ingest([
            refusedItem(received: at(hour: 10), .unknownIndicator, "observations[0].indicator: nt_probnp is not in the catalogue",
                        payload: payload),
            refusedItem(received: at(hour: 11), .unknownIndicator, "observations[0].indicator: nt_probnp is not in the catalogue",
                        payload: #"{"msg_id":"m-2"}"#),
            refusedItem(received: at(hour: 12), .unknownPilot, "topic: pilot lung-est is not in the registry",
                        payload: #"{"msg_id":"m-3"}"#),
            obsItem(msgID: "m-0", [measurement("p-aaaaaa", 95, at(hour: 9))]),
        ])
        let candidates = try store.replayCandidates(RejectFilter(reason: .unknownIndicator))
        #expect(candidates.count == 2)
        let first = try #require(candidates.first)
        #expect(first.payload == Array(payload.utf8))

        // After the catalogue gained nt_probnp, the first is accepted; the second now names an identifying value.
        var accepted = obsItem(msgID: "m-1", [measurement("p-aaaaaa", "nt_probnp", 900, at(hour: 7))])
        accepted.receivedAt = at(day: 3, hour: 0)   // ignored: the reject keeps its time
        let summary = try store.replay([
            (rejectID: first.id, item: accepted),
            (rejectID: candidates[1].id, item: refusedItem(.identifyingData, "observations[0].subject: looks like a phone number",
                                                            payload: "")),
            (rejectID: 9_999, item: accepted),
        ])
        #expect(summary == ReplaySummary(accepted: 1, stillRefused: 1, missing: 1, newObservations: 1))

        let stats = try store.stats()
        #expect(stats.accepted == 2)
        #expect(stats.refused == 2)
        #expect(stats.observations == 2)
        #expect(stats.refusedByReason == [.identifyingData: 1, .unknownPilot: 1])
        #expect(stats.pilots.first?.accepted == 2)
        #expect(stats.pilots.first?.refused == 2)

        let rejects = try store.rejects(RejectFilter())
        #expect(rejects.map(\.reason) == [.unknownPilot, .identifyingData])
        #expect(rejects.last?.detail == "observations[0].subject: looks like a phone number")
        #expect(rejects.last?.receivedAt == at(hour: 11))
        #expect(try store.replayCandidates(RejectFilter()).map(\.reason) == [.unknownPilot])   // payload dropped

        try store.read { r throws in
            #expect(try r.values(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "nt_probnp", from: day0,
                                 through: at(day: 1, hour: 0)) == [TimedValue(at: at(hour: 7), value: 900)])
            let days = try r.pilotDays(pilot: "hf-nord", from: day0.day, through: day0.day.advanced(by: 5))
            #expect(days == [PilotDayRecord(day: day0.day, accepted: 2, duplicate: 0, refused: 2, statuses: 0,
                                            observations: 2, duplicateObservations: 0)])
            #expect(try r.devices().first?.refused == 2)
            #expect(try r.devices().first?.messages == 2)
        }

        // Replaying again the one that stayed refused as a message already stored: a duplicate, out of quarantine.
        let second = try #require(try store.rejects(RejectFilter(reason: .identifyingData)).first)
        #expect(try store.replay([(rejectID: second.id, item: accepted)]) == ReplaySummary(duplicates: 1))
        let after = try store.stats()
        #expect(after.refused == 1 && after.duplicate == 1 && after.accepted == 2)
        #expect(after.refusedByReason == [.unknownPilot: 1])
        #expect(try store.integrityCheck() == [])
    }

    @Test func backupIsAReadableConsistentCopy() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest((0..<50).map { i in
            obsItem(msgID: "m-\(i)", [measurement("p-\(String(repeating: "a", count: 5))\(i % 7)", 90 + Double(i % 10),
                                                  at(hour: Double(i) / 3))])
        } + [refusedItem(.outOfRange, "observations[0].value: 140 is above the plausible range 50..100 for spo2", payload: "x")])

        try store.backup(to: dir.file("copy.sqlite"))
        let copy = try Store(path: dir.file("copy.sqlite"), options: StoreOptions(readOnly: true))
        #expect(try copy.stats() == store.stats())
        #expect(try copy.replayCandidates(RejectFilter()) == store.replayCandidates(RejectFilter()))
        #expect(try copy.integrityCheck() == [])
        #expect(try copy.schemaVersion() == Store.latestSchemaVersion)
        #expect(Store.latestSchemaVersion == "v10-pilot-archive", "a new migration: name it here")

        #expect(throws: StoreError.backupDestinationExists(path: dir.file("copy.sqlite"))) {
            try store.backup(to: dir.file("copy.sqlite"))
        }
        #expect(throws: StoreError.folderMissing(path: dir.file("nowhere/copy.sqlite"))) {
            try store.backup(to: dir.file("nowhere/copy.sqlite"))
        }
    }

    @Test func integrityCheckFindsCountersThatDisagreeWithRows() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest([obsItem(msgID: "m-1", [measurement("p-aaaaaa", 95, at(hour: 9))])])
        #expect(try store.integrityCheck() == [])
        try store.executeRaw("UPDATE ingest_total SET accepted = accepted + 1")
        #expect(try store.integrityCheck().contains { $0.hasPrefix("accepted messages vs message rows: 2 != 1") })
    }

    @Test func openingErrorsSayWhatIsWrong() throws {
        let dir = try TempDir()
        #expect(throws: StoreError.folderMissing(path: dir.file("missing/s.sqlite"))) {
            _ = try Store(path: dir.file("missing/s.sqlite"))
        }
        #expect(throws: StoreError.fileMissing(path: dir.file("s.sqlite"))) {
            _ = try Store(path: dir.file("s.sqlite"), options: StoreOptions(readOnly: true))
        }
        let error = StoreError.folderMissing(path: "/srv/x/s.sqlite")
        #expect(error.description.contains("/srv/x/s.sqlite"))
    }

    @Test(arguments: StoreOptions.Synchronous.allCases)
    func aReaderInAnotherConnectionSeesCommittedBatches(synchronous: StoreOptions.Synchronous) throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        let writer = try Store(path: path, options: StoreOptions(synchronous: synchronous))
        try writer.ingest([obsItem(msgID: "m-1", [measurement("p-aaaaaa", 95, at(hour: 9))])])
        let reader = try Store(path: path, options: StoreOptions(readOnly: true))
        #expect(try reader.stats().accepted == 1)
        try writer.ingest([obsItem(msgID: "m-2", [measurement("p-aaaaaa", 96, at(hour: 10))])])
        #expect(try reader.stats().accepted == 2)
        #expect(throws: StoreError.readOnly(path: path)) {
            try reader.ingest([obsItem(msgID: "m-3", [])])
        }
        #expect(try writer.text("PRAGMA journal_mode") == "wal")
        #expect(try writer.scalar("PRAGMA synchronous") == (synchronous == .full ? 2 : 1))
    }

    @Test func readsRunDuringIngestAndSeeWholeBatches() async throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let batches = 40, perBatch = 50
        let snapshots = try await withThrowingTaskGroup(of: [StoreStats].self) { group in
            group.addTask {
                for b in 0..<batches {
                    try store.ingest((0..<perBatch).map { i in
                        obsItem(pilot: "p\(i % 3)", device: "d\(i % 7)", msgID: "b\(b)-\(i)",
                                [measurement("p-\(String(format: "%06d", i))", 90, at(hour: Double(b) + Double(i) / 100))])
                    })
                }
                return []
            }
            group.addTask {
                var seen: [StoreStats] = []
                while seen.last?.accepted ?? 0 < batches * perBatch {
                    seen.append(try store.stats())
                }
                return seen
            }
            var all: [StoreStats] = []
            for try await part in group { all += part }
            return all
        }
        #expect(snapshots.last?.accepted == batches * perBatch)
        for s in snapshots {
            // Each read is one snapshot: whole batches, totals and per-pilot rows agreeing.
            #expect(s.accepted % perBatch == 0)
            #expect(s.observations == s.accepted)
            #expect(s.pilots.map(\.accepted).reduce(0, +) == s.accepted)
            #expect(s.pilots.map(\.observations).reduce(0, +) == s.observations)
        }
        #expect(zip(snapshots, snapshots.dropFirst()).allSatisfy { $0.accepted <= $1.accepted })
    }

    @Test func aStoreFromANewerPilotwatchIsRefused() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        do {
            let store = try Store(path: path)
            try store.executeRaw("INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        }
        #expect(throws: StoreError.newerSchema(path: path, unknown: ["v99"])) {
            _ = try Store(path: path)
        }
    }
}

@Suite struct SchemaV4Tests {
    /// v4 rebuilds `reject` and `refusal_day` for contract 1.1's reasons: every row and payload
    /// of a v3 store stays (the rebuild must not cascade into `reject_payload`), the triggers
    /// still guard identifying data, and `store_error` can be stored.
    @Test func aV3StoreKeepsItsQuarantineAndTakesStoreError() throws {
        let dir = try TempDir()
        let path = dir.file("old.sqlite")
        let hash = String(repeating: "a", count: 64)
        try Store.createOlder(path: path, upTo: "v3-inbox", sql: """
            INSERT INTO reject (id, received_at, topic, pilot, device, reason, detail, payload_sha256) VALUES
                (1, 0, 'pilots/hf-nord/d/obs', 'hf-nord', 'd', 'unknown_indicator', 'x', '\(hash)'),
                (2, 0, 'pilots/hf-nord/d/obs', 'hf-nord', 'd', 'identifying_data', 'y', '\(hash)');
            INSERT INTO reject_payload (reject_id, payload) VALUES (1, x'7b7d');
            INSERT INTO refusal_day (pilot_id, day, reason, n) VALUES (0, 1, 'unknown_indicator', 1), (0, 1, 'identifying_data', 1);
            UPDATE ingest_total SET refused = 2;
            """)
        let store = try Store(path: path)
        #expect(try store.schemaVersion() == Store.latestSchemaVersion)
        #expect(try store.scalar("SELECT count(*) FROM reject") == 2)
        #expect(try store.scalar("SELECT count(*) FROM reject_payload WHERE reject_id = 1") == 1)
        #expect(try store.scalar("SELECT sum(n) FROM refusal_day") == 2)
        #expect(throws: StoreError.self, "the identifying guard survives the rebuild") {
            try store.executeRaw("INSERT INTO reject_payload (reject_id, payload) VALUES (2, x'00')")
        }
        try store.ingest([refusedItem(received: at(hour: 1), .storeError, "the database refused it", payload: "{}")])
        #expect(try store.stats().refusedByReason[.storeError] == 1)
        #expect(try store.integrityCheck() == [])
    }
}
