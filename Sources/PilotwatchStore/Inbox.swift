import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The append-only journal between the MQTT client and SQLite: `pilotwatch serve` acknowledges
/// a message once it is here (written and `fdatasync`ed), and a second thread moves it into
/// SQLite, recording in the same transaction how far it got (``Store/ingest(_:inboxPosition:)``).
///
/// Why a journal rather than acknowledging after the SQLite commit: a commit costs about one
/// b-tree page per message and index (≈50 µs of CPU per message), an append costs one `write`
/// and one `fdatasync` per burst. Acknowledging after the append lets the broker's backlog drain
/// at the speed of the network and the disk, and absorbs bursts that SQLite works through
/// afterwards; the guarantee is the same (nothing acknowledged that is not on disk), because
/// `serve` replays the journal from the recorded position at start.
///
/// Layout: a folder of segments named by number (`00000000000000000001.log`, ...), each a
/// sequence of records
///
///     u32 length of the body, little-endian
///     u32 CRC-32 of the body
///     body: i64 received-at (epoch ms) · u16 topic length · topic (UTF-8) · payload
///
/// A segment is created filled with zeros to ``segmentBytes`` (so that appending overwrites
/// allocated blocks and `fdatasync` flushes data only, not a new file size: about half the cost
/// per burst, measured), and a zero length marks the end of its records. It is closed once its
/// records pass ``segmentBytes`` and the next one starts; segments that are wholly in SQLite are
/// deleted. Only the newest segment can end in a torn record (a crash during an append whose
/// messages were therefore never acknowledged): opening the inbox zeroes it.
///
/// ```swift
/// let inbox = try Inbox(directory: "var/pilotwatch.sqlite.inbox")
/// try inbox.append([InboxRecord(receivedAt: .now, topic: topic, payload: payload)])  // then PUBACK
/// var reader = inbox.reader()
/// let (records, next) = try reader.read(from: applied, maxRecords: 512, maxBytes: 4 << 20)
/// ```
// @unchecked Sendable: `append` and `removeSegments` are called from one thread each (the MQTT
// thread appends, the applier thread removes segments strictly older than the one it reads, never
// the one being written); `scrub` (applier thread) opens its own descriptor and rewrites only
// records already applied, never bytes being appended; the shared state `durable` and `oldest` is
// read and written only with `lock` held. Readers (``InboxReader``) own their file descriptors.
public final class Inbox: @unchecked Sendable {
    public let directory: String
    /// A random identity written when the inbox is created (file `id`), recorded by the store
    /// that applies it, so that an inbox is never applied to another database.
    public let id: String
    /// A segment is closed once it reaches this size (a record is never split).
    public let segmentBytes: Int64

    private let lock = NSLock()
    private var durable: InboxPosition
    private var oldest: Int64
    private var fd: Int32
    private var segment: Int64
    private var offset: Int64
    private var buffer: [UInt8] = []

