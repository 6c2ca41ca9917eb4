import Foundation
import PilotwatchCore
import PilotwatchStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

// The audit trail end to end: the real binary on real files. Every command that reads
// subject-level data or changes it appends one record to {database}.audit; `audit verify`
// names the first record edited, deleted or cut short.

/// The records of the workspace's trail, in order.
private func auditRecords(_ ws: Workspace) throws -> [AuditRecord] {
    try auditLines(ws).map { try AuditRecord(line: Array($0.utf8)) }
}

private func auditLines(_ ws: Workspace) throws -> [String] {
    let text = try String(contentsOfFile: ws.db + ".audit", encoding: .utf8)
    return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}

/// Two messages: one accepted, one refused (unknown pilot), so that every view has data.
private let feed = """
{"topic":"pilots/resp-copd-idf-01/dev-1/obs","payload":\(obsMessage("m-1", [obs("subj-0001", "spo2", 95, unit: "%", at: isoNow(minutesAgo: 60))]))}
{"topic":"pilots/nope-01/dev-1/obs","payload":\(obsMessage("m-2", [obs("subj-0002", "spo2", 95, unit: "%", at: isoNow(minutesAgo: 60))]))}

"""

@Suite("Audit trail")
struct AuditTests {
    @Test("every command that reads or changes subject-level data writes exactly one record, with its outcome")
    func everyCommandWritesOneRecord() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let backup = ws.dir + "/backup.sqlite"
        let steps: [(args: [String], command: String, status: Int32)] = [
            (["ingest", "-"], "ingest", 0),
            (["stats"], "stats", 0),
            (["status", "--format", "json"], "status", 0),
            (["pilot", "resp-copd-idf-01"], "pilot", 0),
            (["export", "--out", ws.dir + "/q.md"], "export", 0),
            (["rejects"], "rejects list", 0),
            (["rejects", "replay"], "rejects replay", 0),
            (["alerts"], "alerts list", 0),
            (["alerts", "history"], "alerts history", 0),
            (["db", "backup", backup], "db backup", 0),
            (["db", "restore", backup], "db restore", 0),
            (["subjects", "erase", "--pilot", "resp-copd-idf-01", "--subject", "subj-0001", "--reason", "request R-1"], "subjects erase", 0),
            (["export", "--out", ws.dir + "/no-such-folder/q.md"], "export", 1),
        ]
        for (i, step) in steps.enumerated() {
            let r = try ws.run(step.args, stdin: step.args == ["ingest", "-"] ? Data(feed.utf8) : nil)
            #expect(r.status == step.status, "\(step.args): \(r.stderr)")
            let records = try auditRecords(ws)
            #expect(records.count == i + 1, "\(step.args) writes one record")
            let last = try #require(records.last)
            #expect(last.seq == i + 1)
            #expect(last.command == step.command)
            // A pseudonym is never in the trail: `--subject` is masked.
            #expect(last.arguments.starts(with: step.args.map { $0 == "subj-0001" ? "***" : $0 }), "\(last.arguments)")
            #expect(last.user == String(cString: getpwuid(getuid())!.pointee.pw_name))
            #expect(last.pid > 0 && !last.host.isEmpty)
            if step.status == 0 {
                #expect(last.outcome == "ok", "\(step.args)")
            } else {
                #expect(last.outcome.hasPrefix("error: cannot write"), "\(last.outcome)")
            }
        }
        let records = try auditRecords(ws)
        #expect(records[3].selection == "pilot=resp-copd-idf-01")
        #expect(records[9].output == backup)
        #expect(records[9].outputSHA256 == SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: backup))))
        // Commands that neither read nor change subject-level data are not recorded.
        #expect(try ws.run(["indicators"]).status == 0)
        #expect(try ws.run(["audit"]).status == 0)
        #expect(try auditRecords(ws).count == steps.count)

