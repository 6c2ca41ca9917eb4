import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Manage the broker accounts of pilot devices (and of site instances).",
        subcommands: [Provision.self, ProvisionSite.self, Revoke.self]
    )

    struct Provision: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "provision",
            abstract: "Create broker accounts for a pilot's devices and print their passwords once.",
            discussion: """
            Each device gets the account {pilot_id}/{device_id} with a random password, hashed into \
            mosquitto's password file (with mosquitto_passwd, so the format is the broker's own). \
            The ACL's pattern lines (pattern write {root}/%u/obs and .../status) then let a device \
            publish only under its own pilot and device id; they are added to the ACL file if it \
            lacks them, and the file is created (with the pilotwatch account's read grants) if it \
            does not exist. Both files are replaced atomically, keeping their owner and mode; \
            nothing changes unless every account was made.

            The passwords are printed once, on stdout, and stored nowhere else: hand each to its \
            device now. An account that already exists is refused unless --rotate (which gives it \
            a new password). Reload the broker afterwards (systemctl reload mosquitto).

            Examples:
              pilotwatch devices provision --pilot resp-copd-idf-01 --count 20
              pilotwatch devices provision --pilot resp-copd-idf-01 --count 5 --start 21 --format json
              pilotwatch devices provision --pilot diab-cgm-idf-02 --from-csv devices.csv --password-file ./passwd
              pilotwatch devices provision --pilot resp-copd-idf-01 --from-csv lost.csv --rotate
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The pilot the devices belong to (an id from the registry).", valueName: "id"))
        var pilot: String

        @Option(help: ArgumentHelp("Make this many devices: {prefix}-001, {prefix}-002, ...", valueName: "n"))
        var count: Int?

        @Option(help: ArgumentHelp("Number of the first device made by --count.", valueName: "n"))
        var start: Int = 1

        @Option(help: ArgumentHelp("Device id prefix for --count.", valueName: "prefix"))
        var prefix: String = "dev"

        @Option(help: ArgumentHelp("Read the device ids from a CSV file: one id per line, or the column named device_id.", valueName: "file"))
        var fromCsv: String?

        @Option(help: ArgumentHelp("mosquitto password file to add the accounts to (created if missing).", valueName: "file"))
        var passwordFile: String = "/etc/mosquitto/passwd"

        @Option(help: ArgumentHelp("mosquitto ACL file that must grant the device pattern (default: acl beside the password file).", valueName: "file"))
        var aclFile: String?

        @Flag(help: "Give existing accounts a new password instead of refusing them.")
        var rotate = false

        @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
        var format: OutputFormat = .table

        @Option(help: ArgumentHelp("The mosquitto_passwd program (default: found on PATH).", valueName: "path"))
        var mosquittoPasswd: String?

        static let maxDevices = 10_000

        func validate() throws {
            try requireCode(pilot, flag: "--pilot", naming: "pilot id")
            switch (count, fromCsv) {
            case (nil, nil): throw ValidationError("say which devices to make: --count N or --from-csv FILE")
            case (.some, .some): throw ValidationError("give --count or --from-csv, not both")
            default: break
            }
            if let count {
                guard (1...Provision.maxDevices).contains(count) else {
                    throw ValidationError("--count \(count) must be 1...\(Provision.maxDevices)")
                }
                guard start >= 1, start <= 1_000_000 else { throw ValidationError("--start \(start) must be 1...1000000") }
                let last = DeviceIDs.numbered(prefix: prefix, start: start, count: count).last ?? prefix
                guard isValidCode(prefix), isValidCode(last) else {
                    throw ValidationError("--prefix \(prefix) does not make valid device ids (\(last)); use a-z 0-9 . _ -, starting with a letter or digit, at most 55 characters")
                }
            }
        }

        func run() throws {
            let ctx = try Context.load(global)
            guard ctx.registry.pilot(pilot) != nil else {
                let valid = ctx.registry.pilots.map(\.id).sorted()
                throw CLIError("pilot \(pilot) is not in the registry \(ctx.service.registryPath); valid pilots: \(valid.isEmpty ? "(none)" : valid.joined(separator: ", "))", kind: .usage)
            }
            let devices: [String]
            if let count {
                devices = DeviceIDs.numbered(prefix: prefix, start: start, count: count)
            } else if let fromCsv {
                devices = try DeviceIDs.read(csv: fromCsv, limit: Provision.maxDevices)
            } else {
                devices = []
            }
            let tool = try MosquittoPasswordFile.findTool(mosquittoPasswd)
            let passwords = MosquittoPasswordFile(path: passwordFile)
            let acl = DeviceACL(path: aclFile ?? ConfigPath.resolve("acl", against: ConfigPath.folder(of: passwordFile)),
                                topicRoot: ctx.service.topicRoot,
                                serviceAccount: ctx.service.broker.username ?? "pilotwatch")

            // Everything that can be refused is refused before a file changes.
            let existing = try passwords.usernames()
            let accounts = devices.map { DeviceAccount(pilot: pilot, device: $0, password: DeviceAccount.randomPassword()) }
            let taken = accounts.filter { existing.contains($0.username) }
            if !taken.isEmpty && !rotate {
                let names = taken.prefix(10).map(\.username).joined(separator: ", ") + (taken.count > 10 ? ", ..." : "")
                var hint = "pass --rotate to give them new passwords"
                if count != nil {
                    let next = DeviceIDs.nextNumber(prefix: prefix, pilot: pilot, existing: existing)
                    hint += ", or --start \(next) to add new devices after the existing ones"
                }
                throw CLIError("\(taken.count) of these accounts already exist in \(passwordFile): \(names); \(hint)")
            }
            let aclChange = try acl.plannedChange()

            try passwords.add(accounts.map { ($0.username, $0.password) }, tool: tool)
            // The accounts exist now: their passwords are printed before anything else can fail.
            let rotated = Set(taken.map(\.username))
            print(DeviceAccount.render(accounts, rotated: rotated, topicRoot: ctx.service.topicRoot, format: format))
            let made = accounts.count - rotated.count
            printError("\(passwordFile): \(made) account\(made == 1 ? "" : "s") added\(rotated.isEmpty ? "" : ", \(rotated.count) given a new password")")
            if let aclChange {
                do {
                    try acl.write(aclChange)
                } catch {
                    throw CLIError("the accounts above were made, but \(acl.path) could not be updated (\(error)); add these lines to it by hand: \(acl.patterns.joined(separator: "; "))")
                }
            }
            switch aclChange {
            case .some(.create): printError("\(acl.path): created; pilotwatch reads \(acl.topicRoot)/+/+/obs|status, each device writes only its own topics")
            case .some(.append): printError("\(acl.path): added the device pattern lines (\(acl.patterns.joined(separator: "; ")))")
            case nil: printError("\(acl.path): already lets each device publish only to \(acl.topicRoot)/{pilot}/{device}/obs and /status")
            }
            if !existing.contains(acl.serviceAccount) {
                printError("note: \(passwordFile) has no account \(acl.serviceAccount) for pilotwatch itself; add it with: mosquitto_passwd \(passwordFile) \(acl.serviceAccount)")
            }
            printError("These passwords are shown once and kept only as hashes: give each to its device now.")
            printError("Reload the broker to use them: systemctl reload mosquitto (or kill -HUP its pid).")
        }
    }
}
