import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// Where the views and the export take a pilot's figures from when not from its rows.
struct SnapshotSources {
    /// Per pilot, the snapshot its figures are computed from.
    var snapshots: [String: PilotSnapshot] = [:]
    /// The pilots whose figures come from a snapshot: those reporting aggregates (with or without
    /// one at or before `T`) and the ended pilots whose raw rows were archived.
    var pilots: Set<String> = []
    /// The archived ones among them.
    var archived: Set<String> = []
}

extension Context {
    /// For each pilot that reports aggregates, its latest day-end snapshot at or before `t`, as
    /// the cluster stored it (validated at intake), and the archives of ended pilots whose raw
    /// rows were purged (used whatever `t`: the rows they replace are gone). A stored payload
    /// that no longer reads is left out (its pilot shows as having none) and said on standard error.
    func snapshotSources(_ store: Store, asOf t: Instant, pilots: [Pilot]? = nil) throws -> SnapshotSources {
        var out = SnapshotSources()
        let chosen = pilots ?? registry.pilots
        let wanted = Set(chosen.map(\.id))
        for archive in try store.archives() where wanted.contains(archive.pilot) {
            do {
                out.snapshots[archive.pilot] = try SnapshotParser.parse(Array(archive.payload.utf8))
                out.pilots.insert(archive.pilot)
                out.archived.insert(archive.pilot)
            } catch {
                printError("pilotwatch: the archive of \(archive.pilot) as of \(archive.asOf) does not read (\(error)); its figures are withheld")
                out.pilots.insert(archive.pilot)
            }
        }
        for pilot in chosen where pilot.site != nil && !out.pilots.contains(pilot.id) {
            out.pilots.insert(pilot.id)
            guard let stored = try store.latestSnapshot(pilot: pilot.id, atOrBefore: t) else { continue }
            do {
                out.snapshots[pilot.id] = try SnapshotParser.parse(Array(stored.payload.utf8))
            } catch {
                printError("pilotwatch: the stored snapshot of \(pilot.id) as of \(stored.asOf) does not read (\(error)); shown as missing")
            }
        }
        return out
    }
}
