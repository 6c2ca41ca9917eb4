import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Where the broker's accounts are and how it learns of a change: the options `devices revoke`
/// and `pilots switch-to-aggregates` share.
struct DeviceAccountFiles: ParsableArguments {
    @Option(help: ArgumentHelp("mosquitto password file to remove the accounts from.", valueName: "file"))
    var passwordFile: String = "/etc/mosquitto/passwd"

    @Option(help: ArgumentHelp("mosquitto ACL file to remove their user blocks from (default: acl beside the password file).", valueName: "file"))
    var aclFile: String?

    @Option(help: ArgumentHelp("Send SIGHUP to this process (mosquitto) once the files are written, so that it reloads them.", valueName: "pid"))
    var brokerPid: Int32?

    func validate() throws {
        if let brokerPid, brokerPid <= 1 { throw ValidationError("--broker-pid \(brokerPid) is not the broker's process id") }
    }
}

/// Which device accounts to revoke, from which files; `dryRun` only finds them.
struct DeviceRevocationRequest {
    var pilot: String
    /// Empty: every account of the pilot.
    var devices: [String] = []
    var files: DeviceAccountFiles
    var dryRun: Bool

    var passwordFile: String { files.passwordFile }
    var brokerPid: Int32? { files.brokerPid }
    var aclPath: String { files.aclFile ?? ConfigPath.resolve("acl", against: ConfigPath.folder(of: passwordFile)) }

    /// Removes the accounts from both files (or, with --dry-run, finds them), then sends SIGHUP
    /// when asked. An account named by --device that is not in the password file is refused
    /// before anything changes.
    func revoke() throws -> DeviceRevocation {
        let file = MosquittoPasswordFile(path: passwordFile)
        guard FileManager.default.fileExists(atPath: passwordFile) else {
            throw CLIError("there is no password file at \(passwordFile); pass the one mosquitto uses with --password-file")
        }
        let existing = try file.usernames()
        let wanted: Set<String>
        if devices.isEmpty {
            wanted = existing.filter { $0.hasPrefix(pilot + "/") }
        } else {
            let named = Set(devices.map { "\(pilot)/\($0)" })
            let missing = named.subtracting(existing).sorted()
            guard missing.isEmpty else {
                throw CLIError("\(passwordFile) has no account \(missing.joined(separator: ", ")); nothing was changed (`devices revoke --pilot \(pilot) --dry-run` lists the pilot's accounts)",
                               kind: .usage)
            }
            wanted = named
        }
        var result = DeviceRevocation(pilot: pilot, passwordFile: passwordFile, aclFile: aclPath, dryRun: dryRun)
        result.accounts = wanted.sorted()
        let aclText = try DeviceACLBlocks.read(aclPath)
        let aclEdit = aclText.map { DeviceACLBlocks.removing(users: wanted, from: $0) }
        result.aclLinesRemoved = aclEdit?.removed ?? 0
        guard !dryRun, !wanted.isEmpty else { return result }
        try file.remove(wanted)
        if let aclEdit, aclEdit.removed > 0 {
            do {
                let staged = try StagedFile(replacing: aclPath, newMode: 0o644, newGroup: nil)
                try staged.write(Data(aclEdit.text.utf8))
                try staged.commit()
            } catch {
                throw CLIError("the accounts are gone from \(passwordFile), but \(aclPath) could not be rewritten (\(error)); remove their user blocks by hand: \(result.accounts.joined(separator: ", "))")
            }
        }
        if let brokerPid {
            guard kill(brokerPid, SIGHUP) == 0 else {
                throw CLIError("the accounts are gone from the files, but SIGHUP to process \(brokerPid) failed (\(String(cString: strerror(errno)))); reload the broker yourself: systemctl reload mosquitto")
            }
            result.brokerSignalled = brokerPid
        }
        return result
    }

