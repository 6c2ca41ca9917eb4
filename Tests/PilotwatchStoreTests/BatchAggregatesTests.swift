import Foundation
import GRDB
import PilotwatchCore
import Testing
@testable import PilotwatchStore

/// The in-memory aggregation of a write transaction: ``SmallMap`` (a scan up to 16 keys, a hash
/// index beyond) and the roll-ups it feeds, checked against what the observations say.
@Suite struct BatchAggregatesTests {
    /// Random updates of keys from a range (so that keys repeat, and the map crosses 16 keys)
    /// give the values and first-added order a dictionary and a list of keys give.
    @Test(arguments: [4, 16, 17, 40, 300])
    func smallMapHoldsWhatADictionaryHolds(keys: Int) {
        var rng = SplitMix64(seed: UInt64(keys))
        var map = SmallMap<Int, Int>()
        var oracle: [Int: Int] = [:]
        var order: [Int] = []
        for _ in 0..<2_000 {
            let key = Int(rng.next() % UInt64(keys))
            let add = Int(rng.next() % 100)
            map.update(key, default: 1000) { $0 += add }
            if oracle[key] == nil { order.append(key) }
            oracle[key, default: 1000] += add
            // A repeat of the same key right after (the last-found shortcut).
            if add % 3 == 0 {
                map.update(key, default: 1000) { $0 -= 1 }
                oracle[key]! -= 1
            }
        }
        #expect(map.entries.map(\.key) == order)
        #expect(Dictionary(uniqueKeysWithValues: map.entries.map { ($0.key, $0.value) }) == oracle)
    }

    /// One transaction in which a subject has measurements on 40 days of 20 indicators, in an
    /// order that keeps changing day and indicator, received over 20 days: its `subject_day` and
    /// `subject_indicator` rows and the pilot's days are those the observations give.
    @Test func rollUpsOfManyDaysAndIndicatorsInOneTransactionMatchTheirObservations() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        var rng = SplitMix64(seed: 7)
        var observations: [(msg: Int, obs: Observation)] = []
        for i in 0..<600 {
            let day = Int(rng.next() % 40), indicator = "ind-\(rng.next() % 20)"
            let time = at(day: day, hour: Double(rng.next() % 1440) / 60)
            observations.append((i, measurement("p-aaaaaa", indicator, Double(i), time)))
        }
        // A repeat of the same (indicator, time) is a duplicate: keep the first only.
        var seen = Set<String>()
        observations = observations.filter { seen.insert("\($0.obs.indicator)@\($0.obs.at.millis)").inserted }
        let items = observations.map { o in
            obsItem(msgID: "m\(o.msg)", received: at(day: o.msg % 20, hour: 12), [o.obs])
        }
        let outcomes = try store.ingest(items)
        #expect(outcomes.allSatisfy { $0 == .accepted(newObservations: 1, duplicateObservations: 0) })

        var days: [Int: (first: Int64, last: Int64, n: Int)] = [:]
        var indicators: [String: (n: Int, first: Observation, last: Observation)] = [:]
        for o in observations.map(\.obs) {
            let day = o.at.day.index
            let d = days[day]
            days[day] = (min(d?.first ?? .max, o.at.millis), max(d?.last ?? .min, o.at.millis), (d?.n ?? 0) + 1)
            let s = indicators[o.indicator]
            indicators[o.indicator] = ((s?.n ?? 0) + 1,
                                       s.map { $0.first.at <= o.at ? $0.first : o } ?? o,
                                       s.map { $0.last.at >= o.at ? $0.last : o } ?? o)
        }
        #expect(days.count == 40)
        #expect(indicators.count == 20)
        try store.read { r throws in
            let stored = try r.subjectDays(pilot: "hf-nord", from: day0.day, through: day0.day.advanced(by: 40))
            #expect(stored == days.keys.sorted().map { day in
                SubjectDayRecord(subject: "p-aaaaaa", day: Day(index: day), firstAt: Instant(millis: days[day]!.first),
                                 lastAt: Instant(millis: days[day]!.last), count: days[day]!.n)
            })
            for (code, s) in indicators {
                #expect(try r.subjectIndicators(pilot: "hf-nord", indicator: code) == [
                    SubjectIndicatorRecord(subject: "p-aaaaaa", indicator: code, count: s.n,
                                           first: TimedValue(at: s.first.at, value: s.first.value),
                                           last: TimedValue(at: s.last.at, value: s.last.value)),
                ])
            }
            let pilotDays = try r.pilotDays(pilot: "hf-nord", from: day0.day, through: day0.day.advanced(by: 40))
            #expect(pilotDays.map(\.day) == (0..<20).map { day0.day.advanced(by: $0) })
            #expect(pilotDays.map(\.accepted).reduce(0, +) == observations.count)
            for record in pilotDays {
                let n = observations.filter { $0.msg % 20 == record.day.index - day0.day.index }.count
                #expect(record.accepted == n && record.observations == n)
            }
        }
        let stats = try store.stats()
        #expect(stats.pilots.first?.lastObservationAt == observations.map(\.obs.at).max())
        #expect(stats.observations == observations.count)
    }
}

