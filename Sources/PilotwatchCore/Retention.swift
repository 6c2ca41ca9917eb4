import Yams

/// How long what the store keeps may stay (`retention:` in `pilotwatch.yaml`, and in a pilot's
/// registry entry for that pilot). `pilotwatch db purge` applies it; `serve` runs it daily.
///
/// ```yaml
/// retention: {refused_payload_days: 90}
/// ```
public struct RetentionSettings: Sendable, Hashable {
    /// A refused message keeps its payload this many days after it was received; then only its
    /// reason, time, topic and hash remain.
    public var refusedPayloadDays: Int = 90

    public init() {}

    static let keys = ["refused_payload_days"]

    /// Reads a `retention:` block over `base`.
    static func read(_ r: inout YAMLReader, _ node: Node, path: String, over base: RetentionSettings) -> RetentionSettings {
        var s = base
        guard case .mapping(let m) = node else {
            r.problem(node, "\(path) must be a mapping, such as {refused_payload_days: 90}")
            return s
        }
        r.checkKeys(m, allowed: keys, path: path)
        if let v = r.int(m, "refused_payload_days", path: path, required: false, range: 1...3650) { s.refusedPayloadDays = v }
        return s
    }
}

/// A pilot entry's own `retention:` (nil: the service's).
public struct RetentionOverrides: Sendable, Hashable {
    public var refusedPayloadDays: Int?
    public init(refusedPayloadDays: Int? = nil) { self.refusedPayloadDays = refusedPayloadDays }

    public func applied(to base: RetentionSettings) -> RetentionSettings {
        var s = base
        if let refusedPayloadDays { s.refusedPayloadDays = refusedPayloadDays }
        return s
    }

    static func read(_ r: inout YAMLReader, _ node: Node, path: String) -> RetentionOverrides {
        let s = RetentionSettings.read(&r, node, path: path, over: RetentionSettings())
        guard case .mapping(let m) = node, m["refused_payload_days"] != nil else { return RetentionOverrides() }
        return RetentionOverrides(refusedPayloadDays: s.refusedPayloadDays)
    }
}
