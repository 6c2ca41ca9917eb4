/// Recognises strings shaped like direct identifiers: e-mail addresses, phone numbers,
/// French NIR (social security) numbers and dates of birth, alone or embedded in a
/// longer string (`p-19850512`, `jean_1985-05-12`).
///
/// It is the contract's second guard against identifying data (the field allow-list is
/// the first). It works on bytes, without regular expressions, and is cheap enough to
/// run on every id of every message.
///
/// ```swift
/// IdentifierGuard.identifierShape(of: "06 12 34 56 78") // "phone number"
/// IdentifierGuard.identifierShape(of: "p-7f3a9c21")     // nil
/// ```
///
/// What counts (digits must not continue on either side of a match; separators are
/// one space, `.`, `-` or `_`):
/// - e-mail: `local@domain.tld`.
/// - phone: `+` and 8 to 15 digits (E.164, separators allowed); French national
///   `0[1-9]` + 8 digits, contiguous or in pairs (`06 12 34 56 78`); `0033` + 9 digits.
/// - NIR: sex digit 1 or 2, year, month, department (2 digits, `2A` or `2B`), commune,
///   order number, optionally the 2-digit key. Without a valid key the month must be
///   01–12 and commune and order non-zero.
/// - date of birth (years 1900–2099, real calendar dates): `1985-05-12`, `12/05/1985`,
///   `12.05.1985`, `12-05-1985`, `12/05/85`, `19850512`, `12051985`.
public enum IdentifierGuard {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case email = "e-mail address"
        case phone = "phone number"
        case nir = "French NIR number"
        case birthDate = "date of birth"
    }

    /// How strictly to read a string.
    public struct Policy: Sendable, Hashable {
        /// Whether date shapes count at all (off for fields that are times by contract).
        public var checksDates: Bool
        /// Dates on or after this day are read as timestamps, not birth dates
        /// (ids built from a recent date, firmware build dates).
        public var timestampsFrom: Day?
        /// Whether 13 contiguous digits count as a NIR without its key. Off for ids that are
        /// commonly epoch milliseconds (`1764403212345`), on for pseudonyms.
        public var bareNIRWithoutKey: Bool

        public init(checksDates: Bool = true, timestampsFrom: Day? = nil, bareNIRWithoutKey: Bool = true) {
            self.checksDates = checksDates
            self.timestampsFrom = timestampsFrom
            self.bareNIRWithoutKey = bareNIRWithoutKey
        }

        /// Every shape, every plausible birth date: for subjects and pilot or device ids.
        public static let strict = Policy()
        /// For fields that are times by contract (`at`, `sent_at`): no date shapes.
        public static let ignoringDates = Policy(checksDates: false)
        /// For message ids, firmware and free text: recent dates and epoch milliseconds are not identifiers.
        public static func tolerant(timestampsFrom day: Day) -> Policy {
            Policy(checksDates: true, timestampsFrom: day, bareNIRWithoutKey: false)
        }
    }

    /// The kind of direct identifier `s` looks like (`"e-mail address"`, `"phone number"`,
    /// `"French NIR number"`, `"date of birth"`), or nil.
    public static func identifierShape(of s: String) -> String? {
        kind(of: s, policy: .strict)?.rawValue
    }

    /// The kind of direct identifier `s` looks like under `policy`, or nil.
    public static func kind(of s: String, policy: Policy = .strict) -> Kind? {
        var s = s
        return s.withUTF8 { Scanner(u: $0, policy: policy).scan() }
    }

    /// The same on UTF-8 bytes (invalid sequences simply match nothing).
    static func kind(utf8: UnsafeBufferPointer<UInt8>, policy: Policy) -> Kind? {
        Scanner(u: utf8, policy: policy).scan()
    }

    /// Whether a field name suggests identity (`name`, `first_name`, `email`, `phone`,
    /// `birth_date`, `dob`, `nir`, `ssn`, `insee`, `patient_name`, `adresse`...).
    ///
    /// The name is compared lower-cased with everything but letters and digits removed
    /// (and `é`/`è` read as `e`), so `First-Name`, `firstName` and `first_name` are one name.
    public static func fieldNameSuggestsIdentity(_ name: String) -> Bool {
        var folded: [UInt8] = []
        folded.reserveCapacity(name.utf8.count)
        var previous: UInt8 = 0
        for b in name.utf8 {
            defer { previous = b }
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): folded.append(b)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): folded.append(b + 32)
            case 0x88...0x8B, 0xA8...0xAB:
                if previous == 0xC3 { folded.append(UInt8(ascii: "e")) } // È É Ê Ë è é ê ë
            default: break
            }
        }
        let key = String(decoding: folded, as: UTF8.self)
        if identityNames.contains(key) { return true }
        return identityFragments.contains { key.utf8.count >= $0.utf8.count && contains(folded, Array($0.utf8)) }
    }

    /// Names that suggest identity only as the whole (folded) name: short ones that occur inside innocent words.
    static let identityNames: Set<String> = [
        "nom", "dob", "nir", "ssn", "tel", "ins", "nss", "ipp", "zip", "mail", "mobile", "gsm", "fax",
        "city", "ville", "street", "rue", "initials", "initiales",
    ]
    /// Fragments that suggest identity anywhere in a (folded) name.
    static let identityFragments: [String] = [
        "name", "prenom", "email", "courriel", "phone", "address", "adresse", "birth", "naissance",
        "insee", "numsecu", "securitesociale", "socialsecurity", "passport", "patient", "postcode",
        "postalcode", "zipcode", "codepostal",
    ]

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) {
            var k = 0
            while k < needle.count && haystack[start + k] == needle[k] { k += 1 }
            if k == needle.count { return true }
        }
        return false
    }
}

