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
    private let pilotRules: [String: PilotRule]
    /// The same, searched by bytes (no string is built for a topic level).
    private let pilotList: [(id: [UInt8], rule: PilotRule)]
    private let indicatorRules: [String: IndicatorRule]
    private let rootBytes: [UInt8]
    /// How many topic levels the root has (`pilots`: 1; `region/pilots`: 2).
    private let rootLevels: Int

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

    // MARK: - Snapshots

    /// The verdict on a snapshot topic `{root}/{pilot_id}/{site_id}/agg` (contract 1.1), in
    /// this order: the pilot known (`unknown_pilot`); reporting aggregates, else
    /// `pilot_mismatch`; the topic's site its registered site, else `unknown_site`; `too_large`;
    /// then the payload, read by ``snapshots`` (`malformed_json`, `schema`, `pilot_mismatch`,
    /// `registry_mismatch`). An accepted snapshot is scanned for identifier shapes too: it must
    /// name no one.
    private func snapshotVerdict(_ topic: Topic, _ analysis: TopicAnalysis, payload: [UInt8], receivedAt: Instant) -> Verdict {
        if let refusal = analysis.refusal { return .refused(topic, refusal) }
        guard let rule = analysis.pilot else {
            return .refused(topic, Refusal(.unknownPilot, "topic: pilot \(quoteForDetail(topic.pilot)) is not in the pilot registry"))
        }
        let pilot = rule.pilot
        guard let site = pilot.site else {
            return .refused(topic, Refusal(.pilotMismatch,
                "topic: pilot \(pilot.id) reports observations (its registry entry has no reporting: aggregates), so it takes no snapshots"))
        }
        guard topic.device == site else {
            return .refused(topic, Refusal(.unknownSite,
                "topic: site \(quoteForDetail(topic.device)) is not the site of pilot \(pilot.id) (its registered site is \(site))"))
        }
        guard payload.count <= ContractLimits.maxPayloadBytes else {
            return .refused(topic, Refusal(.tooLarge,
                "payload: \(payload.count) bytes is more than the limit of \(ContractLimits.maxPayloadBytes) bytes"))
        }
        guard let snapshots else {
            return .refused(topic, Refusal(.schema, "payload: this instance does not read snapshots"))
        }
        do {
            let receipt = try snapshots.check(payload, pilot: pilot, site: site, catalogue: catalogue)
            if let identifying = identifyingRefusal(rawBytes: payload, receivedAt: receivedAt, knownNames: snapshots.fieldNames,
                                                    fractionsAreStatistics: true) {
                return .refused(topic, identifying)
            }
            return .snapshot(topic, receipt)
        } catch {
            return .refused(topic, error)
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

    // MARK: - Topic

    /// What a topic says: the topic when its shape is right (even if the pilot is unknown),
    /// the registered pilot, and the refusal if any.
    private struct TopicAnalysis {
        var topic: Topic?
        var pilot: PilotRule?
        var refusal: Refusal?
    }

    private func analyseTopic(_ topic: String) -> TopicAnalysis {
        var text = topic
        return text.withUTF8 { analyseTopic(bytes: $0, text: topic) }
    }

    private func analyseTopic(bytes u: UnsafeBufferPointer<UInt8>, text: String) -> TopicAnalysis {
        func refuse(_ reason: ReasonCode, _ detail: String) -> TopicAnalysis {
            TopicAnalysis(topic: nil, pilot: nil, refusal: Refusal(reason, detail))
        }
        func slice(_ r: Range<Int>) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: u[r]) }
        func string(_ r: Range<Int>) -> String { String(decoding: slice(r), as: UTF8.self) }
        func equals(_ r: Range<Int>, _ literal: [UInt8]) -> Bool {
            guard r.count == literal.count else { return false }
            for (k, b) in literal.enumerated() where u[r.lowerBound + k] != b { return false }
            return true
        }

        // One pass: level boundaries, wildcards, and identifier shapes in any level. The root may
        // have several levels (`region/pilots`): they count as one, `levels.0`, and the pilot,
        // device and kind follow it.
        var levels: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
        var levelCount = 0
        var wildcard = false
        var pilot: PilotRule?
        var start = 0
        let rootEnd = rootBytes.count
        let rootMatches = u.count > rootEnd && u[rootEnd] == UInt8(ascii: "/") && equals(0..<rootEnd, rootBytes)
        for i in 0...u.count {
            if i < u.count && u[i] != UInt8(ascii: "/") {
                if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "#") { wildcard = true }
                continue
            }
            let r = start..<i
            levelCount += 1
            start = i + 1
            // The level's place after the root: 0 for the root's levels, then 1, 2, 3.
            let k = max(0, levelCount - rootLevels)
            switch k {
            case 0: levels.0 = 0..<i
            case 1: levels.1 = r
            case 2: levels.2 = r
            case 3: levels.3 = r
            default: break
            }
            if r.isEmpty || (k == 0 && rootMatches) { continue }
            if k == 3 && (equals(r, obsBytes) || equals(r, statusBytes) || equals(r, aggBytes)) { continue }
            if k == 1, let known = pilotRule(slice(r)) {
                pilot = known
                continue
            }
            if let kind = IdentifierGuard.kind(utf8: slice(r), policy: .strict) {
                return refuse(.identifyingData, "topic: level \(levelCount) looks like \(withArticle(kind))")
            }
        }
        if wildcard {
            return refuse(.schema, "topic: \(quoteForDetail(text)) contains a wildcard (+ or #), which a published topic cannot")
        }
        guard levelCount == rootLevels + 3 else {
            return refuse(.schema,
                "topic: \(quoteForDetail(text)) has \(levelCount) level\(levelCount == 1 ? "" : "s"); expected \(topicRoot)/{pilot_id}/{device_id}/obs or .../status (or \(topicRoot)/{pilot_id}/{site_id}/agg)")
        }
        guard equals(levels.0, rootBytes) else {
            return refuse(.schema, "topic: root \(quoteForDetail(string(levels.0))) is not \(quoteForDetail(topicRoot))")
        }
        let kind: TopicKind
        if equals(levels.3, obsBytes) {
            kind = .obs
        } else if equals(levels.3, statusBytes) {
            kind = .status
        } else if equals(levels.3, aggBytes) {
            kind = .agg
        } else {
            return refuse(.schema, "topic: last level \(quoteForDetail(string(levels.3))) must be obs, status or agg")
        }
        if let problem = idProblem(slice(levels.1), what: "pilot id") { return refuse(.schema, "topic: " + problem) }
        if let problem = idProblem(slice(levels.2), what: kind == .agg ? "site id" : "device id") { return refuse(.schema, "topic: " + problem) }
        let parsed = Topic(pilot: pilot?.pilot.id ?? string(levels.1), device: string(levels.2), kind: kind)
        guard pilot != nil else {
            return TopicAnalysis(topic: parsed, pilot: nil,
                                 refusal: Refusal(.unknownPilot, "topic: pilot \(quoteForDetail(parsed.pilot)) is not in the pilot registry"))
        }
        return TopicAnalysis(topic: parsed, pilot: pilot, refusal: nil)
    }

    /// The registered pilot whose id is `bytes`.
    private func pilotRule(_ bytes: UnsafeBufferPointer<UInt8>) -> PilotRule? {
        guard pilotList.count <= 64 else { return pilotRules[String(decoding: bytes, as: UTF8.self)] }
        for entry in pilotList where entry.id.count == bytes.count {
            if entry.id.withUnsafeBufferPointer({ $0.elementsEqual(bytes) }) { return entry.rule }
        }
        return nil
    }

    /// Why `id` is not a pilot or device id (1–64 of `a-z 0-9 . _ -`, starting with a letter or digit, no `..`), or nil.
    private func idProblem(_ u: UnsafeBufferPointer<UInt8>, what: String) -> String? {
        var ok = !u.isEmpty && u.count <= ContractLimits.idMaxLength
        var doubleDot = false
        var previous: UInt8 = 0
        for (k, b) in u.enumerated() where ok {
            let alnum = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            ok = alnum || (k > 0 && (b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")))
            if b == UInt8(ascii: ".") && previous == UInt8(ascii: ".") { doubleDot = true }
            previous = b
        }
        if ok && !doubleDot { return nil }
        let id = quoteForDetail(String(decoding: u, as: UTF8.self))
        if !ok {
            return "\(what) \(id) must be 1-\(ContractLimits.idMaxLength) characters of a-z 0-9 . _ - starting with a letter or digit"
        }
        return "\(what) \(id) must not contain \"..\""
    }

    /// Dates on or after this day are read as timestamps rather than birth dates in message
    /// ids, firmware and other free strings: five years before reception, or earlier if the
    /// pilot's baseline window reaches further back.
    private func timestampsFrom(receivedAt: Instant, pilot: PilotRule?) -> Day {
        let fiveYears = receivedAt.day.advanced(by: -(5 * 365 + 1))
        guard let pilot else { return fiveYears }
        return min(fiveYears, pilot.pilot.start.advanced(by: -(ContractLimits.maxDaysBeforeStart + 31)))
    }

    // MARK: - Observation messages

    private struct RawObservation {
        var subject: String?
        var indicator: String = ""
        var value: JSONNumber?
        var unit: String?
        var at: String = ""
        var rule: IndicatorRule?
    }

    private static let observationFields = "subject, indicator, value, unit, at"
    private static let messageFields = "msg_id, sent_at, pilot, observations"
    private static let statusFields = "state, at, battery_pct, firmware"

    /// Validates an observation message. Identifying data is looked for in the same walk as
    /// the schema: it is refused at once, while the first schema problem is kept and refused
    /// only once the whole message has been scanned, so that identifying data always wins.
    private func observationMessage(_ root: JSONObject, topic: Topic, pilot pilotRule: PilotRule, receivedAt: Instant,
                                    identity: inout IdentityScan) throws(Refusal) -> ObservationMessage {
        var schemaProblem: Refusal?
        func note(_ detail: @autoclosure () -> String) {
            if schemaProblem == nil { schemaProblem = Refusal(.schema, detail()) }
        }

        var msgID: String?
        var sentAtText: String?
        var pilotField: String?
        var items: [JSONValue] = []
        var hasItems = false
        for m in root.members {
            let field = ContractField(m.key)
            switch (field, m.value) {
            case (.msgID?, .string(let s)):
                try identity.check(s, key: field, path: "msg_id")
                msgID = s
            case (.sentAt?, .string(let s)):
                try identity.check(s, key: field, path: "sent_at")
                sentAtText = s
            case (.pilot?, .string(let s)):
                try identity.check(s, key: field, path: "pilot")
                pilotField = s
            case (.observations?, .array(let a)):
                items = a
                hasItems = true
            case (.msgID?, _), (.pilot?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                note("\(m.key): expected a string, got \(describe(m.value))")
            case (.sentAt?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                note("sent_at: expected an RFC 3339 date-time string, got \(describe(m.value))")
            case (.observations?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                note("observations: expected an array, got \(describe(m.value))")
            default:
                if field == nil { try identity.checkName(m.key, parent: []) }
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                note("\(fieldPath(nil, m.key)): unknown field (allowed: \(Self.messageFields))")
            }
        }
        if let msgID {
            if !isPrintableASCII(msgID, length: 1...ContractLimits.maxMsgIDLength) {
                note("msg_id: \(quoteForDetail(msgID)) must be 1-\(ContractLimits.maxMsgIDLength) printable ASCII characters")
            }
        } else {
            note("msg_id: required")
        }
        if !hasItems {
            note("observations: required")
        } else if items.count < 1 || items.count > ContractLimits.maxObservations {
            note("observations: must hold 1 to \(ContractLimits.maxObservations) items, got \(items.count)")
        }

        var raws: [RawObservation] = []
        raws.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else {
                try identity.scan(item, key: .observations, path: [.key("observations"), .index(i)])
                note("observations[\(i)]: expected an object, got \(describe(item))")
                continue
            }
            var raw = RawObservation()
            var hasIndicator = false, hasAt = false
            for m in o.members {
                let field = ContractField(m.key)
                switch (field, m.value) {
                case (.subject?, .string(let s)):
                    try identity.check(s, key: field, path: "observations[\(i)].subject")
                    if isPseudonym(s) {
                        raw.subject = s
                    } else {
                        note("observations[\(i)].subject: \(quoteForDetail(s)) must be \(ContractLimits.subjectMinLength)-\(ContractLimits.subjectMaxLength) characters of A-Z a-z 0-9 _ -")
                    }
                case (.indicator?, .string(let s)):
                    try identity.check(s, key: field, path: "observations[\(i)].indicator")
                    raw.indicator = s
                    hasIndicator = true
                case (.value?, .number(let n)):
                    raw.value = n
                case (.unit?, .string(let s)):
                    try identity.check(s, key: field, path: "observations[\(i)].unit")
                    raw.unit = s
                case (.at?, .string(let s)):
                    try identity.check(s, key: field, path: "observations[\(i)].at")
                    raw.at = s
                    hasAt = true
                case (.subject?, _), (.indicator?, _), (.unit?, _):
                    try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                    note("observations[\(i)].\(m.key): expected a string, got \(describe(m.value))")
                case (.value?, _):
                    try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                    note("observations[\(i)].value: expected a number, got \(describe(m.value))")
                case (.at?, _):
                    try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                    note("observations[\(i)].at: expected an RFC 3339 date-time string, got \(describe(m.value))")
                default:
                    if field == nil { try identity.checkName(m.key, parent: [.key("observations"), .index(i)]) }
                    try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                    note("\(fieldPath(i, m.key)): unknown field (allowed: \(Self.observationFields))")
                }
            }
            if !hasIndicator { note("observations[\(i)].indicator: required") }
            if !hasAt { note("observations[\(i)].at: required") }
            raws.append(raw)
        }
        if let schemaProblem { throw schemaProblem }
        guard let msgID else { throw schema("msg_id: required") }

        if let pilotField, pilotField != topic.pilot {
            throw Refusal(.pilotMismatch, "pilot: \(quoteForDetail(pilotField)) does not match the topic's pilot \(quoteForDetail(topic.pilot))")
        }

        // Catalogue.
        var previous: IndicatorRule?
        for i in raws.indices {
            let code = raws[i].indicator
            let found: IndicatorRule
            if let previous, previous.indicator.code == code {
                found = previous
            } else {
                guard let known = indicatorRules[code] else {
                    throw Refusal(.unknownIndicator, "observations[\(i)].indicator: \(quoteForDetail(code)) is not in the indicator catalogue")
                }
                guard known.indicator.programmes.contains(pilotRule.pilot.programme) else {
                    throw Refusal(.indicatorNotInProgramme,
                        "observations[\(i)].indicator: \(code) is not part of the \(pilotRule.pilot.programme) programme of pilot \(pilotRule.pilot.id)")
                }
                found = known
                previous = known
            }
            switch (found.indicator.level, raws[i].subject) {
            case (.subject, nil):
                throw schema("observations[\(i)].subject: required for \(found.indicator.code), a subject-level indicator")
            case (.pilot, .some):
                throw schema("observations[\(i)].subject: must be absent for \(found.indicator.code), a pilot-level indicator")
            default:
                break
            }
            if found.indicator.kind != .event && raws[i].value == nil {
                throw schema("observations[\(i)].value: required for \(found.indicator.code), a \(found.indicator.kind.rawValue)")
            }
            raws[i].rule = found
        }

        var sentAt: Instant?
        if let sentAtText {
            guard let t = RFC3339.parse(sentAtText) else {
                throw Refusal(.badTime, "sent_at: \(quoteForDetail(sentAtText)) is not an RFC 3339 date-time with offset (for example 2026-11-29T09:00:00Z)")
            }
            sentAt = t
        }

        // Units, ranges, times.
        let latest = receivedAt.adding(millis: ContractLimits.maxFutureMillis)
        let earliest = pilotRule.earliest
        var observations: [Observation] = []
        observations.reserveCapacity(raws.count)
        for (i, raw) in raws.enumerated() {
            guard let rule = raw.rule else { continue }
            let value = try checkedValue(raw, rule, index: i)
            guard let at = RFC3339.parse(raw.at) else {
                throw Refusal(.badTime, "observations[\(i)].at: \(quoteForDetail(raw.at)) is not an RFC 3339 date-time with offset (for example 2026-11-29T08:55:00+01:00)")
            }
            guard at <= latest else {
                throw Refusal(.badTime, "observations[\(i)].at: \(quoteForDetail(raw.at)) is more than 5 minutes after the message was received (\(receivedAt))")
            }
            guard at >= earliest else {
                throw Refusal(.badTime,
                    "observations[\(i)].at: \(quoteForDetail(raw.at)) is more than \(ContractLimits.maxDaysBeforeStart) days before the start of pilot \(pilotRule.pilot.id) (\(pilotRule.pilot.start))")
            }
            observations.append(Observation(subject: raw.subject, indicator: rule.indicator.code, kind: rule.indicator.kind, value: value, at: at))
        }
        return ObservationMessage(msgID: msgID, sentAt: sentAt, observations: observations)
    }

    /// The observation's value in the catalogue unit, after the unit and range checks.
    /// Details are built only on refusal: this runs for every observation.
    private func checkedValue(_ raw: RawObservation, _ rule: IndicatorRule, index i: Int) throws(Refusal) -> Double {
        func field(_ name: String) -> String { "observations[\(i)].\(name)" }
        if rule.indicator.kind == .event {
            if let unit = raw.unit, unit != rule.indicator.unit {
                throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code) (use \(rule.indicator.unit) or leave it out)")
            }
            guard let number = raw.value else { return 1 }
            guard number.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is not a finite number") }
            guard number.double >= 0 else {
                throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is negative; an event's value counts occurrences")
            }
            if let problem = rangeProblem(number.double, rule) {
                throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) \(problem)")
            }
            return number.double
        }
        guard let unit = raw.unit else {
            throw Refusal(.badUnit, "\(field("unit")): required for \(rule.indicator.code) (use \(unitChoices(rule.indicator)))")
        }
        guard unit == rule.indicator.unit || rule.indicator.convert.contains(where: { $0.unit == unit }) else {
            throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code) (use \(unitChoices(rule.indicator)))")
        }
        // Always present here: the catalogue pass refused a measurement or score without a value.
        guard let number = raw.value else { throw schema("\(field("value")): required for \(rule.indicator.code)") }
        guard number.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is not a finite number") }
        guard let value = rule.indicator.canonical(number.double, unit: unit) else {
            throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code)")
        }
        func shownValue() -> String {
            unit == rule.indicator.unit
                ? shown(number)
                : "\(shown(number)) \(unit) (\(formatNumber(rounded(value))) \(rule.indicator.unit))"
        }
        guard value.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shownValue()) is not a finite number") }
        if let problem = rangeProblem(value, rule) {
            throw Refusal(.outOfRange, "\(field("value")): \(shownValue()) \(problem)")
        }
        return value
    }

    /// `is above the plausible range 50..100 for spo2`, or nil when `value` is in range.
    private func rangeProblem(_ value: Double, _ rule: IndicatorRule) -> String? {
        guard let range = rule.indicator.range, !range.contains(value) else { return nil }
        return "is \(value < range.min ? "below" : "above") the plausible range \(range) for \(rule.indicator.code)"
    }

    private func unitChoices(_ indicator: Indicator) -> String {
        let units = indicator.acceptedUnits
        guard units.count > 1 else { return units.joined() }
        return units.dropLast().joined(separator: ", ") + " or " + (units.last ?? "")
    }

    // MARK: - Status messages

    private func deviceStatus(_ root: JSONObject) throws(Refusal) -> DeviceStatus {
        var state: DeviceStatus.State?
        var atText: String?
        var battery: JSONNumber?
        var firmware: String?
        for m in root.members {
            switch ContractField(m.key) {
            case .state:
                guard case .string(let s) = m.value else { throw schema("state: expected \"online\" or \"offline\", got \(describe(m.value))") }
                guard let parsed = DeviceStatus.State(rawValue: s) else { throw schema("state: \(quoteForDetail(s)) must be online or offline") }
                state = parsed
            case .at:
                guard case .string(let s) = m.value else { throw schema("at: expected an RFC 3339 date-time string, got \(describe(m.value))") }
                atText = s
            case .batteryPct:
                guard case .number(let n) = m.value else { throw schema("battery_pct: expected a number, got \(describe(m.value))") }
                battery = n
            case .firmware:
                guard case .string(let s) = m.value else { throw schema("firmware: expected a string, got \(describe(m.value))") }
                guard isPrintableASCII(s, length: 0...64) else {
                    throw schema("firmware: \(quoteForDetail(s)) must be at most 64 printable ASCII characters")
                }
                firmware = s
            default:
                throw schema("\(fieldPath(nil, m.key)): unknown field (allowed: \(Self.statusFields))")
            }
        }
        guard let state else { throw schema("state: required (online or offline)") }
        var at: Instant?
        if let atText {
            guard let t = RFC3339.parse(atText) else {
                throw Refusal(.badTime, "at: \(quoteForDetail(atText)) is not an RFC 3339 date-time with offset (for example 2026-11-29T09:00:00Z)")
            }
            at = t
        }
        if let battery {
            guard battery.isFinite, battery.double >= 0, battery.double <= 100 else {
                throw Refusal(.outOfRange, "battery_pct: \(shown(battery)) is outside 0..100")
            }
        }
        return DeviceStatus(state: state, at: at, batteryPct: battery?.double, firmware: firmware)
    }
}

