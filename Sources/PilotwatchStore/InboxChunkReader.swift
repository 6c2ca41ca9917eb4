import Foundation
import PilotwatchCore

/// Reads an inbox's records as ``InboxReader`` does, a chunk of the segment file at a time: one
/// `pread` for many records, instead of two per record, and a checksum eight bytes at a step.
/// For the applier, which reads everything the inbox receives once.
///
/// ```swift
/// var reader = InboxChunkReader(inbox: inbox)
/// defer { reader.close() }
/// let (records, spans, next) = try reader.readSpans(from: position, maxRecords: 4096, maxBytes: 4 << 20)
/// ```
///
/// Nothing is kept between two calls: bytes past the durable end read in one call could be
/// written over by the next append.
struct InboxChunkReader {
    let inbox: Inbox
    private let file: ChunkFile

    init(inbox: Inbox) {
        self.inbox = inbox
        file = ChunkFile(directory: inbox.directory)
    }

    /// Closes the file it holds (a later read opens it again).
    func close() { file.close() }

    /// The records from `position` up to the durable end, as ``InboxReader/readSpans(from:maxRecords:maxBytes:)``
    /// returns them: at most `maxRecords`, and no more once `maxBytes` are read (at least one record).
    mutating func readSpans(from position: InboxPosition, maxRecords: Int, maxBytes: Int) throws
        -> (records: [InboxRecord], spans: [InboxSpan], next: InboxPosition) {
        file.forget()
        return try Inbox.walk(inbox, from: position, maxRecords: maxRecords, maxBytes: maxBytes, record: file.record)
    }
}

/// One segment file and a window of its bytes read ahead; records are cut from the window.
final class ChunkFile {
    static let chunkBytes = 1 << 20

    let directory: String
    private var fd: Int32 = -1
    private var segment: Int64 = 0
    private var path = ""
    private var window: [UInt8] = []
    /// The file offset of `window[0]`, and how many bytes of `window` were read.
    private var windowStart: Int64 = 0
    private var windowCount = 0

    init(directory: String) { self.directory = directory }

    deinit { close() }

    func close() {
        if fd >= 0 { _ = Foundation.close(fd) }
        fd = -1
        forget()
    }

    /// Drops the bytes read ahead.
    func forget() {
        windowStart = 0
        windowCount = 0
    }

    /// The record at `offset` and its length (header included); nil at the segment's end (or
    /// `limit`), or when the segment does not exist. The same checks and errors as
    /// ``SegmentFiles/record(segment:offset:limit:)``: both decode with ``Inbox/decodeHeader(_:path:offset:limit:)``
    /// and ``Inbox/decodeBody(_:crc:path:offset:)``.
    func record(segment: Int64, offset: Int64, limit: Int64) throws -> (InboxRecord, Int)? {
        try open(segment)
        guard fd >= 0 else { return nil }
        guard offset + Int64(Inbox.headerBytes) <= limit else { return nil }
        let got = try load(offset, count: Inbox.headerBytes, limit: limit)
        if got == 0 { return nil }
        guard got == Inbox.headerBytes else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record header is cut short")
        }
        let at = Int(offset - windowStart)
        let header = try window.withUnsafeBytes { raw in
            try Inbox.decodeHeader(UnsafeRawBufferPointer(rebasing: raw[at..<(at + Inbox.headerBytes)]),
                                   path: path, offset: offset, limit: limit)
        }
        guard let (length, crc) = header else { return nil }
        guard try load(offset, count: Inbox.headerBytes + length, limit: limit) == Inbox.headerBytes + length else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record body is cut short")
        }
        let bodyStart = Int(offset - windowStart) + Inbox.headerBytes
        let record = try window.withUnsafeBytes { raw in
            try Inbox.decodeBody(UnsafeRawBufferPointer(rebasing: raw[bodyStart..<(bodyStart + length)]), crc: crc,
                                 path: path, offset: offset)
        }
        return (record, Inbox.headerBytes + length)
    }

    private func open(_ segment: Int64) throws {
        if fd >= 0 && self.segment == segment { return }
        close()
        path = Inbox.path(directory, segment)
        fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno)))
        }
        self.segment = segment
    }

    /// Makes the window hold `count` bytes from `offset` (reading ahead, never past `limit`);
    /// returns how many it holds (fewer at the end of the file).
    private func load(_ offset: Int64, count: Int, limit: Int64) throws -> Int {
        if offset >= windowStart, offset + Int64(count) <= windowStart + Int64(windowCount) { return count }
        let want = Int(min(Int64(max(count, Self.chunkBytes)), max(Int64(count), limit - offset)))
        if window.count < want { window = [UInt8](repeating: 0, count: want) }
        let fd = self.fd
        let done = try window.withUnsafeMutableBytes { try Inbox.preadFully(fd, into: $0, count: want, at: offset, path: path) }
        windowStart = offset
        windowCount = done
        return min(done, count)
    }
}
