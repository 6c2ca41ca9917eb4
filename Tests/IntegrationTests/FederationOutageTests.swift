import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore
import TestSupport
import Testing

// Outages between a site and the cluster (federation.md, "Schedule, delivery and history"): the
// cluster's broker away while the site has day ends to send, the site's serve killed with
// snapshots in its outbox, the site down over two day ends. In each case every day end from the
// pilot's start through yesterday reaches the cluster's store exactly once: no gap, no second
// copy, and a day end that waited in the outbox arrives as it was built (same revision).

/// A site and a cluster, each with its own broker and workspace, sharing one pilot that started
/// `days` days ago: the cluster's registry says `reporting: aggregates` from site `chu-lille`; the
/// site forwards it (`grace: 0`, `min_cell` as given). The cluster's broker keeps its sessions
/// on disk, as a deployed broker does, so that its serve's subscription outlives a restart.
struct FederatedPair {
    let pilotID = "card-hf-fed-05"
    let siteID = "chu-lille"
    let clusterBroker: TestBroker
    let siteBroker: TestBroker
    let cluster: Workspace
    let site: Workspace
    let start: Day
    /// Yesterday (UTC): the last day end due with `grace: 0`.
    let yesterday = Instant(seconds: Date().timeIntervalSince1970).day.advanced(by: -1)

    init(days: Int, minCell: Int = 0) throws {
        start = Instant(seconds: Date().timeIntervalSince1970).day.advanced(by: -days)
        clusterBroker = try TestBroker.start(persistence: true)
        siteBroker = try TestBroker.start()
        let entry = """
          - id: \(pilotID)
            name: Heart failure at home, federated
            programme: cardiac
            lead: CHU Lille
            call: dhcdm-2026
            funders: [region-hdf]
            start: \(start)
            end: 2028-12-31
            enrolment_target: 80
            outcomes: [weight, hospitalisation]
        """
        cluster = try Workspace(port: clusterBroker.port,
                                pilots: Workspace.defaultPilots + "\n" + entry + "\n    reporting: aggregates\n    site: \(siteID)")
        site = try Workspace(port: siteBroker.port, pilots: Workspace.defaultPilots + "\n" + entry, clientID: "site-serve")
        try (try String(contentsOfFile: site.config, encoding: .utf8) + """

        federation:
          cluster: {host: 127.0.0.1, port: \(clusterBroker.port), username: \(siteID)}
          site_id: \(siteID)
          pilots: [\(pilotID)]
          grace: 0
          min_cell: \(minCell)

        """).write(toFile: site.config, atomically: true, encoding: .utf8)
    }

    func remove() {
        clusterBroker.stop()
        siteBroker.stop()
        cluster.remove()
        site.remove()
    }

    /// The day ends from the pilot's start through `last`.
    func days(through last: Day) -> [Day] {
        (0...start.distance(to: last)).map { start.advanced(by: $0) }
    }

    /// Imports `lines` (`{"topic", "payload"}` objects) into the site's store.
    func ingestAtSite(_ lines: [String]) throws {
        let r = try site.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
        guard r.status == 0 else { throw TestFailure("site ingest: \(r.stderr)") }
    }

