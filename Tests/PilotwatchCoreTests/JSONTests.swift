import PilotwatchCore
import Testing

private func parse(_ text: String, maxDepth: Int = 32) throws(JSONError) -> JSONValue {
    try JSON.parse(Array(text.utf8), maxDepth: maxDepth)
}

private func parseError(_ text: String, maxDepth: Int = 32) -> JSONError? {
    parseError(bytes: Array(text.utf8), maxDepth: maxDepth)
}

private func parseError(bytes: [UInt8], maxDepth: Int = 32) -> JSONError? {
    do {
        _ = try JSON.parse(bytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

private func encoded(_ v: JSONValue) -> String { String(decoding: JSON.encode(v), as: UTF8.self) }

@Suite("JSON parser and encoder")
struct JSONTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try parse(#" { "s": "x\"y", "n": -12.5e-1, "t": true, "f": false, "z": null, "a": [1, [], {}], "o": {"k": "v"} } "#)
        guard case .object(let o) = v else {
            Issue.record("expected an object")
            return
        }
        #expect(o.keys == ["s", "n", "t", "f", "z", "a", "o"])
        #expect(v["s"] == .string("x\"y"))
        #expect(v["n"]?.number?.lexeme == "-12.5e-1")
        #expect(v["n"]?.number?.double == -1.25)
        #expect(v["t"] == .bool(true))
        #expect(v["f"] == .bool(false))
        #expect(v["z"] == .null)
        #expect(v["a"] == .array([.number(JSONNumber(1)), .array([]), .object(JSONObject())]))
        #expect(v["o"]?["k"] == .string("v"))
    }

    @Test func scalarsAtTopLevel() throws {
        #expect(try parse("42") == .number(JSONNumber(42)))
        #expect(try parse(#""a""#) == .string("a"))
        #expect(try parse("null") == .null)
    }

    @Test(arguments: [
        ("0", 0.0), ("-0", -0.0), ("1", 1), ("0.1", 0.1), ("94.5", 94.5), ("1e2", 100), ("1E+2", 100), ("2.5e-3", 0.0025),
        ("123456789012345678901234567890", 123456789012345678901234567890.0), ("0.000000000000000000000001", 1e-24),
        ("1.7976931348623157e308", 1.7976931348623157e308), ("5e-324", Double.leastNonzeroMagnitude), ("1e-400", 0),
        ("0.30000000000000004", 0.30000000000000004), ("9007199254740993", 9007199254740992),
    ])
    func numbersKeepTheirLexemeAndNearestDouble(_ lexeme: String, _ expected: Double) throws {
        let n = try #require(try parse(lexeme).number)
        #expect(n.lexeme == lexeme)
        #expect(n.double == expected)
        #expect(n.double.sign == expected.sign)
    }

    @Test func hugeNumbersParseAsNonFinite() throws {
        let n = try #require(try parse("1e999").number)
        #expect(n.lexeme == "1e999")
        #expect(!n.isFinite)
        #expect(n.double == .infinity)
        #expect(try parse("-1e400").number?.double == -.infinity)
        #expect(try parse("0e999").number?.double == 0)
    }

    @Test(arguments: ["01", "-01", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "1.e3", "0x10", "1_000"])
    func invalidNumbers(_ text: String) {
        let e = parseError(text)
        #expect(e != nil, "\(text) parsed")
    }

    @Test func leadingZeroIsReportedAsAnInvalidNumber() {
        #expect(parseError("[01]")?.reason == .invalidNumber)
        #expect(parseError("[01]")?.offset == 1)
    }

    @Test(arguments: ["NaN", "-NaN", "Infinity", "-Infinity", "[1, NaN]", #"{"v": Infinity}"#])
    func nanAndInfinityAreNotJSON(_ text: String) {
        #expect(parseError(text)?.reason == .notANumberLiteral)
    }

    @Test func veryLongNumberIsRefused() {
        let e = parseError("1" + String(repeating: "0", count: 600))
        #expect(e?.reason == .numberTooLong(limit: JSON.maxNumberLength))
    }

    @Test func stringEscapes() throws {
        let v = try parse(#""a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00""#)
        #expect(v == .string("a\"b\\c/d\u{08}\u{0C}\n\r\té€😀"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
    }

    @Test(arguments: [
        (#""\ud83d""#, JSONError.Reason.loneSurrogate), (#""\ude00""#, .loneSurrogate), (#""\ud83d\u0041""#, .loneSurrogate),
        (#""\x41""#, .invalidEscape), (#""\u12""#, .invalidEscape), (#""\u12G4""#, .invalidEscape), (#""\'""#, .invalidEscape),
    ])
    func badEscapes(_ text: String, _ reason: JSONError.Reason) {
        #expect(parseError(text)?.reason == reason)
    }

    @Test func controlCharactersMustBeEscaped() {
        #expect(parseError("\"a\nb\"")?.reason == .controlCharacterInString(0x0A))
        #expect(parseError("\"a\u{1}b\"")?.reason == .controlCharacterInString(0x01))
        #expect(parseError("\"a\tb\"")?.offset == 2)
    }

    @Test(arguments: [
        [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xE0, 0x80, 0x80, 0x22],
        [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xF8, 0x88, 0x80, 0x80, 0x80, 0x22],
        [0x22, 0xE2, 0x82, 0x22], [0xFE, 0xFF], [0x5B, 0x31, 0x2C, 0xC3, 0x5D],
    ] as [[UInt8]])
    func invalidUTF8IsRefused(_ bytes: [UInt8]) {
        let e = parseError(bytes: bytes)
        #expect(e?.reason == .invalidUTF8, "\(String(describing: e))")
    }

    @Test func byteOrderMarkIsRefused() {
        #expect(parseError(bytes: [0xEF, 0xBB, 0xBF, 0x7B, 0x7D])?.reason == .unexpectedByte(0xEF))
    }

    @Test func validMultibyteUTF8() throws {
        #expect(try parse("\"é€😀\"") == .string("é€😀"))
    }

    @Test func duplicateKeysAreRefused() {
        let e = parseError(#"{"a":1,"b":2,"a":3}"#)
        #expect(e?.reason == .duplicateKey("a"))
        #expect(e?.offset == 13)
        #expect(e?.description == #"invalid JSON at byte 13: duplicate key "a""#)
        #expect(parseError(#"{"a":1,"\u0061":2}"#)?.reason == .duplicateKey("a"))
        // Large objects use a set.
        let many = (0..<50).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(parseError("{" + many + ",\"k49\":0}")?.reason == .duplicateKey("k49"))
        #expect(parseError("{" + many + "}") == nil)
        // The same key in sibling objects is fine.
        #expect(parseError(#"[{"a":1},{"a":2}]"#) == nil)
    }

    @Test func structuralErrors() {
        #expect(parseError("")?.reason == .emptyInput)
        #expect(parseError("   \n")?.reason == .unexpectedEnd)
        #expect(parseError("{} x")?.reason == .trailingData)
        #expect(parseError("{}{}")?.reason == .trailingData)
        #expect(parseError("[1,]")?.reason == .unexpectedByte(UInt8(ascii: "]")))
        #expect(parseError(#"{"a":1,}"#)?.reason == .unexpectedByte(UInt8(ascii: "}")))
        #expect(parseError(#"{"a" 1}"#)?.reason == .unexpectedByte(UInt8(ascii: "1")))
        #expect(parseError("{a:1}")?.reason == .unexpectedByte(UInt8(ascii: "a")))
        #expect(parseError("[1 2]")?.reason == .unexpectedByte(UInt8(ascii: "2")))
        #expect(parseError("tru")?.reason == .unexpectedEnd)
        #expect(parseError("nul1")?.reason == .unexpectedByte(UInt8(ascii: "1")))
        #expect(parseError(#""abc"#)?.reason == .unexpectedEnd)
        #expect(parseError("[")?.reason == .unexpectedEnd)
        #expect(parseError("{")?.reason == .unexpectedEnd)
        #expect(parseError("1e308*10")?.reason == .trailingData)
    }

    @Test func nestingLimit() {
        let depth32 = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        let depth33 = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(parseError(depth32) == nil)
        #expect(parseError(depth33)?.reason == .nestingTooDeep(limit: 32))
        #expect(parseError(depth33)?.offset == 32)
        #expect(parseError(#"{"a":{"b":{"c":1}}}"#, maxDepth: 2)?.reason == .nestingTooDeep(limit: 2))
        #expect(parseError(#"{"a":{"b":1}}"#, maxDepth: 2) == nil)
        // Callers cannot ask for unbounded depth.
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(parseError(deep, maxDepth: 1_000_000)?.reason == .nestingTooDeep(limit: JSON.maxDepthLimit))
    }

    @Test func hundredThousandDeepNestingIsRefusedWithoutCrashing() {
        for open in ["[", #"{"a":"#] {
            let bytes = Array(String(repeating: open, count: 100_000).utf8)
            #expect(parseError(bytes: bytes)?.reason == .nestingTooDeep(limit: 32))
        }
        let balanced = Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        #expect(parseError(bytes: balanced)?.reason == .nestingTooDeep(limit: 32))
    }

    @Test func tenMegabytes() throws {
        let big = "\"" + String(repeating: "a", count: 10_000_000) + "\""
        #expect(try parse(big).string?.utf8.count == 10_000_000)
        var invalid = Array(big.utf8)
        invalid[5_000_000] = 0xFF
        #expect(parseError(bytes: invalid)?.reason == .invalidUTF8)
        #expect(parseError(bytes: invalid)?.offset == 5_000_000)
        let array = "[" + Array(repeating: "1", count: 1_000_000).joined(separator: ",") + "]"
        #expect(try parse(array).array?.count == 1_000_000)
    }

    @Test(arguments: [
        #"{"msg_id":"dev-0042-000001234","observations":[{"subject":"p-7f3a9c21","indicator":"spo2","value":94,"unit":"%","at":"2026-11-29T08:55:00+01:00"}]}"#,
        #"[1,-0,2.50,1e999,1E-7,true,false,null,"",{},[],{"z":1,"a":[{}]}]"#,
        #""quote \" backslash \\ slash / newline \n tab \t nul \u0000 del \u001f é 😀""#,
        #"{"":""}"#,
    ])
    func roundTrip(_ compact: String) throws {
        let v = try parse(compact)
        #expect(try JSON.parse(JSON.encode(v)) == v)
        let again = try parse(encoded(v))
        #expect(encoded(again) == encoded(v))
        #expect(encoded(v) == compact)
    }

    @Test func encodeIsCompactAndKeepsOrder() throws {
        let v = try parse("{ \"b\" : [ 1 , 2 ] ,\n \"a\" : \"\\u00e9\\/\" }")
        #expect(encoded(v) == #"{"b":[1,2],"a":"é/"}"#)
        let built: JSONValue = ["z": 1, "a": [true, nil, 2.5, "x\n"]]
        #expect(encoded(built) == #"{"z":1,"a":[true,null,2.5,"x\n"]}"#)
    }

    @Test func objectEditing() {
        var o = JSONObject([("a", 1), ("b", 2), ("a", 3)])
        #expect(o.keys == ["a", "b"])
        #expect(o["a"] == 3)
        o["c"] = "x"
        o["b"] = nil
        #expect(o.keys == ["a", "c"])
        #expect(o.pairs.map(\.key) == ["a", "c"])
        #expect(JSONNumber(.nan) == nil)
        #expect(JSONNumber(0.5)?.lexeme == "0.5")
    }

    @Test func collectionInput() throws {
        let text = #"{"a":[1,2]}"#
        #expect(try JSON.parse(text.utf8) == JSON.parse(Array(text.utf8)))
        #expect(try JSON.parse(Array(text.utf8)[...]) == JSON.parse(Array(text.utf8)))
        #expect(try JSON.parse(text.utf8.lazy.map { $0 }) == JSON.parse(Array(text.utf8)))
    }
}
