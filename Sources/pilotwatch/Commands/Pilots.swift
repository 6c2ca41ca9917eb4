import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// `pilots`: changes to how a pilot is followed (its dashboard is `pilotwatch pilot ID`).
struct Pilots: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilots",
        abstract: "Change how a pilot reports to this instance (its dashboard is `pilotwatch pilot ID`).",
        subcommands: [SwitchToAggregates.self]
    )

    struct SwitchToAggregates: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "switch-to-aggregates",
            abstract: "Finish moving a pilot from observations to aggregates: remove its raw rows here and revoke its device accounts.",
            discussion: """
            Run at the cluster once the pilot's site instance reports its day-end snapshots \
            (federation.md, "Schedule, delivery and history"). The order:

              1. On the site: add the pilot to federation.pilots, and let it backfill the day \
            ends since the pilot's start (`pilotwatch federate` there).
              2. Here: give the pilot's registry entry `reporting: aggregates` and `site: \
            {site_id}`, and check it (`pilotwatch config check`, which then warns that raw rows \
            remain). From then on its devices' messages are refused (aggregate_pilot, hash only).
              3. Here: this command. It refuses to run until step 2 is done.

            It removes, for good, the pilot's observations, events, subjects and their roll-ups, \
            its messages and devices, and its refused messages, and overwrites its devices' \
            records in serve's inbox (`--dry-run` says how many rows and bytes). The pilot's \
            counters by day (messages, observations, refusals received) stay: they name no subject \
            and no device. Deleted bytes are overwritten (secure_delete), the file is rewritten \
            (VACUUM: a write of the whole store, once) and its write-ahead log emptied, so the \
            data is gone from the files, not only from the tables. Backups taken before still \
            hold it: delete or let them expire as your retention says.

            Then it removes the pilot's device accounts ({pilot_id}/*) from mosquitto's password \
            file and ACL, as `pilotwatch devices revoke` does; reload the broker afterwards, or \
            pass --broker-pid.

            While serve runs, the removal is handed to it (it reloads the registry first) and done \
            between two batches. Every run, dry or not, is recorded in the audit trail. Running it \
            again is safe: it finds nothing left.

            Examples:
              pilotwatch pilots switch-to-aggregates --pilot card-hf-idf-03 --dry-run
              pilotwatch pilots switch-to-aggregates --pilot card-hf-idf-03
              pilotwatch pilots switch-to-aggregates --pilot card-hf-idf-03 --password-file /etc/mosquitto/passwd --format json
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The pilot to switch: its registry entry must already say reporting: aggregates.", valueName: "id"))
        var pilot: String

        @OptionGroup var files: DeviceAccountFiles

        @Flag(help: "Say what would go (rows and bytes, device accounts), remove nothing.")
        var dryRun = false

        @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
        var format: OutputFormat = .table

        func validate() throws {
            try requireCode(pilot, flag: "--pilot", naming: "pilot id")
            if format == .csv { throw ValidationError("--format csv: switch-to-aggregates prints table or json") }
        }

        func run() throws {
            let ctx = try Context.load(global)
            if let problem = SwitchToAggregatesWork.registryProblem(ctx.registry, registryPath: ctx.service.registryPath, pilot: pilot) {
                throw CLIError(problem, kind: .usage)
            }
            let database = ctx.service.databasePath
            let accounts = DeviceRevocationRequest(pilot: pilot, files: files, dryRun: dryRun)
            let command = "pilots switch-to-aggregates" + (dryRun ? " --dry-run" : "")
            let (removal, revoked) = try audited(command, database: database, selection: "pilot=\(pilot)") { _ in
                // The password file is checked (and its accounts listed) before any row goes.
                var check = accounts
                check.dryRun = true
                let planned = try check.revoke()
                if dryRun {
                    return (try openStore(database, readOnly: true).removeRawRows(pilot: pilot, dryRun: true), planned)
                }
                let removal = try removeRows(ctx, database: database)
                return (removal, try accounts.revoke())
            }
            print(Self.render(removal, revoked, format: format))
            accounts.adviseReload(revoked)
            if !dryRun && !removal.walEmptied {
                throw CLIError("the raw rows are removed, but the write-ahead log could not be emptied (readers held it for 5 s), so it may still hold old copies of their pages; run the same command again when the views are idle (it is safe: nothing is left to remove)")
            }
        }

        /// By the store's one writer: `serve` when it runs, else this command.
        private func removeRows(_ ctx: Context, database: String) throws -> RawRowsRemoval {
            switch try WriteAccess.obtain(database: database, role: "pilots-switch") {
            case .serve(_, let client):
                try client.send(ServeRequest(op: .removeRawRows, pilot: pilot))
                client.finishSending()
                guard let removal = try client.answer(doing: "remove the raw rows of \(pilot)").removal else {
                    throw CLIError("`pilotwatch serve` answered without saying what it removed; see its log")
                }
                return removal
            case .own(let lock):
                defer { lock.release() }
                return try SwitchToAggregatesWork.own(ctx, database: database, pilot: pilot,
                                                      log: { printError("pilots switch-to-aggregates: \($0)") })
            }
        }

        static func render(_ r: RawRowsRemoval, _ revoked: DeviceRevocation, format: OutputFormat) -> String {
            if format == .json {
                var w = JSONWriter()
                w.object { o in
                    o.field("pilot", r.pilot)
                    o.field("dry_run", r.dryRun)
                    o.objectField("raw_rows") { e in
                        e.field("rows", r.rows)
                        e.field("bytes", r.bytes)
                        e.objectField("tables") { t in
                            for table in r.tables {
                                t.objectField(table.table) { x in
                                    x.field("rows", table.rows)
                                    x.field("bytes", table.bytes)
                                }
                            }
                        }
                        e.field("inbox_records", r.inboxRecords)
                        e.field("inbox_bytes", r.inboxBytes)
                        e.field("wal_emptied", r.walEmptied)
                        e.field("file_bytes_before", Int(r.fileBytesBefore))
                        e.field("file_bytes_after", Int(r.fileBytesAfter))
                    }
                    o.objectField("device_accounts") { revoked.fields(&$0) }
                }
                return w.text
            }
            let verb = r.dryRun ? "would remove" : "removed"
            var lines = ["\(r.pilot): \(verb) \(r.rows) raw rows (\(r.bytes) bytes)"]
            var t = TextTable(["table", "rows", "bytes"])
            for table in r.tables { t.row([table.table, String(table.rows), String(table.bytes)]) }
            t.row(["inbox records", String(r.inboxRecords), String(r.inboxBytes)])
            lines.append(t.render())
            if !r.dryRun {
                lines.append("database and write-ahead log: \(r.fileBytesBefore) bytes before, \(r.fileBytesAfter) after; write-ahead log \(r.walEmptied ? "emptied" : "not yet emptied")")
            }
            lines.append(revoked.render(format: .table))
            return lines.joined(separator: "\n")
        }
    }
}
