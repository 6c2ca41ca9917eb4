import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The erasure keys of a store: `{database}.key`, one key a line (64 hex digits), the first the
/// current one. A tombstone is the keyed hash of pilot and subject under the current key; earlier
/// keys (a restore from another machine merges that machine's) are kept so that their tombstones
/// still match.
///
/// The file is made at install (`pilotwatch db key`) or by the first erasure, mode 0640, and is
/// never in the database itself: a copy of the database alone cannot test a tombstone against a
/// list of pseudonyms. Backups carry the keys (``Store/backup(to:keys:)``) so that a restore on
/// another machine keeps erased subjects erased.
public struct ErasureKeys: Sendable, Equatable {
    /// The keys, current first.
    public let keys: [[UInt8]]

    public init(keys: [[UInt8]]) { self.keys = keys }

    public static func path(forDatabase database: String) -> String { database + ".key" }

    /// Every hash the subject may have been erased under (one per key).
    public func hashes(pilot: String, subject: String) -> [String] {
        keys.map { SubjectTombstone.hash(key: $0, pilot: pilot, subject: subject) }
    }

    /// The hash a new tombstone gets: under the current key.
    public func currentHash(pilot: String, subject: String) -> String? {
        keys.first.map { SubjectTombstone.hash(key: $0, pilot: pilot, subject: subject) }
    }

    public var hexKeys: [String] { keys.map(SHA256.hexDigits) }

    /// The keys of the store at `database`; nil when it has no key file yet.
    public static func read(database: String) throws -> ErasureKeys? {
        let path = path(forDatabase: database)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreError.erasureKey(path: path, reason: "cannot read it (\(String(cString: strerror(errno))))")
        }
        var keys: [[UInt8]] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let key = parseHex(text), key.count == 32 else {
                throw StoreError.erasureKey(path: path, reason: "line \(n + 1) is not a key of 64 hexadecimal digits")
            }
            keys.append(key)
        }
        return keys.isEmpty ? nil : ErasureKeys(keys: keys)
    }

    /// The keys of the store at `database`, making the key file (a fresh random key, mode 0640)
    /// when there is none.
    ///
    /// Never when tombstones exist (`{database}.erased` holds some): a new key would make them
    /// stop matching; the key must be put back instead. Two processes making it at once end with
    /// the same key (the file is linked into place, never renamed over another's). Made by root,
    /// it gets the database's owner and group.
    @discardableResult
    public static func ensure(database: String) throws -> ErasureKeys {
        if let existing = try read(database: database) { return existing }
        let tombstones = try TombstoneFile.read(database: database)
        guard tombstones.isEmpty else {
            throw StoreError.erasureKey(path: path(forDatabase: database),
                                        reason: "it is missing, and \(TombstoneFile.path(forDatabase: database)) holds \(tombstones.count) tombstones made with it; put the key file back (every backup carries it: `pilotwatch db restore` brings it back)")
        }
        var key = [UInt8](repeating: 0, count: 32)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }  // SystemRandomNumberGenerator: getrandom(2)
        try write([key], database: database, exclusive: true)
        guard let made = try read(database: database) else {
            throw StoreError.erasureKey(path: path(forDatabase: database), reason: "it was made but cannot be read back")
        }
        return made
    }

    /// Adds `hexKeys` that the file does not hold yet, after its own (the current key stays
    /// current; with no file, the first of `hexKeys` becomes current). Returns how many were added.
    @discardableResult
    public static func merge(_ hexKeys: [String], database: String) throws -> Int {
        let existing = try read(database: database)?.keys ?? []
        var keys = existing
        for hex in hexKeys {
            guard let key = parseHex(hex), key.count == 32 else {
                throw StoreError.erasureKey(path: path(forDatabase: database), reason: "a key to merge is not 64 hexadecimal digits")
            }
            if !keys.contains(key) { keys.append(key) }
        }
        if keys.count != existing.count { try write(keys, database: database) }
        return keys.count - existing.count
    }

    /// Writes the file whole through a temporary file and a rename (`exclusive`: a link, which
    /// leaves a file made meanwhile by another process in place), flushed; mode 0640.
    private static func write(_ keys: [[UInt8]], database: String, exclusive: Bool = false) throws {
        let path = path(forDatabase: database)
        let temporary = path + ".new-" + String(getpid())
        let text = keys.map(SHA256.hexDigits).joined(separator: "\n") + "\n"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StoreError.erasureKey(path: path, reason: "cannot create it (\(String(cString: strerror(errno))))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw StoreError.erasureKey(path: path, reason: "cannot write it (\(String(cString: strerror(errno))))")
        }
        giveDatabaseOwner(temporary, database: database)
        if exclusive {
            let linked = link(temporary, path) == 0 || errno == EEXIST
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            guard linked else { throw StoreError.erasureKey(path: path, reason: "cannot write it (\(reason))") }
        } else if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw StoreError.erasureKey(path: path, reason: "cannot write it (\(reason))")
        }
        syncFolder(of: path)
    }

    static func parseHex(_ text: some StringProtocol) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// A subject's tombstone: its keyed hash, its pilot and when it was erased. Never the pseudonym.
