/// Checks one MQTT message against the wire contract (`mqtt-contract.md`, version 1) and
/// says what it is: observations, a device status, or a refusal with a reason code and a
/// detail that names the field and the offending value.
///
/// ```swift
/// let validator = ContractValidator(registry: registry, catalogue: catalogue)
/// let verdict = validator.validate(topic: "pilots/resp-copd-idf-01/dev-0042/obs",
///                                  payload: Array(json.utf8), receivedAt: now)
/// // .refused(topic, observations[3].value: 140 is above the plausible range 50..100 for spo2)
/// ```
///
/// Refusing is a value, never a thrown error. Checks run in this order, and the first
/// failure is the verdict:
///
/// 1. `identifying_data` in the topic: a pilot or device id shaped like a direct identifier;
///    then `aggregate_pilot` (contract 1.1) for a well-shaped topic of a registered pilot whose
///    entry says `reporting: aggregates`: its payload is not read, and is kept as hash only.
/// 2. `too_large`: more than `ContractLimits.maxPayloadBytes`, checked before parsing
///    (such a payload is not scanned; keep no more than its hash).
/// 3. `identifying_data` in the payload, so that identifying data wins over every other
///    reason (such a message is never stored): a field whose *name* suggests identity
///    (`name`, `email`, `phone`, `birth_date`, `nir`...) anywhere, or a string value shaped
///    like an e-mail address, phone number, NIR or date of birth anywhere (subject and
///    pilot strictly; `at`/`sent_at` without date shapes; `msg_id`, firmware and other
///    strings reading dates of the last five years as timestamps). A payload that is not
///    valid JSON gets a best-effort lexical scan of its string tokens for the same shapes.
/// 4. The topic: `schema` for its shape (4 levels `{root}/{pilot_id}/{device_id}/{obs|status}`,
///    no `+` or `#`, ids of 1–64 `a-z 0-9 . _ -` starting with a letter or digit, no `..`),
///    then `unknown_pilot`.
/// 5. `malformed_json`: not UTF-8, or not JSON (duplicate keys included).
/// 6. `schema`: JSON that is not an object at the top level (an array, a string, a number,
///    `null`), unknown fields, missing or ill-typed fields (numbers as strings too),
///    `msg_id` not 1–128 printable ASCII, 0 or more than 1,000 observations, subject charset
///    and length; for status messages `state` not `online`/`offline`, `firmware` not
///    0–64 printable ASCII characters.
/// 7. `pilot_mismatch`: a `pilot` field other than the topic's pilot.
/// 8. Per observation, in order: `unknown_indicator`, `indicator_not_in_programme`, and
///    `schema` for a subject present on a pilot-level indicator (or absent on a
///    subject-level one) or a measurement or score without a value.
/// 9. `bad_time` for an unparseable `sent_at`.
/// 10. Per observation, in order: `bad_unit` (missing for a measurement or score, or not the
///    catalogue's unit nor one it converts from; an event's unit, if given, must be the
///    catalogue's), `out_of_range` (not finite, or outside the plausible range after
///    conversion; event values must be ≥ 0), `bad_time` (`at` not RFC 3339 with offset,
///    more than 5 minutes after reception, or more than 365 days before the pilot's start).
///    Status messages: `bad_time` for an unparseable `at`, `out_of_range` for `battery_pct`
///    outside 0...100.
///
/// Details quote values JSON-escaped and cut to 80 characters, and never repeat a value
/// refused as identifying data.
public struct ContractValidator: Sendable {
    public let registry: Registry
    public let catalogue: Catalogue
    public let topicRoot: String
    /// Reads snapshot payloads (contract 1.1); nil: snapshots are refused as `schema`.
    public let snapshots: (any SnapshotChecking)?

    /// Lookups built once: a reference per pilot and indicator, so the hot path copies no large struct.
    let pilotRules: [String: PilotRule]
    /// The same, searched by bytes (no string is built for a topic level).
    let pilotList: [(id: [UInt8], rule: PilotRule)]
    let indicatorRules: [String: IndicatorRule]
    let rootBytes: [UInt8]
    /// How many topic levels the root has (`pilots`: 1; `region/pilots`: 2).
    let rootLevels: Int

