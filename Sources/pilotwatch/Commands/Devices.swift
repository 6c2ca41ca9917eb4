import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// One device's broker account.
struct DeviceAccount {
    var pilot: String
    var device: String
    var password: String

    /// The broker username: `{pilot_id}/{device_id}`, which the ACL's `%u` patterns expand into
    /// the device's own topic levels.
    var username: String { "\(pilot)/\(device)" }

    static let passwordAlphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")

    /// 24 characters from a 57-symbol alphabet without look-alikes (about 140 bits), drawn from
    /// the system's cryptographic generator (getrandom on Linux).
    static func randomPassword(length: Int = 24) -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in passwordAlphabet[Int.random(in: 0..<passwordAlphabet.count, using: &rng)] })
    }

    static func render(_ accounts: [DeviceAccount], rotated: Set<String>, topicRoot: String, format: OutputFormat) -> String {
        switch format {
        case .json:
            var w = JSONWriter()
            w.object { o in
                o.field("pilot", accounts.first?.pilot)
                o.arrayField("devices") { a in
                    for d in accounts {
                        a.object { e in
                            e.field("device", d.device)
                            e.field("username", d.username)
                            e.field("password", d.password)
                            e.field("topics", strings: ["\(topicRoot)/\(d.username)/obs", "\(topicRoot)/\(d.username)/status"])
                            e.field("rotated", rotated.contains(d.username))
                        }
                    }
                }
            }
            return w.text
        case .csv:
            var lines = [CSV.line(["pilot", "device", "username", "password"])]
            for d in accounts { lines.append(CSV.line([d.pilot, d.device, d.username, d.password])) }
            return lines.joined(separator: "\n")
        case .table:
            var t = TextTable(["device", "username", "password", "publishes to"])
            for d in accounts {
                t.row([d.device, d.username, d.password, "\(topicRoot)/\(d.username)/obs|status"])
            }
            return t.render()
        }
    }
}

/// Device ids from `--count` or from a CSV file.
enum DeviceIDs {
    /// `dev-001`, `dev-002`, ...: zero-padded to three digits, or more when the numbers need it.
    static func numbered(prefix: String, start: Int, count: Int) -> [String] {
        let last = start + count - 1
        let width = max(3, String(last).count)
        return (start...last).map { n in
            let digits = String(n)
            return prefix + "-" + String(repeating: "0", count: width - digits.count) + digits
        }
    }

    /// One more than the highest `{prefix}-N` already provisioned for `pilot`.
    static func nextNumber(prefix: String, pilot: String, existing: Set<String>) -> Int {
        let head = "\(pilot)/\(prefix)-"
        let numbers = existing.compactMap { name -> Int? in
            guard name.hasPrefix(head) else { return nil }
            return Int(name.dropFirst(head.count))
        }
        return (numbers.max() ?? 0) + 1
    }

    /// Reads device ids: one per line, or the column headed `device_id` (or `device`).
    /// Blank lines and lines starting with `#` are skipped; every id must be a contract id.
    static func read(csv path: String, limit: Int) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read --from-csv \(path); check the path and its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError("--from-csv \(path) is not UTF-8 text")
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated().map { (number: $0.offset + 1, cells: cells(String($0.element))) }
            .filter { !$0.cells.allSatisfy(\.isEmpty) && !($0.cells.first?.hasPrefix("#") ?? false) }
        // A header names the column: device_id, or device beside other columns (a lone
        // "device" on the first line is taken as a device id).
        var column = 0
        if let header = lines.first?.cells.map({ $0.lowercased() }),
           let i = header.firstIndex(of: "device_id") ?? (header.count > 1 ? header.firstIndex(of: "device") : nil) {
            column = i
            lines.removeFirst()
        }
        var ids: [String] = []
        var seen: [String: Int] = [:]
        var problems: [String] = []
        for line in lines {
            let id = line.cells.count > column ? line.cells[column] : ""
            if !isValidCode(id) {
                problems.append("\(path):\(line.number): \"\(id)\" is not a device id (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)")
            } else if let first = seen[id] {
                problems.append("\(path):\(line.number): device \(id) is listed twice (first on line \(first))")
            } else {
                seen[id] = line.number
                ids.append(id)
            }
        }
        if !problems.isEmpty {
            let shown = problems.prefix(20).joined(separator: "\n  ")
            throw CLIError("--from-csv \(path) has \(problems.count) problem\(problems.count == 1 ? "" : "s"); nothing was changed:\n  \(shown)\(problems.count > 20 ? "\n  ..." : "")")
        }
        if ids.isEmpty { throw CLIError("--from-csv \(path) lists no device ids") }
        if ids.count > limit { throw CLIError("--from-csv \(path) lists \(ids.count) devices; provision at most \(limit) at a time") }
        return ids
    }

    /// The cells of one CSV line (RFC 4180 quoting), trimmed.
    static func cells(_ line: String) -> [String] {
        var out: [String] = []
        var cell = ""
        var quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    if let n = chars.next() {
                        if n == "\"" { cell.append("\"") } else { quoted = false; if n == "," { out.append(cell); cell = "" } else { cell.append(n) } }
                    } else {
                        quoted = false
                    }
                } else {
                    cell.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                out.append(cell); cell = ""
            } else {
                cell.append(c)
            }
        }
        out.append(cell)
        return out.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// mosquitto's password file, changed through a private copy that replaces it atomically.
