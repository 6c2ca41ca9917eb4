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

    // MARK: - Segment files

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
}

func closeDescriptor(_ fd: Int32) { _ = close(fd) }
