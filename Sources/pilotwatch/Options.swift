import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports

/// The flags every command takes. Each overrides the configuration file and is itself
/// overridden by nothing; environment variables (`PILOTWATCH_CONFIG`, `PILOTWATCH_DB`,
/// `PILOTWATCH_HOST`, `PILOTWATCH_PORT`, `PILOTWATCH_CLIENT_ID`, `PILOTWATCH_TOPIC_ROOT`)
/// sit between the file and the flag.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Service configuration file.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("SQLite database file (overrides `database:`).", valueName: "file"))
    var db: String?

    /// The configuration file: `--config`, then `PILOTWATCH_CONFIG`, then `config/pilotwatch.yaml`.
    var configPath: String {
        config ?? ProcessInfo.processInfo.environment["PILOTWATCH_CONFIG"] ?? "config/pilotwatch.yaml"
    }
}

/// Broker flags, for the commands that talk to the broker.
struct BrokerOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Broker host (overrides broker.host; env PILOTWATCH_HOST).", valueName: "host"))
    var host: String?

    @Option(name: .long, help: ArgumentHelp("Broker port (overrides broker.port; env PILOTWATCH_PORT).", valueName: "port"))
    var port: Int?

    /// The same rules as `broker.host` and `broker.port` in the configuration file.
    func validate() throws {
        if let host, let rule = SettingRules.hostProblem(host) {
            throw ValidationError("--host \(SettingRules.quoted(host)) \(rule)")
        }
        if let port, let rule = SettingRules.portProblem(port) {
            throw ValidationError("--port \(port) \(rule)")
        }
    }
}

/// Everything a command needs from the configuration, loaded and checked.
struct Context {
    var service: ServiceConfig
    var registry: Registry
    var catalogue: Catalogue

    /// The wire contract as this configuration defines it, snapshots (contract 1.1) included.
    var validator: ContractValidator {
        ContractValidator(registry: registry, catalogue: catalogue, topicRoot: service.topicRoot, snapshots: SnapshotIntake())
    }

    /// Loads the three files, applying environment variables and flags, and fails with every
    /// problem listed when something is wrong.
    static func load(_ options: GlobalOptions, broker: BrokerOptions? = nil) throws -> Context {
        let (loaded, problems) = ConfigLoader.load(configPath: options.configPath)
        guard let loaded, problems.isEmpty else {
            let list = problems.map { "  \($0)" }.joined(separator: "\n")
            throw CLIError("the configuration has \(problems.count) problem\(problems.count == 1 ? "" : "s") (run `pilotwatch config check` after fixing):\n\(list)")
        }
        var ctx = loaded
        let env = try EnvironmentOverrides(ProcessInfo.processInfo.environment)
        if let v = env.databasePath { ctx.service.databasePath = v }
        if let v = env.host { ctx.service.broker.host = v }
        if let v = env.port { ctx.service.broker.port = v }
        if let v = env.clientID { ctx.service.broker.clientID = v }
        if let v = env.topicRoot { ctx.service.topicRoot = v }
        if let db = options.db { ctx.service.databasePath = db }
        if let broker {
            if let h = broker.host { ctx.service.broker.host = h }
            if let p = broker.port { ctx.service.broker.port = p }
        }
        return ctx
    }
}

/// The settings the environment overrides, each checked by the rule that checks it in the
/// configuration file. An empty variable counts as unset.
///
/// ```
/// PILOTWATCH_TOPIC_ROOT="pilots/#" must be one or more levels of a-z 0-9 . _ - separated by /, without + or #; correct it or unset it
/// ```
struct EnvironmentOverrides {
    var databasePath: String?
    var host: String?
    var port: Int?
    var clientID: String?
    var topicRoot: String?

    /// Reads the variables from `environment`; a usage error lists every value a rule refuses.
    init(_ environment: [String: String]) throws {
        var problems: [String] = []
        func value(_ name: String) -> String? {
            guard let v = environment[name], !v.isEmpty else { return nil }
            return v
        }
        func checked(_ name: String, _ rule: (String) -> String?) -> String? {
            guard let v = value(name) else { return nil }
            guard let problem = rule(v) else { return v }
            problems.append("\(name)=\(SettingRules.quoted(v)) \(problem)")
            return nil
        }
        databasePath = value("PILOTWATCH_DB")
        host = checked("PILOTWATCH_HOST", SettingRules.hostProblem)
        port = checked("PILOTWATCH_PORT", SettingRules.portProblem).flatMap { Int($0) }
        clientID = checked("PILOTWATCH_CLIENT_ID", SettingRules.clientIDProblem)
        topicRoot = checked("PILOTWATCH_TOPIC_ROOT", SettingRules.topicRootProblem)
        switch problems.count {
        case 0: return
        case 1: throw CLIError(problems[0] + "; correct it or unset it", kind: .usage)
        default:
            throw CLIError("\(problems.count) environment variables are wrong; correct or unset them:\n"
                + problems.map { "  " + $0 }.joined(separator: "\n"), kind: .usage)
        }
    }
}

/// Reads the configuration files from disk and hands their text to `ConfigParser`.
enum ConfigLoader {
    static func read(_ path: String) -> Result<String, ConfigProblem> {
        guard FileManager.default.fileExists(atPath: path) else {
            return .failure(ConfigProblem(file: path, line: nil, message: "no such file; pass --config FILE or create it (see config/ in the source tree)"))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(ConfigProblem(file: path, line: nil, message: "cannot be read; check its permissions"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(ConfigProblem(file: path, line: nil, message: "is not UTF-8 text"))
        }
        return .success(text)
    }

    /// Loads and cross-checks the service configuration, the catalogue and the registry.
    static func load(configPath: String) -> (Context?, [ConfigProblem]) {
        var problems: [ConfigProblem] = []
        let service: ServiceConfig?
        switch read(configPath) {
        case .failure(let p): return (nil, [p])
        case .success(let text):
            let (s, ps) = ConfigParser.service(yaml: text, file: configPath)
            service = s; problems += ps
        }
        guard let service else { return (nil, problems) }
        var catalogue: Catalogue?
        switch read(service.cataloguePath) {
        case .failure(let p): problems.append(p)
        case .success(let text):
            let (c, ps) = ConfigParser.catalogue(yaml: text, file: service.cataloguePath)
            catalogue = c; problems += ps
        }
        var registry: Registry?
        switch read(service.registryPath) {
        case .failure(let p): problems.append(p)
        case .success(let text):
            let (r, ps) = ConfigParser.registry(yaml: text, file: service.registryPath, catalogue: catalogue)
            registry = r; problems += ps
        }
        if let registry, let federation = service.federation {
            problems += federation.problems(against: registry, file: configPath)
        }
        guard let registry, let catalogue, problems.isEmpty else { return (nil, problems) }
        return (Context(service: service, registry: registry, catalogue: catalogue), [])
    }
}

/// Refuses `value` of `flag` unless it is an id of the contract (a pilot, device or site id):
/// `--pilot Bad is not a pilot id (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)`.
func requireCode(_ value: String, flag: String, naming what: String) throws {
    guard isValidCode(value) else {
        throw ValidationError("\(flag) \(value) is not a \(what) (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)")
    }
}
