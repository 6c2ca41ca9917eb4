import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

// The invariant of federation.md at `min_cell: 11`, end to end over MQTT: a site's serve sends
// its day ends through the cluster's broker to the cluster's serve, and for each of the last
// three day ends every figure the cluster prints in `status` and `pilot` (JSON) for the pilot
// equals the site's raw figure, or equals the cluster's own figure at an earlier day end and is
// marked held since then, or is withheld where the rules say.

@Suite("Federation at min_cell 11 over MQTT: the cluster prints the site's figures, held or withheld by the rules", .serialized)
struct FederationDisclosureTests {
    @Test func eachFigureIsTheRawOneOrHeldOrWithheldByTheRules() throws {
        let pair = try FederatedPair(days: 10, minCell: 11)
        defer { pair.remove() }
        let d3 = pair.yesterday, d2 = d3.advanced(by: -1), d1 = d3.advanced(by: -2)
        // 30 subjects from the pilot's first day, weighed daily; 3 more enrolled on d2 (a
        // difference that would name them), 9 more on d3 (12 since the last published value).
        // Two hospitalisations: a count of 1-10.
        var lines: [String] = []
        func subject(_ code: String, from day: Day, weight: Double, device: String) {
            var list = [obs(code, "enrolled", at: day.start.adding(days: 0.25).description)]
            for d in 0...day.distance(to: d3) {
                list.append(obs(code, "weight", weight - Double(d) / 20, unit: "kg", at: day.advanced(by: d).start.adding(days: 0.375).description))
            }
            if ["p-base-1000", "p-base-1001"].contains(code) {
                list.append(obs(code, "hospitalisation", at: day.advanced(by: 2).start.adding(days: 0.5).description))
            }
            lines.append(#"{"topic":"pilots/\#(pair.pilotID)/\#(device)/obs","payload":"# + obsMessage("m-\(code)", list) + "}")
        }
        for i in 0..<30 { subject("p-base-\(1000 + i)", from: pair.start, weight: 70 + Double(i), device: "dev-b\(i)") }
        for i in 0..<3 { subject("p-late-\(1000 + i)", from: d2, weight: 90 + Double(i), device: "dev-l\(i)") }
        for i in 0..<9 { subject("p-last-\(1000 + i)", from: d3, weight: 95 + Double(i), device: "dev-n\(i)") }
        try pair.ingestAtSite(lines)

        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }
        let siteServe = try pair.startSiteServe()
        defer { siteServe.terminate() }
        let days = pair.days(through: d3)
        pair.expectEachDayEndOnce(try pair.waitForCluster("\(days.count) day ends") { $0.count >= days.count }, days)

        func end(_ d: Day) -> Instant { d.advanced(by: 1).start.adding(millis: -1) }
        func json(_ ws: Workspace, _ args: [String], _ d: Day) throws -> [String: Any] {
            let r = try ws.run(args + ["--as-of", end(d).description, "--format", "json"])
            guard r.status == 0 else { throw TestFailure("\(args) --as-of \(d): \(r.stderr)") }
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        }
        func statusRow(_ ws: Workspace, _ d: Day) throws -> [String: Any] {
            try #require((try json(ws, ["status"], d)["pilots"] as? [[String: Any]])?.first { $0["pilot"] as? String == pair.pilotID })
        }
        func pilotView(_ ws: Workspace, _ d: Day) throws -> [String: Any] { try json(ws, ["pilot", pair.pilotID], d) }

        // Each figure: the raw one; or held, with the value the cluster printed at the day end it
        // is held since; or {lt: 11} where the raw count is 1-10; or withheld (null) where the
        // test names the rule. Returns what each key was.
        func check(_ a: [String: Any], _ raw: [String: Any], keys: [String], at d: Day, withheld: Set<String>,
                   earlier: (Instant) throws -> [String: Any], _ what: String) throws -> [String: String] {
            var kinds: [String: String] = [:]
            for key in keys {
                let x = a[key], y = raw[key]
                if let mark = x as? [String: Any], let since = (mark["held_since"] as? String).flatMap(RFC3339.parse) {
                    #expect(since < end(d), "\(what) \(key) at \(d) held since \(since)")
                    let before = try earlier(since)
                    #expect(same(mark["value"], before[key]), "\(what) \(key) at \(d): held \(String(describing: mark["value"])), printed \(String(describing: before[key])) at \(since)")
                    kinds[key] = "held"
                } else if let mark = x as? [String: Any], let k = mark["lt"] as? Int {
                    #expect(k == 11 && ((y as? Int).map { (0..<11).contains($0) } ?? false), "\(what) \(key) at \(d): <\(k), raw \(String(describing: y))")
                    kinds[key] = "lt"
                } else if x == nil || x is NSNull, !(y == nil || y is NSNull) {
                    #expect(withheld.contains(key), "\(what) \(key) at \(d) withheld; raw \(String(describing: y))")
                    kinds[key] = "withheld"
                } else {
                    #expect(same(x, y), "\(what) \(key) at \(d): cluster \(String(describing: x)), site \(String(describing: y))")
                    kinds[key] = "raw"
                }
            }
            return kinds
        }

        let statusKeys = ["enrolled", "withdrawn", "in_follow_up", "enrolment_target", "enrolment_pct", "enrolment_rate_30d",
                          "projected_target_date", "on_track", "active_7d", "transmission_adherence", "unenrolled_subjects",
                          "last_observation_at", "messages_7d", "refusals_7d"]
        var statusKinds: [Day: [String: String]] = [:]
        var outcomeKinds: [Day: [String: String]] = [:]
        var eventKinds: [Day: [String: String]] = [:]
        for d in [d1, d2, d3] {
            let a = try statusRow(pair.cluster, d), b = try statusRow(pair.site, d)
            // Figures computed from a held one carry no value of their own (enrolled: the share,
            // the projection, on-track; in follow-up: adherence).
            let derived: Set<String> = ["enrolment_pct", "projected_target_date", "on_track", "transmission_adherence"]
            statusKinds[d] = try check(a, b, keys: statusKeys, at: d, withheld: derived,
                                       earlier: { try statusRow(pair.cluster, $0.day) }, "status")
            // last_observation_at leaves rounded down to the hour.
            #expect(a["last_observation_at"] as? String == (b["last_observation_at"] as? String).map { String($0.prefix(13)) + ":00:00Z" },
                    "\(String(describing: a["last_observation_at"])) \(String(describing: b["last_observation_at"]))")

            let va = try pilotView(pair.cluster, d), vb = try pilotView(pair.site, d)
            let oa = try #require((va["outcomes"] as? [[String: Any]])?.first), ob = try #require((vb["outcomes"] as? [[String: Any]])?.first)
            outcomeKinds[d] = try check(oa, ob, keys: ["n_paired", "mean_baseline", "mean_latest", "mean_change", "change_ci95", "pct_in_target", "improved_pct"],
                                        at: d, withheld: ["mean_baseline", "mean_latest", "mean_change", "change_ci95", "pct_in_target", "improved_pct"],
                                        earlier: { try #require((try pilotView(pair.cluster, $0.day)["outcomes"] as? [[String: Any]])?.first) }, "weight")
            let ea = try #require((va["events"] as? [[String: Any]])?.first), eb = try #require((vb["events"] as? [[String: Any]])?.first)
            eventKinds[d] = try check(ea, eb, keys: ["events", "patient_days", "rate_per_100_patient_months"], at: d,
                                      withheld: ["rate_per_100_patient_months"],
                                      earlier: { try #require((try pilotView(pair.cluster, $0.day)["events"] as? [[String: Any]])?.first) }, "hospitalisation")
        }

        // Where the rules put them: on d2 the 3 newcomers would show by difference, so the
        // counts that include them are held since d1 (one identity: enrolled, in follow-up), and
        // so are patient-days; on d3, 12 subjects have changed since: the raw figures leave.
        // withdrawn (0) goes with enrolled and in follow-up (enrolled = withdrawn + in follow-up),
        // the rate of the last 30 days with enrolled; the week's actives are the newcomers too.
        for key in ["enrolled", "in_follow_up", "withdrawn", "enrolment_rate_30d", "active_7d"] {
            #expect(statusKinds[d1]?[key] == "raw" && statusKinds[d2]?[key] == "held" && statusKinds[d3]?[key] == "raw",
                    "\(key): \(statusKinds.mapValues { $0[key] ?? "" })")
        }
        #expect(statusKinds.values.allSatisfy { $0["unenrolled_subjects"] == "raw" && $0["messages_7d"] == "raw" })
        // The weights of the 30 change every day: the outcome's sums leave each day end.
        #expect(outcomeKinds.values.allSatisfy { $0.values.allSatisfy { $0 == "raw" } }, "\(outcomeKinds)")
        #expect(statusKinds[d2]?["enrolment_pct"] == "withheld" && statusKinds[d3]?["enrolment_pct"] == "raw")
        #expect(eventKinds.values.allSatisfy { $0["events"] == "lt" && $0["rate_per_100_patient_months"] == "withheld" }, "\(eventKinds)")
        #expect(eventKinds[d2]?["patient_days"] == "held" && eventKinds[d3]?["patient_days"] == "raw", "\(eventKinds)")
        // The table says so too: the count as <11, held patient-days with *.
        let table = try pair.cluster.run(["pilot", pair.pilotID, "--as-of", end(d2).description])
        let row = table.stdout.split(separator: "\n").first { $0.contains("hospitalisation") && $0.contains("<11") }
        #expect(row?.contains("*") == true, "\(table.stdout)")
        // Nothing the cluster holds says 33, the enrolled count of d2.
        let d2Snapshot = try #require(try pair.clusterSnapshots().first { $0.asOf.day == d2 })
        #expect(!d2Snapshot.payload.contains(":33,") && !d2Snapshot.payload.contains(":33}"), "\(d2Snapshot.payload)")
        #expect(try filesHolding(["p-base-10", "p-late-", "dev-b1"], under: pair.cluster.dir) == [])
    }
}

/// Two JSON values as the views print them: numbers within 1e-9 (relative), else equal.
private func same(_ a: Any?, _ b: Any?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (is NSNull, is NSNull), (nil, is NSNull), (is NSNull, nil): return true
    case let (x as NSNumber, y as NSNumber) where !(x is Bool) || !(y is Bool):
        let u = x.doubleValue, v = y.doubleValue
        return abs(u - v) <= 1e-9 * max(1, abs(u), abs(v))
    case let (x as [Any], y as [Any]): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
    default: return String(describing: a) == String(describing: b)
    }
}
