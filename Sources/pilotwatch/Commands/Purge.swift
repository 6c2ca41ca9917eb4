import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchStore

/// The retention policy applied to a store: what `db purge` does by hand and `serve` daily.
enum RetentionPolicy {
    /// What a purge selects, as its audit record says.
    static let selection = "refused payloads and device statuses received before their pilot's retention"

    /// The cutoffs at `now`: each pilot that sets its own `retention:`, and the service's for
    /// the rest.
    static func cutoffs(_ ctx: Context, now: Instant, days: (RetentionSettings) -> Int,
                        overridden: (RetentionOverrides) -> Bool) -> (pilots: [String: Instant], otherwise: Instant) {
        let base = ctx.service.retention
        var pilots: [String: Instant] = [:]
        for p in ctx.registry.pilots where overridden(p.retention) {
            pilots[p.id] = now.adding(days: -Double(days(p.retention.applied(to: base))))
        }
        return (pilots, now.adding(days: -Double(days(base))))
    }

    static func apply(_ ctx: Context, store: Store, now: Instant, dryRun: Bool) throws -> PurgeSummary {
        let payloads = cutoffs(ctx, now: now, days: \.refusedPayloadDays, overridden: { $0.refusedPayloadDays != nil })
        var summary = try store.purgeRefusedPayloads(cutoffs: payloads.pilots, otherwise: payloads.otherwise, dryRun: dryRun)
        let statuses = cutoffs(ctx, now: now, days: \.deviceStatusDays, overridden: { $0.deviceStatusDays != nil })
        summary.deviceStatuses = try store.purgeDeviceStatuses(cutoffs: statuses.pilots, otherwise: statuses.otherwise, dryRun: dryRun)
        return summary
    }
}

extension Db {
    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "purge",
            abstract: "Apply the retention policy: drop what has been kept long enough.",
            discussion: """
            Today: the payloads of refused messages received more than retention.refused_payload_days \
            ago (90 by default; a pilot's registry entry may set its own). Their refusals stay, with \
            reason, time, topic and hash, so counts and rates do not change. And the last reported \
            status (state, battery, firmware) of devices that reported it more than \
            retention.device_status_days ago (90); their counters and last-heard times stay. The deletion overwrites \
            the freed pages with zeros (SQLite's secure_delete) and empties the write-ahead log \
            afterwards, so the bytes are gone from the files, not only from the tables.

            `serve` runs the purge once a day by itself; while it runs, this command hands the purge \
            to it (the store's one writer). Every purge, dry or not, is recorded in the audit trail.

            Examples:
              pilotwatch db purge --dry-run
              pilotwatch db purge --format json
            """
        )

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Say what would go (rows and bytes), remove nothing.")
        var dryRun = false

        @Option(name: .customLong("as-of"),
                help: ArgumentHelp("Apply the policy as it will stand at this time (default: now): \(timeArgumentHelp).",
                                   valueName: "time"))
        var asOf: String?

        @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
        var format: OutputFormat = .table

        func validate() throws {
            if format == .csv { throw ValidationError("--format csv: purge prints table or json") }
        }

        func run() throws {
            let ctx = try Context.load(global)
            let now = try timeOption(asOf, "--as-of", endOfDay: true) ?? .now
            let database = ctx.service.databasePath
            let summary = try audited(dryRun ? "db purge --dry-run" : "db purge", database: database,
                                      selection: RetentionPolicy.selection, asOf: now) { _ in
                if dryRun {
                    return try RetentionPolicy.apply(ctx, store: try openStore(database, readOnly: true), now: now, dryRun: true)
                }
                switch try WriteAccess.obtain(database: database, role: "db-purge") {
                case .serve(_, let client):
                    // The store's one writer does it, between its batches.
                    try client.send(ServeRequest(op: .purge, sinceMillis: now.millis))
                    client.finishSending()
                    let counts = try client.answer(doing: "purge").counts ?? [:]
                    var summary = PurgeSummary()
                    summary.refusedPayloads = counts["refused_payloads"] ?? 0
                    summary.refusedPayloadBytes = counts["refused_payload_bytes"] ?? 0
                    summary.deviceStatuses = counts["device_statuses"] ?? 0
                    return summary
                case .own(let lock):
                    defer { lock.release() }
                    return try RetentionPolicy.apply(ctx, store: try openStore(database), now: now, dryRun: false)
                }
            }
            let verb = dryRun ? "would drop" : "dropped"
            switch format {
            case .json:
                print("{\"dry_run\":\(dryRun),\"as_of\":\"\(now)\",\"refused_payloads\":{\"rows\":\(summary.refusedPayloads),\"bytes\":\(summary.refusedPayloadBytes)},\"device_statuses\":{\"rows\":\(summary.deviceStatuses)}}")
            case .table, .csv:
                print("\(verb) \(summary.refusedPayloads) refused payloads (\(summary.refusedPayloadBytes) bytes) received before their retention as of \(now)")
                print("\(verb) the last status of \(summary.deviceStatuses) devices that reported it before their retention")
            }
        }
    }
}
