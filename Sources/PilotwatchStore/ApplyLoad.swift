import Foundation

/// How much of one core the applier would need to keep up with what arrives: the arrival rate
/// (inbox bytes a second while it waits) times its own CPU time per byte applied (measured on
/// its thread over its recent batches).
///
/// At light load (a paced stream well under what the service takes) that is a small share, and
/// applying beside receiving costs acknowledging little; near full speed it is a large one, and
/// SQLite work would take the CPU receiving needs (on the ingest benchmark, a quarter of the
/// acknowledged rate).
///
/// ```swift
/// var load = ApplyLoad()
/// load.startWaiting(arrived: bytesSoFar)
/// let start = ApplyLoad.threadCPU(); applyBatch(); load.applied(bytes: n, cpu: ApplyLoad.threadCPU() - start)
/// if let share = load.share(arrived: bytesSoFar), share <= 0.25 { applyNow() }
/// ```
struct ApplyLoad {
    /// CPU seconds per byte applied, averaged over recent batches, starting from 30 ns a byte
    /// (about 7 µs for a single-observation message on the ingest benchmark).
    private(set) var costPerByte = 30e-9
    private var waitStart: (at: ContinuousClock.Instant, arrived: Int64)?

    /// A batch of `bytes` took `cpu` seconds of the applier thread's CPU time.
    mutating func applied(bytes: Int64, cpu: Double) {
        guard bytes > 0, cpu >= 0 else { return }
        let cost = cpu / Double(bytes)
        // Weighted by size: one small batch (a commit's fixed cost over few bytes) moves it little.
        let weight = min(1, Double(bytes) / Double(1 << 20))
        costPerByte += (cost - costPerByte) * weight
    }

    /// The applier starts waiting; `arrived` counts every byte the inbox has received so far.
    mutating func startWaiting(arrived: Int64, at now: ContinuousClock.Instant = .now) {
        waitStart = (now, arrived)
    }

    /// The share of one core keeping up would take, from the arrivals since ``startWaiting(arrived:at:)``;
    /// nil without a wait of at least 100 ms to measure over.
    func share(arrived: Int64, at now: ContinuousClock.Instant = .now) -> Double? {
        guard let waitStart else { return nil }
        let elapsed = now - waitStart.at
        guard elapsed >= .milliseconds(100) else { return nil }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(max(0, arrived - waitStart.arrived)) / seconds * costPerByte
    }

    /// CPU time of the calling thread, in seconds (0 where it cannot be read).
    static func threadCPU() -> Double {
        var t = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 else { return 0 }
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
