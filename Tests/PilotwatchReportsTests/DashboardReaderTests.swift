import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import PilotwatchStore
import TestSupport
import Testing


/// One subject's raw data, as a pilot would have sent it.
struct RawSubject {
    var code: String
    var events: [(indicator: String, at: Instant)] = []
    var readings: [(indicator: String, at: Instant, value: Double)] = []
}

let t0 = Instant(millis: 1_781_524_800_000)  // 2026-06-15T12:00:00Z

let spo2 = Indicator(code: "spo2", name: "SpO2", kind: .measurement, unit: "%", range: ValueRange(min: 50, max: 100),
                     programmes: ["respiratory"], direction: .higher, target: ValueRange(min: 90, max: 100))
/// With catalogue windows other than the defaults.
let respRate = Indicator(code: "resp_rate", name: "Respiratory rate", kind: .measurement, unit: "/min",
                         range: ValueRange(min: 4, max: 60), programmes: ["respiratory"], direction: .lower,
                         target: ValueRange(min: 12, max: 20),
                         windows: OutcomeWindows(baselineBeforeDays: 90, baselineAfterDays: 7, followUpDays: 45))

/// A temporary store holding a random pilot `p-rand` (and nothing of `p-none`).
final class RandomStore {
    let dir: String
    let store: Store
    let subjects: [RawSubject]
    /// The as-of instants the tests look at: some fall inside a day that has data after them.
    let instants: [Instant]

