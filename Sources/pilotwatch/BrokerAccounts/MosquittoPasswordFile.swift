import Foundation
import PilotwatchCore

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
