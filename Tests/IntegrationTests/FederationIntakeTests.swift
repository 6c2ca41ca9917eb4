import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore
import TestSupport
import Testing

// The cluster's intake of site snapshots (contract 1.1, federation.md) over a real broker and
// serve: a valid snapshot of an aggregate pilot from its site is stored, a resend is a
// duplicate, a higher revision replaces it; hostile snapshots are refused with the contract's
// reason and change nothing; observations for an aggregate pilot are refused as
// `aggregate_pilot` and their subject appears in no file of the cluster.

let aggregatePilotEntry = """
  - id: card-hf-agg-04
    name: Heart failure at home, reported by its site
    programme: cardiac
    lead: CHU Lille
    call: dhcdm-2026
    funders: [region-hdf]
    start: 2026-03-01
    end: 2027-08-31
    enrolment_target: 80
    milestones: [{date: 2026-09-30, enrolled: 40}]
    outcomes: [weight, hospitalisation]
    reporting: aggregates
    site: chu-lille
"""

/// A workspace whose registry has the three default pilots and `card-hf-agg-04`, reported by
/// the site `chu-lille`; and snapshots of that pilot as the site would build them.
struct FederationFixture {
    let ws: Workspace
    let pilot: Pilot
    let catalogue: Catalogue
    let siteStore: Store
    /// Yesterday (UTC): the day end the snapshots describe.
    let day = Instant(seconds: Date().timeIntervalSince1970).day.advanced(by: -1)

    init(port: Int) throws {
        ws = try Workspace(port: port, pilots: Workspace.defaultPilots + "\n" + aggregatePilotEntry)
        let catalogueText = try String(contentsOfFile: ws.dir + "/indicators.yaml", encoding: .utf8)
        catalogue = try #require(ConfigParser.catalogue(yaml: catalogueText, file: "indicators.yaml").0)
        let registryText = try String(contentsOfFile: ws.dir + "/pilots.yaml", encoding: .utf8)
        let registry = try #require(ConfigParser.registry(yaml: registryText, file: "pilots.yaml", catalogue: catalogue).0)
        pilot = try #require(registry.pilot("card-hf-agg-04"))
        // The site's own store, outside the cluster's folder (empty: the figures do not matter
        // here, the checks do).
        try FileManager.default.createDirectory(atPath: ws.dir + "-site", withIntermediateDirectories: true)
        siteStore = try Store(path: ws.dir + "-site/site.sqlite")
    }

    func remove() {
        ws.remove()
        try? FileManager.default.removeItem(atPath: ws.dir + "-site")
    }

    func snapshot(revision: Int64, _ change: (inout PilotSnapshot) -> Void = { _ in }) throws -> String {
        var s = try SnapshotBuilder.build(store: siteStore, pilot: pilot, catalogue: catalogue, day: day,
                                          revision: revision, msgID: "chu-lille-\(day)-r\(revision)")
        change(&s)
        return s.json()
    }

    func snapshots() throws -> [StoredSnapshot] {
        guard FileManager.default.fileExists(atPath: ws.db) else { return [] }
        var options = StoreOptions()
        options.readOnly = true
        return try Store(path: ws.db, options: options).snapshots()
    }

    func waitForSnapshots(_ what: String, timeout: Double = 60, _ done: ([StoredSnapshot]) -> Bool) throws -> [StoredSnapshot] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [StoredSnapshot] = []
        while Date() < deadline {
            if let s = try? snapshots() {
                last = s
                if done(s) { return s }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let rejects = (try? ws.run(["rejects"]).stdout) ?? ""
        throw TestFailure("timed out waiting for \(what); snapshots: \(last.map { ($0.pilot, $0.revision) }); quarantine:\n\(rejects)")
    }
}

/// The retained message on `topic`, or nil when there is none within 2 s. (`mosquitto_sub -W`
/// cannot be relied on: a child of Foundation's `Process` inherits blocked signals, so it is
/// stopped with SIGKILL.)
func retained(port: Int, topic: String) throws -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_sub")
    p.arguments = ["-h", "127.0.0.1", "-p", String(port), "-t", topic, "-C", "1", "-i", "sub-" + UUID().uuidString.prefix(8)]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let pid = p.processIdentifier
    let stop = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + 2, execute: stop)
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    stop.cancel()
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return p.terminationStatus == 0 && !text.isEmpty ? text : nil
}

