import Foundation
import PilotwatchCore

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