    /// A few subjects of the pilot at the site, enrolled on its first day, weighed every other day.
    func ingestSomeSubjects(_ n: Int = 4) throws {
        var lines: [String] = []
        for i in 0..<n {
            let s = "p-fed-\(2000 + i)"
            var list = [obs(s, "enrolled", at: start.start.adding(days: 0.3).description)]
            for d in stride(from: 0, through: start.distance(to: yesterday), by: 2) {
                list.append(obs(s, "weight", 80 + Double(i) - Double(d) / 10, unit: "kg", at: start.advanced(by: d).start.adding(days: 0.4).description))
            }
            lines.append(#"{"topic":"pilots/\#(pilotID)/dev-o\#(i)/obs","payload":"# + obsMessage("o-\(i)", list) + "}")
        }
        try ingestAtSite(lines)
    }

    func startClusterServe() throws -> ServeProcess {
        let serve = try cluster.startServe(port: clusterBroker.port, extra: ["--apply-delay", "0"])
        try serve.waitUntilSubscribed()
        return serve
    }

    /// The site's serve, a federation round every half second; `now` for `--federate-now`.
    func startSiteServe(now: String? = nil, extra: [String] = []) throws -> ServeProcess {
        let serve = try site.startServe(port: siteBroker.port,
                                        extra: ["--federate-every", "0.5", "--federate-settle", "0.5"]
                                            + (now.map { ["--federate-now", $0] } ?? []) + extra)
        try serve.waitUntilSubscribed()
        return serve
    }

    /// The day-end snapshots the cluster holds.
    func clusterSnapshots() throws -> [StoredSnapshot] {
        guard FileManager.default.fileExists(atPath: cluster.db) else { return [] }
        return try Store(path: cluster.db, options: StoreOptions(readOnly: true)).snapshots()
    }

    /// The site's outbox: snapshots built and not yet acknowledged by the cluster's broker.
    func siteOutbox() throws -> [QueuedSnapshot] {
        try Store(path: site.db, options: StoreOptions(readOnly: true)).federationOutbox()
    }

    func siteSentCount() throws -> Int {
        try Store(path: site.db, options: StoreOptions(readOnly: true)).sentSnapshotCount(pilot: pilotID)
    }

    /// Waits until `done` holds for the cluster's snapshots; returns them.
    @discardableResult
    func waitForCluster(_ what: String, timeout: Double = 60, _ done: ([StoredSnapshot]) -> Bool) throws -> [StoredSnapshot] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [StoredSnapshot] = []
        while Date() < deadline {
            if let s = try? clusterSnapshots() {
                last = s
                if done(s) { return s }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestFailure("timed out waiting for \(what); the cluster holds \(last.map { "\($0.asOf.day) r\($0.revision)" })")
    }

    /// Waits until the site's outbox holds `count` snapshots; returns them.
    func waitForOutbox(_ count: Int, timeout: Double = 60) throws -> [QueuedSnapshot] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [QueuedSnapshot] = []
        while Date() < deadline {
            if let q = try? siteOutbox() {
                last = q
                if q.count == count { return q }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestFailure("timed out waiting for \(count) snapshots in the site's outbox; it holds \(last.map(\.asOf.day))")
    }

    /// Every day end of `days` once in the cluster's store, and nothing else: no gap, no copy.
    func expectEachDayEndOnce(_ stored: [StoredSnapshot], _ days: [Day], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(stored.allSatisfy { $0.pilot == pilotID && $0.site == siteID }, sourceLocation: sourceLocation)
        #expect(stored.map(\.asOf.day).sorted() == days, "the cluster holds \(stored.map(\.asOf.day).sorted())", sourceLocation: sourceLocation)
        #expect(stored.allSatisfy { $0.asOf == $0.asOf.day.advanced(by: 1).start.adding(millis: -1) }, sourceLocation: sourceLocation)
    }
}

extension ServeProcess {
    /// Waits until the log holds `text`.
    func waitForLog(_ text: String, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logText.contains(text) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("serve's log did not show \"\(text)\" within \(timeout)s:\n\(logText)")
    }

    /// The last `counts:` line of the log (serve writes one as it stops).
    var lastCounts: String { logText.split(separator: "\n").last { $0.contains("counts: ") }.map(String.init) ?? "" }
}

@Suite("Federation outages: every day end reaches the cluster exactly once", .serialized)
struct FederationOutageTests {
    @Test func theClustersBrokerAwayDelaysTheDayEndsAndLosesNone() throws {
        let pair = try FederatedPair(days: 6)
        defer { pair.remove() }
        try pair.ingestSomeSubjects()
        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }

        // The cluster's broker goes away before the site has sent anything.
        pair.clusterBroker.stop()
        let siteServe = try pair.startSiteServe()
        defer { siteServe.terminate() }
        let expected = pair.days(through: pair.yesterday)
        let waiting = try pair.waitForOutbox(expected.count)
        try siteServe.waitForLog("snapshots wait in the outbox")
        #expect(try pair.siteSentCount() == 0)
        #expect(try pair.clusterSnapshots().isEmpty)

        // Back: the outbox empties into the cluster, each day end once, as it was built.
        try pair.clusterBroker.restart()
        let stored = try pair.waitForCluster("\(expected.count) day ends") { $0.count >= expected.count }
        pair.expectEachDayEndOnce(stored, expected)
        #expect(Dictionary(uniqueKeysWithValues: stored.map { ($0.asOf, $0.revision) })
                    == Dictionary(uniqueKeysWithValues: waiting.map { ($0.asOf, $0.revision) }), "sent as queued, not built again")
        #expect(Set(stored.map(\.sha256)) == Set(waiting.map { SHA256.hex(Array($0.payload.utf8)) }), "the bytes queued")
        try siteServe.waitForLog("acknowledged by the cluster's broker")
        let deadline = Date().addingTimeInterval(10)
        while try pair.siteSentCount() < expected.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try pair.siteOutbox().isEmpty && pair.siteSentCount() == expected.count)

        // A few more rounds send nothing again; the cluster saw no second copy.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(siteServe.terminate() == 0)
        #expect(clusterServe.terminate() == 0)
        pair.expectEachDayEndOnce(try pair.clusterSnapshots(), expected)
        #expect(clusterServe.lastCounts.contains("duplicate=0 status=0 snapshots=\(expected.count) refused=0"), "\(clusterServe.lastCounts)")
    }

