import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import PilotwatchStore
import Testing

// A pilot's day-end snapshot (federation.md) carries the sufficient statistics of every figure:
// built from a real store, published as JSON and read back strictly, it gives the figures the
// pilot view computes from the raw rows at the same instant. Nothing in it names a subject or a
// device. Hostile snapshots are refused with `schema` and a detail naming the field.

private let exacerbation = Indicator(code: "exacerbation", name: "Exacerbation", kind: .event, unit: "1", range: nil,
                                     programmes: ["respiratory"], direction: .lower)
private let catalogue = Catalogue(indicators: [spo2, respRate, exacerbation])
private let pilot = Pilot(id: "p-rand", name: "Random", programme: "respiratory", lead: "L", call: "C", funders: [],
                          start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                          milestones: [Milestone(date: Day(parsing: "2026-03-31")!, enrolled: 10),
                                       Milestone(date: Day(parsing: "2026-06-01")!, enrolled: 40)],
                          outcomes: ["spo2", "resp_rate", "exacerbation"])

private func close(_ a: Double?, _ b: Double?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case let (a?, b?): return abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    default: return false
    }
}

@Suite("Snapshots: the statistics of a day end give the pilot view's figures")
struct SnapshotTests {
    @Test(arguments: [UInt64(3), 11, 29])
    func figuresFromTheSnapshotAreThePilotViews(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for day in [t0.day.advanced(by: -41), t0.day.advanced(by: -1), t0.day, t0.day.advanced(by: 3)] {
            let built = try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue, day: day,
                                                  revision: 1_780_000_000_000, msgID: "snap-\(day)")
            let text = built.json()
            let snapshot = try SnapshotParser.parse(Array(text.utf8))
            #expect(snapshot.json() == text, "the JSON reads back to itself")
            for s in data.subjects { #expect(!text.contains(s.code), "no pseudonym in the snapshot") }
            #expect(!text.contains("\"d1\""), "no device id")

            let t = snapshot.asOf
            let board = try Dashboard.pilot(store: data.store, pilot: pilot, catalogue: catalogue, since: nil, asOf: t)
            let stats = try #require(snapshot.pilotStatistics)
            let f = Metrics.pilot(stats, target: pilot.enrolmentTarget, end: pilot.end, asOf: t)
            let g = board.figures
            #expect(f.enrolled == g.enrolled && f.withdrawn == g.withdrawn && f.inFollowUp == g.inFollowUp, "\(day)")
            #expect(f.active7d == g.active7d && f.unenrolledSubjects == g.unenrolledSubjects, "\(day)")
            #expect(close(f.enrolmentRate30d, g.enrolmentRate30d) && f.projectedTargetDate == g.projectedTargetDate && f.onTrack == g.onTrack)
            #expect(close(f.transmissionAdherence, g.transmissionAdherence), "\(day): \(String(describing: f.transmissionAdherence)) vs \(String(describing: g.transmissionAdherence))")
            #expect(f.lastObservationAt == g.lastObservationAt)

            // Milestones at or before T: their counts; later ones stand at `enrolled`.
            let past = board.milestones.filter { $0.milestone.date <= t.day }
            #expect(snapshot.enrolment.milestones.map(\.count) == past.map(\.enrolled), "\(day)")

            let weekly = Metrics.weekly(try #require(snapshot.weeklyStatistics))
            #expect(weekly.map(\.weekEnding) == board.weekly.map(\.weekEnding))
            #expect(weekly.map(\.enrolments) == board.weekly.map(\.enrolments), "\(day)")
            for (a, b) in zip(weekly, board.weekly) { #expect(close(a.transmissionAdherence, b.transmissionAdherence)) }

            #expect(snapshot.outcomes.map(\.indicator) == board.outcomes.map(\.indicator.code))
            for (o, (_, b)) in zip(snapshot.outcomes, board.outcomes) {
                let a = Metrics.outcome(try #require(snapshot.outcomeStatistics(o)))
                #expect(a.nPaired == b.nPaired)
                #expect(close(a.meanBaseline, b.meanBaseline) && close(a.meanLatest, b.meanLatest) && close(a.meanChange, b.meanChange))
                #expect(close(a.changeCI95?.lower, b.changeCI95?.lower) && close(a.changeCI95?.upper, b.changeCI95?.upper))
                #expect(close(a.pctInTarget, b.pctInTarget) && close(a.improvedPct, b.improvedPct))
            }
            #expect(snapshot.events.map(\.indicator) == board.events.map(\.indicator))
            for (e, b) in zip(snapshot.events, board.events) {
                let a = Metrics.event(EventStatistics(indicator: e.indicator, events: try #require(e.events.count),
                                                      patientDays: try #require(e.patientDays.value)))
                #expect(a.events == b.events && close(a.patientDays, b.patientDays) && close(a.ratePer100PatientMonths, b.ratePer100PatientMonths))
            }
            #expect(snapshot.devices.messages7d.count == board.status.lastWeek.received)
            #expect(snapshot.quality.accepted.count == board.quality.period.accepted)
        }
    }

    @Test func hostileSnapshotsAreRefusedNamingTheField() throws {
        let data = try RandomStore(seed: 5, subjects: 12)
        let good = try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue, day: t0.day,
                                             revision: 1, msgID: "snap-1").json()
        _ = try SnapshotParser.parse(Array(good.utf8))
        func refused(_ text: String) -> Refusal? {
            do { _ = try SnapshotParser.parse(Array(text.utf8)); return nil } catch { return error }
        }
        let cases: [(String, String, String)] = [
            (#""kind":"pilot_snapshot""#, #""kind":"pilot_snapshot","subject":"p-1""#, "subject: is not a field"),
            (#""metrics_version":1"#, #""metrics_version":2"#, "metrics_version"),
            (#""min_cell":0"#, #""min_cell":3"#, "min_cell: 3 is between 1 and 4"),
            (#""as_of":"2026-06-15T23:59:59.999Z""#, #""as_of":"2026-06-15T12:00:00Z""#, "as_of"),
            (#""active_7d":"#, #""active_7d":1e999"#, "active_7d: 1e999 is not a finite number"),
            (#""enrolled_30d":"#, #""enrolled_30d":{"lt":11}"#, "enrolled_30d.lt"),
            (#""m2_change":"#, #""m2_change":-1"#, "m2_change"),
            (#""withdrawn":"#, #""withdrawn":null"#, "with min_cell 0 every figure is given"),
            (#""active_7d":"#, #""active_7d":{"value":1,"held_since":"2026-06-14T23:59:59.999Z"}"#, "with min_cell 0 every figure is given as it is"),
        ]
        for (find, replace, expected) in cases {
            guard good.contains(find) else { Issue.record("the snapshot has no \(find)"); continue }
            // A field whose value is a number: the number is replaced with the hostile one.
            let hostile = find.hasSuffix(":")
                ? good.replacing(try Regex(NSRegularExpression.escapedPattern(for: find) + #"-?[0-9.eE+-]+"#), with: replace)
                : good.replacingOccurrences(of: find, with: replace)
            let r = refused(hostile)
            #expect(r?.reason == .schema, "\(replace): \(String(describing: r))")
            #expect(r?.detail.contains(expected) == true, "\(replace): \(String(describing: r))")
        }
        // Inconsistent counts.
        var s = try SnapshotParser.parse(Array(good.utf8))
        s.activity.active7d = .count((s.enrolment.inFollowUp.count ?? 0) + 1)
        #expect(refused(s.json())?.detail.contains("activity.active_7d") == true)
        #expect(refused("[1,2]")?.reason == .schema)
        #expect(refused("{")?.reason == .malformedJSON)
    }
}

/// A store whose pilot `p-rand` has `base` subjects enrolled 100 days before `day0`, each reading
/// spo2 daily (`spo2(subject, day)`, 95 unless given), and `later[i]` more enrolled on `day0 + i`.
private func controlledStore(base: Int, later: [Int], day0: Day,
                             spo2: (String, Day) -> Double = { _, _ in 95 }) throws -> (Store, String) {
    let dir = NSTemporaryDirectory() + "pilotwatch-snap-" + UUID().uuidString.prefix(8).lowercased()
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let store = try Store(path: dir + "/store.sqlite", options: StoreOptions(synchronous: .normal))
    let topic = Topic(pilot: "p-rand", device: "d1", kind: .obs)
    var items: [IngestItem] = []
    func add(_ code: String, enrolledOn: Day) {
        var obs = [Observation(subject: code, indicator: "enrolled", kind: .event, value: 1, at: enrolledOn.start.adding(days: 0.4))]
        var d = enrolledOn
        while d <= day0.advanced(by: later.count) {
            obs.append(Observation(subject: code, indicator: "spo2", kind: .measurement, value: spo2(code, d), at: d.start.adding(days: 0.5)))
            d = d.advanced(by: 1)
        }
        items.append(IngestItem(topic: "pilots/p-rand/d1/obs", receivedAt: day0.start,
                                verdict: .observations(topic, ObservationMessage(msgID: "m-\(code)", sentAt: nil, observations: obs)), payload: []))
    }
    for i in 0..<base { add("base-\(i)", enrolledOn: day0.advanced(by: -100)) }
    for (offset, n) in later.enumerated() {
        for i in 0..<n { add("new-\(offset)-\(i)", enrolledOn: day0.advanced(by: offset)) }
    }
    _ = try store.ingest(items)
    return (store, dir)
}

@Suite("Snapshots: disclosure control at the boundary")
struct SnapshotDisclosureTests {
    @Test(arguments: [UInt64(3), 17])
    func smallCountsAndThinStatisticsDoNotLeave(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for day in [t0.day.advanced(by: -41), t0.day] {
            let (exact, c) = try SnapshotBuilder.buildWithContributions(store: data.store, pilot: pilot, catalogue: catalogue, day: day,
                                                                       revision: 1, msgID: "m")
            let (sent, _) = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: DisclosureState())
            let text = sent.json()
            let parsed = try SnapshotParser.parse(Array(text.utf8))
            #expect(parsed.minCell == 11)
            // Every count of people left is 0 or at least 11 and equals the exact one.
            let people: [(SnapshotFigure, SnapshotFigure)] = [
                (sent.enrolment.enrolled, exact.enrolment.enrolled), (sent.enrolment.withdrawn, exact.enrolment.withdrawn),
                (sent.enrolment.inFollowUp, exact.enrolment.inFollowUp), (sent.enrolment.enrolled30d, exact.enrolment.enrolled30d),
                (sent.activity.active7d, exact.activity.active7d), (sent.activity.adherenceN, exact.activity.adherenceN),
                (sent.quality.unenrolledSubjects, exact.quality.unenrolledSubjects),
            ] + zip(sent.enrolment.curve, exact.enrolment.curve).map { ($0, $1) }
              + zip(sent.outcomes, exact.outcomes).map { ($0.nPaired, $1.nPaired) }
            for (a, b) in people {
                if case .value(let v) = a { #expect(v == 0 || v >= 11); #expect(a == b) }
                if case .lessThan(let k) = a { #expect(k == 11 && (b.count ?? 99) < 11) }
            }
            // A statistic rests on at least 11 subjects, or does not leave.
            for (a, b) in zip(sent.outcomes, exact.outcomes) {
                let n = b.nPaired.count ?? 0
                #expect((a.sumChange == .withheld) == (n < 11), "\(a.indicator): n \(n)")
                if n >= 11 { #expect(a.m2Change == b.m2Change && a.sumBaseline == b.sumBaseline) }
                if n < 11 { #expect(a.inTarget == nil || a.inTarget == .withheld) }
            }
            // withdrawn cannot be worked out from enrolled - in_follow_up, nor from adherence_n.
            let trio = [sent.enrolment.enrolled, sent.enrolment.withdrawn, sent.enrolment.inFollowUp]
            #expect(trio.filter { !$0.isShown }.count != 1)
            #expect(sent.activity.adherenceN == sent.enrolment.inFollowUp)
            #expect(sent.activity.weekly.last?.adherenceN == sent.enrolment.inFollowUp)
            #expect(sent.enrolment.curve.last == sent.enrolment.enrolled)
            // An attribute leaves no small remainder among the paired.
            for o in sent.outcomes {
                if let n = o.nPaired.exact, let c = o.inTarget?.exact { #expect(n - c == 0 || n - c >= 11) }
                if let n = o.nPaired.exact, let c = o.improved?.exact { #expect(n - c == 0 || n - c >= 11) }
            }
            // Weekly counts that leave differ by 0 or at least 11.
            let weeklyN = sent.activity.weekly.compactMap(\.adherenceN.exact)
            for (x, y) in zip(weeklyN, weeklyN.dropFirst()) { #expect(abs(y - x) == 0 || abs(y - x) >= 11, "\(weeklyN)") }
            // The count 30 days back keeps its distance from the published cumulative counts.
            if let total = sent.enrolment.enrolled.exact, let recent = sent.enrolment.enrolled30d.exact {
                for v in sent.enrolment.curve.compactMap(\.exact) { #expect(abs(v - (total - recent)) == 0 || abs(v - (total - recent)) >= 11) }
            }
            // Published cumulative counts differ by 0 or at least 11.
            let shownCurve = sent.enrolment.curve.compactMap(\.exact)
            for (x, y) in zip(shownCurve, shownCurve.dropFirst()) { #expect(y - x == 0 || y - x >= 11, "\(shownCurve)") }
            // Coarse times.
            if let last = sent.lastObservationAt { #expect(last.millis % 3_600_000 == 0) }
        }
    }

    @Test func aDifferenceOfFewSubjectsBetweenDayEndsIsHeldUntilItReachesMinCell() throws {
        let day0 = Day(parsing: "2026-06-10")!
        // 30 enrolled long ago; 3 more on day 1, 9 more on day 2.
        let (store, dir) = try controlledStore(base: 30, later: [0, 3, 9], day0: day0)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Pilot(id: "p-rand", name: "R", programme: "respiratory", lead: "L", call: "C", funders: [],
                      start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                      milestones: [], outcomes: ["spo2", "exacerbation"])
        var state = DisclosureState()
        var sent: [PilotSnapshot] = []
        for offset in 0...2 {
            let (exact, c) = try SnapshotBuilder.buildWithContributions(store: store, pilot: p, catalogue: catalogue,
                                                                       day: day0.advanced(by: offset), revision: 1, msgID: "m\(offset)")
            let out = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: state)
            state = out.state
            sent.append(out.snapshot)
            _ = try SnapshotParser.parse(Array(out.snapshot.json().utf8))
        }
        let end0 = day0.advanced(by: 1).start.adding(millis: -1)
        #expect(sent[0].enrolment.enrolled == .value(30))
        // Day 1: 33 enrolled, but 3 new subjects: the difference would name them.
        #expect(sent[1].enrolment.enrolled == .held(30, since: end0), "\(sent[1].enrolment.enrolled)")
        #expect(sent[1].enrolment.inFollowUp == .held(30, since: end0))
        #expect(sent[1].enrolment.enrolled30d == .lessThan(11))
        // Day 2: 42 enrolled, 12 changed since the published 30: it leaves.
        #expect(sent[2].enrolment.enrolled == .value(42))
        #expect(sent[2].enrolment.enrolled30d == .value(12))
        // Patient-days grow with time for everyone; three subjects entering is what counts: held,
        // then published once twelve have.
        #expect(sent[1].events.first?.patientDays == .held(try #require(sent[0].events.first?.patientDays.value), since: end0))
        #expect(sent[2].events.first?.patientDays.isShown == true)
        // The same figure under other names is held with it: the curve's last point, the
        // current adherence count (in_follow_up) and the latest week's.
        #expect(sent[1].enrolment.curve.last == sent[1].enrolment.enrolled)
        #expect(sent[1].activity.adherenceN == .held(30, since: end0))
        #expect(sent[1].activity.weekly.last?.adherenceN == .held(30, since: end0))
        #expect(sent[1].activity.adherenceSum == .withheld || !(sent[1].activity.adherenceSum.isShown && sent[1].activity.adherenceN.isShown == false))
        // Nothing in the snapshot says 33.
        let text = sent[1].json()
        #expect(!text.contains(":33,") && !text.contains(":33}") && !text.contains(",33,") && !text.contains("[33,") && !text.contains(",33]"), "\(text)")
    }

    /// A resend (late data, an erasure) rebuilds a day end already published, or an earlier one:
    /// a figure whose change rests on too few subjects cannot be held "since" that day end or a
    /// later one (the cluster reads `held_since` as before `as_of`), so it is withheld.
    @Test func aResentDayEndWithholdsWhatItCannotHoldFromAnEarlierOne() throws {
        let day0 = Day(parsing: "2026-06-10")!
        let p = Pilot(id: "p-rand", name: "R", programme: "respiratory", lead: "L", call: "C", funders: [],
                      start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                      milestones: [], outcomes: ["spo2"])
        // Published first: 30 enrolled by day 0. Then 3 late enrolments on day 0 arrive.
        let (before, dirA) = try controlledStore(base: 30, later: [0, 0], day0: day0)
        defer { try? FileManager.default.removeItem(atPath: dirA) }
        let (after, dirB) = try controlledStore(base: 30, later: [3, 0], day0: day0)
        defer { try? FileManager.default.removeItem(atPath: dirB) }
        var state = DisclosureState()
        for offset in 0...1 {
            let (exact, c) = try SnapshotBuilder.buildWithContributions(store: before, pilot: p, catalogue: catalogue,
                                                                       day: day0.advanced(by: offset), revision: 1, msgID: "m\(offset)")
            state = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: state).state
        }
        for offset in 0...1 {
            let (exact, c) = try SnapshotBuilder.buildWithContributions(store: after, pilot: p, catalogue: catalogue,
                                                                       day: day0.advanced(by: offset), revision: 2, msgID: "r\(offset)")
            let resent = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: state).snapshot
            #expect(resent.enrolment.enrolled == .withheld, "day \(offset): \(resent.enrolment.enrolled)")
            let text = resent.json()
            #expect(throws: Never.self, "the cluster reads it") { _ = try SnapshotParser.parse(Array(text.utf8)) }
            // (Message counts count no one: the fixture's 33 messages leave as they are.)
            #expect(!text.contains("\"enrolled\":33") && !text.contains("\"in_follow_up\":33"), "\(text)")
        }
    }

    @Test func aChangeInSumsThatRestsOnFewSubjectsIsHeldUntilItReachesMinCell() throws {
        let day0 = Day(parsing: "2026-06-10")!
        // 30 subjects read spo2 95 every day; from day 1 three of them read 90, from day 2 twelve.
        let (store, dir) = try controlledStore(base: 30, later: [0, 0, 0], day0: day0) { code, day in
            guard let i = Int(code.dropFirst("base-".count)) else { return 95 }
            if day >= day0.advanced(by: 2) && i < 12 { return 90 }
            if day >= day0.advanced(by: 1) && i < 3 { return 90 }
            return 95
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Pilot(id: "p-rand", name: "R", programme: "respiratory", lead: "L", call: "C", funders: [],
                      start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                      milestones: [], outcomes: ["spo2", "exacerbation"])
        var state = DisclosureState()
        var exact: [PilotSnapshot.Outcome] = [], sent: [PilotSnapshot.Outcome] = [], texts: [String] = []
        for offset in 0...2 {
            let (e, c) = try SnapshotBuilder.buildWithContributions(store: store, pilot: p, catalogue: catalogue,
                                                                   day: day0.advanced(by: offset), revision: 1, msgID: "m\(offset)")
            let out = SnapshotDisclosure.apply(e, contributions: c, minCell: 11, state: state)
            state = out.state
            exact.append(try #require(e.outcomes.first { $0.indicator == "spo2" }))
            sent.append(try #require(out.snapshot.outcomes.first { $0.indicator == "spo2" }))
            texts.append(out.snapshot.json())
            _ = try SnapshotParser.parse(Array(texts[offset].utf8))
        }
        let end0 = day0.advanced(by: 1).start.adding(millis: -1)
        // Day 0: the sums of 30 paired subjects leave as they are.
        #expect(exact[0].nPaired == .value(30) && sent[0] == exact[0], "\(sent[0])")
        // Day 1: three subjects moved the sums of the latest values, the changes and their
        // spread; the outcome leaves as it was on day 0, held, its count and baseline with it.
        for (now, before) in [(exact[1].sumLatest, exact[0].sumLatest), (exact[1].sumChange, exact[0].sumChange),
                              (exact[1].m2Change, exact[0].m2Change)] {
            #expect(now != before, "the scenario changes the exact sums")
        }
        let figures: [(String, KeyPath<PilotSnapshot.Outcome, SnapshotFigure>)] = [
            ("n_paired", \.nPaired), ("sum_baseline", \.sumBaseline), ("sum_latest", \.sumLatest),
            ("sum_change", \.sumChange), ("m2_change", \.m2Change),
        ]
        for (name, kp) in figures {
            let published = try #require(exact[0][keyPath: kp].value)
            #expect(sent[1][keyPath: kp] == .held(published, since: end0), "\(name): \(sent[1][keyPath: kp])")
        }
        // Nothing in day 1's snapshot gives the new sums.
        for kp in [\PilotSnapshot.Outcome.sumLatest, \.sumChange, \.m2Change] {
            let v = try #require(exact[1][keyPath: kp].value)
            #expect(!texts[1].contains(":" + JSONWriter.number(v)), "\(v) in \(texts[1])")
        }
        // The cluster's pilot view of day 1 shows day 0's outcome figures, marked held since day 0.
        let views = try [0, 1].map { i -> PilotBoard in
            let snapshot = try SnapshotParser.parse(Array(texts[i].utf8))
            return Dashboard.pilot(p, snapshot: snapshot, catalogue: catalogue, asOf: snapshot.asOf)
        }
        let (shown0, shown1) = (try #require(views[0].outcomes.first?.figures), try #require(views[1].outcomes.first?.figures))
        #expect(shown1.meanLatest != nil && shown1.meanLatest == shown0.meanLatest && shown1.meanChange == shown0.meanChange,
                "\(shown1) vs \(shown0)")
        #expect(shown1.changeCI95 == shown0.changeCI95 && shown1.pctInTarget == shown0.pctInTarget)
        #expect(views[1].json().contains("\"held_since\":\"\(end0)\""), "\(views[1].json())")
        #expect(views[1].table(colour: false).contains("30*"), "\(views[1].table(colour: false))")
        // Day 2: twelve subjects changed since the published sums: they leave.
        #expect(sent[2] == exact[2], "\(sent[2])")
        #expect(close(exact[2].sumLatest.value, Double(30 * 95 - 12 * 5)), "\(String(describing: exact[2].sumLatest.value))")
    }
}

@Suite("Snapshots in the views: an aggregate pilot beside the others")
struct SnapshotStatusTests {
    /// The JSON object of `key` in a status board's JSON, without `drop`.
    private func rows(_ board: StatusBoard, _ key: String, drop: Set<String> = []) throws -> [NSDictionary] {
        let o = try JSONSerialization.jsonObject(with: Data(board.json().utf8)) as? [String: Any]
        return ((o?[key] as? [[String: Any]]) ?? []).map { row in
            NSDictionary(dictionary: row.filter { !drop.contains($0.key) })
        }
    }

    @Test(arguments: [UInt64(4), 23])
    func atMinCellZeroTheStatusRowIsTheRawOne(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        let registry = Registry(pilots: [pilot])
        // An empty store beside it: the cluster, which holds no row of the pilot.
        let clusterDir = NSTemporaryDirectory() + "pilotwatch-cluster-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: clusterDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: clusterDir) }
        let cluster = try Store(path: clusterDir + "/cluster.sqlite")
        for day in [t0.day.advanced(by: -41), t0.day] {
            let text = try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue, day: day, revision: 7, msgID: "m").json()
            let snapshot = try SnapshotParser.parse(Array(text.utf8))
            let t = snapshot.asOf
            let raw = try Dashboard.status(store: data.store, registry: registry, programme: nil, asOf: t)
            let fromSnapshot = try Dashboard.status(store: cluster, registry: registry, programme: nil, asOf: t, snapshots: ["p-rand": snapshot])
            let a = try rows(fromSnapshot, "pilots", drop: ["snapshot", "transmission_adherence"]), b = try rows(raw, "pilots", drop: ["transmission_adherence"])
            #expect(a == b, "\(day)\n\(a)\n\(b)")
            #expect(close(fromSnapshot.pilots[0].figures.transmissionAdherence, raw.pilots[0].figures.transmissionAdherence))
            #expect(fromSnapshot.pilots[0].snapshot?.stale == false)
            let pa = try rows(fromSnapshot, "programmes", drop: ["transmission_adherence"]), pb = try rows(raw, "programmes", drop: ["transmission_adherence"])
            #expect(pa == pb, "\(pa)\n\(pb)")
            // Two days later, the same snapshot is stale.
            let later = try Dashboard.status(store: cluster, registry: registry, programme: nil, asOf: t.adding(days: 2), snapshots: ["p-rand": snapshot])
            #expect(later.pilots[0].snapshot?.stale == true)
            #expect(later.table(colour: false).contains("Z G"))
        }
    }

    @Test(arguments: [UInt64(6), 31])
    func atMinCellZeroThePilotViewIsTheRawOne(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for day in [t0.day.advanced(by: -41), t0.day] {
            let snapshot = try SnapshotParser.parse(Array(try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue,
                                                                                      day: day, revision: 7, msgID: "m").json().utf8))
            let raw = try Dashboard.pilot(store: data.store, pilot: pilot, catalogue: catalogue, since: nil, asOf: snapshot.asOf)
            let fromSnapshot = Dashboard.pilot(pilot, snapshot: snapshot, catalogue: catalogue, asOf: snapshot.asOf)
            func object(_ b: PilotBoard) throws -> [String: Any] {
                var o = try JSONSerialization.jsonObject(with: Data(b.json().utf8)) as? [String: Any] ?? [:]
                // Device lists and subject lists stay at the site: the aggregate pilot shows counts.
                for k in ["devices", "snapshot", "transmission_adherence", "weekly", "outcomes", "events", "quality"] { o[k] = nil }
                return o
            }
            #expect(NSDictionary(dictionary: try object(fromSnapshot)) == NSDictionary(dictionary: try object(raw)), "\(day)")
            #expect(fromSnapshot.milestones == raw.milestones)
            #expect(fromSnapshot.weekly.map(\.enrolments) == raw.weekly.map(\.enrolments))
            for (a, b) in zip(fromSnapshot.weekly, raw.weekly) { #expect(close(a.transmissionAdherence, b.transmissionAdherence)) }
            #expect(fromSnapshot.outcomes.map(\.figures.nPaired) == raw.outcomes.map(\.figures.nPaired))
            for (a, b) in zip(fromSnapshot.outcomes, raw.outcomes) {
                #expect(close(a.figures.meanChange, b.figures.meanChange) && close(a.figures.changeCI95?.upper, b.figures.changeCI95?.upper))
                #expect(close(a.figures.changeCI95?.lower, b.figures.changeCI95?.lower))
                #expect(close(a.figures.meanBaseline, b.figures.meanBaseline) && close(a.figures.meanLatest, b.figures.meanLatest))
                #expect(close(a.figures.pctInTarget, b.figures.pctInTarget) && close(a.figures.improvedPct, b.figures.improvedPct))
            }
            #expect(fromSnapshot.events.map(\.events) == raw.events.map(\.events))
            for (a, b) in zip(fromSnapshot.events, raw.events) {
                #expect(close(a.patientDays, b.patientDays) && close(a.ratePer100PatientMonths, b.ratePer100PatientMonths))
            }
            #expect(fromSnapshot.quality.period.duplicate == raw.quality.period.duplicate)
            #expect(fromSnapshot.quality.period.accepted == raw.quality.period.accepted)
            #expect(fromSnapshot.quality.period.refusedByReason == raw.quality.period.refusedByReason)
            #expect(fromSnapshot.json().contains("\"snapshot\":{\"as_of\""))
        }
    }

    @Test func withheldAndHeldValuesAreMarkedAndThePoolIsWithheldNamingThePilot() throws {
        let data = try RandomStore(seed: 8, subjects: 14)
        let registry = Registry(pilots: [pilot])
        let (exact, c) = try SnapshotBuilder.buildWithContributions(store: data.store, pilot: pilot, catalogue: catalogue, day: t0.day,
                                                                   revision: 1, msgID: "m")
        let (sent, _) = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: DisclosureState())
        let snapshot = try SnapshotParser.parse(Array(sent.json().utf8))
        let board = try Dashboard.status(store: data.store, registry: registry, programme: nil, asOf: snapshot.asOf, snapshots: ["p-rand": snapshot])
        let json = board.json()
        // 14 subjects: few withdraw, few are active; the pilot's part of the pool is missing.
        #expect(snapshot.enrolment.withdrawn == .lessThan(11), "\(snapshot.enrolment.withdrawn)")
        #expect(board.programmes[0].withheldFor == ["p-rand"])
        #expect(json.contains("\"withheld_for\":[\"p-rand\"]"), "\(json)")
        #expect(json.contains("\"withdrawn\":{\"lt\":11}"), "\(json)")
        #expect(board.table(colour: false).contains("<11"), "\(board.table(colour: false))")
        #expect(board.csv().contains("<11"))
        #expect(json.contains("\"snapshot\":{\"as_of\":\"\(snapshot.asOf)\",\"revision\":1,\"min_cell\":11"))
        // The pilot view marks them too, in its table and CSV.
        let view = Dashboard.pilot(pilot, snapshot: snapshot, catalogue: catalogue, asOf: snapshot.asOf)
        let table = view.table(colour: false)
        #expect(table.contains("withdrawn <11"), "\(table)")
        #expect(table.contains("from its site's day-end snapshot (revision 1, min_cell 11)"), "\(table)")
        #expect(view.csv().contains("pilot,p-rand,withdrawn,<11"), "\(view.csv())")
    }
}
