import Foundation
import PilotwatchCore
import Testing
@testable import PilotwatchSim

/// FNV-1a over a whole stream: topic, time, kind and payload of every message.
private func fingerprint(_ sim: Simulation) -> (count: Int, hash: UInt64) {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    var n = 0
    func eat(_ bytes: some Sequence<UInt8>) { for b in bytes { h ^= UInt64(b); h &*= 0x0000_0100_0000_01B3 } }
    for m in sim {
        n += 1
        eat(m.topic.utf8); eat(String(m.at.millis).utf8); eat(m.kind.rawValue.utf8); eat(m.payload)
    }
    return (n, h)
}

@Suite struct DeterminismTests {
    let loaded: Fixtures.Loaded
    init() throws { loaded = try Fixtures.load() }

    @Test func sameSeedGivesByteIdenticalStreams() throws {
        let end = try Fixtures.instant("2026-03-01T00:00:00Z")
        let a = Array(Simulation(scenario: loaded.scenario, seed: 42, end: end))
        let b = Array(Simulation(scenario: loaded.scenario, seed: 42, end: end))
        #expect(a.count > 1000)
        #expect(a == b)
    }

    @Test func differentSeedsGiveDifferentStreams() throws {
        let end = try Fixtures.instant("2026-03-01T00:00:00Z")
        let a = fingerprint(Simulation(scenario: loaded.scenario, seed: 1, end: end))
        let b = fingerprint(Simulation(scenario: loaded.scenario, seed: 2, end: end))
        #expect(a.hash != b.hash)
        // Same world shape: counts within a few percent of each other.
        #expect(abs(a.count - b.count) < a.count / 10)
    }

    @Test func aWindowIsTheTailOfTheWholeStream() throws {
        let end = try Fixtures.instant("2026-03-20T00:00:00Z")
        let whole = Array(Simulation(scenario: loaded.scenario, seed: 3, end: end))
        let window = Array(Simulation(scenario: loaded.scenario, seed: 3, end: end, days: 7))
        let start = end.adding(days: -7)
        #expect(!window.isEmpty)
        #expect(window.allSatisfy { $0.at > start && $0.at <= end })
        #expect(window == whole.filter { $0.at > start })
    }

    @Test func anEarlierEndIsAPrefixOfALaterOne() throws {
        var scenario = loaded.scenario
        for i in scenario.pilots.indices { scenario.pilots[i].misbehaviour.silentLastWeeks = 0 }
        let early = try Fixtures.instant("2026-02-20T12:34:00Z")
        let late = try Fixtures.instant("2026-03-10T00:00:00Z")
        let a = Array(Simulation(scenario: scenario, seed: 9, end: early))
        let b = Array(Simulation(scenario: scenario, seed: 9, end: late))
        #expect(a.count > 100)
        #expect(a == Array(b.prefix(while: { $0.at <= early })))
    }
}

@Suite struct WireTests {
    @Test(arguments: [
        ("2026-01-15T08:30:00Z", "2026-01-15T09:30:00+01:00"),
        ("2026-07-15T08:30:00Z", "2026-07-15T10:30:00+02:00"),
        ("2026-03-29T00:59:59Z", "2026-03-29T01:59:59+01:00"),
        ("2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00"),
        ("2026-10-25T00:59:59Z", "2026-10-25T02:59:59+02:00"),
        ("2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00"),
    ])
    func parisLocalTimesRoundTrip(utc: String, local: String) throws {
        let t = try Fixtures.instant(utc)
        #expect(TimeStyle.local.format(t) == local)
        #expect(TimeStyle.utc.format(t) == utc)
        #expect(RFC3339.parse(local) == t)
    }

    @Test(arguments: [(94.0, 0, "94"), (7.849, 1, "7.8"), (7.85, 2, "7.85"), (0.05, 1, "0.1"), (-1.25, 2, "-1.25"),
                      (2400.4, 0, "2400"), (1.0, 3, "1"), (0.004, 2, "0")])
    func valuesAreFormattedWithoutTrailingZeros(value: Double, decimals: Int, expected: String) {
        #expect(formatValue(value, decimals: decimals) == expected)
    }

    @Test func ndjsonCarriesJSONPayloadsAsObjectsAndBrokenOnesAsText() throws {
        let good = SimMessage(topic: "pilots/p1/dev-0001/obs", payload: Array(#"{"msg_id":"a","observations":[]}"#.utf8),
                              at: Instant(millis: 0), kind: .obs, retain: false, pilot: "p1", observations: 0)
        let line = good.ndjsonLine
        #expect(line.last == UInt8(ascii: "\n"))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(obj["topic"] as? String == "pilots/p1/dev-0001/obs")
        #expect((obj["payload"] as? [String: Any])?["msg_id"] as? String == "a")

        var bad = good
        bad.kind = .malformed
        bad.payload = Array(#"{"msg_id":"a","observations":[{"value":7,8"#.utf8)
        let badObj = try #require(try JSONSerialization.jsonObject(with: Data(bad.ndjsonLine)) as? [String: Any])
        #expect(badObj["payload"] == nil)
        #expect(badObj["payload_text"] as? String == String(decoding: bad.payload, as: UTF8.self))
    }

    @Test func theGeneratorIsDeterministicAndRoughlyUniform() {
        var a = SimRandom(seed: 5), b = SimRandom(seed: 5), c = SimRandom(seed: 6)
        let xs = (0..<1000).map { _ in a.next() }
        #expect(xs == (0..<1000).map { _ in b.next() })
        #expect(xs != (0..<1000).map { _ in c.next() })
        var r = SimRandom(seed: 11)
        let n = 20_000
        let units = (0..<n).map { _ in r.unit() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = units.reduce(0, +) / Double(n)
        #expect(abs(mean - 0.5) < 0.01)
        let poissonMean = Double((0..<n).map { _ in r.poisson(3) }.reduce(0, +)) / Double(n)
        #expect(abs(poissonMean - 3) < 0.1)
        let ints = (0..<n).map { _ in r.int(below: 7) }
        #expect(Set(ints) == Set(0..<7))
    }
}
