import ArgumentParser
import Foundation
import PilotwatchStore

@main
struct Pilotwatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilotwatch",
        abstract: "Follow the cluster's digital-health pilots: ingest their MQTT data, check progress, export outcomes.",
        discussion: """
        pilotwatch subscribes to the pilots' MQTT topics, validates every message against the wire \
        contract (v1), stores what is valid in SQLite and quarantines what is not, with a reason.

        Start with `pilotwatch config check`, then `pilotwatch serve`; see `pilotwatch help <command>`.
        """,
        version: PilotwatchVersion.current,
        subcommands: [
            ConfigCommand.self, Serve.self, Ingest.self, Stats.self, Rejects.self, Status.self, PilotView.self, Indicators.self,
            Alerts.self, Snapshots.self, Federate.self, Pilots.self, Subjects.self, Export.self, Simulate.self, Devices.self, Db.self, Audit.self,
            Loadgen.self,
        ]
    )

    /// Parses the arguments and runs the command they name. A `CLIError` prints
    /// `Error: <description>` on stderr and exits with its kind's status (usage 64, failure 1,
    /// busy 75), and so does a busy `StoreError` (75); anything else goes through
    /// swift-argument-parser's `exit(withError:)`, which exits 0 for help and version, 64 for
    /// its usage errors and 1 otherwise.
    static func main() async {
        Store.configureProcess()
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            printError("Error: \(error.description)")
            Foundation.exit(error.kind.exitCode)
        } catch let error as StoreError where error.isBusy {
            // The words swift-argument-parser would print, with the status of a busy store.
            printError("Error: \(error.description)")
            Foundation.exit(CLIError.Kind.busy.exitCode)
        } catch {
            exit(withError: error)
        }
    }
}

enum PilotwatchVersion {
    static let current = "0.1.0"
}
