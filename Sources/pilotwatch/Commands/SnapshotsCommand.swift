import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Snapshots: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "List the day-end snapshots that site instances sent for the pilots that report aggregates.",
        discussion: """
        A pilot whose registry entry says `reporting: aggregates` (with its `site`) is reported by \
        a site instance: it publishes one snapshot per UTC day end on {root}/{pilot}/{site}/agg, \
        and serve keeps, per pilot and day end, the latest revision it accepted (a resend with the \
        same or a lower revision is a duplicate). Refused snapshots are in `pilotwatch rejects` \
        (reasons unknown_site, registry_mismatch, pilot_mismatch, schema).

        Without --pilot: one row per aggregate pilot (those with no snapshot yet included): its \
        site, latest day end, revision, when it arrived, and how many day ends are held. With \
        --pilot P: every day end held for P, oldest first.

        Snapshots hold pilot-level aggregates only; the command is recorded in the audit trail \
        like every view of the store.

        Examples:
          pilotwatch snapshots
          pilotwatch snapshots --pilot hf-nord-02
          pilotwatch snapshots --format json | jq '.pilots[] | select(.day_ends == 0)'
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("List every day end held for this pilot.", valueName: "pilot"))
    var pilot: String?

    @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
    var format: OutputFormat = .table

    func run() throws {
        let ctx = try Context.load(global)
        if let pilot, ctx.registry.pilot(pilot) == nil {
            let aggregates = ctx.registry.pilots.filter { $0.site != nil }.map(\.id)
            throw CLIError("unknown pilot \"\(pilot)\"; pilots that report aggregates: \(aggregates.isEmpty ? "none (no registry entry has reporting: aggregates)" : aggregates.joined(separator: ", "))",
                           kind: .usage)
        }
        try audited("snapshots", database: ctx.service.databasePath, selection: pilot.map { "pilot=\($0)" }, asOf: .now) { audit in
            let store = try openStore(ctx.service.databasePath, readOnly: true)
            if let pilot {
                try audit.show(SnapshotsView.dayEnds(pilot, site: ctx.registry.pilot(pilot)?.site, try store.snapshots(pilot: pilot), format: format))
            } else {
                try audit.show(SnapshotsView.summary(ctx.registry, try store.snapshotSummaries(), format: format))
            }
        }
    }
}

enum SnapshotsView {
    /// One row per pilot that reports aggregates or has snapshots held.
    static func summary(_ registry: Registry, _ held: [SnapshotSummary], format: OutputFormat) -> String {
        let byPilot = Dictionary(held.map { ($0.pilot, $0) }, uniquingKeysWith: { a, _ in a })
        let ids = Set(registry.pilots.filter { $0.site != nil }.map(\.id)).union(byPilot.keys).sorted()
        let rows = ids.map { id in (id, registry.pilot(id)?.site, byPilot[id]) }
        switch format {
        case .json:
            var w = JSONWriter()
            w.object { o in
                o.arrayField("pilots") { a in
                    for (id, site, s) in rows {
                        a.object { p in
                            p.field("pilot", id)
                            p.field("registered_site", site)
                            p.field("site", s?.site)
                            p.field("latest_as_of", s?.latestAsOf.description)
                            p.field("revision", s.map { Int($0.revision) })
                            p.field("received_at", s?.receivedAt.description)
                            p.field("day_ends", s?.dayEnds ?? 0)
                        }
                    }
                }
            }
            return w.text
        case .csv:
            var lines = [CSV.line(["pilot", "registered_site", "site", "latest_as_of", "revision", "received_at", "day_ends"])]
            for (id, site, s) in rows {
                lines.append(CSV.line([id, site ?? "", s?.site ?? "", s?.latestAsOf.description ?? "", s.map { String($0.revision) } ?? "",
                                       s?.receivedAt.description ?? "", String(s?.dayEnds ?? 0)]))
            }
            return lines.joined(separator: "\n")
        case .table:
            guard !rows.isEmpty else {
                return "no pilot reports aggregates: give one `reporting: aggregates` and its `site` in the registry to receive its site's snapshots"
            }
            var t = TextTable(["pilot", "site", "latest day end", "revision", "received", "day ends"], rightAligned: [3, 5])
            for (id, site, s) in rows {
                t.row([id, s?.site ?? site ?? "-", s.map { $0.latestAsOf.day.description } ?? "none yet",
                       s.map { String($0.revision) } ?? "-", s.map { String($0.receivedAt.description.prefix(16)).replacingT() } ?? "-",
                       String(s?.dayEnds ?? 0)])
            }
            return t.render()
        }
    }

    /// Every day end held for one pilot, oldest first.
    static func dayEnds(_ pilot: String, site: String?, _ snapshots: [StoredSnapshot], format: OutputFormat) -> String {
        switch format {
        case .json:
            var w = JSONWriter()
            w.object { o in
                o.field("pilot", pilot)
                o.field("registered_site", site)
                o.arrayField("snapshots") { a in
                    for s in snapshots {
                        a.object { e in
                            e.field("as_of", s.asOf.description)
                            e.field("site", s.site)
                            e.field("revision", Int(s.revision))
                            e.field("msg_id", s.msgID)
                            e.field("received_at", s.receivedAt.description)
                            e.field("sha256", s.sha256)
                        }
                    }
                }
            }
            return w.text
        case .csv:
            var lines = [CSV.line(["pilot", "as_of", "site", "revision", "msg_id", "received_at", "sha256"])]
            for s in snapshots {
                lines.append(CSV.line([pilot, s.asOf.description, s.site, String(s.revision), s.msgID, s.receivedAt.description, s.sha256]))
            }
            return lines.joined(separator: "\n")
        case .table:
            guard !snapshots.isEmpty else {
                return site == nil
                    ? "\(pilot) reports observations (no reporting: aggregates in the registry), so it has no snapshots"
                    : "no snapshot of \(pilot) from its site \(site ?? "") yet"
            }
            var t = TextTable(["day end", "site", "revision", "msg_id", "received"], rightAligned: [2])
            for s in snapshots {
                t.row([s.asOf.day.description, s.site, String(s.revision), s.msgID,
                       String(s.receivedAt.description.prefix(16)).replacingT()])
            }
            return t.render()
        }
    }
}
