// Observation messages: the steps from a parsed payload to an `ObservationMessage`, and the
// reading and catalogue checks of each observation.

extension ContractValidator {
    /// One observation as read from the payload, before the catalogue, unit and time checks.
    struct RawObservation {
        var subject: String?
        var indicator: String = ""
        var value: JSONNumber?
        var unit: String?
        var at: String = ""
        /// Set by the catalogue pass.
        var rule: IndicatorRule?
    }

    private static let observationFields = "subject, indicator, value, unit, at"

    /// Validates an observation message. Identifying data is looked for in the same walk as
    /// the schema: it is refused at once, while the first schema problem is kept and refused
    /// only once the whole message has been scanned, so that identifying data always wins.
    func observationMessage(_ root: JSONObject, topic: Topic, pilot pilotRule: PilotRule, receivedAt: Instant,
                            identity: inout IdentityScan) throws(Refusal) -> ObservationMessage {
        var notes = SchemaNotes()
        let envelope = try readEnvelope(root, identity: &identity, notes: &notes)
        envelope.check(&notes)
        var raws = try readObservations(envelope.items, identity: &identity, notes: &notes)
        if let problem = notes.first { throw problem }
        guard let msgID = envelope.msgID else { throw schema("msg_id: required") }
        try checkPilotField(envelope.pilotField, topic: topic)
        try resolveIndicators(&raws, pilot: pilotRule)
        let sentAt = try parsedSentAt(envelope.sentAtText)
        let observations = try checkedObservations(raws, pilot: pilotRule, receivedAt: receivedAt)
        return ObservationMessage(msgID: msgID, sentAt: sentAt, observations: observations)
    }

    /// Reads the items of `observations`, refusing identifying data at once and noting the
    /// first schema problem (an item that is not an object, or one of its fields).
    private func readObservations(_ items: [JSONValue], identity: inout IdentityScan,
                                  notes: inout SchemaNotes) throws(Refusal) -> [RawObservation] {
        var raws: [RawObservation] = []
        raws.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let o) = item else {
                try identity.scan(item, key: .observations, path: [.key("observations"), .index(i)])
                notes.note("observations[\(i)]: expected an object, got \(describe(item))")
                continue
            }
            raws.append(try readObservation(o, index: i, identity: &identity, notes: &notes))
        }
        return raws
    }

    /// Reads the fields of observation `i`, with the same rules as ``readObservations(_:identity:notes:)``.
    private func readObservation(_ o: JSONObject, index i: Int, identity: inout IdentityScan,
                                 notes: inout SchemaNotes) throws(Refusal) -> RawObservation {
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
                    notes.note("observations[\(i)].subject: \(quoteForDetail(s)) must be \(ContractLimits.subjectMinLength)-\(ContractLimits.subjectMaxLength) characters of A-Z a-z 0-9 _ -")
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
                notes.note("observations[\(i)].\(m.key): expected a string, got \(describe(m.value))")
            case (.value?, _):
                try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                notes.note("observations[\(i)].value: expected a number, got \(describe(m.value))")
            case (.at?, _):
                try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                notes.note("observations[\(i)].at: expected an RFC 3339 date-time string, got \(describe(m.value))")
            default:
                if field == nil { try identity.checkName(m.key, parent: [.key("observations"), .index(i)]) }
                try identity.scan(m.value, key: field, path: [.key("observations"), .index(i), .key(m.key)])
                notes.note("\(fieldPath(i, m.key)): unknown field (allowed: \(Self.observationFields))")
            }
        }
        if !hasIndicator { notes.note("observations[\(i)].indicator: required") }
        if !hasAt { notes.note("observations[\(i)].at: required") }
        return raw
    }

    /// The catalogue pass, in order of the observations: each indicator known
    /// (`unknown_indicator`) and in the pilot's programme (`indicator_not_in_programme`), a
    /// subject given exactly for subject-level indicators, and a value for measurements and
    /// scores (`schema`). Sets each observation's `rule`.
    func resolveIndicators(_ raws: inout [RawObservation], pilot pilotRule: PilotRule) throws(Refusal) {
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
    }
}
