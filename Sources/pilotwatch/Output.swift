import ArgumentParser
import Foundation
import PilotwatchCore
#if canImport(Glibc)
import Glibc
#endif

/// `--format` for views.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// A progress line on stderr, shown only when stderr is a terminal.
final class Progress {
    private let label: String
    private let total: Int64?
    private let enabled = isatty(STDERR_FILENO) == 1
    private var last = Date.distantPast

    init(label: String, total: Int64?) {
        self.label = label
        self.total = total
    }

    func update(done: Int64) {
        guard enabled, Date().timeIntervalSince(last) > 0.1 else { return }
        last = Date()
        var line = "\r\(label): "
        if let total, total > 0 {
            let frac = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(frac * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += String(format: "%3.0f%%", frac * 100)
        } else {
            line += "\(done / 1024) KiB"
        }
        writeStderr(line)
    }

    func finish() {
        guard enabled else { return }
        writeStderr("\r\u{1B}[K")
    }
}

/// The value of a time option (`--as-of`, `--since`, ...), nil when not given; a usage error
/// (exit 64) naming the option and the value when it is not a time.
func timeOption(_ text: String?, _ flag: String, endOfDay: Bool = false, now: Instant = .now) throws -> Instant? {
    guard let text else { return nil }
    guard let t = parseTimeArgument(text, endOfDay: endOfDay, now: now) else {
        throw CLIError("\(flag) \"\(text)\" is not a time; give \(timeArgumentHelp)", kind: .usage)
    }
    return t
}

/// Parses a time argument: an RFC 3339 time, a date (`2026-06-30`), or a duration back from
/// now (`7d`, `12h`, `30m`, `2w`). A date means its start, or its last millisecond with `endOfDay`
/// (so `--as-of 2026-06-30` includes that whole day).
func parseTimeArgument(_ text: String, endOfDay: Bool = false, now: Instant = .now) -> Instant? {
    if let i = RFC3339.parse(text) { return i }
    if let d = Day(parsing: text) { return endOfDay ? d.advanced(by: 1).start.adding(millis: -1) : d.start }
    guard let unit = text.last, let n = Double(text.dropLast()), n >= 0, n.isFinite, n < 1e6 else { return nil }
    let days: Double
    switch unit {
    case "d": days = n
    case "h": days = n / 24
    case "m": days = n / 1440
    case "w": days = n * 7
    default: return nil
    }
    return now.adding(days: -days)
}

let timeArgumentHelp = "an RFC 3339 time (2026-11-29T09:00:00Z), a date (2026-11-29) or a duration back from now (7d, 12h, 30m, 2w)"