/// Waits until the retained message on `topic` satisfies `done`; returns it.
func waitForRetained(port: Int, topic: String, timeout: Double = 30, _ done: (String) -> Bool) throws -> String {
    let deadline = Date().addingTimeInterval(timeout)
    var last: String?
    while Date() < deadline {
        last = try retained(port: port, topic: topic)
        if let last, done(last) { return last }
        Thread.sleep(forTimeInterval: 0.2)
    }
    throw TestFailure("timed out waiting for the retained message on \(topic); last: \(last ?? "none")")
}

extension ServeProcess {
    /// Waits until serve has subscribed to the snapshot topics too.
    func waitUntilSubscribedToSnapshots(timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logText.contains("pilots/+/+/agg") && logText.contains("MQTT subscribed") { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("serve did not subscribe to pilots/+/+/agg within \(timeout)s:\n\(logText)")
    }
}

@Suite("Federation: the cluster's intake of site snapshots", .serialized)
struct FederationIntakeTests {
    @Test func snapshotsAreStoredByRevisionAndHostileOnesChangeNothing() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let f = try FederationFixture(port: broker.port)
        defer { f.remove() }
        let serve = try f.ws.startServe(port: broker.port, extra: ["--apply-delay", "0"])
        defer { serve.terminate() }
        try serve.waitUntilSubscribedToSnapshots()
        let topic = "pilots/card-hf-agg-04/chu-lille/agg"

        // A valid snapshot is stored, as received.
        let first = try f.snapshot(revision: 1_000)
        try publish(port: broker.port, topic: topic, message: first)
        let stored = try f.waitForSnapshots("the first snapshot") { $0.count == 1 }
        #expect(stored[0].pilot == "card-hf-agg-04" && stored[0].site == "chu-lille" && stored[0].revision == 1_000)
        #expect(stored[0].asOf == f.day.advanced(by: 1).start.adding(millis: -1))
        #expect(stored[0].payload == first && stored[0].sha256 == SHA256.hex(Array(first.utf8)))

        // A resend and an older revision are duplicates: acknowledged, not stored again.
        try publish(port: broker.port, topic: topic, message: first)
        try publish(port: broker.port, topic: topic, message: try f.snapshot(revision: 500))
        // A device-shaped topic (a device account cannot publish there; the cluster refuses it anyway).
        try publish(port: broker.port, topic: "pilots/card-hf-agg-04/scale-0001/agg", message: first)
        try f.ws.waitFor("the unknown_site refusal") { $0.refused >= 1 }
        #expect(try f.snapshots() == stored, "the duplicates changed nothing")

        // A higher revision replaces the day end.
        let second = try f.snapshot(revision: 2_000)
        try publish(port: broker.port, topic: topic, message: second)
        let replaced = try f.waitForSnapshots("the second revision") { $0.first?.revision == 2_000 }
        #expect(replaced.count == 1 && replaced[0].payload == second)

        // Hostile snapshots: each refused with its reason; nothing stored changes.
        let hostile: [(String, String, ReasonCode, String)] = [
            ("pilots/card-hf-agg-04/other-site/agg", try f.snapshot(revision: 3_000), .unknownSite,
             "site \"other-site\" is not the site of pilot card-hf-agg-04"),
            ("pilots/card-hf-idf-03/chu-lille/agg", try f.snapshot(revision: 3_000), .pilotMismatch, "reports observations"),
            (topic, try f.snapshot(revision: 3_000) { $0.registry.enrolmentTarget = 100 }, .registryMismatch,
             "registry.enrolment_target: 100 is not the cluster's 80"),
            (topic, try f.snapshot(revision: 3_000) { $0.registry.outcomes[0].unit = "[lb_av]" }, .registryMismatch,
             "registry.outcomes[0] (weight).unit"),
            (topic, try f.snapshot(revision: 3_000) { $0.enrolment.inFollowUp = .value(3) }, .schema, "in_follow_up"),
            (topic, try f.snapshot(revision: 3_000).replacingOccurrences(of: "\"active_7d\":0", with: "\"active_7d\":1e999"),
             .schema, "active_7d"),
            (topic, "{\"extra_figure\":1," + String(try f.snapshot(revision: 3_000).dropFirst()), .schema,
             "extra_figure: is not a field of a snapshot"),
            // A field that suggests a person: identifying data wins, kept as hash only.
            (topic, "{\"patients\":[]," + String(try f.snapshot(revision: 3_000).dropFirst()), .identifyingData, "patients"),
        ]
        for (t, payload, _, _) in hostile { try publish(port: broker.port, topic: t, message: payload) }
        let stats = try f.ws.waitFor("\(hostile.count + 1) refusals") { $0.refused >= hostile.count + 1 }
        #expect(stats.refusedByReason[.unknownSite] == 2 && stats.refusedByReason[.pilotMismatch] == 1)
        #expect(stats.refusedByReason[.registryMismatch] == 2 && stats.refusedByReason[.schema] == 3, "\(stats.refusedByReason)")
        #expect(stats.refusedByReason[.identifyingData] == 1)
        #expect(stats.accepted == 0 && stats.observations == 0)
        #expect(try f.snapshots() == replaced, "no hostile snapshot changed what is held")

