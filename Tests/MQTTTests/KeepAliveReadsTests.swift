// Unit tests of the paced reads that keep a paused subscriber's connection alive.
@testable import MQTT
import Testing

@Suite("KeepAliveReads")
struct KeepAliveReadsTests {
    @Test("a paused subscriber reads every half keep-alive", arguments: [(5, 2.5), (30, 15.0), (65535, 32767.5)])
    func intervalIsHalfTheKeepAlive(keepAlive: Int, seconds: Double) {
        #expect(KeepAliveReads(keepAlive: keepAlive).interval == duration(seconds: seconds))
    }

    @Test("never less than a second apart, even for a keep-alive below the configuration's minimum")
    func intervalIsAtLeastOneSecond() {
        #expect(KeepAliveReads(keepAlive: 1).interval == .seconds(1))
    }

    @Test("a read is due one interval after the last one, and a read restarts the count")
    func dueAfterOneInterval() {
        let start = ContinuousClock.now
        var reads = KeepAliveReads(keepAlive: 5, now: start)
        #expect(!reads.isDue(at: start))
        #expect(!reads.isDue(at: start + .milliseconds(2499)))
        #expect(reads.isDue(at: start + .milliseconds(2500)))
        reads.noteRead(at: start + .seconds(2))
        #expect(!reads.isDue(at: start + .milliseconds(4499)))
        #expect(reads.isDue(at: start + .milliseconds(4500)))
    }

    @Test("a paused poll waits at most 100 ms, less when a read is nearly due, not at all when it is due")
    func pollTimeout() {
        let start = ContinuousClock.now
        let reads = KeepAliveReads(keepAlive: 5, now: start)
        #expect(reads.pollTimeout(at: start) == 100)
        #expect(reads.pollTimeout(at: start + .milliseconds(2450)) == 50)
        #expect(reads.pollTimeout(at: start + .microseconds(2_499_500)) == 1)
        #expect(reads.pollTimeout(at: start + .milliseconds(2500)) == 0)
        #expect(reads.pollTimeout(at: start + .seconds(60)) == 0)
    }
}