    /// Tells the operator, on stderr, to reload the broker when this command did not.
    func adviseReload(_ result: DeviceRevocation) {
        guard !result.dryRun, !result.accounts.isEmpty else { return }
        if let pid = result.brokerSignalled {
            printError("sent SIGHUP to process \(pid): mosquitto reloads its files and drops the clients of the removed accounts")
        } else {
            printError("Reload the broker so that it stops accepting them: systemctl reload mosquitto (or kill -HUP its pid; --broker-pid does it).")
        }
    }
}

/// What `devices revoke` removed (or would remove).
struct DeviceRevocation {
    var pilot: String
    var passwordFile: String
    var aclFile: String
    var dryRun: Bool
    var accounts: [String] = []
    var aclLinesRemoved = 0
    var brokerSignalled: Int32?

    func render(format: OutputFormat) -> String {
        if format == .json {
            var w = JSONWriter()
            w.object { o in fields(&o) }
            return w.text
        }
        let verb = dryRun ? "would remove" : "removed"
        if accounts.isEmpty { return "\(passwordFile): no account of \(pilot); nothing to remove" }
        var lines = ["\(passwordFile): \(verb) \(accounts.count) account\(accounts.count == 1 ? "" : "s") of \(pilot)"]
        lines += accounts.map { "  " + $0 }
        lines.append("\(aclFile): \(verb) \(aclLinesRemoved) line\(aclLinesRemoved == 1 ? "" : "s") (user blocks of these accounts; the pattern lines stay)")
        return lines.joined(separator: "\n")
    }

    func fields(_ o: inout JSONWriter) {
        o.field("pilot", pilot)
        o.field("dry_run", dryRun)
        o.field("password_file", passwordFile)
        o.field("acl_file", aclFile)
        o.field("accounts", strings: accounts)
        o.field("acl_lines_removed", aclLinesRemoved)
        o.field("broker_signalled", brokerSignalled.map { Int($0) })
    }
}

/// The `user` blocks of an ACL file: a `user NAME` line and the `topic` lines after it, up to
/// the next `user` line, grant NAME its topics (mosquitto.conf(5), acl_file).
enum DeviceACLBlocks {
    /// The file's text, or nil when there is no such file.
    static func read(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the ACL file \(path); run as root or as its owner")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `text` without the `user` lines of `users` and the `topic` lines of their blocks;
    /// comments, blank lines and `pattern` lines stay where they are.
    static func removing(users: Set<String>, from text: String) -> (text: String, removed: Int) {
        var kept: [Substring] = []
        var removed = 0
        var inBlock = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("user ") || trimmed.hasPrefix("user\t") {
                let name = trimmed.dropFirst(5).trimmingCharacters(in: .whitespaces)
                inBlock = users.contains(name)
            }
            let isTopic = trimmed.hasPrefix("topic ") || trimmed.hasPrefix("topic\t")
            if inBlock && (isTopic || trimmed.hasPrefix("user")) {
                removed += 1
                continue
            }
            kept.append(line)
        }
        return (kept.joined(separator: "\n"), removed)
    }
}

extension MosquittoPasswordFile {
    /// Rewrites the file without the lines of `usernames` (a private copy put in place).
    func remove(_ usernames: Set<String>) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the password file \(path); run as root or as its owner")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let kept = lines.filter { line in
            let name = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return line.hasPrefix("#") || !usernames.contains(name.trimmingCharacters(in: CharacterSet(charactersIn: "\r")))
        }
        let staged = try StagedFile(replacing: path, newMode: 0o640, newGroup: "mosquitto")
        try staged.write(Data(kept.joined(separator: "\n").utf8))
        try staged.commit()
        let left = try usernames.intersection(MosquittoPasswordFile(path: path).usernames())
        guard left.isEmpty else {
            throw CLIError("\(path) still holds \(left.sorted().joined(separator: ", ")) after the rewrite; remove them by hand (mosquitto_passwd -D \(path) NAME)")
        }
    }
}