        let rejects = try f.ws.run(["rejects", "--format", "json", "--limit", "100"])
        #expect(rejects.status == 0, "\(rejects.stderr)")
        let rows = try #require(JSONSerialization.jsonObject(with: Data(rejects.stdout.utf8)) as? [[String: Any]])
        for (t, _, reason, detail) in hostile {
            #expect(rows.contains { $0["topic"] as? String == t && $0["reason"] as? String == reason.rawValue
                        && ($0["detail"] as? String)?.contains(detail) == true },
                    "\(reason.rawValue) naming \(detail): \(rows.map { ($0["reason"] ?? "", $0["detail"] ?? "") })")
        }

        // The site's retained status names its last accepted snapshot and its last refusal.
        let status = try waitForRetained(port: broker.port, topic: "pilots/_cluster/sites/chu-lille/status") {
            $0.contains("\"reason\":\"identifying_data\"")
        }
        let object = try #require(JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])
        #expect(object["site"] as? String == "chu-lille")
        let accepted = try #require((object["pilots"] as? [[String: Any]])?.first)
        #expect(accepted["pilot"] as? String == "card-hf-agg-04" && accepted["revision"] as? Int == 2_000, "\(status)")
        #expect(accepted["as_of"] as? String == f.day.advanced(by: 1).start.adding(millis: -1).description)
        let refusal = try #require(object["last_refusal"] as? [String: Any])
        #expect(refusal["pilot"] as? String == "card-hf-agg-04" && (refusal["detail"] as? String)?.contains("patients") == true)
        // No status for a site the registry does not name.
        #expect(try retained(port: broker.port, topic: "pilots/_cluster/sites/other-site/status") == nil)

        // `pilotwatch snapshots`: what the cluster holds, per pilot and per day end; audited.
        let table = try f.ws.run(["snapshots"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("card-hf-agg-04") && table.stdout.contains("chu-lille") && table.stdout.contains("2000")
                    && table.stdout.contains(f.day.description), "\(table.stdout)")
        let json = try f.ws.run(["snapshots", "--format", "json"])
        let summary = try #require(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let pilots = try #require(summary["pilots"] as? [[String: Any]])
        #expect(pilots.count == 1 && pilots[0]["revision"] as? Int == 2_000 && pilots[0]["day_ends"] as? Int == 1, "\(pilots)")
        #expect(pilots[0]["latest_as_of"] as? String == f.day.advanced(by: 1).start.adding(millis: -1).description)
        let one = try f.ws.run(["snapshots", "--pilot", "card-hf-agg-04", "--format", "json"])
        let detail = try #require(JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
        let list = try #require(detail["snapshots"] as? [[String: Any]])
        #expect(list.count == 1 && list[0]["sha256"] as? String == SHA256.hex(Array(second.utf8)), "\(list)")
        let unknown = try f.ws.run(["snapshots", "--pilot", "nope"])
        #expect(unknown.status == 64 && unknown.stderr.contains("pilots that report aggregates: card-hf-agg-04"), "\(unknown.stderr)")
        let trail = try String(contentsOfFile: f.ws.db + ".audit", encoding: .utf8)
        #expect(trail.contains("\"command\":\"snapshots\""), "the view is audited like every view of the store")
        let help = try f.ws.run(["snapshots", "--help"], addConfig: false)
        #expect(help.status == 0 && help.stdout.contains("reporting: aggregates") && help.stdout.contains("Examples:"))
    }

    @Test func observationsForAnAggregatePilotLeaveNoTraceOfTheirSubject() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let f = try FederationFixture(port: broker.port)
        defer { f.remove() }
        let serve = try f.ws.startServe(port: broker.port, extra: ["--apply-delay", "0"])
        try serve.waitUntilSubscribedToSnapshots()
        let subject = "p-misrouted-7c41"
        try publish(port: broker.port, topic: "pilots/card-hf-agg-04/scale-0001/obs",
                    message: obsMessage("scale-0001-1", [obs(subject, "weight", 81.5, unit: "kg", at: isoNow(minutesAgo: 5))]))
        // Its neighbour for an observations pilot is stored.
        try publish(port: broker.port, topic: "pilots/card-hf-idf-03/scale-0001/obs",
                    message: obsMessage("scale-0001-1", [obs("p-kept-0001", "weight", 80, unit: "kg", at: isoNow(minutesAgo: 5))]))
        let stats = try f.ws.waitFor("the refusal and the neighbour") { $0.refused >= 1 && $0.accepted >= 1 }
        #expect(stats.refusedByReason == [.aggregatePilot: 1])
        let rejects = try f.ws.run(["rejects", "--format", "json"])
        #expect(rejects.stdout.contains("aggregate_pilot") && rejects.stdout.contains("card-hf-agg-04/chu-lille/agg"), "\(rejects.stdout)")
        #expect(serve.terminate() == 0)

        // Every byte of every file the cluster wrote: database, WAL, inbox, logs.
        var files: [String] = []
        let walker = FileManager.default.enumerator(atPath: f.ws.dir)
        while let name = walker?.nextObject() as? String {
            let path = f.ws.dir + "/" + name
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue { files.append(path) }
        }
        #expect(files.contains { $0.contains(".inbox/") }, "the inbox was read: \(files)")
        let needle = Data(subject.utf8)
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(bytes.range(of: needle) == nil, "\(file) holds the misrouted subject")
        }
        let kept = Data("p-kept-0001".utf8)
        #expect(try files.contains { try Data(contentsOf: URL(fileURLWithPath: $0)).range(of: kept) != nil },
                "the accepted neighbour's subject is stored (the search reads the right files)")
    }
}