    public init(registry: Registry, catalogue: Catalogue, topicRoot: String = "pilots", snapshots: (any SnapshotChecking)? = nil) {
        self.registry = registry
        self.catalogue = catalogue
        self.topicRoot = topicRoot
        self.snapshots = snapshots
        var pilots: [String: PilotRule] = [:]
        for p in registry.pilots where pilots[p.id] == nil { pilots[p.id] = PilotRule(p) }
        pilotRules = pilots
        pilotList = pilots.map { (Array($0.key.utf8), $0.value) }
        var indicators: [String: IndicatorRule] = [:]
        for i in catalogue.indicators where indicators[i.code] == nil { indicators[i.code] = IndicatorRule(i) }
        indicatorRules = indicators
        rootBytes = Array(topicRoot.utf8)
        rootLevels = topicRoot.utf8.reduce(1) { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) }
    }

    /// The verdict of the contract on one message.
    ///
    /// A refusal whose payload would be kept in quarantine is checked once more on the raw
    /// bytes (``identifyingRefusal(rawBytes:receivedAt:naming:)``, which also reads numbers): a
    /// message that holds an identifier's shape anywhere is `identifying_data`, kept as hash only.
    public func validate(topic: String, payload: [UInt8], receivedAt: Instant) -> Verdict {
        let verdict = contractVerdict(topic: topic, payload: payload, receivedAt: receivedAt)
        if case .refused(let parsed, let refusal) = verdict, refusal.reason.keepsPayload,
           let identifying = identifyingRefusal(rawBytes: payload, receivedAt: receivedAt,
                                                knownNames: parsed?.kind == .agg ? snapshots?.fieldNames ?? [] : [],
                                                fractionsAreStatistics: parsed?.kind == .agg) {
            return .refused(parsed, identifying)
        }
        return verdict
    }

    private func contractVerdict(topic: String, payload: [UInt8], receivedAt: Instant) -> Verdict {
        let analysis = analyseTopic(topic)
        if let refusal = analysis.refusal, refusal.reason == .identifyingData { return .refused(nil, refusal) }
        let parsedTopic = analysis.topic
        if let parsedTopic, parsedTopic.kind == .agg {
            return snapshotVerdict(parsedTopic, analysis, payload: payload, receivedAt: receivedAt)
        }
        // A pilot that reports aggregates: whatever its devices send here is patient-level data
        // the cluster must not hold, so it is refused before its bytes are read (hash only).
        if let pilot = analysis.pilot, let site = pilot.pilot.site, let parsedTopic {
            return .refused(parsedTopic, Refusal(.aggregatePilot,
                "topic: pilot \(pilot.pilot.id) reports aggregates (its site \(site) sends day-end snapshots on \(topicRoot)/\(pilot.pilot.id)/\(site)/agg); its devices must publish to the site, not here"))
        }

        guard payload.count <= ContractLimits.maxPayloadBytes else {
            return .refused(parsedTopic, Refusal(.tooLarge,
                "payload: \(payload.count) bytes is more than the limit of \(ContractLimits.maxPayloadBytes) bytes"))
        }

        let scan = IdentityScan(topicPilot: parsedTopic?.pilot, indicatorRules: indicatorRules,
                                tolerant: .tolerant(timestampsFrom: timestampsFrom(receivedAt: receivedAt, pilot: analysis.pilot)))
        let json: JSONValue
        do {
            json = try JSON.parse(payload)
        } catch {
            if let refusal = scan.scanMalformed(payload) { return .refused(parsedTopic, refusal) }
            if let refusal = analysis.refusal { return .refused(parsedTopic, refusal) }
            return .refused(parsedTopic, Refusal(.malformedJSON, "payload: " + error.description))
        }
        do throws(Refusal) {
            var identity = scan
            // The common case, an observation object on a good topic, is checked for identifying
            // data and schema in one walk; everything else is walked for identifying data first.
            if analysis.refusal == nil, let parsedTopic, let pilot = analysis.pilot, parsedTopic.kind == .obs,
               case .object(let root) = json {
                let message = try observationMessage(root, topic: parsedTopic, pilot: pilot, receivedAt: receivedAt, identity: &identity)
                return .observations(parsedTopic, message)
            }
            try identity.scanDocument(json)
            if let refusal = analysis.refusal { throw refusal }
            guard let parsedTopic, analysis.pilot != nil else {
                throw Refusal(.unknownPilot, "topic: the pilot is not in the pilot registry")
            }
            // An observation object on this topic was handled above: what is left is a status
            // message, or valid JSON that is not an object (a schema problem, not malformed JSON).
            guard case .object(let root) = json, parsedTopic.kind == .status else {
                throw schema("payload: expected a JSON object, got \(describe(json))")
            }
            return .status(parsedTopic, try deviceStatus(root))
        } catch {
            return .refused(parsedTopic, error)
        }
    }

    /// Parses `{root}/{pilot_id}/{device_id}/{obs|status}`; refuses a topic shaped wrong
    /// (`schema`), naming an unknown pilot (`unknown_pilot`), or carrying an id shaped like
    /// a direct identifier (`identifying_data`).
    public func parseTopic(_ topic: String) -> Result<Topic, Refusal> {
        let analysis = analyseTopic(topic)
        if let refusal = analysis.refusal { return .failure(refusal) }
        if let parsed = analysis.topic { return .success(parsed) }
        return .failure(Refusal(.schema, "topic: not a pilotwatch topic"))
    }

    /// The `identifying_data` refusal for bytes that never reach ``validate(topic:payload:receivedAt:)``
    /// whole, or nil when they carry no identifier shape. `ingest` asks it of an NDJSON line whose
    /// wrapper it refuses, so that such a line is kept as a hash only, like an identifying payload.
    ///
    /// ```swift
    /// validator.identifyingRefusal(rawBytes: Array(#"{"note": "jean@example.fr"}"#.utf8), receivedAt: now, naming: "line 3")
    /// // identifying_data: line 3, field note: looks like an e-mail address
    /// ```
    ///
    /// The same scan as for a payload: JSON is walked (field names, string values at any depth,
    /// with each contract field's policy), then every token is read lexically, which also covers
    /// numbers and bytes that are not JSON. No pilot is known, so no value counts as the topic's
    /// pilot and recent dates (the last five years) read as timestamps. The detail names `what`
    /// and the field, never the value.
    ///
    /// `knownNames`: field names of the message's kind that are not read as names (a snapshot's
    /// own fields, such as `patient_days`); their values are scanned all the same.
    /// `fractionsAreStatistics`: a snapshot's; see ``IdentityScan/fractionsAreStatistics``.
    public func identifyingRefusal(rawBytes: [UInt8], receivedAt: Instant, naming what: String = "payload",
                                   knownNames: Set<String> = [], fractionsAreStatistics: Bool = false) -> Refusal? {
        var scan = IdentityScan(topicPilot: nil, indicatorRules: indicatorRules,
                                tolerant: .tolerant(timestampsFrom: timestampsFrom(receivedAt: receivedAt, pilot: nil)),
                                knownNames: knownNames, fractionsAreStatistics: fractionsAreStatistics)
        let parsed = try? JSON.parse(rawBytes)
        if let parsed {
            do throws(Refusal) {
                try scan.scanDocument(parsed, naming: what)
            } catch {
                return error
            }
        }
        return scan.scanMalformed(rawBytes, naming: parsed == nil ? "\(what) (not valid JSON)" : what)
    }
}

/// A registered pilot and the earliest observation time it accepts. A class, so that
/// handing it around copies one reference rather than every field of `Pilot`.
final class PilotRule: Sendable {
    let pilot: Pilot
    /// 365 days before the pilot's start.
    let earliest: Instant

    init(_ pilot: Pilot) {
        self.pilot = pilot
        earliest = pilot.start.advanced(by: -ContractLimits.maxDaysBeforeStart).start
    }
}

/// A catalogue indicator, held by reference for the same reason.
final class IndicatorRule: Sendable {
    let indicator: Indicator
    init(_ indicator: Indicator) { self.indicator = indicator }
}
