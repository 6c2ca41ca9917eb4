// Small helpers that write the details of refusals.

func schema(_ detail: String) -> Refusal { Refusal(.schema, detail) }

func withArticle(_ kind: IdentifierGuard.Kind) -> String {
    kind == .email ? "an " + kind.rawValue : "a " + kind.rawValue
}

/// A value for a detail: `string "94"`, `number 12`, `null`, `an array`...
func describe(_ value: JSONValue) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return "boolean \(b)"
    case .number(let n): return "number \(shown(n))"
    case .string(let s): return "string \(quoteForDetail(s))"
    case .array: return "an array"
    case .object: return "an object"
    }
}

/// A number as written, cut to 80 characters.
func shown(_ n: JSONNumber) -> String {
    n.lexeme.utf8.count <= 80 ? n.lexeme : String(n.lexeme.prefix(80)) + "…"
}

/// Rounds a converted value for display (4 decimals).
func rounded(_ v: Double) -> Double {
    guard v.isFinite, abs(v) < 1e12 else { return v }
    return (v * 10_000).rounded() / 10_000
}
