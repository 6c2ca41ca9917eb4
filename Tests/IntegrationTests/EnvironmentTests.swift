import Foundation
import Testing

/// `PILOTWATCH_*` variables and the broker flags are checked by the rules that check the
/// configuration file; a bad value is a usage error (exit 64) naming the variable and the value.
@Suite("CLI: environment overrides and broker flags are checked like the file")
struct EnvironmentTests {
    static let topicRootRule = "must be one or more levels of a-z 0-9 . _ - separated by /, without + or #"
    static let clientIDRule = "must be 1-230 printable ASCII characters without spaces"
    static let hostRule = "must be a host name or an IP address"
    static let portRule = "is not a TCP port; use 1...65535"

    @Test(arguments: [
        ("PILOTWATCH_TOPIC_ROOT", "pilots/#", #"PILOTWATCH_TOPIC_ROOT="pilots/#" "# + topicRootRule),
        ("PILOTWATCH_TOPIC_ROOT", "Pilots", #"PILOTWATCH_TOPIC_ROOT="Pilots" "# + topicRootRule),
        ("PILOTWATCH_TOPIC_ROOT", "pilots//x", #"PILOTWATCH_TOPIC_ROOT="pilots//x" "# + topicRootRule),
        ("PILOTWATCH_CLIENT_ID", "pilot watch", #"PILOTWATCH_CLIENT_ID="pilot watch" "# + clientIDRule),
        ("PILOTWATCH_CLIENT_ID", "tab\tid", #"PILOTWATCH_CLIENT_ID="tab\tid" "# + clientIDRule),
        ("PILOTWATCH_HOST", "mqtt://broker:1883", #"PILOTWATCH_HOST="mqtt://broker:1883" "# + hostRule),
        ("PILOTWATCH_HOST", "broker 2", #"PILOTWATCH_HOST="broker 2" "# + hostRule),
        ("PILOTWATCH_PORT", "abc", #"PILOTWATCH_PORT="abc" "# + portRule),
        ("PILOTWATCH_PORT", "70000", #"PILOTWATCH_PORT="70000" "# + portRule),
    ])
    func aBadValueIsAUsageError(_ name: String, _ value: String, _ message: String) throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let r = try ws.run(["indicators"], environment: [name: value])
        #expect(r.status == 64, "\(name)=\(value): \(r.status) \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: " + message), "\(r.stderr)")
        #expect(r.stderr.hasSuffix("; correct it or unset it\n"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// `config check` shows the configuration as the other commands see it: with the
    /// environment applied, and refused the same way when a variable is wrong.
    @Test func configCheckAppliesAndChecksTheEnvironment() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let bad = try ws.run(["config", "check"], environment: ["PILOTWATCH_TOPIC_ROOT": "pilots/#"])
        #expect(bad.status == 64, "\(bad.stdout)\(bad.stderr)")
        #expect(bad.stderr.hasPrefix(#"Error: PILOTWATCH_TOPIC_ROOT="pilots/#" "# + Self.topicRootRule), "\(bad.stderr)")
        let good = try ws.run(["config", "check"], environment: ["PILOTWATCH_TOPIC_ROOT": "region-idf/pilots"])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("overridden by the environment: PILOTWATCH_TOPIC_ROOT"), "\(good.stdout)")
        #expect(good.stdout.contains("topics     region-idf/pilots/+/+/obs"), "\(good.stdout)")
    }

    @Test func everyBadValueIsListed() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let r = try ws.run(["indicators"], environment: ["PILOTWATCH_TOPIC_ROOT": "pilots/+", "PILOTWATCH_PORT": "0"])
        #expect(r.status == 64)
        #expect(r.stderr.hasPrefix("Error: 2 environment variables are wrong; correct or unset them:\n"), "\(r.stderr)")
        #expect(r.stderr.contains(#"  PILOTWATCH_PORT="0" "# + Self.portRule))
        #expect(r.stderr.contains(#"  PILOTWATCH_TOPIC_ROOT="pilots/+" "# + Self.topicRootRule))
    }

    @Test func goodValuesAreAcceptedAndApplied() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let other = ws.dir + "/elsewhere.sqlite"
        let environment = [
            "PILOTWATCH_DB": other, "PILOTWATCH_HOST": "mqtt-1.cluster.internal", "PILOTWATCH_PORT": "8883",
            "PILOTWATCH_CLIENT_ID": "pilotwatch-b", "PILOTWATCH_TOPIC_ROOT": "cluster-a",
        ]
        let line = "{\"topic\": \"cluster-a/resp-copd-idf-01/dev-1/obs\", \"payload\": "
            + obsMessage("env-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: isoNow(minutesAgo: 5))]) + "}\n"
        let r = try ws.run(["ingest", "-", "--format", "json"], stdin: Data(line.utf8), environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        let counts = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(counts["accepted"] as? Int == 1, "the topic root applies: \(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: other), "the database is where PILOTWATCH_DB says")
        #expect(!FileManager.default.fileExists(atPath: ws.db))

        // An empty variable counts as unset.
        let empty = try ws.run(["indicators"], environment: ["PILOTWATCH_TOPIC_ROOT": "", "PILOTWATCH_PORT": ""])
        #expect(empty.status == 0, "\(empty.stderr)")
    }

    @Test func hostAndPortReachTheConnection() throws {
        let pilots = try String(contentsOf: packageRoot.appendingPathComponent("seeds/pilots.yaml"), encoding: .utf8)
        let ws = try Workspace(pilots: pilots)
        defer { ws.remove() }
        let scenario = packageRoot.appendingPathComponent("seeds/scenario.yaml").path
        // Nothing listens on port 9 of this host: the failure names where it tried.
        let r = try ws.run(["simulate", "--scenario", scenario, "--days", "1"],
                           environment: ["PILOTWATCH_HOST": "localhost", "PILOTWATCH_PORT": "9"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("Is a broker running at localhost:9?"), "\(r.stderr)")
    }

    @Test(arguments: [
        (["--host", "mqtt://broker"], #"--host "mqtt://broker" "# + hostRule),
        (["--host", "broker:1883"], #"--host "broker:1883" "# + hostRule),
        (["--port", "0"], "--port 0 " + portRule),
    ])
    func badBrokerFlagsAreUsageErrors(_ flags: [String], _ message: String) throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let r = try ws.run(["simulate", "--scenario", ws.dir + "/none.yaml"] + flags)
        #expect(r.status == 64, "\(flags): \(r.stderr)")
        #expect(r.stderr.contains("Error: " + message), "\(r.stderr)")
    }
}
