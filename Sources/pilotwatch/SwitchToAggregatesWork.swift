import Foundation
import Logging
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// The store's side of switching a pilot to aggregates (federation.md, "Schedule, delivery and
/// history"), done by whoever writes the store: `pilots switch-to-aggregates` itself, or `serve`
/// on its applier's thread.
enum SwitchToAggregatesWork {
    /// Why a pilot cannot be switched yet: the registry must say `reporting: aggregates` first,
    /// so that the pilot's observations arriving afterwards are refused (`aggregate_pilot`, hash
    /// only) rather than stored again.
    static func registryProblem(_ registry: Registry, registryPath: String, pilot: String) -> String? {
        guard let entry = registry.pilot(pilot) else {
            let known = registry.pilots.map(\.id).sorted()
            return "pilot \(pilot) is not in the registry \(registryPath) (pilots: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        }
        guard entry.site == nil else { return nil }
        return "the registry \(registryPath) says pilot \(pilot) reports observations; give its entry `reporting: aggregates` and `site: {site_id}` first (its devices' messages are then refused, hash only), check it with `pilotwatch config check`, then run this again"
    }

    /// `serve`'s part: reloads the registry (refusing unless it marks the pilot as reporting
    /// aggregates), makes its validator refuse the pilot's observations from now on, then removes
    /// the raw rows between two batches, on the applier's thread (the inbox's only scrubber).
    static func handedOver(pilot: String, ctx: Context, store: Store, validator: Mutex<ContractValidator>,
                           applier: InboxApplier, logger: Logger) throws -> ServeReply {
        if let problem = registryProblem(ctx.registry, registryPath: ctx.service.registryPath, pilot: pilot) {
            return .failure(problem)
        }
        let current = ContractValidator(registry: ctx.registry, catalogue: ctx.catalogue,
                                        topicRoot: validator.withLock { $0.topicRoot }, snapshots: SnapshotIntake())
        validator.withLock { $0 = current }
        // A batch validated before the switch is validated again after it (the applier re-reads
        // what follows work handed over), so the pilot's records still waiting are refused.
        let removal = try applier.perform { try store.removeRawRows(pilot: pilot) }
        logger.notice("switch to aggregates handed over: \(pilot)'s raw rows removed (\(removal.rows) rows, \(removal.bytes) bytes, \(removal.inboxRecords) inbox records); the registry reloaded, its observations are refused from now on")
        return ServeReply(ok: true, removal: removal)
    }

    /// A command's part when it holds the writer lock: what the inbox holds goes into SQLite
    /// first (the pilot's records refused by the registry as it stands, so overwritten), then
    /// the rows go.
    static func own(_ ctx: Context, database: String, pilot: String, log: @escaping @Sendable (String) -> Void) throws -> RawRowsRemoval {
        let store = try openStore(database)
        let validator = ctx.validator
        let applied = try StoreWork.applyInbox(database: database, store: store, validator: { validator }, log: log)
        if applied > 0 { log("applied \(applied) bytes of the inbox first") }
        return try store.removeRawRows(pilot: pilot)
    }

    /// The pilots the registry marks `reporting: aggregates` whose raw rows are still in the
    /// store at `database`, with how many; empty when there is no store yet.
    static func leftovers(_ ctx: Context, database: String) throws -> [(pilot: String, rows: Int)] {
        let aggregate = ctx.registry.pilots.filter { $0.site != nil }.map(\.id)
        guard !aggregate.isEmpty, FileManager.default.fileExists(atPath: database) else { return [] }
        let store = try openStore(database, readOnly: true)
        return try aggregate.compactMap { pilot in
            let rows = try store.rawRowCount(pilot: pilot)
            return rows > 0 ? (pilot, rows) : nil
        }
    }
}