// MARK: - Scanner

private struct Scanner {
    let u: UnsafeBufferPointer<UInt8>
    let n: Int
    let policy: IdentifierGuard.Policy

    init(u: UnsafeBufferPointer<UInt8>, policy: IdentifierGuard.Policy) {
        self.u = u
        self.n = u.count
        self.policy = policy
    }

    func scan() -> IdentifierGuard.Kind? {
        // Every shape needs an `@` or at least six digits (`12/05/85`): most ids have neither.
        var digitCount = 0
        var hasAt = false
        for b in u {
            if b >= 48 && b <= 57 { digitCount += 1 } else if b == UInt8(ascii: "@") { hasAt = true }
        }
        if digitCount < 6 { return hasAt ? scanEmail() : nil }
        for i in 0..<n {
            let c = u[i]
            let startsRun = i == 0 || !isDigit(i - 1)
            guard startsRun else { continue }
            if c == UInt8(ascii: "+") {
                if isDigit(i + 1) && matchE164(from: i + 1) { return .phone }
                continue
            }
            guard isDigit(i) else { continue }
            if matchNIR(at: i) { return .nir }
            if matchPhone(at: i) { return .phone }
            if policy.checksDates && matchDate(at: i) { return .birthDate }
        }
        return hasAt ? scanEmail() : nil
    }

    func scanEmail() -> IdentifierGuard.Kind? {
        for i in 0..<n where u[i] == UInt8(ascii: "@") && matchEmail(at: i) { return .email }
        return nil
    }

    // MARK: Helpers

    @inline(__always) func isDigit(_ k: Int) -> Bool { k >= 0 && k < n && u[k] >= 48 && u[k] <= 57 }
    @inline(__always) func isSeparator(_ k: Int) -> Bool {
        guard k >= 0 && k < n else { return false }
        let c = u[k]
        return c == 0x20 || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }
    @inline(__always) func digit(_ k: Int) -> Int { Int(u[k]) - 48 }

    /// The number of consecutive digits from `k`.
    func runLength(_ k: Int) -> Int {
        var j = k
        while isDigit(j) { j += 1 }
        return j - k
    }

    /// The value of `count` digits from `k` (the caller checked they are digits).
    func value(_ k: Int, _ count: Int) -> Int {
        var v = 0
        for j in k..<(k + count) { v = v * 10 + digit(j) }
        return v
    }

