import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show what has been ingested: messages accepted, duplicate and refused, and per pilot.",
        discussion: """
        Examples:
          pilotwatch stats
          pilotwatch stats --format json | jq .refused_by_reason
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
    var format: OutputFormat = .table

    func run() throws {
        let ctx = try Context.load(global)
        try audited("stats", database: ctx.service.databasePath, asOf: .now) { audit in
            let store = try openStore(ctx.service.databasePath, readOnly: true)
            let s = try store.stats()
            try audit.show(StatsView.render(s, format: format, ingest: try ctx.ingestHealth(store, now: .now)))
        }
    }
}

enum StatsView {
    static func render(_ s: StoreStats, format: OutputFormat, ingest: IngestHealth? = nil) -> String {
        let reasons = s.refusedByReason.sorted { $0.key.rawValue < $1.key.rawValue }
        let pilots = s.pilots.sorted { $0.pilot < $1.pilot }
        switch format {
        case .json:
            var w = JSONWriter()
            w.object { o in
                if let ingest { ingest.write(into: &o) }
                o.objectField("messages") { m in
                    m.field("accepted", s.accepted)
                    m.field("duplicate", s.duplicate)
                    m.field("refused", s.refused)
                    m.field("status", s.statuses)
                }
                o.objectField("refused_by_reason") { r in for (k, v) in reasons { r.field(k.rawValue, v) } }
                o.field("observations", s.observations)
                o.field("duplicate_observations", s.duplicateObservations)
                o.arrayField("pilots") { a in
                    for p in pilots {
                        a.object { po in
                            po.field("pilot", p.pilot)
                            po.field("observations", p.observations)
                            po.field("subjects", p.subjects)
                            po.field("devices", p.devices)
                            po.field("last_observation_at", p.lastObservationAt?.description)
                        }
                    }
                }
            }
            return w.text
        case .csv:
            var lines = [CSV.line(["pilot", "observations", "subjects", "devices", "last_observation_at"])]
            for p in pilots {
                lines.append(CSV.line([p.pilot, String(p.observations), String(p.subjects), String(p.devices),
                                       p.lastObservationAt?.description ?? ""]))
            }
            return lines.joined(separator: "\n")
        case .table:
            var out = ingest.map { $0.line(now: .now, colour: false) + "\n" } ?? ""
            out += "messages: accepted \(s.accepted), duplicate \(s.duplicate), refused \(s.refused), device status \(s.statuses)\n"
            out += "observations: \(s.observations) (duplicates ignored: \(s.duplicateObservations))\n"
            if !reasons.isEmpty {
                out += "refused by reason:\n"
                for (k, v) in reasons { out += "  \(k.rawValue.padding(26))\(v)\n" }
            }
            var t = TextTable(["pilot", "observations", "subjects", "devices", "last observation"], rightAligned: [1, 2, 3])
            for p in pilots {
                t.row([p.pilot, String(p.observations), String(p.subjects), String(p.devices),
                       p.lastObservationAt.map { String($0.description.prefix(16)).replacingT() } ?? "-"])
            }
            return out + "\n" + t.render()
        }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }

    /// `2026-11-29T08:55` → `2026-11-29 08:55`.
    func replacingT() -> String { String(map { $0 == "T" ? " " : $0 }) }
}
