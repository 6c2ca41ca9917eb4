/// A plain-text table that fits a terminal: columns padded, numbers right-aligned.
///
/// ```swift
/// var t = TextTable(["pilot", "enrolled"], rightAligned: [1])
/// t.row(["resp-copd-idf-01", "42"])
/// print(t.render())
/// ```
public struct TextTable {
    public var header: [String]
    public var rows: [[String]] = []
    public var rightAligned: Set<Int>
    /// Spaces between columns, and after the first one (the label) when different.
    public var gap: Int
    public var labelGap: Int

    /// `gap` 1 (with `labelGap` 2) packs a wide table of right-aligned figures, whose padded
    /// headers already keep the values apart.
    public init(_ header: [String], rightAligned: Set<Int> = [], gap: Int = 2, labelGap: Int? = nil) {
        self.header = header
        self.rightAligned = rightAligned
        self.gap = gap
        self.labelGap = labelGap ?? gap
    }

    public mutating func row(_ cells: [String]) { rows.append(cells) }

    public func render() -> String {
        var widths = header.map(displayWidth)
        for r in rows {
            for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], displayWidth(c)) }
        }
        func joined(_ parts: [String]) -> String {
            var s = ""
            for (i, p) in parts.enumerated() {
                if i > 0 { s += String(repeating: " ", count: i == 1 ? labelGap : gap) }
                s += p
            }
            return s
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, w) in widths.enumerated() {
                let c = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: max(0, w - displayWidth(c)))
                parts.append(rightAligned.contains(i) ? pad + c : c + pad)
            }
            var s = joined(parts)
            while s.hasSuffix(" ") { s.removeLast() }
            return s
        }
        var out = [line(header), joined(widths.map { String(repeating: "-", count: $0) })]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }
}

/// Terminal columns a string takes (escape sequences take none).
public func displayWidth(_ s: String) -> Int {
    var n = 0
    var inEscape = false
    for u in s.unicodeScalars {
        if inEscape { if u == "m" { inEscape = false }; continue }
        if u == "\u{1B}" { inEscape = true; continue }
        n += 1
    }
    return n
}

/// CSV with RFC 4180 quoting.
public enum CSV {
    public static func field(_ s: String) -> String {
        if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return s
    }

    public static func line(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
