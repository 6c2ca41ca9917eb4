import PilotwatchCore

/// Writes JSON with keys in the order given, so output is deterministic and diff-friendly.
///
/// ```swift
/// var w = JSONWriter()
/// w.object { $0.field("enrolled", 12); $0.field("on_track", true) }
/// w.text // {"enrolled":12,"on_track":true}
/// ```
public struct JSONWriter {
    /// The UTF-8 written so far (bytes, not a String: appending to an array is the cheaper of the two).
    private var bytes: [UInt8] = []
    /// The JSON written so far.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
    private var needsComma = [false]
    private let pretty: Bool
    private var depth = 0

    public init(pretty: Bool = false) { self.pretty = pretty }

    private mutating func emit(_ s: String) { bytes.append(contentsOf: s.utf8) }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
        if pretty && depth > 0 { emit("\n" + String(repeating: "  ", count: depth)) }
    }

    private mutating func key(_ k: String) {
        separator()
        appendQuoted(k)
        emit(pretty ? ": " : ":")
    }

    /// Appends `s` as a JSON string.
    private mutating func appendQuoted(_ s: String) {
        JSONString.append(s, to: &bytes, escaping: .report)
    }

    private mutating func open(_ c: String) { emit(c); needsComma.append(false); depth += 1 }

    private mutating func close(_ c: String) {
        let had = needsComma.removeLast()
        depth -= 1
        if pretty && had { emit("\n" + String(repeating: "  ", count: depth)) }
        emit(c)
    }

    /// A top-level or array-element object.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        if needsComma.count > 1 { separator() }
        open("{"); body(&self); close("}")
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        if needsComma.count > 1 { separator() }
        open("["); body(&self); close("]")
    }

    public mutating func objectField(_ k: String, _ body: (inout JSONWriter) -> Void) {
        key(k); open("{"); body(&self); close("}")
    }

    public mutating func arrayField(_ k: String, _ body: (inout JSONWriter) -> Void) {
        key(k); open("["); body(&self); close("]")
    }

    public mutating func field(_ k: String, _ v: Int) { key(k); emit(String(v)) }
    public mutating func field(_ k: String, _ v: Int?) { key(k); emit(v.map(String.init) ?? "null") }
    public mutating func field(_ k: String, _ v: Double?) { key(k); emit(JSONWriter.number(v)) }
    public mutating func field(_ k: String, _ v: Bool?) { key(k); emit(v.map { $0 ? "true" : "false" } ?? "null") }
    public mutating func field(_ k: String, _ v: String?) {
        key(k)
        if let v { appendQuoted(v) } else { emit("null") }
    }
    public mutating func field(_ k: String, strings: [String]) {
        key(k); emit("[" + strings.map(JSONWriter.quote).joined(separator: ",") + "]")
    }
    /// A pre-rendered JSON value.
    public mutating func field(_ k: String, raw: String) { key(k); emit(raw) }

    public mutating func element(_ v: String) { separator(); appendQuoted(v) }
    public mutating func element(_ v: Double?) { separator(); emit(JSONWriter.number(v)) }

    /// A JSON number; `null` for nil and for non-finite values, which JSON cannot carry.
    public static func number(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// `s` as a JSON string, escaped as ``JSONString`` does for reports: `"`, `\`, control
    /// characters, DEL, U+2028 and U+2029.
    public static func quote(_ s: String) -> String {
        JSONString.quoted(s, escaping: .report)
    }
}

extension JSONWriter {
    /// A pilot's registry facts, under the same keys in every view and export:
    /// `pilot, name, programme, lead, call, funders, start, end`.
    mutating func registryFacts(_ p: Pilot) {
        field("pilot", p.id)
        field("name", p.name)
        field("programme", p.programme)
        field("lead", p.lead)
        field("call", p.call)
        field("funders", strings: p.funders)
        field("start", p.start.description)
        field("end", p.end.description)
    }
}
