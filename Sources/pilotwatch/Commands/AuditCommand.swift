import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List the audit trail of who read or changed subject-level data, or verify its hash chain.",
        discussion: """
        Every command that reads subject-level data or changes it (status, pilot, stats, export, \
        rejects, rejects replay, ingest, db backup, db restore, alerts, alerts history) appends one \
        record to {database}.audit: time, user, host, command and arguments, selection, as-of, \
        output file and the SHA-256 of what it wrote, outcome. Each record carries the SHA-256 of \
        the line before it, so that `audit verify` finds a record edited or deleted.

        Examples:
          pilotwatch audit --since 7d --user alice
          pilotwatch audit --command export --format json
          pilotwatch audit verify
        """,
        subcommands: [List.self, Verify.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The records, oldest first.")

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("Only records since: \(timeArgumentHelp).", valueName: "time"))
        var since: String?

        @Option(help: ArgumentHelp("Only this user's records.", valueName: "user"))
        var user: String?

        @Option(help: ArgumentHelp("Only this command (`rejects` includes `rejects replay`).", valueName: "command"))
        var command: String?

        @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
        var format: OutputFormat = .table

        func validate() throws {
            if let since, parseTimeArgument(since) == nil {
                throw ValidationError("--since \(since) is not a time; give \(timeArgumentHelp)")
            }
        }

        func run() throws {
            let trail = AuditTrail(path: AuditTrail.path(forDatabase: try databasePath(global)))
            guard FileManager.default.fileExists(atPath: trail.path) else {
                throw CLIError("there is no audit trail at \(trail.path); no audited command has run on this database yet")
            }
            let from = since.flatMap { parseTimeArgument($0) }
            var shown: [(line: [UInt8], record: AuditRecord)] = []
            var number = 0
            try trail.forEachLine { line in
                number += 1
                guard let r = try? AuditRecord(line: line) else {
                    printError("warning: line \(number) of \(trail.path) is not an audit record; run `pilotwatch audit verify`")
                    return true
                }
                if let from, r.at < from { return true }
                if let user, r.user != user { return true }
                if let command, r.command != command, !r.command.hasPrefix(command + " ") { return true }
                shown.append((line, r))
                return true
            }
            print(render(shown))
        }

        func render(_ rows: [(line: [UInt8], record: AuditRecord)]) -> String {
            switch format {
            case .json:
                // The lines as written, so that a record shown hashes as it does in the trail.
                guard !rows.isEmpty else { return "[]" }
                return "[\n" + rows.map { String(decoding: $0.line, as: UTF8.self) }.joined(separator: ",\n") + "\n]"
            case .csv:
                var lines = [CSV.line(["seq", "at", "user", "host", "pid", "command", "arguments", "selection", "as_of",
                                       "output", "output_sha256", "outcome"])]
                for (_, r) in rows {
                    lines.append(CSV.line([String(r.seq), r.at.description, r.user, r.host, String(r.pid), r.command,
                                           r.arguments.joined(separator: " "), r.selection ?? "", r.asOf?.description ?? "",
                                           r.output ?? "", r.outputSHA256 ?? "", r.outcome]))
                }
                return lines.joined(separator: "\n")
            case .table:
                guard !rows.isEmpty else { return "no audit record matches" }
                var t = TextTable(["seq", "at", "user@host", "command", "selection", "output", "outcome"], rightAligned: [0])
                for (_, r) in rows {
                    let output = r.output.map { o in o + (r.outputSHA256.map { " sha256:" + $0.prefix(12) } ?? "") } ?? ""
                    t.row([String(r.seq), String(r.at.description.prefix(19)).replacingT(), r.user + "@" + r.host, r.command,
                           r.selection ?? "", output, r.outcome])
                }
                return t.render()
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check the hash chain of the audit trail and its head.",
            discussion: """
            Exits 0 with "chain intact, N records" when every record follows the one before it and \
            the last one is the one its head ({database}.audit.head) names; exits 1 naming the first \
            bad record (line and seq) and why: unreadable, a seq missing or repeated, a hash that \
            does not match.
            """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let trail = AuditTrail(path: AuditTrail.path(forDatabase: try databasePath(global)))
            var head = trail.readHead()
            var chain = AuditChain()
            var problem: AuditChain.Problem?
            var terminated = true
            if FileManager.default.fileExists(atPath: trail.path) {
                // The head and the size together, under the trail's lock: appends going on
                // meanwhile are not mistaken for a stale head.
                let snapshot: (head: (seq: Int, hash: String)?, size: Int)
                do { snapshot = try trail.snapshot() } catch { throw CLIError("\(error)", cause: error) }
                head = snapshot.head
                terminated = try trail.forEachLine(upTo: snapshot.size) { line in
                    problem = chain.check(line)
                    return problem == nil
                }
            } else if head == nil {
                print("no audit trail at \(trail.path) yet: no audited command has run on this database")
                return
            }
            if problem == nil { problem = chain.checkEnd(terminated: terminated, head: head) }
            if let problem {
                print("\(trail.path): chain broken; first bad record: \(problem)")
                throw ExitCode.failure
            }
            let records = chain.count - chain.tornLines.count
            print("chain intact, \(records) record\(records == 1 ? "" : "s")\(chain.last.map { " (last seq \($0.seq), sha256 \($0.hash))" } ?? "")")
            if !chain.tornLines.isEmpty {
                print("note: line\(chain.tornLines.count == 1 ? "" : "s") \(chain.tornLines.map(String.init).joined(separator: ", ")) \(chain.tornLines.count == 1 ? "is a record" : "are records") cut short by a writer that died, chained past by the next append")
            }
        }
    }
}
