import Foundation
import PilotwatchCore
import TestSupport
import Testing

/// The path of `name` on PATH (or in /usr/bin, /usr/local/bin); a missing tool fails the test,
/// since `scripts/install-deps.sh` installs it.
private func requiredTool(_ name: String, package: String) throws -> String {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        + ["/usr/bin", "/usr/local/bin"]
    for folder in folders where FileManager.default.isExecutableFile(atPath: folder + "/" + name) {
        return folder + "/" + name
    }
    throw TestFailure("\(name) is not installed (looked on PATH and in /usr/bin, /usr/local/bin): run scripts/install-deps.sh, which installs Debian's \(package) package")
}

/// The samples of a Prometheus text, by `name{labels}` as written.
func samples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = value
    }
    return out
}

/// Scrapes `GET /metrics` on `port` until `done` holds for its samples; throws after `timeout`
/// seconds with the last text.
func scrape(port: Int, until what: String, timeout: Double = 60, _ done: ([String: Double]) -> Bool) throws -> String {
    let deadline = Date().addingTimeInterval(timeout)
    var last = "(no answer)"
    while Date() < deadline {
        if let response = try? exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") {
            last = "\(response.status) \(response.headers)\n\(response.body)"
            if response.status == 200, done(samples(response.body)) { return response.body }
        }
        Thread.sleep(forTimeInterval: 0.1)
    }
    throw TestFailure("timed out waiting for \(what) in /metrics; last answer:\n\(last)")
}

/// A real Prometheus server scraping one target every second, on a free loopback port, with
/// its configuration and database in a temporary folder.
private final class PrometheusServer {
    let port: Int
    let directory: String
    private let pid: pid_t

    init(binary: String, target: String) throws {
        directory = temporaryDirectory(prefix: "pilotwatch-prometheus")
        port = try freeLoopbackPort()
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: pilotwatch
                static_configs:
                  - targets: ['\(target)']
            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        pid = try spawnWithCleanSignals(binary, [
            "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)",
        ], outputPath: directory + "/prometheus.log")
    }

    var log: String { (try? String(contentsOfFile: directory + "/prometheus.log", encoding: .utf8)) ?? "" }