    init(seed: UInt64, subjects count: Int = 60) throws {
        dir = NSTemporaryDirectory() + "pilotwatch-reports-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        store = try Store(path: dir + "/store.sqlite", options: StoreOptions(synchronous: .normal))
        var rng = SplitMix(state: seed)
        let instants = [t0, t0.adding(millis: -12_345_678), t0.adding(days: -40).adding(millis: 26_000_000), t0.adding(days: 3)]
        self.instants = instants
        func around(_ t: Instant, days: ClosedRange<Double>) -> Instant {
            t.adding(millis: Int64(Double.random(in: days, using: &rng) * Double(Instant.millisPerDay)))
        }
        var subjects: [RawSubject] = []
        for i in 0..<count {
            var s = RawSubject(code: "subj-" + String(1000 + i))
            if Double.random(in: 0..<1, using: &rng) < 0.8 {
                let e = around(t0, days: -220...8)
                s.events.append(("enrolled", e))
                if Double.random(in: 0..<1, using: &rng) < 0.1 { s.events.append(("enrolled", around(e, days: 0.001...30))) }
                if Double.random(in: 0..<1, using: &rng) < 0.35 { s.events.append(("withdrawn", around(e, days: -20...150))) }
                for _ in 0..<Int.random(in: 0...3, using: &rng) {
                    s.events.append(("exacerbation", around(e, days: -30...200)))
                }
            }
            let n = Int.random(in: 0...90, using: &rng)
            for _ in 0..<n {
                let code = Bool.random(using: &rng) ? "spo2" : "resp_rate"
                let value = code == "spo2" ? Double(Int.random(in: 80...100, using: &rng)) : Double(Int.random(in: 8...30, using: &rng))
                s.readings.append((code, around(t0, days: -260...6), value))
            }
            // Readings on the days of the as-of instants, before and after them.
            for t in instants where Int.random(in: 0..<4, using: &rng) == 0 {
                s.readings.append(("spo2", t.adding(millis: -Int64.random(in: 1...3_600_000, using: &rng)), 95))
                s.readings.append(("spo2", t.adding(millis: Int64.random(in: 1...3_600_000, using: &rng)), 96))
                if Bool.random(using: &rng) { s.readings.append(("resp_rate", t, 15)) }
            }
            // One value per (subject, indicator, time), as the store keeps them.
            var seen = Set<String>()
            s.readings = s.readings.filter { seen.insert("\($0.indicator)@\($0.at.millis)").inserted }
            s.events = s.events.filter { seen.insert("\($0.indicator)@\($0.at.millis)").inserted }
            subjects.append(s)
        }
        self.subjects = subjects

        // Ingest in batches, one observation per message, in a shuffled order.
        let topic = Topic(pilot: "p-rand", device: "d1", kind: .obs)
        var observations: [Observation] = []
        for s in subjects {
            for e in s.events { observations.append(Observation(subject: s.code, indicator: e.indicator, kind: .event, value: 1, at: e.at)) }
            for r in s.readings {
                observations.append(Observation(subject: s.code, indicator: r.indicator, kind: .measurement, value: r.value, at: r.at))
            }
        }
        observations.shuffle(using: &rng)
        var items: [IngestItem] = []
        for (i, o) in observations.enumerated() {
            let message = ObservationMessage(msgID: "m\(i)", sentAt: nil, observations: [o])
            items.append(IngestItem(topic: "pilots/p-rand/d1/obs", receivedAt: t0, verdict: .observations(topic, message), payload: []))
            if items.count == 97 { _ = try store.ingest(items); items = [] }
        }
        _ = try store.ingest(items)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func readings(of s: RawSubject, _ indicator: String) -> [Reading] {
        s.readings.filter { $0.indicator == indicator }.map { Reading(at: $0.at, value: $0.value) }
    }

    /// The facts as the definitions say, computed from the raw data without the store.
    func expectedFacts(asOf t: Instant, historyDays: Int) -> [SubjectFacts] {
        subjects.compactMap { s -> SubjectFacts? in
            let enrolled = s.events.filter { $0.indicator == "enrolled" }.map(\.at).min()
            let withdrawn = enrolled.flatMap { e in s.events.filter { $0.indicator == "withdrawn" && $0.at > e }.map(\.at).min() }
            let all = s.events.map(\.at) + s.readings.map(\.at)
            guard let first = all.min(), first <= t else { return nil }
            let upToT = s.readings.map(\.at).filter { $0 <= t }
            return SubjectFacts(code: s.code, enrolledAt: enrolled, withdrawnAt: withdrawn, firstDataAt: first,
                                lastObservationAt: upToT.max(),
                                activity: ActivityDays(lastDay: t.day, days: upToT.map(\.day), covering: historyDays))
        }.sorted { $0.code < $1.code }
    }
}

@Suite("The metrics reader agrees with the definitions applied to raw data")
struct DashboardReaderTests {
    @Test("subject facts: enrolment, withdrawal, last observation and activity days", arguments: [UInt64(1), 7, 42])
    func subjectFacts(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for t in data.instants {
            for history in [28, 105] {
                let read = try data.store.read { try $0.subjectFacts(pilot: "p-rand", asOf: t, historyDays: history) }
                let expected = data.expectedFacts(asOf: t, historyDays: history)
                #expect(read.count == expected.count)
                for (a, b) in zip(read, expected) {
                    #expect(a.code == b.code)
                    #expect(a.enrolledAt == b.enrolledAt && a.withdrawnAt == b.withdrawnAt, "\(a.code) at \(t)")
                    #expect(a.firstDataAt == b.firstDataAt, "\(a.code) at \(t)")
                    #expect(a.lastObservationAt == b.lastObservationAt, "\(a.code) at \(t): \(String(describing: a.lastObservationAt)) vs \(String(describing: b.lastObservationAt))")
                    #expect(a.activity.days == b.activity.days, "\(a.code) at \(t), \(history) days")
                }
            }
        }
        #expect(try data.store.read { try $0.subjectFacts(pilot: "p-none", asOf: t0) }.isEmpty)
    }

