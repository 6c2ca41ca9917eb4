import PilotwatchCore
import Testing

/// `identifyingRefusal(rawBytes:receivedAt:naming:)`: the payload's identity scan, asked of bytes
/// that do not reach the validator whole (an NDJSON line whose wrapper `ingest` refuses).
@Suite("Contract: identifying data in raw bytes")
struct RawBytesScanTests {
    static let topic = #""topic": "pilots/resp-copd-idf-01/dev-0042/obs""#
    static let payload = #""payload": "# + CF.message()

    static func refusal(_ line: String) -> Refusal? {
        CF.validator.identifyingRefusal(rawBytes: Array(line.utf8), receivedAt: CF.received, naming: "line 3")
    }

    @Test(arguments: [
        // An unknown wrapper key, the values the contract forbids.
        ("{\(topic), \(payload), \"note\": \"patient jean.dupont@example.fr\"}", "line 3, field note: looks like an e-mail address"),
        ("{\(topic), \(payload), \"note\": \"rappeler au 06 12 34 56 78\"}", "line 3, field note: looks like a phone number"),
        ("{\(topic), \(payload), \"note\": \"+33612345678\"}", "line 3, field note: looks like a phone number"),
        ("{\(topic), \(payload), \"note\": \"NIR 1 85 05 78 006 084 36\"}", "line 3, field note: looks like a French NIR number"),
        ("{\(topic), \(payload), \"note\": \"185057800608436\"}", "line 3, field note: looks like a French NIR number"),
        // The same in a line without a topic, in the payload, and as a wrapper key.
        ("{\(payload), \"src\": [\"ok\", \"jean.dupont@example.fr\"]}", "line 3, field src[1]: looks like an e-mail address"),
        (#"{"payload": {"msg_id": "m-1", "observations": [{"subject": "0612345678"}]}}"#,
         "line 3, field payload.observations[0].subject: looks like a phone number"),
        ("{\(topic), \"jean.dupont@example.fr\": 1}", "line 3: a field name looks like an e-mail address"),
        ("{\(topic), \"first_name\": \"Jean\"}", "line 3, field first_name: field name suggests identifying data (no such field is allowed)"),
        // An escape hides nothing from the walk.
        (#"{"note": "jean.dupont\u0040example.fr"}"#, "line 3, field note: looks like an e-mail address"),
        // Numbers are read by the lexical pass.
        ("{\(topic), \"note\": 185057800608436}", "line 3: a value looks like a French NIR number"),
        // Bytes that are not JSON: a truncated line.
        ("{\(topic), \"note\": \"06 12 34 56 78\", \"payload\": {\"msg_id\"", "line 3 (not valid JSON): a value looks like a phone number"),
        (#"{"topic": "pilots/resp-copd-idf-01/dev-0042/obs", "payload": {"msg_id": "m-1", "observations": [{"subject": "185057800608436"#,
         "line 3 (not valid JSON): a value looks like a French NIR number"),
        (#"[jean.dupont@example.fr"#, "line 3 (not valid JSON): a value looks like an e-mail address"),
    ])
    func identifyingLinesAreRefused(_ line: String, _ detail: String) throws {
        let refusal = try #require(Self.refusal(line))
        #expect(refusal == Refusal(.identifyingData, detail))
        for secret in ["jean.dupont", "12 34 56", "612345678", "85 05 78", "1850578006084", "Jean"] {
            #expect(!refusal.detail.contains(secret), "\(refusal.detail)")
        }
    }

    @Test(arguments: [
        // Wrappers refused for other reasons: their legitimate fields are not identifying.
        "{\(topic), \(payload), \"source\": \"backend-2 export 2026-11-29T09:00:00Z\"}",
        "{\(payload)}",
        "{\(topic)}",
        "{\(topic), \"payload\": [1, 2]}",
        "{\(topic), \"payload_text\": 42}",
        "{\"topic\": 7, \(payload)}",
        "[\"\(CF.resp)\"]",
        "{\(topic), \(payload)",
        "{\(topic), \"payload\": {\"msg_id\": \"dev-0042-000001234\", \"sent_at\": \"2026-11-29T08:59:00Z\", \"observations\": [{\"subject\": \"p-7f3a9c21\"",
        // A good line, and one with every kind of observation and a status.
        "{\(topic), \(payload)}",
        "{\(topic), \"payload\": \(CF.message([CF.obs(), CF.obs(subject: nil, indicator: #""active_patients""#, value: "37", unit: #""1""#)]))}",
        #"{"topic": "pilots/resp-copd-idf-01/dev-0042/status", "payload": {"state": "online", "at": "2026-11-29T09:00:00Z", "battery_pct": 81, "firmware": "2.3.1"}}"#,
        #"{"topic": "pilots/resp-copd-idf-01/dev-0042/obs", "payload_text": "{\"msg_id\": \"1764403212345\", \"observations\": []}"}"#,
    ])
    func otherLinesAreNot(_ line: String) {
        #expect(Self.refusal(line) == nil)
    }

    @Test func theDefaultNameIsPayload() {
        let bytes = Array(#"{"note": "jean.dupont@example.fr"}"#.utf8)
        #expect(CF.validator.identifyingRefusal(rawBytes: bytes, receivedAt: CF.received)?.detail
            == "payload, field note: looks like an e-mail address")
    }
}

/// A message refused for another reason whose bytes would be kept in quarantine is read once
/// more as raw bytes: an identifier's shape anywhere, numbers included, makes it
/// `identifying_data` (hash only); ordinary numbers leave the first reason as it was.
@Suite("Contract: a refusal that keeps its bytes is scanned as raw bytes first")
struct RefusalRawScanTests {
    @Test func aNIRWrittenAsANumberIsIdentifyingNotOutOfRange() {
        let v = CF.verdict(CF.message([CF.obs(value: "185057800608436")]))
        #expect(v.refusal == Refusal(.identifyingData, "payload: a value looks like a French NIR number"))
    }

    @Test func aPhoneNumberAsAValueBesideAnUnknownIndicator() {
        let v = CF.verdict(CF.message([CF.obs(indicator: #""nt_probnp""#, value: "0612345678")]))
        #expect(v.reason == .identifyingData)
    }

    @Test(arguments: ["140", "1e999", "1.7976931348623157e308", "-3"])
    func ordinaryNumbersKeepTheirReason(_ value: String) {
        #expect(CF.verdict(CF.message([CF.obs(value: value)])).reason == .outOfRange)
    }

    @Test func anUnknownIndicatorStaysReplayable() {
        let v = CF.verdict(CF.message([CF.obs(indicator: #""nt_probnp""#, value: "412")]))
        #expect(v.reason == .unknownIndicator)
        #expect(v.refusal?.reason.keepsPayload == true)
    }
}
