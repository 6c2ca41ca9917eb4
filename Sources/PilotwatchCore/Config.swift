internal import Yams

/// TLS settings for the broker connection (paths already resolved).
public struct TLSSettings: Sendable, Hashable {
    public var caFile: String
    public var certFile: String?
    public var keyFile: String?
    public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile; self.certFile = certFile; self.keyFile = keyFile
    }
}

/// How to reach the broker.
public struct BrokerSettings: Sendable, Hashable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var clientID = "pilotwatch-cluster"
    public var username: String?
    public var passwordFile: String?
    public var tls: TLSSettings?
    public var keepAlive = 30
    public var sessionExpirySeconds = 604_800
    public var receiveMaximum = 256
    public init() {}
}

/// The service configuration (`config/pilotwatch.yaml`), with every path resolved
/// against the folder of the file that named it.
///
/// ```yaml
/// broker: {host: 127.0.0.1, port: 1883, client_id: pilotwatch-cluster}
/// topic_root: pilots
/// database: ../var/pilotwatch.sqlite
/// registry: pilots.yaml
/// catalogue: indicators.yaml
/// ```
public struct ServiceConfig: Sendable, Hashable {
    public var file: String
    public var broker = BrokerSettings()
    public var topicRoot = "pilots"
    public var databasePath: String
    public var registryPath: String
    public var cataloguePath: String
    /// Alert thresholds, evaluation and delivery (`alerts:`).
    public var alerts = AlertSettings()
    /// How long refused payloads (and, later, other data) are kept (`retention:`).
    public var retention = RetentionSettings()
    /// A site instance's `federation:` section (nil: this instance sends no snapshots).
    public var federation: FederationSettings?

    public init(file: String, databasePath: String, registryPath: String, cataloguePath: String) {
        self.file = file; self.databasePath = databasePath; self.registryPath = registryPath; self.cataloguePath = cataloguePath
    }
}

/// Paths: a relative path in a configuration file resolves against that file's folder.
public enum ConfigPath {
    public static func folder(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }

    public static func resolve(_ path: String, against folder: String) -> String {
        if path.hasPrefix("/") { return path }
        if folder == "." { return path }
        return folder.hasSuffix("/") ? folder + path : folder + "/" + path
    }
}

/// Parses the three configuration files from their text. No I/O: callers read the files.
public enum ConfigParser {
    static let idRule = "1-64 characters of a-z 0-9 . _ - starting with a letter or digit"