    /// GET `path` on the server's HTTP API (HTTP/1.0: the answer ends when the connection does).
    func get(_ path: String) throws -> HTTPResponse {
        let connection = try RawConnection(port: port)
        connection.send("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
        return try HTTPResponse(connection.readToEnd())
    }

    /// Waits until an instant query of `query` answers one sample whose value is `expected`;
    /// throws after `timeout` seconds with the last answer and the server's log.
    func waitForQuery(_ query: String, toEqual expected: Double, timeout: Double = 90) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last = "(no answer)"
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw TestFailure("prometheus exited (status \(status)):\n\(log)")
            }
            if let response = try? get("/api/v1/query?query=\(query)") {
                last = "\(response.status) \(response.body)"
                if response.status == 200, Self.values(response.body) == [expected] { return }
            }
            Thread.sleep(forTimeInterval: 0.25)
        }
        let targets = (try? get("/api/v1/targets").body) ?? "(no answer)"
        throw TestFailure("prometheus did not answer \(query) = \(expected) within \(timeout) s; last answer: \(last)\ntargets: \(targets)\nlog:\n\(log)")
    }

    /// The values of an instant-vector answer (`data.result[].value[1]`).
    static func values(_ json: String) -> [Double] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.compactMap { ($0["value"] as? [Any])?.last.flatMap { $0 as? String }.flatMap(Double.init) }
    }

    func stop() {
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("Metrics: serve --metrics, checked by promtool and scraped by Prometheus", .serialized)
struct MetricsTests {
    @Test func promtoolPassesTheTextAndPrometheusScrapesTheAcceptedCount() throws {
        let promtool = try requiredTool("promtool", package: "prometheus")
        let prometheusBinary = try requiredTool("prometheus", package: "prometheus")
        try withBrokerAndWorkspace { broker, ws in
            let metricsPort = try freeLoopbackPort()
            let serve = try ws.startServe(port: broker.port, extra: ["--metrics", "127.0.0.1:\(metricsPort)", "--alerts-every", "0.5"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            #expect(serve.logText.contains("metrics: serving http://127.0.0.1:\(metricsPort)/metrics"))

            let n = 300
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/oxi-7/obs", lines: stream("m", count: n))
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/oxi-7/obs", message: "{not json")
            // Caught up: everything counted, nothing left in the inbox, no lag.
            // card-hf-idf-03 has sent nothing: its silent alert is active.
            let silent = "pilotwatch_alerts_active{rule=\"silent\",target=\"card-hf-idf-03\"}"
            let text = try scrape(port: metricsPort, until: "\(n) accepted, 1 refused, backlog and lag 0, an alert active") {
                $0[silent] == 1 && $0["pilotwatch_messages_accepted_total"] == Double(n)
                    && $0["pilotwatch_messages_refused_total{reason=\"malformed_json\"}"] == 1
                    && $0["pilotwatch_inbox_backlog_bytes"] == 0 && $0["pilotwatch_apply_lag_seconds"] == 0
            }
            let s = samples(text)
            #expect(s["pilotwatch_messages_received_total"] == Double(n + 1))
            #expect(s["pilotwatch_observations_stored_total"] == Double(n))
            #expect(s["pilotwatch_messages_duplicate_total"] == 0)
            #expect(s["pilotwatch_broker_connected"] == 1)
            #expect((s["pilotwatch_sqlite_commit_duration_seconds_count"] ?? 0) >= 1)
            #expect((s["pilotwatch_last_message_received_timestamp_seconds"] ?? 0) > 0)
            #expect(s["pilotwatch_pilot_last_measurement_timestamp_seconds{pilot=\"resp-copd-idf-01\"}"] != nil)
            #expect(!text.contains("oxi-7"), "no device id in the metrics")
            #expect(!text.contains("p-1000"), "no subject id in the metrics")

            // promtool reads the text on its standard input.
            let file = ws.dir + "/metrics.txt"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try runProcess("/bin/sh", ["-c", "exec \"$0\" check metrics < \"$1\"", promtool, file])
            #expect(check.status == 0, "promtool check metrics: \(check.output)\(check.errorOutput)")
            #expect(check.output.isEmpty && check.errorOutput.isEmpty, "promtool found problems: \(check.output)\(check.errorOutput)")

            let prometheus = try PrometheusServer(binary: prometheusBinary, target: "127.0.0.1:\(metricsPort)")
            defer { prometheus.stop() }
            try prometheus.waitForQuery("pilotwatch_messages_accepted_total", toEqual: Double(n))

            // An import handed to serve is counted too.
            let lines = stream("hm", count: 5).map { #"{"topic":"pilots/resp-copd-idf-01/up-9/obs","payload":"# + $0 + "}" }
            let handed = try ws.run(["ingest", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(handed.status == 0 && handed.stderr.contains("handing the import"), "\(handed.stderr)")
            _ = try scrape(port: metricsPort, until: "the handed-over import counted") {
                $0["pilotwatch_messages_accepted_total"] == Double(n + 5)
            }

            broker.stop()
            _ = try scrape(port: metricsPort, until: "the broker connection down") { $0["pilotwatch_broker_connected"] == 0 }
        }
    }

    @Test(arguments: [("localhost:9464", "the host \"localhost\" is not an IP address"),
                      ("9464x", "the port \"9464x\" is not a number from 1 to 65535")])
    func aBadAddressIsAUsageErrorNamingIt(value: String, reason: String) throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let result = try ws.run(["serve", "--metrics", value])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--metrics \(value): \(reason)"), "\(result.stderr)")
    }

    @Test func aPortInUseStopsServeNamingTheAddress() throws {
        try withBrokerAndWorkspace { broker, ws in
            let (holder, port) = try listeningSocket()
            defer { close(holder) }
            let serve = try ws.startServe(port: broker.port, extra: ["--metrics", String(port)])
            #expect(serve.waitExit(timeout: 60) == 1, "\(serve.logText)")
            #expect(serve.logText.contains("--metrics: cannot serve metrics on 127.0.0.1:\(port) (bind: Address already in use)"),
                    "\(serve.logText)")
        }
    }
}

/// A TCP socket listening on a free loopback port, and the port.
private func listeningSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard fd >= 0, ok else { throw TestFailure("cannot listen on a loopback port: \(String(cString: strerror(errno)))") }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
