import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports

extension Devices {
    /// `devices revoke`: the reverse of `devices provision`, for a pilot that leaves the broker
    /// (switched to aggregates, ended) or a device lost.
    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Remove broker accounts of a pilot's devices from mosquitto's password file and ACL.",
            discussion: """
            Removes the accounts {pilot_id}/{device_id} that `devices provision` made: every account \
            of the pilot, or only those of the --device options. Their lines go from the password \
            file, and any `user {pilot_id}/{device_id}` block (with its topic lines) from the ACL \
            file; the ACL's pattern lines stay (they grant each remaining account its own topics, \
            and nothing to an account that no longer exists). Both files are replaced atomically, \
            keeping their owner and mode. What was removed is printed on stdout.

            mosquitto reads both files at start and on reload: until it reloads, it still accepts \
            the removed accounts. Reload it (systemctl reload mosquitto), or pass --broker-pid and \
            this command sends it SIGHUP; on reload mosquitto checks the connected clients again \
            and drops those whose account is gone.

            Examples:
              pilotwatch devices revoke --pilot resp-copd-idf-01 --dry-run
              pilotwatch devices revoke --pilot resp-copd-idf-01
              pilotwatch devices revoke --pilot resp-copd-idf-01 --device dev-007 --device dev-012 --format json
              pilotwatch devices revoke --pilot resp-copd-idf-01 --broker-pid "$(cat /run/mosquitto/mosquitto.pid)"
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The pilot whose device accounts go.", valueName: "id"))
        var pilot: String

        @Option(name: .customLong("device"),
                help: ArgumentHelp("Only this device's account (repeat for several; default: every account of the pilot).", valueName: "id"))
        var devices: [String] = []

        @OptionGroup var files: DeviceAccountFiles

        @Flag(help: "Say which accounts would go, change nothing.")
        var dryRun = false

        @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
        var format: OutputFormat = .table

        func validate() throws {
            try requireCode(pilot, flag: "--pilot", naming: "pilot id")
            for device in devices { try requireCode(device, flag: "--device", naming: "device id") }
            if format == .csv { throw ValidationError("--format csv: revoke prints table or json") }
        }

        func run() throws {
            let request = DeviceRevocationRequest(pilot: pilot, devices: devices, files: files, dryRun: dryRun)
            let result = try request.revoke()
            print(result.render(format: format))
            request.adviseReload(result)
        }
    }
}