@Suite("Federation end to end: the cluster shows an aggregate pilot as the site computes it", .serialized)
struct FederationViewTests {
    @Test func atMinCellZeroTheClusterPrintsTheSitesFigures() throws {
        let broker = try TestBroker.start()
        defer { broker.stop() }
        let cluster = try FederationFixture(port: broker.port)
        defer { cluster.remove() }
        // The site: the same pilot, its devices reporting observations to it.
        let siteEntry = aggregatePilotEntry.replacingOccurrences(of: "    reporting: aggregates\n    site: chu-lille\n", with: "")
            .replacingOccurrences(of: "    reporting: aggregates\n    site: chu-lille", with: "")
        let site = try Workspace(port: broker.port, pilots: Workspace.defaultPilots + "\n" + siteEntry)
        defer { site.remove() }
        let dayEnd = cluster.day.advanced(by: 1).start.adding(millis: -1)
        func at(_ daysBefore: Double) -> String { dayEnd.adding(days: -daysBefore).description }
        var lines: [String] = []
        for i in 0..<14 {
            let s = "p-site-\(1000 + i)"
            var list = [obs(s, "enrolled", at: at(Double(120 - i * 5))), obs(s, "weight", 80 + Double(i), unit: "kg", at: at(Double(119 - i * 5)))]
            for d in stride(from: 40.0, through: 1, by: -3) { list.append(obs(s, "weight", 79 + Double(i) - d / 20, unit: "kg", at: at(d))) }
            if i % 4 == 0 { list.append(obs(s, "hospitalisation", at: at(10))) }
            if i == 3 { list.append(obs(s, "withdrawn", at: at(5))) }
            lines.append(#"{"topic":"pilots/card-hf-agg-04/dev-\#(i)/obs","payload":"# + obsMessage("m-\(i)", list) + "}")
        }
        let imported = try site.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try site.stats().accepted == 14)

        // The snapshot the site sends for the day end, published as the site's account would.
        let siteStore = try Store(path: site.db, options: StoreOptions(readOnly: true))
        let snapshot = try SnapshotBuilder.build(store: siteStore, pilot: cluster.pilot, catalogue: cluster.catalogue,
                                                 day: cluster.day, revision: 1, msgID: "chu-lille-day-1").json()
        let serve = try cluster.ws.startServe(port: broker.port)
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()
        try publish(port: broker.port, topic: "pilots/card-hf-agg-04/chu-lille/agg", message: snapshot)
        _ = try cluster.waitForSnapshots("the snapshot stored") { $0.count == 1 }

        func json(_ ws: Workspace, _ args: [String]) throws -> [String: Any] {
            let r = try ws.run(args + ["--as-of", dayEnd.description, "--format", "json"])
            guard r.status == 0 else { throw TestFailure("\(args): \(r.stderr)") }
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        }
        func row(_ o: [String: Any], _ key: String, _ id: String, _ field: String) -> [String: Any]? {
            (o[key] as? [[String: Any]])?.first { $0[field] as? String == id }
        }
        let a = try #require(row(try json(cluster.ws, ["status"]), "pilots", "card-hf-agg-04", "pilot"))
        let b = try #require(row(try json(site, ["status"]), "pilots", "card-hf-agg-04", "pilot"))
        for key in ["enrolled", "withdrawn", "in_follow_up", "enrolment_pct", "enrolment_rate_30d", "projected_target_date",
                    "on_track", "active_7d", "unenrolled_subjects", "last_observation_at", "next_milestone", "messages_7d", "flags"] {
            #expect(String(describing: a[key]) == String(describing: b[key]), "\(key): cluster \(String(describing: a[key])) site \(String(describing: b[key]))")
        }
        let adherence = (a["transmission_adherence"] as? Double, b["transmission_adherence"] as? Double)
        #expect(abs((adherence.0 ?? -1) - (adherence.1 ?? -2)) < 1e-9)
        #expect((a["snapshot"] as? [String: Any])?["revision"] as? Int == 1)
        let pa = try #require(row(try json(cluster.ws, ["status"]), "programmes", "cardiac", "programme"))
        let pb = try #require(row(try json(site, ["status"]), "programmes", "cardiac", "programme"))
        #expect(pa["enrolled"] as? Int == pb["enrolled"] as? Int && pa["active_7d"] as? Int == pb["active_7d"] as? Int)

        let va = try json(cluster.ws, ["pilot", "card-hf-agg-04"]), vb = try json(site, ["pilot", "card-hf-agg-04"])
        for key in ["outcomes", "events", "milestones"] {
            let x = try #require(va[key] as? [Any]), y = try #require(vb[key] as? [Any])
            #expect(!x.isEmpty && NSArray(array: x) == NSArray(array: y), "\(key): \(x)\n\(y)")
        }
        // The export (JSON, at k 11 and at the smallest k): every figure the site's own export gives,
        // the cluster's naming the snapshot it comes from; the programme pools it.
        for k in ["11", "5"] {
            let ea = try json(cluster.ws, ["export", "--pilot", "card-hf-agg-04", "--k", k])
            let eb = try json(site, ["export", "--pilot", "card-hf-agg-04", "--k", k])
            let difference = jsonDifference(ea, eb, dropping: ["source", "provenance", "methods"])
            #expect(difference == nil, "k \(k): \(difference ?? "")")
            let reports = ((ea["programmes"] as? [[String: Any]])?.first?["pilot_reports"] as? [[String: Any]]) ?? []
            #expect((reports.first?["source"] as? [String: Any])?["revision"] as? Int == 1, "\(reports)")
        }
        let period = try cluster.ws.run(["export", "--pilot", "card-hf-agg-04", "--from", "30d", "--as-of", dayEnd.description])
        #expect(period.status == 64 && period.stderr.contains("disclosure control does not allow"), "\(period.stderr)")
        // Nothing of the site's subjects or devices reached a file of the cluster.
        #expect(try filesHolding(["p-site-10", "dev-1"], under: cluster.ws.dir) == [])
        // A period is refused for an aggregate pilot, saying why.
        let since = try cluster.ws.run(["pilot", "card-hf-agg-04", "--since", "7d"])
        #expect(since.status == 64 && since.stderr.contains("reports aggregates"), "\(since.stderr)")
    }
}

