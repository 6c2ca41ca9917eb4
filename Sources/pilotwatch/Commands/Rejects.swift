import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Rejects: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejects",
        abstract: "List the quarantine of refused messages, or replay it after fixing the configuration.",
        discussion: """
        A refused message is kept with its topic, time, reason and a detail naming the field; \
        messages refused for identifying data (or too large to be scanned for it) keep only topic, \
        time, reason and a hash. store_error is the service's own: the database refused the \
        message on every try; replay it once the database is mended.

        Examples:
          pilotwatch rejects --reason out_of_range --since 7d
          pilotwatch rejects --pilot resp-copd-idf-01 --format json
          pilotwatch rejects replay
        """,
        subcommands: [List.self, Replay.self],
        defaultSubcommand: List.self
    )

    struct Filter: ParsableArguments {
        @Option(help: ArgumentHelp("Only this pilot.", valueName: "id"))
        var pilot: String?

        @Option(help: ArgumentHelp("Only this reason code (\(ReasonCode.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "code"))
        var reason: String?

        @Option(help: ArgumentHelp("Only messages received since: \(timeArgumentHelp).", valueName: "time"))
        var since: String?

        func validate() throws {
            if let reason, ReasonCode(rawValue: reason) == nil {
                throw ValidationError("--reason \(reason) is not a reason code; use one of \(ReasonCode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let since, parseTimeArgument(since) == nil {
                throw ValidationError("--since \(since) is not a time; give \(timeArgumentHelp)")
            }
            if let pilot { try requireCode(pilot, flag: "--pilot", naming: "pilot id") }
        }

        /// The filter as the audit trail records it (`pilot=x reason=y since=7d`); nil for everything.
        var summary: String? { auditSelection(["pilot": pilot, "reason": reason, "since": since]) }

        func storeFilter(limit: Int?) -> RejectFilter {
            RejectFilter(pilot: pilot, reason: reason.flatMap(ReasonCode.init(rawValue:)),
                         since: since.flatMap { parseTimeArgument($0) }, limit: limit)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List refused messages, newest first.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter

        @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
        var format: OutputFormat = .table

        @Option(help: ArgumentHelp("At most this many rows.", valueName: "n"))
        var limit: Int = 100

        func run() throws {
            let ctx = try Context.load(global)
            try audited("rejects list", database: ctx.service.databasePath, selection: filter.summary) { audit in
                let store = try openStore(ctx.service.databasePath, readOnly: true)
                try audit.show(render(try store.rejects(filter.storeFilter(limit: limit))))
            }
        }

        func render(_ rows: [RejectRecord]) -> String {
            switch format {
            case .json:
                var w = JSONWriter()
                w.array { a in
                    for r in rows {
                        a.object { o in
                            o.field("id", Int(r.id))
                            o.field("received_at", r.receivedAt.description)
                            o.field("topic", r.topic)
                            o.field("pilot", r.pilot)
                            o.field("device", r.device)
                            o.field("reason", r.reason.rawValue)
                            o.field("detail", r.detail)
                            o.field("payload_sha256", r.payloadSHA256)
                        }
                    }
                }
                return w.text
            case .csv:
                var lines = [CSV.line(["id", "received_at", "topic", "pilot", "device", "reason", "detail", "payload_sha256"])]
                for r in rows {
                    lines.append(CSV.line([String(r.id), r.receivedAt.description, r.topic, r.pilot ?? "", r.device ?? "",
                                           r.reason.rawValue, r.detail, r.payloadSHA256]))
                }
                return lines.joined(separator: "\n")
            case .table:
                if rows.isEmpty { return "no refused messages match" }
                var t = TextTable(["received", "pilot/device", "reason", "detail"])
                for r in rows {
                    let who = [r.pilot, r.device].compactMap { $0 }.joined(separator: "/")
                    t.row([String(r.receivedAt.description.prefix(16)).replacingT(), who.isEmpty ? r.topic : who,
                           r.reason.rawValue, r.detail])
                }
                return t.render()
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Re-validate quarantined messages with the current configuration and import what it now accepts.",
            discussion: """
            Use it after adding a pilot or an indicator that messages were refused for. Messages \
            refused for identifying data, or too large, are kept as a hash only, so they cannot be \
            replayed. While `pilotwatch serve` runs, the replay is handed to it: serve reloads the \
            registry and catalogue, replays between its own batches, and uses them from then on.

            Example:
              pilotwatch rejects replay --reason unknown_pilot
            """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter

        @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
        var format: OutputFormat = .table

        @Option(help: ArgumentHelp("Rejects replayed per transaction.", valueName: "n"))
        var batch: Int = 500

        func validate() throws {
            guard (1...100_000).contains(batch) else { throw ValidationError("--batch \(batch) must be 1...100000") }
        }

        func run() throws {
            let ctx = try Context.load(global)
            let database = ctx.service.databasePath
            try audited("rejects replay", database: database, creates: true, selection: filter.summary) { _ in
                let storeFilter = filter.storeFilter(limit: nil)
                let candidates: Int
                let summary: ReplaySummary
                switch try WriteAccess.obtain(database: database, role: "rejects-replay") {
                case .own(let lock):
                    defer { lock.release() }
                    let store = try openStore(database)
                    let validator = ctx.validator
                    (candidates, summary) = try StoreWork.replay(store: store, validator: validator, filter: storeFilter, batch: batch)
                case .serve(let holder, let client):
                    // `serve` writes this store: it replays with its configuration, between its batches.
                    printError("rejects replay: handing the replay to \(holder)")
                    try client.send(ServeRequest(op: .replay, batch: batch, pilot: storeFilter.pilot,
                                                 reason: storeFilter.reason?.rawValue, sinceMillis: storeFilter.since?.millis))
                    client.finishSending()
                    (candidates, summary) = ReplaySummary.from(try client.answer(doing: "replay the quarantine"))
                }
                switch format {
                case .json:
                    var w = JSONWriter()
                    w.object { o in
                        o.field("candidates", candidates)
                        o.field("imported", summary.accepted)
                        o.field("duplicate", summary.duplicates)
                        o.field("status", summary.statuses)
                        o.field("still_refused", summary.stillRefused)
                        o.field("failed", summary.failed)
                        o.field("observations", summary.newObservations)
                    }
                    print(w.text)
                case .table, .csv:
                    print("replayed \(candidates): imported \(summary.accepted) (\(summary.newObservations) observations), duplicate \(summary.duplicates), status \(summary.statuses), still refused \(summary.stillRefused)\(summary.failed > 0 ? ", refused by the database \(summary.failed) (left in quarantine)" : "")")
                }
                if summary.failed > 0 { throw ExitCode.failure }
            }
        }
    }
}

extension ReplaySummary {
    /// A replay's counts as `serve` sends them back.
    var reply: ServeReply {
        ServeReply(ok: true, counts: ["accepted": accepted, "duplicate": duplicates, "status": statuses,
                                      "still_refused": stillRefused, "missing": missing, "observations": newObservations,
                                      "failed": failed])
    }

    static func from(_ reply: ServeReply) -> (candidates: Int, summary: ReplaySummary) {
        let c = reply.counts ?? [:]
        return (c["candidates"] ?? 0,
                ReplaySummary(accepted: c["accepted"] ?? 0, duplicates: c["duplicate"] ?? 0, statuses: c["status"] ?? 0,
                              stillRefused: c["still_refused"] ?? 0, missing: c["missing"] ?? 0,
                              newObservations: c["observations"] ?? 0, failed: c["failed"] ?? 0))
    }
}
