import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The audit trail of a store: `{database}.audit`, one ``AuditRecord`` per line, appended under
/// an exclusive `flock` on the trail itself (never the store's writer lock), and its head,
/// `{database}.audit.head` (`<seq> <sha256 of the last line>`), rewritten under the same lock.
///
/// ```swift
/// let trail = try AuditTrail.writable(database: path)      // fails when it cannot be written
/// let record = try trail.append { seq, prev in AuditRecord(seq: seq, ..., prev: prev) }
/// ```
///
/// The lock is held only to read the last line and write one: microseconds. A process that
/// cannot get it within ``lockWait`` fails instead of waiting, so no view hangs on the trail.
public struct AuditTrail: Sendable {
    public let path: String
    public var headPath: String { path + ".head" }

    /// How long a view's append waits for the trail's lock before failing (a view never hangs
    /// on the trail).
    public static let lockWait: Duration = .milliseconds(250)
    /// How long the record of a change already made waits: longer, since giving up leaves the
    /// change unrecorded.
    public static let changeLockWait: Duration = .seconds(30)

    /// The trail of the store at `database`.
    public static func path(forDatabase database: String) -> String { database + ".audit" }

    public init(path: String) { self.path = path }

    /// Why the trail cannot be written or read.
    public struct TrailError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Opens the trail of `database` for appending, creating it when missing (mode 0660 whatever
    /// the umask, so that the group of its folder can append to it), and checks now that it and
    /// its head can be written, so that a command can refuse before it reads or changes anything.
    public static func writable(database: String) throws(TrailError) -> AuditTrail {
        let trail = AuditTrail(path: path(forDatabase: database))
        for file in [trail.path, trail.headPath] {
            let created = open(file, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o660)
            if created >= 0 {
                _ = fchmod(created, 0o660)
                close(created)
                continue
            }
            let fd = open(file, O_RDWR | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else {
                throw TrailError(description: "cannot write the audit trail \(file): \(String(cString: strerror(errno)))")
            }
            close(fd)
        }
        return trail
    }

    /// Appends the record `make(seq, prev)` returns, with the next seq and the hash of the last
    /// line, and returns it.
    ///
    /// When the head names a later or another last record than the file ends with (records
    /// deleted or the last one edited since), the new record continues from the head, not from
    /// the file: its seq and prev keep the gap visible to `audit verify` instead of healing it.
    @discardableResult
    public func append(lockWait: Duration = AuditTrail.lockWait,
                       _ make: (_ seq: Int, _ prev: String) -> AuditRecord) throws(TrailError) -> AuditRecord {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o660)
        guard fd >= 0 else { throw TrailError(description: "cannot write the audit trail \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, 0o660)  // as for the head
        try lock(fd, wait: lockWait, exclusive: true)
        defer { _ = flock(fd, LOCK_UN) }

        var tail = try lastLine(fd)
        let head = readHead()
        if let torn = tail, !torn.terminated {
            // A writer died mid-line: close the torn line (verify names it) and chain on from it.
            try writeAll(fd, [0x0A])
            tail?.terminated = true
        }
        var lastSeq = tail.flatMap { try? AuditRecord(line: $0.bytes).seq } ?? head?.seq ?? 0
        var prev = tail.map { SHA256.hex($0.bytes) } ?? AuditRecord.genesis
        if let head, head.seq >= lastSeq, head.seq != lastSeq || head.hash != prev {
            lastSeq = head.seq
            prev = head.hash
        }
        let record = make(lastSeq + 1, prev)
        let line = record.encoded()
        try writeAll(fd, line + [0x0A])
        try writeHead(seq: record.seq, hash: SHA256.hex(line))
        return record
    }

    /// The head: the seq and line hash of the last record appended; nil when there is none.
    public func readHead() -> (seq: Int, hash: String)? {
        guard let data = FileManager.default.contents(atPath: headPath),
              let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let seq = Int(parts[0]) else { return nil }
        return (seq, String(parts[1]))
    }

    /// Calls `body` with each line of the trail (without its newline), in order, up to the
    /// size the file had when called; `false` from `body` stops. Returns whether the last line
    /// read ended with a newline.
    @discardableResult
    public func forEachLine(upTo limit: Int? = nil, _ body: ([UInt8]) throws -> Bool) throws -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(String(cString: strerror(errno)))") }
        var remaining = min(Int(info.st_size), limit ?? Int.max)
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while remaining > 0 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, remaining)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(n < 0 ? String(cString: strerror(errno)) : "it shrank while read")") }
            remaining -= n
            var start = 0
            for i in 0..<n where chunk[i] == 0x0A {
                pending.append(contentsOf: chunk[start..<i])
                if try !body(pending) { return true }
                pending.removeAll(keepingCapacity: true)
                start = i + 1
            }
            pending.append(contentsOf: chunk[start..<n])
        }
        guard pending.isEmpty else {
            _ = try body(pending)
            return false
        }
        return true
    }

    /// The head and the trail's size, read together under a shared lock (so never between an
    /// append's line and its head): `audit verify` checks the lines up to that size.
    public func snapshot() throws(TrailError) -> (head: (seq: Int, hash: String)?, size: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try lock(fd, wait: .seconds(5), exclusive: false)
        defer { _ = flock(fd, LOCK_UN) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(String(cString: strerror(errno)))") }
        return (readHead(), Int(info.st_size))
    }

    private func lock(_ fd: Int32, wait: Duration, exclusive: Bool) throws(TrailError) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw TrailError(description: "cannot lock the audit trail \(path): \(String(cString: strerror(errno)))")
            }
            guard clock.now < deadline else {
                throw TrailError(description: "the audit trail \(path) stayed locked for \(wait) (a stopped pilotwatch process holds it? `fuser \(path)`)")
            }
            usleep(1000)
        }
    }

    /// The last line of the file, read backwards from its end.
    private func lastLine(_ fd: Int32) throws(TrailError) -> (bytes: [UInt8], terminated: Bool)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        guard size > 0 else { return nil }
        var end = size
        var bytes: [UInt8] = []
        let terminated = try readAt(fd, offset: size - 1, count: 1) == [0x0A]
        if terminated { end -= 1 }
        var position = end
        while position > 0 {
            let count = min(4096, position)
            position -= count
            let block = try readAt(fd, offset: position, count: count)
            if let newline = block.lastIndex(of: 0x0A) {
                bytes = Array(block[(newline + 1)...]) + bytes
                return (bytes, terminated)
            }
            bytes = block + bytes
        }
        return (bytes, terminated)
    }

    private func readAt(_ fd: Int32, offset: Int, count: Int) throws(TrailError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TrailError(description: "cannot read the audit trail \(path): \(n < 0 ? String(cString: strerror(errno)) : "unexpected end")") }
            done += n
        }
        return buffer
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(TrailError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TrailError(description: "cannot write the audit trail \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    private func writeHead(seq: Int, hash: String) throws(TrailError) {
        let fd = open(headPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o660)
        guard fd >= 0 else { throw TrailError(description: "cannot write the audit head \(headPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, 0o660)  // the group appends too, whatever the umask (fails harmlessly if not ours)
        let bytes = Array("\(seq) \(hash)\n".utf8)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, 0) }
        guard written == bytes.count, ftruncate(fd, off_t(bytes.count)) == 0 else {
            throw TrailError(description: "cannot write the audit head \(headPath): \(String(cString: strerror(errno)))")
        }
    }
}
