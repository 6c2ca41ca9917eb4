import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Db: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Back up the database while pilotwatch runs, restore a backup, check a database and its inbox, apply the retention policy.",
        subcommands: [Backup.self, Restore.self, Check.self, Purge.self]
    )

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Write a consistent copy of the database, even while `pilotwatch serve` writes to it.",
            discussion: """
            Uses SQLite's online backup: the copy is one snapshot of the store, taken without \
            stopping the service. It is written beside FILE first and renamed into place, then \
            checked (integrity and schema) before the command reports success.

            The copy holds every message acknowledged before the backup began: while `pilotwatch \
            serve` runs, the backup first waits until serve has applied its inbox up to that point; \
            when no serve runs, it applies the inbox's unapplied tail itself (with the \
            configuration's registry and catalogue). The inbox itself is never copied: it may hold \
            bytes not yet validated, which must not reach backup media.

            Examples:
              pilotwatch db backup /var/backups/pilotwatch/pilotwatch-$(date +%F).sqlite
              pilotwatch db backup --force /var/backups/pilotwatch/latest.sqlite
            Exits 0 when the copy is written and checked, 1 otherwise.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The copy to write (a new file unless --force).", valueName: "file"))
        var file: String

        @Flag(help: "Replace FILE if it exists.")
        var force = false

        func run() throws {
            let source = try databasePath(global)
            guard FileManager.default.fileExists(atPath: source) else {
                throw CLIError("there is no database at \(source) to back up; check --db or `database:` in \(global.configPath)")
            }
            let destination = URL(fileURLWithPath: file).standardizedFileURL.path
            if URL(fileURLWithPath: source).standardizedFileURL.resolvingSymlinksInPath().path
                == URL(fileURLWithPath: destination).resolvingSymlinksInPath().path {
                throw CLIError("\(file) is the database itself; choose another file for the backup")
            }
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: destination, isDirectory: &isFolder) {
                if isFolder.boolValue { throw CLIError("\(file) is a folder; give the backup a file name inside it") }
                if !force { throw CLIError("\(file) already exists; choose a new name or pass --force to replace it") }
            }
            let folder = URL(fileURLWithPath: destination).deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw CLIError("the folder \(folder) does not exist; create it first (mkdir -p \(folder))")
            }

            try audited("db backup", database: source) { audit in
                // Everything acknowledged before now goes into SQLite first.
                var ownLock: WriterLock?
                defer { ownLock?.release() }
                switch try WriteAccess.obtain(database: source, role: "db-backup") {
                case .serve(_, let client):
                    try client.send(ServeRequest(op: .sync))
                    client.finishSending()
                    _ = try client.answer(doing: "apply its inbox before the backup")
                case .own(let lock):
                    ownLock = lock
                    let writable = try openStore(source)
                    let applied = try StoreWork.applyInbox(database: source, store: writable, validator: {
                        let ctx = try Context.load(global)
                        return ctx.validator
                    }, log: { printError("db backup: \($0)") })
                    if applied > 0 { printError("db backup: applied \(applied) bytes of the inbox acknowledged before the last stop") }
                }
                let store = try openStore(source, readOnly: true)
                // A fresh name beside the destination: the rename into place is atomic, and a failed
                // backup never leaves a half-written FILE.
                let staging = folder + "/." + URL(fileURLWithPath: destination).lastPathComponent + ".pilotwatch-backup-" + UUID().uuidString.prefix(8).lowercased()
                defer { for suffix in ["", "-journal", "-wal", "-shm"] { unlink(staging + suffix) } }
                do {
                    // The erasure keys go with the backup: restored elsewhere, it keeps erased subjects erased.
                    let keys = try ErasureKeys.read(database: source)
                    if keys == nil, try store.tombstoneCount() > 0 {
                        throw CLIError("the erasure key \(ErasureKeys.path(forDatabase: source)) is missing while the store holds tombstones: a backup without it could not keep erased subjects erased; put the key back first")
                    }
                    try store.backup(to: staging, keys: keys)
                } catch {
                    throw CLIError("the backup of \(source) to \(file) failed: \(error)", cause: error)
                }

                // Check the copy before calling it a backup.
                let report: DatabaseReport
                do {
                    report = try DatabaseReport.make(path: staging)
                } catch {
                    throw CLIError("the backup copy of \(source) cannot be opened, so \(file) was not written: \(error)", cause: error)
                }
                guard report.problems.isEmpty else {
                    throw CLIError("the backup copy fails its integrity check, so \(file) was not written (check the source with `pilotwatch db check`):\n  " + report.problems.flatMap { $0.split(separator: "\n") }.prefix(20).joined(separator: "\n  "))
                }
                // Recorded before it is put in place (the staging copy's bytes are the backup's), so
                // that a failed record never costs an earlier file at that path.
                try audit.record(output: destination, sha256: try sha256Hex(ofFile: staging))
                // A stale -wal beside an old FILE would be replayed onto the new copy: remove it first.
                for suffix in ["-wal", "-shm", "-journal"] { unlink(destination + suffix) }
                guard rename(staging, destination) == 0 else {
                    throw CLIError("cannot put the backup in place as \(file): \(String(cString: strerror(errno))) (its audit record is written: the file is not)")
                }
                let size = (try? FileManager.default.attributesOfItem(atPath: destination))?[.size] as? Int
                print("backup written: \(file)")
                print("  from         \(source)")
                if let size { print("  size         \(size) bytes") }
                print("  schema       \(report.schemaVersion)")
                print("  integrity    ok")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check the database (SQLite integrity, foreign keys, the store's own invariants, schema version) and its inbox (checksums, applied position).",
            discussion: """
            Examples:
              pilotwatch db check
              pilotwatch db check --db /var/backups/pilotwatch/latest.sqlite
            Exits 0 when the database is healthy, 1 when it is damaged or cannot be read.
            """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let path = try databasePath(global)
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("there is no database at \(path); check --db or `database:` in \(global.configPath)")
            }
            let found: DatabaseReport
            do {
                found = try DatabaseReport.make(path: path)
            } catch {
                printError("database \(path) is damaged or unreadable: \(error)")
                printError("restore it from the latest `pilotwatch db backup`, or see what is left with: sqlite3 \(path) .recover")
                throw ExitCode.failure
            }
            print("database     \(path)")
            print("schema       \(found.schemaVersion)")
            print("writer       \(WriterLock.holder(database: path).map(\.description) ?? "none (no serve or writing command runs)")")
            let inbox = try InboxCheck.make(database: path)
            if let inbox {
                print("inbox        \(inbox.summary)")
                for note in inbox.report.notes { print("  note: \(note)") }
            }
            let problems = found.problems + (inbox?.report.problems.map { "inbox: \($0)" } ?? [])
            if problems.isEmpty {
                print("integrity    ok")
                return
            }
            let report = DatabaseReport(schemaVersion: found.schemaVersion, problems: problems)
            print("integrity    \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            // SQLite's own messages may span lines; show each line indented, and not thousands.
            let lines = report.problems.flatMap { $0.split(separator: "\n").map(String.init) }
            let shown = 100
            for line in lines.prefix(shown) { print("  \(line)") }
            if lines.count > shown { print("  ... and \(lines.count - shown) more lines") }
            printError("database \(path) is damaged: \(report.problems.count) integrity problem\(report.problems.count == 1 ? "" : "s") (listed above)")
            printError("restore it from the latest `pilotwatch db backup`, or see what is left with: sqlite3 \(path) .recover")
            throw ExitCode.failure
        }
    }
}

extension Db {
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Put a backup in place of the database (refused while serve or another command writes it).",
            discussion: """
            The backup is copied beside the database, migrated to this pilotwatch's schema and \
            checked (integrity, the store's invariants) before it replaces anything. The database it \
            replaces is kept beside it as {database}.before-restore-<time> (with its -wal), so a \
            restore can be undone. The inbox stays: at its next start, serve applies from the \
            backup's recorded position whatever of it is still there (duplicates are recognised), or \
            sets it aside when it belongs to another database.

            Examples:
              systemctl stop pilotwatch
              pilotwatch db restore /var/backups/pilotwatch/pilotwatch-2026-12-01.sqlite
              systemctl start pilotwatch
            Exits 0 when the backup is in place, 75 when a writer holds the database, 1 otherwise.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The backup to restore (written by `pilotwatch db backup`).", valueName: "file"))
        var file: String

        func run() throws {
            let target = try databasePath(global)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), !isFolder.boolValue else {
                throw CLIError("there is no backup file at \(file); give the file `pilotwatch db backup` wrote", kind: .usage)
            }
            if URL(fileURLWithPath: file).standardizedFileURL.resolvingSymlinksInPath().path
                == URL(fileURLWithPath: target).standardizedFileURL.resolvingSymlinksInPath().path {
                throw CLIError("\(file) is the database itself; give a backup file", kind: .usage)
            }
            let folder = ConfigPath.folder(of: target)
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw CLIError("the folder \(folder) does not exist; create it first (mkdir -p \(folder))")
            }
            // The backup restored is named by its SHA-256, so that the media it came from can be traced.
            let restoredSHA256 = try sha256Hex(ofFile: file)
            try audited("db restore", database: target, creates: true,
                        selection: "backup=\(URL(fileURLWithPath: file).standardizedFileURL.path) sha256=\(restoredSHA256)") { audit in
                let lock = try exclusiveWriterLock(target, role: "db-restore",
                                                   advice: "stop it before restoring (systemctl stop pilotwatch)")
                defer { lock.release() }

                // Copied, migrated and checked beside the database before anything is replaced.
                let staging = folder + "/." + URL(fileURLWithPath: target).lastPathComponent + ".restore-" + UUID().uuidString.prefix(8).lowercased()
                defer { for suffix in ["", "-journal", "-wal", "-shm", ".key", ".key.new"] { unlink(staging + suffix) } }
                let report: DatabaseReport
                do {
                    try FileManager.default.copyItem(atPath: file, toPath: staging)
                    // The erasure keys the backup carries join this machine's first: a backup with
                    // tombstones opens for writing only with its key at hand.
                    if let carried = try? Store(path: staging, options: StoreOptions(readOnly: true)).keysCarried(), !carried.isEmpty {
                        try ErasureKeys.merge(carried, database: target)
                        try ErasureKeys.merge(carried, database: staging)
                    }
                    _ = try Store(path: staging).schemaVersion()  // migrates an older backup
                    report = try DatabaseReport.make(path: staging)
                } catch {
                    throw CLIError("\(file) is not a pilotwatch database that this version can use, so nothing was replaced: \(error)", cause: error)
                }
                guard report.problems.isEmpty else {
                    throw CLIError("\(file) fails its integrity check, so nothing was replaced:\n  " + report.problems.prefix(20).joined(separator: "\n  "))
                }
                // Fold the staging copy's WAL into it, so that one file is renamed into place.
                do {
                    try Store(path: staging).checkpoint()
                } catch {
                    throw CLIError("cannot prepare the restored copy of \(file): \(error)", cause: error)
                }
                // The restored file gets the owner and mode of the one it replaces: restored by root,
                // it must stay writable by the service's user.
                var current = stat()
                if stat(target, &current) == 0 {
                    if chown(staging, current.st_uid, current.st_gid) != 0 || chmod(staging, current.st_mode & 0o7777) != 0 {
                        throw CLIError("cannot give the restored copy the owner and mode of \(target) (\(String(cString: strerror(errno)))); run the restore as root or as the database's owner, so that serve can still write it")
                    }
                }
                var kept: String?
                if FileManager.default.fileExists(atPath: target) {
                    let aside = target + ".before-restore-" + String(Int(Date().timeIntervalSince1970))
                    for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: target + suffix) {
                        guard rename(target + suffix, aside + suffix) == 0 else {
                            throw CLIError("cannot move the current database \(target)\(suffix) aside: \(String(cString: strerror(errno)))")
                        }
                    }
                    kept = aside
                }
                for suffix in ["-wal", "-shm", "-journal"] { unlink(target + suffix) }
                guard rename(staging, target) == 0 else {
                    throw CLIError("cannot put the backup in place as \(target): \(String(cString: strerror(errno)))")
                }
                // Subjects erased since the backup was taken are erased again; the backup's
                // tombstones join the file beside the database.
                do {
                    try ErasureWork.reapply(store: try openStore(target), database: target, log: { print("erasure      \($0)") })
                } catch {
                    throw CLIError("the backup is in place, but the erasures could not be re-applied (serve re-applies them at its start; do not start it before this is fixed): \(error)", cause: error)
                }
                try audit.record(output: target)
                print("restored     \(file)")
                print("into         \(target)")
                print("schema       \(report.schemaVersion)")
                print("integrity    ok")
                if let kept { print("previous     \(kept) (delete it once the restore is confirmed)") }
            }
        }
    }
}