    /// Parses `pilotwatch.yaml`. Paths resolve against the file's folder.
    public static func service(yaml: String, file: String) -> (ServiceConfig?, [ConfigProblem]) {
        var r = YAMLReader(file: file)
        guard let root = r.root(yaml) else { return (nil, r.problems) }
        r.checkKeys(root, allowed: ["broker", "topic_root", "database", "registry", "catalogue", "alerts", "retention", "federation"], path: "")
        let folder = ConfigPath.folder(of: file)
        let db = r.string(root, "database", path: "config", required: true)
        let registry = r.string(root, "registry", path: "config", required: true)
        let catalogue = r.string(root, "catalogue", path: "config", required: true)
        var config = ServiceConfig(
            file: file,
            databasePath: ConfigPath.resolve(db ?? "pilotwatch.sqlite", against: folder),
            registryPath: ConfigPath.resolve(registry ?? "pilots.yaml", against: folder),
            cataloguePath: ConfigPath.resolve(catalogue ?? "indicators.yaml", against: folder))
        if let rootTopic = r.string(root, "topic_root", path: "config", required: false) {
            if let rule = SettingRules.topicRootProblem(rootTopic) {
                r.problem(root["topic_root"], "topic_root: \(SettingRules.quoted(rootTopic)) \(rule)")
            } else {
                config.topicRoot = rootTopic
            }
        }
        if let anode = root["alerts"] { config.alerts = AlertSettings.read(&r, anode, folder: folder) }
        if let rnode = root["retention"] { config.retention = RetentionSettings.read(&r, rnode, path: "retention", over: config.retention) }
        if let fnode = root["federation"] { config.federation = FederationSettings.read(&r, fnode, folder: folder) }
        if let bnode = root["broker"] {
            if case .mapping(let b) = bnode {
                r.checkKeys(b, allowed: ["host", "port", "client_id", "username", "password_file", "tls", "keepalive",
                                         "session_expiry_seconds", "receive_maximum"], path: "broker")
                if let v = r.string(b, "host", path: "broker", required: false) {
                    if let rule = SettingRules.hostProblem(v) { r.problem(b["host"], "broker.host: \(SettingRules.quoted(v)) \(rule)") }
                    else { config.broker.host = v }
                }
                if let v = r.int(b, "port", path: "broker", required: false) {
                    if let rule = SettingRules.portProblem(v) { r.problem(b["port"], "broker.port: \(v) \(rule)") }
                    else { config.broker.port = v }
                }
                if let v = r.string(b, "client_id", path: "broker", required: false) {
                    if let rule = SettingRules.clientIDProblem(v) { r.problem(b["client_id"], "broker.client_id: \(SettingRules.quoted(v)) \(rule)") }
                    else { config.broker.clientID = v }
                }
                config.broker.username = r.string(b, "username", path: "broker", required: false)
                if let v = r.string(b, "password_file", path: "broker", required: false) {
                    config.broker.passwordFile = ConfigPath.resolve(v, against: folder)
                }
                if let v = r.int(b, "keepalive", path: "broker", required: false, range: 5...3600) { config.broker.keepAlive = v }
                if let v = r.int(b, "session_expiry_seconds", path: "broker", required: false, range: 1...Int(UInt32.max)) {
                    config.broker.sessionExpirySeconds = v
                }
                if let v = r.int(b, "receive_maximum", path: "broker", required: false, range: 1...65535) { config.broker.receiveMaximum = v }
                if let tnode = b["tls"] {
                    if case .mapping(let t) = tnode {
                        r.checkKeys(t, allowed: ["ca_file", "cert_file", "key_file"], path: "broker.tls")
                        let ca = r.string(t, "ca_file", path: "broker.tls", required: true)
                        let cert = r.string(t, "cert_file", path: "broker.tls", required: false)
                        let key = r.string(t, "key_file", path: "broker.tls", required: false)
                        if (cert == nil) != (key == nil) {
                            r.problem(tnode, "broker.tls: cert_file and key_file go together; give both or neither")
                        }
                        if let ca {
                            config.broker.tls = TLSSettings(caFile: ConfigPath.resolve(ca, against: folder),
                                                            certFile: cert.map { ConfigPath.resolve($0, against: folder) },
                                                            keyFile: key.map { ConfigPath.resolve($0, against: folder) })
                        }
                    } else {
                        r.problem(tnode, "broker.tls must be a mapping: {ca_file: ..., cert_file: ..., key_file: ...}")
                    }
                }
            } else {
                r.problem(bnode, "broker must be a mapping: {host: ..., port: ..., client_id: ...}")
            }
        }
        return (r.problems.isEmpty ? config : nil, r.problems)
    }

