import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// The retention policy applied to a store: what `db purge` does by hand and `serve` daily.
enum RetentionPolicy {
    /// What a purge selects, as its audit record says.
    static let selection = "refused payloads and device statuses received before their pilot's retention, raw rows of pilots ended longer ago than theirs"

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
        summary.endedPilots = try endedPilots(ctx, store: store, now: now, dryRun: dryRun)
        return summary
    }

    /// The pilots (reporting observations) whose end date is more than their
    /// `ended_pilot_raw_days` before `now`: each one's final figures are archived first (its
    /// day-end snapshot at its end date, every figure exact), then its raw rows are removed
    /// (``Store/removeRawRows(pilot:dryRun:)``). An archive already held is kept (it was taken
    /// with every row there), so a purge stopped between the two steps finishes the next time.
    static func endedPilots(_ ctx: Context, store: Store, now: Instant, dryRun: Bool) throws -> [EndedPilotPurge] {
        let archived = Dictionary(try store.archives().map { ($0.pilot, $0.asOf) }, uniquingKeysWith: { a, _ in a })
        var out: [EndedPilotPurge] = []
        for pilot in ctx.registry.pilots where pilot.site == nil {
            let days = pilot.retention.applied(to: ctx.service.retention).endedPilotRawDays
            guard pilot.end.advanced(by: days) < now.day else { continue }
            let pending = try store.removeRawRows(pilot: pilot.id, dryRun: true)
            guard !pending.isEmpty else { continue }
            let end = pilot.end.advanced(by: 1).start.adding(millis: -1)
            if dryRun {
                out.append(EndedPilotPurge(pilot: pilot.id, rows: pending.rows, bytes: pending.bytes, archivedAsOf: archived[pilot.id] ?? end))
                continue
            }
            if archived[pilot.id] == nil {
                let snapshot = try SnapshotBuilder.build(store: store, pilot: pilot, catalogue: ctx.catalogue, day: pilot.end,
                                                         revision: now.millis, msgID: PilotSnapshot.archiveMsgIDPrefix + pilot.id,
                                                         thresholds: ctx.service.alerts.thresholds)
                try store.saveArchive(PilotArchive(pilot: pilot.id, asOf: snapshot.asOf, archivedAt: now, payload: snapshot.json()))
            }
            let removed = try store.removeRawRows(pilot: pilot.id)
            out.append(EndedPilotPurge(pilot: pilot.id, rows: removed.rows, bytes: removed.bytes, archivedAsOf: archived[pilot.id] ?? end))
        }
        return out
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
            retention.device_status_days ago (90); their counters and last-heard times stay. And the raw rows \
            (subjects, observations, events, messages, devices, refusals) of each pilot that ended more \
            than retention.ended_pilot_raw_days ago (365): its final figures, as of its end date, are \
            archived first, and `status`, `pilot` and `export` show it from the archive (marked). The deletion overwrites \
            what it frees with zeros (SQLite's secure_delete), rewrites the file (VACUUM) when \
            payloads went, and empties the write-ahead log afterwards, so the bytes are gone from \
            the files, not only from the tables.

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
                    // Per ended pilot: `ended_pilot_rows:{id}` and `ended_pilot_bytes:{id}`.
                    let prefix = "ended_pilot_rows:"
                    for (key, rows) in counts where key.hasPrefix(prefix) {
                        let id = String(key.dropFirst(prefix.count))
                        let end = ctx.registry.pilot(id).map { $0.end.advanced(by: 1).start.adding(millis: -1) } ?? now
                        summary.endedPilots.append(EndedPilotPurge(pilot: id, rows: rows, bytes: counts["ended_pilot_bytes:" + id] ?? 0, archivedAsOf: end))
                    }
                    summary.endedPilots.sort { $0.pilot < $1.pilot }
                    return summary
                case .own(let lock):
                    defer { lock.release() }
                    return try RetentionPolicy.apply(ctx, store: try openStore(database), now: now, dryRun: false)
                }
            }
            let verb = dryRun ? "would drop" : "dropped"
            switch format {
            case .json:
                var w = JSONWriter(pretty: false)
                w.object { o in
                    o.field("dry_run", dryRun)
                    o.field("as_of", now.description)
                    o.objectField("refused_payloads") { $0.field("rows", summary.refusedPayloads); $0.field("bytes", summary.refusedPayloadBytes) }
                    o.objectField("device_statuses") { $0.field("rows", summary.deviceStatuses) }
                    o.arrayField("ended_pilots") { a in
                        for e in summary.endedPilots {
                            a.object { p in
                                p.field("pilot", e.pilot)
                                p.field("rows", e.rows)
                                p.field("bytes", e.bytes)
                                p.field("archived_as_of", e.archivedAsOf.description)
                            }
                        }
                    }
                }
                print(w.text)
            case .table, .csv:
                print("\(verb) \(summary.refusedPayloads) refused payloads (\(summary.refusedPayloadBytes) bytes) received before their retention as of \(now)")
                print("\(verb) the last status of \(summary.deviceStatuses) devices that reported it before their retention")
                for e in summary.endedPilots {
                    print("\(verb) the raw rows of ended pilot \(e.pilot): \(e.rows) rows (\(e.bytes) bytes); its final figures \(dryRun ? "would be" : "are") archived as of \(e.archivedAsOf)")
                }
            }
        }
    }
}
