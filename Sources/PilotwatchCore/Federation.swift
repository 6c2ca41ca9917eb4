internal import Yams

/// A site instance's `federation:` section of `pilotwatch.yaml` (federation.md, "Roles"): the
/// cluster's broker, this site's id, the pilots it forwards as day-end snapshots, how long after
/// a day end it waits for late data, and its disclosure threshold.
///
/// ```yaml
/// federation:
///   cluster: {host: cluster.example.org, port: 8883, tls: {ca_file: cluster-ca.pem},
///             username: chu-lille, password_file: /etc/pilotwatch/cluster.pass}
///   site_id: chu-lille
///   pilots: [hf-nord-02]
///   grace: 2h          # or 7200 (seconds)
///   min_cell: 11       # 0 turns disclosure control off; 1-4 are refused
/// ```
public struct FederationSettings: Sendable, Hashable {
    /// The cluster's broker (paths resolved); its username is the site id unless given.
    public var cluster: BrokerSettings
    public var siteID: String
    /// The pilots this site forwards, in the order given.
    public var pilots: [String]
    /// Seconds after a UTC day end before its snapshot is published.
    public var graceSeconds: Int
    /// Disclosure threshold: no figure resting on fewer subjects leaves (0: off).
    public var minCell: Int
    /// The line of `pilots:` in the file, for problems found against the registry.
    public var pilotsLine: Int?

    public static let defaultGraceSeconds = 7200
    public static let defaultMinCell = 11
    /// The longest grace: a week (a day end later than that is for `federate --resend`).
    public static let maxGraceSeconds = 7 * 86_400

    public init(cluster: BrokerSettings, siteID: String, pilots: [String],
                graceSeconds: Int = FederationSettings.defaultGraceSeconds, minCell: Int = FederationSettings.defaultMinCell) {
        self.cluster = cluster; self.siteID = siteID; self.pilots = pilots; self.graceSeconds = graceSeconds; self.minCell = minCell
    }

    static let keys = ["cluster", "site_id", "pilots", "grace", "min_cell"]
    static let clusterKeys = ["host", "port", "tls", "username", "password_file"]

    /// Reads a `federation:` block; nil (with every problem recorded) when it is not usable.
    static func read(_ r: inout YAMLReader, _ node: Node, folder: String) -> FederationSettings? {
        guard case .mapping(let m) = node else {
            r.problem(node, "federation must be a mapping, such as {cluster: {host: ...}, site_id: chu-lille, pilots: [hf-nord-02]}")
            return nil
        }
        let before = r.problems.count
        r.checkKeys(m, allowed: keys, path: "federation")
        let siteID = r.string(m, "site_id", path: "federation", required: true)
        if let siteID, let rule = SettingRules.siteIDProblem(siteID) {
            r.problem(m["site_id"], "federation.site_id: \(SettingRules.quoted(siteID)) \(rule)")
        }
        let pilots = r.strings(m, "pilots", path: "federation", required: true) ?? []
        if m["pilots"] != nil, pilots.isEmpty, r.problems.count == before {
            r.problem(m["pilots"], "federation.pilots is empty; list the pilot ids this site forwards, such as [hf-nord-02]")
        }
        var seen: Set<String> = []
        for p in pilots {
            if !isValidCode(p) { r.problem(m["pilots"], "federation.pilots: \(SettingRules.quoted(p)) is not a pilot id (\(ConfigParser.idRule))") }
            if !seen.insert(p).inserted { r.problem(m["pilots"], "federation.pilots: \(SettingRules.quoted(p)) is listed twice") }
        }
        var grace = defaultGraceSeconds
        if let g = m["grace"] {
            switch durationSeconds(g) {
            case .some(let v) where (0...maxGraceSeconds).contains(v): grace = v
            case .some(let v): r.problem(g, "federation.grace: \(v) s is outside 0...\(maxGraceSeconds) (a week)")
            case nil: r.problem(g, "federation.grace: \(r.quoted(g)) is not a duration; write seconds (7200) or a number with s, m, h or d (2h)")
            }
        }
        var minCell = defaultMinCell
        if let v = r.int(m, "min_cell", path: "federation", required: false, range: 0...1000) {
            if (1...4).contains(v) {
                r.problem(m["min_cell"], "federation.min_cell: \(v) is too small to protect anyone; use 0 (no disclosure control, only under a data-sharing agreement) or at least 5 (default 11)")
            } else {
                minCell = v
            }
        }
        let cluster = readCluster(&r, m["cluster"], parent: m, folder: folder, siteID: siteID)
        guard r.problems.count == before, let siteID, let cluster else { return nil }
        var settings = FederationSettings(cluster: cluster, siteID: siteID, pilots: pilots, graceSeconds: grace, minCell: minCell)
        settings.pilotsLine = m["pilots"]?.mark?.line
        return settings
    }

