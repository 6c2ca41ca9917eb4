import PilotwatchCore
import Testing

/// Every reason code of the contract, each refused case beside an accepted neighbour.
enum ReasonPairs {
    static let o = CF.obs()
    static let longID = String(repeating: "a", count: 64)

    static let all: [CasePair] = [
        // too_large
        CasePair("payload one byte over 256 KiB", .tooLarge,
                 refused: padded(CF.message(), to: ContractLimits.maxPayloadBytes + 1),
                 accepted: padded(CF.message(), to: ContractLimits.maxPayloadBytes),
                 detail: "payload: 262145 bytes is more than the limit of 262144 bytes"),

        // malformed_json
        CasePair("truncated JSON", .malformedJSON,
                 refused: String(CF.message().dropLast()), accepted: CF.message(), detail: "unexpected end of input"),
        CasePair("duplicate key", .malformedJSON,
                 refused: CF.message([CF.obs(extra: #""value":95"#)]), accepted: CF.message(), detail: #"duplicate key "value""#),
        CasePair("duplicate key through an escape", .malformedJSON,
                 refused: CF.message([CF.obs(extra: #""v\u0061lue":95"#)]), accepted: CF.message(), detail: "duplicate key"),
        CasePair("NaN literal", .malformedJSON,
                 refused: CF.message([CF.obs(value: "NaN")]), accepted: CF.message([CF.obs(value: "94")]),
                 detail: "NaN and Infinity are not JSON numbers"),
        CasePair("leading zero", .malformedJSON,
                 refused: CF.message([CF.obs(value: "094")]), accepted: CF.message([CF.obs(value: "94")]),
                 detail: "invalid number"),
        CasePair("trailing data", .malformedJSON,
                 refused: CF.message() + " {}", accepted: CF.message() + " \n", detail: "data after the JSON value"),
        CasePair("single-quoted strings", .malformedJSON,
                 refused: CF.message().replacingQuotes(), accepted: CF.message(), detail: "unexpected character '''"),

        // schema: topic
        CasePair("topic pilot id with capitals and !", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/Bad!/dev-0042/obs", acceptedTopic: CF.resp,
                 detail: #"topic: pilot id "Bad!" must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit"#),
        CasePair("topic with +", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/+/dev-0042/obs", acceptedTopic: CF.resp,
                 detail: "wildcard"),
        CasePair("topic with #", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/#", acceptedTopic: CF.resp,
                 detail: "wildcard"),
        CasePair("device id with ..", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/dev..0042/obs",
                 acceptedTopic: "pilots/resp-copd-idf-01/dev.0042/obs", detail: #"device id "dev..0042" must not contain "..""#),
        CasePair("device id of 65 characters", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/\(longID)b/obs",
                 acceptedTopic: "pilots/resp-copd-idf-01/\(longID)/obs", detail: "device id"),
        CasePair("device id starting with -", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/-dev/obs",
                 acceptedTopic: "pilots/resp-copd-idf-01/0dev/obs", detail: "starting with a letter or digit"),
        CasePair("empty device level", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01//obs", acceptedTopic: CF.resp,
                 detail: #"device id """#),
        CasePair("three levels", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/obs", acceptedTopic: CF.resp,
                 detail: "has 3 levels"),
        CasePair("five levels", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/dev-0042/obs/x", acceptedTopic: CF.resp,
                 detail: "has 5 levels"),
        CasePair("wrong root", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilot/resp-copd-idf-01/dev-0042/obs", acceptedTopic: CF.resp,
                 detail: #"root "pilot" is not "pilots""#),
        CasePair("suffix neither obs nor status", .schema,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/dev-0042/data", acceptedTopic: CF.resp,
                 detail: #"last level "data" must be obs, status or agg"#),

        // schema: payload
        CasePair("top-level array", .schema,
                 refused: "[" + CF.message() + "]", accepted: CF.message(), detail: "payload: expected a JSON object, got an array"),
        CasePair("top-level string", .schema,
                 refused: #""dev-0042-000001234""#, accepted: CF.message(), detail: #"payload: expected a JSON object, got string "dev-0042-000001234""#),
        CasePair("top-level number", .schema, refused: "94", accepted: CF.message(), detail: "payload: expected a JSON object, got number 94"),
        CasePair("top-level null", .schema, refused: "null", accepted: CF.message(), detail: "payload: expected a JSON object, got null"),
        CasePair("status as a top-level array", .schema,
                 refused: #"[{"state":"online"}]"#, accepted: #"{"state":"online"}"#,
                 topic: CF.status, detail: "payload: expected a JSON object, got an array"),
        CasePair("empty object", .schema, refused: "{}", accepted: CF.message(), detail: "msg_id: required"),
        CasePair("unknown top-level field", .schema,
                 refused: CF.message(extra: #""comment":"ok""#), accepted: CF.message(extra: #""pilot":"resp-copd-idf-01""#),
                 detail: "comment: unknown field (allowed: msg_id, sent_at, pilot, observations)"),
        CasePair("unknown observation field", .schema,
                 refused: CF.message([CF.obs(extra: #""quality":3"#)]), accepted: CF.message(),
                 detail: "observations[0].quality: unknown field"),
        CasePair("msg_id of 129 characters", .schema,
                 refused: CF.message(msgID: "\"\(String(repeating: "m", count: 129))\""),
                 accepted: CF.message(msgID: "\"\(String(repeating: "m", count: 128))\""),
                 detail: "must be 1-128 printable ASCII characters"),
        CasePair("empty msg_id", .schema,
                 refused: CF.message(msgID: #""""#), accepted: CF.message(msgID: #""m""#), detail: "msg_id"),
        CasePair("msg_id with a control character", .schema,
                 refused: CF.message(msgID: #""dev-0042\u0001""#), accepted: CF.message(msgID: #""dev 0042 ~!""#),
                 detail: #"msg_id: "dev-0042\u0001" must be"#),
        CasePair("msg_id not a string", .schema,
                 refused: CF.message(msgID: "1234"), accepted: CF.message(msgID: #""1234""#),
                 detail: "msg_id: expected a string, got number 1234"),
        CasePair("missing observations", .schema,
                 refused: #"{"msg_id":"m-1"}"#, accepted: CF.message(), detail: "observations: required"),
        CasePair("no observations", .schema,
                 refused: CF.message([]), accepted: CF.message(), detail: "observations: must hold 1 to 1000 items, got 0"),
        CasePair("1001 observations", .schema,
                 refused: CF.message(Array(repeating: o, count: 1001)), accepted: CF.message(Array(repeating: o, count: 1000)),
                 detail: "got 1001"),
        CasePair("observation not an object", .schema,
                 refused: CF.message([o, "94"]), accepted: CF.message([o, o]), detail: "observations[1]: expected an object, got number 94"),
        CasePair("value as a string", .schema,
                 refused: CF.message([CF.obs(value: #""94""#)]), accepted: CF.message([CF.obs(value: "94")]),
                 detail: #"observations[0].value: expected a number, got string "94""#),
        CasePair("value as a boolean", .schema,
                 refused: CF.message([CF.obs(value: "true")]), accepted: CF.message([CF.obs(value: "94.5")]),
                 detail: "got boolean true"),
        CasePair("value null", .schema,
                 refused: CF.message([CF.obs(value: "null")]), accepted: CF.message([CF.obs(value: "9.4e1")]), detail: "got null"),
        CasePair("measurement without value", .schema,
                 refused: CF.message([CF.obs(value: nil)]), accepted: CF.message(), detail: "observations[0].value: required for spo2"),
        CasePair("missing indicator", .schema,
                 refused: CF.message([CF.obs(indicator: nil)]), accepted: CF.message(), detail: "observations[0].indicator: required"),
        CasePair("missing at", .schema,
                 refused: CF.message([CF.obs(at: nil)]), accepted: CF.message(), detail: "observations[0].at: required"),
        CasePair("subject of 5 characters", .schema,
                 refused: CF.message([CF.obs(subject: #""p-7f3""#)]), accepted: CF.message([CF.obs(subject: #""p-7f3a""#)]),
                 detail: #"observations[0].subject: "p-7f3" must be 6-64 characters of A-Z a-z 0-9 _ -"#),
        CasePair("subject of 65 characters", .schema,
                 refused: CF.message([CF.obs(subject: "\"\(longID)b\"")]), accepted: CF.message([CF.obs(subject: "\"\(longID)\"")]),
                 detail: "observations[0].subject"),
        CasePair("subject with a dot", .schema,
                 refused: CF.message([CF.obs(subject: #""p.7f3a9c21""#)]), accepted: CF.message([CF.obs(subject: #""P_7f3a-9c21""#)]),
                 detail: "observations[0].subject"),
        CasePair("subject missing for a subject-level indicator", .schema,
                 refused: CF.message([CF.obs(subject: nil)]), accepted: CF.message(),
                 detail: "observations[0].subject: required for spo2, a subject-level indicator"),
        CasePair("subject present for a pilot-level indicator", .schema,
                 refused: CF.message([CF.obs(indicator: #""active_patients""#, value: "42", unit: #""1""#)]),
                 accepted: CF.message([CF.obs(subject: nil, indicator: #""active_patients""#, value: "42", unit: #""1""#)]),
                 detail: "observations[0].subject: must be absent for active_patients, a pilot-level indicator"),
        CasePair("status with an unknown state", .schema,
                 refused: #"{"state":"sleeping"}"#, accepted: #"{"state":"offline"}"#,
                 topic: CF.status, detail: #"state: "sleeping" must be online or offline"#),
        CasePair("status without state", .schema,
                 refused: #"{"battery_pct":50}"#, accepted: #"{"state":"online","battery_pct":50}"#,
                 topic: CF.status, detail: "state: required"),
        CasePair("status with an unknown field", .schema,
                 refused: #"{"state":"online","rssi":-70}"#, accepted: #"{"state":"online","at":"2026-11-29T09:00:00Z"}"#,
                 topic: CF.status, detail: "rssi: unknown field (allowed: state, at, battery_pct, firmware)"),
        CasePair("firmware of 65 characters", .schema,
                 refused: "{\"state\":\"online\",\"firmware\":\"\(String(repeating: "1", count: 65))\"}",
                 accepted: "{\"state\":\"online\",\"firmware\":\"\(String(repeating: "1", count: 64))\"}",
                 topic: CF.status, detail: "firmware"),
        CasePair("battery as a string", .schema,
                 refused: #"{"state":"online","battery_pct":"81"}"#, accepted: #"{"state":"online","battery_pct":81}"#,
                 topic: CF.status, detail: #"battery_pct: expected a number, got string "81""#),

        // unknown_pilot
        CasePair("pilot not in the registry", .unknownPilot,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-99/dev-0042/obs", acceptedTopic: CF.resp,
                 detail: #"topic: pilot "resp-copd-idf-99" is not in the pilot registry"#),

        // unknown_indicator
        CasePair("indicator not in the catalogue", .unknownIndicator,
                 refused: CF.message([o, CF.obs(indicator: #""spo3""#)]), accepted: CF.message([o, CF.obs(indicator: #""spo2""#)]),
                 detail: #"observations[1].indicator: "spo3" is not in the indicator catalogue"#),

        // indicator_not_in_programme
        CasePair("glucose from a respiratory pilot", .indicatorNotInProgramme,
                 refused: CF.message([CF.obs(indicator: #""glucose""#, value: "5.5", unit: #""mmol/L""#)]),
                 accepted: CF.message([CF.obs(indicator: #""glucose""#, value: "5.5", unit: #""mmol/L""#)]),
                 topic: CF.resp, acceptedTopic: CF.diab,
                 detail: "observations[0].indicator: glucose is not part of the respiratory programme of pilot resp-copd-idf-01"),

        // bad_unit
        CasePair("glucose in mg/dl (wrong case)", .badUnit,
                 refused: CF.message([CF.obs(indicator: #""glucose""#, value: "99", unit: #""mg/dl""#)]),
                 accepted: CF.message([CF.obs(indicator: #""glucose""#, value: "99", unit: #""mg/dL""#)]),
                 topic: CF.diab, detail: #"observations[0].unit: "mg/dl" is not accepted for glucose (use mmol/L or mg/dL)"#),
        CasePair("measurement without unit", .badUnit,
                 refused: CF.message([CF.obs(unit: nil)]), accepted: CF.message(),
                 detail: "observations[0].unit: required for spo2 (use %)"),
        CasePair("event with a unit other than the catalogue's", .badUnit,
                 refused: CF.message([CF.obs(indicator: #""exacerbation""#, value: nil, unit: #""%""#)]),
                 accepted: CF.message([CF.obs(indicator: #""exacerbation""#, value: nil, unit: #""1""#)]),
                 detail: #"observations[0].unit: "%" is not accepted for exacerbation"#),
        CasePair("weight in stones", .badUnit,
                 refused: CF.message([CF.obs(indicator: #""weight""#, value: "12", unit: #""[stone_av]""#)]),
                 accepted: CF.message([CF.obs(indicator: #""weight""#, value: "180", unit: #""[lb_av]""#)]),
                 topic: CF.card, detail: "(use kg or [lb_av])"),

        // out_of_range
        CasePair("spo2 above 100", .outOfRange,
                 refused: CF.message([o, o, o, CF.obs(value: "140")]), accepted: CF.message([o, o, o, CF.obs(value: "100")]),
                 detail: "observations[3].value: 140 is above the plausible range 50..100 for spo2"),
        CasePair("spo2 below 50", .outOfRange,
                 refused: CF.message([CF.obs(value: "49.9")]), accepted: CF.message([CF.obs(value: "50")]),
                 detail: "observations[0].value: 49.9 is below the plausible range 50..100 for spo2"),
        CasePair("glucose above range after conversion", .outOfRange,
                 refused: CF.message([CF.obs(indicator: #""glucose""#, value: "900", unit: #""mg/dL""#)]),
                 accepted: CF.message([CF.obs(indicator: #""glucose""#, value: "700", unit: #""mg/dL""#)]),
                 topic: CF.diab, detail: "observations[0].value: 900 mg/dL (49.95 mmol/L) is above the plausible range 1..40 for glucose"),
        CasePair("1e999", .outOfRange,
                 refused: CF.message([CF.obs(value: "1e999")]), accepted: CF.message([CF.obs(value: "1e2")]),
                 detail: "observations[0].value: 1e999 is not a finite number"),
        CasePair("negative event value", .outOfRange,
                 refused: CF.message([CF.obs(indicator: #""enrolled""#, value: "-1", unit: nil)]),
                 accepted: CF.message([CF.obs(indicator: #""enrolled""#, value: "0", unit: nil)]),
                 detail: "observations[0].value: -1 is negative"),
        CasePair("event value above the catalogue's range", .outOfRange,
                 refused: CF.message([CF.obs(indicator: #""exacerbation""#, value: "6", unit: nil)]),
                 accepted: CF.message([CF.obs(indicator: #""exacerbation""#, value: "5", unit: nil)]),
                 detail: "observations[0].value: 6 is above the plausible range 0..5 for exacerbation"),
        CasePair("battery above 100", .outOfRange,
                 refused: #"{"state":"online","battery_pct":100.5}"#, accepted: #"{"state":"online","battery_pct":100}"#,
                 topic: CF.status, detail: "battery_pct: 100.5 is outside 0..100"),

        // bad_time
        CasePair("at without offset", .badTime,
                 refused: CF.message([CF.obs(at: #""2026-11-29T08:55:00""#)]), accepted: CF.message([CF.obs(at: #""2026-11-29T08:55:00Z""#)]),
                 detail: #"observations[0].at: "2026-11-29T08:55:00" is not an RFC 3339 date-time with offset"#),
        CasePair("at more than 5 minutes in the future", .badTime,
                 refused: CF.message([CF.obs(at: #""2026-11-29T09:05:00.001Z""#)]),
                 accepted: CF.message([CF.obs(at: #""2026-11-29T10:05:00+01:00""#)]),
                 detail: "is more than 5 minutes after the message was received (2026-11-29T09:00:00Z)"),
        CasePair("at more than 365 days before the pilot's start", .badTime,
                 refused: CF.message([CF.obs(at: #""2025-01-04T23:59:59.999Z""#)]),
                 accepted: CF.message([CF.obs(at: #""2025-01-05T00:00:00Z""#)]),
                 detail: "is more than 365 days before the start of pilot resp-copd-idf-01 (2026-01-05)"),
        CasePair("sent_at unparseable", .badTime,
                 refused: CF.message(sentAt: #""yesterday""#), accepted: CF.message(sentAt: nil),
                 detail: #"sent_at: "yesterday" is not an RFC 3339 date-time"#),
        CasePair("status at unparseable", .badTime,
                 refused: #"{"state":"online","at":"2026-11-29"}"#, accepted: #"{"state":"online","at":"2026-11-29T00:00:00-05:00"}"#,
                 topic: CF.status, detail: #"at: "2026-11-29" is not an RFC 3339 date-time"#),

        // pilot_mismatch
        CasePair("pilot field naming another pilot", .pilotMismatch,
                 refused: CF.message(extra: #""pilot":"diab-cgm-idf-02""#), accepted: CF.message(extra: #""pilot":"resp-copd-idf-01""#),
                 detail: #"pilot: "diab-cgm-idf-02" does not match the topic's pilot "resp-copd-idf-01""#),

        // identifying_data
        CasePair("subject is a phone number", .identifyingData,
                 refused: CF.message([CF.obs(subject: #""0612345678""#)]), accepted: CF.message([CF.obs(subject: #""c-00042""#)]),
                 detail: "observations[0].subject: looks like a phone number"),
        CasePair("subject embeds a birth date", .identifyingData,
                 refused: CF.message([CF.obs(subject: #""p-19850512""#)]), accepted: CF.message([CF.obs(subject: #""p-7f3a9c21""#)]),
                 detail: "observations[0].subject: looks like a date of birth"),
        CasePair("subject is a NIR", .identifyingData,
                 refused: CF.message([CF.obs(subject: #""185057800608491""#)]), accepted: CF.message([CF.obs(subject: #""SUBJ_000123""#)]),
                 detail: "observations[0].subject: looks like a French NIR number"),
        CasePair("msg_id is an e-mail address", .identifyingData,
                 refused: CF.message(msgID: #""jean.dupont@example.fr""#), accepted: CF.message(msgID: #""jean.dupont-example.fr""#),
                 detail: "msg_id: looks like an e-mail address"),
        CasePair("field named first_name", .identifyingData,
                 refused: CF.message([CF.obs(extra: #""first_name":"Jean""#)]), accepted: CF.message(),
                 detail: "observations[0].first_name: field name suggests identifying data"),
        CasePair("field named Date-Of-Birth at top level", .identifyingData,
                 refused: CF.message(extra: #""Date-Of-Birth":null"#), accepted: CF.message(),
                 detail: "Date-Of-Birth: field name suggests identifying data"),
        CasePair("e-mail address in an unknown field", .identifyingData,
                 refused: CF.message([CF.obs(extra: #""note":["call","jean@example.fr"]"#)]),
                 accepted: CF.message([CF.obs(extra: nil)]),
                 detail: "observations[0].note[1]: looks like an e-mail address"),
        CasePair("device id is a phone number", .identifyingData,
                 refused: CF.message(), accepted: CF.message(), topic: "pilots/resp-copd-idf-01/06.12.34.56.78/obs",
                 acceptedTopic: "pilots/resp-copd-idf-01/06.12.34/obs", detail: "topic: level 3 looks like a phone number"),
        CasePair("firmware is a phone number", .identifyingData,
                 refused: #"{"state":"online","firmware":"+33 6 12 34 56 78"}"#, accepted: #"{"state":"online","firmware":"2.3.1"}"#,
                 topic: CF.status, detail: "firmware: looks like a phone number"),
        CasePair("identifying field in malformed JSON", .identifyingData,
                 refused: #"{"msg_id":"m-1","email":"jean@example.fr","observations":["#,
                 accepted: CF.message(), detail: "payload (not valid JSON)"),
        CasePair("identifying data wins over an unknown pilot", .identifyingData,
                 refused: CF.message([CF.obs(subject: #""jean_1985-05-12""#)]), accepted: CF.message(),
                 topic: "pilots/resp-copd-idf-99/dev-0042/obs", acceptedTopic: CF.resp, detail: "looks like a date of birth"),
        CasePair("identifying data wins over bad units and ranges", .identifyingData,
                 refused: CF.message([CF.obs(value: "140", unit: #""mg""#, extra: #""surname":"Dupont""#)]),
                 accepted: CF.message([CF.obs(value: "94", unit: #""%""#)]), detail: "surname"),
    ]

    /// `json` with spaces inserted after its first `{` so that it is exactly `size` bytes.
    static func padded(_ json: String, to size: Int) -> String {
        "{" + String(repeating: " ", count: size - json.utf8.count) + json.dropFirst()
    }
}

extension String {
    func replacingQuotes() -> String { String(map { $0 == "\"" ? "'" : $0 }) }
}

@Suite("Contract: every reason code, refused beside an accepted neighbour")
struct ValidatorReasonTests {
    @Test(arguments: ReasonPairs.all)
    func refusedAndAccepted(_ pair: CasePair) {
        let refused = pair.refused.verdict
        #expect(refused.reason == pair.refused.reason, "\(refused)")
        if let fragment = pair.refused.detail {
            let detail = refused.refusal?.detail ?? ""
            #expect(detail.contains(fragment), "detail was: \(detail)")
        }
        let accepted = pair.accepted.verdict
        #expect(accepted.isAccepted, "neighbour refused: \(accepted)")
    }

    @Test func everyReasonCodeHasAPair() {
        let covered = Set(ReasonPairs.all.map(\.refused.reason))
        // Every reason the contract gives a message (store_error is the service's own, shown
        // with a database that refuses a message: DurabilityTests; erased_subject is the store's,
        // decided by its tombstones: ErasureTests; aggregate_pilot, unknown_site and
        // registry_mismatch need a pilot that reports aggregates: AggregatePilotTests and
        // SnapshotIntakeTests here, FederationIntakeTests over the broker).
        let elsewhere: Set<ReasonCode> = [.storeError, .erasedSubject, .aggregatePilot, .unknownSite, .registryMismatch]
        for code in ReasonCode.allCases where !elsewhere.contains(code) {
            #expect(covered.contains(code), "no refused case for \(code.rawValue)")
        }
    }

    @Test func refusedVerdictCarriesTheTopicWhenItParsed() {
        guard case .refused(let topic?, let r) = CF.verdict(CF.message([CF.obs(value: "140")])) else {
            Issue.record("expected a refusal with a topic")
            return
        }
        #expect(topic == Topic(pilot: "resp-copd-idf-01", device: "dev-0042", kind: .obs))
        #expect(r.reason == .outOfRange)

        guard case .refused(let unknown?, let r2) = CF.verdict(CF.message(), topic: "pilots/new-pilot/dev-1/obs") else {
            Issue.record("expected an unknown_pilot refusal with a topic")
            return
        }
        #expect(unknown == Topic(pilot: "new-pilot", device: "dev-1", kind: .obs))
        #expect(r2.reason == .unknownPilot)

        guard case .refused(.none, let r3) = CF.verdict(CF.message(), topic: "pilots/a/b/c/d") else {
            Issue.record("expected a refusal without a topic")
            return
        }
        #expect(r3.reason == .schema)
    }
}