/// The applier's numbered codes (``KeyInterner`` on the preparer's thread, ``SlotIDs`` in the
/// writer) store exactly what the same items store without them.
@Suite struct BatchKeysTests {
    /// Mixed items (messages of one subject, of two, pilot-level ones, events, statuses,
    /// refusals, redeliveries, subjects and devices first seen late), in chunks and transactions
    /// of random sizes: every table of the store is the same, row for row, with and without
    /// slots; also when the numbering starts over (a small capacity) and when the writer forgets
    /// its ids between transactions (as after an erasure or a rollback).
    @Test(arguments: [(seed: UInt64(1), capacity: 1 << 18, forget: false), (2, 7, false), (3, 1 << 18, true)])
    func numberedItemsStoreWhatPlainItemsStore(seed: UInt64, capacity: Int, forget: Bool) throws {
        var rng = SplitMix64(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        var items: [IngestItem] = []
        for i in 0..<1_500 {
            let pilot = ["hf-nord", "diab-sud", "copd-est"][pick(3)]
            let device = "dev-\(pick(4 + i / 100))"
            let received = at(day: i / 300, hour: Double(i % 300) / 13)
            let msgID = pick(10) == 0 && i > 10 ? "m\(pick(i))" : "m\(i)"
            let subjectA = "p-\(pick(5 + i / 50))", subjectB = "p-\(pick(5 + i / 50))"
            func obs(_ subject: String?) -> Observation {
                let time = at(day: pick(30), hour: Double(pick(24 * 60)) / 60)
                switch pick(6) {
                case 0: return Observation(subject: subject, indicator: ["enrolled", "hospitalisation"][pick(2)], kind: .event,
                                           value: 1, at: time)
                case 1: return Observation(subject: nil, indicator: "enrolled_total", kind: .measurement, value: Double(pick(50)), at: time)
                default: return measurement(subject ?? subjectA, ["spo2", "weight", "hr"][pick(3)], Double(pick(100)), time)
                }
            }
            switch pick(10) {
            case 0:
                items.append(statusItem(pilot: pilot, device: device, received: received,
                                        DeviceStatus(state: pick(2) == 0 ? .online : .offline, at: nil,
                                                     batteryPct: Double(pick(100)), firmware: nil)))
            case 1:
                items.append(refusedItem(pilot: pilot, device: device, received: received, .schema, "x", payload: "{}"))
            case 2:
                items.append(obsItem(pilot: pilot, device: device, msgID: msgID, received: received, [obs(subjectA), obs(subjectB)]))
            default:
                items.append(obsItem(pilot: pilot, device: device, msgID: msgID, received: received,
                                     (0..<(1 + pick(3))).map { _ in obs(subjectA) }))
            }
        }
        // Chunks of 1 to 200 items, transactions of 1 to 4 chunks.
        var transactions: [[[IngestItem]]] = []
        var rest = items[...]
        while !rest.isEmpty {
            var chunks: [[IngestItem]] = []
            for _ in 0...pick(4) where !rest.isEmpty {
                let n = min(rest.count, 1 + pick(200))
                chunks.append(Array(rest.prefix(n)))
                rest = rest.dropFirst(n)
            }
            transactions.append(chunks)
        }

        let dir = try TempDir()
        let plain = try Store(path: dir.file("plain.sqlite")), numbered = try Store(path: dir.file("numbered.sqlite"))
        let interner = KeyInterner(capacity: capacity)
        var plainOutcomes: [IngestOutcome] = [], numberedOutcomes: [IngestOutcome] = []
        for chunks in transactions {
            var pending = chunks.dropFirst()
            plainOutcomes += try plain.ingest(IngestChunk(items: chunks[0])) {
                pending.popFirst().map { IngestChunk(items: $0) }
            }
            func numberedChunk(_ items: [IngestItem]) -> IngestChunk {
                IngestChunk(items: items, scrubs: [], inboxPosition: nil, keys: interner.keys(of: items))
            }
            pending = chunks.dropFirst()
            numberedOutcomes += try numbered.ingest(numberedChunk(chunks[0])) { pending.popFirst().map(numberedChunk) }
            if forget && pick(3) == 0 { try numbered.writeDirect("forgetting") { _, state in state.reset() } }
        }
        #expect(numberedOutcomes == plainOutcomes)
        #expect(numberedOutcomes.count == items.count)
        #expect(plainOutcomes.contains(.duplicateMessage))
        let tables = try plain.read { r in
            try String.fetchAll(r.db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        }
        #expect(tables.contains("subject_day") && tables.contains("device"))
        for table in tables {
            let dump = { (store: Store) in
                try store.read { r in try Row.fetchAll(r.db, sql: "SELECT * FROM \(table)").map(\.description).sorted() }
            }
            let a = try dump(plain), b = try dump(numbered)
            #expect(a == b, "table \(table)")
        }
    }
}
