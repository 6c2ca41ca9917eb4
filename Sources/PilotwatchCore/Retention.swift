internal import Yams

/// How long what the store keeps may stay (`retention:` in `pilotwatch.yaml`, and in a pilot's
/// registry entry for that pilot). `pilotwatch db purge` applies it; `serve` runs it daily.
///
/// ```yaml
/// retention: {refused_payload_days: 90, device_status_days: 90, ended_pilot_raw_days: 365}
/// ```
public struct RetentionSettings: Sendable, Hashable {
    /// A refused message keeps its payload this many days after it was received; then only its
    /// reason, time, topic and hash remain.
    public var refusedPayloadDays: Int = 90
    /// A device's last reported status (state, battery, firmware) is kept this many days after it
    /// was received; then the device keeps only its counters and the times it was heard of.
    public var deviceStatusDays: Int = 90
    /// An ended pilot's raw rows (subjects, observations, events, messages, devices) are kept
    /// this many days after its end date; then its final figures are archived and the rows go.
    public var endedPilotRawDays: Int = 365

    public init() {}

    static let keys = ["refused_payload_days", "device_status_days", "ended_pilot_raw_days"]

    /// Reads a `retention:` block over `base`.
    static func read(_ r: inout YAMLReader, _ node: Node, path: String, over base: RetentionSettings) -> RetentionSettings {
        var s = base
        guard case .mapping(let m) = node else {
            r.problem(node, "\(path) must be a mapping, such as {refused_payload_days: 90, device_status_days: 90, ended_pilot_raw_days: 365}")
            return s
        }
        r.checkKeys(m, allowed: keys, path: path)
        if let v = r.int(m, "refused_payload_days", path: path, required: false, range: 1...3650) { s.refusedPayloadDays = v }
        if let v = r.int(m, "device_status_days", path: path, required: false, range: 1...3650) { s.deviceStatusDays = v }
        if let v = r.int(m, "ended_pilot_raw_days", path: path, required: false, range: 0...36500) { s.endedPilotRawDays = v }
        return s
    }
}

/// A pilot entry's own `retention:` (nil: the service's).
public struct RetentionOverrides: Sendable, Hashable {
    public var refusedPayloadDays: Int?
    public var deviceStatusDays: Int?
    public var endedPilotRawDays: Int?
    public init(refusedPayloadDays: Int? = nil, deviceStatusDays: Int? = nil, endedPilotRawDays: Int? = nil) {
        self.refusedPayloadDays = refusedPayloadDays
        self.deviceStatusDays = deviceStatusDays
        self.endedPilotRawDays = endedPilotRawDays
    }

    public var isEmpty: Bool { refusedPayloadDays == nil && deviceStatusDays == nil && endedPilotRawDays == nil }

    public func applied(to base: RetentionSettings) -> RetentionSettings {
        var s = base
        if let refusedPayloadDays { s.refusedPayloadDays = refusedPayloadDays }
        if let deviceStatusDays { s.deviceStatusDays = deviceStatusDays }
        if let endedPilotRawDays { s.endedPilotRawDays = endedPilotRawDays }
        return s
    }

    static func read(_ r: inout YAMLReader, _ node: Node, path: String) -> RetentionOverrides {
        let s = RetentionSettings.read(&r, node, path: path, over: RetentionSettings())
        guard case .mapping(let m) = node else { return RetentionOverrides() }
        return RetentionOverrides(refusedPayloadDays: m["refused_payload_days"] != nil ? s.refusedPayloadDays : nil,
                                  deviceStatusDays: m["device_status_days"] != nil ? s.deviceStatusDays : nil,
                                  endedPilotRawDays: m["ended_pilot_raw_days"] != nil ? s.endedPilotRawDays : nil)
    }
}
