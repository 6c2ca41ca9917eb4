import Foundation
import PilotwatchCore
@testable import PilotwatchStore
import Testing

/// What a deletion must leave in the database file and its WAL: none of the deleted bytes, even
/// when the deleted rows shared their pages with thousands of rows that stay.
@Suite("Erased and purged bytes leave the files")
struct ErasedBytesTests {
    private let pilot = "hf-nord"
    private let subjects = 3000

    private func pseudonym(_ n: Int) -> String { "pw-subj-\(String(format: "%05d", n))" }

    /// A reading value no other subject has, one per `k` (not a whole number: SQLite would store
    /// a whole REAL as an integer).
    private func distinctive(_ n: Int, _ k: Int) -> Double { 50 + Double(n % 40) + Double(k + 1) * 0.000_123_456_789 + 0.000_000_001_7 * Double(n) }

    /// `subjects` subjects of one pilot, on 50 shared devices: three readings each, an event for
    /// every fifth, and a refused message (payload kept) naming every seventh, in one stream so
    /// that every table's pages hold many subjects. `heavy` subjects have 200 readings each, spread
    /// over the stream, with values no other subject has; each is named by two refused messages
    /// whose payloads carry such a value as text.
    private func fill(_ store: Store, _ range: Range<Int>, heavy: [Int]) throws {
        var items: [IngestItem] = []
        for n in range {
            let s = pseudonym(n)
            var observations = (0..<3).map { h in measurement(s, 90 + Double(n % 7) + Double(h) / 10, at(day: n % 20, hour: Double(h))) }
            if n % 5 == 0 { observations.append(event(s, "hospitalisation", at(day: n % 20, hour: 5))) }
            items.append(obsItem(device: "dev-\(n % 50)", msgID: "m-\(n)", received: at(day: n % 20, hour: 12), observations))
            if n % 7 == 0 {
                items.append(refusedItem(device: "dev-\(n % 50)", received: at(day: n % 20, hour: 13), .unknownIndicator,
                                         "observations[0].indicator: not in the catalogue",
                                         payload: "{\"msg_id\":\"r-\(n)\",\"observations\":[{\"subject\":\"\(s)\",\"indicator\":\"spo3\",\"value\":91.5}]}"))
            }
            // The heavy subjects report all along, a message at a time, on the shared devices.
            for h in heavy where n % 15 == 0 {
                let k = n / 15
                let hs = pseudonym(h)
                items.append(obsItem(device: "dev-\((n + h) % 50)", msgID: "h-\(h)-\(k)", received: at(day: k % 60, hour: 14),
                                     [measurement(hs, distinctive(h, k), at(day: k % 60, hour: 8 + Double(k / 60)))]))
                if k == 7 || k == 150 {
                    items.append(refusedItem(device: "dev-\(h % 50)", received: at(day: k % 60, hour: 15), .outOfRange,
                                             "observations[0].value: 140 is above the plausible range 50..100 for spo2",
                                             payload: "{\"msg_id\":\"hr-\(h)-\(k)\",\"observations\":[{\"subject\":\"\(hs)\",\"indicator\":\"spo2\",\"value\":\(distinctive(h, k + 1000))}]}"))
                }
            }
            if items.count >= 500 { try store.ingest(items); items = [] }
        }
        try store.ingest(items)
    }

