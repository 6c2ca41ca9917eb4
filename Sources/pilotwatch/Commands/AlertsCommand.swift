import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "The alerts serve raised and has not cleared, or their history.",
        discussion: """
        serve evaluates the alert rules every minute (alerts.every, --alerts-every) from the same \
        figures as the views: for each pilot the flags of `status` (behind_target, \
        missed_milestone, silent, low_activity, low_adherence, devices_silent, low_battery, \
        refusal_rate, unenrolled_subjects), and for itself ingest_stopped, broker_disconnected, \
        backlog_high and quarantine_growing. Each alert is raised once and cleared once; both are \
        stored, published as a retained message on {root}/_cluster/alerts/{rule}/{pilot or \
        service} (empty once cleared) and given to alerts.command. Thresholds: `alerts:` in \
        pilotwatch.yaml and in a pilot's registry entry.

        When serve has stopped, it cannot record that: the list (at now) then shows \
        ingest_stopped from its heartbeat, as the views do.

        Examples:
          pilotwatch alerts
          pilotwatch alerts --pilot card-hf-nord-03 --format json
          pilotwatch alerts --as-of 2026-11-30
          pilotwatch alerts history --since 7d --format csv
        """,
        subcommands: [List.self, History.self],
        defaultSubcommand: List.self
    )

    struct Filter: ParsableArguments {
        @Option(help: ArgumentHelp("Only this pilot's alerts (\"service\" for the service's own).", valueName: "id"))
        var pilot: String?

        @Option(help: ArgumentHelp("Only the alerts of this programme's pilots.", valueName: "programme"))
        var programme: String?

        @Option(help: ArgumentHelp("Only this rule (\(AlertRule.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "rule"))
        var rule: String?

        func validate() throws {
            if let rule, AlertRule(rawValue: rule) == nil {
                throw ValidationError("--rule \(rule) is not a rule; use one of \(AlertRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func check(_ registry: Registry) throws {
            if let pilot, pilot != AlertRule.service, registry.pilot(pilot) == nil {
                throw CLIError("unknown pilot \"\(pilot)\"; `pilotwatch status` lists the pilots (or give \"service\")", kind: .usage)
            }
            if let programme, !registry.programmes.contains(programme) {
                throw CLIError("unknown programme \"\(programme)\"; valid programmes: \(registry.programmes.joined(separator: ", "))", kind: .usage)
            }
        }

        /// The filter as the audit trail records it (`pilot=x rule=behind_target`).
        func summary(since: String? = nil) -> String? {
            auditSelection(["pilot": pilot, "programme": programme, "rule": rule, "since": since])
        }

        func keeps(_ key: AlertKey, _ registry: Registry) -> Bool {
            if let pilot, key.target != pilot { return false }
            if let rule, key.rule.rawValue != rule { return false }
            if let programme, registry.pilot(key.target)?.programme != programme { return false }
            return true
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The alerts raised and not cleared (now, or at --as-of).")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter

        @Option(name: .customLong("as-of"),
                help: ArgumentHelp("The alerts active at this instant (default: now): \(timeArgumentHelp). A date means its end.",
                                   valueName: "time"))
        var asOf: String?

        @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
        var format: OutputFormat = .table

        func run() throws {
            let ctx = try Context.load(global)
            try filter.check(ctx.registry)
            let fixedAsOf = try timeOption(asOf, "--as-of", endOfDay: true)
            let t = fixedAsOf ?? .now
            let fixed = fixedAsOf != nil
            try audited("alerts list", database: ctx.service.databasePath, selection: filter.summary(), asOf: t) { audit in
                let store = try openStore(ctx.service.databasePath, readOnly: true)
                var rows = try store.alerts(activeAt: t).map { AlertRow(stored: $0, asOf: fixed ? t : nil) }
                // serve cannot record its own stop when it dies: at now, the heartbeat tells.
                var health: IngestHealth?
                if !fixed {
                    let h = try ctx.ingestHealth(store, now: t)
                    health = h
                    let live = AlertEvaluator.service(health: h, backlogLimit: .max, refusedLastHour: 0, thresholds: ctx.service.alerts.thresholds)
                    for c in live where c.rule == .ingestStopped && !rows.contains(where: { $0.key == c.key }) {
                        rows.append(AlertRow(key: c.key, raisedAt: h.since, message: c.message + " (from the heartbeat)",
                                             values: c.values, fromHeartbeat: true))
                    }
                }
                rows = rows.filter { filter.keeps($0.key, ctx.registry) }.sorted { $0.key < $1.key }
                try audit.show(render(rows, registry: ctx.registry, asOf: t, health: health))
            }
        }

        func render(_ rows: [AlertRow], registry: Registry, asOf t: Instant, health: IngestHealth?) -> String {
            switch format {
            case .json:
                var w = JSONWriter(pretty: true)
                w.object { o in
                    o.field("as_of", t.description)
                    health?.write(into: &o)
                    o.arrayField("alerts") { a in
                        for r in rows { a.object { r.write(into: &$0, programme: registry.pilot(r.key.target)?.programme) } }
                    }
                }
                return w.text
            case .csv:
                var lines = [CSV.line(AlertRow.csvHeader)]
                lines += rows.map { CSV.line($0.csv(programme: registry.pilot($0.key.target)?.programme)) }
                return lines.joined(separator: "\n")
            case .table:
                var out: [String] = []
                if let health { out.append(health.line(now: t, colour: useColour)); out.append("") }
                guard !rows.isEmpty else {
                    out.append("no alert active at \(Graphics.minute(t)) UTC")
                    return out.joined(separator: "\n")
                }
                var table = TextTable(["raised", "target", "rule", "what"])
                for r in rows {
                    table.row([Graphics.minute(r.raisedAt), r.key.target, r.key.rule.rawValue, r.message])
                }
                out.append(table.render())
                out.append("")
                out.append(Graphics.Colour.dim.paint("\(rows.count) alert\(rows.count == 1 ? "" : "s") active at \(Graphics.minute(t)) UTC; `pilotwatch alerts history` for the transitions", useColour))
                return out.joined(separator: "\n")
            }
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "history", abstract: "Every raise and clear, oldest first.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter

        @Option(help: ArgumentHelp("Only transitions since: \(timeArgumentHelp).", valueName: "time"))
        var since: String?

        @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
        var format: OutputFormat = .table

        func run() throws {
            let ctx = try Context.load(global)
            try filter.check(ctx.registry)
            let from = try timeOption(since, "--since")
            try audited("alerts history", database: ctx.service.databasePath, selection: filter.summary(since: since)) { audit in
                let store = try openStore(ctx.service.databasePath, readOnly: true)
                let transitions = try store.alertHistory(since: from, until: .now).filter { filter.keeps($0.alert.key, ctx.registry) }
                try audit.show(render(transitions, registry: ctx.registry, from: from))
            }
        }

        func render(_ transitions: [AlertTransition], registry: Registry, from: Instant?) -> String {
            switch format {
            case .json:
                var w = JSONWriter(pretty: true)
                w.array { a in
                    for t in transitions {
                        a.object { o in
                            o.field("at", t.at.description)
                            o.field("transition", t.kind.rawValue)
                            AlertRow(stored: t.alert).write(into: &o, programme: registry.pilot(t.alert.target)?.programme)
                        }
                    }
                }
                return w.text
            case .csv:
                var lines = [CSV.line(["at", "transition"] + AlertRow.csvHeader)]
                for t in transitions {
                    lines.append(CSV.line([t.at.description, t.kind.rawValue]
                                          + AlertRow(stored: t.alert).csv(programme: registry.pilot(t.alert.target)?.programme)))
                }
                return lines.joined(separator: "\n")
            case .table:
                guard !transitions.isEmpty else { return "no alert raised or cleared\(from.map { " since \(Graphics.minute($0)) UTC" } ?? "")" }
                var table = TextTable(["at", "", "target", "rule", "what"])
                for t in transitions {
                    table.row([Graphics.minute(t.at), t.kind.rawValue, t.alert.target, t.alert.rule.rawValue,
                               t.kind == .raised ? t.alert.raisedMessage : ""])
                }
                return table.render()
            }
        }
    }
}

/// One alert as listed: stored, or told from the heartbeat.
struct AlertRow {
    var id: Int64?
    var key: AlertKey
    var raisedAt: Instant?
    var clearedAt: Instant?
    var message: String
    var values: JSONObject
    var raisedValues: JSONObject?
    var updatedAt: Instant?
    var fromHeartbeat = false

    /// `asOf`: a list of the past shows what was known then: the latest evaluation's message and
    /// values if it came before, else the raise's (and nothing of a later clear).
    init(stored a: AlertRecord, asOf t: Instant? = nil) {
        id = a.id; key = a.key; raisedAt = a.raisedAt; clearedAt = a.clearedAt; message = a.message; values = a.values
        raisedValues = a.raisedValues; updatedAt = a.updatedAt
        if let t {
            if a.updatedAt > t { message = a.raisedMessage; values = a.raisedValues; updatedAt = a.raisedAt }
            if let c = a.clearedAt, c > t { clearedAt = nil }
        }
    }

    init(key: AlertKey, raisedAt: Instant?, message: String, values: JSONObject, fromHeartbeat: Bool) {
        self.key = key; self.raisedAt = raisedAt; self.message = message; self.values = values; self.fromHeartbeat = fromHeartbeat
    }

    static let csvHeader = ["id", "rule", "target", "programme", "raised_at", "cleared_at", "updated_at", "message", "values",
                            "raised_values"]

    func csv(programme: String?) -> [String] {
        [id.map(String.init) ?? "", key.rule.rawValue, key.target, programme ?? "", raisedAt?.description ?? "",
         clearedAt?.description ?? "", updatedAt?.description ?? "", message, Self.text(values), raisedValues.map(Self.text) ?? ""]
    }

    static func text(_ o: JSONObject) -> String { String(decoding: JSON.encode(.object(o)), as: UTF8.self) }

    func write(into o: inout JSONWriter, programme: String?) {
        o.field("id", id.map(Int.init))
        o.field("rule", key.rule.rawValue)
        o.field("target", key.target)
        o.field("programme", programme)
        o.field("raised_at", raisedAt?.description)
        o.field("cleared_at", clearedAt?.description)
        o.field("updated_at", updatedAt?.description)
        o.field("message", message)
        o.field("values", raw: Self.text(values))
        o.field("raised_values", raw: raisedValues.map(Self.text) ?? "null")
        o.field("source", fromHeartbeat ? "heartbeat" : "serve")
    }
}
