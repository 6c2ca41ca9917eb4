/// A JSON value as RFC 8259 defines it, keeping what the wire said: numbers keep
/// their lexeme, objects keep their key order.
///
/// ```swift
/// let v = try JSON.parse(Array(#"{"value": 94.0}"#.utf8))
/// v["value"]?.number?.lexeme // "94.0"
/// ```
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The member named `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var number: JSONNumber? { if case .number(let n) = self { return n }; return nil }
    public var object: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }

    /// What kind of value this is, for error messages: `string`, `number`, `object`...
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON number: the lexeme as written and the nearest `Double`.
///
/// A syntactically valid number too large for a `Double` (`1e999`) parses, with
/// `double` infinite and `isFinite` false, so that a validator can refuse it by
/// name rather than as malformed JSON.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    public let lexeme: String
    public let double: Double

    init(lexeme: String, double: Double) {
        self.lexeme = lexeme
        self.double = double
    }

    /// A number for a finite `Double`; nil for NaN and infinities, which JSON cannot write.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init(lexeme: formatNumber(value), double: value)
    }

    public init(_ value: Int) {
        self.init(lexeme: String(value), double: Double(value))
    }

    public var isFinite: Bool { double.isFinite }
    public var description: String { lexeme }
}

/// One `"key": value` member of a JSON object.
public struct JSONMember: Sendable, Hashable {
    public var key: String
    public var value: JSONValue
    public init(key: String, value: JSONValue) { self.key = key; self.value = value }
}

/// A JSON object: members in the order they were written, keys unique.
public struct JSONObject: Sendable, Hashable {
    public private(set) var members: [JSONMember]

    public init() { members = [] }

    /// Builds an object from pairs; a repeated key keeps its first position and its last value.
    public init(_ pairs: [(String, JSONValue)]) {
        members = []
        members.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }

    /// Members already known to have unique keys (the parser checked them).
    init(uniqueMembers: [JSONMember]) { members = uniqueMembers }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }
    /// The members as `(key, value)` pairs, in order: `for (key, value) in object.pairs`.
    public var pairs: [(key: String, value: JSONValue)] { members.map { ($0.key, $0.value) } }

    /// The value of `key`; setting `nil` removes the member, setting a value replaces it in place or appends it.
    public subscript(key: String) -> JSONValue? {
        get {
            for m in members where m.key == key { return m.value }
            return nil
        }
        set {
            let index = members.firstIndex { $0.key == key }
            switch (index, newValue) {
            case let (i?, v?): members[i].value = v
            case let (i?, nil): members.remove(at: i)
            case let (nil, v?): members.append(JSONMember(key: key, value: v))
            case (nil, nil): break
            }
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    /// A float literal is always finite; a non-finite one (which Swift cannot write as a literal) becomes `null`.
    public init(floatLiteral value: Double) { self = JSONNumber(value).map(JSONValue.number) ?? .null }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

/// Why a byte sequence is not the JSON we accept, and where (a byte offset from 0).
///
/// ```swift
/// "invalid JSON at byte 9: duplicate key \"a\""
/// ```
public struct JSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case emptyInput
        case invalidUTF8
        case unexpectedByte(UInt8)
        case unexpectedEnd
        case nestingTooDeep(limit: Int)
        case duplicateKey(String)
        case trailingData
        case invalidNumber
        case numberTooLong(limit: Int)
        case notANumberLiteral
        case controlCharacterInString(UInt8)
        case invalidEscape
        case loneSurrogate
    }

    public var offset: Int
    public var reason: Reason

    public init(offset: Int, reason: Reason) { self.offset = offset; self.reason = reason }

    public var description: String {
        "invalid JSON at byte \(offset): " + reasonText
    }

    /// The reason alone, as a phrase.
    public var reasonText: String {
        switch reason {
        case .emptyInput: return "no JSON value (empty input)"
        case .invalidUTF8: return "invalid UTF-8"
        case .unexpectedByte(let b): return "unexpected " + describeByte(b)
        case .unexpectedEnd: return "unexpected end of input"
        case .nestingTooDeep(let limit): return "arrays and objects nested deeper than \(limit)"
        case .duplicateKey(let k): return "duplicate key " + quoteForDetail(k)
        case .trailingData: return "data after the JSON value"
        case .invalidNumber: return "invalid number (JSON numbers have no leading zeros, no leading +, and digits after . and e)"
        case .numberTooLong(let limit): return "number longer than \(limit) characters"
        case .notANumberLiteral: return "NaN and Infinity are not JSON numbers"
        case .controlCharacterInString(let b): return "unescaped control character \(describeByte(b)) in a string"
        case .invalidEscape: return "invalid escape sequence in a string"
        case .loneSurrogate: return "\\u escape of a lone UTF-16 surrogate"
        }
    }
}

