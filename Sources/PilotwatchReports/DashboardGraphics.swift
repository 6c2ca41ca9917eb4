import Foundation
import PilotwatchCore

/// Text building blocks of the dashboards: rounding for reading, durations, enrolment bars,
/// sparklines and ANSI colour (only when the caller says the terminal takes it).
///
/// ```swift
/// Graphics.bar(enrolled: 42, target: 120, milestone: 60, width: 10)  // "███▌░░│░░░"
/// Graphics.sparkline([0, 50, 100], max: 100)                          // "▁▅█"
/// ```
public enum Graphics {
    /// Terminal width every table fits.
    public static let width = 80

    // MARK: Numbers and times

    /// A number rounded for reading: whole numbers as they are; otherwise no decimals from 100,
    /// one from 10, two below, three below 1.
    public static func number(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "-" }
        if v == v.rounded(), abs(v) < 1e12 { return String(Int64(v)) }
        let a = abs(v)
        let decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a == 0 ? 0 : 3
        return fixed(v, decimals)
    }

    /// A change with its sign: `+2.2`, `-0.35`, `0`.
    public static func signed(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "-" }
        let s = number(v)
        return v > 0 && !s.hasPrefix("+") ? "+" + s : s
    }

    /// A percentage rounded to a whole number: `78%`; `-` for nil.
    public static func percent(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "-" }
        return fixed(v, 0) + "%"
    }

    /// A percentage with one decimal: `78.4%`.
    public static func percent1(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "-" }
        return fixed(v, 1) + "%"
    }

    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        let s = String(format: "%.\(max(0, decimals))f", v)
        // "-0" and "-0.0" read as 0.
        if s.hasPrefix("-"), s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) { return String(s.dropFirst()) }
        return s
    }

    /// `2026-11-29 08:55` (UTC, to the minute).
    public static func minute(_ t: Instant?) -> String {
        guard let t else { return "-" }
        return String(t.description.prefix(16)).replacingOccurrences(of: "T", with: " ")
    }

    /// How long before `now` the instant was, in the largest unit that keeps it short:
    /// `12m`, `5h`, `3d`; `-` for nil; `0m` for the future.
    public static func ago(_ t: Instant?, now: Instant) -> String {
        guard let t else { return "-" }
        let minutes = max(0, (now.millis - t.millis) / 60_000)
        if minutes < 60 { return "\(minutes)m" }
        if minutes < 48 * 60 { return "\(minutes / 60)h" }
        return "\(minutes / 1440)d"
    }

    // MARK: Bars and sparklines

    private static let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]

    /// An enrolment bar: `enrolled / target` filled with eighth blocks, `░` for the rest, and a
    /// `│` tick where `milestone` (the next milestone's number) falls, when it is still ahead.
    public static func bar(enrolled: Int, target: Int, milestone: Int? = nil, width: Int = 10) -> String {
        guard width > 0 else { return "" }
        let fraction = target > 0 ? min(1, max(0, Double(enrolled) / Double(target))) : (enrolled > 0 ? 1 : 0)
        let eighthsFilled = Int((fraction * Double(width * 8)).rounded(.down))
        var cells = Array(repeating: "░", count: width)
        for i in 0..<width {
            let n = eighthsFilled - i * 8
            if n >= 8 { cells[i] = "█" } else if n > 0 { cells[i] = eighths[n] }
        }
        if let m = milestone, target > 0, m > enrolled, m <= target {
            let cell = min(width - 1, Int((Double(m) / Double(target) * Double(width)).rounded(.down)))
            let filledCells = (eighthsFilled + 7) / 8
            if cell >= filledCells { cells[cell] = "│" }
        }
        return cells.joined()
    }

    private static let levels = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// One character per value, from `▁` (0) to `█` (`max`); a space for nil.
    public static func sparkline(_ values: [Double?], max top: Double) -> String {
        values.map { v -> String in
            guard let v, v.isFinite else { return " " }
            guard top > 0 else { return levels[0] }
            let i = Int((min(1, max(0, v / top)) * 7).rounded())
            return levels[i]
        }.joined()
    }

    // MARK: Colour

    /// ANSI colours; every function returns the text unchanged when `on` is false.
    public enum Colour: String, Sendable {
        case red = "31", green = "32", yellow = "33", dim = "2", bold = "1"

        public func paint(_ text: String, _ on: Bool) -> String {
            on && !text.isEmpty ? "\u{1B}[\(rawValue)m" + text + "\u{1B}[0m" : text
        }
    }

    // MARK: Fitting

    /// `text` cut to `width` columns with a trailing `…` when it is longer.
    public static func truncate(_ text: String, _ width: Int) -> String {
        guard width > 0 else { return "" }
        guard text.count > width else { return text }
        return String(text.prefix(max(0, width - 1))) + "…"
    }

    /// Words joined by `separator` into lines of at most `width` columns, each starting with `indent`.
    public static func wrap(_ parts: [String], separator: String = " · ", width: Int = Graphics.width,
                            indent: String = "") -> [String] {
        var lines: [String] = []
        var line = indent
        for part in parts {
            let candidate = line == indent ? line + part : line + separator + part
            if displayWidth(candidate) > width, line != indent {
                lines.append(line)
                line = indent + part
            } else {
                line = candidate
            }
        }
        if line != indent { lines.append(line) }
        return lines
    }
}