    /// The needles (as named, each at least 4 bytes) found in the database or its WAL: one pass
    /// over each file, its 2-byte windows filtered through a table before the 4-byte ones are
    /// looked up (`Data.range(of:)` per needle takes seconds for a thousand needles).
    private func found(_ needles: [String: [UInt8]], in path: String) -> [String] {
        let byPrefix = Dictionary(grouping: needles.filter { $0.value.count >= 4 }) { n in
            n.value[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        var starts = [Bool](repeating: false, count: 1 << 16)
        for key in byPrefix.keys { starts[Int(key >> 16)] = true }
        var hits: Set<String> = []
        for file in [path, path + "-wal"] {
            guard let data = FileManager.default.contents(atPath: file), data.count >= 4 else { continue }
            data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                for i in 0..<(bytes.count - 3) where starts[Int(bytes[i]) << 8 | Int(bytes[i + 1])] {
                    let key = UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
                    for (name, needle) in byPrefix[key] ?? [] where i + needle.count <= bytes.count
                        && bytes[i..<(i + needle.count)].elementsEqual(needle) {
                        hits.insert(name)
                    }
                }
            }
        }
        return hits.sorted()
    }

    /// The subject's bytes as SQLite writes them: the pseudonym as text, each reading as an
    /// 8-byte big-endian double, and the values its refused payloads carried as text.
    private func bytes(of n: Int) -> [String: [UInt8]] {
        var out = [pseudonym(n): Array(pseudonym(n).utf8)]
        for k in 0..<(subjects / 15) {
            out["reading \(k)"] = withUnsafeBytes(of: distinctive(n, k).bitPattern.bigEndian, Array.init)
        }
        for k in [7, 150] { out["payload value \(k)"] = Array("\(distinctive(n, k + 1000))".utf8) }
        return out
    }

    @Test("erasures after the store's first leave no byte of their subjects in pages shared with thousands of others")
    func laterErasuresLeaveNoBytes() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let keys = try ErasureKeys.ensure(database: store.path)
        // 30 subjects with 203 readings each (no event, two refusals), erased one after the other:
        // whether balancing leaves a copy depends on the pages' layout, and with `secure_delete`
        // alone one or two of the 30 erasures leave a reading (checked: also when only the
        // first erasure rewrites the file).
        let (first, later) = (10, Array(stride(from: 1002, through: 2017, by: 35)))
        // The store's first erasure comes early; most rows come after it.
        try fill(store, 0..<300, heavy: later)
        let one = try store.erase(pilot: pilot, subject: pseudonym(first), keys: keys, at: at(day: 70, hour: 0))
        #expect(one.newTombstone && one.observations == 3 && one.walEmptied)
        try fill(store, 300..<subjects, heavy: later)
        #expect(found(bytes(of: later[0]), in: store.path).count == bytes(of: later[0]).count, "every needle is there before")

        var left: [String: [String]] = [:]
        for (i, n) in later.enumerated() {
            let before = try store.stats()
            let s = try store.erase(pilot: pilot, subject: pseudonym(n), keys: keys, at: at(day: 70, hour: Double(i + 1)))
            #expect(s.newTombstone && s.observations == 203 && s.events == 0 && s.quarantined == 2 && s.walEmptied)
            #expect(try store.stats().observations == before.observations - s.observations - s.events, "no other subject's row")
            let found = found(bytes(of: n), in: store.path)
            if !found.isEmpty { left[pseudonym(n)] = found }
        }
        #expect(left == [:], "no pseudonym, reading or payload value of an erased subject in the database or its WAL")
        #expect(found(bytes(of: 2001), in: store.path).contains(pseudonym(2001)), "another subject's rows stay")
        #expect(try store.integrityCheck() == [])

        let again = try store.erase(pilot: pilot, subject: pseudonym(later[0]), keys: keys, at: at(day: 71, hour: 0))
        #expect(!again.newTombstone && again.observations == 0 && again.walEmptied, "a second run finds nothing")
    }

    @Test("a purge leaves no byte of the payloads and device statuses it drops, in pages shared with those it keeps")
    func purgeLeavesNoBytes() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        // 2000 devices, each with a message, then a status and two small refused messages (of varied lengths): runs of
        // 100 devices last reported on day 0 (due), runs of 100 on day 80, in one stream. A due
        // status has a battery level (not a whole number) and firmware no kept one has, a due
        // payload its tag.
        let devices = 2000
        let (dueBattery, keptBattery) = (37.123_456_789, 62.987_654_321)
        try store.ingest((0..<devices).map { d in
            obsItem(device: "dev-\(d)", msgID: "m-\(d)", [measurement(pseudonym(d), 90.5, at(day: 0, hour: 1))])
        })
        var items: [IngestItem] = []
        for d in 0..<devices {
            let due = (d / 100) % 2 == 0
            items.append(statusItem(device: "dev-\(d)", received: at(day: due ? 0 : 80, hour: 2),
                                    DeviceStatus(state: .online, at: nil, batteryPct: due ? dueBattery : keptBattery,
                                                 firmware: "\(due ? "fwdue" : "fwkept")-\(d)")))
            for r in 0..<2 {
                items.append(refusedItem(device: "dev-\(d)", received: at(day: due ? 0 : 80, hour: 3), .unknownIndicator,
                                         "observations[0].indicator: not in the catalogue",
                                         payload: "{\"msg_id\":\"\(due ? "duepayload" : "keptpayload")-\(d)-\(r)\",\"n\":\"\(String(repeating: "x", count: (d * 7 + r * 3) % 10))\"}"))
            }
            if items.count >= 500 { try store.ingest(items); items = [] }
        }
        try store.ingest(items)
        func double(_ v: Double) -> [UInt8] { withUnsafeBytes(of: v.bitPattern.bigEndian, Array.init) }
        let due = ["payload": Array("duepayload-".utf8), "firmware": Array("fwdue-".utf8), "battery": double(dueBattery)]
        let kept = ["payload": Array("keptpayload-".utf8), "firmware": Array("fwkept-".utf8), "battery": double(keptBattery)]
        #expect(found(due, in: store.path) == due.keys.sorted(), "every needle is there before")

        let cutoff = at(day: 40, hour: 0)
        let payloads = try store.purgeRefusedPayloads(cutoffs: [:], otherwise: cutoff, dryRun: false)
        #expect(payloads.refusedPayloads == devices)
        #expect(found(due, in: store.path) == ["battery", "firmware"], "no purged payload, before the statuses go")
        let statuses = try store.purgeDeviceStatuses(cutoffs: [:], otherwise: cutoff, dryRun: false)
        #expect(statuses == devices / 2)
        #expect(found(due, in: store.path) == [], "no purged payload, firmware or battery level in the database or its WAL")
        #expect(found(kept, in: store.path) == kept.keys.sorted(), "what was not due stays")
        #expect(try store.integrityCheck() == [])
    }
}
