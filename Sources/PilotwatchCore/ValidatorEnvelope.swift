// The envelope of an observation message: its top-level fields (`msg_id`, `sent_at`, `pilot`,
// `observations`), read in the same walk that looks for identifying data.

extension ContractValidator {
    /// The first schema problem found while a message is walked. It is kept rather than thrown, so
    /// that the walk goes on looking for identifying data, which wins over every schema problem.
    struct SchemaNotes {
        private(set) var first: Refusal?

        /// Keeps `detail` as a `schema` refusal unless a problem was noted before; the detail is
        /// built only then.
        mutating func note(_ detail: @autoclosure () -> String) {
            if first == nil { first = Refusal(.schema, detail()) }
        }
    }

    /// The top-level fields of an observation message as read, each possibly missing.
    struct Envelope {
        var msgID: String?
        var sentAtText: String?
        var pilotField: String?
        /// The items of `observations` (empty when the field is missing or not an array).
        var items: [JSONValue] = []
        /// Whether `observations` is present as an array.
        var hasItems = false

        /// Notes a missing or ill-formed `msg_id`, and a missing or wrongly sized `observations`.
        func check(_ notes: inout SchemaNotes) {
            if let msgID {
                if !isPrintableASCII(msgID, length: 1...ContractLimits.maxMsgIDLength) {
                    notes.note("msg_id: \(quoteForDetail(msgID)) must be 1-\(ContractLimits.maxMsgIDLength) printable ASCII characters")
                }
            } else {
                notes.note("msg_id: required")
            }
            if !hasItems {
                notes.note("observations: required")
            } else if items.count < 1 || items.count > ContractLimits.maxObservations {
                notes.note("observations: must hold 1 to \(ContractLimits.maxObservations) items, got \(items.count)")
            }
        }
    }

    private static let messageFields = "msg_id, sent_at, pilot, observations"

    /// Reads the message's top-level fields, refusing identifying data at once and noting the
    /// first schema problem (an ill-typed or unknown field).
    func readEnvelope(_ root: JSONObject, identity: inout IdentityScan, notes: inout SchemaNotes) throws(Refusal) -> Envelope {
        var envelope = Envelope()
        for m in root.members {
            let field = ContractField(m.key)
            switch (field, m.value) {
            case (.msgID?, .string(let s)):
                try identity.check(s, key: field, path: "msg_id")
                envelope.msgID = s
            case (.sentAt?, .string(let s)):
                try identity.check(s, key: field, path: "sent_at")
                envelope.sentAtText = s
            case (.pilot?, .string(let s)):
                try identity.check(s, key: field, path: "pilot")
                envelope.pilotField = s
            case (.observations?, .array(let a)):
                envelope.items = a
                envelope.hasItems = true
            case (.msgID?, _), (.pilot?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                notes.note("\(m.key): expected a string, got \(describe(m.value))")
            case (.sentAt?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                notes.note("sent_at: expected an RFC 3339 date-time string, got \(describe(m.value))")
            case (.observations?, _):
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                notes.note("observations: expected an array, got \(describe(m.value))")
            default:
                if field == nil { try identity.checkName(m.key, parent: []) }
                try identity.scan(m.value, key: field, path: [.key(m.key)])
                notes.note("\(fieldPath(nil, m.key)): unknown field (allowed: \(Self.messageFields))")
            }
        }
        return envelope
    }

    /// Refuses a `pilot` field other than the topic's pilot (`pilot_mismatch`).
    func checkPilotField(_ pilotField: String?, topic: Topic) throws(Refusal) {
        if let pilotField, pilotField != topic.pilot {
            throw Refusal(.pilotMismatch, "pilot: \(quoteForDetail(pilotField)) does not match the topic's pilot \(quoteForDetail(topic.pilot))")
        }
    }
}
