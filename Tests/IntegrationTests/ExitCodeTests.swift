import Foundation
import Testing

/// Exit statuses by kind of error (README.md, "Exit codes"): 64 for a bad value on the
/// command line, whether the parser or the command finds it; 1 when the work itself fails.
@Suite("CLI: exit codes by kind of error")
struct ExitCodeTests {
    @Test(arguments: [
        (["pilot", "no-such-pilot"], #"Error: unknown pilot "no-such-pilot"; valid pilots: resp-copd-idf-01, diab-cgm-idf-02, card-hf-idf-03"#),
        (["status", "--as-of", "garbage"], #"Error: --as-of "garbage" is not a time; give "#),
        (["pilot", "resp-copd-idf-01", "--since", "soon"], #"Error: --since "soon" is not a time; give "#),
        (["indicators", "--programme", "oncology"], #"Error: unknown programme "oncology"; valid programmes: "#),
        (["export", "--funder", "nobody"], #"Error: no pilot is funded by "nobody"; funders in the registry: "#),
    ])
    func usageErrorsFoundByTheCommandExit64(_ args: [String], _ message: String) throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let r = try ws.run(args)
        #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
        #expect(r.stderr.hasPrefix(message), "\(args): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func usageErrorsFoundByTheParserStillExit64() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let missing = try ws.run(["pilot"])
        #expect(missing.status == 64)
        #expect(missing.stderr.contains("Missing expected argument"), "\(missing.stderr)")
        let badPort = try ws.run(["simulate", "--scenario", "x.yaml", "--port", "0"])
        #expect(badPort.status == 64)
        #expect(badPort.stderr.contains("--port 0 is not a TCP port; use 1...65535"), "\(badPort.stderr)")
    }

    @Test func failuresExit1() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        // No database yet.
        let none = try ws.run(["stats"])
        #expect(none.status == 1, "\(none.stderr)")
        #expect(none.stderr.hasPrefix("Error: no database at \(ws.db) yet"), "\(none.stderr)")
        // A database file that is not a database.
        let damaged = ws.dir + "/damaged.sqlite"
        try Data(repeating: 0xA5, count: 8192).write(to: URL(fileURLWithPath: damaged))
        let unreadable = try ws.run(["stats", "--db", damaged])
        #expect(unreadable.status == 1, "\(unreadable.stderr)")
        #expect(unreadable.stderr.hasPrefix("Error: cannot open the database \(damaged)"), "\(unreadable.stderr)")
        // An input file that cannot be opened.
        let missing = try ws.run(["ingest", ws.dir + "/no-such-file.ndjson"])
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.contains("cannot open \(ws.dir)/no-such-file.ndjson for reading"), "\(missing.stderr)")
    }

    @Test func successExits0() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let r = try ws.run(["indicators", "--programme", "respiratory"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
    }

    /// A database another process keeps locked past the store's busy timeout (10 s): the
    /// store's own words, and 75 (EX_TEMPFAIL) as for a held writer lock, since trying again
    /// later may work.
    @Test func aDatabaseLockedPastTheBusyTimeoutExits75() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        #expect(try ws.run(["ingest", "-"], stdin: Data()).status == 0)
        // sqlite3 holds an exclusive lock until its input closes.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = [ws.db]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        defer {
            try? input.fileHandleForWriting.close()
            holder.waitUntilExit()
        }
        input.fileHandleForWriting.write(Data("BEGIN EXCLUSIVE;\n".utf8))
        let deadline = Date().addingTimeInterval(10)
        while sqliteCanWrite(ws.db) {
            guard Date() < deadline else { throw TestFailure("sqlite3 did not take the lock of \(ws.db)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let r = try ws.run(["ingest", "-"], stdin: Data())
        #expect(r.status == 75, "\(r.status) \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: cannot open the database \(ws.db): "), "\(r.stderr)")
        #expect(r.stderr.contains("database is locked (SQLite result code 5)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }
}

/// Whether a write transaction on `database` can start at once (sqlite3, no busy timeout).
private func sqliteCanWrite(_ database: String) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    p.arguments = ["-cmd", ".timeout 0", database, "BEGIN IMMEDIATE; ROLLBACK;"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}
