import Foundation
import PilotwatchCore
import TestSupport
import Testing

// The invariant of federation.md end to end over MQTT on the seed scenario: a seed pilot's
// devices simulated into a site instance, whose serve sends every day end since the pilot's
// start (min_cell 0) to the cluster's broker; at three day ends the cluster's status, pilot view
// and export of that pilot equal the site's own, from its rows.

private let pilotID = "card-hf-nurse-14"
private let siteID = "seed-site"

@Suite("Federation on the seed scenario: at min_cell 0 the cluster prints the site's figures")
struct FederationSeedTests {
    @Test func atMinCellZeroEveryViewOfTheClusterIsTheSitesOwnAtEachDayEnd() throws {
        let clusterBroker = try TestBroker.start(persistence: true)
        defer { clusterBroker.stop() }
        let siteBroker = try TestBroker.start()
        defer { siteBroker.stop() }
        let seeds = try String(contentsOf: packageRoot.appendingPathComponent("seeds/pilots.yaml"), encoding: .utf8)
        // The cluster's registry: the same, the pilot reporting aggregates from the site.
        let entry = "  - id: \(pilotID)\n"
        let start = try #require(seeds.range(of: entry))
        let outcomes = try #require(seeds.range(of: "    outcomes:", range: start.upperBound..<seeds.endIndex))
        let lineEnd = seeds[outcomes.upperBound...].firstIndex(of: "\n") ?? seeds.endIndex
        var clusterPilots = seeds
        clusterPilots.insert(contentsOf: "\n    reporting: aggregates\n    site: \(siteID)", at: lineEnd)
        let cluster = try Workspace(port: clusterBroker.port, pilots: clusterPilots)
        defer { cluster.remove() }
        let site = try Workspace(port: siteBroker.port, pilots: seeds, clientID: "seed-site-serve")
        defer { site.remove() }
        try (try String(contentsOfFile: site.config, encoding: .utf8) + """

        federation:
          cluster: {host: 127.0.0.1, port: \(clusterBroker.port), username: \(siteID)}
          site_id: \(siteID)
          pilots: [\(pilotID)]
          grace: 0
          min_cell: 0

        """).write(toFile: site.config, atomically: true, encoding: .utf8)

        // The seed scenario's messages of the pilot up to yesterday's end, into the site's store.
        let yesterday = Instant(seconds: Date().timeIntervalSince1970).day.advanced(by: -1)
        let end = yesterday.advanced(by: 1).start.adding(millis: -1)
        let file = site.dir + "/seed.ndjson"
        let simulated = try site.run(["simulate", "--scenario", packageRoot.appendingPathComponent("seeds/scenario.yaml").path,
                                      "--dry-run", "--out", file, "--pilot", pilotID, "--seed", "1", "--end", end.description])
        #expect(simulated.status == 0, "\(simulated.stderr)")
        let imported = try site.run(["ingest", file])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try site.stats().accepted > 1_000, "the scenario gives the pilot data")

        let clusterServe = try cluster.startServe(port: clusterBroker.port, extra: ["--apply-delay", "0"])
        defer { clusterServe.terminate() }
        try clusterServe.waitUntilSubscribed()
        let siteServe = try site.startServe(port: siteBroker.port, extra: ["--federate-every", "1", "--federate-settle", "0.5"])
        defer { siteServe.terminate() }
        try siteServe.waitForLog("snapshot(s) acknowledged by the cluster's broker", timeout: 120)
        let pilotStart = try #require(Day(parsing: "2026-04-01"))
        let days = pilotStart.distance(to: yesterday) + 1
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let held = try? cluster.run(["snapshots", "--pilot", pilotID, "--format", "json"]).stdout
            if let held, held.contains("\"day_ends\":\(days)") || held.contains("\"day_ends\": \(days)") { break }
            Thread.sleep(forTimeInterval: 0.5)
        }

        func json(_ ws: Workspace, _ args: [String], at t: Instant) throws -> Any {
            let r = try ws.run(args + ["--as-of", t.description, "--format", "json"])
            guard r.status == 0 else { throw TestFailure("\(args): \(r.stderr)") }
            return try jsonValue(r.stdout)
        }
        for back in [0, 7, 45] {
            let t = yesterday.advanced(by: -back).advanced(by: 1).start.adding(millis: -1)
            let status = jsonDifference(try json(cluster, ["status"], at: t), try json(site, ["status"], at: t), dropping: ["snapshot"])
            #expect(status == nil, "status at \(t): \(status ?? "")")
            // The pilot view: devices and subject lists stay at the site (counts at the cluster).
            let view = jsonDifference(try json(cluster, ["pilot", pilotID], at: t), try json(site, ["pilot", pilotID], at: t),
                                      dropping: ["snapshot", "devices", "quality", "unenrolled"])
            #expect(view == nil, "pilot at \(t): \(view ?? "")")
            let export = jsonDifference(try json(cluster, ["export", "--pilot", pilotID], at: t),
                                        try json(site, ["export", "--pilot", pilotID], at: t),
                                        dropping: ["source", "provenance", "methods"])
            #expect(export == nil, "export at \(t): \(export ?? "")")
        }
        // Not one pseudonym of the site in a file of the cluster.
        let subjects = try String(contentsOfFile: file, encoding: .utf8)
            .components(separatedBy: "\"subject\":\"").dropFirst().compactMap { $0.split(separator: "\"").first.map(String.init) }
        let sample = Array(Set(subjects)).sorted().prefix(40)
        #expect(!sample.isEmpty)
        #expect(try filesHolding(Array(sample), under: cluster.dir) == [])
    }
}
