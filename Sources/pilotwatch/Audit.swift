import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchStore
#if canImport(Glibc)
import Glibc
#endif

/// The audit record of one run of a command that reads subject-level data or changes it.
///
/// ```swift
/// try audited("pilot", database: db, selection: "pilot=\(id)") { audit in
///     let text = try render()
///     try audit.show(text)          // recorded (with the output's SHA-256), then printed
/// }
/// ```
///
/// The trail must be writable before the command reads or changes anything (``audited(_:database:selection:asOf:_:)``
/// refuses otherwise), and a view is recorded before its output is shown: subject-level data is
/// never shown unaudited. A command that shows nothing is recorded when it ends, with its outcome.
final class CommandAudit {
    let trail: AuditTrail
    let command: String
    let database: String
    var selection: String?
    var asOf: Instant?
    private(set) var recorded: AuditRecord?

    init(trail: AuditTrail, command: String, database: String, selection: String?, asOf: Instant?) {
        self.trail = trail
        self.command = command
        self.database = URL(fileURLWithPath: database).standardizedFileURL.path
        self.selection = selection
        self.asOf = asOf
    }

    /// Appends this run's record, once; later calls do nothing.
    /// A view's record comes before its output (`show`), so it waits for the trail's lock only
    /// briefly; the record of a change already made waits longer, and says so if it fails.
    func record(outcome: String = "ok", output: String? = nil, sha256: String? = nil, beforeOutput: Bool = false) throws {
        guard recorded == nil else { return }
        do {
            recorded = try trail.append(lockWait: beforeOutput ? AuditTrail.lockWait : AuditTrail.changeLockWait) { seq, prev in
                AuditRecord(seq: seq, at: .now, user: AuditIdentity.user, host: AuditIdentity.host, pid: Int(getpid()),
                            command: command, arguments: AuditIdentity.arguments(CommandLine.arguments.dropFirst()),
                            database: database, selection: selection, asOf: asOf, output: output,
                            outputSHA256: sha256, outcome: outcome, prev: prev)
            }
        } catch {
            if beforeOutput {
                throw CLIError("\(error); nothing was shown without its audit record. Ask the administrator to make the trail writable (see \"Audit trail\" in README.md)", cause: error)
            }
            throw CLIError("\(error); `pilotwatch \(command)` has run (outcome: \(outcome)) but its audit record could not be written: tell the administrator (see \"Audit trail\" in README.md)", cause: error)
        }
    }

    /// Records the run with the SHA-256 of `text` and a newline, then prints them.
    func show(_ text: String) throws {
        let bytes = Data((text + "\n").utf8)
        try record(output: "stdout", sha256: SHA256.hex(bytes), beforeOutput: true)
        FileHandle.standardOutput.write(bytes)
    }
}

/// Runs `body` with the audit record of `command` on `database`: refuses before `body` when the
/// trail cannot be written, records `ok` when `body` returns without having recorded (a command
/// that changes data records its outcome when done), and `error: ...` when it throws.
///
/// A view (`creates` false) of a database that does not exist fails before anything is
/// recorded: there is nothing to read. A command that `creates` the database makes its folder.
func audited<T>(_ command: String, database: String, creates: Bool = false, selection: String? = nil, asOf: Instant? = nil,
                _ body: (CommandAudit) throws -> T) throws -> T {
    if creates {
        makeFolder(of: database)
    } else if !FileManager.default.fileExists(atPath: database) {
        throw CLIError("no database at \(database) yet; run `pilotwatch serve` or `pilotwatch ingest` first, or pass --db FILE")
    }
    let trail: AuditTrail
    do {
        trail = try AuditTrail.writable(database: database)
    } catch {
        throw CLIError("\(error); `pilotwatch \(command)` is refused: subject-level data is never read or changed unaudited. Ask the administrator to make the trail writable by your group (see \"Audit trail\" in README.md)", cause: error)
    }
    let audit = CommandAudit(trail: trail, command: command, database: database, selection: selection, asOf: asOf)
    let result: T
    do {
        result = try body(audit)
    } catch {
        if audit.recorded == nil {
            do {
                try audit.record(outcome: "error: " + AuditIdentity.describe(error))
            } catch {
                printError("warning: \(error)")
            }
        }
        throw error
    }
    try audit.record()
    return result
}

/// The SHA-256 of the file at `path`, read in 1 MiB chunks.
func sha256Hex(ofFile path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw CLIError("cannot read \(path) to compute its SHA-256")
    }
    defer { try? handle.close() }
    var hasher = SHA256.Hasher()
    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
        hasher.update(chunk)
    }
    return hasher.finalizeHex()
}

/// A selection as the trail records it: the given filters as `name=value`, space-separated;
/// nil when none is given.
///
/// ```swift
/// auditSelection(["pilot": "resp-01", "since": nil])   // "pilot=resp-01"
/// ```
func auditSelection(_ filters: KeyValuePairs<String, String?>) -> String? {
    let parts = filters.compactMap { name, value in value.map { "\(name)=\($0)" } }
    return parts.isEmpty ? nil : parts.joined(separator: " ")
}

/// Who runs the command, where, with which arguments, as the trail records them.
enum AuditIdentity {
    /// The login name of the real user (`uid N` when the system has none).
    static var user: String {
        let uid = getuid()
        guard let pw = getpwuid(uid), let name = pw.pointee.pw_name else { return "uid \(uid)" }
        return String(cString: name)
    }

    static var host: String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "unknown" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `arguments` with the value of any option whose name looks secret (password, secret,
    /// token), and of `--subject`, replaced by `***`.
    static func arguments(_ arguments: some Sequence<String>) -> [String] {
        func secret(_ flag: Substring) -> Bool {
            let name = flag.lowercased()
            // A pseudonym is personal data: the trail names a subject by a hash in its selection.
            return name.hasPrefix("--") && (["password", "secret", "token"].contains { name.contains($0) } || name == "--subject")
        }
        var out: [String] = []
        var maskNext = false
        for arg in arguments {
            if maskNext { out.append("***"); maskNext = false; continue }
            if let eq = arg.firstIndex(of: "="), secret(arg[..<eq]) {
                out.append(arg[..<eq] + "=***")
            } else {
                maskNext = secret(Substring(arg))
                out.append(arg)
            }
        }
        return out
    }

    /// An error as the record's outcome says it.
    static func describe(_ error: any Error) -> String {
        if let exit = error as? ExitCode { return "exit \(exit.rawValue)" }
        return String(describing: error)
    }
}