    @Test func aSiteKilledWithSnapshotsInItsOutboxSendsThemAfterItsRestart() throws {
        let pair = try FederatedPair(days: 7)
        defer { pair.remove() }
        try pair.ingestSomeSubjects()
        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }

        // First the day ends through three days ago, delivered (the site's clock says 2 days ago).
        let early = pair.days(through: pair.yesterday.advanced(by: -2))
        let first = try pair.startSiteServe(now: "2d")
        let delivered = try pair.waitForCluster("\(early.count) day ends") { $0.count >= early.count }
        pair.expectEachDayEndOnce(delivered, early)
        #expect(first.terminate() == 0)

        // The cluster's broker away, the site back: the two missing day ends wait in its outbox
        // when it is killed.
        pair.clusterBroker.stop()
        let second = try pair.startSiteServe()
        let waiting = try pair.waitForOutbox(2)
        #expect(waiting.map(\.asOf.day) == [pair.yesterday.advanced(by: -1), pair.yesterday])
        try second.waitForLog("snapshots wait in the outbox")
        second.kill9()
        #expect(try pair.siteOutbox() == waiting, "the outbox survives SIGKILL")

        // Both back: the restarted site sends what its outbox held, once, and builds nothing again.
        try pair.clusterBroker.restart()
        let third = try pair.startSiteServe()
        defer { third.terminate() }
        let all = pair.days(through: pair.yesterday)
        let stored = try pair.waitForCluster("\(all.count) day ends") { $0.count >= all.count }
        pair.expectEachDayEndOnce(stored, all)
        for q in waiting {
            #expect(stored.first { $0.asOf == q.asOf }?.revision == q.revision, "\(q.asOf.day) sent from the outbox as built")
        }
        for s in delivered {
            #expect(stored.first { $0.asOf == s.asOf }?.revision == s.revision, "\(s.asOf.day) not sent again")
        }
        Thread.sleep(forTimeInterval: 1.5)
        #expect(third.terminate() == 0)
        #expect(clusterServe.terminate() == 0)
        pair.expectEachDayEndOnce(try pair.clusterSnapshots(), all)
        #expect(try pair.siteOutbox().isEmpty && pair.siteSentCount() == all.count)
        // The site published each day end once, acknowledged once ...
        let acknowledged = [first, second, third].reduce(0) { n, serve in
            n + serve.logText.split(separator: "\n").reduce(0) { m, line in
                guard let r = line.range(of: "federation: ") , let end = line.range(of: " snapshot(s) acknowledged") else { return m }
                return m + (Int(line[r.upperBound..<end.lowerBound]) ?? 0)
            }
        }
        #expect(acknowledged == all.count, "the site's serves had \(acknowledged) snapshots acknowledged")
        // ... and the cluster stored each once. (Its broker, restarted from its persistence file,
        // may deliver again a message the cluster had already taken before the stop: that one is
        // counted as a duplicate and not stored again, so duplicates are not asserted here.)
        #expect(clusterServe.lastCounts.contains("snapshots=\(all.count) refused=0"), "\(clusterServe.lastCounts)")
    }

    /// What the site's broker kept while the site's serve was down is in the day ends it builds
    /// on its return: it waits until it has been connected a moment and has applied everything.
    @Test func whatTheSitesBrokerKeptDuringItsOutageIsInTheDayEnds() throws {
        let pair = try FederatedPair(days: 3)
        defer { pair.remove() }
        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }
        // The site's serve once, three days ago: its session (and subscription) stays at the broker.
        let first = try pair.startSiteServe(now: pair.start.start.adding(millis: 60_000).description)
        #expect(first.terminate() == 0)

        // While it is down, 1,500 subjects enrol through the site's broker.
        let n = 1_500
        let lines = (0..<n).map { i in
            obsMessage("kept-\(i)", [obs("p-kept-\(10_000 + i)", "enrolled", at: pair.start.start.adding(days: 0.5).description),
                                    obs("p-kept-\(10_000 + i)", "weight", 70 + Double(i % 30), unit: "kg", at: pair.start.start.adding(days: 0.6).description)])
        }
        let pub = Process()
        pub.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_pub")
        pub.arguments = ["-h", "127.0.0.1", "-p", String(pair.siteBroker.port), "-q", "1", "-l", "-t", "pilots/\(pair.pilotID)/dev-kept/obs"]
        let input = Pipe()
        pub.standardInput = input
        try pub.run()
        input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        pub.waitUntilExit()
        #expect(pub.terminationStatus == 0)

        let back = try pair.startSiteServe()
        defer { back.terminate() }
        let all = pair.days(through: pair.yesterday)
        let stored = try pair.waitForCluster("\(all.count) day ends") { $0.count >= all.count }
        pair.expectEachDayEndOnce(stored, all)
        for s in stored {
            let snapshot = try SnapshotParser.parse(Array(s.payload.utf8))
            #expect(snapshot.enrolment.enrolled == .value(Double(n)), "\(s.asOf.day): \(snapshot.enrolment.enrolled)")
        }
        #expect(try pair.site.stats().accepted == n)
    }

    @Test func aSiteDownOverTwoDayEndsSendsThemWhenItReturns() throws {
        let pair = try FederatedPair(days: 5)
        defer { pair.remove() }
        try pair.ingestSomeSubjects()
        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }

        // Two days ago, just after midnight (grace 0): the day ends through three days ago are due.
        let twoDaysAgo = pair.yesterday.advanced(by: -1).start.adding(millis: 60_000).description
        let before = try pair.startSiteServe(now: twoDaysAgo)
        let early = pair.days(through: pair.yesterday.advanced(by: -2))
        let delivered = try pair.waitForCluster("\(early.count) day ends") { $0.count >= early.count }
        pair.expectEachDayEndOnce(delivered, early)
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try pair.clusterSnapshots().count == early.count, "no day end before it is due")
        #expect(before.terminate() == 0)

        // Down over two day ends; back today, it sends those two, and only those.
        let after = try pair.startSiteServe()
        defer { after.terminate() }
        let all = pair.days(through: pair.yesterday)
        let stored = try pair.waitForCluster("\(all.count) day ends") { $0.count >= all.count }
        pair.expectEachDayEndOnce(stored, all)
        try after.waitForLog("built 2 day-end snapshot(s) of \(pair.pilotID), through \(pair.yesterday)")
        for s in delivered {
            #expect(stored.first { $0.asOf == s.asOf }?.revision == s.revision, "\(s.asOf.day) not sent again")
        }
        Thread.sleep(forTimeInterval: 1.5)
        #expect(after.terminate() == 0)
        #expect(clusterServe.terminate() == 0)
        pair.expectEachDayEndOnce(try pair.clusterSnapshots(), all)
        #expect(clusterServe.lastCounts.contains("duplicate=0 status=0 snapshots=\(all.count) refused=0"), "\(clusterServe.lastCounts)")
    }
}