    /// Parses `indicators.yaml`.
    public static func catalogue(yaml: String, file: String) -> (Catalogue?, [ConfigProblem]) {
        var r = YAMLReader(file: file)
        guard let root = r.root(yaml) else { return (nil, r.problems) }
        r.checkKeys(root, allowed: ["indicators"], path: "")
        guard let listNode = root["indicators"], case .sequence(let list) = listNode else {
            r.problem(root["indicators"] ?? root.anyNode, "indicators must be a list of indicator entries")
            return (nil, r.problems)
        }
        var out: [Indicator] = []
        var seen: [String: Int] = [:]
        for (i, node) in list.enumerated() {
            let path = "indicators[\(i)]"
            guard case .mapping(let m) = node else { r.problem(node, "\(path) must be a mapping"); continue }
            r.checkKeys(m, allowed: ["code", "name", "loinc", "kind", "unit", "range", "programmes", "direction",
                                     "target", "convert", "level", "windows"], path: path)
            let code = r.string(m, "code", path: path, required: true)
            let label = code.map { "indicators[\($0)]" } ?? path
            if let code {
                if !isValidCode(code) { r.problem(m["code"], "\(label).code: \"\(code)\" must be \(idRule)") }
                if let prev = seen[code] { r.problem(m["code"], "\(label): code \"\(code)\" is defined twice (first at entry \(prev))") }
                seen[code] = i
            }
            let name = r.string(m, "name", path: label, required: true)
            let loinc = r.string(m, "loinc", path: label, required: false)
            if let loinc, !isLOINCShaped(loinc) {
                r.problem(m["loinc"], "\(label).loinc: \"\(loinc)\" is not a LOINC code (digits, a dash and a check digit, e.g. 59408-5); leave it out rather than guess")
            }
            let kind = enumValue(&r, m, "kind", path: label, IndicatorKind.self, required: true)
            let unit = r.string(m, "unit", path: label, required: true)
            let range = rangeValue(&r, m["range"], path: "\(label).range")
            if kind != .event, m["range"] == nil { r.problem(m.anyNode, "\(label).range is missing; measurements and scores need a plausible {min, max}") }
            let programmes = r.strings(m, "programmes", path: label, required: true)
            let direction = enumValue(&r, m, "direction", path: label, Direction.self, required: true)
            let target = rangeValue(&r, m["target"], path: "\(label).target")
            let level = enumValue(&r, m, "level", path: label, IndicatorLevel.self, required: false) ?? .subject
            var conversions: [UnitConversion] = []
            if let cnode = m["convert"] {
                if case .sequence(let cs) = cnode {
                    for (j, c) in cs.enumerated() {
                        guard case .mapping(let cm) = c else { r.problem(c, "\(label).convert[\(j)] must be {unit, factor, offset}"); continue }
                        r.checkKeys(cm, allowed: ["unit", "factor", "offset"], path: "\(label).convert[\(j)]")
                        let u = r.string(cm, "unit", path: "\(label).convert[\(j)]", required: true)
                        let f = r.double(cm["factor"], path: "\(label).convert[\(j)].factor")
                        let o = cm["offset"].map { r.double($0, path: "\(label).convert[\(j)].offset") } ?? 0
                        if let f, f == 0 { r.problem(cm["factor"], "\(label).convert[\(j)].factor must not be 0") }
                        if let u, let f, let o { conversions.append(UnitConversion(unit: u, factor: f, offset: o)) }
                    }
                } else {
                    r.problem(cnode, "\(label).convert must be a list of {unit, factor, offset}")
                }
            }
            var windows = OutcomeWindows.standard
            if let wnode = m["windows"] {
                if case .mapping(let w) = wnode {
                    r.checkKeys(w, allowed: ["baseline_before_days", "baseline_after_days", "follow_up_days"], path: "\(label).windows")
                    if let n = w["baseline_before_days"], let v = r.double(n, path: "\(label).windows.baseline_before_days") { windows.baselineBeforeDays = v }
                    if let n = w["baseline_after_days"], let v = r.double(n, path: "\(label).windows.baseline_after_days") { windows.baselineAfterDays = v }
                    if let n = w["follow_up_days"], let v = r.double(n, path: "\(label).windows.follow_up_days") { windows.followUpDays = v }
                    if windows.baselineBeforeDays < 0 || windows.baselineAfterDays < 0 || windows.followUpDays <= 0 {
                        r.problem(wnode, "\(label).windows: days must be positive")
                    }
                } else {
                    r.problem(wnode, "\(label).windows must be a mapping")
                }
            }
            if let range, range.min > range.max { r.problem(m["range"], "\(label).range: min \(formatNumber(range.min)) is above max \(formatNumber(range.max))") }
            if let target, target.min > target.max { r.problem(m["target"], "\(label).target: min is above max") }
            if level == .pilot, kind != .event, kind != nil {
                r.problem(m["level"], "\(label).level: pilot-level indicators must be of kind event (counts)")
            }
            if let code, let name, let kind, let unit, let programmes, let direction {
                out.append(Indicator(code: code, name: name, loinc: loinc, kind: kind, unit: unit, range: range,
                                     programmes: programmes, direction: direction, target: target,
                                     convert: conversions, level: level, windows: windows))
            }
        }
        for required in Catalogue.requiredEvents where !out.contains(where: { $0.code == required && $0.kind == .event }) {
            r.problem(root.anyNode, "the catalogue has no event \"\(required)\"; metrics are built on it, add it with kind: event")
        }
        return (r.problems.isEmpty ? Catalogue(indicators: out) : nil, r.problems)
    }

