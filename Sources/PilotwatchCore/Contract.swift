/// The reason codes of the wire contract (`mqtt-contract.md`, version 1, and `store_error` of 1.1).
public enum ReasonCode: String, Sendable, Codable, CaseIterable, Hashable {
    case malformedJSON = "malformed_json"
    case schema
    case tooLarge = "too_large"
    case unknownPilot = "unknown_pilot"
    case unknownIndicator = "unknown_indicator"
    case indicatorNotInProgramme = "indicator_not_in_programme"
    case badUnit = "bad_unit"
    case outOfRange = "out_of_range"
    case badTime = "bad_time"
    case pilotMismatch = "pilot_mismatch"
    case identifyingData = "identifying_data"
    /// The service's own reason (contract 1.1): the database refused the message on every try.
    /// Replayable, and never counted against a pilot.
    case storeError = "store_error"
    /// Contract 1.1: the message names a subject that was erased (`subjects erase`); kept as
    /// hash only.
    case erasedSubject = "erased_subject"

    /// The reason codes of contract version 1, the ones a v1 store's schema knows.
    public static let version1: [ReasonCode] = [
        .malformedJSON, .schema, .tooLarge, .unknownPilot, .unknownIndicator, .indicatorNotInProgramme,
        .badUnit, .outOfRange, .badTime, .pilotMismatch, .identifyingData,
    ]

    /// Whether the message's bytes may be kept (quarantine, inbox): not for a refusal whose
    /// message is kept as hash only: identifying data, a payload too large to be scanned
    /// for it (nor ever accepted, so nothing to replay), and a message about an erased subject.
    public var keepsPayload: Bool { self != .identifyingData && self != .tooLarge && self != .erasedSubject }

    /// Whether the refusal is the pilot's doing (counted in its refusal rate and flags), not the
    /// service's own (`store_error`).
    public var countsAgainstPilot: Bool { self != .storeError }
}

/// Why a message was refused: the contract's reason code and a detail that names
/// the field and the value, for example
/// `observations[3].value: 140 is above the plausible range 50..100 for spo2`.
public struct Refusal: Sendable, Hashable, Error, CustomStringConvertible {
    public var reason: ReasonCode
    public var detail: String
    public init(_ reason: ReasonCode, _ detail: String) { self.reason = reason; self.detail = detail }
    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// The two message kinds of the contract, by topic suffix.
public enum TopicKind: String, Sendable, Hashable {
    case obs, status
}

/// A parsed topic `{root}/{pilot_id}/{device_id}/{obs|status}`.
public struct Topic: Sendable, Hashable {
    public var pilot: String
    public var device: String
    public var kind: TopicKind
    public init(pilot: String, device: String, kind: TopicKind) { self.pilot = pilot; self.device = device; self.kind = kind }
}

/// One validated observation, in the catalogue's unit.
public struct Observation: Sendable, Hashable {
    /// The pseudonym; nil for pilot-level indicators.
    public var subject: String?
    public var indicator: String
    public var kind: IndicatorKind
    /// The value converted to the catalogue unit (events default to 1).
    public var value: Double
    public var at: Instant
    public init(subject: String?, indicator: String, kind: IndicatorKind, value: Double, at: Instant) {
        self.subject = subject; self.indicator = indicator; self.kind = kind; self.value = value; self.at = at
    }
}

/// A validated observation message.
public struct ObservationMessage: Sendable, Hashable {
    public var msgID: String
    public var sentAt: Instant?
    public var observations: [Observation]
    public init(msgID: String, sentAt: Instant?, observations: [Observation]) {
        self.msgID = msgID; self.sentAt = sentAt; self.observations = observations
    }
}

/// A validated device status message.
public struct DeviceStatus: Sendable, Hashable {
    public enum State: String, Sendable, Hashable { case online, offline }
    public var state: State
    public var at: Instant?
    public var batteryPct: Double?
    public var firmware: String?
    public init(state: State, at: Instant?, batteryPct: Double?, firmware: String?) {
        self.state = state; self.at = at; self.batteryPct = batteryPct; self.firmware = firmware
    }
}

/// What the contract says of one message.
public enum Verdict: Sendable, Hashable {
    case observations(Topic, ObservationMessage)
    case status(Topic, DeviceStatus)
    /// `topic` is set when the topic itself parsed (so the pilot and device are known).
    case refused(Topic?, Refusal)
}

/// Contract limits, named once.
public enum ContractLimits {
    public static let maxPayloadBytes = 256 * 1024
    public static let maxObservations = 1000
    public static let maxMsgIDLength = 128
    public static let maxFutureMillis: Int64 = 5 * 60 * 1000
    public static let maxDaysBeforeStart = 365
    public static let idMaxLength = 64
    public static let subjectMinLength = 6
    public static let subjectMaxLength = 64
}
