import Foundation
import ArgumentParser
import PilotwatchCore

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check the service configuration, the pilot registry and the indicator catalogue.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Report every problem in the configuration files, with file, line and what to do.",
            discussion: """
            Example:
              pilotwatch config check --config config/pilotwatch.yaml
            Exits 0 when the configuration is valid, 1 otherwise.
            """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let (loaded, problems) = ConfigLoader.load(configPath: global.configPath)
            if loaded != nil {
                // As the other commands see it: with the PILOTWATCH_* variables applied, and refused
                // (exit 64) by the same rules as the file when one is wrong.
                let ctx = try Context.load(global)
                let overrides = ["PILOTWATCH_DB", "PILOTWATCH_HOST", "PILOTWATCH_PORT", "PILOTWATCH_CLIENT_ID", "PILOTWATCH_TOPIC_ROOT"]
                    .filter { !(ProcessInfo.processInfo.environment[$0] ?? "").isEmpty }
                print("configuration OK: \(global.configPath)")
                if !overrides.isEmpty { print("  overridden by the environment: \(overrides.joined(separator: ", "))") }
                print("  broker     \(ctx.service.broker.host):\(ctx.service.broker.port) as \(ctx.service.broker.clientID)\(ctx.service.broker.tls == nil ? "" : " over TLS")")
                print("  topics     \(ctx.service.topicRoot)/+/+/obs, \(ctx.service.topicRoot)/+/+/status")
                print("  database   \(global.db ?? ctx.service.databasePath)")
                print("  registry   \(ctx.registry.pilots.count) pilots in \(ctx.service.registryPath)")
                print("  catalogue  \(ctx.catalogue.indicators.count) indicators in \(ctx.service.cataloguePath)")
                warnRawRowsLeft(ctx)
                return
            }
            for p in problems { printError(p.description) }
            printError("\(problems.count) problem\(problems.count == 1 ? "" : "s") found")
            throw ExitCode.failure
        }

        /// A pilot the registry marks `reporting: aggregates` whose raw rows the store still
        /// holds has not finished its switch: a warning (on stderr) names it, with the count and
        /// the command that finishes it. The configuration is valid all the same (exit 0).
        private func warnRawRowsLeft(_ ctx: Context) {
            let database = ctx.service.databasePath
            do {
                for (pilot, rows) in try SwitchToAggregatesWork.leftovers(ctx, database: database) {
                    printError("warning: pilot \(pilot) reports aggregates (registry), but \(database) still holds \(rows) raw rows of it (observations, subjects, messages, devices, refusals); remove them and revoke its device accounts: pilotwatch pilots switch-to-aggregates --pilot \(pilot)")
                }
            } catch {
                printError("note: could not look for raw rows of aggregate pilots in \(database): \(error)")
            }
        }
    }
}