    /// Parses `pilots.yaml`, checking outcomes against `catalogue` when given.
    public static func registry(yaml: String, file: String, catalogue: Catalogue?) -> (Registry?, [ConfigProblem]) {
        var r = YAMLReader(file: file)
        guard let root = r.root(yaml) else { return (nil, r.problems) }
        r.checkKeys(root, allowed: ["pilots", "programmes"], path: "")
        var programmes = Registry.builtInProgrammes
        if root["programmes"] != nil, let extra = r.strings(root, "programmes", path: "registry", required: false) {
            for p in extra where !programmes.contains(p) {
                if isValidCode(p) { programmes.append(p) } else { r.problem(root["programmes"], "programmes: \"\(p)\" must be \(idRule)") }
            }
        }
        guard let listNode = root["pilots"], case .sequence(let list) = listNode else {
            r.problem(root["pilots"] ?? root.anyNode, "pilots must be a list of pilot entries")
            return (nil, r.problems)
        }
        var out: [Pilot] = []
        var seen: Set<String> = []
        for (i, node) in list.enumerated() {
            let path = "pilots[\(i)]"
            guard case .mapping(let m) = node else { r.problem(node, "\(path) must be a mapping"); continue }
            r.checkKeys(m, allowed: ["id", "name", "programme", "lead", "call", "funders", "start", "end",
                                     "enrolment_target", "milestones", "outcomes", "alerts", "retention", "reporting", "site"], path: path)
            let id = r.string(m, "id", path: path, required: true)
            let label = id.map { "pilots[\($0)]" } ?? path
            if let id {
                if !isValidCode(id) { r.problem(m["id"], "\(label).id: \"\(id)\" must be \(idRule)") }
                if !seen.insert(id).inserted { r.problem(m["id"], "\(label): id \"\(id)\" is used twice") }
            }
            let name = r.string(m, "name", path: label, required: true)
            let programme = r.string(m, "programme", path: label, required: true)
            if let programme, !programmes.contains(programme) {
                r.problem(m["programme"], "\(label).programme: \"\(programme)\" is not a programme; use one of \(programmes.joined(separator: ", ")) or declare it under programmes:")
            }
            let lead = r.string(m, "lead", path: label, required: true)
            let call = r.string(m, "call", path: label, required: true)
            let funders = r.strings(m, "funders", path: label, required: true)
            let start = r.day(m, "start", path: label, required: true)
            let end = r.day(m, "end", path: label, required: true)
            if let start, let end, end < start { r.problem(m["end"], "\(label).end: \(end) is before start \(start)") }
            let target = r.int(m, "enrolment_target", path: label, required: true, range: 1...10_000_000)
            var milestones: [Milestone] = []
            if let mnode = m["milestones"] {
                if case .sequence(let ms) = mnode {
                    for (j, mi) in ms.enumerated() {
                        guard case .mapping(let mm) = mi else { r.problem(mi, "\(label).milestones[\(j)] must be {date, enrolled}"); continue }
                        r.checkKeys(mm, allowed: ["date", "enrolled"], path: "\(label).milestones[\(j)]")
                        if let d = r.day(mm, "date", path: "\(label).milestones[\(j)]", required: true),
                           let n = r.int(mm, "enrolled", path: "\(label).milestones[\(j)]", required: true, range: 0...10_000_000) {
                            if let target, n > target { r.problem(mi, "\(label).milestones[\(j)].enrolled: \(n) is above the enrolment target \(target)") }
                            milestones.append(Milestone(date: d, enrolled: n))
                        }
                    }
                } else {
                    r.problem(mnode, "\(label).milestones must be a list of {date, enrolled}")
                }
            }
            let outcomes = r.strings(m, "outcomes", path: label, required: false) ?? []
            var alerts = AlertOverrides()
            if let anode = m["alerts"] {
                if case .mapping(let am) = anode {
                    alerts = AlertOverrides.read(&r, am, path: "\(label).alerts", perPilot: true, extra: [])
                } else {
                    r.problem(anode, "\(label).alerts must be a mapping, such as {silent_hours: 72, off: [unenrolled_subjects]}")
                }
            }
            let retention = m["retention"].map { RetentionOverrides.read(&r, $0, path: "\(label).retention") } ?? RetentionOverrides()
            let reporting = readReporting(&r, m, label: label)
            if let catalogue, let programme {
                for code in outcomes {
                    guard let ind = catalogue.indicator(code) else {
                        let hint = closest(code, in: catalogue.indicators.map(\.code)).map { " (did you mean \($0)?)" } ?? ""
                        r.problem(m["outcomes"], "\(label).outcomes: \"\(code)\" is not in the indicator catalogue\(hint)")
                        continue
                    }
                    if !ind.programmes.contains(programme) {
                        r.problem(m["outcomes"], "\(label).outcomes: \"\(code)\" is not allowed for programme \(programme); add the programme to the indicator or choose another")
                    }
                }
            }
            if let id, let name, let programme, let lead, let call, let funders, let start, let end, let target {
                out.append(Pilot(id: id, name: name, programme: programme, lead: lead, call: call, funders: funders,
                                 start: start, end: end, enrolmentTarget: target,
                                 milestones: milestones.sorted { $0.date < $1.date }, outcomes: outcomes, alerts: alerts, retention: retention,
                                 reporting: reporting ?? .observations))
            }
        }
        if let catalogue {
            for ind in catalogue.indicators {
                for p in ind.programmes where !programmes.contains(p) {
                    r.problems.append(ConfigProblem(file: file, line: nil,
                        message: "indicator \(ind.code) names programme \"\(p)\", which this registry does not declare; add it under programmes:"))
                }
            }
        }
        return (r.problems.isEmpty ? Registry(pilots: out, programmes: programmes) : nil, r.problems)
    }

