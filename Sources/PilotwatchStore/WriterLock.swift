import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one-writer rule of a store: an exclusive `flock` on `{database}.lock`, held by the one
/// process that writes the store (`pilotwatch serve` when it runs; otherwise a maintenance
/// command such as `ingest` or `rejects replay`). The file says who holds it (PID, role, since),
/// so that the next one can name the holder. The kernel releases the lock when the holder's
/// descriptor closes, so a crashed holder never leaves it taken.
///
/// ```swift
/// let lock = try WriterLock.acquire(database: path, role: "serve")   // throws .held if taken
/// defer { lock.release() }
/// ```
///
/// Read-only views never take it and never wait for it.
// @unchecked Sendable: `path` is immutable; `fd` is written only by `release()`, with `lock` held.
public final class WriterLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32
    private let lock = NSLock()

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { release() }

    /// Who holds a store's writer lock.
    public struct Holder: Sendable, Equatable, CustomStringConvertible {
        public var pid: Int32?
        public var role: String
        public var since: String

        public init(pid: Int32?, role: String, since: String) {
            self.pid = pid
            self.role = role
            self.since = since
        }

        public var description: String {
            "`pilotwatch \(role.replacingOccurrences(of: "-", with: " "))` (PID \(pid.map(String.init) ?? "unknown"), since \(since))"
        }
    }

    /// The lock file of the store at `database`.
    public static func path(forDatabase database: String) -> String { database + ".lock" }

    /// Takes the lock, or throws ``WriterLockError/held(database:holder:)`` at once when another
    /// process has it. With `wait`, waits for it instead, calling `waiting` once with the holder.
    /// `role` is one word (a command's name, `-` for spaces).
    public static func acquire(database: String, role: String, wait: Bool = false,
                               waiting: (Holder) -> Void = { _ in }) throws -> WriterLock {
        let path = path(forDatabase: database)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            // Typically the lock (and the database) made by another user: the holder line could
            // not be kept true, so this is refused rather than half-done.
            throw WriterLockError.io(path: path, reason: reason + (errno == EACCES
                ? "; run the command as the user that owns the database (e.g. sudo -u pilotwatch pilotwatch ...)" : ""))
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = readHolder(fd)
            guard wait, errno == EWOULDBLOCK || errno == EAGAIN || holder != nil else {
                close(fd)
                throw WriterLockError.held(database: database, holder: holder)
            }
            if let holder { waiting(holder) }
            while flock(fd, LOCK_EX) != 0 {
                if errno != EINTR {
                    let reason = String(cString: strerror(errno))
                    close(fd)
                    throw WriterLockError.io(path: path, reason: reason)
                }
            }
        }
        let text = "\(getpid()) \(role) \(Instant(seconds: Date().timeIntervalSince1970).description)\n"
        let bytes = Array(text.utf8)
        guard ftruncate(fd, 0) == 0,
              bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress!, $0.count, 0) }) == bytes.count else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw WriterLockError.io(path: path, reason: reason)
        }
        return WriterLock(path: path, fd: fd)
    }

    /// Who holds the lock of the store at `database` now; nil when nobody does.
    public static func holder(database: String) -> Holder? {
        let fd = open(path(forDatabase: database), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return nil
        }
        return readHolder(fd) ?? Holder(pid: nil, role: "unknown", since: "unknown")
    }

    /// Releases the lock (the file stays, saying who held it last). Idempotent.
    public func release() {
        lock.withLock {
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    private static func readHolder(_ fd: Int32) -> Holder? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 256, 0) }
        guard n > 0 else { return nil }
        let fields = String(decoding: buffer[..<n], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        guard fields.count == 3 else { return nil }
        return Holder(pid: Int32(fields[0]), role: fields[1], since: fields[2])
    }
}

/// Why the writer lock could not be taken.
public enum WriterLockError: Error, Equatable, CustomStringConvertible {
    case held(database: String, holder: WriterLock.Holder?)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .held(let database, let holder):
            return "the database \(database) is being written by \(holder.map(\.description) ?? "another process"); only one process writes a store"
        case .io(let path, let reason):
            return "cannot use the writer lock \(path): \(reason)"
        }
    }
}