@Suite("federate --dry-run: the snapshot a site would send")
struct FederateCommandTests {
    @Test func aSitePrintsItsDayEndSnapshotWithDisclosureControl() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        func configure(minCell: Int) throws {
            try ws.writeService(port: 1883)
            try (try String(contentsOfFile: ws.config, encoding: .utf8) + """

            federation:
              cluster: {host: cluster.example.org, port: 1883, username: chu-lille}
              site_id: chu-lille
              pilots: [card-hf-idf-03]
              min_cell: \(minCell)

            """).write(toFile: ws.config, atomically: true, encoding: .utf8)
        }
        let yesterday = Instant(seconds: Date().timeIntervalSince1970).day.advanced(by: -1)
        let t = yesterday.start.adding(days: 0.5)
        var lines: [String] = []
        for i in 0..<5 {
            let list = [obs("p-fed-\(1000 + i)", "enrolled", at: t.adding(days: -Double(30 + i)).description),
                        obs("p-fed-\(1000 + i)", "weight", 80, unit: "kg", at: t.adding(days: -Double(2 + i)).description)]
            lines.append(#"{"topic":"pilots/card-hf-idf-03/dev-f\#(i)/obs","payload":"# + obsMessage("f-\(i)", list) + "}")
        }
        #expect(try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8)).status == 0)

        try configure(minCell: 0)
        let exact = try ws.run(["federate", "--dry-run", "--as-of", yesterday.description, "--out", "-"])
        #expect(exact.status == 0, "\(exact.stderr)")
        let s0 = try SnapshotParser.parse(Array(exact.stdout.trimmingCharacters(in: .whitespacesAndNewlines).utf8))
        #expect(s0.pilot == "card-hf-idf-03" && s0.minCell == 0 && s0.enrolment.enrolled == .value(5))
        #expect(!exact.stdout.contains("p-fed-") && !exact.stdout.contains("dev-f"), "no pseudonym or device id")

        try configure(minCell: 11)
        let guarded = try ws.run(["federate", "--dry-run", "--as-of", yesterday.description])
        #expect(guarded.status == 0, "\(guarded.stderr)")
        let s11 = try SnapshotParser.parse(Array(guarded.stdout.trimmingCharacters(in: .whitespacesAndNewlines).utf8))
        #expect(s11.minCell == 11 && s11.enrolment.enrolled == .lessThan(11), "5 enrolled leave as lt 11")
        #expect(!guarded.stdout.contains("\"enrolled\":5"))

        // Sending is serve's: the command says so; an instance without federation: is refused.
        let send = try ws.run(["federate"])
        #expect(send.status == 64 && send.stderr.contains("--dry-run"), "\(send.stderr)")
        try ws.writeService(port: 1883)
        let none = try ws.run(["federate", "--dry-run"])
        #expect(none.status == 64 && none.stderr.contains("no federation: section"), "\(none.stderr)")
        // The trail records the run.
        #expect(try String(contentsOfFile: ws.db + ".audit", encoding: .utf8).contains("\"command\":\"federate --dry-run\""))
    }
}

