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
        abstract: "Back up the database while pilotwatch runs, and check a database's integrity.",
        subcommands: [Backup.self, Check.self]
    )

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Write a consistent copy of the database, even while `pilotwatch serve` writes to it.",
            discussion: """
            Uses SQLite's online backup: the copy is one snapshot of the store, taken without \
            stopping the service. It is written beside FILE first and renamed into place, then \
            checked (integrity and schema) before the command reports success.

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

            let store = try openStore(source, readOnly: true)
            // A fresh name beside the destination: the rename into place is atomic, and a failed
            // backup never leaves a half-written FILE.
            let staging = folder + "/." + URL(fileURLWithPath: destination).lastPathComponent + ".pilotwatch-backup-" + UUID().uuidString.prefix(8).lowercased()
            defer { for suffix in ["", "-journal", "-wal", "-shm"] { unlink(staging + suffix) } }
            do {
                try store.backup(to: staging)
            } catch {
                throw CLIError("the backup of \(source) to \(file) failed: \(error)")
            }

            // Check the copy before calling it a backup.
            let report: DatabaseReport
            do {
                report = try DatabaseReport.make(path: staging)
            } catch {
                throw CLIError("the backup copy of \(source) cannot be opened, so \(file) was not written: \(error)")
            }
            guard report.problems.isEmpty else {
                throw CLIError("the backup copy fails its integrity check, so \(file) was not written (check the source with `pilotwatch db check`):\n  " + report.problems.flatMap { $0.split(separator: "\n") }.prefix(20).joined(separator: "\n  "))
            }
            // A stale -wal beside an old FILE would be replayed onto the new copy: remove it first.
            for suffix in ["-wal", "-shm", "-journal"] { unlink(destination + suffix) }
            guard rename(staging, destination) == 0 else {
                throw CLIError("cannot put the backup in place as \(file): \(String(cString: strerror(errno)))")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: destination))?[.size] as? Int
            print("backup written: \(file)")
            print("  from         \(source)")
            if let size { print("  size         \(size) bytes") }
            print("  schema       \(report.schemaVersion)")
            print("  integrity    ok")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Check the database: SQLite integrity, foreign keys, the store's own invariants, schema version.",
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
            let report: DatabaseReport
            do {
                report = try DatabaseReport.make(path: path)
            } catch {
                printError("database \(path) is damaged or unreadable: \(error)")
                printError("restore it from the latest `pilotwatch db backup`, or see what is left with: sqlite3 \(path) .recover")
                throw ExitCode.failure
            }
            print("database     \(path)")
            print("schema       \(report.schemaVersion)")
            if report.problems.isEmpty {
                print("integrity    ok")
                return
            }
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
