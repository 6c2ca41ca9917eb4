/// Instants are UTC milliseconds since 1970-01-01T00:00:00Z.
///
/// Every time in pilotwatch is an `Instant`; calendar days are `Day`.
/// ```swift
/// let t = Instant(millis: 1_764_403_200_000)
/// t.day.description // "2025-11-29"
/// ```
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var millis: Int64

    public init(millis: Int64) { self.millis = millis }
    public init(seconds: Double) { self.millis = Int64((seconds * 1000).rounded()) }

    public static let millisPerDay: Int64 = 86_400_000

    public static func < (a: Instant, b: Instant) -> Bool { a.millis < b.millis }

    /// The UTC calendar day that holds this instant.
    public var day: Day {
        Day(index: Int(millis >= 0 ? millis / Self.millisPerDay : (millis - Self.millisPerDay + 1) / Self.millisPerDay))
    }

    public func adding(days: Double) -> Instant {
        Instant(millis: millis + Int64((days * Double(Self.millisPerDay)).rounded()))
    }

    public func adding(millis delta: Int64) -> Instant { Instant(millis: millis + delta) }

    /// Days (a real number) from `self` to `other`.
    public func days(to other: Instant) -> Double {
        Double(other.millis - millis) / Double(Self.millisPerDay)
    }

    /// RFC 3339 in UTC with millisecond precision when needed: `2026-11-29T08:55:00Z`.
    public var description: String {
        let d = day
        let msOfDay = Int(millis - Int64(d.index) * Self.millisPerDay)
        let h = msOfDay / 3_600_000, m = (msOfDay / 60_000) % 60, s = (msOfDay / 1000) % 60, ms = msOfDay % 1000
        let c = d.civil
        guard (0...9999).contains(c.year) else {
            var out = d.description + "T" + pad2(h) + ":" + pad2(m) + ":" + pad2(s)
            if ms != 0 { out += "." + String(1000 + ms).dropFirst() }
            return out + "Z"
        }
        // Written byte by byte: the JSON of a pilot's devices formats thousands of these.
        let count = ms != 0 ? 24 : 20
        return String(unsafeUninitializedCapacity: count) { out in
            writeDate(c, into: out)
            out[10] = UInt8(ascii: "T")
            writeDigits(h, into: out, at: 11, width: 2)
            out[13] = UInt8(ascii: ":")
            writeDigits(m, into: out, at: 14, width: 2)
            out[16] = UInt8(ascii: ":")
            writeDigits(s, into: out, at: 17, width: 2)
            if ms != 0 {
                out[19] = UInt8(ascii: ".")
                writeDigits(ms, into: out, at: 20, width: 3)
            }
            out[count - 1] = UInt8(ascii: "Z")
            return count
        }
    }
}

/// A UTC calendar day, counted from 1970-01-01 (day 0).
///
/// ```swift
/// Day(parsing: "2026-06-30")?.description // "2026-06-30"
/// ```
public struct Day: Hashable, Comparable, Sendable, CustomStringConvertible, Strideable {
    public var index: Int

