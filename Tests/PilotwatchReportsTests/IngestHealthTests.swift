import PilotwatchCore
import PilotwatchReports
import PilotwatchStore
import Testing

@Suite("Ingest health from serve's heartbeat")
struct IngestHealthTests {
    static let now = Instant(millis: 1_796_400_000_000)

    static func beat(secondsAgo: Int64, connected: Bool = true, connectedSecondsAgo: Int64 = 600,
                     stopped: Bool = false) -> ServiceHeartbeat {
        ServiceHeartbeat(pid: 42, startedAt: Instant(millis: now.millis - 3_600_000), beatAt: Instant(millis: now.millis - secondsAgo * 1000),
                         brokerConnected: connected, connectionSince: Instant(millis: now.millis - connectedSecondsAgo * 1000),
                         lastMessageAt: Instant(millis: now.millis - 12_000), backlogBytes: 0, applyLagMillis: 0,
                         stoppedAt: stopped ? Instant(millis: now.millis - secondsAgo * 1000) : nil)
    }

    @Test func aFreshBeatIsRunningSinceTheStart() {
        let h = IngestHealth.evaluate(Self.beat(secondsAgo: 5), now: Self.now)
        #expect(h.state == .running && h.since == Instant(millis: Self.now.millis - 3_600_000))
        #expect(!h.silenceMayBeOurs)
        #expect(h.line(now: Self.now, colour: false) == "ingest: running since 2026-12-04 15:00 UTC, broker connected\nlast message 12 s ago, backlog 0 bytes")
    }

    @Test func aBeatOlderThanTheBoundIsStoppedSinceThatBeat() {
        let h = IngestHealth.evaluate(Self.beat(secondsAgo: 121), now: Self.now)
        #expect(h.state == .stopped && h.since == Instant(millis: Self.now.millis - 121_000))
        #expect(h.silenceMayBeOurs)
        #expect(h.line(now: Self.now, colour: false).hasPrefix("INGEST STOPPED since 2026-12-04 15:57 UTC (no heartbeat from serve for 2 min)"))
        #expect(IngestHealth.evaluate(Self.beat(secondsAgo: 119), now: Self.now).state == .running, "its neighbour within the bound")
    }

    @Test func aCleanStopIsStoppedAtOnce() {
        let h = IngestHealth.evaluate(Self.beat(secondsAgo: 3, stopped: true), now: Self.now)
        #expect(h.state == .stopped)
        #expect(h.line(now: Self.now, colour: false).contains("(serve stopped)"))
    }

    @Test func aLongDisconnectionIsDisconnectedABriefOneIsNot() {
        let long = IngestHealth.evaluate(Self.beat(secondsAgo: 5, connected: false, connectedSecondsAgo: 300), now: Self.now)
        #expect(long.state == .disconnected && long.since == Instant(millis: Self.now.millis - 300_000))
        #expect(long.line(now: Self.now, colour: false).hasPrefix("BROKER DISCONNECTED since"))
        let brief = IngestHealth.evaluate(Self.beat(secondsAgo: 5, connected: false, connectedSecondsAgo: 30), now: Self.now)
        #expect(brief.state == .running)
        #expect(brief.line(now: Self.now, colour: false).contains("broker reconnecting for 30 s"))
    }

    @Test func neverRunIsStoppedWithoutADate() {
        let h = IngestHealth.evaluate(nil, now: Self.now)
        #expect(h.state == .stopped && h.since == nil)
        #expect(h.line(now: Self.now, colour: false).hasPrefix("INGEST NOT RUNNING"))
        #expect(h.line(now: Self.now, colour: false).split(separator: "\n").allSatisfy { $0.count <= 80 })
        var w = JSONWriter()
        w.object { h.write(into: &$0) }
        #expect(w.text.hasPrefix(#"{"ingest":{"state":"stopped","since":null,"silence_may_be_ours":true"#), "\(w.text)")
    }
}
