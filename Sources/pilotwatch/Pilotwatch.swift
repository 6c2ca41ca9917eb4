import ArgumentParser

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
            Export.self, Simulate.self, Devices.self, Db.self, Loadgen.self,
        ]
    )
}

enum PilotwatchVersion {
    static let current = "0.1.0"
}