func describeByte(_ b: UInt8) -> String {
    if b >= 0x21 && b <= 0x7E { return "character '\(Character(Unicode.Scalar(b)))'" }
    let hex = String(b, radix: 16, uppercase: true)
    return "byte 0x" + (hex.count == 1 ? "0" + hex : hex)
}

/// Strict RFC 8259 parsing and compact encoding.
///
/// Parsing works on raw bytes, recursing no deeper than `maxDepth`: hostile input (invalid
/// UTF-8, deep nesting, huge numbers, megabytes of data) ends in a `JSONError`, never a crash.
/// It refuses duplicate keys, a byte-order mark, `NaN`/`Infinity`, leading zeros and
/// trailing data, and nesting deeper than `maxDepth` (clamped to 1...`maxDepthLimit`).
///
/// ```swift
/// let v = try JSON.parse(Array(#"{"a":[1,2.50,"x"]}"#.utf8))
/// String(decoding: JSON.encode(v), as: UTF8.self) // {"a":[1,2.50,"x"]}
/// ```
public enum JSON {
    /// The deepest nesting any caller may ask for: parsed values nest no deeper, so
    /// parsing, comparing, encoding and freeing them never runs out of stack.
    public static let maxDepthLimit = 256
    /// Numbers longer than this are refused (`1` followed by a million zeros is not data).
    public static let maxNumberLength = 512

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer, maxDepth: maxDepth)
            return parser.parseDocument()
        }
        return try result.get()
    }

    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        let direct: Result<JSONValue, JSONError>? = bytes.withContiguousStorageIfAvailable { buffer in
            var parser = JSONParser(buffer, maxDepth: maxDepth)
            return parser.parseDocument()
        }
        if let direct { return try direct.get() }
        return try parse(Array(bytes), maxDepth: maxDepth)
    }

    /// Compact, deterministic encoding: members in their order, numbers as their lexeme,
    /// strings with `"`, `\` and control characters escaped and everything else as UTF-8
    /// (``JSONStringEscaping/canonical``: audit lines are hashed, so these bytes never change).
    public static func encode(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        write(value, into: &out)
        return out
    }

    private static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.lexeme.utf8)
        case .string(let s): JSONString.append(s, to: &out, escaping: .canonical)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (i, m) in o.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONString.append(m.key, to: &out, escaping: .canonical)
                out.append(UInt8(ascii: ":"))
                write(m.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// Quotes `s` for a refusal detail: JSON-escaped, and cut to `limit` characters with `…` when longer.
func quoteForDetail(_ s: String, limit: Int = 80) -> String {
    var shown = s
    var cut = false
    if s.unicodeScalars.count > limit {
        shown = String(String.UnicodeScalarView(s.unicodeScalars.prefix(limit)))
        cut = true
    }
    var bytes: [UInt8] = []
    JSONString.append(shown, to: &bytes, escaping: .canonical)
    if cut {
        bytes.removeLast()
        bytes.append(contentsOf: "…\"".utf8)
    }
    return String(decoding: bytes, as: UTF8.self)
}

// MARK: - Parser

private let powersOf10: [Double] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]

private enum Byte {
    static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), slash = UInt8(ascii: "/")
    static let openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]")
    static let comma = UInt8(ascii: ","), colon = UInt8(ascii: ":")
    static let minus = UInt8(ascii: "-"), plus = UInt8(ascii: "+"), dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")
}

private struct JSONParser {
    let buf: UnsafeBufferPointer<UInt8>
    let count: Int
    let maxDepth: Int
    var i = 0

