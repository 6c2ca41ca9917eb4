// The identity scan: identifying field names and identifier-shaped values anywhere in a
// payload, parsed or not, each field read with its own policy.

extension ContractValidator {
    /// Dates on or after this day are read as timestamps rather than birth dates in message
    /// ids, firmware and other free strings: five years before reception, or earlier if the
    /// pilot's baseline window reaches further back.
    func timestampsFrom(receivedAt: Instant, pilot: PilotRule?) -> Day {
        let fiveYears = receivedAt.day.advanced(by: -(5 * 365 + 1))
        guard let pilot else { return fiveYears }
        return min(fiveYears, pilot.pilot.start.advanced(by: -(ContractLimits.maxDaysBeforeStart + 31)))
    }}

/// The walk over a parsed payload (or the tokens of an unparseable one) that looks for
/// identifying field names and identifier-shaped strings.
struct IdentityScan {
    let topicPilot: String?
    let indicatorRules: [String: IndicatorRule]
    let tolerant: IdentifierGuard.Policy
    /// Field names of the message kind that are not read as names (a snapshot's `patient_days`):
    /// their values are still scanned.
    let knownNames: Set<String>
    /// A snapshot's numbers with a fraction or an exponent are sums and means of many readings:
    /// the digits of `19.284126984126985` are not read as an identifier (integers still are).
    let fractionsAreStatistics: Bool
    var lastSubject: String?

    init(topicPilot: String?, indicatorRules: [String: IndicatorRule], tolerant: IdentifierGuard.Policy,
         knownNames: Set<String> = [], fractionsAreStatistics: Bool = false) {
        self.topicPilot = topicPilot
        self.indicatorRules = indicatorRules
        self.tolerant = tolerant
        self.knownNames = knownNames
        self.fractionsAreStatistics = fractionsAreStatistics
    }

    /// A bare JSON number with a fraction or an exponent (`-12.5`, `3e-7`).
    static func isFractionalNumber(_ token: ArraySlice<UInt8>) -> Bool {
        var sawDigit = false, sawFraction = false
        for (k, b) in zip(token.indices, token) {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sawDigit = true
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): sawFraction = true
            case UInt8(ascii: "-"), UInt8(ascii: "+"):
                if k != token.startIndex && token[k - 1] != UInt8(ascii: "e") && token[k - 1] != UInt8(ascii: "E") { return false }
            default: return false
            }
        }
        return sawDigit && sawFraction
    }

    /// Something identifying, found at a path built (innermost first) as the walk unwinds.
    struct Hit: Error {
        var reversedPath: [PathComponent]
        var problem: String
    }

    /// Walks a whole document. With `what`, the detail names it before the path
    /// (`line 3, field note: ...`); without, the path alone (`observations[0].subject: ...`).
    mutating func scanDocument(_ value: JSONValue, naming what: String? = nil) throws(Refusal) {
        do throws(Hit) {
            try scan(value, key: nil)
        } catch {
            let path = Array(error.reversedPath.reversed())
            let place: String
            if let what {
                place = path.isEmpty ? what : "\(what), field \(render(path))"
            } else {
                place = render(path)
            }
            throw Refusal(.identifyingData, "\(place): \(error.problem)")
        }
    }

    mutating func scan(_ value: JSONValue, key: ContractField?) throws(Hit) {
        switch value {
        case .object(let o):
            for m in o.members {
                let field = ContractField(m.key)
                if field == nil, !knownNames.contains(m.key), let hit = nameProblem(m.key) { throw hit }
                do throws(Hit) {
                    try scan(m.value, key: field)
                } catch {
                    var hit = error
                    hit.reversedPath.append(.key(m.key))
                    throw hit
                }
            }
        case .array(let items):
            for (i, item) in items.enumerated() {
                do throws(Hit) {
                    try scan(item, key: key)
                } catch {
                    var hit = error
                    hit.reversedPath.append(.index(i))
                    throw hit
                }
            }
        case .string(let s):
            if let kind = check(s, key: key) {
                throw Hit(reversedPath: [], problem: "looks like \(withArticle(kind))")
            }
        case .null, .bool, .number:
            break
        }
    }

    /// Refuses `s`, the value of field `key` at `path`, if it looks like an identifier.
    mutating func check(_ s: String, key: ContractField?, path: @autoclosure () -> String) throws(Refusal) {
        if let kind = check(s, key: key) {
            throw Refusal(.identifyingData, "\(path()): looks like \(withArticle(kind))")
        }
    }

    /// Walks `value`, found at `path`, refusing any identifying data in it.
    mutating func scan(_ value: JSONValue, key: ContractField?, path: @autoclosure () -> [PathComponent]) throws(Refusal) {
        do throws(Hit) {
            try scan(value, key: key)
        } catch {
            throw Refusal(.identifyingData, "\(render(path() + error.reversedPath.reversed())): \(error.problem)")
        }
    }

    /// Refuses a field name, not one of the contract's, that suggests identity or looks like an identifier.
    func checkName(_ name: String, parent: @autoclosure () -> [PathComponent]) throws(Refusal) {
        if let hit = nameProblem(name) {
            throw Refusal(.identifyingData, "\(render(parent() + hit.reversedPath.reversed())): \(hit.problem)")
        }
    }

    /// Why the field name `name` is identifying, or nil.
    func nameProblem(_ name: String) -> Hit? {
        if let kind = IdentifierGuard.kind(of: name, policy: tolerant) {
            return Hit(reversedPath: [], problem: "a field name looks like \(withArticle(kind))")
        }
        if IdentifierGuard.fieldNameSuggestsIdentity(name) {
            return Hit(reversedPath: [.key(name)], problem: "field name suggests identifying data (no such field is allowed)")
        }
        return nil
    }

    /// The identifier `s` looks like, read with the policy its field calls for.
    mutating func check(_ s: String, key: ContractField?) -> IdentifierGuard.Kind? {
        switch key {
        case .at, .sentAt:
            return isTimestampShaped(s) ? nil : IdentifierGuard.kind(of: s, policy: .ignoringDates)
        case .subject:
            if s == lastSubject { return nil }
            let kind = IdentifierGuard.kind(of: s, policy: .strict)
            if kind == nil { lastSubject = s }
            return kind
        case .pilot:
            return s == topicPilot ? nil : IdentifierGuard.kind(of: s, policy: .strict)
        case .indicator:
            guard let kind = IdentifierGuard.kind(of: s, policy: tolerant) else { return nil }
            return indicatorRules[s] == nil ? kind : nil
        default:
            return IdentifierGuard.kind(of: s, policy: tolerant)
        }
    }

    /// Best effort for a payload that is not JSON: every quoted or bare token is read as a
    /// key (when a `:` follows it) or a value, with the same rules as the walk. `what` names
    /// the bytes in the detail.
    func scanMalformed(_ payload: [UInt8], naming what: String = "payload (not valid JSON)") -> Refusal? {
        var copy = self
        let n = payload.count
        var i = 0
        var lastKey: ContractField?
        func isDelimiter(_ b: UInt8) -> Bool {
            switch b {
            case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"),
                 UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "\""):
                return true
            default:
                return false
            }
        }
        while i < n {
            let b = payload[i]
            var start: Int, end: Int
            if b == UInt8(ascii: "\"") {
                start = i + 1
                var j = start
                while j < n && payload[j] != UInt8(ascii: "\"") { j += payload[j] == UInt8(ascii: "\\") ? 2 : 1 }
                end = min(j, n)
                i = end + 1
            } else if isDelimiter(b) {
                i += 1
                continue
            } else {
                start = i
                while i < n && !isDelimiter(payload[i]) { i += 1 }
                end = i
                while start < end && payload[start] == UInt8(ascii: "'") { start += 1 }
                while end > start && payload[end - 1] == UInt8(ascii: "'") { end -= 1 }
                if fractionsAreStatistics && Self.isFractionalNumber(payload[start..<end]) { continue }
            }
            let token = String(decoding: payload[start..<end], as: UTF8.self)
            var k = i
            while k < n && (payload[k] == 0x20 || payload[k] == 0x09 || payload[k] == 0x0A || payload[k] == 0x0D) { k += 1 }
            if k < n && payload[k] == UInt8(ascii: ":") {
                let field = ContractField(token)
                if field == nil && !knownNames.contains(token) {
                    if let kind = IdentifierGuard.kind(of: token, policy: tolerant) {
                        return Refusal(.identifyingData, "\(what): a field name looks like \(withArticle(kind))")
                    }
                    if IdentifierGuard.fieldNameSuggestsIdentity(token) {
                        return Refusal(.identifyingData, "\(what): field \(quoteForDetail(token)) suggests identifying data")
                    }
                }
                lastKey = field
            } else if let kind = copy.check(token, key: lastKey) {
                return Refusal(.identifyingData, "\(what): a value looks like \(withArticle(kind))")
            }
        }
        return nil
    }
}

