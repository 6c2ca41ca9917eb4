import PilotwatchCore
import Testing

/// The contract's last rule: valid JSON that is not an object at the top level is `schema`;
/// `malformed_json` is only for bytes that are not JSON at all.
@Suite("Contract: the top level of a payload")
struct TopLevelTests {
    static let topics = [CF.resp, CF.status]

    @Test(arguments: [
        ("[]", "an array"), ("[1, 2]", "an array"), (#""online""#, #"string "online""#), ("94", "number 94"),
        ("-0.5e3", "number -0.5e3"), ("null", "null"), ("true", "boolean true"), ("  [ ]\n", "an array"),
    ], topics)
    func validJSONThatIsNotAnObjectIsSchema(_ json: (String, String), _ topic: String) throws {
        let (text, described) = json
        let refusal = try #require(CF.verdict(text, topic: topic).refusal)
        #expect(refusal == Refusal(.schema, "payload: expected a JSON object, got \(described)"))
    }

    @Test(arguments: topics)
    func anObjectIsAccepted(_ topic: String) {
        let payload = topic == CF.status ? #"{"state":"online"}"# : CF.message()
        #expect(CF.verdict(payload, topic: topic).isAccepted)
    }

    @Test(arguments: [
        #"["jean.dupont@example.fr"]"#, #"[{"note": "06 12 34 56 78"}]"#, #""185057800608436""#, #"[[["p-19850512"]]]"#,
    ], topics)
    func identifyingDataInANonObjectStillWins(_ json: String, _ topic: String) throws {
        let refusal = try #require(CF.verdict(json, topic: topic).refusal)
        #expect(refusal.reason == .identifyingData, "\(refusal)")
        for secret in ["jean.dupont", "12 34 56", "185057800608436", "19850512"] {
            #expect(!refusal.detail.contains(secret), "\(refusal.detail)")
        }
    }

    @Test(arguments: ["[1, 2", #"{"msg_id": "m-1", "observations": ["#, #""online"#, "tru", "nul", "'online'", "94 95", "[] {}"], topics)
    func bytesThatAreNotJSONAreMalformed(_ text: String, _ topic: String) {
        #expect(CF.verdict(text, topic: topic).reason == .malformedJSON)
    }

    @Test(arguments: topics)
    func invalidUTF8IsMalformed(_ topic: String) {
        #expect(CF.verdict(bytes: [UInt8(ascii: "["), UInt8(ascii: "\""), 0xFF, UInt8(ascii: "\""), UInt8(ascii: "]")], topic: topic).reason
            == .malformedJSON)
    }

    @Test func anUnknownPilotStillComesBeforeTheTopLevel() {
        #expect(CF.verdict("[]", topic: "pilots/resp-copd-idf-99/dev-0042/obs").reason == .unknownPilot)
    }
}