    public init(index: Int) { self.index = index }

    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= Day.daysIn(month: month, year: year) else { return nil }
        index = Day.daysFromCivil(year, month, day)
    }

    /// Parses `YYYY-MM-DD`; nil for anything else.
    public init?(parsing text: some StringProtocol) {
        let u = Array(text.utf8)
        guard u.count == 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              let y = digits(u, 0, 4), let m = digits(u, 5, 2), let d = digits(u, 8, 2)
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public static func < (a: Day, b: Day) -> Bool { a.index < b.index }
    public func distance(to other: Day) -> Int { other.index - index }
    public func advanced(by n: Int) -> Day { Day(index: index + n) }

    /// Midnight UTC at the start of this day.
    public var start: Instant { Instant(millis: Int64(index) * Instant.millisPerDay) }

    public var civil: (year: Int, month: Int, day: Int) { Day.civilFromDays(index) }

    public var description: String {
        let c = civil
        guard (0...9999).contains(c.year) else { return format4(c.year) + "-" + pad2(c.month) + "-" + pad2(c.day) }
        return String(unsafeUninitializedCapacity: 10) { out in
            writeDate(c, into: out)
            return 10
        }
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// Parses RFC 3339 date-times with a mandatory offset (`Z`, `+01:00`, `-05:30`)
/// and optional fractional seconds, as the wire contract requires.
///
/// ```swift
/// RFC3339.parse("2026-11-29T08:55:00+01:00")?.description // "2026-11-29T07:55:00Z"
/// ```
public enum RFC3339 {
    public static func parse(_ text: some StringProtocol) -> Instant? {
        parse(bytes: Array(text.utf8))
    }

    public static func parse(bytes u: [UInt8]) -> Instant? {
        // YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)
        guard u.count >= 20, u.count <= 40 else { return nil }
        guard let day = Day(parsing: String(decoding: u[0..<10], as: UTF8.self)) else { return nil }
        guard u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: "t"),
              u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"),
              let hh = digits(u, 11, 2), let mi = digits(u, 14, 2), let ss = digits(u, 17, 2),
              hh < 24, mi < 60, ss < 60
        else { return nil }
        var i = 19
        var fracMillis: Int64 = 0
        if u[i] == UInt8(ascii: ".") {
            i += 1
            let startFrac = i
            var scale: Int64 = 100
            while i < u.count, let dgt = digitValue(u[i]) {
                fracMillis += Int64(dgt) * scale
                scale /= 10
                i += 1
            }
            guard i > startFrac, i - startFrac <= 9 else { return nil }
        }
        guard i < u.count else { return nil }
        var offsetMinutes = 0
        if u[i] == UInt8(ascii: "Z") || u[i] == UInt8(ascii: "z") {
            i += 1
        } else if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
            let sign = u[i] == UInt8(ascii: "+") ? 1 : -1
            guard u.count - i == 6, u[i + 3] == UInt8(ascii: ":"),
                  let oh = digits(u, i + 1, 2), let om = digits(u, i + 4, 2), oh < 24, om < 60
            else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        } else {
            return nil
        }
        guard i == u.count else { return nil }
        let secs = Int64(day.index) * 86_400 + Int64(hh * 3600 + mi * 60 + ss) - Int64(offsetMinutes * 60)
        return Instant(millis: secs * 1000 + fracMillis)
    }
}

@inline(__always) func digitValue(_ b: UInt8) -> Int? {
    b >= 48 && b <= 57 ? Int(b - 48) : nil
}

func digits(_ u: [UInt8], _ start: Int, _ count: Int) -> Int? {
    guard start + count <= u.count else { return nil }
    var v = 0
    for k in start..<(start + count) {
        guard let d = digitValue(u[k]) else { return nil }
        v = v * 10 + d
    }
    return v
}

func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

/// Writes `value` (non-negative) as `width` decimal digits, zero-padded, at `out[at...]`.
private func writeDigits(_ value: Int, into out: UnsafeMutableBufferPointer<UInt8>, at: Int, width: Int) {
    var v = value
    for i in stride(from: at + width - 1, through: at, by: -1) {
        out[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
        v /= 10
    }
}

/// Writes `YYYY-MM-DD` (a year in 0...9999) at `out[0..<10]`.
private func writeDate(_ c: (year: Int, month: Int, day: Int), into out: UnsafeMutableBufferPointer<UInt8>) {
    writeDigits(c.year, into: out, at: 0, width: 4)
    out[4] = UInt8(ascii: "-")
    writeDigits(c.month, into: out, at: 5, width: 2)
    out[7] = UInt8(ascii: "-")
    writeDigits(c.day, into: out, at: 8, width: 2)
}
func format4(_ v: Int) -> String {
    let s = String(v)
    return s.count >= 4 ? s : String(repeating: "0", count: 4 - s.count) + s
}
