import Foundation
import PilotwatchCore
import TestSupport
import Testing
@testable import PilotwatchStore

/// The subject's activity roll-up (`subject.last_measure_at`, `activity_lo`, `activity_hi`) that
/// dashboards read at "now", against the `subject_day` rows it summarises.
@Suite struct ActivityRollupTests {
    /// Millis of hour `hour` on day `day` (days since 1970-01-01).
    static func time(_ day: Int, hour: Int = 9) -> Int64 { Int64(day) * 86_400_000 + Int64(hour) * 3_600_000 }

    @Test func maskShiftsWhenALaterDayArrives() {
        var m = ActivityMask()
        m.add(at: Self.time(20_000))
        #expect(m == ActivityMask(lastAt: Self.time(20_000), lo: 1, hi: 0))
        m.add(at: Self.time(20_000, hour: 7))  // same day, earlier: the latest time stays
        #expect(m == ActivityMask(lastAt: Self.time(20_000), lo: 1, hi: 0))
        m.add(at: Self.time(20_002))  // two days later: the old day is now bit 2
        #expect(m == ActivityMask(lastAt: Self.time(20_002), lo: 0b101, hi: 0))
        m.add(at: Self.time(20_002 - 64))  // 64 days back: first bit of the high word
        #expect(m == ActivityMask(lastAt: Self.time(20_002), lo: 0b101, hi: 1))
        m.add(at: Self.time(20_002 - 128))  // beyond the 128 days: nothing changes
        #expect(m == ActivityMask(lastAt: Self.time(20_002), lo: 0b101, hi: 1))
        m.add(at: Self.time(20_002 + 63))  // bit 2 -> 65 (high word bit 1), bit 0 -> 63, 64 -> 127
        #expect(m == ActivityMask(lastAt: Self.time(20_065), lo: 1 | 1 << 63, hi: 0b10 | 1 << 63))
        m.add(at: Self.time(20_065 + 128))  // everything falls off
        #expect(m == ActivityMask(lastAt: Self.time(20_193), lo: 1, hi: 0))
    }