public struct Tombstone: Sendable, Hashable, Codable {
    public var hash: String
    public var pilot: String
    public var erasedAt: Int64

    public init(hash: String, pilot: String, erasedAt: Int64) {
        self.hash = hash; self.pilot = pilot; self.erasedAt = erasedAt
    }

    enum CodingKeys: String, CodingKey { case hash, pilot, erasedAt = "erased_at" }

    var isWellFormed: Bool {
        hash.utf8.count == 64 && hash.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
            && !pilot.isEmpty && pilot.utf8.count <= 64
    }
}

/// The append-only file of tombstones beside the database (`{database}.erased`, one JSON object a
/// line), so that a restored older backup cannot bring an erased subject back: `db restore` and
/// `serve`'s start re-apply every tombstone it holds (``Store/reapplyTombstones(_:)``).
public enum TombstoneFile {
    public static func path(forDatabase database: String) -> String { database + ".erased" }

    /// The tombstones in the file (none when there is no file). A line cut short by a crash
    /// during an append is skipped: its erasure had not been reported done.
    public static func read(database: String) throws -> [Tombstone] {
        let path = path(forDatabase: database)
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreError.erasureKey(path: path, reason: "cannot read it (\(String(cString: strerror(errno))))")
        }
        let decoder = JSONDecoder()
        return data.split(separator: 0x0A).compactMap { line in
            (try? decoder.decode(Tombstone.self, from: Data(line))).flatMap { $0.isWellFormed ? $0 : nil }
        }
    }

    /// Appends `tombstones`, each on a line of its own, and flushes the file to disk.
    public static func append(_ tombstones: [Tombstone], database: String) throws {
        guard !tombstones.isEmpty else { return }
        let path = path(forDatabase: database)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StoreError.erasureKey(path: path, reason: "cannot open it (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var bytes: [UInt8] = []
        // A line torn by an earlier crash must not swallow the first new one.
        var size = stat()
        if fstat(fd, &size) == 0, size.st_size > 0 {
            var last: UInt8 = 0
            let probe = open(path, O_RDONLY | O_CLOEXEC)
            if probe >= 0 {
                if pread(probe, &last, 1, off_t(size.st_size - 1)) == 1, last != 0x0A { bytes.append(0x0A) }
                close(probe)
            }
        }
        for t in tombstones {
            bytes += Array(try encoder.encode(t))
            bytes.append(0x0A)
        }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw StoreError.erasureKey(path: path, reason: "cannot append to it (\(String(cString: strerror(errno))))")
        }
        giveDatabaseOwner(path, database: database)
        syncFolder(of: path)
    }
}

/// The tombstones a store refuses messages by, in memory: keys and hashes per pilot.
// @unchecked Sendable: `keys`, `byPilot` and `generation` are read and written only with `lock` held.
public final class TombstoneSet: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: ErasureKeys?
    private var byPilot: [String: Set<String>] = [:]
    private var generation: UInt64 = 1

    init() {}

    func load(keys: ErasureKeys?, tombstones: [Tombstone]) {
        lock.withLock {
            self.keys = keys
            byPilot = [:]
            for t in tombstones { byPilot[t.pilot, default: []].insert(t.hash) }
            generation += 1
        }
    }

    /// Changes whenever a tombstone is added or the set is loaded again: an item screened
    /// (``Store/screen(_:)``) under the current generation needs no second screening.
    var currentGeneration: UInt64 { lock.withLock { generation } }

    /// Whether the pilot has any tombstone.
    func has(pilot: String) -> Bool { lock.withLock { !(byPilot[pilot]?.isEmpty ?? true) } }

    func add(_ t: Tombstone, keys: ErasureKeys) {
        lock.withLock {
            self.keys = keys
            byPilot[t.pilot, default: []].insert(t.hash)
            generation += 1
        }
    }

    /// How many tombstones are held.
    public var count: Int { lock.withLock { byPilot.values.reduce(0) { $0 + $1.count } } }

    /// The first of `subjects` (by index) that was erased in `pilot`, with its tombstone hash.
    /// Without any tombstone for the pilot (the usual case), no hash is computed.
    func erased(pilot: String, subjects: some Sequence<String?>) -> (index: Int, hash: String)? {
        lock.withLock {
            guard let hashes = byPilot[pilot], !hashes.isEmpty, let keys else { return nil }
            var seen: Set<String> = []
            for (i, s) in subjects.enumerated() {
                guard let s, seen.insert(s).inserted else { continue }
                if let hit = keys.hashes(pilot: pilot, subject: s).first(where: hashes.contains) { return (i, hit) }
            }
            return nil
        }
    }
}

/// Run as root (a restore, an erasure by the administrator), a file made beside the database
/// gets the database's owner and group, so that serve, running as the service's user, reads it.
func giveDatabaseOwner(_ path: String, database: String) {
    guard getuid() == 0 else { return }
    var owner = stat()
    guard stat(database, &owner) == 0 else { return }
    _ = chown(path, owner.st_uid, owner.st_gid)
}

/// Flushes the folder entry of `path` (a new or renamed file survives a power cut).
func syncFolder(of path: String) {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 { _ = fsync(fd); close(fd) }
}
