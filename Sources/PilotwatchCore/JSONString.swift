/// The package's one JSON string escaper: `JSON.encode`, the reports' `JSONWriter`, the
/// simulator's payloads and `pilotwatch loadgen` all write strings through it.
///
/// Every writer escapes `"`, `\` and the control characters U+0000-U+001F (`\n`, `\r`, `\t`,
/// the others as `\u00XX` with lowercase hex), writes `/` as is and every other character as
/// UTF-8. Two details differ between writers, and stay so because their bytes are hashed or
/// stored (see ``JSONStringEscaping``).
///
/// ```swift
/// var out: [UInt8] = []
/// JSONString.append("a\"b", to: &out, escaping: .canonical)   // "a\"b"
/// JSONString.quoted("tab\there", escaping: .report)           // "tab\there"
/// ```
package enum JSONString {
    /// Appends `s` to `out` as a JSON string, quotes included.
    package static func append(_ s: String, to out: inout [UInt8], escaping: JSONStringEscaping) {
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { append(utf8: $0, to: &out, escaping: escaping) }
        if done == nil { append(utf8: Array(s.utf8), to: &out, escaping: escaping) }
    }

    /// `s` as a JSON string, quotes included.
    package static func quoted(_ s: String, escaping: JSONStringEscaping) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        append(s, to: &out, escaping: escaping)
        return String(decoding: out, as: UTF8.self)
    }

    private static func append<Bytes: RandomAccessCollection<UInt8>>(utf8 u: Bytes, to out: inout [UInt8],
                                                                     escaping: JSONStringEscaping) where Bytes.Index == Int {
        let short = escaping.contains(.shortBackspaceAndFormFeed)
        let scriptSafe = escaping.contains(.delAndLineSeparators)
        out.append(UInt8(ascii: "\""))
        // Most strings (codes, times, names) need no escape: their bytes go in at once.
        var clean = u.startIndex
        while clean < u.endIndex, !mayNeedEscape(u[clean], scriptSafe: scriptSafe) { clean += 1 }
        out.append(contentsOf: u[u.startIndex..<clean])
        var i = clean
        while i < u.endIndex {
            let b = u[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [backslash, UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [backslash, backslash])
            case 0x0A: out.append(contentsOf: [backslash, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [backslash, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [backslash, UInt8(ascii: "t")])
            case 0x08 where short: out.append(contentsOf: [backslash, UInt8(ascii: "b")])
            case 0x0C where short: out.append(contentsOf: [backslash, UInt8(ascii: "f")])
            case 0..<0x20: appendUnicodeEscape(UInt16(b), to: &out)
            case 0x7F where scriptSafe: appendUnicodeEscape(0x7F, to: &out)
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            case 0xE2 where scriptSafe && i + 1 < u.endIndex && u[i] == 0x80 && (u[i + 1] == 0xA8 || u[i + 1] == 0xA9):
                appendUnicodeEscape(u[i + 1] == 0xA8 ? 0x2028 : 0x2029, to: &out)
                i += 2
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether byte `b` may start something to escape (0xE2 leads U+2028 and U+2029).
    @inline(__always) private static func mayNeedEscape(_ b: UInt8, scriptSafe: Bool) -> Bool {
        b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || (scriptSafe && (b == 0x7F || b == 0xE2))
    }

    private static let backslash = UInt8(ascii: "\\")

    /// `\uXXXX` with lowercase hex digits.
    private static func appendUnicodeEscape(_ v: UInt16, to out: inout [UInt8]) {
        func hex(_ d: UInt16) -> UInt8 { d < 10 ? 48 + UInt8(d) : 87 + UInt8(d) }
        out.append(contentsOf: [backslash, UInt8(ascii: "u"), hex(v >> 12), hex((v >> 8) & 0xF), hex((v >> 4) & 0xF), hex(v & 0xF)])
    }
}

/// The two details in which the package's JSON writers differ. Each writer keeps its own,
/// because changing either would change bytes that are hashed or stored.
///
/// - ``canonical`` (`JSON.encode`, and the quoted values in refusal details): audit trail lines
///   are hashed into the chain, alert values are stored and compared.
/// - ``report`` (`JSONWriter`): views and exports that users read and diff, and snapshot
///   payloads, which are hashed into the database fingerprint.
/// - ``wire`` (the simulator's payloads, `pilotwatch loadgen`): messages that are stored as
///   received, and the seed scenario whose bytes are fixed for a seed.
package struct JSONStringEscaping: OptionSet, Sendable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Backspace and form feed as `\b` and `\f`; without it, `\u0008` and `\u000c`.
    package static let shortBackspaceAndFormFeed = JSONStringEscaping(rawValue: 1)
    /// DEL and the line and paragraph separators as `\u007f`, `\u2028` and `\u2029`, so that the
    /// text is also valid JavaScript; without it, they are written as UTF-8.
    package static let delAndLineSeparators = JSONStringEscaping(rawValue: 2)

    /// `JSON.encode`'s escaping.
    package static let canonical: JSONStringEscaping = [.shortBackspaceAndFormFeed]
    /// `JSONWriter`'s escaping.
    package static let report: JSONStringEscaping = [.delAndLineSeparators]
    /// The simulator's and `loadgen`'s escaping.
    package static let wire: JSONStringEscaping = []
}
