import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

// The secure deployment, for real: deploy/mosquitto/mosquitto.conf and acl run in a mosquitto on a
// loopback port (port and paths changed, every security setting kept), with certificates from
// make-dev-ca.sh and accounts from `pilotwatch devices provision`; then `pilotwatch db backup|check`.

private let deployFolder = packageRoot.appendingPathComponent("deploy/mosquitto").path
private let respPilot = "resp-copd-idf-01"
private let diabPilot = "diab-cgm-idf-02"

@Suite("Secure deployment and database maintenance", .serialized)
struct DeployTests {
    /// pilotwatch's account subscribes over TLS and stores what a device publishes under its own
    /// topics; a device publishing under another device or another pilot is denied by the broker
    /// and nothing of it is stored; a device reads nothing, not even a retained status.
    @Test func deviceMessagesReachPilotwatchOverTLSAndNothingElseDoes() throws {
        let broker = try DeployedBroker()
        let ws = try Workspace()
        defer { ws.remove() }
        let resp = try broker.provision(ws, ["--pilot", respPilot, "--count", "2"])
        let csv = ws.dir + "/diab-devices.csv"
        try "device_id,notes\ndev-001,first CGM hub\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let diab = try broker.provision(ws, ["--pilot", diabPilot, "--from-csv", csv])
        #expect(resp.keys.sorted() == ["\(respPilot)/dev-001", "\(respPilot)/dev-002"])
        #expect(diab.keys.sorted() == ["\(diabPilot)/dev-001"])
        let service = try broker.addServiceAccount()
        try broker.start()
        defer { broker.stop() }

        try writeServiceConfig(ws, broker: broker, caFile: broker.certs + "/ca.crt", password: service)
        // Debug level: the subscriber logs each granted subscription ("MQTT subscribed") there.
        let serve = try ws.startServe(port: broker.port, extra: ["--log-level", "debug"])
        defer { serve.terminate() }
        try serve.waitUntilSubscribed()

        let dev1 = DeviceLogin(username: "\(respPilot)/dev-001", password: try #require(resp["\(respPilot)/dev-001"]))
        let dev2 = DeviceLogin(username: "\(respPilot)/dev-002", password: try #require(resp["\(respPilot)/dev-002"]))
        let at = isoNow(minutesAgo: 5)

        // Its own topic: accepted by the broker and stored.
        let ok = try broker.publish(as: dev1, topic: "pilots/\(respPilot)/dev-001/obs",
                                    message: obsMessage("own-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)]))
        #expect(ok.status == 0 && !ok.errorOutput.contains("Not authorized"), "\(ok.errorOutput)")
        try ws.waitFor("the device's own message") { $0.accepted == 1 }

        // Another device of the same pilot, and the same device id under another pilot.
        for topic in ["pilots/\(respPilot)/dev-002/obs", "pilots/\(diabPilot)/dev-001/obs"] {
            let denied = try broker.publish(as: dev1, topic: topic,
                                            message: obsMessage("spoof-\(topic.count)", [obs("p-7f3a9c21", "spo2", 95, unit: "%", at: at)]))
            #expect(denied.errorOutput.contains("Not authorized"), "publishing to \(topic): \(denied.errorOutput)")
        }

        // A retained status on its own status topic is allowed.
        let status = "{\"state\":\"online\",\"at\":\"\(at)\",\"battery_pct\":80}"
        let statusResult = try broker.publish(as: dev1, topic: "pilots/\(respPilot)/dev-001/status", message: status, retain: true)
        #expect(statusResult.status == 0 && !statusResult.errorOutput.contains("Not authorized"), "\(statusResult.errorOutput)")

        // A later message from the other device is stored: the denied ones, sent before it, never arrived.
        _ = try broker.publish(as: dev2, topic: "pilots/\(respPilot)/dev-002/obs",
                               message: obsMessage("own-2", [obs("p-8e2b1d07", "spo2", 97, unit: "%", at: at)]))
        try ws.waitFor("the second device's message and the status") { $0.accepted == 2 && $0.statuses == 1 }

        let stats = try ws.run(["stats", "--format", "json"])
        #expect(stats.status == 0, "\(stats.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        let messages = try #require(json["messages"] as? [String: Any])
        #expect(messages["accepted"] as? Int == 2)
        #expect(messages["refused"] as? Int == 0)
        #expect(json["observations"] as? Int == 2)
        let pilots = try #require(json["pilots"] as? [[String: Any]])
        #expect(pilots.compactMap { $0["pilot"] as? String }.filter { ($0 == diabPilot) }.isEmpty)
        let respStats = try #require(pilots.first { $0["pilot"] as? String == respPilot })
        #expect(respStats["observations"] as? Int == 2)
        #expect(respStats["devices"] as? Int == 2)

        // An online backup while serve holds the database open: a consistent copy that db check accepts.
        let online = ws.dir + "/online.sqlite"
        let backup = try ws.run(["db", "backup", online])
        #expect(backup.status == 0, "\(backup.stderr)")
        let checked = try ws.run(["db", "check", "--db", online])
        #expect(checked.status == 0 && checked.stdout.contains("integrity    ok"), "\(checked.stdout)\(checked.stderr)")
        var readOnly = StoreOptions()
        readOnly.readOnly = true
        let copied = try Store(path: online, options: readOnly).stats()
        #expect(copied.accepted == 2 && copied.statuses == 1 && copied.observations == 2)

        // Reading: the pilotwatch account receives the retained status; a device account does not.
        let serviceLogin = DeviceLogin(username: "pilotwatch", password: service)
        let control = try broker.subscribe(as: serviceLogin, topic: "pilots/+/+/status", waitSeconds: 10)
        #expect(control.output.contains("\"battery_pct\":80"), "pilotwatch account: \(control.errorOutput)")
        let snoop = try broker.subscribe(as: dev2, topic: "pilots/#", waitSeconds: 3)
        #expect(!snoop.output.contains("battery_pct"), "a device read another device's status: \(snoop.output)")
        #expect(snoop.status != 0, "mosquitto_sub should time out empty-handed")

        // The service account writes only under _cluster/: serve's clean stop leaves
        // ingest_stopped retained there; a device topic is closed to it, and _cluster/ to devices.
        #expect(serve.terminate() == 0, "\(serve.logText)")
        let retained = try broker.subscribe(as: serviceLogin, topic: "pilots/_cluster/alerts/ingest_stopped/service", waitSeconds: 5)
        #expect(retained.output.contains("\"rule\":\"ingest_stopped\""), "\(retained.output)\(retained.errorOutput)")
        let intrude = try broker.publish(as: serviceLogin, topic: "pilots/\(respPilot)/dev-001/obs",
                                         message: obsMessage("svc-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)]))
        #expect(intrude.errorOutput.contains("Not authorized"), "\(intrude.errorOutput)")
        let forged = try broker.publish(as: dev1, topic: "pilots/_cluster/alerts/ingest_stopped/service", message: "", retain: true)
        #expect(forged.errorOutput.contains("Not authorized"), "\(forged.errorOutput)")
    }

    /// Anonymous clients, plain TCP and wrong passwords are refused; a provisioned account is not
    /// overwritten without --rotate, and after a rotation only the new password works.
    @Test func anonymousPlainTextAndStalePasswordsAreRefused() throws {
        let broker = try DeployedBroker()
        let ws = try Workspace()
        defer { ws.remove() }
        let accounts = try broker.provision(ws, ["--pilot", respPilot, "--count", "2"])
        try broker.start()
        defer { broker.stop() }
        let dev2 = DeviceLogin(username: "\(respPilot)/dev-002", password: try #require(accounts["\(respPilot)/dev-002"]))
        let topic = "pilots/\(respPilot)/dev-002/status"
        let message = "{\"state\":\"online\",\"at\":\"\(isoNow())\"}"

        let good = try broker.publish(as: dev2, topic: topic, message: message)
        #expect(good.status == 0, "the provisioned account should connect: \(good.errorOutput)")

        let anonymous = try broker.publish(as: nil, topic: topic, message: message)
        #expect(anonymous.status != 0)
        #expect(anonymous.errorOutput.lowercased().contains("not authori"), "\(anonymous.errorOutput)")

        let wrong = try broker.publish(as: DeviceLogin(username: dev2.username, password: dev2.password + "x"), topic: topic, message: message)
        #expect(wrong.status != 0)
        #expect(wrong.errorOutput.lowercased().contains("not authori"), "\(wrong.errorOutput)")

        let plain = try broker.publish(as: dev2, topic: topic, message: message, tls: false)
        #expect(plain.status != 0, "a plain-text connection to the TLS listener must fail: \(plain.errorOutput)")

        // Provisioning the same device again is refused and changes nothing.
        let before = try Data(contentsOf: URL(fileURLWithPath: broker.passwordFile))
        let again = try ws.run(["devices", "provision", "--pilot", respPilot, "--count", "1", "--start", "2",
                                "--password-file", broker.passwordFile, "--acl-file", broker.aclFile])
        #expect(again.status == 1)
        #expect(again.stderr.contains("\(respPilot)/dev-002") && again.stderr.contains("--rotate"), "\(again.stderr)")
        #expect(again.stdout.isEmpty, "no password may be printed for a refused account")
        #expect(try Data(contentsOf: URL(fileURLWithPath: broker.passwordFile)) == before)

        // --rotate issues a new password; once the broker reloads, the old one is refused.
        let rotated = try broker.provision(ws, ["--pilot", respPilot, "--count", "1", "--start", "2", "--rotate"])
        let newPassword = try #require(rotated[dev2.username])
        #expect(newPassword != dev2.password)
        broker.reload()
        let fresh = DeviceLogin(username: dev2.username, password: newPassword)
        try eventually("the reloaded broker accepts the new password", detail: { broker.log }) {
            try broker.publish(as: fresh, topic: topic, message: message).status == 0
        }
        let stale = try broker.publish(as: dev2, topic: topic, message: message)
        #expect(stale.status != 0 && stale.errorOutput.lowercased().contains("not authori"), "\(stale.errorOutput)")
    }

    /// A broker certificate from another CA: pilotwatch refuses the connection and says why.
    @Test func aBrokerSignedByAnotherCAIsRefusedWithAClearError() throws {
        let broker = try DeployedBroker()
        let ws = try Workspace()
        defer { ws.remove() }
        _ = try broker.provision(ws, ["--pilot", respPilot, "--count", "1"])
        let service = try broker.addServiceAccount()
        try broker.start()
        defer { broker.stop() }

        let otherCA = ws.dir + "/other-ca"
        let made = try runProcess(deployFolder + "/make-dev-ca.sh", [otherCA])
        #expect(made.status == 0, "\(made.errorOutput)")
        try writeServiceConfig(ws, broker: broker, caFile: otherCA + "/ca.crt", password: service)
        let serve = try ws.startServe(port: broker.port, extra: ["--log-level", "debug"])
        defer { serve.terminate() }
        try eventually("serve logs the refused certificate", timeout: 30, detail: { serve.logText }) {
            serve.logText.contains("certificate verify failed")
        }
        let log = serve.logText
        #expect(log.contains("127.0.0.1:\(broker.port)"), "the error names the broker: \(log)")
        #expect(!log.contains("subscribed"))
        #expect(serve.terminate() == 0, "SIGTERM while retrying stops cleanly: \(serve.logText)")
        #expect(broker.log.contains("unknown ca"), "the broker saw the client reject its certificate")
    }

    /// `devices provision` checks the pilot against the registry and the ids against the contract
    /// before it touches any file.
    @Test func provisionRefusesUnknownPilotsAndInvalidDeviceIDs() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let passwordFile = ws.dir + "/passwd"

        let unknown = try ws.run(["devices", "provision", "--pilot", "resp-nowhere-99", "--count", "1", "--password-file", passwordFile])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("resp-nowhere-99") && unknown.stderr.contains("not in the registry"), "\(unknown.stderr)")
        for id in [respPilot, diabPilot, "card-hf-idf-03"] {
            #expect(unknown.stderr.contains(id), "the valid pilots are listed: \(unknown.stderr)")
        }

        let csv = ws.dir + "/devices.csv"
        try "dev-001\nDev 2\ndev-001\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let bad = try ws.run(["devices", "provision", "--pilot", respPilot, "--from-csv", csv, "--password-file", passwordFile])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("devices.csv:2") && bad.stderr.contains("\"Dev 2\" is not a device id"), "\(bad.stderr)")
        #expect(bad.stderr.contains("devices.csv:3") && bad.stderr.contains("listed twice"), "\(bad.stderr)")

        let both = try ws.run(["devices", "provision", "--pilot", respPilot, "--count", "1", "--from-csv", csv, "--password-file", passwordFile])
        #expect(both.status != 0)
        #expect(both.stderr.contains("not both"), "\(both.stderr)")

        #expect(!FileManager.default.fileExists(atPath: passwordFile), "no password file may be written after a refusal")
        #expect(!FileManager.default.fileExists(atPath: ws.dir + "/acl"))
    }

    /// A site account (contract 1.1) publishes snapshots under its own site id and nowhere else;
    /// a device account cannot publish a snapshot topic at all.
    @Test func aSiteAccountPublishesOnlyItsOwnSnapshots() throws {
        let broker = try DeployedBroker()
        let ws = try Workspace(pilots: Workspace.defaultPilots + "\n" + aggregatePilotEntry)
        defer { ws.remove() }
        let devices = try broker.provision(ws, ["--pilot", respPilot, "--count", "1"])
        let unknown = try ws.run(["devices", "provision-site", "--site", "chu-paris", "--password-file", broker.passwordFile,
                                  "--acl-file", broker.aclFile])
        #expect(unknown.status == 64 && unknown.stderr.contains("registered sites: chu-lille"), "\(unknown.stderr)")
        let made = try ws.run(["devices", "provision-site", "--site", "chu-lille", "--password-file", broker.passwordFile,
                               "--acl-file", broker.aclFile])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(!made.stderr.contains("added the site lines"), "the deployed ACL already grants them: \(made.stderr)")
        let password = try #require(made.stdout.components(separatedBy: "password ").last?.components(separatedBy: ";").first)
        let again = try ws.run(["devices", "provision-site", "--site", "chu-lille", "--password-file", broker.passwordFile,
                                "--acl-file", broker.aclFile])
        #expect(again.status != 0 && again.stderr.contains("--rotate"), "\(again.stderr)")
        try broker.start()
        defer { broker.stop() }

        let site = DeviceLogin(username: "chu-lille", password: password)
        let own = try broker.publish(as: site, topic: "pilots/card-hf-agg-04/chu-lille/agg", message: "{}")
        #expect(own.status == 0 && !own.errorOutput.contains("Not authorized"), "\(own.errorOutput)")
        for topic in ["pilots/card-hf-agg-04/chu-paris/agg", "pilots/card-hf-agg-04/chu-lille/obs", "pilots/_cluster/sites/chu-lille/status"] {
            let denied = try broker.publish(as: site, topic: topic, message: "{}")
            #expect(denied.errorOutput.contains("Not authorized"), "site publishing to \(topic): \(denied.errorOutput)")
        }
        let device = DeviceLogin(username: "\(respPilot)/dev-001", password: try #require(devices["\(respPilot)/dev-001"]))
        let forged = try broker.publish(as: device, topic: "pilots/\(respPilot)/dev-001/agg", message: "{}")
        #expect(forged.errorOutput.contains("Not authorized"), "a device publishing a snapshot: \(forged.errorOutput)")

        // A fresh ACL made by provision-site grants the service's read and the site lines.
        let fresh = ws.dir + "/fresh-acl"
        let created = try ws.run(["devices", "provision-site", "--site", "chu-lille", "--rotate", "--password-file", ws.dir + "/passwd",
                                  "--acl-file", fresh])
        #expect(created.status == 0, "\(created.stderr)")
        let acl = try String(contentsOfFile: fresh, encoding: .utf8)
        #expect(acl.contains("topic read pilots/+/+/agg") && acl.contains("pattern write pilots/+/%u/agg")
                    && acl.contains("pattern read pilots/_cluster/sites/%u/status"), "\(acl)")
        // The service also publishes its alerts and the sites' statuses under _cluster/.
        #expect(acl.contains("topic readwrite pilots/_cluster/#"), "\(acl)")
        // An existing ACL without that line gets it added, once.
        let old = ws.dir + "/old-acl"
        try "user pilotwatch\ntopic read pilots/+/+/obs\ntopic read pilots/+/+/status\n".write(toFile: old, atomically: true, encoding: .utf8)
        for _ in 0..<2 {
            let r = try ws.run(["devices", "provision-site", "--site", "chu-lille", "--rotate", "--password-file", ws.dir + "/passwd",
                                "--acl-file", old])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let updated = try String(contentsOfFile: old, encoding: .utf8)
        #expect(updated.components(separatedBy: "topic readwrite pilots/_cluster/#").count == 2, "\(updated)")
    }

    /// `db backup` writes a copy with the same content that `db check` accepts, and does not
    /// overwrite an existing file without --force.
    @Test func backupGivesACopyThatCheckAccepts() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ingestSample(ws)
        let source = try ws.stats()
        #expect(source.accepted == 2 && source.refused == 1)

        let live = try ws.run(["db", "check"])
        #expect(live.status == 0, "\(live.stderr)")
        #expect(live.stdout.contains("integrity    ok"), "\(live.stdout)")

        let copy = ws.dir + "/backup.sqlite"
        let backup = try ws.run(["db", "backup", copy])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.stdout.contains("backup written: \(copy)"), "\(backup.stdout)")

        let checked = try ws.run(["db", "check", "--db", copy])
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout.contains("integrity    ok"))
        let schemaLine = { (text: String) in text.split(separator: "\n").first { $0.hasPrefix("schema") }.map(String.init) }
        #expect(schemaLine(checked.stdout) != nil && schemaLine(checked.stdout) == schemaLine(live.stdout))

        var readOnly = StoreOptions()
        readOnly.readOnly = true
        #expect(try Store(path: copy, options: readOnly).stats() == source)

        let refused = try ws.run(["db", "backup", copy])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("already exists") && refused.stderr.contains("--force"), "\(refused.stderr)")

        let forced = try ws.run(["db", "backup", "--force", copy])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Store(path: copy, options: readOnly).stats() == source)
    }

    /// `db check` on a damaged file exits 1 and says so: damaged indexes (the file opens, SQLite's
    /// integrity check lists the problems) and a file whose pages are overwritten (it cannot be read).
    @Test func checkFailsOnADamagedDatabase() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ingestSample(ws)
        let good = ws.dir + "/good.sqlite"
        let backup = try ws.run(["db", "backup", good])
        try #require(backup.status == 0, "\(backup.stderr)")
        let original = try Data(contentsOf: URL(fileURLWithPath: good))
        // The page size is the big-endian 16-bit number at offset 16 of the header (1 means 65536).
        let rawPageSize = Int(original[16]) << 8 | Int(original[17])
        let pageSize = rawPageSize == 1 ? 65_536 : rawPageSize
        try #require(pageSize >= 512 && original.count > 2 * pageSize)

        // 1. Zero the cell area of every index's root page (the tables stay intact).
        let roots = try runProcess(tool("sqlite3"), [good, "SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND rootpage > 1 AND tbl_name <> 'grdb_migrations'"])
        let pages = roots.output.split(separator: "\n").compactMap { Int($0) }
        try #require(roots.status == 0 && !pages.isEmpty, "sqlite3: \(roots.errorOutput)")
        var damaged = original
        for page in pages {
            let end = page * pageSize
            damaged.replaceSubrange((end - pageSize / 4)..<end, with: Data(count: pageSize / 4))
        }
        let indexes = ws.dir + "/indexes.sqlite"
        try damaged.write(to: URL(fileURLWithPath: indexes))
        let listed = try ws.run(["db", "check", "--db", indexes])
        #expect(listed.status == 1, "stdout: \(listed.stdout)\nstderr: \(listed.stderr)")
        #expect(listed.stdout.contains("missing from index"), "SQLite's findings are listed: \(listed.stdout)")
        #expect(listed.stderr.contains(indexes) && listed.stderr.contains("damaged"), "\(listed.stderr)")

        // 2. Overwrite every page after the first: nothing can be read.
        var wiped = original
        wiped.replaceSubrange(pageSize..<wiped.count, with: Data(repeating: 0xA5, count: wiped.count - pageSize))
        let unreadable = ws.dir + "/wiped.sqlite"
        try wiped.write(to: URL(fileURLWithPath: unreadable))
        let refused = try ws.run(["db", "check", "--db", unreadable])
        #expect(refused.status == 1, "stdout: \(refused.stdout)\nstderr: \(refused.stderr)")
        #expect(refused.stderr.contains(unreadable) && refused.stderr.contains("damaged"), "\(refused.stderr)")

        // The intact copy still passes: the failures above are the damage, not the check.
        let intact = try ws.run(["db", "check", "--db", good])
        #expect(intact.status == 0, "\(intact.stderr)")
    }
}

