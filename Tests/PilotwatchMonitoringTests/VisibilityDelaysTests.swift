import PilotwatchCore
import Testing

@testable import PilotwatchMonitoring

@Suite("Visibility delays: percentiles within one step")
struct VisibilityDelaysTests {
    @Test func percentilesOfAKnownSpread() {
        let d = VisibilityDelays()
        let committed = Instant(millis: 1_000_000)
        // 1..1000 ms, once each.
        d.record(received: (1...1000).map { committed.adding(millis: -Int64($0)) }, committed: committed)
        #expect(d.count == 1000)
        #expect(d.percentile(0.5) == 500)
        #expect(d.percentile(0.99) == 990)
        #expect(d.maxMillis == 1000)
        #expect(d.summary() == "visibility after acknowledgement: n=1000 p50=500 ms p99=990 ms max=1000 ms")
    }

    @Test func longDelaysFallInCoarserStepsAndNeverPastTheMaximum() {
        let d = VisibilityDelays()
        let committed = Instant(millis: 10_000_000)
        d.record(received: [committed.adding(millis: -2_345), committed.adding(millis: -45_678)], committed: committed)
        #expect(d.percentile(0.5) == 2_350, "10 ms steps between 1 and 10 s")
        #expect(d.percentile(1) == 45_678, "100 ms steps above, capped at the largest seen")
        // A clock that went back counts as no delay, not a negative one.
        d.record(received: [committed.adding(millis: 50)], committed: committed)
        #expect(d.percentile(0.01) == 0)
        #expect(VisibilityDelays.bucket(3_600_000) == VisibilityDelays.buckets - 1)
    }

    @Test func nothingCommittedSaysSo() {
        #expect(VisibilityDelays().summary() == "visibility after acknowledgement: no message committed")
        #expect(VisibilityDelays().percentile(0.5) == nil)
    }
}
