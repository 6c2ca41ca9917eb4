import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The cluster overview: which pilots are on track, behind, quiet, and how they transmit.",
        discussion: """
        Per programme: pilots, enrolled against the summed target, in follow-up, active in the last \
        7 days and transmission adherence (pooled over all subjects). Then one row per pilot: \
        enrolment bar (with a tick at the next milestone), on track, active 7d, adherence, time \
        since the last measurement, refusals in the last 7 days, and flags: the alert rules that \
        hold (B behind target, M latest milestone missed, S silent for more than 48 hours, A active \
        in 7 days below 50% of those in follow-up, T transmission adherence below 60%, D 20% or \
        more of the devices silent for 48 hours, L 20% or more with a battery below 20%, R refusal \
        rate above 5% over 7 days, U unenrolled subjects). The thresholds are defaults that \
        `alerts:` in pilotwatch.yaml and in a pilot's registry entry change; the legend shows the \
        service's. `pilotwatch alerts` lists what serve raised. Definitions: docs/metrics.md.

        Examples:
          pilotwatch status
          pilotwatch status --programme respiratory --watch 10
          pilotwatch status --as-of 2026-06-30 --format json
        """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var view: ViewOptions

    @Option(help: ArgumentHelp("Only this programme.", valueName: "programme"))
    var programme: String?

    func run() throws {
        let ctx = try Context.load(global)
        if let programme, !ctx.registry.programmes.contains(programme) {
            throw CLIError("unknown programme \"\(programme)\"; valid programmes: \(ctx.registry.programmes.joined(separator: ", "))", kind: .usage)
        }
        let fixedAsOf = try view.parsedAsOf()
        try audited("status", database: ctx.service.databasePath, selection: programme.map { "programme=\($0)" },
                    asOf: fixedAsOf ?? .now) { audit in
            let store = try openStore(ctx.service.databasePath, readOnly: true)
            try view.show(audit: audit) { now in
                let t = fixedAsOf ?? now
                var board = try Dashboard.status(store: store, registry: ctx.registry, programme: programme, asOf: t,
                                             thresholds: ctx.service.alerts.thresholds,
                                             snapshots: try ctx.snapshotSources(store, asOf: t).snapshots)
                if fixedAsOf == nil { board.ingest = try ctx.ingestHealth(store, now: now) }
                switch view.format {
                case .table: return board.table(colour: useColour)
                case .json: return board.json()
                case .csv: return board.csv()
                }
            }
        }
    }
}

/// The options every dashboard takes: the as-of instant, the format, and watching.
struct ViewOptions: ParsableArguments {
    @Option(name: .customLong("as-of"),
            help: ArgumentHelp("Compute as of this instant (default: now): \(timeArgumentHelp). A date means its end.",
                               valueName: "time"))
    var asOf: String?

    @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
    var format: OutputFormat = .table

    @Option(help: ArgumentHelp("Redraw every so many seconds until interrupted (Ctrl-C).", valueName: "seconds"))
    var watch: Double?

    func validate() throws {
        if let watch, !(watch > 0 && watch <= 86_400) {
            throw ValidationError("--watch \(watch) must be a number of seconds between 0 and 86400")
        }
    }

    /// The `--as-of` instant, nil for "now"; a one-line error naming the value otherwise.
    func parsedAsOf() throws -> Instant? {
        try timeOption(asOf, "--as-of", endOfDay: true)
    }

    /// Prints `render(now)` once, or, with `--watch`, redraws it in place until interrupted.
    /// The view is recorded in `audit` before it is shown (with `--watch`, once, with the
    /// SHA-256 of its first frame).
    func show(audit: CommandAudit, _ render: (Instant) throws -> String) throws {
        guard let watch else {
            try audit.show(try render(.now))
            return
        }
        let terminal = isatty(STDOUT_FILENO) == 1
        var first = true
        while true {
            let frame = try render(.now)
            let bytes: Data
            if terminal {
                // Home, draw, clear whatever the previous (longer) frame left below.
                bytes = Data(("\u{1B}[H" + (first ? "\u{1B}[2J" : "")
                    + frame.replacingOccurrences(of: "\n", with: "\u{1B}[K\n") + "\u{1B}[K\n\u{1B}[J").utf8)
            } else {
                bytes = Data(((first ? "" : "\n") + frame + "\n").utf8)
            }
            // Recorded once, with the SHA-256 of exactly the bytes of the first frame.
            if first { try audit.record(output: "stdout (--watch \(watch), first frame)", sha256: SHA256.hex(bytes), beforeOutput: true) }
            FileHandle.standardOutput.write(bytes)
            first = false
            Thread.sleep(forTimeInterval: watch)
        }
    }
}

extension Context {
    /// Whether ingest runs, from `serve`'s heartbeat in `store`, with the configured stale bound
    /// (`alerts.ingest_stale_seconds`): the line the views open with at now.
    func ingestHealth(_ store: Store, now: Instant) throws -> IngestHealth {
        IngestHealth.evaluate(try store.heartbeat(), now: now, staleAfter: service.alerts.thresholds.ingestStaleSeconds)
    }
}
