import PilotwatchCore

/// Europe/Paris civil time, the pilots' local time: +01:00 in winter, +02:00 from the last Sunday of
/// March to the last Sunday of October (switching at 01:00 UTC).
enum ParisTime {
    /// Day 0 (1970-01-01) was a Thursday; 0 = Sunday.
    static func weekday(_ day: Day) -> Int { ((day.index + 4) % 7 + 7) % 7 }

    static func lastSunday(year: Int, month: Int) -> Day {
        let last = Day(year: year, month: month, day: 31) ?? Day(index: 0)
        return last.advanced(by: -weekday(last))
    }

    /// The UTC offset in minutes at `t`.
    static func offsetMinutes(at t: Instant) -> Int {
        let year = t.day.civil.year
        let summerStart = lastSunday(year: year, month: 3).start.adding(millis: 3_600_000)
        let summerEnd = lastSunday(year: year, month: 10).start.adding(millis: 3_600_000)
        return t >= summerStart && t < summerEnd ? 120 : 60
    }

    /// The instant at local hour `hours` (a real number) of UTC day `day` (the local date is the same
    /// for the hours 02:00-23:00 that the simulator uses).
    static func instant(day: Day, localHours hours: Double) -> Instant {
        let guess = day.start.adding(millis: Int64(hours * 3_600_000))
        return guess.adding(millis: -Int64(offsetMinutes(at: guess)) * 60_000)
    }
}

/// How a sender writes times: in UTC (`Z`) or in Paris local time with its offset.
enum TimeStyle: Sendable {
    case utc, local

    func format(_ t: Instant) -> String {
        switch self {
        case .utc:
            return t.description
        case .local:
            let off = ParisTime.offsetMinutes(at: t)
            let shifted = Instant(millis: t.millis + Int64(off) * 60_000).description
            return String(shifted.dropLast()) + (off == 120 ? "+02:00" : "+01:00")
        }
    }
}

/// Formats `v` with at most `decimals` decimals, without trailing zeros: `94`, `7.8`, `0.25`.
func formatValue(_ v: Double, decimals: Int) -> String {
    var scale: Int64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let n = Int64((v * Double(scale)).rounded())
    let negative = n < 0
    let a = negative ? -n : n
    var out = negative ? "-" : ""
    out += String(a / scale)
    var frac = a % scale
    if decimals > 0, frac != 0 {
        var width = decimals
        while frac % 10 == 0 { frac /= 10; width -= 1 }
        let digits = String(frac)
        out += "." + String(repeating: "0", count: width - digits.count) + digits
    }
    return out
}

/// A minimal JSON writer over bytes: the simulator writes payloads itself, so their bytes are
/// identical for a given seed on every run.
struct JSONBytes {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func raw(_ b: UInt8) { bytes.append(b) }

    mutating func string(_ s: String) {
        JSONString.append(s, to: &bytes, escaping: .wire)
    }

    /// `"key":` (after a comma unless `first`).
    mutating func key(_ k: String, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        string(k)
        bytes.append(UInt8(ascii: ":"))
    }
}

/// One observation as a sender holds it before writing it out.
struct Record: Sendable {
    var subject: String?
    var indicator: String
    /// The value as sent (already in the sent unit and rounded); nil for an event without value.
    var value: String?
    var unit: String?
    var at: Instant
}

enum Payload {
    /// An observation message; `extra` adds a field to the first observation (a deliberate contract breach).
    static func observations(msgID: String, sentAt: Instant, pilot: String?, records: [Record], style: TimeStyle,
                             extra: (key: String, value: String)? = nil) -> [UInt8] {
        var j = JSONBytes(capacity: 64 + records.count * 110)
        j.raw("{")
        j.key("msg_id", first: true); j.string(msgID)
        j.key("sent_at"); j.string(style.format(sentAt))
        if let pilot { j.key("pilot"); j.string(pilot) }
        j.key("observations"); j.raw("[")
        for (i, r) in records.enumerated() {
            if i > 0 { j.raw(",") }
            j.raw("{")
            var first = true
            if let s = r.subject { j.key("subject", first: true); j.string(s); first = false }
            j.key("indicator", first: first); j.string(r.indicator)
            if let v = r.value { j.key("value"); j.raw(v) }
            if let u = r.unit { j.key("unit"); j.string(u) }
            j.key("at"); j.string(style.format(r.at))
            if i == 0, let extra { j.key(extra.key); j.string(extra.value) }
            j.raw("}")
        }
        j.raw("]}")
        return j.bytes
    }

    static func status(online: Bool, at: Instant, battery: Int?, firmware: String, style: TimeStyle) -> [UInt8] {
        var j = JSONBytes(capacity: 96)
        j.raw("{")
        j.key("state", first: true); j.string(online ? "online" : "offline")
        j.key("at"); j.string(style.format(at))
        if let battery { j.key("battery_pct"); j.raw(String(battery)) }
        j.key("firmware"); j.string(firmware)
        j.raw("}")
        return j.bytes
    }
}

extension SimMessage {
    /// The message as one NDJSON line (with its newline) for `pilotwatch ingest`:
    /// `{"topic":"...","payload":{...}}`, or `{"topic":"...","payload_text":"..."}` for a payload
    /// that is deliberately not JSON (the raw text, used verbatim by ingest).
    ///
    /// ```swift
    /// out.write(message.ndjsonLine)
    /// ```
    public var ndjsonLine: [UInt8] {
        var j = JSONBytes(capacity: payload.count + topic.utf8.count + 32)
        j.raw("{")
        j.key("topic", first: true); j.string(topic)
        if kind == .malformed {
            j.key("payload_text"); j.string(String(decoding: payload, as: UTF8.self))
        } else {
            j.key("payload"); j.bytes.append(contentsOf: payload)
        }
        j.raw("}\n")
        return j.bytes
    }
}