struct MosquittoPasswordFile {
    let path: String

    /// The usernames in the file (empty when it does not exist yet).
    func usernames() throws -> Set<String> {
        guard FileManager.default.fileExists(atPath: path) else {
            let folder = ConfigPath.folder(of: path)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw CLIError("the folder of --password-file \(path) does not exist; create it or pass another --password-file")
            }
            return []
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the password file \(path); run as root or as its owner")
        }
        var names = Set<String>()
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            if line.hasPrefix("#") { continue }
            let name = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if !name.isEmpty { names.insert(String(name)) }
        }
        return names
    }

    /// Finds `mosquitto_passwd`: the given path, else on PATH or in the usual folders.
    static func findTool(_ given: String?) throws -> String {
        if let given {
            guard FileManager.default.isExecutableFile(atPath: given) else {
                throw CLIError("--mosquitto-passwd \(given) is not an executable file")
            }
            return given
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
        for folder in folders where !folder.isEmpty {
            let candidate = folder + "/mosquitto_passwd"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CLIError("mosquitto_passwd was not found on PATH; install the mosquitto package (apt-get install mosquitto) or pass --mosquitto-passwd PATH")
    }

    /// Adds (or re-hashes) every account in a private copy, then puts the copy in place.
    ///
    /// The passwords reach `mosquitto_passwd` on its standard input, never on a command line
    /// (which other users could read in the process list) nor in a file.
    func add(_ accounts: [(username: String, password: String)], tool: String) throws {
        let staged = try StagedFile(replacing: path, newMode: 0o640, newGroup: "mosquitto")
        for account in accounts {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool)
            p.arguments = [staged.path, account.username]
            let input = Pipe(), errors = Pipe()
            p.standardInput = input
            p.standardOutput = FileHandle.nullDevice
            p.standardError = errors
            do {
                try p.run()
            } catch {
                throw CLIError("cannot run \(tool): \(error); nothing was changed")
            }
            // mosquitto_passwd asks twice ("Password:", "Reenter password:").
            input.fileHandleForWriting.write(Data("\(account.password)\n\(account.password)\n".utf8))
            try? input.fileHandleForWriting.close()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw CLIError("mosquitto_passwd failed for \(account.username) (exit \(p.terminationStatus)): \(message.trimmingCharacters(in: .whitespacesAndNewlines)); nothing was changed")
            }
        }
        // The copy must now hold every account, hashed.
        let written = try MosquittoPasswordFile(path: staged.path).hashedUsernames()
        let missing = accounts.map(\.username).filter { !written.contains($0) }
        guard missing.isEmpty else {
            throw CLIError("mosquitto_passwd did not write \(missing.joined(separator: ", ")) to the password file; nothing was changed")
        }
        try staged.commit()
    }

    /// Usernames whose entry is a mosquitto hash (`$6$` or `$7$`).
    func hashedUsernames() throws -> Set<String> {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var names = Set<String>()
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[1].hasPrefix("$7$") || parts[1].hasPrefix("$6$") { names.insert(String(parts[0])) }
        }
        return names
    }
}

/// The ACL lines that confine each device account to its own topics.
struct DeviceACL {
    enum Change {
        case create(String)
        case append(String)
    }

    let path: String
    let topicRoot: String
    let serviceAccount: String
    /// The pattern lines the accounts need (devices' by default).
    let patterns: [String]
    /// Topics the service account must read beyond observations and statuses.
    let serviceReads: [String]

    init(path: String, topicRoot: String, serviceAccount: String, patterns: [String]? = nil, serviceReads: [String] = []) {
        self.path = path; self.topicRoot = topicRoot; self.serviceAccount = serviceAccount
        self.patterns = patterns ?? ["pattern write \(topicRoot)/%u/obs", "pattern write \(topicRoot)/%u/status"]
        self.serviceReads = serviceReads
    }

    /// The service publishes its alerts and the sites' statuses, retained, under `{root}/_cluster/`.
    var clusterLine: String { "topic readwrite \(topicRoot)/_cluster/#" }

    /// A site account (named `{site_id}`) publishes snapshots under its own site id and reads its status.
    static func sitePatterns(root: String) -> [String] {
        ["pattern write \(root)/+/%u/agg", "pattern read \(root)/_cluster/sites/%u/status"]
    }

