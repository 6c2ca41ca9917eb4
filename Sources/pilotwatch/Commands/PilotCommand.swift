import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct PilotView: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilot",
        abstract: "One pilot in depth: enrolment, milestones, activity, outcomes, events, devices, data quality.",
        discussion: """
        Registry facts, enrolment progress and projection, milestones met or missed, weekly \
        enrolment and adherence sparklines (12 weeks), one row per outcome indicator (paired \
        subjects, baseline, latest, change with its 95% interval, share in target, share \
        improved), event rates per 100 patient-months, devices, and data quality. --since bounds \
        the period of event rates and data quality (default: the pilot's whole life). \
        Definitions: docs/metrics.md.

        Examples:
          pilotwatch pilot resp-copd-idf-01
          pilotwatch pilot card-hf-idf-03 --since 90d --format json
          pilotwatch pilot diab-cgm-idf-02 --as-of 2026-06-30 --watch 30
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The pilot id (see `pilotwatch status`).", valueName: "id"))
    var id: String

    @OptionGroup var view: ViewOptions

    @Option(help: ArgumentHelp("Period of event rates and data quality: since \(timeArgumentHelp); a duration counts back from --as-of.",
                               valueName: "time"))
    var since: String?

    func run() throws {
        let ctx = try Context.load(global)
        guard let pilot = ctx.registry.pilot(id) else {
            throw CLIError("unknown pilot \"\(id)\"; valid pilots: \(ctx.registry.pilots.map(\.id).joined(separator: ", "))", kind: .usage)
        }
        let fixedAsOf = try view.parsedAsOf()
        _ = try timeOption(since, "--since")  // checked now; resolved against each frame's T below
        try audited("pilot", database: ctx.service.databasePath,
                    selection: "pilot=\(id)" + (since.map { " since=\($0)" } ?? ""), asOf: fixedAsOf ?? .now) { audit in
            let store = try openStore(ctx.service.databasePath, readOnly: true)
            try view.show(audit: audit) { now in
                let t = fixedAsOf ?? now
                let start = since.flatMap { parseTimeArgument($0, now: t) }
                var board: PilotBoard
                let sources = try ctx.snapshotSources(store, asOf: t, pilots: [pilot])
                if sources.pilots.contains(id) {
                    // Reports aggregates (the latest day-end snapshot at or before T), or ended
                    // and archived (its final figures).
                    let origin = sources.archived.contains(id) ? "ended and archived (its raw rows are purged)"
                        : "reports aggregates (site \(pilot.site ?? "?"))"
                    guard start == nil else {
                        throw CLIError("\(id) \(origin): its figures cover its whole life up to a day end; a period (--since) would rest on the difference of two day ends, which disclosure control does not allow", kind: .usage)
                    }
                    guard let snapshot = sources.snapshots[id] else {
                        throw CLIError("\(id) \(origin), and there is no day-end snapshot of it at or before \(t) (`pilotwatch snapshots --pilot \(id)` lists what arrived)")
                    }
                    board = Dashboard.pilot(pilot, snapshot: snapshot, catalogue: ctx.catalogue, asOf: t,
                                            thresholds: ctx.service.alerts.thresholds)
                } else {
                    board = try Dashboard.pilot(store: store, pilot: pilot, catalogue: ctx.catalogue, since: start, asOf: t,
                                                thresholds: ctx.service.alerts.thresholds)
                }
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
