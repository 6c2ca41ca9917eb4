/// The reason codes of the wire contract (`mqtt-contract.md`, version 1, and those of 1.1).
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
    /// Contract 1.1: an observation or status message for a pilot whose registry entry says
    /// `reporting: aggregates`; the cluster keeps no patient-level payload for such a pilot, so
    /// it is kept as hash only.
    case aggregatePilot = "aggregate_pilot"
    /// Contract 1.1: a snapshot whose topic's site is not the pilot's registered `site`.
    case unknownSite = "unknown_site"
    /// Contract 1.1: a snapshot computed with other registry facts than the cluster's.
    case registryMismatch = "registry_mismatch"

    /// The reason codes of contract version 1, the ones a v1 store's schema knows.
    public static let version1: [ReasonCode] = [
        .malformedJSON, .schema, .tooLarge, .unknownPilot, .unknownIndicator, .indicatorNotInProgramme,
        .badUnit, .outOfRange, .badTime, .pilotMismatch, .identifyingData,
    ]

    /// Whether the message's bytes may be kept (quarantine, inbox): not for a refusal whose
    /// message is kept as hash only: identifying data, a payload too large to be scanned
    /// for it (nor ever accepted, so nothing to replay), a message about an erased subject, and
    /// patient-level data misrouted to the cluster for an aggregate pilot.
    public var keepsPayload: Bool {
        self != .identifyingData && self != .tooLarge && self != .erasedSubject && self != .aggregatePilot
    }

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

/// The message kinds of the contract, by topic suffix: observations and device statuses (v1),
/// and a site instance's day-end snapshots (`agg`, 1.1).
public enum TopicKind: String, Sendable, Hashable {
    case obs, status, agg
}

/// A parsed topic `{root}/{pilot_id}/{device_id}/{obs|status}`, or `{root}/{pilot_id}/{site_id}/agg`
/// (then `device` holds the site id).
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

/// A snapshot the contract accepts (contract 1.1): what the store keys and orders it by. The
/// store keeps the payload itself as received.
public struct SnapshotReceipt: Sendable, Hashable {
    public var msgID: String
    /// The pilot's registered site, which published it.
    public var site: String
    /// The day end it describes.
    public var asOf: Instant
    /// The site's computation time (ms): a higher one replaces a lower one for the same `as_of`.
    public var revision: Int64
    public init(msgID: String, site: String, asOf: Instant, revision: Int64) {
        self.msgID = msgID; self.site = site; self.asOf = asOf; self.revision = revision
    }
}

/// Reads the payload of a snapshot for a registered pilot that reports aggregates, from its
/// registered site: the schema, the pilot field and the registry echo (against `pilot` and
/// `catalogue`, the cluster's). The snapshot model and its parser live with the reports that
/// build and read snapshots (`SnapshotIntake` in PilotwatchReports); the validator asks this.
public protocol SnapshotChecking: Sendable {
    /// The snapshot's `msg_id`, `as_of` and `revision` (with `site` as given), or the refusal:
    /// `malformed_json`, `schema`, `pilot_mismatch` or `registry_mismatch`.
    func check(_ payload: [UInt8], pilot: Pilot, site: String, catalogue: Catalogue) throws(Refusal) -> SnapshotReceipt
    /// Every field name a snapshot may hold: the identifying-data scan reads their values but
    /// not the names themselves (`patient_days` names no patient).
    var fieldNames: Set<String> { get }
}

/// What the contract says of one message.
public enum Verdict: Sendable, Hashable {
    case observations(Topic, ObservationMessage)
    case status(Topic, DeviceStatus)
    /// A pilot snapshot (contract 1.1) on `{root}/{pilot}/{site}/agg`.
    case snapshot(Topic, SnapshotReceipt)
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