@Suite("Federation over two brokers: a site's serve sends its day ends, the cluster shows them", .serialized)
struct FederationDeliveryTests {
    @Test func everyDayEndArrivesOnceAndTheClusterPrintsTheSitesFigures() throws {
        let clusterBroker = try TestBroker.start()
        defer { clusterBroker.stop() }
        let siteBroker = try TestBroker.start()
        defer { siteBroker.stop() }
        let cluster = try FederationFixture(port: clusterBroker.port)
        defer { cluster.remove() }
        let siteEntry = aggregatePilotEntry.replacingOccurrences(of: "\n    reporting: aggregates\n    site: chu-lille", with: "")
        let site = try Workspace(port: siteBroker.port, pilots: Workspace.defaultPilots + "\n" + siteEntry, clientID: "site-serve")
        defer { site.remove() }
        try (try String(contentsOfFile: site.config, encoding: .utf8) + """

        federation:
          cluster: {host: 127.0.0.1, port: \(clusterBroker.port), username: chu-lille}
          site_id: chu-lille
          pilots: [card-hf-agg-04]
          grace: 0
          min_cell: 0

        """).write(toFile: site.config, atomically: true, encoding: .utf8)
        #expect(try site.run(["config", "check"]).status == 0)

        let yesterdayEnd = Instant(seconds: Date().timeIntervalSince1970).day.start.adding(millis: -1)
        var lines: [String] = []
        for i in 0..<12 {
            let s = "p-deliv-\(1000 + i)"
            var list = [obs(s, "enrolled", at: yesterdayEnd.adding(days: -Double(90 - i * 4)).description)]
            for d in stride(from: 30.0, through: 1, by: -5) { list.append(obs(s, "weight", 81 - d / 30, unit: "kg", at: yesterdayEnd.adding(days: -d).description)) }
            lines.append(#"{"topic":"pilots/card-hf-agg-04/dev-d\#(i)/obs","payload":"# + obsMessage("d-\(i)", list) + "}")
        }
        #expect(try site.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8)).status == 0)

        let clusterServe = try cluster.ws.startServe(port: clusterBroker.port)
        defer { clusterServe.terminate() }
        try clusterServe.waitUntilSubscribed()
        let siteServe = try site.startServe(port: siteBroker.port, extra: ["--federate-every", "1", "--federate-settle", "0.5"])
        defer { siteServe.terminate() }
        try siteServe.waitUntilSubscribed()

        // Every day end from the pilot's start through yesterday, once.
        let start = cluster.pilot.start
        let expected = start.distance(to: yesterdayEnd.day) + 1
        let stored = try cluster.waitForSnapshots("\(expected) day ends", timeout: 120) { $0.count >= expected }
        #expect(stored.count == expected)
        #expect(Set(stored.map(\.asOf.day)).count == expected)
        // The broker hands a snapshot to the cluster and its acknowledgement to the site
        // independently: the cluster may store the last one before the site hears of it.
        try siteServe.waitForLog("acknowledged by the cluster's broker")

        // The cluster prints the site's figures for yesterday.
        func row(_ ws: Workspace) throws -> [String: Any] {
            let r = try ws.run(["status", "--as-of", yesterdayEnd.description, "--format", "json"])
            let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return try #require((o?["pilots"] as? [[String: Any]])?.first { $0["pilot"] as? String == "card-hf-agg-04" })
        }
        let a = try row(cluster.ws), b = try row(site)
        for key in ["enrolled", "withdrawn", "in_follow_up", "active_7d", "on_track", "last_observation_at"] {
            #expect(String(describing: a[key]) == String(describing: b[key]), "\(key)")
        }
        // A restart sends nothing again.
        #expect(siteServe.terminate() == 0)
        let again = try site.startServe(port: siteBroker.port, extra: ["--federate-every", "1", "--federate-settle", "0.5"])
        defer { again.terminate() }
        try again.waitUntilSubscribed()
        Thread.sleep(forTimeInterval: 2)
        #expect(try cluster.snapshots().count == expected)
        #expect(try filesHolding(["p-deliv-10"], under: cluster.ws.dir) == [])

        // An erasure at the site sends the day ends it changed again, without the subject.
        let before = try #require(cluster.snapshots().first { $0.asOf.day == yesterdayEnd.day })
        let erased = try site.run(["subjects", "erase", "--pilot", "card-hf-agg-04", "--subject", "p-deliv-1010",
                                   "--reason", "request R-77", "--format", "json"])
        #expect(erased.status == 0, "\(erased.stderr)")
        #expect(!erased.stdout.contains("\"day_ends_resent\":0"), "\(erased.stdout)")
        _ = try cluster.waitForSnapshots("yesterday's day end resent", timeout: 60) { list in
            list.contains { $0.asOf.day == yesterdayEnd.day && $0.revision > before.revision }
        }
        #expect(try cluster.snapshots().count == expected, "replaced, not added")
        let c = try row(cluster.ws), d = try row(site)
        #expect(c["enrolled"] as? Int == d["enrolled"] as? Int)
        #expect(c["enrolled"] as? Int == (a["enrolled"] as? Int ?? 0) - 1, "the erased subject no longer counts: \(c)")

        // Late data: federate --resend --since (handed to the running serve) sends day ends again.
        let current = try #require(cluster.snapshots().first { $0.asOf.day == yesterdayEnd.day })
        let resend = try site.run(["federate", "--resend", "--since", yesterdayEnd.day.advanced(by: -2).description])
        #expect(resend.status == 0 && resend.stdout.contains("3 day end(s)"), "\(resend.stdout)\(resend.stderr)")
        _ = try cluster.waitForSnapshots("yesterday's day end sent again", timeout: 60) { list in
            list.contains { $0.asOf.day == yesterdayEnd.day && $0.revision > current.revision }
        }
        #expect(try cluster.snapshots().count == expected)
        let bad = try site.run(["federate", "--resend"])
        #expect(bad.status == 64 && bad.stderr.contains("--since"), "\(bad.stderr)")
    }
}
