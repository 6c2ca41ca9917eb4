#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A closed interval of real numbers, `[lower, upper]`, such as a confidence interval.
///
/// ```swift
/// Statistics.confidenceInterval95(of: [1, 2, 3])  // Interval(lower: -0.48, upper: 4.48)
/// ```
public struct Interval: Sendable, Hashable, CustomStringConvertible {
    public var lower: Double
    public var upper: Double
    public init(lower: Double, upper: Double) { self.lower = lower; self.upper = upper }
    public var description: String { "[\(lower), \(upper)]" }
}

/// The small amount of statistics the metrics need: means, the sample standard deviation and
/// Student's t distribution, with no dependency beyond the C maths library.
///
/// ```swift
/// Statistics.studentTQuantile(0.975, degreesOfFreedom: 10)  // 2.2281...
/// ```
public enum Statistics {
    /// The arithmetic mean; nil for no values.
    public static func mean(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        return values.reduce(0, +) / Double(values.count)
    }

    /// The sample standard deviation (denominator `n - 1`); nil for fewer than two values.
    public static func sampleStandardDeviation(_ values: [Double]) -> Double? {
        guard values.count >= 2, let m = mean(values) else { return nil }
        let squares = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (squares / Double(values.count - 1)).squareRoot()
    }

    /// The 95% confidence interval of the mean of `values`: `mean ± t(0.975, n-1) · s / √n`.
    /// Nil for fewer than two values (no spread to estimate).
    public static func confidenceInterval95(of values: [Double]) -> Interval? {
        MomentSums(values).confidenceInterval95
    }

    /// The distribution function of Student's t with `df` degrees of freedom (any real `df > 0`).
    public static func studentTCDF(_ t: Double, degreesOfFreedom df: Double) -> Double {
        guard df > 0, !t.isNaN else { return .nan }
        if t.isInfinite { return t > 0 ? 1 : 0 }
        // P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2).
        let x = df / (df + t * t)
        let tail = 0.5 * regularizedIncompleteBeta(x, a: df / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The `p`-quantile of Student's t with `df` degrees of freedom, found by bisection on
    /// ``studentTCDF(_:degreesOfFreedom:)``; nil unless `0 < p < 1` and `df > 0`.
    ///
    /// Known values: `t(0.975, 1) = 12.706`, `t(0.975, 2) = 4.303`, `t(0.975, 10) = 2.228`,
    /// `t(0.975, 30) = 2.042`, and `t(0.975, df) → 1.960` as `df` grows.
    public static func studentTQuantile(_ p: Double, degreesOfFreedom df: Double) -> Double? {
        guard p > 0, p < 1, df > 0, df.isFinite else { return nil }
        if p == 0.5 { return 0 }
        if p < 0.5 { return studentTQuantile(1 - p, degreesOfFreedom: df).map { -$0 } }
        var lo = 0.0, hi = 1.0
        while studentTCDF(hi, degreesOfFreedom: df) < p {
            lo = hi
            hi *= 2
            if hi > 1e300 { return nil }
        }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if mid == lo || mid == hi { break }
            if studentTCDF(mid, degreesOfFreedom: df) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The regularized incomplete beta function `I_x(a, b)` for `0 <= x <= 1`, `a, b > 0`
    /// (Lentz's continued fraction, with the symmetry `I_x(a, b) = 1 - I_{1-x}(b, a)`).
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        guard a > 0, b > 0, x >= 0, x <= 1 else { return .nan }
        if x == 0 { return 0 }
        if x == 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * betaContinuedFraction(x, a: a, b: b) / a
        }
        return 1 - exp(logFront) * betaContinuedFraction(1 - x, a: b, b: a) / b
    }

    private static func betaContinuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300, epsilon = 1e-15
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        var m = 1.0
        while m < 100_000 {
            let m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < epsilon { break }
            m += 1
        }
        return h
    }
}
