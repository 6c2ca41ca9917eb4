import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// `pilotwatch federate`: a site instance's day-end snapshots, as they would leave.
struct Federate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "federate",
        abstract: "Show the day-end snapshot a site instance sends the cluster for its pilots (contract 1.1).",
        discussion: """
        A site instance (`federation:` in pilotwatch.yaml) sends the cluster, for each pilot it \
        forwards, one snapshot per UTC day end: the sufficient statistics of every figure, with \
        disclosure control at federation.min_cell (no count of 1 to min_cell-1 people, no \
        statistic resting on fewer, no small difference with what was published before, times \
        cut to the hour). Nothing in it names a subject or a device.

        `serve` sends them by itself: every --federate-every seconds it builds the day ends that \
        are over (plus federation.grace) from the pilot's start or the last one built, puts them \
        in a durable outbox in the store, and removes each once the cluster's broker acknowledged \
        it. This command prints one day end (--dry-run), with the rules of a first publication \
        (it does not touch what serve has published), or has the day ends from a date on built \
        and sent again with a new revision (--resend --since DATE: late data; the cluster keeps \
        the new ones). While serve runs, a resend is handed to it.

        Examples:
          pilotwatch federate --dry-run --out -
          pilotwatch federate --dry-run --pilot hf-nord-02 --as-of 2026-11-30 --out snapshot.json
          pilotwatch federate --resend --since 2026-11-01
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Build the snapshots and print them; send nothing (serve sends them).")
    var dryRun = false

    @Option(help: ArgumentHelp("The day end: a date, or a time whose day is meant (default: yesterday, UTC).", valueName: "date"))
    var asOf: String?

    @Option(help: ArgumentHelp("Only this pilot (default: every pilot in federation.pilots).", valueName: "id"))
    var pilot: String?

    @Option(help: ArgumentHelp("Where to write the snapshots, one JSON object a line: a file, or - for standard output.", valueName: "file"))
    var out: String = "-"

    @Flag(help: "Have the day ends from --since on built and sent again, with a new revision.")
    var resend = false

    @Option(help: ArgumentHelp("With --resend: the first day end to send again (a date).", valueName: "date"))
    var since: String?

    func validate() throws {
        guard dryRun != resend else {
            throw ValidationError("serve sends the snapshots by itself (--federate-every); pass --dry-run to print one day end, or --resend --since DATE to have day ends sent again")
        }
        if resend && since == nil { throw ValidationError("--resend needs --since DATE: the first day end to send again") }
        if !resend && since != nil { throw ValidationError("--since goes with --resend") }
        if let pilot { try requireCode(pilot, flag: "--pilot", naming: "pilot id") }
    }

    func run() throws {
        let ctx = try Context.load(global)
        guard let federation = ctx.service.federation else {
            throw CLIError("this instance has no federation: section in \(global.configPath); a site instance names the cluster, its site_id and the pilots it forwards (see README.md, Federation)", kind: .usage)
        }
        let ids = pilot.map { [$0] } ?? federation.pilots
        if let pilot, !federation.pilots.contains(pilot) {
            throw CLIError("\(pilot) is not in federation.pilots (\(federation.pilots.joined(separator: ", ")))", kind: .usage)
        }
        if resend {
            try resendDayEnds(ctx, pilots: ids)
            return
        }
        let day: Day
        if let asOf {
            guard let t = try timeOption(asOf, "--as-of", endOfDay: true) else { throw CLIError("--as-of needs a date", kind: .usage) }
            day = t.day
        } else {
            day = Instant.now.day.advanced(by: -1)
        }
        guard day < Instant.now.day else {
            throw CLIError("--as-of \(day): that day has not ended yet (a snapshot describes a whole UTC day)", kind: .usage)
        }
        let database = ctx.service.databasePath
        try audited("federate --dry-run", database: database, selection: "pilots=\(ids.joined(separator: ",")) day=\(day)",
                    asOf: day.advanced(by: 1).start.adding(millis: -1)) { audit in
            let store = try openStore(database, readOnly: true)
            var lines: [String] = []
            for id in ids {
                guard let p = ctx.registry.pilot(id) else {
                    throw CLIError("\(id) is in federation.pilots but not in the registry; `pilotwatch config check` says so too")
                }
                let revision = Instant.now.millis
                let (exact, contributions) = try SnapshotBuilder.buildWithContributions(
                    store: store, pilot: p, catalogue: ctx.catalogue, day: day, revision: revision,
                    msgID: "\(federation.siteID)-\(id)-\(revision)", thresholds: ctx.service.alerts.thresholds)
                let sent = SnapshotDisclosure.apply(exact, contributions: contributions, minCell: federation.minCell,
                                                    state: DisclosureState()).snapshot
                lines.append(sent.json())
            }
            let text = lines.joined(separator: "\n")
            if out == "-" {
                try audit.show(text)
            } else {
                let data = Data((text + "\n").utf8)
                try audit.record(output: out, sha256: SHA256.hex(data), beforeOutput: true)
                do { try data.write(to: URL(fileURLWithPath: out)) } catch {
                    throw CLIError("cannot write \(out): \(error.localizedDescription)")
                }
                printError("wrote \(lines.count) snapshot(s) for \(day) to \(out)")
            }
        }
    }

    /// `--resend --since`: the day ends from that date on leave the outbox and the sent list, for
    /// serve to build and send again (handed to serve while it runs).
    private func resendDayEnds(_ ctx: Context, pilots ids: [String]) throws {
        guard let since, let from = try timeOption(since, "--since") else { throw CLIError("--resend needs --since DATE", kind: .usage) }
        let database = ctx.service.databasePath
        let total = try audited("federate --resend", database: database,
                                selection: "pilots=\(ids.joined(separator: ",")) since=\(from.day)") { _ -> Int in
            var n = 0
            switch try WriteAccess.obtain(database: database, role: "federate") {
            case .serve(_, let first):
                // One request per connection: the first pilot on the connection made, one more each.
                for (i, id) in ids.enumerated() {
                    let c = i == 0 ? first : try ServeChannelClient(database: database)
                    try c.send(ServeRequest(op: .resend, pilot: id, sinceMillis: from.day.start.millis))
                    c.finishSending()
                    n += try c.answer(doing: "resend the day ends of \(id)").counts?["day_ends"] ?? 0
                }
            case .own(let lock):
                defer { lock.release() }
                let store = try openStore(database)
                for id in ids { n += try store.requeueFederation(pilot: id, from: from.day) }
            }
            return n
        }
        print("\(total) day end(s) from \(from.day) to build and send again; serve does it at its next round (--federate-every)")
    }
}
