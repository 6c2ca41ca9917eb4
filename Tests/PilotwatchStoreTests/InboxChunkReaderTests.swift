import Foundation
import PilotwatchCore
import TestSupport
import Testing
@testable import PilotwatchStore

/// The applier's reader gives what ``InboxReader`` gives, batch for batch, error for error.
@Suite struct InboxChunkReaderTests {
    private static func record(_ i: Int, payload: [UInt8]? = nil) -> InboxRecord {
        InboxRecord(receivedAt: Instant(millis: 1_772_409_600_000 + Int64(i)), topic: "pilots/hf-nord/dev-\(i % 7)/obs",
                    payload: payload ?? Array("{\"msg_id\":\"m\(i)\",\"pad\":\"\(String(repeating: "x", count: i % 97))\"}".utf8))
    }

    /// Every batch both readers give from `.start`, `maxRecords` and `maxBytes` at a time.
    private static func batches(_ inbox: Inbox, maxRecords: Int, maxBytes: Int)
        throws -> (plain: [[InboxRecord]], chunked: [[InboxRecord]], spansAgree: Bool) {
        var plain = inbox.reader(), chunked = InboxChunkReader(inbox: inbox)
        defer { plain.close(); chunked.close() }
        var a: [[InboxRecord]] = [], b: [[InboxRecord]] = []
        var at = InboxPosition.start, spansAgree = true
        while true {
            let x = try plain.readSpans(from: at, maxRecords: maxRecords, maxBytes: maxBytes)
            let y = try chunked.readSpans(from: at, maxRecords: maxRecords, maxBytes: maxBytes)
            spansAgree = spansAgree && x.spans == y.spans && x.next == y.next
            if x.records.isEmpty && x.next == at { return (a, b, spansAgree) }
            a.append(x.records); b.append(y.records)
            at = x.next
        }
    }

    @Test(arguments: [(1, 1 << 20), (7, 1 << 20), (4096, 1 << 20), (4096, 300), (4096, 1)])
    func batchesAreThoseOfTheRecordReader(maxRecords: Int, maxBytes: Int) throws {
        let dir = try TempDir()
        let inbox = try Inbox(directory: dir.file("inbox"), segmentBytes: 8192)
        let odd: [[UInt8]] = [[], [0xFF, 0xFE, 0x00, 0x80], Array(repeating: 0x41, count: 20_000)]
        for chunk in stride(from: 0, to: 600, by: 25) { try inbox.append((chunk..<(chunk + 25)).map { Self.record($0) }) }
        try inbox.append(odd.enumerated().map { Self.record(1000 + $0.offset, payload: $0.element) })
        try inbox.append([Self.record(2000)])
        #expect(try Inbox.segments(in: dir.file("inbox")).count > 5)
        let (plain, chunked, spansAgree) = try Self.batches(inbox, maxRecords: maxRecords, maxBytes: maxBytes)
        #expect(plain.joined().count == 604)
        #expect(chunked == plain)
        #expect(spansAgree)
    }

    @Test func recordsAppendedBetweenTwoReadsAreRead() throws {
        let dir = try TempDir()
        let inbox = try Inbox(directory: dir.file("inbox"))
        var reader = InboxChunkReader(inbox: inbox)
        defer { reader.close() }
        try inbox.append((0..<3).map { Self.record($0) })
        let first = try reader.readSpans(from: .start, maxRecords: 100, maxBytes: 1 << 20)
        try inbox.append((3..<5).map { Self.record($0) })
        let second = try reader.readSpans(from: first.next, maxRecords: 100, maxBytes: 1 << 20)
        #expect(first.records + second.records == (0..<5).map { Self.record($0) })
        #expect(second.next == inbox.end)
    }

    @Test func scrubbedRecordsReadAsScrubbed() throws {
        let dir = try TempDir()
        let inbox = try Inbox(directory: dir.file("inbox"))
        try inbox.append((0..<5).map { Self.record($0) })
        var reader = InboxChunkReader(inbox: inbox)
        defer { reader.close() }
        let all = try reader.readSpans(from: .start, maxRecords: 100, maxBytes: 1 << 20)
        try inbox.scrub([all.spans[1], all.spans[3]])
        let again = try reader.readSpans(from: .start, maxRecords: 100, maxBytes: 1 << 20)
        #expect(again.records.map(\.isScrubbed) == [false, true, false, true, false])
        #expect(again.next == all.next)
    }

    @Test func damageIsReportedAsTheRecordReaderReportsIt() throws {
        let dir = try TempDir()
        let folder = dir.file("inbox")
        let inbox = try Inbox(directory: folder, segmentBytes: 4096)
        for chunk in stride(from: 0, to: 300, by: 10) { try inbox.append((chunk..<(chunk + 10)).map { Self.record($0) }) }
        var reader = InboxChunkReader(inbox: inbox)
        defer { reader.close() }
        let (firstTwo, _, damaged) = try reader.readSpans(from: .start, maxRecords: 2, maxBytes: 1 << 20)
        let path = Inbox.path(folder, 1)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[Int(damaged.offset) + 12] ^= 0x55  // inside the third record's body
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(firstTwo == [Self.record(0), Self.record(1)])
        #expect(throws: InboxError.corrupt(path: path, offset: damaged.offset, reason: "a record checksum does not match")) {
            _ = try reader.readSpans(from: .start, maxRecords: 10, maxBytes: 1 << 20)
        }
    }

    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 1000])
    func theSlicedChecksumIsZlibs(count: Int) {
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let sliced = bytes.withUnsafeBytes { CRC32Sliced.checksum($0) }
        #expect(sliced == bytes.withUnsafeBufferPointer { CRC32.checksum($0) })
    }

    @Test func theChecksumOfAKnownTextIsZlibs() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32Sliced.checksum($0) } == 0xCBF4_3926)
    }
}