    /// A pilot entry's `reporting:` and `site:`: `observations` (the default, no site) or
    /// `aggregates` with the site id that reports them. Nil (with a problem) when they disagree.
    private static func readReporting(_ r: inout YAMLReader, _ m: Node.Mapping, label: String) -> Reporting? {
        let mode = r.string(m, "reporting", path: label, required: false)
        let site = r.string(m, "site", path: label, required: false)
        if let site, let rule = SettingRules.siteIDProblem(site) {
            r.problem(m["site"], "\(label).site: \(SettingRules.quoted(site)) \(rule)")
            return nil
        }
        switch (mode, site) {
        case (nil, nil), ("observations", nil):
            return .observations
        case ("aggregates", let site?):
            return .aggregates(site: site)
        case ("aggregates", nil):
            r.problem(m["reporting"], "\(label): reporting: aggregates needs the site that sends them; add site: SITE_ID (the site instance's federation.site_id)")
        case (nil, _?), ("observations", _?):
            r.problem(m["site"], "\(label).site: a site reports aggregates; add reporting: aggregates, or remove site for a pilot whose devices report observations")
        default:
            r.problem(m["reporting"], "\(label).reporting: \(SettingRules.quoted(mode ?? "")) is not observations or aggregates")
        }
        return nil
    }

    private static func enumValue<E: RawRepresentable & CaseIterable>(
        _ r: inout YAMLReader, _ m: Node.Mapping, _ key: String, path: String, _: E.Type, required: Bool
    ) -> E? where E.RawValue == String {
        guard let s = r.string(m, key, path: path, required: required) else { return nil }
        guard let v = E(rawValue: s) else {
            r.problem(m[key], "\(path).\(key): \"\(s)\" is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return v
    }

    private static func rangeValue(_ r: inout YAMLReader, _ node: Node?, path: String) -> ValueRange? {
        guard let node else { return nil }
        guard case .mapping(let m) = node else { r.problem(node, "\(path) must be {min: ..., max: ...}"); return nil }
        r.checkKeys(m, allowed: ["min", "max"], path: path)
        guard let lo = r.double(m["min"], path: "\(path).min"), let hi = r.double(m["max"], path: "\(path).max") else { return nil }
        return ValueRange(min: lo, max: hi)
    }
}

/// A pilot id, device id or indicator code: 1–64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
public func isValidCode(_ s: some StringProtocol) -> Bool {
    let u = s.utf8
    guard let first = u.first, u.count <= 64 else { return false }
    func ok(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 46 || b == 95 || b == 45 }
    guard (first >= 97 && first <= 122) || (first >= 48 && first <= 57) else { return false }
    return u.allSatisfy(ok)
}

func isLOINCShaped(_ s: String) -> Bool {
    let parts = s.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, (1...7).contains(parts[0].count), parts[1].count == 1 else { return false }
    return parts.allSatisfy { $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
}

/// Checks a LOINC code's mod-10 check digit (`59408-5` is valid, `59408-4` is not).
public func loincCheckDigitIsValid(_ code: String) -> Bool {
    guard isLOINCShaped(code) else { return false }
    let parts = code.split(separator: "-")
    let digitsOnly = parts[0].compactMap { $0.wholeNumberValue }
    guard let check = parts[1].first?.wholeNumberValue else { return false }
    // LOINC's algorithm: double every other digit starting from the rightmost.
    var sum = 0
    for (i, d) in digitsOnly.reversed().enumerated() {
        if i % 2 == 0 {
            let v = d * 2
            sum += v / 10 + v % 10
        } else {
            sum += d
        }
    }
    return (10 - sum % 10) % 10 == check
}