    /// Opens (creating if needed) the inbox in `directory`, zeroing a torn last record.
    ///
    /// `pendingScrubs` are records whose bytes were being overwritten when the process stopped
    /// (the store's ``Store/pendingInboxScrubs()``): their checksum may not match, which is
    /// not a torn tail (their length field is never rewritten); they are scrubbed again here.
    public init(directory: String, segmentBytes: Int64 = 16 << 20, pendingScrubs: [InboxSpan] = []) throws {
        self.directory = directory
        self.segmentBytes = max(4096, segmentBytes)
        if !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw InboxError.io(path: directory, call: "mkdir", reason: "\(error)")
            }
        }
        id = try Inbox.readOrCreateID(directory)
        let segments = try Inbox.segments(in: directory)
        let last = segments.last ?? 1
        let path = Inbox.path(directory, last)
        let file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno))) }
        // Keep the whole records of the last segment; zero a torn tail.
        let valid: Int64
        do {
            let files = SegmentFiles(directory: directory)
            defer { files.close() }
            valid = try files.validLength(of: last, scrubbing: Set(pendingScrubs.filter { $0.segment == last }.map(\.offset)))
            truncatedBytes = try Inbox.zeroTornTail(file, from: valid, path: path)
            try Inbox.preallocate(file, to: self.segmentBytes, path: path)
            if segments.isEmpty { try Inbox.syncDirectory(directory) }
        } catch {
            closeDescriptor(file)
            throw error
        }
        fd = file
        segment = last
        oldest = segments.first ?? last
        offset = valid
        durable = InboxPosition(segment: last, offset: valid)
        try scrub(pendingScrubs)
    }

    /// Zeroes whatever follows the last whole record, up to the first 64 KiB that are already
    /// zero (the part of the segment never written); returns how many bytes were not zero.
    private static func zeroTornTail(_ fd: Int32, from valid: Int64, path: String) throws -> Int64 {
        let chunk = 64 << 10
        var buffer = [UInt8](repeating: 0, count: chunk)
        var at = valid
        var nonZero: Int64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, chunk, off_t(at)) }
            guard n >= 0 else { throw InboxError.io(path: path, call: "pread", reason: String(cString: strerror(errno))) }
            let count = buffer[..<n].reduce(0) { $0 + ($1 == 0 ? 0 : 1) }
            if count == 0 { break }
            nonZero += Int64(count)
            let zeros = [UInt8](repeating: 0, count: n)
            try zeros.withUnsafeBytes { raw in
                guard pwrite(fd, raw.baseAddress!, n, off_t(at)) == n else {
                    throw InboxError.io(path: path, call: "pwrite", reason: String(cString: strerror(errno)))
                }
            }
            at += Int64(n)
            if n < chunk { break }
        }
        if nonZero > 0, fdatasync(fd) != 0 {
            throw InboxError.io(path: path, call: "fdatasync", reason: String(cString: strerror(errno)))
        }
        return nonZero
    }

    /// Writes zeros from the end of the file up to `bytes`, and flushes them.
    private static func preallocate(_ fd: Int32, to bytes: Int64, path: String) throws {
        var size = Int64(lseek(fd, 0, SEEK_END))
        guard size < bytes else { return }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        while size < bytes {
            let n = Int(min(Int64(zeros.count), bytes - size))
            let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress!, n, off_t(size)) }
            guard written > 0 else {
                throw InboxError.io(path: path, call: "pwrite", reason: String(cString: strerror(errno)))
            }
            size += Int64(written)
        }
        guard fsync(fd) == 0 else { throw InboxError.io(path: path, call: "fsync", reason: String(cString: strerror(errno))) }
    }

    deinit { closeDescriptor(fd) }

    /// Bytes of a torn last record zeroed when the inbox was opened (0 when there was none).
    public let truncatedBytes: Int64

    /// The end of what is durably written: everything before it may be read.
    public var end: InboxPosition { lock.withLock { durable } }

    /// Holds no record (nothing was appended, or everything appended is in removed segments
    /// and the current one is empty).
    public var isEmpty: Bool {
        lock.withLock { durable.offset == 0 && durable.segment == oldest }
    }

    /// The oldest segment still on disk.
    public var oldestSegment: Int64 { lock.withLock { oldest } }

    /// Appends the records and makes them durable (`fdatasync`) before returning the new end.
    /// One thread at a time.
    @discardableResult
    public func append(_ records: [InboxRecord]) throws -> InboxPosition {
        guard !records.isEmpty else { return end }
        buffer.removeAll(keepingCapacity: true)
        for r in records { Inbox.encode(r, into: &buffer) }
        let path = Inbox.path(directory, segment)
        let at = offset
        try buffer.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(at) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw InboxError.io(path: path, call: "write", reason: String(cString: strerror(errno)))
                }
                done += n
            }
        }
        guard fdatasync(fd) == 0 else {
            throw InboxError.io(path: path, call: "fdatasync", reason: String(cString: strerror(errno)))
        }
        offset += Int64(buffer.count)
        if buffer.capacity > 16 << 20 { buffer = [] }  // one huge burst does not pin its buffer
        if offset >= segmentBytes {
            // The next segment exists (and its directory entry is durable) before this one is left.
            let next = segment + 1
            let nextPath = Inbox.path(directory, next)
            let nextFD = open(nextPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard nextFD >= 0 else {
                throw InboxError.io(path: nextPath, call: "open", reason: String(cString: strerror(errno)))
            }
            try Inbox.preallocate(nextFD, to: segmentBytes, path: nextPath)
            try Inbox.syncDirectory(directory)
            closeDescriptor(fd)
            fd = nextFD
            segment = next
            offset = 0
        }
        let position = InboxPosition(segment: segment, offset: offset)
        lock.withLock { durable = position }
        return position
    }

    /// Overwrites the records at `spans` (topic and payload become zeros, the time and the
    /// length stay, the checksum is recomputed) and flushes them: for records refused as hash
    /// only, whose bytes must not outlive their validation. A span in a segment already
    /// deleted has nothing left to overwrite. Safe beside `append` (other bytes of the file).
    ///
    /// Why overwrite in place rather than close and delete the segment early: a segment holds up
    /// to 16 MiB of other messages, acknowledged and maybe not yet applied; rewriting one record
    /// keeps every offset (and so the applied position) valid, and costs one `fdatasync` per
    /// batch that had such a record.
    public func scrub(_ spans: [InboxSpan]) throws {
        try Inbox.scrub(spans, directory: directory)
    }

    /// ``scrub(_:)`` on the inbox in `directory`, for a caller without the ``Inbox`` object (the
    /// store removing a pilot's rows, ``Store/removeRawRows(pilot:dryRun:)``): it opens its own
    /// descriptors and rewrites records already applied only, so it is safe beside `append`.
    static func scrub(_ spans: [InboxSpan], directory: String) throws {
        for (segment, group) in Dictionary(grouping: spans, by: \.segment).sorted(by: { $0.key < $1.key }) {
            let path = Inbox.path(directory, segment)
            let file = open(path, O_RDWR | O_CLOEXEC)
            guard file >= 0 else {
                if errno == ENOENT { continue }
                throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno)))
            }
            defer { closeDescriptor(file) }
            for span in group {
                let bodyCount = Int(span.length) - Inbox.headerBytes
                guard bodyCount >= Inbox.fixedBodyBytes else { continue }
                var time = [UInt8](repeating: 0, count: 8)
                let got = time.withUnsafeMutableBytes { pread(file, $0.baseAddress!, 8, off_t(span.offset) + off_t(Inbox.headerBytes)) }
                guard got == 8 else { throw InboxError.io(path: path, call: "pread", reason: String(cString: strerror(errno))) }
                var body = [UInt8](repeating: 0, count: bodyCount)
                body.replaceSubrange(0..<8, with: time)  // then topic length 0, and zeros
                let crc = body.withUnsafeBufferPointer { CRC32.checksum($0) }
                var record = [UInt8](repeating: 0, count: 4 + bodyCount)
                for i in 0..<4 { record[i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
                record.replaceSubrange(4..., with: body)
                // From the checksum on: the length field is never rewritten, so the records after
                // this one stay where they are even if a crash tears this write.
                let written = record.withUnsafeBytes { pwrite(file, $0.baseAddress!, $0.count, off_t(span.offset) + 4) }
                guard written == record.count else {
                    throw InboxError.io(path: path, call: "pwrite", reason: String(cString: strerror(errno)))
                }
            }
            guard fdatasync(file) == 0 else {
                throw InboxError.io(path: path, call: "fdatasync", reason: String(cString: strerror(errno)))
            }
        }
    }

    /// Deletes the segments older than `segment` (wholly moved into SQLite). Never the one being written.
    public func removeSegments(before segment: Int64) throws {
        let limit = min(segment, end.segment)
        let from = oldestSegment
        guard from < limit else { return }
        for s in from..<limit {
            let path = Inbox.path(directory, s)
            if unlink(path) != 0 && errno != ENOENT {
                throw InboxError.io(path: path, call: "unlink", reason: String(cString: strerror(errno)))
            }
        }
        lock.withLock { oldest = limit }
    }

    /// Bytes between `position` and the end, counting each whole segment in between as full.
    public func backlogBytes(after position: InboxPosition) -> Int64 {
        let e = end
        guard e > position else { return 0 }
        if e.segment == position.segment { return e.offset - position.offset }
        return (e.segment - position.segment - 1) * segmentBytes + max(0, segmentBytes - position.offset) + e.offset
    }

    /// A reader with its own file descriptor, for one thread.
    public func reader() -> InboxReader { InboxReader(inbox: self) }

    // MARK: - Files and records

    static let headerBytes = 8
    static let fixedBodyBytes = 10

    static func path(_ directory: String, _ segment: Int64) -> String {
        let digits = String(segment)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    static func segments(in directory: String) throws -> [Int64] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw InboxError.io(path: directory, call: "readdir", reason: "\(error)")
        }
        return names.compactMap { name -> Int64? in
            guard name.hasSuffix(".log"), name.count == 24 else { return nil }
            return Int64(name.dropLast(4))
        }.filter { $0 > 0 }.sorted()
    }

    /// The identity of the inbox in `directory`, if one was made there.
    public static func existingID(directory: String) -> String? {
        guard let data = FileManager.default.contents(atPath: directory + "/id"),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
              !text.isEmpty else { return nil }
        return text
    }

    static func readOrCreateID(_ directory: String) throws -> String {
        let path = directory + "/id"
        if let data = FileManager.default.contents(atPath: path),
           let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            return text
        }
        let id = UUID().uuidString.lowercased()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno))) }
        defer { closeDescriptor(fd) }
        let bytes = Array((id + "\n").utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress!, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            throw InboxError.io(path: path, call: "write", reason: String(cString: strerror(errno)))
        }
        try syncDirectory(directory)
        return id
    }

    static func syncDirectory(_ directory: String) throws {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw InboxError.io(path: directory, call: "open", reason: String(cString: strerror(errno))) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else {
            throw InboxError.io(path: directory, call: "fsync", reason: String(cString: strerror(errno)))
        }
    }

    static func encode(_ r: InboxRecord, into out: inout [UInt8]) {
        let topic = Array(r.topic.utf8.prefix(Int(UInt16.max)))
        let bodyCount = fixedBodyBytes + topic.count + r.payload.count
        let start = out.count
        out.reserveCapacity(start + headerBytes + bodyCount)
        append(UInt32(truncatingIfNeeded: bodyCount), to: &out)
        append(UInt32(0), to: &out)  // CRC, filled below
        append(UInt64(bitPattern: r.receivedAt.millis), to: &out)
        append(UInt16(topic.count), to: &out)
        out.append(contentsOf: topic)
        out.append(contentsOf: r.payload)
        let crc = out.withUnsafeBufferPointer { CRC32.checksum(UnsafeBufferPointer(rebasing: $0[(start + headerBytes)...])) }
        for i in 0..<4 { out[start + 4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }
}

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
        let end = inbox.end
        var at = position
        if at.segment < inbox.oldestSegment { at = InboxPosition(segment: inbox.oldestSegment, offset: 0) }
        var records: [InboxRecord] = []
        var spans: [InboxSpan] = []
        var bytes = 0
        while records.count < maxRecords && bytes < maxBytes && at < end {
            let limit = at.segment == end.segment ? end.offset : Int64.max
            guard let (record, length) = try files.record(segment: at.segment, offset: at.offset, limit: limit) else {
                // The end of a closed segment: go on with the next one.
                guard at.segment < end.segment else { break }
                at = InboxPosition(segment: at.segment + 1, offset: 0)
                continue
            }
            records.append(record)
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
    func validLength(of segment: Int64, scrubbing: Set<Int64> = []) throws -> Int64 {
        var offset: Int64 = 0
        while true {
            do {
                guard let (_, length) = try record(segment: segment, offset: offset, limit: Int64.max) else { return offset }
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
        let length = Int(header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian })
        let crc = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian }
        if length == 0 && crc == 0 { return nil }  // the zeros after the last record
        guard length >= Inbox.fixedBodyBytes, offset + Int64(Inbox.headerBytes + length) <= limit else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record length of \(length) bytes does not fit")
        }
        var body = [UInt8](repeating: 0, count: length)
        guard try readFully(&body, at: offset + Int64(Inbox.headerBytes), path: path) == length else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record body is cut short")
        }
        guard body.withUnsafeBufferPointer({ CRC32.checksum($0) }) == crc else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record checksum does not match")
        }
        let millis = body.withUnsafeBytes { Int64(bitPattern: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian) }
        let topicCount = Int(body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt16.self).littleEndian })
        guard Inbox.fixedBodyBytes + topicCount <= length else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a topic length of \(topicCount) bytes does not fit")
        }
        let topic = String(decoding: body[Inbox.fixedBodyBytes..<(Inbox.fixedBodyBytes + topicCount)], as: UTF8.self)
        let payload = Array(body[(Inbox.fixedBodyBytes + topicCount)...])
        return (InboxRecord(receivedAt: Instant(millis: millis), topic: topic, payload: payload), Inbox.headerBytes + length)
    }

    private func readFully(_ buffer: inout [UInt8], at offset: Int64, path: String) throws -> Int {
        let count = buffer.count
        let fd = self.fd
        return try buffer.withUnsafeMutableBytes { raw -> Int in
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
    }
}

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// A place in the inbox: a segment and a byte offset in it.
public struct InboxPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var segment: Int64
    public var offset: Int64

    public init(segment: Int64, offset: Int64) {
        self.segment = segment
        self.offset = offset
    }

    /// Before every record.
    public static let start = InboxPosition(segment: 1, offset: 0)

    public static func < (a: Self, b: Self) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }

    public var description: String { "segment \(segment) offset \(offset)" }
}

