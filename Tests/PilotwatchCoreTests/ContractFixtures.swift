import PilotwatchCore

/// A small registry and catalogue built in code, and helpers to run messages through the validator.
enum CF {
    static func day(_ y: Int, _ m: Int, _ d: Int) -> Day { Day(year: y, month: m, day: d) ?? Day(index: 0) }

    /// 2026-11-29T09:00:00Z, when every test message is received.
    static let received = Instant(millis: 1_795_942_800_000)

    static func pilot(_ id: String, _ programme: String, start: Day) -> Pilot {
        Pilot(id: id, name: id, programme: programme, lead: "lead", call: "call-2026", funders: ["feder"],
              start: start, end: day(2027, 12, 31), enrolmentTarget: 100, milestones: [], outcomes: [])
    }

    static let registry = Registry(pilots: [
        pilot("resp-copd-idf-01", "respiratory", start: day(2026, 1, 5)),
        pilot("diab-cgm-idf-02", "diabetes", start: day(2026, 2, 1)),
        pilot("card-hf-idf-03", "cardiac", start: day(2026, 3, 1)),
    ])

    static let allProgrammes = ["respiratory", "diabetes", "cardiac"]

    static let catalogue = Catalogue(indicators: [
        Indicator(code: "spo2", name: "SpO2", kind: .measurement, unit: "%", range: ValueRange(min: 50, max: 100),
                  programmes: ["respiratory", "cardiac"], direction: .higher),
        Indicator(code: "glucose", name: "Blood glucose", kind: .measurement, unit: "mmol/L", range: ValueRange(min: 1, max: 40),
                  programmes: ["diabetes"], direction: .lower, convert: [UnitConversion(unit: "mg/dL", factor: 0.0555)]),
        Indicator(code: "hba1c", name: "HbA1c", kind: .measurement, unit: "%", range: ValueRange(min: 3, max: 20),
                  programmes: ["diabetes"], direction: .lower,
                  convert: [UnitConversion(unit: "mmol/mol", factor: 0.09148, offset: 2.152)]),
        Indicator(code: "weight", name: "Body weight", kind: .measurement, unit: "kg", range: ValueRange(min: 20, max: 350),
                  programmes: ["cardiac", "respiratory"], direction: .stable,
                  convert: [UnitConversion(unit: "[lb_av]", factor: 0.45359237)]),
        Indicator(code: "cat_score", name: "CAT score", kind: .score, unit: "{score}", range: ValueRange(min: 0, max: 40),
                  programmes: ["respiratory"], direction: .lower),
        Indicator(code: "enrolled", name: "Enrolled", kind: .event, unit: "1", range: nil,
                  programmes: allProgrammes, direction: .higher),
        Indicator(code: "withdrawn", name: "Withdrawn", kind: .event, unit: "1", range: nil,
                  programmes: allProgrammes, direction: .lower),
        Indicator(code: "exacerbation", name: "Exacerbation", kind: .event, unit: "1", range: ValueRange(min: 0, max: 5),
                  programmes: ["respiratory"], direction: .lower),
        Indicator(code: "active_patients", name: "Active patients", kind: .measurement, unit: "1",
                  range: ValueRange(min: 0, max: 100_000), programmes: allProgrammes, direction: .higher, level: .pilot),
    ])

    static let validator = ContractValidator(registry: registry, catalogue: catalogue)

    static let resp = "pilots/resp-copd-idf-01/dev-0042/obs"
    static let diab = "pilots/diab-cgm-idf-02/cgm-0007/obs"
    static let card = "pilots/card-hf-idf-03/scale-0001/obs"
    static let status = "pilots/resp-copd-idf-01/dev-0042/status"

    /// An observation object; pass `nil` to leave a field out, raw JSON text otherwise.
    static func obs(subject: String? = #""p-7f3a9c21""#, indicator: String? = #""spo2""#, value: String? = "94",
                    unit: String? = #""%""#, at: String? = #""2026-11-29T08:55:00+01:00""#, extra: String? = nil) -> String {
        var parts: [String] = []
        if let subject { parts.append(#""subject":"# + subject) }
        if let indicator { parts.append(#""indicator":"# + indicator) }
        if let value { parts.append(#""value":"# + value) }
        if let unit { parts.append(#""unit":"# + unit) }
        if let at { parts.append(#""at":"# + at) }
        if let extra { parts.append(extra) }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// A whole observation message around `observations` (raw JSON objects).
    static func message(_ observations: [String] = [obs()], msgID: String? = #""dev-0042-000001234""#,
                        sentAt: String? = #""2026-11-29T08:59:00Z""#, extra: String? = nil) -> String {
        var parts: [String] = []
        if let msgID { parts.append(#""msg_id":"# + msgID) }
        if let sentAt { parts.append(#""sent_at":"# + sentAt) }
        if let extra { parts.append(extra) }
        parts.append(#""observations":["# + observations.joined(separator: ",") + "]")
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func verdict(_ payload: String, topic: String = resp, receivedAt: Instant = received) -> Verdict {
        validator.validate(topic: topic, payload: Array(payload.utf8), receivedAt: receivedAt)
    }

    static func verdict(bytes: [UInt8], topic: String = resp) -> Verdict {
        validator.validate(topic: topic, payload: bytes, receivedAt: received)
    }
}

extension Verdict {
    var refusal: Refusal? {
        if case .refused(_, let r) = self { return r }
        return nil
    }

    var reason: ReasonCode? { refusal?.reason }

    var message: ObservationMessage? {
        if case .observations(_, let m) = self { return m }
        return nil
    }

    var deviceStatus: DeviceStatus? {
        if case .status(_, let s) = self { return s }
        return nil
    }

    var isAccepted: Bool { refusal == nil }
}

/// One message and what the contract says of it: `nil` for accepted.
struct ContractCase: Sendable, CustomStringConvertible {
    var name: String
    var topic: String = CF.resp
    var payload: String
    var reason: ReasonCode?
    /// A fragment the refusal's detail must contain.
    var detail: String?

    var description: String { name }

    var verdict: Verdict { CF.verdict(payload, topic: topic) }
}

/// A refused message beside an accepted neighbour that differs in the one thing refused.
struct CasePair: Sendable, CustomStringConvertible {
    var refused: ContractCase
    var accepted: ContractCase
    var description: String { "\(refused.reason?.rawValue ?? "?"): \(refused.name)" }

    init(_ name: String, _ reason: ReasonCode, refused: String, accepted: String,
         topic: String = CF.resp, acceptedTopic: String? = nil, detail: String? = nil) {
        self.refused = ContractCase(name: name, topic: topic, payload: refused, reason: reason, detail: detail)
        self.accepted = ContractCase(name: name + " (neighbour)", topic: acceptedTopic ?? topic, payload: accepted, reason: nil)
    }
}