    @Test(arguments: 0..<20)
    func maskIsTheLast128DaysInAnyArrivalOrder(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed))
        var mask = ActivityMask()
        var times: [Int64] = []
        for _ in 0..<Int.random(in: 1...60, using: &rng) {
            let t = Self.time(20_000 + Int.random(in: 0..<300, using: &rng), hour: Int.random(in: 0..<24, using: &rng))
            times.append(t)
            mask.add(at: t)
        }
        let last = times.max()!
        let lastDay = Int(last / 86_400_000)
        var lo: UInt64 = 0, hi: UInt64 = 0
        for day in Set(times.map { Int($0 / 86_400_000) }) {
            let k = lastDay - day
            if k < 64 { lo |= 1 << UInt64(k) } else if k < 128 { hi |= 1 << UInt64(k - 64) }
        }
        #expect(mask == ActivityMask(lastAt: last, lo: lo, hi: hi), "seed \(seed)")
    }

    /// Random measurements, scores and events over 300 days, in random order and batches, some
    /// after the instants read: the roll-up answers exactly what the `subject_day` rows answer.
    @Test(arguments: 0..<6)
    func rollUpAgreesWithSubjectDays(seed: Int) throws {
        var rng = SplitMix(seed: 1_000 + UInt64(seed))
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        // Subjects 0-7 in hf-nord, 8-11 in resp-est under the pseudonyms of 0-3 (the same
        // pseudonym in two pilots is two subjects).
        let pilots = ["hf-nord", "resp-est"]
        var tagged: [(pilot: String, obs: Observation)] = []
        for s in 0..<12 {
            let pilot = pilots[s < 8 ? 0 : 1]
            let subject = "p-\(s % 8)"
            let first = Int.random(in: 0..<200, using: &rng)
            tagged.append((pilot, event(subject, "enrolled", at(day: first, hour: 8))))
            guard s % 5 != 4 else { continue }  // some subjects have events only
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let day = first + Int.random(in: -3..<100, using: &rng)
                tagged.append((pilot, measurement(subject, ["spo2", "weight", "heart_rate"].randomElement(using: &rng)!,
                                                  Double(Int.random(in: 80...99, using: &rng)),
                                                  at(day: day, hour: Double(Int.random(in: 0..<24, using: &rng))))))
            }
        }
        tagged.shuffle(using: &rng)
        let observations = tagged.map(\.obs)
        var items: [IngestItem] = []
        for (i, chunk) in stride(from: 0, to: tagged.count, by: 3).enumerated() {
            let part = tagged[chunk..<min(chunk + 3, tagged.count)]
            for pilot in pilots {
                let mine = part.filter { $0.pilot == pilot }.map(\.obs)
                if !mine.isEmpty { items.append(obsItem(pilot: pilot, msgID: "m\(i)", mine)) }
            }
        }
        var index = 0
        while index < items.count {
            let n = Int.random(in: 1...7, using: &rng)
            try store.ingest(Array(items[index..<min(index + n, items.count)]))
            index += n
        }
        #expect(try store.integrityCheck() == [])

        // Instants: "now" after all data, and inside the data (straddling days, exact times).
        var instants = [at(day: 400, hour: 0), at(day: 310, hour: 12)]
        for _ in 0..<6 { instants.append(observations.randomElement(using: &rng)!.at) }
        for _ in 0..<6 { instants.append(at(day: Int.random(in: 0..<310, using: &rng), hour: 12.5)) }
        try store.read { reader in
            for t in instants {
                for covering in [7, 28, 105, 128, 200] {
                    let byPilot = try reader.subjectFactsByPilot(asOf: t, historyDays: covering)
                    for pilot in pilots {
                        let pilotID = try #require(try reader.pilotID(pilot))
                        let fromRollUp = try reader.subjectFacts(pilot: pilot, asOf: t, historyDays: covering)
                        let fromDays = try reader.subjectFactsFromDays(owner: "s.pilot_id", id: pilotID, asOf: t,
                                                                       covering: covering)
                        #expect(fromRollUp == fromDays, "seed \(seed), \(pilot) as of \(t), \(covering) days")
                        #expect(byPilot[pilot] ?? [] == fromDays, "seed \(seed), \(pilot) as of \(t), \(covering) days")
                    }
                }
            }
        }
    }

    @Test func migrationFillsTheRollUpOfAnOlderStore() throws {
        let dir = try TempDir()
        let path = dir.file("old.sqlite")
        let d = 20_500
        // A v1 store: one subject with days d-130, d-70, d-3 and d (latest at 10:00), one with events only.
        try Store.createOlder(path: path, upTo: "v1", sql: """
            INSERT INTO pilot (id, code, first_seen) VALUES (1, 'hf-nord', 0);
            INSERT INTO subject (id, pilot_id, code, first_at) VALUES (1, 1, 'p-1', \(Self.time(d - 130))),
                                                                     (2, 1, 'p-2', \(Self.time(d)));
            INSERT INTO subject_day (subject_id, day, first_at, last_at, n) VALUES
                (1, \(d - 130), \(Self.time(d - 130)), \(Self.time(d - 130)), 1),
                (1, \(d - 70), \(Self.time(d - 70)), \(Self.time(d - 70)), 1),
                (1, \(d - 3), \(Self.time(d - 3)), \(Self.time(d - 3, hour: 11)), 2),
                (1, \(d), \(Self.time(d, hour: 8)), \(Self.time(d, hour: 10)), 2);
            """)
        let store = try Store(path: path)
        #expect(try store.schemaVersion() == Store.latestSchemaVersion)
        #expect(try store.scalar("SELECT last_measure_at FROM subject WHERE id = 1") == Self.time(d, hour: 10))
        #expect(try store.scalar("SELECT activity_lo FROM subject WHERE id = 1") == 1 | 1 << 3)
        #expect(try store.scalar("SELECT activity_hi FROM subject WHERE id = 1") == 1 << (70 - 64))
        #expect(try store.scalar("SELECT count(*) FROM subject WHERE id = 2 AND last_measure_at IS NULL AND activity_lo = 0") == 1)
    }

    @Test func integrityCheckFindsARollUpThatDisagrees() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest([obsItem(msgID: "m1", [measurement("p-1", 95, at(hour: 8)), measurement("p-1", 96, at(day: 2, hour: 8))])])
        #expect(try store.integrityCheck() == [])
        try store.executeRaw("UPDATE subject SET activity_lo = 1")
        #expect(try store.integrityCheck() == ["subjects whose activity days disagree with subject_day (expected, found): 0 != 1"])
        try store.executeRaw("UPDATE subject SET activity_lo = 5, last_measure_at = last_measure_at - 1")
        #expect(try store.integrityCheck() == [
            "subjects whose latest measurement disagrees with subject_day (expected, found): 0 != 1"])
    }
}
