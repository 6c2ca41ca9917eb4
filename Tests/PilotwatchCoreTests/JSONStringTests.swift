import PilotwatchCore
import Testing

// The one JSON string escaper, in its three uses. The bytes of each are pinned: `JSON.encode`'s
// are hashed in the audit trail, `JSONWriter`'s in snapshot fingerprints and read in exports,
// the simulator's fixed for a seed.

/// Every character class the writers treat differently: quote, backslash, slash, the named
/// control characters, other controls, DEL, U+2028, U+2029, other non-ASCII (U+2026 also
/// starts with the byte 0xE2), and an astral character.
private let sample = "q\" b\\ s/ n\n r\r t\t b\u{8} f\u{C} nul\u{0} esc\u{1B} us\u{1F} del\u{7F} ls\u{2028} ps\u{2029} …é😀"

@Suite("JSON string escaping")
struct JSONStringTests {
    @Test func canonicalIsJSONEncode() {
        let expected = #""q\" b\\ s/ n\n r\r t\t b\b f\f nul\u0000 esc\u001b us\u001f del"# + "\u{7F} ls\u{2028} ps\u{2029} …é😀\""
        #expect(JSONString.quoted(sample, escaping: .canonical) == expected)
        #expect(String(decoding: JSON.encode(.string(sample)), as: UTF8.self) == expected)
    }

    @Test func reportEscapesDELAndLineSeparators() {
        let expected = #""q\" b\\ s/ n\n r\r t\t b\u0008 f\u000c nul\u0000 esc\u001b us\u001f del\u007f ls\u2028 ps\u2029 "# + "…é😀\""
        #expect(JSONString.quoted(sample, escaping: .report) == expected)
    }

    @Test func wireWritesDELAndLineSeparatorsAsUTF8() {
        let expected = #""q\" b\\ s/ n\n r\r t\t b\u0008 f\u000c nul\u0000 esc\u001b us\u001f del"# + "\u{7F} ls\u{2028} ps\u{2029} …é😀\""
        #expect(JSONString.quoted(sample, escaping: .wire) == expected)
    }

    @Test(arguments: ["", "plain", "pilots/resp-copd-idf-01/dev-0042/obs", "2026-11-29T09:00:00Z", "\u{E2}", "a\u{2028}", "\u{2029}"])
    func everyEscapingParsesBack(_ s: String) throws {
        for escaping: JSONStringEscaping in [.canonical, .report, .wire] {
            var bytes: [UInt8] = []
            JSONString.append(s, to: &bytes, escaping: escaping)
            #expect(try JSON.parse(bytes) == .string(s))
        }
    }
}
