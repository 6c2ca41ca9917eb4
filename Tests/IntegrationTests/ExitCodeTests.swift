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
}