/// What `db check` reports about a database's inbox.
struct InboxCheck {
    var report: InboxReport
    var summary: String

    /// The inbox beside `database`, read without changing it; nil when there is none.
    static func make(database: String) throws -> InboxCheck? {
        let directory = database + ".inbox"
        guard FileManager.default.fileExists(atPath: directory) else { return nil }
        let store = try openStore(database, readOnly: true)
        let state = try store.inboxState()
        let ours = state != nil && state?.id == Inbox.existingID(directory: directory)
        let report = InboxReport.check(directory: directory, applied: ours ? state?.position : nil,
                                       scrubbing: ours ? try store.pendingInboxScrubs() : [])
        var summary = "\(directory): \(report.records) records in \(report.segments.count) segment\(report.segments.count == 1 ? "" : "s")"
        if ours {
            summary += ", applied up to \(state!.position), \(report.unapplied) not yet applied (\(report.unappliedBytes) bytes)"
        } else {
            summary += state == nil ? ", not adopted by this database yet" : ", belongs to another database (serve sets it aside at its start)"
        }
        return InboxCheck(report: report, summary: summary)
    }
}

/// What `db check` reports about one database file.
struct DatabaseReport {
    var schemaVersion: String
    var problems: [String]

    /// Opens `path` read-only and runs the store's checks; throws when it cannot even be read.
    static func make(path: String) throws -> DatabaseReport {
        let store = try openStore(path, readOnly: true)
        let version = try store.schemaVersion()
        let problems = try store.integrityCheck()
        return DatabaseReport(schemaVersion: version.isEmpty ? "(none)" : version, problems: problems)
    }
}

/// The database a `db` command works on: `--db`, else `PILOTWATCH_DB`, else the configuration's
/// `database:` (so a backup can be checked without any configuration at hand).
func databasePath(_ global: GlobalOptions) throws -> String {
    if let db = global.db { return db }
    if let env = ProcessInfo.processInfo.environment["PILOTWATCH_DB"], !env.isEmpty { return env }
    return try Context.load(global).service.databasePath
}
