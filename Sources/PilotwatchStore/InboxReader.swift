import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads an inbox's records from one thread, with its own file descriptor (closed by
/// ``close()`` or when the last copy of the reader goes away).
public struct InboxReader {
    let inbox: Inbox
    private let files: SegmentFiles

    init(inbox: Inbox) {
        self.inbox = inbox
        files = SegmentFiles(directory: inbox.directory)
    }

    /// Closes the file it holds (a later read opens it again).
    public func close() { files.close() }

    /// The records from `position` up to the durable end: at most `maxRecords`, and no more once
    /// `maxBytes` of bodies are read (at least one record). Returns where the next read starts.
    /// A position in a segment that no longer exists moves to the oldest one there is.
    public mutating func read(from position: InboxPosition, maxRecords: Int,
                              maxBytes: Int) throws -> (records: [InboxRecord], next: InboxPosition) {
        let (records, _, next) = try readSpans(from: position, maxRecords: maxRecords, maxBytes: maxBytes)
        return (records, next)
    }

    /// ``read(from:maxRecords:maxBytes:)`` with where each record lies in the inbox.
    public mutating func readSpans(from position: InboxPosition, maxRecords: Int, maxBytes: Int) throws
        -> (records: [InboxRecord], spans: [InboxSpan], next: InboxPosition) {
        try Inbox.walk(inbox, from: position, maxRecords: maxRecords, maxBytes: maxBytes, record: files.record)
    }
}

extension Inbox {
    /// Reads `count` bytes of `fd` at `offset` into `raw` (retrying interrupted and short
    /// reads); returns how many it got, fewer only at the end of the file.
    static func preadFully(_ fd: Int32, into raw: UnsafeMutableRawBufferPointer, count: Int, at offset: Int64,
                           path: String) throws -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw InboxError.io(path: path, call: "pread", reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The walk both readers make: records from `position` up to `inbox`'s durable end, at most
    /// `maxRecords` and no more once `maxBytes` are read (at least one record), going on to the
    /// next segment at the end of a closed one; `record` cuts one record at a place (nil: the
    /// segment ends there). A position in a segment that no longer exists moves to the oldest.
    static func walk(_ inbox: Inbox, from position: InboxPosition, maxRecords: Int, maxBytes: Int,
                     record: (_ segment: Int64, _ offset: Int64, _ limit: Int64) throws -> (InboxRecord, Int)?) throws
        -> (records: [InboxRecord], spans: [InboxSpan], next: InboxPosition) {
        let end = inbox.end
        var at = position
        if at.segment < inbox.oldestSegment { at = InboxPosition(segment: inbox.oldestSegment, offset: 0) }
        var records: [InboxRecord] = []
        var spans: [InboxSpan] = []
        records.reserveCapacity(min(maxRecords, 4096))
        spans.reserveCapacity(min(maxRecords, 4096))
        var bytes = 0
        while records.count < maxRecords && bytes < maxBytes && at < end {
            let limit = at.segment == end.segment ? end.offset : Int64.max
            guard let (found, length) = try record(at.segment, at.offset, limit) else {
                // The end of a closed segment: go on with the next one.
                guard at.segment < end.segment else { break }
                at = InboxPosition(segment: at.segment + 1, offset: 0)
                continue
            }
            records.append(found)
            spans.append(InboxSpan(segment: at.segment, offset: at.offset, length: Int64(length)))
            bytes += length
            at.offset += Int64(length)
        }
        return (records, spans, at)
    }
}

/// The segment files of an inbox folder, read one record at a time (one open file at a time,
/// closed by ``close()`` or when this object goes away).
final class SegmentFiles {
    let directory: String
    private var fd: Int32 = -1
    private var openSegment: Int64 = 0
    private var header = [UInt8](repeating: 0, count: Inbox.headerBytes)

    init(directory: String) { self.directory = directory }

    deinit { close() }

    func close() {
        if fd >= 0 { closeDescriptor(fd) }
        fd = -1
    }

    /// The length of the run of whole, checksummed records at the start of `segment`. A record
    /// at one of the `scrubbing` offsets counts whole whatever its checksum (a scrub torn by a
    /// crash; its length field was never rewritten).
    ///
    /// Read a window at a time (one `pread` a MiB, where reading record by record took two a
    /// record: some 70,000 in a full segment, at every start), and never past the file's end: a
    /// torn length is a record that does not fit, not a buffer of up to 4 GiB to fill.
    func validLength(of segment: Int64, scrubbing: Set<Int64> = []) throws -> Int64 {
        let path = Inbox.path(directory, segment)
        var size = stat()
        guard stat(path, &size) == 0 else {
            if errno == ENOENT { return 0 }
            throw InboxError.io(path: path, call: "stat", reason: String(cString: strerror(errno)))
        }
        let file = ChunkFile(directory: directory)
        defer { file.close() }
        var offset: Int64 = 0
        while true {
            do {
                guard let (_, length) = try file.record(segment: segment, offset: offset, limit: Int64(size.st_size)) else {
                    return offset
                }
                offset += Int64(length)
            } catch InboxError.corrupt(_, _, let reason) where scrubbing.contains(offset) && reason.contains("checksum") {
                guard let length = try recordLength(segment: segment, offset: offset) else { return offset }
                offset += Int64(length)
            } catch InboxError.corrupt {
                return offset
            }
        }
    }

    /// The length (header included) that the record header at `offset` declares.
    func recordLength(segment: Int64, offset: Int64) throws -> Int? {
        let path = Inbox.path(directory, segment)
        try openFile(segment: segment, path: path)
        guard fd >= 0, try readFully(&header, at: offset, path: path) == Inbox.headerBytes else { return nil }
        let length = Int(header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian })
        return length == 0 ? nil : Inbox.headerBytes + length
    }

    private func openFile(segment: Int64, path: String) throws {
        if fd >= 0 && openSegment == segment { return }
        close()
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno)))
        }
        openSegment = segment
    }

    /// The record at `offset` and its length (header included); nil at the segment's end (or
    /// `limit`), or when the segment does not exist.
    func record(segment: Int64, offset: Int64, limit: Int64) throws -> (InboxRecord, Int)? {
        let path = Inbox.path(directory, segment)
        try openFile(segment: segment, path: path)
        guard fd >= 0 else { return nil }
        guard offset + Int64(Inbox.headerBytes) <= limit else { return nil }
        let got = try readFully(&header, at: offset, path: path)
        if got == 0 { return nil }
        guard got == Inbox.headerBytes else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record header is cut short")
        }
        guard let (length, crc) = try header.withUnsafeBytes({
            try Inbox.decodeHeader($0, path: path, offset: offset, limit: limit)
        }) else { return nil }
        var body = [UInt8](repeating: 0, count: length)
        guard try readFully(&body, at: offset + Int64(Inbox.headerBytes), path: path) == length else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record body is cut short")
        }
        let record = try body.withUnsafeBytes { try Inbox.decodeBody($0, crc: crc, path: path, offset: offset) }
        return (record, Inbox.headerBytes + length)
    }

    private func readFully(_ buffer: inout [UInt8], at offset: Int64, path: String) throws -> Int {
        let count = buffer.count
        let fd = self.fd
        return try buffer.withUnsafeMutableBytes { try Inbox.preadFully(fd, into: $0, count: count, at: offset, path: path) }
    }
}
