import Foundation
import PilotwatchCore
@testable import PilotwatchStore
import Testing

@Suite("Removing a pilot's raw rows")
struct PilotRowsRemovalTests {
    /// Two pilots whose subjects, devices and messages are interleaved in every table's pages,
    /// so that removing one pilot's rows empties and rebalances pages the other still uses.
    private func interleaved(_ store: Store, subjects: Int) throws {
        var items: [IngestItem] = []
        for n in 0..<subjects {
            for (pilot, prefix) in [("hf-nord", "zqa"), ("hf-sud", "keep")] {
                let subject = "\(prefix)-subject-\(String(format: "%05d", n))"
                let observations = (0..<3).map { h in measurement(subject, 90 + Double(n % 7) + Double(h) / 10, at(day: n % 20, hour: Double(h))) }
                items.append(obsItem(pilot: pilot, device: "\(prefix)-dev-\(n % 50)", msgID: "\(prefix)-m-\(n)", observations))
            }
            if items.count >= 500 { try store.ingest(items); items = [] }
        }
        try store.ingest(items)
        try store.ingest([refusedItem(pilot: "hf-nord", device: "zqa-dev-1", .unknownIndicator, "observations[0].indicator: nope",
                                      payload: "{\"subject\":\"zqa-subject-00001\"}")])
    }

    private func filesHold(_ needle: String, _ path: String) -> [String] {
        [path, path + "-wal"].filter { FileManager.default.contents(atPath: $0)?.range(of: Data(needle.utf8)) != nil }
    }

    @Test("every row of the pilot goes, with its bytes, from pages shared with another pilot; the other's rows stay")
    func bytesGoneAtScale() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try interleaved(store, subjects: 3000)
        let kept = try store.stats().pilots.first { $0.pilot == "hf-sud" }
        #expect(!filesHold("zqa-", store.path).isEmpty)

        let dry = try store.removeRawRows(pilot: "hf-nord", dryRun: true)
        #expect(dry.rows(in: "observation") == 9000 && dry.rows(in: "subject") == 3000 && dry.rows(in: "device") == 50)
        #expect(dry.rows(in: "message") == 3000 && dry.rows(in: "reject") == 1 && dry.rows(in: "reject_payload") == 1)
        #expect(try store.rawRowCount(pilot: "hf-nord") == dry.rows, "the dry run removed nothing")

        let done = try store.removeRawRows(pilot: "hf-nord")
        #expect(done.tables == dry.tables)
        #expect(done.walEmptied)
        #expect(filesHold("zqa-", store.path) == [], "no pseudonym or device id of the pilot in the database or its WAL")
        #expect(try store.rawRowCount(pilot: "hf-nord") == 0)
        #expect(try store.stats().pilots.first { $0.pilot == "hf-sud" } == kept)
        #expect(try store.integrityCheck() == [])
        #expect(try store.removeRawRows(pilot: "hf-nord").isEmpty, "a second run finds nothing")
    }

    @Test("a bad pilot id is refused with the value", arguments: ["", "Bad Id", "a/b", String(repeating: "x", count: 65)])
    func badPilotID(_ pilot: String) throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        #expect {
            _ = try store.removeRawRows(pilot: pilot)
        } throws: { error in
            "\(error)".contains(pilot.debugDescription)
        }
    }
}
