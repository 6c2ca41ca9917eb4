import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

extension Context {
    /// For each pilot that reports aggregates, its latest day-end snapshot at or before `t`, as
    /// the cluster stored it (validated at intake). A stored payload that no longer reads is
    /// left out (its pilot shows as having no snapshot) and said on standard error.
    func aggregateSnapshots(_ store: Store, asOf t: Instant, pilots: [Pilot]? = nil) throws -> [String: PilotSnapshot] {
        var out: [String: PilotSnapshot] = [:]
        for pilot in pilots ?? registry.pilots where pilot.site != nil {
            guard let stored = try store.latestSnapshot(pilot: pilot.id, atOrBefore: t) else { continue }
            do {
                out[pilot.id] = try SnapshotParser.parse(Array(stored.payload.utf8))
            } catch {
                printError("pilotwatch: the stored snapshot of \(pilot.id) as of \(stored.asOf) does not read (\(error)); shown as missing")
            }
        }
        return out
    }
}