/// Where one record lies in the inbox: its segment, its offset and its length, header included.
public struct InboxSpan: Hashable, Sendable {
    public var segment: Int64
    public var offset: Int64
    public var length: Int64

    public init(segment: Int64, offset: Int64, length: Int64) {
        self.segment = segment
        self.offset = offset
        self.length = length
    }
}

/// One received message as the inbox keeps it: when it arrived, its topic and payload bytes.
public struct InboxRecord: Sendable, Hashable {
    public var receivedAt: Instant
    public var topic: String
    public var payload: [UInt8]

    public init(receivedAt: Instant, topic: String, payload: [UInt8]) {
        self.receivedAt = receivedAt
        self.topic = topic
        self.payload = payload
    }

    /// Overwritten by ``Inbox/scrub(_:)``: no topic (MQTT has no empty topic name) and zeros.
    public var isScrubbed: Bool { topic.isEmpty && payload.allSatisfy { $0 == 0 } }

    /// The record as the store takes it, with the contract's verdict on it (checked against the
    /// time it was received).
    public func item(validatedBy validator: ContractValidator) -> IngestItem {
        IngestItem.received(topic: topic, receivedAt: receivedAt,
                            verdict: validator.validate(topic: topic, payload: payload, receivedAt: receivedAt),
                            payload: payload)
    }
}