enum PathComponent {
    case key(String)
    case index(Int)
}

/// `observations[0].subject`; `payload` for the root.
func render(_ path: [PathComponent]) -> String {
    var out = ""
    for component in path {
        switch component {
        case .index(let i): out += "[\(i)]"
        case .key(let k): out += isPlainName(k) ? (out.isEmpty ? k : "." + k) : "[\(quoteForDetail(k))]"
        }
    }
    return out.isEmpty ? "payload" : out
}

private func isPlainName(_ k: String) -> Bool {
    guard !k.isEmpty, k.utf8.count <= 64 else { return false }
    return k.utf8.allSatisfy { b in
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}

/// Whether `s` is exactly `YYYY-MM-DDTHH:MM:SS[.fraction up to 9 digits](Z|±HH:MM)` in shape.
/// Such a string has no run of more than 9 digits and no `@`, so no identifier shape
/// other than a date can match: the time fields skip the guard on it.
private func isTimestampShaped(_ s: String) -> Bool {
    var s = s
    return s.withUTF8 { u in
        guard u.count >= 20 && u.count <= 35 else { return false }
        func digit(_ k: Int) -> Bool { u[k] >= 48 && u[k] <= 57 }
        for k in 0..<19 {
            let ok: Bool
            switch k {
            case 4, 7: ok = u[k] == UInt8(ascii: "-")
            case 10: ok = (u[k] | 0x20) == UInt8(ascii: "t")
            case 13, 16: ok = u[k] == UInt8(ascii: ":")
            default: ok = digit(k)
            }
            if !ok { return false }
        }
        var k = 19
        if u[k] == UInt8(ascii: ".") {
            k += 1
            let start = k
            while k < u.count && digit(k) { k += 1 }
            guard k > start && k - start <= 9 else { return false }
        }
        guard k < u.count else { return false }
        if (u[k] | 0x20) == UInt8(ascii: "z") { return k + 1 == u.count }
        guard u[k] == UInt8(ascii: "+") || u[k] == UInt8(ascii: "-"), u.count - k == 6 else { return false }
        return digit(k + 1) && digit(k + 2) && u[k + 3] == UInt8(ascii: ":") && digit(k + 4) && digit(k + 5)
    }
}