    // MARK: Phone numbers

    /// `+` then 8 to 15 digits; separators allowed between digits once the country code
    /// (1 to 3 digits) is set apart: `+33 6 12 34 56 78`, not `+2026-11-29`.
    func matchE164(from start: Int) -> Bool {
        guard u[start] != UInt8(ascii: "0") else { return false }
        let first = runLength(start)
        var digits = first
        var j = start + first
        if first <= 3 {
            while j < n {
                if isDigit(j) {
                    digits += 1
                    j += 1
                } else if isSeparator(j) && isDigit(j + 1) {
                    j += 1
                } else {
                    break
                }
            }
        }
        return digits >= 8 && digits <= 15 && !isDigit(j)
    }

    /// A French subscriber number after `0033 `: `6 12 34 56 78` (pairs) or `612345678`.
    func matchFrenchSubscriber(at k: Int) -> Bool {
        guard isDigit(k), u[k] != UInt8(ascii: "0") else { return false }
        if runLength(k) == 9 { return true }
        // Separated form: one digit (joined to the prefix) then four separated pairs.
        guard runLength(k) == 1 else { return false }
        var j = k + 1
        guard isSeparator(j) else { return false }
        let sep = u[j]
        for _ in 0..<4 {
            guard j < n, u[j] == sep, runLength(j + 1) == 2 else { return false }
            j += 3
        }
        return !isDigit(j)
    }

    func matchPhone(at i: Int) -> Bool {
        guard u[i] == UInt8(ascii: "0") else { return false }
        let run = runLength(i)
        // 0612345678
        if run == 10 && u[i + 1] != UInt8(ascii: "0") { return true }
        // 06 12 34 56 78
        if run == 2 && u[i + 1] != UInt8(ascii: "0") && isSeparator(i + 2) {
            let sep = u[i + 2]
            var j = i + 2
            for _ in 0..<4 {
                guard j < n, u[j] == sep, runLength(j + 1) == 2 else { return false }
                j += 3
            }
            return !isDigit(j)
        }
        // 0033612345678, 0033 6 12 34 56 78, 0033 612345678
        if run >= 4 && value(i, 4) == 33 {
            if run == 13 { return u[i + 4] != UInt8(ascii: "0") }
            if run == 4 && isSeparator(i + 4) {
                return matchFrenchSubscriber(at: i + 5)
            }
        }
        return false
    }

    // MARK: NIR

    func matchNIR(at i: Int) -> Bool {
        guard n - i >= 13, u[i] == UInt8(ascii: "1") || u[i] == UInt8(ascii: "2") else { return false }
        var j = i
        var separated = false
        var digits13 = 0 // the 13-digit number, Corsica's 2A/2B read as 19/18 for the key
        func take(_ count: Int) -> Int? {
            guard j + count <= n else { return nil }
            for k in j..<(j + count) where !isDigit(k) { return nil }
            let v = value(j, count)
            j += count
            return v
        }
        func separator() {
            if isSeparator(j) && isDigit(j + 1) {
                j += 1
                separated = true
            }
        }
        func append(_ v: Int, _ width: Int) {
            var p = 1
            for _ in 0..<width { p *= 10 }
            digits13 = digits13 * p + v
        }
        guard let sex = take(1) else { return false }
        append(sex, 1)
        separator()
        guard let year = take(2) else { return false }
        append(year, 2)
        separator()
        guard let month = take(2) else { return false }
        append(month, 2)
        separator()
        var department: Int
        if j + 1 < n && u[j] == UInt8(ascii: "2") && (u[j + 1] | 0x20 == UInt8(ascii: "a") || u[j + 1] | 0x20 == UInt8(ascii: "b")) {
            department = u[j + 1] | 0x20 == UInt8(ascii: "a") ? 19 : 18
            j += 2
        } else {
            guard let d = take(2) else { return false }
            department = d
        }
        append(department, 2)
        separator()
        guard let commune = take(3) else { return false }
        append(commune, 3)
        separator()
        guard let order = take(3) else { return false }
        append(order, 3)
        guard department != 0, commune != 0, order != 0 else { return false }
        let end13 = j
        let separatedBeforeKey = separated

        // With the key.
        separator()
        if let key = take(2), !isDigit(j), key >= 1, key <= 97 {
            let keyValid = key == 97 - digits13 % 97
            let monthOK = (1...12).contains(month) || (keyValid && (month == 20 || (30...42).contains(month) || month >= 50))
            if monthOK { return true }
        }
        // Without the key.
        guard !isDigit(end13), (1...12).contains(month) else { return false }
        return separatedBeforeKey || policy.bareNIRWithoutKey
    }

