import Foundation
import PilotwatchCore

/// How long messages waited between their acknowledgement (written to the inbox) and the commit
/// that made them visible to the views: a histogram of 1 ms steps up to 1 s, 10 ms up to 10 s and
/// 100 ms up to 10 minutes (longer counts in the last step), from which percentiles are read
/// within one step.
///
/// ```swift
/// let delays = VisibilityDelays()
/// delays.record(received: batch.map(\.receivedAt), committed: .now)   // applier thread
/// print(delays.summary())   // visibility after acknowledgement: n=..., p50=... ms, p99=..., max=...
/// ```
// @unchecked Sendable: `state`, the only mutable property, is read and written only with `lock` held.
public final class VisibilityDelays: @unchecked Sendable {
    private struct State {
        var counts = [Int](repeating: 0, count: VisibilityDelays.buckets)
        var n = 0
        var maxMillis: Int64 = 0
    }

    static let buckets = 1000 + 900 + 5900
    private let lock = NSLock()
    private var state = State()

    public init() {}

    /// Adds one delay per record of a committed batch.
    public func record(received: [Instant], committed: Instant) {
        lock.withLock {
            for r in received {
                let ms = max(0, committed.millis - r.millis)
                state.counts[Self.bucket(ms)] += 1
                state.n += 1
                state.maxMillis = max(state.maxMillis, ms)
            }
        }
    }

    /// The bucket of a delay in milliseconds.
    static func bucket(_ ms: Int64) -> Int {
        if ms < 1000 { return Int(ms) }
        if ms < 10_000 { return 1000 + Int((ms - 1000) / 10) }
        return min(buckets - 1, 1900 + Int((ms - 10_000) / 100))
    }

    /// The upper bound of a bucket, in milliseconds.
    static func upperMillis(_ b: Int) -> Int64 {
        if b < 1000 { return Int64(b) }
        if b < 1900 { return 1000 + Int64(b - 1000 + 1) * 10 }
        return 10_000 + Int64(b - 1900 + 1) * 100
    }

    /// Delays recorded, the `p` quantile's upper bound in milliseconds (0 < p ≤ 1) and the maximum.
    public func percentile(_ p: Double) -> Int64? {
        lock.withLock { () -> Int64? in
            let s = state
            guard s.n > 0 else { return nil }
            let rank = Int((p * Double(s.n)).rounded(.up))
            var seen = 0
            for (b, c) in s.counts.enumerated() {
                seen += c
                if seen >= rank { return min(Self.upperMillis(b), s.maxMillis) }
            }
            return s.maxMillis
        }
    }

    public var count: Int { lock.withLock { state.n } }
    public var maxMillis: Int64 { lock.withLock { state.maxMillis } }

    /// One line for serve's log.
    public func summary() -> String {
        guard let p50 = percentile(0.5), let p99 = percentile(0.99) else {
            return "visibility after acknowledgement: no message committed"
        }
        return "visibility after acknowledgement: n=\(count) p50=\(p50) ms p99=\(p99) ms max=\(maxMillis) ms"
    }
}