    /// What is wrong with `pilots` against this site's own registry: a pilot it does not hold,
    /// or one whose devices do not report here (`reporting: aggregates`), so that it has no
    /// observations to aggregate.
    public func problems(against registry: Registry, file: String) -> [ConfigProblem] {
        pilots.compactMap { id in
            guard let pilot = registry.pilot(id) else {
                let hint = closest(id, in: registry.pilots.map(\.id)).map { " (did you mean \($0)?)" } ?? ""
                return ConfigProblem(file: file, line: pilotsLine,
                                     message: "federation.pilots: \(SettingRules.quoted(id)) is not in this instance's pilot registry\(hint); a site forwards pilots whose devices report to it")
            }
            guard pilot.site == nil else {
                return ConfigProblem(file: file, line: pilotsLine,
                                     message: "federation.pilots: \(id) has reporting: aggregates in this instance's registry; a site forwards pilots whose observations it holds (reporting: observations)")
            }
            return nil
        }
    }

    /// `federation.cluster`: host (required), port (8883 with TLS, else 1883), `tls.ca_file`,
    /// `username` (the site id: the cluster's ACL lets only that account publish the site's
    /// snapshots) and `password_file`.
    private static func readCluster(_ r: inout YAMLReader, _ node: Node?, parent: Node.Mapping, folder: String, siteID: String?) -> BrokerSettings? {
        guard let node else {
            r.problem(parent.anyNode, "federation.cluster is missing; add the cluster's broker: {host: ..., port: 8883, tls: {ca_file: ...}}")
            return nil
        }
        guard case .mapping(let c) = node else {
            r.problem(node, "federation.cluster must be a mapping, such as {host: cluster.example.org, port: 8883, tls: {ca_file: ca.pem}}")
            return nil
        }
        r.checkKeys(c, allowed: clusterKeys, path: "federation.cluster")
        var b = BrokerSettings()
        b.clientID = "pilotwatch-site-\(siteID ?? "site")"
        if let host = r.string(c, "host", path: "federation.cluster", required: true) {
            if let rule = SettingRules.hostProblem(host) { r.problem(c["host"], "federation.cluster.host: \(SettingRules.quoted(host)) \(rule)") }
            b.host = host
        }
        if let tnode = c["tls"] {
            if case .mapping(let t) = tnode {
                r.checkKeys(t, allowed: ["ca_file"], path: "federation.cluster.tls")
                if let ca = r.string(t, "ca_file", path: "federation.cluster.tls", required: true) {
                    b.tls = TLSSettings(caFile: ConfigPath.resolve(ca, against: folder))
                }
            } else {
                r.problem(tnode, "federation.cluster.tls must be a mapping: {ca_file: ...}")
            }
        }
        b.port = b.tls == nil ? 1883 : 8883
        if let port = r.int(c, "port", path: "federation.cluster", required: false) {
            if let rule = SettingRules.portProblem(port) { r.problem(c["port"], "federation.cluster.port: \(port) \(rule)") }
            b.port = port
        }
        b.username = siteID
        if let user = r.string(c, "username", path: "federation.cluster", required: false) {
            if let siteID, user != siteID {
                r.problem(c["username"], "federation.cluster.username: \(SettingRules.quoted(user)) must be the site id \(SettingRules.quoted(siteID)): the cluster's broker lets only the account named after the site publish its snapshots (or leave username out)")
            }
            b.username = user
        }
        if let file = r.string(c, "password_file", path: "federation.cluster", required: false) {
            b.passwordFile = ConfigPath.resolve(file, against: folder)
        }
        return b
    }

    /// A duration as configuration files write it: seconds (`7200`) or a whole number with a
    /// unit (`90s`, `30m`, `2h`, `1d`).
    static func durationSeconds(_ node: Node) -> Int? {
        guard case .scalar(let s) = node else { return nil }
        let text = s.string
        if let v = Int(text) { return v }
        guard let unit = text.last, let n = Int(text.dropLast()), n >= 0 else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86_400
        default: return nil
        }
    }
}
