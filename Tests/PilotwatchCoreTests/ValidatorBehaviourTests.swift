import PilotwatchCore
import Testing

@Suite("Contract: accepted messages, conversions and times")
struct ValidatorBehaviourTests {
    @Test func acceptedMessageCarriesEveryObservation() throws {
        let payload = CF.message([
            CF.obs(),
            CF.obs(indicator: #""exacerbation""#, value: nil, unit: nil, at: #""2026-11-28T22:10:00Z""#),
            CF.obs(subject: nil, indicator: #""active_patients""#, value: "37", unit: #""1""#),
            CF.obs(indicator: #""cat_score""#, value: "12", unit: #""{score}""#),
        ], extra: #""pilot":"resp-copd-idf-01""#)
        let verdict = CF.verdict(payload)
        guard case .observations(let topic, let m) = verdict else {
            Issue.record("refused: \(verdict)")
            return
        }
        #expect(topic == Topic(pilot: "resp-copd-idf-01", device: "dev-0042", kind: .obs))
        #expect(m.msgID == "dev-0042-000001234")
        #expect(m.sentAt == RFC3339.parse("2026-11-29T08:59:00Z"))
        #expect(m.observations.count == 4)
        let at0 = try #require(RFC3339.parse("2026-11-29T07:55:00Z"))
        #expect(m.observations[0] == Observation(subject: "p-7f3a9c21", indicator: "spo2", kind: .measurement, value: 94, at: at0))
        #expect(m.observations[1].kind == .event)
        #expect(m.observations[1].value == 1)
        #expect(m.observations[2].subject == nil)
        #expect(m.observations[2].value == 37)
        #expect(m.observations[3].kind == .score)
    }

    @Test func sentAtIsOptional() {
        #expect(CF.verdict(CF.message(sentAt: nil)).message?.sentAt == nil)
    }

    @Test func receptionTimeFixture() {
        #expect(CF.received.description == "2026-11-29T09:00:00Z")
    }

    // MARK: Units

    @Test(arguments: [
        ("glucose", "180", "mg/dL", 9.99), ("glucose", "5.5", "mmol/L", 5.5), ("glucose", "18.02", "mg/dL", 1.00011),
        ("hba1c", "53", "mmol/mol", 7.00044), ("hba1c", "6.5", "%", 6.5),
    ])
    func diabetesConversions(_ code: String, _ value: String, _ unit: String, _ expected: Double) throws {
        let v = CF.verdict(CF.message([CF.obs(indicator: "\"\(code)\"", value: value, unit: "\"\(unit)\"")]), topic: CF.diab)
        let stored = try #require(v.message?.observations.first?.value, "\(v)")
        #expect(abs(stored - expected) < 1e-9, "\(stored)")
    }

    @Test(arguments: [("150", "[lb_av]", 68.0388555), ("72.5", "kg", 72.5), ("771", "[lb_av]", 349.71971727)])
    func weightConversions(_ value: String, _ unit: String, _ expected: Double) throws {
        let v = CF.verdict(CF.message([CF.obs(indicator: #""weight""#, value: value, unit: "\"\(unit)\"")]), topic: CF.card)
        let stored = try #require(v.message?.observations.first?.value, "\(v)")
        #expect(abs(stored - expected) < 1e-9, "\(stored)")
    }

    @Test func rangeIsComparedAfterConversion() {
        // 772 lb is 350.17 kg: above 20..350 once converted.
        let v = CF.verdict(CF.message([CF.obs(indicator: #""weight""#, value: "772", unit: #""[lb_av]""#)]), topic: CF.card)
        #expect(v.reason == .outOfRange)
        #expect(v.refusal?.detail == "observations[0].value: 772 [lb_av] (350.1733 kg) is above the plausible range 20..350 for weight")
        // 40 lb is 18.1 kg: below, although 40 is inside the range in kg.
        let low = CF.verdict(CF.message([CF.obs(indicator: #""weight""#, value: "40", unit: #""[lb_av]""#)]), topic: CF.card)
        #expect(low.reason == .outOfRange)
    }

    @Test func eventUnitIsOptionalButMustBeTheCatalogues() {
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""enrolled""#, value: nil, unit: nil)])).isAccepted)
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""enrolled""#, value: "1", unit: #""1""#)])).isAccepted)
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""enrolled""#, value: nil, unit: #""{count}""#)])).reason == .badUnit)
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""enrolled""#, value: "1e999", unit: nil)])).reason == .outOfRange)
        #expect(CF.verdict(CF.message([CF.obs(indicator: #""enrolled""#, value: "2.5", unit: nil)])).message?.observations[0].value == 2.5)
    }

    @Test func badUnitComesBeforeOutOfRange() {
        let v = CF.verdict(CF.message([CF.obs(value: "1e999", unit: #""ppm""#)]))
        #expect(v.reason == .badUnit)
    }

    // MARK: RFC 3339

    @Test(arguments: [
        "2026-11-29T08:55:00Z", "2026-11-29T08:55:00z", "2026-11-29t08:55:00Z", "2026-11-29T08:55:00.123Z",
        "2026-11-29T08:55:00.123456789+01:00", "2026-11-29T03:55:00-05:00", "2026-11-29T14:25:00+05:30",
        "2026-11-29T09:04:59.999Z", "2025-01-05T00:00:00Z", "2026-11-29T23:59:59+23:59",
    ])
    func acceptedTimes(_ at: String) {
        let v = CF.verdict(CF.message([CF.obs(at: "\"\(at)\"")]), receivedAt: CF.received)
        #expect(v.isAccepted, "\(v)")
    }

    @Test(arguments: [
        "2026-11-29T08:55:00", "2026-11-29 08:55:00Z", "2026-11-29", "08:55:00Z", "2026-11-29T08:55Z",
        "2026-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-29T24:00:00Z",
        "2026-11-29T08:60:00Z", "2026-11-29T08:55:60Z", "2026-11-29T08:55:00+0100", "2026-11-29T08:55:00+01",
        "2026-11-29T08:55:00+24:00", "2026-11-29T08:55:00.Z", "2026-11-29T08:55:00.1234567890Z", "26-11-29T08:55:00Z",
        "2026-11-29T08:55:00 Z", "", "now", "2026-11-29T08:55:00Z ", "+2026-11-29T08:55:00Z",
        "1764403200", "2026-11-29T09:05:00.001Z", "2026-11-30T00:00:00Z", "2025-01-04T00:00:00Z", "1970-01-01T00:00:00Z",
    ])
    func refusedTimes(_ at: String) {
        let v = CF.verdict(CF.message([CF.obs(at: "\"\(at)\"")]))
        #expect(v.reason == .badTime, "\(v)")
    }

    @Test func timeNotAStringIsSchema() {
        #expect(CF.verdict(CF.message([CF.obs(at: "1764403200")])).reason == .schema)
        #expect(CF.verdict(CF.message(sentAt: "1764403200")).reason == .schema)
    }

    @Test func futureLimitFollowsReception() {
        let later = CF.received.adding(millis: 3_600_000)
        let v = CF.verdict(CF.message([CF.obs(at: #""2026-11-29T10:04:00Z""#)]), receivedAt: later)
        #expect(v.isAccepted)
        #expect(CF.verdict(CF.message([CF.obs(at: #""2026-11-29T10:04:00Z""#)])).reason == .badTime)
    }

    // MARK: Status

    @Test func statusMessage() {
        let v = CF.verdict(#"{"state":"online","at":"2026-11-29T09:00:00Z","battery_pct":81,"firmware":"2.3.1"}"#, topic: CF.status)
        guard case .status(let topic, let s) = v else {
            Issue.record("refused: \(v)")
            return
        }
        #expect(topic.kind == .status)
        #expect(s == DeviceStatus(state: .online, at: RFC3339.parse("2026-11-29T09:00:00Z"), batteryPct: 81, firmware: "2.3.1"))
        #expect(CF.verdict(#"{"state":"offline"}"#, topic: CF.status).deviceStatus == DeviceStatus(state: .offline, at: nil, batteryPct: nil, firmware: nil))
    }

    @Test func statusIsNotObservations() {
        // An observation payload on a status topic is refused (state missing, unknown fields).
        #expect(CF.verdict(CF.message(), topic: CF.status).reason == .schema)
        // A status payload on an obs topic is refused too.
        #expect(CF.verdict(#"{"state":"online"}"#, topic: CF.resp).reason == .schema)
    }

    // MARK: Order and details

    @Test func firstFailingObservationIsNamed() {
        let v = CF.verdict(CF.message([CF.obs(), CF.obs(value: "30"), CF.obs(value: "140")]))
        #expect(v.refusal?.detail == "observations[1].value: 30 is below the plausible range 50..100 for spo2")
    }

    @Test func configurationGapsAreReportedFirst() {
        // An out-of-range value in observation 0 and an unknown indicator in observation 1: the unknown
        // indicator is reported, so that the message can be re-imported once the catalogue knows it.
        let v = CF.verdict(CF.message([CF.obs(value: "140"), CF.obs(indicator: #""fev2""#)]))
        #expect(v.reason == .unknownIndicator)
    }

    @Test func schemaComesBeforeCatalogueChecks() {
        let v = CF.verdict(CF.message([CF.obs(indicator: #""fev2""#), CF.obs(value: #""94""#)]))
        #expect(v.reason == .schema)
    }

    @Test func detailsCutLongValues() throws {
        let long = String(repeating: "x", count: 500)
        let detail = try #require(CF.verdict(CF.message([CF.obs(indicator: "\"\(long)\"")])).refusal?.detail)
        #expect(detail.count < 200)
        #expect(detail.contains(String(repeating: "x", count: 80) + "…\""))
        let number = "1" + String(repeating: "0", count: 300)
        let d2 = try #require(CF.verdict(CF.message([CF.obs(value: number)])).refusal?.detail)
        #expect(d2.count < 200, "\(d2)")
    }

    @Test func detailsEscapeControlCharacters() throws {
        let detail = try #require(CF.verdict(CF.message([CF.obs(unit: #""%\n\u001b[31m""#)])).refusal?.detail)
        #expect(detail == #"observations[0].unit: "%\n\u001b[31m" is not accepted for spo2 (use %)"#)
    }

    @Test(arguments: [
        (CF.message([CF.obs(subject: #""0612345678""#)]), "0612345678"),
        (CF.message(msgID: #""jean.dupont@example.fr""#), "jean.dupont@example.fr"),
        (CF.message([CF.obs(extra: #""contact":"06 12 34 56 78""#)]), "06 12 34 56 78"),
        (CF.message([CF.obs(extra: #""jean@example.fr":1"#)]), "jean@example.fr"),
        (#"{"msg_id":"m","observations":[{"subject":"185057800608491""#, "185057800608491"),
        (#"{'msg_id':'m','observations':[{'subject':'p-19850512'}]}"#, "19850512"),
    ])
    func identifyingValuesAreNeverEchoed(_ payload: String, _ value: String) throws {
        let r = try #require(CF.verdict(payload).refusal)
        #expect(r.reason == .identifyingData)
        #expect(!r.detail.contains(value), "\(r.detail)")
    }

    @Test func identifyingDataWinsOverEarlierSchemaProblems() {
        // Observation 0 has an unknown field (schema); observation 2's subject is a phone number.
        let payload = CF.message([CF.obs(extra: #""quality":1"#), CF.obs(), CF.obs(subject: #""0612345678""#)])
        #expect(CF.verdict(payload).refusal == Refusal(.identifyingData, "observations[2].subject: looks like a phone number"))
        // Inside values of the wrong type.
        #expect(CF.verdict(CF.message(msgID: #"{"contact":"jean@example.fr"}"#)).refusal?.detail
            == "msg_id.contact: looks like an e-mail address")
        #expect(CF.verdict(CF.message([CF.obs(value: #"["06 12 34 56 78"]"#)])).refusal?.detail
            == "observations[0].value[0]: looks like a phone number")
        // Beyond the 1,000-observation limit.
        let many = Array(repeating: CF.obs(), count: 1000) + [CF.obs(subject: #""p-19850512""#)]
        #expect(CF.verdict(CF.message(many)).refusal?.detail == "observations[1000].subject: looks like a date of birth")
        // After an observation that is not an object.
        #expect(CF.verdict(CF.message(["42", CF.obs(extra: #""Nom":"Dupont""#)])).refusal?.detail
            == "observations[1].Nom: field name suggests identifying data (no such field is allowed)")
        // Status messages, on an unknown pilot too.
        #expect(CF.verdict(#"{"state":"online","extra":{"mail":"x"}}"#, topic: CF.status).reason == .identifyingData)
        #expect(CF.verdict(#"{"state":"online","firmware":"19850512"}"#, topic: "pilots/nobody/d/status").reason == .identifyingData)
    }

    @Test func topicIdentifiersAreNotEchoed() throws {
        let r = try #require(CF.verdict(CF.message(), topic: "pilots/resp-copd-idf-01/1-85-05-78-006-084-91/obs").refusal)
        #expect(r.reason == .identifyingData)
        #expect(!r.detail.contains("006"))
        if case .refused(let topic, _) = CF.verdict(CF.message(), topic: "pilots/resp-copd-idf-01/1-85-05-78-006-084-91/obs") {
            #expect(topic == nil)
        }
    }

    @Test func parseTopic() {
        #expect(CF.validator.parseTopic("pilots/resp-copd-idf-01/dev-0042/status") == .success(Topic(pilot: "resp-copd-idf-01", device: "dev-0042", kind: .status)))
        #expect(CF.validator.parseTopic("pilots/unknown/dev-0042/obs") == .failure(Refusal(.unknownPilot, #"topic: pilot "unknown" is not in the pilot registry"#)))
        let custom = ContractValidator(registry: CF.registry, catalogue: CF.catalogue, topicRoot: "cluster-a")
        #expect((try? custom.parseTopic("cluster-a/resp-copd-idf-01/d1/obs").get()) != nil)
        #expect(custom.parseTopic("pilots/resp-copd-idf-01/d1/obs").failureReason == .schema)
    }

    @Test func msgIDsBuiltFromTimestampsAreNotIdentifying() {
        for id in ["dev-0042-20261129-0001", "2026-11-29T08:59:00Z#17", "1764403212345", "dev-0042-1741012345678", "fw-2025.06.30-b7"] {
            let v = CF.verdict(CF.message(msgID: "\"\(id)\""))
            #expect(v.isAccepted, "\(id): \(v)")
        }
        #expect(CF.verdict(CF.message(msgID: #""m-1985-05-12""#)).reason == .identifyingData)
    }
}

extension Result where Failure == Refusal {
    var failureReason: ReasonCode? {
        if case .failure(let r) = self { return r.reason }
        return nil
    }
}

/// A topic root of several levels (`region-idf/pilots`, which the configuration allows) is one
/// root: the pilot, device and kind follow it.
@Suite("Contract: a topic root of several levels")
struct MultiLevelRootTests {
    static let validator = ContractValidator(registry: CF.validator.registry, catalogue: CF.validator.catalogue,
                                             topicRoot: "region-idf/pilots")

    static func verdict(_ topic: String) -> Verdict {
        validator.validate(topic: topic, payload: Array(CF.message().utf8), receivedAt: CF.received)
    }

    @Test func underTheRootAMessageIsAccepted() {
        #expect(Self.verdict("region-idf/pilots/resp-copd-idf-01/dev-0042/obs").isAccepted)
    }

    @Test(arguments: [
        ("pilots/resp-copd-idf-01/dev-0042/obs", "topic: \"pilots/resp-copd-idf-01/dev-0042/obs\" has 4 levels; expected region-idf/pilots/{pilot_id}/{device_id}/obs or .../status (or region-idf/pilots/{pilot_id}/{site_id}/agg)"),
        ("region-est/pilots/resp-copd-idf-01/dev-0042/obs", "topic: root \"region-est/pilots\" is not \"region-idf/pilots\""),
        ("region-idf/pilots/resp-copd-idf-01/obs", "topic: \"region-idf/pilots/resp-copd-idf-01/obs\" has 4 levels; expected region-idf/pilots/{pilot_id}/{device_id}/obs or .../status (or region-idf/pilots/{pilot_id}/{site_id}/agg)"),
    ])
    func anotherRootOrShapeIsSchema(_ topic: String, _ detail: String) {
        #expect(Self.verdict(topic).refusal == Refusal(.schema, detail))
    }

    @Test func anIdentifierInAnyLevelIsStillIdentifying() {
        #expect(Self.verdict("region-idf/pilots/resp-copd-idf-01/jean.dupont@example.fr/obs").refusal
                == Refusal(.identifyingData, "topic: level 4 looks like an e-mail address"))
        #expect(Self.verdict("jean.dupont@example.fr/pilots/resp-copd-idf-01/dev-0042/obs").reason == .identifyingData)
    }
}