    @Test("outcome pairs: baseline and latest in their windows, per-indicator windows included", arguments: [UInt64(3), 11])
    func outcomePairs(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for t in data.instants {
            for indicator in [spo2, respRate] {
                let read = try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicator: indicator, asOf: t) }
                var expected: [OutcomePair] = []
                for s in data.subjects.sorted(by: { $0.code < $1.code }) {
                    guard let e = s.events.filter({ $0.indicator == "enrolled" }).map(\.at).min(), e <= t else { continue }
                    let values = data.readings(of: s, indicator.code)
                    if let b = Metrics.baseline(values, enrolment: e, windows: indicator.windows, asOf: t),
                       let l = Metrics.latest(values, enrolment: e, windows: indicator.windows, asOf: t) {
                        expected.append(OutcomePair(baseline: b.value, latest: l.value, subject: s.code))
                    }
                }
                #expect(read == expected, "\(indicator.code) at \(t)")
            }
            // Several indicators in one pass: each list as when read alone.
            let together = try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicators: [respRate, spo2], asOf: t) }
            #expect(together.count == 2)
            for (indicator, pairs) in zip([respRate, spo2], together) {
                #expect(pairs == (try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicator: indicator, asOf: t) }),
                        "\(indicator.code) at \(t)")
            }
        }
        // An indicator listed twice (a registry's `outcomes` may repeat a code) fills both places.
        let latestT = try #require(data.instants.max())
        let twice = try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicators: [spo2, respRate, spo2], asOf: latestT) }
        let alone = try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicator: spo2, asOf: latestT) }
        #expect(!alone.isEmpty)
        #expect(twice[0] == alone && twice[2] == alone)
        #expect(try data.store.read { try $0.outcomePairs(pilot: "p-rand", indicators: [], asOf: t0) }.isEmpty)
        #expect(try data.store.read { try $0.outcomePairs(pilot: "p-none", indicators: [spo2], asOf: t0) } == [[]])
    }

    @Test("events: every stored event of the pilot, by subject, indicator and time")
    func events() throws {
        let data = try RandomStore(seed: 5)
        let all = try data.store.read { try $0.pilotEvents(pilot: "p-rand") }
        #expect(Set(all.map(\.indicator)) == ["enrolled", "exacerbation", "withdrawn"])
        for t in data.instants {
            for code in ["enrolled", "exacerbation", "withdrawn"] {
                let expected = data.subjects.sorted { $0.code < $1.code }.flatMap { s in
                    s.events.filter { $0.indicator == code && $0.at <= t }.sorted { $0.at < $1.at }
                        .map { SubjectEvent(subject: s.code, indicator: code, at: $0.at) }
                }
                #expect(all.filter { $0.indicator == code && $0.at <= t } == expected, "\(code) at \(t)")
            }
        }
        #expect(try data.store.read { try $0.pilotEvents(pilot: "p-none") }.isEmpty)
    }

    @Test("the status board computes every pilot figure from what the reader returns")
    func statusBoard() throws {
        let data = try RandomStore(seed: 9)
        let pilot = Pilot(id: "p-rand", name: "Random", programme: "respiratory", lead: "L", call: "C", funders: [],
                          start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                          milestones: [], outcomes: ["spo2"])
        let none = Pilot(id: "p-none", name: "Nothing", programme: "respiratory", lead: "L", call: "C", funders: [],
                         start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 10,
                         milestones: [], outcomes: [])
        let registry = Registry(pilots: [pilot, none])
        for t in data.instants {
            let board = try Dashboard.status(store: data.store, registry: registry, programme: nil, asOf: t)
            let facts = data.expectedFacts(asOf: t, historyDays: Metrics.adherenceWindowDays)
            #expect(board.pilots.count == 2)
            #expect(board.pilots.first?.figures == Metrics.pilot(facts, target: 80, end: pilot.end, asOf: t))
            #expect(board.programmes.first?.figures == Metrics.programme([(facts, 80), ([], 10)], asOf: t))
            #expect(board.pilots.last?.figures.enrolled == 0)
            #expect(board.pilots.last?.figures.transmissionAdherence == nil)
        }
    }
}
