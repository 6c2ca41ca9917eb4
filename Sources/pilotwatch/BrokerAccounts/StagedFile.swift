import Foundation
import PilotwatchCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private copy of a file beside it (same folder, so the final rename is atomic), removed
/// unless committed. The result keeps the original's owner and mode; a new file gets `newMode`
/// (and the group `newGroup` when running as root and that group exists, so that mosquitto,
/// which reads its files after dropping root, can read it).
final class StagedFile {
    let path: String
    private let target: String
    private let mode: mode_t
    private let owner: (uid: uid_t, gid: gid_t)?
    private var committed = false

    init(replacing target: String, newMode: mode_t, newGroup: String?) throws {
        self.target = target
        let folder = ConfigPath.folder(of: target)
        let name = target.split(separator: "/").last.map(String.init) ?? target
        var template = Array("\(folder)/.\(name).pilotwatch-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else {
            throw CLIError("cannot create a file in \(folder) (\(String(cString: strerror(errno)))); run as root or as the folder's owner")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var info = stat()
        if stat(target, &info) == 0 {
            mode = info.st_mode & 0o7777
            owner = (info.st_uid, info.st_gid)
            guard let data = FileManager.default.contents(atPath: target) else {
                unlink(path)
                throw CLIError("cannot read \(target); run as root or as its owner")
            }
            do {
                try handle.write(contentsOf: data)
            } catch {
                unlink(path)
                throw CLIError("cannot copy \(target) to \(path): \(error)")
            }
        } else {
            mode = newMode
            if geteuid() == 0, let newGroup, let group = getgrnam(newGroup) {
                owner = (0, group.pointee.gr_gid)
            } else {
                owner = nil
            }
        }
        try? handle.close()
        guard chmod(path, mode) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw CLIError("cannot set the mode of \(path): \(reason)")
        }
    }

    /// Replaces the copy's content.
    func write(_ data: Data) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CLIError("cannot write \(path)")
        }
        defer { try? handle.close() }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: data)
    }

    /// Gives the copy the final owner and mode, flushes it and renames it over the target.
    func commit() throws {
        if let owner, owner.uid != geteuid() || owner.gid != getegid() {
            guard chown(path, owner.uid, owner.gid) == 0 else {
                throw CLIError("cannot give the new \(target) its owner \(owner.uid):\(owner.gid) (\(String(cString: strerror(errno)))); run as root or as its owner; nothing was changed")
            }
        }
        guard chmod(path, mode) == 0 else {
            throw CLIError("cannot set the mode of \(path): \(String(cString: strerror(errno))); nothing was changed")
        }
        let fd = open(path, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        guard rename(path, target) == 0 else {
            throw CLIError("cannot replace \(target): \(String(cString: strerror(errno))); nothing was changed")
        }
        committed = true
    }

    deinit {
        if !committed { unlink(path) }
    }
}
