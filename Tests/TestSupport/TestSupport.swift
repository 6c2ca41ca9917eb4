import PilotwatchCore

/// The deterministic generator of the tests (Core's `SplitMix64`), so that a failing random case
/// can be replayed from its seed.
///
/// ```swift
/// var rng = SplitMix(seed: 42)
/// let n = Int.random(in: 0..<10, using: &rng)
/// ```
package typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// The generator whose state is `state` (the same as `init(seed:)`: the seed is the first state).
    package init(state: UInt64) { self.init(seed: state) }
}