    /// What must change for the ACL to grant the patterns (and the service's reads), or nil when it already does.
    func plannedChange() throws -> Change? {
        guard FileManager.default.fileExists(atPath: path) else {
            let folder = ConfigPath.folder(of: path)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw CLIError("the folder of the ACL file \(path) does not exist; create it or pass --acl-file")
            }
            let reads = (["\(topicRoot)/+/+/obs", "\(topicRoot)/+/+/status"] + serviceReads).map { "topic read \($0)" }
            return .create("""
            # mosquitto ACL written by `pilotwatch devices provision` (see deploy/mosquitto/acl).
            # The pilotwatch service reads every pilot's observations and statuses, and publishes its
            # alerts and the sites' statuses (retained) under _cluster/.
            user \(serviceAccount)
            \(reads.joined(separator: "\n"))
            \(clusterLine)

            # Device accounts are named {pilot_id}/{device_id}, site accounts {site_id}: each may publish only to its own topics.
            \(patterns.joined(separator: "\n"))

            """)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the ACL file \(path); run as root or as its owner")
        }
        let text = String(decoding: data, as: UTF8.self)
        var present = Set<String>()
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, words[0] == "pattern" || words[0] == "topic" else { continue }
            let kind = words[0], topic = words[2]
            if words[1] == "readwrite" || words[1] == "write" { present.insert("\(kind) write \(topic)") }
            if words[1] == "readwrite" || words[1] == "read" { present.insert("\(kind) read \(topic)") }
        }
        let missing = patterns.filter { !present.contains($0) }
        var missingReads = serviceReads.map { "topic read \($0)" }.filter { !present.contains($0) }
        if !present.contains("topic write \(topicRoot)/_cluster/#") { missingReads.append(clusterLine) }
        if missing.isEmpty && missingReads.isEmpty { return nil }
        var appended = text
        if !appended.isEmpty && !appended.hasSuffix("\n") { appended += "\n" }
        if !missingReads.isEmpty {
            appended += "\n# Added by `pilotwatch devices provision`: what the pilotwatch service reads (and publishes under _cluster/).\n"
            appended += "user \(serviceAccount)\n" + missingReads.joined(separator: "\n") + "\n"
        }
        if !missing.isEmpty {
            appended += "\n# Added by `pilotwatch devices provision`: device accounts are named {pilot_id}/{device_id},\n"
            appended += "# site accounts {site_id}; each may publish only to its own topics.\n"
            appended += missing.joined(separator: "\n") + "\n"
        }
        return .append(appended)
    }

    func write(_ change: Change) throws {
        let text: String
        switch change {
        case .create(let t), .append(let t): text = t
        }
        let staged = try StagedFile(replacing: path, newMode: 0o644, newGroup: nil)
        try staged.write(Data(text.utf8))
        try staged.commit()
    }
}

/// A private copy of a file beside it (same folder, so the final rename is atomic), removed
/// unless committed. The result keeps the original's owner and mode; a new file gets `newMode`
/// (and the group `newGroup` when running as root and that group exists, so that mosquitto,
/// which reads its files after dropping root, can read it).
final class StagedFile {
    let path: String
    private let target: String
    private let mode: mode_t
    private let owner: (uid: uid_t, gid: gid_t)?
    private var committed = false

    init(replacing target: String, newMode: mode_t, newGroup: String?) throws {
        self.target = target
        let folder = ConfigPath.folder(of: target)
        let name = target.split(separator: "/").last.map(String.init) ?? target
        var template = Array("\(folder)/.\(name).pilotwatch-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else {
            throw CLIError("cannot create a file in \(folder) (\(String(cString: strerror(errno)))); run as root or as the folder's owner")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var info = stat()
        if stat(target, &info) == 0 {
            mode = info.st_mode & 0o7777
            owner = (info.st_uid, info.st_gid)
            guard let data = FileManager.default.contents(atPath: target) else {
                unlink(path)
                throw CLIError("cannot read \(target); run as root or as its owner")
            }
            do {
                try handle.write(contentsOf: data)
            } catch {
                unlink(path)
                throw CLIError("cannot copy \(target) to \(path): \(error)")
            }
        } else {
            mode = newMode
            if geteuid() == 0, let newGroup, let group = getgrnam(newGroup) {
                owner = (0, group.pointee.gr_gid)
            } else {
                owner = nil
            }
        }
        try? handle.close()
        guard chmod(path, mode) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw CLIError("cannot set the mode of \(path): \(reason)")
        }
    }

    /// Replaces the copy's content.
    func write(_ data: Data) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CLIError("cannot write \(path)")
        }
        defer { try? handle.close() }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: data)
    }

    /// Gives the copy the final owner and mode, flushes it and renames it over the target.
    func commit() throws {
        if let owner, owner.uid != geteuid() || owner.gid != getegid() {
            guard chown(path, owner.uid, owner.gid) == 0 else {
                throw CLIError("cannot give the new \(target) its owner \(owner.uid):\(owner.gid) (\(String(cString: strerror(errno)))); run as root or as its owner; nothing was changed")
            }
        }
        guard chmod(path, mode) == 0 else {
            throw CLIError("cannot set the mode of \(path): \(String(cString: strerror(errno))); nothing was changed")
        }
        let fd = open(path, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        guard rename(path, target) == 0 else {
            throw CLIError("cannot replace \(target): \(String(cString: strerror(errno))); nothing was changed")
        }
        committed = true
    }

    deinit {
        if !committed { unlink(path) }
    }
}