        let verify = try ws.run(["audit", "verify"])
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix("chain intact, \(steps.count) records"), "\(verify.stdout)")
    }

    @Test("an export's record carries the SHA-256 of the file, and of standard output; the export stays byte-identical")
    func exportRecordCarriesTheHash() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        #expect(try ws.run(["ingest", "-"], stdin: Data(feed.utf8)).status == 0)
        let file = ws.dir + "/q3.html"
        let args = ["export", "--format", "html", "--as-of", "2026-11-30"]
        #expect(try ws.run(args + ["--out", file]).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        var last = try #require(try auditRecords(ws).last)
        #expect(last.command == "export" && last.output == file)
        #expect(last.outputSHA256 == SHA256.hex(bytes))
        #expect(last.asOf == RFC3339.parse("2026-11-30T23:59:59.999Z"))
        #expect(last.selection?.contains("all pilots") == true, "\(String(describing: last.selection))")

        let shown = try ws.run(args)
        #expect(shown.status == 0)
        #expect(Data(shown.stdout.utf8) == bytes, "the same export, audited or not")
        last = try #require(try auditRecords(ws).last)
        #expect(last.output == "stdout" && last.outputSHA256 == SHA256.hex(bytes))

        // The list finds it by command, in JSON with the lines as written.
        let listed = try ws.run(["audit", "--command", "export", "--format", "json"])
        #expect(listed.status == 0)
        let array = try #require(try JSON.parse(Array(listed.stdout.utf8)).array)
        #expect(array.count == 2)
        #expect(array.allSatisfy { $0["output_sha256"]?.string == SHA256.hex(bytes) })
        #expect(try ws.run(["audit", "--user", "no-such-user", "--format", "json"]).stdout == "[]\n")
    }

    enum Tampering: String, CaseIterable, Sendable {
        case editMiddle, deleteMiddle, unreadableMiddle, truncateMidRecord, deleteLast, editLast
    }

    @Test("editing, deleting or cutting records makes `audit verify` fail, naming the first bad record",
          arguments: Tampering.allCases)
    func tamperingIsFound(_ tampering: Tampering) throws {
        let ws = try Workspace()
        defer { ws.remove() }
        #expect(try ws.run(["ingest", "-"], stdin: Data(feed.utf8)).status == 0)
        for _ in 0..<4 { #expect(try ws.run(["stats"]).status == 0) }
        #expect(try ws.run(["audit", "verify"]).stdout.hasPrefix("chain intact, 5 records"))

        var lines = try auditLines(ws)
        var text: String
        let expected: String
        switch tampering {
        case .editMiddle:
            lines[2] = lines[2].replacingOccurrences(of: "\"command\":\"stats\"", with: "\"command\":\"statz\"")
            text = lines.joined(separator: "\n") + "\n"
            expected = "first bad record: line 3 (seq 3): edited"
        case .deleteMiddle:
            lines.remove(at: 2)
            text = lines.joined(separator: "\n") + "\n"
            expected = "first bad record: line 3 (seq 4): seq 4 where 3 was expected: record 3 deleted"
        case .unreadableMiddle:
            lines[1] = String(lines[1].dropFirst())
            text = lines.joined(separator: "\n") + "\n"
            expected = "first bad record: line 2: cannot be read"
        case .truncateMidRecord:
            text = lines.joined(separator: "\n") + "\n"
            text = String(text.dropLast(40))
            expected = "first bad record: line 5: cannot be read"
        case .deleteLast:
            text = lines.dropLast().joined(separator: "\n") + "\n"
            expected = "first bad record: line 5 (seq 5): missing"
        case .editLast:
            lines[4] = lines[4].replacingOccurrences(of: "\"outcome\":\"ok\"", with: "\"outcome\":\"ko\"")
            text = lines.joined(separator: "\n") + "\n"
            expected = "first bad record: line 5 (seq 5): its SHA-256 is not the one the head recorded"
        }
        try text.write(toFile: ws.db + ".audit", atomically: false, encoding: .utf8)
        let verify = try ws.run(["audit", "verify"])
        #expect(verify.status == 1, "\(verify.stdout)")
        #expect(verify.stdout.contains(expected), "\(verify.stdout)")
        // The next audited command does not heal it: the tampering stays found.
        if tampering == .deleteLast || tampering == .editLast {
            #expect(try ws.run(["stats"]).status == 0)
            let again = try ws.run(["audit", "verify"])
            #expect(again.status == 1, "an append after the tampering hid it: \(again.stdout)")
        }
    }

    @Test("a view by a user who cannot write the database is audited; one who cannot write the trail is refused")
    func readOnlyUserIsAudited() throws {
        let ws = try Workspace()
        defer {
            chmod(ws.dir, 0o755)
            ws.remove()
        }
        #expect(try ws.run(["ingest", "-"], stdin: Data(feed.utf8)).status == 0)
        // The deployment: serve runs as the database's owner (here a connection held open by this
        // test, which keeps its -wal and -shm as serve does), the database and its folder are
        // read-only for the viewer, the trail and its head writable by the staff (here: by
        // everyone, for want of a group in the test).
        let service = try Store(path: ws.db)
        _ = try service.stats()
        for suffix in ["", ".lock"] { chmod(ws.db + suffix, 0o444) }
        chmod(ws.db + ".audit", 0o666)
        chmod(ws.db + ".audit.head", 0o666)
        chmod(ws.dir, 0o555)
        let viewer = try runAsOtherUser(ws, ["stats"])
        #expect(viewer.status == 0, "\(viewer.stderr)")
        #expect(viewer.stdout.contains("messages: accepted 1"), "\(viewer.stdout)")
        let last = try #require(try auditRecords(ws).last)
        #expect(last.command == "stats" && last.outcome == "ok" && last.seq == 2)
        if getuid() == 0 { #expect(last.user == "nobody") }

        // The trail not writable: the view refuses, shows nothing, and says why.
        chmod(ws.db + ".audit", 0o644)
        let refused = try runAsOtherUser(ws, ["pilot", "resp-copd-idf-01"])
        #expect(refused.status == 1)
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr.contains("cannot write the audit trail") && refused.stderr.contains("unaudited"), "\(refused.stderr)")
        #expect(try auditRecords(ws).count == 2)
        #expect(try ws.run(["audit", "verify"]).status == 0)
    }
}

/// Runs the binary as a user who owns none of the workspace: `nobody` through `setpriv` when the
/// tests run as root (root ignores file modes), this user otherwise.
private func runAsOtherUser(_ ws: Workspace, _ args: [String]) throws -> CLIResult {
    guard getuid() == 0 else { return try ws.run(args) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
    p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--", try pilotwatchBinary()] + args + ["--config", ws.config]
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = "1"
    env.removeValue(forKey: "PILOTWATCH_DB")
    env.removeValue(forKey: "PILOTWATCH_CONFIG")
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData, as: UTF8.self))
}