    // MARK: Dates

    func plausibleBirthDate(year: Int, month: Int, day: Int) -> Bool {
        guard (1900...2099).contains(year), let d = Day(year: year, month: month, day: day) else { return false }
        if let from = policy.timestampsFrom, d >= from { return false }
        return true
    }

    func matchDate(at i: Int) -> Bool {
        let run = runLength(i)
        switch run {
        case 8:
            // 19850512 or 12051985
            if plausibleBirthDate(year: value(i, 4), month: value(i + 4, 2), day: value(i + 6, 2)) { return true }
            return plausibleBirthDate(year: value(i + 4, 4), month: value(i + 2, 2), day: value(i, 2))
        case 4:
            // 1985-05-12
            guard isSeparator(i + 4) || u.indices.contains(i + 4) && u[i + 4] == UInt8(ascii: "/") else { return false }
            let sep = u[i + 4]
            guard runLength(i + 5) == 2, i + 7 < n, u[i + 7] == sep, runLength(i + 8) == 2 else { return false }
            return plausibleBirthDate(year: value(i, 4), month: value(i + 5, 2), day: value(i + 8, 2))
        case 2:
            // 12/05/1985, 12.05.1985, 12-05-1985, 12/05/85
            guard i + 2 < n else { return false }
            let sep = u[i + 2]
            guard isSeparator(i + 2) || sep == UInt8(ascii: "/") else { return false }
            guard runLength(i + 3) == 2, i + 5 < n, u[i + 5] == sep else { return false }
            let yearRun = runLength(i + 6)
            if yearRun == 4 {
                return plausibleBirthDate(year: value(i + 6, 4), month: value(i + 3, 2), day: value(i, 2))
            }
            if yearRun == 2 && sep == UInt8(ascii: "/") {
                let yy = value(i + 6, 2)
                return plausibleBirthDate(year: 1900 + yy, month: value(i + 3, 2), day: value(i, 2))
                    || plausibleBirthDate(year: 2000 + yy, month: value(i + 3, 2), day: value(i, 2))
            }
            return false
        default:
            return false
        }
    }

    // MARK: E-mail

    func matchEmail(at sign: Int) -> Bool {
        func isLocal(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "%")
                    || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") || c >= 0x80
            }
        }
        func isDomain(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return c == UInt8(ascii: "-") || c >= 0x80
            }
        }
        guard sign > 0, isLocal(u[sign - 1]) else { return false }
        // Domain: labels separated by dots, the last at least two letters.
        var j = sign + 1
        var labels = 0
        var lastLabelLetters = 0
        var lastLabelLength = 0
        while j < n {
            var length = 0
            var letters = 0
            while j < n && isDomain(u[j]) {
                length += 1
                if u[j] | 0x20 >= UInt8(ascii: "a") && u[j] | 0x20 <= UInt8(ascii: "z") || u[j] >= 0x80 { letters += 1 }
                j += 1
            }
            guard length > 0 else { break }
            labels += 1
            lastLabelLength = length
            lastLabelLetters = letters
            guard j + 1 < n, u[j] == UInt8(ascii: "."), isDomain(u[j + 1]) else { break }
            j += 1
        }
        return labels >= 2 && lastLabelLength >= 2 && lastLabelLetters == lastLabelLength
    }
}