    init(_ buf: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.buf = buf
        self.count = buf.count
        self.maxDepth = min(max(maxDepth, 1), JSON.maxDepthLimit)
    }

    mutating func parseDocument() -> Result<JSONValue, JSONError> {
        do throws(JSONError) {
            skipWhitespace()
            guard i < count else { throw JSONError(offset: i, reason: count == 0 ? .emptyInput : .unexpectedEnd) }
            let v = try parseValue(depth: 0)
            skipWhitespace()
            guard i == count else { throw JSONError(offset: i, reason: .trailingData) }
            return .success(v)
        } catch {
            return .failure(error)
        }
    }

    @inline(__always) func fail(_ reason: JSONError.Reason, at offset: Int? = nil) -> JSONError {
        JSONError(offset: offset ?? i, reason: reason)
    }

    @inline(__always) mutating func skipWhitespace() {
        var j = i
        while j < count {
            let b = buf[j]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { break }
            j += 1
        }
        i = j
    }

    /// Parses one value and everything nested in it. Recursion is bounded by `maxDepth`,
    /// itself at most `JSON.maxDepthLimit`, so hostile nesting ends in an error, not a crash.
    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        skipWhitespace()
        guard i < count else { throw fail(.unexpectedEnd) }
        let b = buf[i]
        switch b {
        case Byte.openBrace:
            return .object(try parseObject(depth: depth + 1))
        case Byte.openBracket:
            return .array(try parseArray(depth: depth + 1))
        case Byte.quote:
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case Byte.minus, Byte.zero...Byte.nine:
            return .number(try parseNumber())
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw fail(.notANumberLiteral)
        default:
            throw fail(unexpected(at: i))
        }
    }

    /// Parses an object from its `{`, refusing duplicate keys.
    mutating func parseObject(depth: Int) throws(JSONError) -> JSONObject {
        guard depth <= maxDepth else { throw fail(.nestingTooDeep(limit: maxDepth)) }
        i += 1
        skipWhitespace()
        guard i < count else { throw fail(.unexpectedEnd) }
        if buf[i] == Byte.closeBrace {
            i += 1
            return JSONObject()
        }
        var members: [JSONMember] = []
        members.reserveCapacity(8)
        var keySet: Set<String>?
        while true {
            skipWhitespace()
            let key = try parseKey(checkingAgainst: members, keySet: &keySet)
            let value = try parseValue(depth: depth)
            members.append(JSONMember(key: key, value: value))
            skipWhitespace()
            guard i < count else { throw fail(.unexpectedEnd) }
            switch buf[i] {
            case Byte.comma:
                i += 1
            case Byte.closeBrace:
                i += 1
                return JSONObject(uniqueMembers: members)
            default:
                throw fail(unexpected(at: i))
            }
        }
    }

    /// Parses an array from its `[`.
    mutating func parseArray(depth: Int) throws(JSONError) -> [JSONValue] {
        guard depth <= maxDepth else { throw fail(.nestingTooDeep(limit: maxDepth)) }
        i += 1
        skipWhitespace()
        guard i < count else { throw fail(.unexpectedEnd) }
        if buf[i] == Byte.closeBracket {
            i += 1
            return []
        }
        var items: [JSONValue] = []
        items.reserveCapacity(4)
        while true {
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard i < count else { throw fail(.unexpectedEnd) }
            switch buf[i] {
            case Byte.comma:
                i += 1
            case Byte.closeBracket:
                i += 1
                return items
            default:
                throw fail(unexpected(at: i))
            }
        }
    }

    /// Why the byte at `k` cannot be there: invalid UTF-8, or valid but not expected.
    func unexpected(at k: Int) -> JSONError.Reason {
        buf[k] >= 0x80 && utf8SequenceLength(at: k) == nil ? .invalidUTF8 : .unexpectedByte(buf[k])
    }

    /// Parses `"key"` and the `:` after it, refusing a key the object already has
    /// (a linear scan for small objects, a set once they grow).
    mutating func parseKey(checkingAgainst members: [JSONMember], keySet: inout Set<String>?) throws(JSONError) -> String {
        guard i < count else { throw fail(.unexpectedEnd) }
        guard buf[i] == Byte.quote else { throw fail(unexpected(at: i)) }
        let keyOffset = i
        let key = try parseString()
        skipWhitespace()
        guard i < count else { throw fail(.unexpectedEnd) }
        guard buf[i] == Byte.colon else { throw fail(unexpected(at: i)) }
        i += 1
        let duplicate: Bool
        if members.count < 8 {
            let length = key.utf8.count
            duplicate = members.contains { $0.key.utf8.count == length && $0.key == key }
        } else {
            if keySet == nil { keySet = Set(members.map(\.key)) }
            duplicate = keySet?.insert(key).inserted == false
        }
        guard !duplicate else { throw fail(.duplicateKey(key), at: keyOffset) }
        return key
    }

    mutating func expectLiteral(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        let start = word.utf8Start
        for k in 0..<n {
            guard i + k < count else { throw fail(.unexpectedEnd, at: count) }
            guard buf[i + k] == start[k] else { throw fail(unexpected(at: i + k), at: i + k) }
        }
        i += n
    }

    // MARK: Strings

    /// The length of the valid UTF-8 sequence of 2 to 4 bytes at `j`, or nil.
    @inline(__always) func utf8SequenceLength(at j: Int) -> Int? {
        let b0 = buf[j]
        @inline(__always) func cont(_ k: Int) -> Bool { k < count && buf[k] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF:
            return cont(j + 1) ? 2 : nil
        case 0xE0:
            guard j + 1 < count, (0xA0...0xBF).contains(buf[j + 1]), cont(j + 2) else { return nil }
            return 3
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(j + 1) && cont(j + 2) ? 3 : nil
        case 0xED:
            guard j + 1 < count, (0x80...0x9F).contains(buf[j + 1]), cont(j + 2) else { return nil }
            return 3
        case 0xF0:
            guard j + 1 < count, (0x90...0xBF).contains(buf[j + 1]), cont(j + 2), cont(j + 3) else { return nil }
            return 4
        case 0xF1...0xF3:
            return cont(j + 1) && cont(j + 2) && cont(j + 3) ? 4 : nil
        case 0xF4:
            guard j + 1 < count, (0x80...0x8F).contains(buf[j + 1]), cont(j + 2), cont(j + 3) else { return nil }
            return 4
        default:
            return nil
        }
    }

    /// Parses a string starting at the opening quote.
    mutating func parseString() throws(JSONError) -> String {
        let start = i + 1
        // Fast path: no escapes, scanned with locals so the loop stays in registers.
        var j = start
        let n = count
        let base = buf
        while j < n {
            let b = base[j]
            if b == Byte.quote {
                i = j + 1
                return String(decoding: UnsafeBufferPointer(rebasing: base[start..<j]), as: UTF8.self)
            }
            if b == Byte.backslash { break }
            if b < 0x20 { throw fail(.controlCharacterInString(b), at: j) }
            if b < 0x80 {
                j += 1
            } else {
                guard let length = utf8SequenceLength(at: j) else { throw fail(.invalidUTF8, at: j) }
                j += length
            }
        }
        i = j
        guard i < count else { throw fail(.unexpectedEnd) }
        // Slow path: escapes.
        var out: [UInt8] = Array(UnsafeBufferPointer(rebasing: buf[start..<i]))
        out.reserveCapacity(out.count + 16)
        while i < count {
            let b = buf[i]
            if b == Byte.quote {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b == Byte.backslash {
                let escapeStart = i
                i += 1
                guard i < count else { throw fail(.unexpectedEnd) }
                let e = buf[i]
                i += 1
                switch e {
                case Byte.quote, Byte.backslash, Byte.slash: out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4(escapeStart: escapeStart)
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < count, buf[i] == Byte.backslash, buf[i + 1] == UInt8(ascii: "u") else {
                            throw fail(.loneSurrogate, at: escapeStart)
                        }
                        i += 2
                        let low = try parseHex4(escapeStart: escapeStart)
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail(.loneSurrogate, at: escapeStart) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail(.loneSurrogate, at: escapeStart)
                    }
                    appendUTF8(scalar, to: &out)
                default:
                    throw fail(.invalidEscape, at: escapeStart)
                }
                continue
            }
            if b < 0x20 { throw fail(.controlCharacterInString(b)) }
            if b < 0x80 {
                out.append(b)
                i += 1
            } else {
                guard let n = utf8SequenceLength(at: i) else { throw fail(.invalidUTF8) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<(i + n)]))
                i += n
            }
        }
        throw fail(.unexpectedEnd)
    }

    mutating func parseHex4(escapeStart: Int) throws(JSONError) -> UInt32 {
        guard i + 4 <= count else { throw fail(.invalidEscape, at: escapeStart) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let h = buf[i]
            let d: UInt32
            switch h {
            case Byte.zero...Byte.nine: d = UInt32(h - Byte.zero)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(h - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(h - UInt8(ascii: "A") + 10)
            default: throw fail(.invalidEscape, at: escapeStart)
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
        switch v {
        case 0..<0x80:
            out.append(UInt8(v))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (v >> 12)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (v >> 18)))
            out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    // MARK: Numbers

    @inline(__always) func isDigit(_ k: Int) -> Bool { k < count && buf[k] >= Byte.zero && buf[k] <= Byte.nine }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    mutating func parseNumber() throws(JSONError) -> JSONNumber {
        let start = i
        var negative = false
        if buf[i] == Byte.minus {
            negative = true
            i += 1
            if i < count && (buf[i] == UInt8(ascii: "I") || buf[i] == UInt8(ascii: "N")) {
                throw fail(.notANumberLiteral, at: start)
            }
        }
        var mantissa: UInt64 = 0
        var digits = 0            // digits accumulated into `mantissa`
        var dropped = false       // a non-zero digit did not fit
        var exponent = 0          // decimal exponent adjustment
        @inline(__always) func accumulate(_ d: UInt64, fraction: Bool) {
            if mantissa == 0 && d == 0 {
                if fraction { exponent -= 1 }
                return
            }
            if digits < 19 {
                mantissa = mantissa * 10 + d
                digits += 1
                if fraction { exponent -= 1 }
            } else {
                if d != 0 { dropped = true }
                if !fraction { exponent += 1 }
            }
        }
        guard isDigit(i) else { throw fail(.invalidNumber, at: start) }
        if buf[i] == Byte.zero {
            i += 1
            if isDigit(i) { throw fail(.invalidNumber, at: start) }
        } else {
            while isDigit(i) {
                accumulate(UInt64(buf[i] - Byte.zero), fraction: false)
                i += 1
            }
        }
        if i < count && buf[i] == Byte.dot {
            i += 1
            guard isDigit(i) else { throw fail(.invalidNumber, at: start) }
            while isDigit(i) {
                accumulate(UInt64(buf[i] - Byte.zero), fraction: true)
                i += 1
            }
        }
        if i < count && (buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E")) {
            i += 1
            var expNegative = false
            if i < count && (buf[i] == Byte.plus || buf[i] == Byte.minus) {
                expNegative = buf[i] == Byte.minus
                i += 1
            }
            guard isDigit(i) else { throw fail(.invalidNumber, at: start) }
            var e = 0
            while isDigit(i) {
                if e < 1_000_000 { e = e * 10 + Int(buf[i] - Byte.zero) }
                i += 1
            }
            exponent += expNegative ? -e : e
        }
        guard i - start <= JSON.maxNumberLength else { throw fail(.numberTooLong(limit: JSON.maxNumberLength), at: start) }
        let lexeme = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self)

        var value: Double
        if mantissa == 0 {
            value = 0
        } else if !dropped && mantissa <= (1 << 53) && exponent >= -22 && exponent <= 22 {
            // Exact: both operands are exactly representable, so one rounding.
            value = Double(mantissa)
            value = exponent >= 0 ? value * powersOf10[exponent] : value / powersOf10[-exponent]
        } else if let parsed = Double(lexeme) {
            value = parsed.magnitude
        } else {
            throw fail(.invalidNumber, at: start)
        }
        return JSONNumber(lexeme: lexeme, double: negative ? -value : value)
    }
}
