import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

/// The seed scenario through `ingest` and through the broker gives the same store.
@Suite("Simulator: ingest and broker agree", .serialized)
struct SimulationEquivalenceTests {
    private func seedWorkspace(port: Int, clientID: String) throws -> Workspace {
        let pilots = try String(contentsOf: packageRoot.appendingPathComponent("seeds/pilots.yaml"), encoding: .utf8)
        return try Workspace(port: port, pilots: pilots, clientID: clientID)
    }

    @Test func sameSeedSameMessagesAndSameStats() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let scenario = packageRoot.appendingPathComponent("seeds/scenario.yaml").path
        let end = Instant(seconds: Date().timeIntervalSince1970 - 3600).description
        let args = ["simulate", "--scenario", scenario, "--seed", "7", "--days", "4", "--end", end]

        // The same seed twice: byte-identical messages.
        let viaIngest = try seedWorkspace(port: broker.port, clientID: "pw-sim-a")
        defer { viaIngest.remove() }
        let first = viaIngest.dir + "/first.ndjson", second = viaIngest.dir + "/second.ndjson"
        #expect(try viaIngest.run(args + ["--dry-run", "--out", first]).status == 0)
        #expect(try viaIngest.run(args + ["--dry-run", "--out", second]).status == 0)
        let a = try Data(contentsOf: URL(fileURLWithPath: first))
        #expect(a.count > 10_000)
        #expect(a == (try Data(contentsOf: URL(fileURLWithPath: second))))

        // Through `ingest`.
        let ingest = try viaIngest.run(["ingest", first, "--format", "json"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let fromFile = try viaIngest.stats()

        // Through the broker, into `serve`.
        let viaBroker = try seedWorkspace(port: broker.port, clientID: "pw-sim-b")
        defer { viaBroker.remove() }
        let serve = try viaBroker.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        let sim = try viaBroker.run(args + ["--port", String(broker.port)])
        #expect(sim.status == 0, "\(sim.stderr)")
        let total = fromFile.accepted + fromFile.duplicate + fromFile.refused + fromFile.statuses
        let fromBroker = try viaBroker.waitFor("\(total) messages through the broker", timeout: 120) {
            $0.accepted + $0.duplicate + $0.refused + $0.statuses >= total
        }
        #expect(fromFile.accepted > 0 && fromFile.refused >= 0)
        #expect(fromBroker.accepted == fromFile.accepted)
        #expect(fromBroker.duplicate == fromFile.duplicate)
        #expect(fromBroker.refused == fromFile.refused)
        #expect(fromBroker.refusedByReason == fromFile.refusedByReason)
        #expect(fromBroker.statuses == fromFile.statuses)
        #expect(fromBroker.observations == fromFile.observations)
        #expect(fromBroker.duplicateObservations == fromFile.duplicateObservations)
        let strip = { (s: StoreStats) in s.pilots.map { "\($0.pilot) \($0.observations) \($0.subjects) \($0.devices) \(String(describing: $0.lastObservationAt))" }.sorted() }
        #expect(strip(fromBroker) == strip(fromFile))
    }
}