private let obsBytes = Array("obs".utf8)
private let statusBytes = Array("status".utf8)
private let aggBytes = Array("agg".utf8)

/// A registered pilot and the earliest observation time it accepts. A class, so that
/// handing it around copies one reference rather than every field of `Pilot`.
private final class PilotRule: Sendable {
    let pilot: Pilot
    /// 365 days before the pilot's start.
    let earliest: Instant

    init(_ pilot: Pilot) {
        self.pilot = pilot
        earliest = pilot.start.advanced(by: -ContractLimits.maxDaysBeforeStart).start
    }
}

/// A catalogue indicator, held by reference for the same reason.
private final class IndicatorRule: Sendable {
    let indicator: Indicator
    init(_ indicator: Indicator) { self.indicator = indicator }
}

// MARK: - Identifying data

/// The walk over a parsed payload (or the tokens of an unparseable one) that looks for
/// identifying field names and identifier-shaped strings.
private struct IdentityScan {
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

private enum PathComponent {
    case key(String)
    case index(Int)
}

/// `observations[0].subject`; `payload` for the root.
private func render(_ path: [PathComponent]) -> String {
    var out = ""
    for component in path {
        switch component {
        case .index(let i): out += "[\(i)]"
        case .key(let k): out += isPlainName(k) ? (out.isEmpty ? k : "." + k) : "[\(quoteForDetail(k))]"
        }
    }
    return out.isEmpty ? "payload" : out
}

/// The path of field `key` of observation `index` (or of the message when nil).
private func fieldPath(_ index: Int?, _ key: String) -> String {
    render((index.map { [PathComponent.key("observations"), .index($0)] } ?? []) + [.key(key)])
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

/// The field names of the contract, recognised with one string comparison at most.
private enum ContractField {
    case msgID, sentAt, pilot, observations, subject, indicator, value, unit, at, state, batteryPct, firmware

    init?(_ key: String) {
        let candidate: (String, ContractField)
        switch key.utf8.count {
        case 2: candidate = ("at", .at)
        case 4: candidate = ("unit", .unit)
        case 5:
            if key == "value" { self = .value; return }
            if key == "pilot" { self = .pilot; return }
            candidate = ("state", .state)
        case 6: candidate = ("msg_id", .msgID)
        case 7:
            if key == "subject" { self = .subject; return }
            candidate = ("sent_at", .sentAt)
        case 8: candidate = ("firmware", .firmware)
        case 9: candidate = ("indicator", .indicator)
        case 11: candidate = ("battery_pct", .batteryPct)
        case 12: candidate = ("observations", .observations)
        default: return nil
        }
        guard key == candidate.0 else { return nil }
        self = candidate.1
    }
}

// MARK: - Small helpers

private func schema(_ detail: String) -> Refusal { Refusal(.schema, detail) }

private func withArticle(_ kind: IdentifierGuard.Kind) -> String {
    kind == .email ? "an " + kind.rawValue : "a " + kind.rawValue
}

/// A value for a detail: `string "94"`, `number 12`, `null`, `an array`...
private func describe(_ value: JSONValue) -> String {
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
private func shown(_ n: JSONNumber) -> String {
    n.lexeme.utf8.count <= 80 ? n.lexeme : String(n.lexeme.prefix(80)) + "…"
}

/// Rounds a converted value for display (4 decimals).
private func rounded(_ v: Double) -> Double {
    guard v.isFinite, abs(v) < 1e12 else { return v }
    return (v * 10_000).rounded() / 10_000
}

private func isPrintableASCII(_ s: String, length: ClosedRange<Int>) -> Bool {
    var s = s
    return s.withUTF8 { u in
        guard length.contains(u.count) else { return false }
        for b in u where b < 0x20 || b > 0x7E { return false }
        return true
    }
}

private func isPseudonym(_ s: String) -> Bool {
    var s = s
    return s.withUTF8 { u in
        guard u.count >= ContractLimits.subjectMinLength && u.count <= ContractLimits.subjectMaxLength else { return false }
        for b in u {
            let ok = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
            if !ok { return false }
        }
        return true
    }
}
