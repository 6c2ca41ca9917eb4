/// SplitMix64: turns one 64-bit seed into a well-mixed stream of 64-bit values. The package's
/// one seeded generator: it seeds the simulator's `SimRandom`, derives its independent streams,
/// and drives the random cases of the tests (which replay a failure from its seed).
///
/// The sequence for a seed never changes: the seed scenario and the tests depend on it.
///
/// ```swift
/// var s = SplitMix64(seed: 42)
/// let a = s.next()
/// let n = Int.random(in: 0..<10, using: &s)
/// ```
package struct SplitMix64: RandomNumberGenerator, Sendable {
    package var state: UInt64
    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One mixed value from `a` and `b`, for deriving seeds and hash-like draws that consume no stream.
    package static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var s = SplitMix64(seed: a ^ (b &* 0xD6E8_FEB8_6659_FD93))
        return s.next()
    }
}
