import PilotwatchCore
import TestSupport
import Testing

@Suite("Contract: hostile input")
struct HostileInputTests {
    static let sql = "'; DROP TABLE observation; --"

    @Test func invalidUTF8() {
        var bytes = Array(CF.message().utf8)
        let index = bytes.firstIndex(of: UInt8(ascii: "7")) ?? 0 // inside the subject
        bytes[index] = 0xC3
        let v = CF.verdict(bytes: bytes)
        #expect(v.reason == .malformedJSON)
        #expect(v.refusal?.detail.contains("invalid UTF-8") == true)
        #expect(CF.verdict(bytes: [0xFF, 0xFE, 0x00, 0x7B]).reason == .malformedJSON)
        #expect(CF.verdict(bytes: Array(repeating: 0x80, count: 1000)).reason == .malformedJSON)
    }

    @Test func tenMegabytePayload() {
        let v = CF.verdict(bytes: Array(repeating: UInt8(ascii: "["), count: 10 * 1024 * 1024))
        #expect(v.reason == .tooLarge)
        #expect(v.refusal?.detail == "payload: 10485760 bytes is more than the limit of 262144 bytes")
    }

    @Test func hundredThousandDeepNesting() {
        // 100,000 levels of `{"a":` would be 500 KB, refused as too large: 50,000 stay under the limit.
        for (open, count) in [("[", 100_000), (#"{"a":"#, 50_000)] {
            let v = CF.verdict(String(repeating: open, count: count))
            #expect(v.reason == .malformedJSON)
            #expect(v.refusal?.detail.contains("nested deeper than 32") == true, "\(v)")
        }
        let inside = #"{"msg_id":"m","observations":"# + String(repeating: "[", count: 100_000)
        #expect(CF.verdict(inside).reason == .malformedJSON)
    }

    @Test(arguments: ["NaN", "Infinity", "-Infinity", "nan", "inf", "+1", ".5", "0x5E", "94,5", "1e308*10"])
    func notJSONNumbers(_ value: String) {
        #expect(CF.verdict(CF.message([CF.obs(value: value)])).reason == .malformedJSON)
    }

    @Test(arguments: ["1e999", "-1e999", "1e309", "-1.8e308"])
    func nonFiniteNumbers(_ value: String) {
        let v = CF.verdict(CF.message([CF.obs(value: value)]))
        #expect(v.reason == .outOfRange)
        #expect(v.refusal?.detail == "observations[0].value: \(value) is not a finite number")
    }

    @Test func hugeButFiniteNumbers() {
        #expect(CF.verdict(CF.message([CF.obs(value: "1.7976931348623157e308")])).reason == .outOfRange)
        // 1e308 lb is a finite 4.5e307 kg, far above the range.
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""weight""#, value: "1e308", unit: #""[lb_av]""#)]), topic: CF.card).reason == .outOfRange)
    }

    @Test(arguments: [#""94""#, #""94.0""#, #""1e2""#, #""""#, #"" 94 ""#])
    func numbersAsStrings(_ value: String) {
        #expect(CF.verdict(CF.message([CF.obs(value: value)])).reason == .schema)
    }

    @Test(arguments: [
        ("{}", ReasonCode.schema), ("[]", .schema), ("", .malformedJSON), ("   ", .malformedJSON),
        ("null", .schema), ("42", .schema), (#""obs""#, .schema), ("{\"msg_id\":\"m\",\"observations\":{}}", .schema),
        ("{\"msg_id\":\"m\",\"observations\":[{}]}", .schema), ("{\"msg_id\":\"m\",\"observations\":[[]]}", .schema),
        ("{\"msg_id\":\"m\",\"observations\":[null]}", .schema), ("\u{0}", .malformedJSON),
    ])
    func emptyAndDegenerate(_ payload: String, _ reason: ReasonCode) {
        #expect(CF.verdict(payload).reason == reason)
        #expect(CF.verdict(payload, topic: CF.status).reason == reason)
    }

    @Test(arguments: [
        "pilots/+/+/obs", "pilots/#", "#", "+", "pilots/resp-copd-idf-01/+/obs", "pilots/resp-copd-idf-01/dev-0042/#",
        "pilots/../dev-0042/obs", "pilots/resp-copd-idf-01/../obs", "pilots/resp-copd-idf-01/a..b/obs",
        "pilots/resp-copd-idf-01/\(String(repeating: "d", count: 65))/obs", "pilots/\(String(repeating: "p", count: 65))/d/obs",
        "", "/", "//", "///", "pilots/resp-copd-idf-01/dev-0042/obs/", "/pilots/resp-copd-idf-01/dev-0042/obs",
        "pilots/resp-copd-idf-01/dev\u{0}0042/obs", "pilots/resp-copd-idf-01/dév/obs", "pilots/resp-copd-idf-01/DEV/obs",
        "pilots/resp-copd-idf-01/dev 42/obs", "pilots/resp-copd-idf-01/dev-0042/OBS", "PILOTS/resp-copd-idf-01/dev-0042/obs",
        "pilots/resp-copd-idf-01/.dev/obs", "pilots/resp-copd-idf-01/_dev/obs",
        String(repeating: "pilots/", count: 10_000) + "obs",
    ])
    func hostileTopics(_ topic: String) {
        let v = CF.verdict(CF.message(), topic: topic)
        #expect(v.reason == .schema, "\(v)")
        if case .failure(let r) = CF.validator.parseTopic(topic) {
            #expect(r.reason == .schema)
        } else {
            Issue.record("parsed")
        }
    }

    // MARK: SQL in every string field

    static var sqlLiteral: String { "\"" + sql + "\"" }

    @Test func sqlInMessageFields() {
        // msg_id and firmware are printable ASCII of the right length: the contract accepts them
        // (the store binds parameters); everything else is refused for what it is.
        #expect(CF.verdict(CF.message(msgID: Self.sqlLiteral)).message?.msgID == Self.sql)
        #expect(CF.verdict(CF.message(sentAt: Self.sqlLiteral)).reason == .badTime)
        #expect(CF.verdict(CF.message(extra: #""pilot":"# + Self.sqlLiteral)).reason == .pilotMismatch)
        #expect(CF.verdict(CF.message([CF.obs(subject: Self.sqlLiteral)])).reason == .schema)
        #expect(CF.verdict(CF.message([CF.obs(indicator: Self.sqlLiteral)])).reason == .unknownIndicator)
        #expect(CF.verdict(CF.message([CF.obs(unit: Self.sqlLiteral)])).reason == .badUnit)
        #expect(CF.verdict(CF.message([CF.obs(at: Self.sqlLiteral)])).reason == .badTime)
        #expect(CF.verdict(CF.message([CF.obs(value: Self.sqlLiteral)])).reason == .schema)
        #expect(CF.verdict(CF.message([CF.obs(extra: Self.sqlLiteral + ":1")])).reason == .schema)
        #expect(CF.verdict(CF.message(extra: Self.sqlLiteral + ":1")).reason == .schema)
    }

    @Test func sqlInStatusFields() {
        #expect(CF.verdict(#"{"state":"# + Self.sqlLiteral + "}", topic: CF.status).reason == .schema)
        #expect(CF.verdict(#"{"state":"online","at":"# + Self.sqlLiteral + "}", topic: CF.status).reason == .badTime)
        #expect(CF.verdict(#"{"state":"online","battery_pct":"# + Self.sqlLiteral + "}", topic: CF.status).reason == .schema)
        #expect(CF.verdict(#"{"state":"online","firmware":"# + Self.sqlLiteral + "}", topic: CF.status).deviceStatus?.firmware == Self.sql)
    }

    @Test func sqlInTopicLevels() {
        for topic in ["\(Self.sql)/resp-copd-idf-01/dev-0042/obs", "pilots/\(Self.sql)/dev-0042/obs",
                      "pilots/resp-copd-idf-01/\(Self.sql)/obs", "pilots/resp-copd-idf-01/dev-0042/\(Self.sql)"] {
            #expect(CF.verdict(CF.message(), topic: topic).reason == .schema, "\(topic)")
        }
    }

    // MARK: Fuzz

    @Test func mutatedMessagesNeverCrashAndAlwaysExplain() {
        var rng = SplitMix(state: 20261129)
        let base = Array(CF.message([CF.obs(), CF.obs(indicator: #""exacerbation""#, value: nil, unit: nil)]).utf8)
        let alphabet = Array(#"{}[]":,\ -+.0123456789eEtrufalsn@/aZ"#.utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xFF, 0xED]
        var accepted = 0, refused = 0
        for _ in 0..<5_000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = alphabet.randomElement(using: &rng) ?? 0
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet.randomElement(using: &rng) ?? 0, at: at)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            let v = CF.verdict(bytes: bytes)
            if let r = v.refusal {
                refused += 1
                #expect(!r.detail.isEmpty)
            } else {
                accepted += 1
            }
        }
        #expect(accepted + refused == 5_000)
        #expect(refused > 0)
    }

    @Test func randomBytesAreRefused() {
        var rng = SplitMix(state: 42)
        for length in [1, 2, 7, 64, 1000, 10_000] {
            for _ in 0..<20 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let v = CF.verdict(bytes: bytes)
                #expect(v.reason == .malformedJSON || v.reason == .identifyingData, "\(v)")
            }
        }
    }

    @Test func largestMessageValidates() {
        let obs = CF.obs(subject: "\"\(String(repeating: "s", count: 64))\"")
        let payload = CF.message(Array(repeating: obs, count: ContractLimits.maxObservations))
        #expect(payload.utf8.count < ContractLimits.maxPayloadBytes)
        #expect(CF.verdict(payload).message?.observations.count == 1000)
    }
}
