#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PilotwatchCore

/// FNV-1a over UTF-8: a stable hash of a name (Swift's `Hasher` is seeded per process, so never used here).
func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in text.utf8 {
        h ^= UInt64(b)
        h &*= 0x0000_0100_0000_01B3
    }
    return h
}

/// The simulator's pseudo-random generator: xoshiro256** seeded through SplitMix64.
/// Deterministic on every platform for the integer draws; the simulator never uses the system RNG.
///
/// ```swift
/// var r = SimRandom(seed: 7)
/// let u = r.unit()          // [0, 1)
/// let n = r.poisson(2.5)
/// ```
public struct SimRandom: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    /// An independent stream for `name` (a pilot id, a subject's role), derived from `seed`.
    public init(seed: UInt64, stream name: String) {
        self.init(seed: SplitMix64.mix(seed, stableHash(name)))
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [a, b).
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * unit() }

    /// Uniform integer in 0..<n without modulo bias (Lemire); 0 when n <= 1.
    public mutating func int(below n: Int) -> Int {
        guard n > 1 else { return 0 }
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    public mutating func bernoulli(_ p: Double) -> Bool { p > 0 && unit() < p }

    /// Standard normal (Box–Muller, one value per call).
    public mutating func normal() -> Double {
        let u1 = 1 - unit()   // (0, 1]
        let u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    public mutating func normal(mean: Double, sd: Double) -> Double { sd > 0 ? mean + sd * normal() : mean }

    /// Exponential with the given rate (events per unit); +infinity when the rate is 0.
    public mutating func exponential(rate: Double) -> Double {
        rate > 0 ? -log(1 - unit()) / rate : .infinity
    }

    /// Poisson count with mean `lambda` (Knuth for small means, a rounded normal above 60).
    public mutating func poisson(_ lambda: Double) -> Int {
        guard lambda > 0 else { return 0 }
        if lambda > 60 { return max(0, Int(normal(mean: lambda, sd: lambda.squareRoot()).rounded())) }
        let limit = exp(-lambda)
        var k = 0
        var p = unit()
        while p > limit { k += 1; p *= unit() }
        return k
    }

    /// A count with fractional mean: `floor(x)` plus one more with probability `x - floor(x)`.
    public mutating func count(_ x: Double) -> Int {
        guard x > 0 else { return 0 }
        let whole = x.rounded(.down)
        return Int(whole) + (bernoulli(x - whole) ? 1 : 0)
    }

    /// `n` lowercase hex digits.
    public mutating func hex(_ n: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(n)
        var bits = next(), left = 16
        for _ in 0..<n {
            if left == 0 { bits = next(); left = 16 }
            out.append(digits[Int(bits & 15)])
            bits >>= 4; left -= 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