// MARK: - The deployed broker

/// A login for mosquitto_pub / mosquitto_sub.
private struct DeviceLogin {
    var username: String
    var password: String
}

/// deploy/mosquitto/mosquitto.conf and acl in a temporary folder, served on a free loopback port.
private final class DeployedBroker {
    let dir: String
    let certs: String
    let passwordFile: String
    let aclFile: String
    private(set) var port = 0
    private var pid: pid_t?

    init() throws {
        dir = temporaryDirectory(prefix: "pilotwatch-deploy")
        certs = dir + "/certs"
        passwordFile = dir + "/passwd"
        aclFile = dir + "/acl"
        let made = try runProcess(deployFolder + "/make-dev-ca.sh", [certs])
        guard made.status == 0 else { throw TestFailure("make-dev-ca.sh failed (\(made.status)): \(made.errorOutput)") }
        try FileManager.default.copyItem(atPath: deployFolder + "/acl", toPath: aclFile)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    var log: String { (try? String(contentsOfFile: dir + "/log/mosquitto.log", encoding: .utf8)) ?? "" }

    /// Runs `pilotwatch devices provision ARGS` against this broker's files and returns the
    /// printed username -> password pairs.
    func provision(_ ws: Workspace, _ args: [String]) throws -> [String: String] {
        let r = try ws.run(["devices", "provision"] + args + ["--password-file", passwordFile, "--acl-file", aclFile, "--format", "json"])
        guard r.status == 0 else { throw TestFailure("devices provision \(args) failed (\(r.status)): \(r.stderr)") }
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let devices = json?["devices"] as? [[String: Any]] ?? []
        var out: [String: String] = [:]
        for d in devices {
            if let u = d["username"] as? String, let p = d["password"] as? String { out[u] = p }
        }
        guard out.count == devices.count, !out.isEmpty else { throw TestFailure("unexpected provision output: \(r.stdout)") }
        return out
    }

    /// Gives the `pilotwatch` account a fresh password (as an operator would with mosquitto_passwd).
    func addServiceAccount() throws -> String {
        let password = "svc-" + UUID().uuidString.lowercased()
        let r = try runProcess(tool("mosquitto_passwd"), ["-b", passwordFile, "pilotwatch", password])
        guard r.status == 0 else { throw TestFailure("mosquitto_passwd failed: \(r.errorOutput)") }
        return password
    }

    /// The production configuration with only the port and the paths changed.
    func configuration(port: Int, user: String) throws -> String {
        var text = try String(contentsOfFile: deployFolder + "/mosquitto.conf", encoding: .utf8)
        let substitutions = [
            ("listener 8883", "listener \(port) 127.0.0.1"),
            ("cafile /etc/mosquitto/certs/ca.crt", "cafile \(certs)/ca.crt"),
            ("certfile /etc/mosquitto/certs/server.crt", "certfile \(certs)/server.crt"),
            ("keyfile /etc/mosquitto/certs/server.key", "keyfile \(certs)/server.key"),
            ("password_file /etc/mosquitto/passwd", "password_file \(passwordFile)"),
            ("acl_file /etc/mosquitto/acl", "acl_file \(aclFile)"),
            ("persistence_location /var/lib/mosquitto/", "persistence_location \(dir)/data/"),
            ("log_dest syslog", "# (no syslog in a test)"),
            ("log_dest file /var/log/mosquitto/mosquitto.log", "log_dest file \(dir)/log/mosquitto.log"),
            ("user mosquitto", "user \(user)"),
        ]
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (from, to) in substitutions {
            let hits = lines.indices.filter { lines[$0] == from }
            guard hits.count == 1 else {
                throw TestFailure("deploy/mosquitto/mosquitto.conf has \(hits.count) lines \"\(from)\" (expected one); update DeployTests")
            }
            lines[hits[0]] = to
        }
        text = lines.joined(separator: "\n")
        for setting in ["per_listener_settings false", "allow_anonymous false", "require_certificate false", "tls_version tlsv1.2"] {
            guard lines.contains(setting) else { throw TestFailure("deploy/mosquitto/mosquitto.conf lost \"\(setting)\"") }
        }
        guard lines.filter({ $0.hasPrefix("listener ") }).count == 1 else {
            throw TestFailure("deploy/mosquitto/mosquitto.conf has more than one listener; this test covers one")
        }
        return text
    }

    /// Starts mosquitto. Run as root, it drops to the mosquitto user as in production, so the
    /// key, the data and the log folder are handed to that user (the password file and the ACL
    /// are readable as provisioned).
    func start() throws {
        let account = geteuid() == 0 ? getpwnam("mosquitto") : nil
        let user = geteuid() == 0 && account == nil ? "root" : "mosquitto"
        for folder in ["/data", "/log"] {
            try FileManager.default.createDirectory(atPath: dir + folder, withIntermediateDirectories: true)
        }
        if let account {
            for path in [certs + "/server.key", dir + "/data", dir + "/log"] {
                guard chown(path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                    throw TestFailure("chown \(path) to mosquitto failed: \(String(cString: strerror(errno)))")
                }
            }
        }
        var lastError = ""
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            let config = dir + "/mosquitto.conf"
            try configuration(port: port, user: user).write(toFile: config, atomically: true, encoding: .utf8)
            let started = try spawnWithCleanSignals(TestBroker.brokerExecutable(), ["-c", config], outputPath: dir + "/mosquitto.out")
            pid = started
            let deadline = Date(timeIntervalSinceNow: 15)
            while isRunning && Date() < deadline && !canConnect(port: port) { usleep(20_000) }
            if isRunning && canConnect(port: port) {
                self.port = port
                return
            }
            stop()
            lastError = log
        }
        throw TestFailure("the deployed mosquitto did not start; its log:\n\(lastError)")
    }

