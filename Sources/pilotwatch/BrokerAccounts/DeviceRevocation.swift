import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
