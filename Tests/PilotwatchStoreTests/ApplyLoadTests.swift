import Foundation
import Testing
@testable import PilotwatchStore

@Suite struct ApplyLoadTests {
    @Test func theShareIsTheArrivalRateTimesTheCostOfAByte() {
        var load = ApplyLoad()
        let t0 = ContinuousClock.now
        load.startWaiting(arrived: 1_000, at: t0)
        let prior = load.share(arrived: 1_000 + 10 << 20, at: t0 + .seconds(1))
        #expect(prior.map { abs($0 - 30e-9 * Double(10 << 20)) < 1e-9 } == true, "before a batch, 30 ns a byte")
        load.applied(bytes: 1 << 20, cpu: 0.01)  // 10 ms a MiB: replaces the prior
        #expect(load.share(arrived: 2_000, at: t0 + .milliseconds(50)) == nil, "too short a wait to measure")
        let share = load.share(arrived: 1_000 + 10 << 20, at: t0 + .seconds(1))  // 10 MiB in a second
        #expect(share.map { abs($0 - 0.1) < 1e-9 } == true, "\(String(describing: share))")
    }

    @Test func aSmallBatchMovesTheCostLittle() {
        var load = ApplyLoad()
        load.applied(bytes: 1 << 20, cpu: 0.01)
        load.applied(bytes: 1 << 10, cpu: 0.01)  // a commit's fixed cost over one KiB
        #expect(load.costPerByte < 0.02 / Double(1 << 20))
    }

    @Test func theThreadsCPUTimeGrowsWithItsWork() {
        let before = ApplyLoad.threadCPU()
        var spin = 0
        for i in 0..<5_000_000 { spin &+= i &* i }
        #expect(ApplyLoad.threadCPU() > before, "after \(spin)")
    }
}