    /// True while the broker runs (reaps it once it has exited).
    var isRunning: Bool {
        guard let pid else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 { return true }
        self.pid = nil
        return false
    }

    /// SIGHUP, as `systemctl reload mosquitto` sends: mosquitto reads the password file and the ACL again.
    func reload() {
        if let pid, isRunning { kill(pid, SIGHUP) }
    }

    func stop() {
        guard let pid, isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date(timeIntervalSinceNow: 10)
        while isRunning && Date() < deadline { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        self.pid = nil
    }

    /// mosquitto_pub as a device would run it: MQTT 5, TLS with the dev CA, QoS 1.
    func publish(as login: DeviceLogin?, topic: String, message: String, retain: Bool = false, tls: Bool = true) throws -> ProcessResult {
        var args = clientArguments(login, tls: tls) + ["-q", "1", "-t", topic, "-m", message]
        if retain { args.append("-r") }
        return try runProcess(tool("mosquitto_pub"), args, timeout: 30)
    }

    /// mosquitto_sub for one message, giving up after `waitSeconds`.
    func subscribe(as login: DeviceLogin, topic: String, waitSeconds: Int) throws -> ProcessResult {
        try runProcess(tool("mosquitto_sub"), clientArguments(login, tls: true) + ["-q", "1", "-t", topic, "-C", "1", "-W", String(waitSeconds)],
                       timeout: Double(waitSeconds + 20))
    }

    private func clientArguments(_ login: DeviceLogin?, tls: Bool) -> [String] {
        var args = ["-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-i", "deploy-test-" + UUID().uuidString.prefix(8)]
        if tls { args += ["--cafile", certs + "/ca.crt"] }
        if let login { args += ["-u", login.username, "-P", login.password] }
        return args
    }
}

// MARK: - Helpers

/// Points the workspace's configuration at the deployed broker: TLS, the pilotwatch account.
private func writeServiceConfig(_ ws: Workspace, broker: DeployedBroker, caFile: String, password: String) throws {
    try (password + "\n").write(toFile: ws.dir + "/broker-password", atomically: true, encoding: .utf8)
    let yaml = """
    broker:
      host: 127.0.0.1
      port: \(broker.port)
      client_id: pilotwatch-deploy-test
      username: pilotwatch
      password_file: broker-password
      tls: {ca_file: \(caFile)}
    topic_root: pilots
    database: pilotwatch.sqlite
    registry: pilots.yaml
    catalogue: indicators.yaml
    """
    try yaml.write(toFile: ws.config, atomically: true, encoding: .utf8)
}

/// Two accepted messages and one refused, through `pilotwatch ingest`.
private func ingestSample(_ ws: Workspace) throws {
    let at = isoNow(minutesAgo: 30)
    let lines = [
        obsMessage("bk-1", [obs("p-7f3a9c21", "spo2", 93, unit: "%", at: at), obs("p-7f3a9c21", "cat_score", 18, unit: "{score}", at: at)]),
        obsMessage("bk-2", [obs("p-8e2b1d07", "spo2", 96, unit: "%", at: at)]),
        obsMessage("bk-3", [obs("p-8e2b1d07", "spo2", 140, unit: "%", at: at)]),
    ].map { "{\"topic\":\"pilots/\(respPilot)/dev-001/obs\",\"payload\":\($0)}" }
    let r = try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
    guard r.status == 0 else { throw TestFailure("ingest failed (\(r.status)): \(r.stderr)") }
}

/// Waits until `condition` holds, or throws after `timeout` seconds.
private func eventually(_ what: String, timeout: Double = 15, detail: () -> String = { "" }, _ condition: () throws -> Bool) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(100_000)
    }
    throw TestFailure("timed out waiting until \(what)\n\(detail())")
}


/// A command-line tool from PATH, else /usr/bin.
private func tool(_ name: String) -> String {
    for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(folder)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return "/usr/bin/" + name
}
