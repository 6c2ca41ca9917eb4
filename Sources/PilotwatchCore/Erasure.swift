/// HMAC-SHA256 (RFC 2104), for tombstones that name an erased subject without its pseudonym.
///
/// ```swift
/// HMACSHA256.hex(key: Array("key".utf8), message: Array("The quick brown fox jumps over the lazy dog".utf8))
/// // "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
/// ```
public enum HMACSHA256 {
    public static func digest(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        var block = key.count > 64 ? SHA256.digest(key) : key
        block += [UInt8](repeating: 0, count: 64 - block.count)
        var inner = SHA256.Hasher()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        var outer = SHA256.Hasher()
        outer.update(block.map { $0 ^ 0x5C })
        outer.update(inner.finalize())
        return outer.finalize()
    }

    public static func hex(key: [UInt8], message: some Collection<UInt8>) -> String {
        SHA256.hexDigits(digest(key: key, message: message))
    }
}

/// The keyed hash that stands for an erased subject: HMAC-SHA256 under the store's erasure key of
/// `pilot`, a zero byte and the pseudonym. Without the key, a tombstone cannot be tested against
/// a list of candidate pseudonyms; with it, the service recognises every later message about
/// that subject.
///
/// ```swift
/// let t = SubjectTombstone.hash(key: key, pilot: "resp-copd-01", subject: "p-7f3a9c21")  // 64 hex digits
/// ```
public enum SubjectTombstone {
    public static func hash(key: [UInt8], pilot: String, subject: String) -> String {
        HMACSHA256.hex(key: key, message: Array(pilot.utf8) + [0] + Array(subject.utf8))
    }

    /// The hash shown to people (audit trail, command output): its first 16 digits.
    public static func short(_ hash: String) -> String { String(hash.prefix(16)) }
}

/// Whether a payload or a text names a subject. A pseudonym is a run of `A-Z a-z 0-9 _ -`
/// (the contract's alphabet): the bytes name it when one of their maximal runs of those characters
/// is the pseudonym, wherever it stands (a JSON string, a truncated or malformed payload, a
/// detail). A JSON payload may also spell it with `\u` escapes: it is parsed, and a string value
/// or key equal to the pseudonym names it too.
public enum PayloadMention {
    public static func names(_ subject: String, in payload: some Collection<UInt8>) -> Bool {
        let bytes = Array(payload)
        if tokens(in: bytes).contains(subject) { return true }
        // Only a payload with an escape can spell the pseudonym otherwise.
        guard contains(bytes, Array("\\u".utf8)), let value = try? JSON.parse(bytes) else { return false }
        return mentions(subject, value)
    }

    /// The maximal runs of pseudonym characters in `bytes`, and, for a JSON payload with `\u`
    /// escapes, its string values: every pseudonym the bytes may name.
    public static func candidates(in bytes: some Collection<UInt8>) -> Set<String> {
        let array = Array(bytes)
        var found = tokens(in: array)
        if contains(array, Array("\\u".utf8)), let value = try? JSON.parse(array) { strings(value, into: &found) }
        return found
    }

    /// The maximal runs of `A-Z a-z 0-9 _ -` in `bytes`.
    public static func tokens(in bytes: some Collection<UInt8>) -> Set<String> {
        var out: Set<String> = []
        var run: [UInt8] = []
        func flush() {
            if !run.isEmpty && run.count <= 64 { out.insert(String(decoding: run, as: UTF8.self)) }
            run.removeAll(keepingCapacity: true)
        }
        for b in bytes {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F, 0x2D: run.append(b)
            default: flush()
            }
        }
        flush()
        return out
    }

    private static func mentions(_ subject: String, _ value: JSONValue) -> Bool {
        switch value {
        case .string(let s): return s == subject
        case .array(let items): return items.contains { mentions(subject, $0) }
        case .object(let o): return o.pairs.contains { $0.key == subject || mentions(subject, $0.value) }
        default: return false
        }
    }

    private static func strings(_ value: JSONValue, into out: inout Set<String>) {
        switch value {
        case .string(let s): out.insert(s)
        case .array(let items): for i in items { strings(i, into: &out) }
        case .object(let o): for (k, v) in o.pairs { out.insert(k); strings(v, into: &out) }
        default: break
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