public enum InboxError: Error, Equatable, CustomStringConvertible {
    case io(path: String, call: String, reason: String)
    case corrupt(path: String, offset: Int64, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let call, let reason):
            return "inbox \(path): \(call) failed: \(reason)"
        case .corrupt(let path, let offset, let reason):
            return "inbox \(path) is damaged at byte \(offset): \(reason)"
        }
    }
}

/// CRC-32 (IEEE 802.3, as zlib), table-driven.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// What `pilotwatch db check` finds in an inbox, read without changing a byte (so it can run
/// beside `serve`).
public struct InboxReport: Sendable {
    /// The inbox's identity, nil when the folder has no `id` file.
    public var id: String?
    public var segments: [Int64] = []
    /// Whole, checksummed records found, and how many lie at or after the applied position.
    public var records = 0
    public var unapplied = 0
    public var unappliedBytes: Int64 = 0
    /// Damage: a record that fails its checksum before the last one, a missing segment, an
    /// applied position that is not on a record boundary or lies beyond the records.
    public var problems: [String] = []
    /// Worth knowing, not damage (a torn last record that was never acknowledged).
    public var notes: [String] = []

    /// Reads every segment of the inbox in `directory` and checks its records and `applied`
    /// (the store's recorded position, nil when the store adopted no inbox). Records at
    /// `scrubbing` may fail their checksum (an overwrite torn by a crash, redone at start).
    public static func check(directory: String, applied: InboxPosition?, scrubbing: [InboxSpan] = []) -> InboxReport {
        var report = InboxReport()
        if let data = FileManager.default.contents(atPath: directory + "/id") {
            report.id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        do {
            report.segments = try Inbox.segments(in: directory)
        } catch {
            report.problems.append("\(error)")
            return report
        }
        let scrub = Set(scrubbing.map { InboxPosition(segment: $0.segment, offset: $0.offset) })
        let files = SegmentFiles(directory: directory)
        defer { files.close() }
        var boundaries: Set<InboxPosition> = []
        var lastEnd: InboxPosition?
        for (index, segment) in report.segments.enumerated() {
            let isLast = index == report.segments.count - 1
            if index > 0, segment != report.segments[index - 1] + 1 {
                report.problems.append("segment \(report.segments[index - 1] + 1) is missing (found \(report.segments[index - 1]), then \(segment))")
            }
            var offset: Int64 = 0
            boundaries.insert(InboxPosition(segment: segment, offset: 0))
            scan: while true {
                let at = InboxPosition(segment: segment, offset: offset)
                do {
                    guard let (_, length) = try files.record(segment: segment, offset: offset, limit: Int64.max) else { break scan }
                    report.records += 1
                    if let applied, at >= applied { report.unapplied += 1; report.unappliedBytes += Int64(length) }
                    offset += Int64(length)
                } catch InboxError.corrupt(let path, let where_, let reason) {
                    if scrub.contains(at), let length = try? files.recordLength(segment: segment, offset: offset) {
                        report.notes.append("\(path) byte \(where_): a record being overwritten when serve stopped; the next start overwrites it again")
                        offset += Int64(length)
                        boundaries.insert(InboxPosition(segment: segment, offset: offset))
                        continue scan
                    }
                    let followed = (try? files.recordLength(segment: segment, offset: offset)).flatMap { $0 }
                        .map { length in ((try? files.record(segment: segment, offset: offset + Int64(length), limit: Int64.max)) ?? nil) != nil }
                        ?? false
                    if isLast && !followed {
                        report.notes.append("\(path) byte \(where_): \(reason), after the last whole record; if serve is not running, this is a record torn by a crash, never acknowledged, zeroed at the next start")
                    } else {
                        report.problems.append("\(path) is damaged at byte \(where_): \(reason)")
                    }
                    break scan
                } catch {
                    report.problems.append("\(error)")
                    break scan
                }
                boundaries.insert(InboxPosition(segment: segment, offset: offset))
            }
            lastEnd = InboxPosition(segment: segment, offset: offset)
        }
        if let applied, let oldest = report.segments.first, let lastEnd {
            if applied.segment < oldest {
                report.problems.append("the database has applied the inbox up to \(applied), but the oldest segment left is \(oldest): the records in between are gone")
            } else if applied > lastEnd {
                report.problems.append("the database has applied the inbox up to \(applied), beyond its last record (\(lastEnd))")
            } else if !boundaries.contains(applied) {
                report.problems.append("the applied position \(applied) is not at the start of a record")
            }
        }
        return report
    }
}
