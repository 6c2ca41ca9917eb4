import Foundation
import Glibc
import PilotwatchMonitoring
import TestSupport
import Testing

/// Runs `body` with a server on a free loopback port that renders `metrics`; stops it after.
private func withServer(limits: MetricsHTTPServer.Limits = .init(), metrics: String = "pw_test_total 1\n",
                        _ body: (Int) throws -> Void) throws {
    let server = try MetricsHTTPServer(address: "127.0.0.1", port: 0, limits: limits) { Array(metrics.utf8) }
    server.start()
    defer { server.stop() }
    try body(server.address.port)
}

@Suite("Metrics HTTP server, over a real socket")
struct MetricsHTTPServerTests {
    @Test func getMetricsAnswersTheRenderedTextWithThePrometheusContentType() throws {
        try withServer(metrics: "# TYPE pw_test_total counter\npw_test_total 42\n") { port in
            let response = try exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.headers["connection"] == "close")
            #expect(response.body == "# TYPE pw_test_total counter\npw_test_total 42\n")
        }
    }

    @Test func getHealthzAnswersOk() throws {
        try withServer { port in
            let response = try exchange(port: port, "GET /healthz HTTP/1.1\r\n\r\n")
            #expect(response.status == 200)
            #expect(response.body == "ok\n")
        }
    }

    @Test func aQueryStringAndBareLineFeedsAreAccepted() throws {
        try withServer { port in
            let response = try exchange(port: port, "GET /metrics?name[]=x HTTP/1.0\n\n")
            #expect(response.status == 200)
        }
    }

    @Test(arguments: ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
    func anotherMethodOnAKnownPathIs405(method: String) throws {
        try withServer { port in
            for path in ["/metrics", "/healthz"] {
                let response = try exchange(port: port, "\(method) \(path) HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody")
                #expect(response.status == 405, "\(method) \(path)")
                #expect(response.headers["allow"] == "GET", "\(method) \(path)")
            }
        }
    }

    @Test(arguments: ["/", "/metrics/", "/Metrics", "/favicon.ico", "/metricsx"])
    func anUnknownPathIs404(path: String) throws {
        try withServer { port in
            let response = try exchange(port: port, "GET \(path) HTTP/1.1\r\n\r\n")
            #expect(response.status == 404)
        }
    }

    @Test(arguments: ["garbage\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "get /metrics HTTP/1.1\r\n\r\n",
                      "GET /metrics HTTP/2\r\n\r\n", "\u{0}\u{1}\u{2}\r\n\r\n"])
    func aRequestLineThatIsNotHTTP1Is400(request: String) throws {
        try withServer { port in
            let response = try exchange(port: port, request)
            #expect(response.status == 400)
        }
    }

    @Test func anOversizedRequestIs431AndTheNextRequestIsAnswered() throws {
        try withServer(limits: .init(maxRequestBytes: 8192)) { port in
            let big = try RawConnection(port: port)
            big.send("GET /metrics HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 100_000))
            #expect(try big.readResponse().status == 431)
            let response = try exchange(port: port, "GET /metrics HTTP/1.1\r\n\r\n")
            #expect(response.status == 200)
        }
    }

    /// The unfinished request is still held open (its deadline is far off) when the next one
    /// is answered: it was not served by timing the first one out.
    @Test func aNeverFinishedRequestDoesNotHoldUpTheNextOne() throws {
        try withServer(limits: .init(requestTimeout: .seconds(600))) { port in
            let silent = try RawConnection(port: port)
            let slow = try RawConnection(port: port)
            slow.send("GET /metrics HTTP/1.1\r\nHost: x\r\n")
            let response = try exchange(port: port, "GET /metrics HTTP/1.1\r\n\r\n")
            #expect(response.status == 200)
            #expect(silent.isHeldOpen)
            #expect(slow.isHeldOpen)
        }
    }

    @Test func aRequestNotFinishedByTheDeadlineIsAnswered408AndClosed() throws {
        try withServer(limits: .init(requestTimeout: .milliseconds(200))) { port in
            let slow = try RawConnection(port: port)
            slow.send("GET /metrics HTTP/1.1\r\n")
            let response = try HTTPResponse(slow.readToEnd())
            #expect(response.status == 408)
            let silent = try RawConnection(port: port)
            #expect(try silent.readToEnd().isEmpty)  // closed without an answer
        }
    }

    @Test func atTheConnectionLimitANewClientEvictsTheOldestStuckOne() throws {
        try withServer(limits: .init(requestTimeout: .seconds(600), maxConnections: 2)) { port in
            let stuck = try (0..<3).map { _ in try RawConnection(port: port) }
            for connection in stuck { connection.send("GET /metrics HTTP/1.1\r\n") }
            let response = try exchange(port: port, "GET /healthz HTTP/1.1\r\n\r\n")
            #expect(response.status == 200)
            #expect(try stuck[0].readToEnd().isEmpty)
        }
    }

    @Test func aClientThatNeverReadsItsAnswerDoesNotHoldUpTheNextOne() throws {
        let large = String(repeating: "pw_filler_total 1\n", count: 400_000)  // ~7 MiB: more than the socket buffers
        try withServer(limits: .init(requestTimeout: .seconds(600)), metrics: large) { port in
            let reader = try RawConnection(port: port)
            reader.send("GET /metrics HTTP/1.1\r\n\r\n")
            let response = try exchange(port: port, "GET /healthz HTTP/1.1\r\n\r\n")
            #expect(response.status == 200)
        }
    }

    @Test func manyRequestsInARowAreAllAnswered() throws {
        try withServer { port in
            for _ in 0..<200 {
                let response = try exchange(port: port, "GET /metrics HTTP/1.1\r\n\r\n")
                #expect(response.status == 200)
            }
        }
    }

    @Test func aPortInUseIsRefusedNamingTheAddress() throws {
        let first = try MetricsHTTPServer(address: "127.0.0.1", port: 0) { [] }
        #expect {
            _ = try MetricsHTTPServer(address: "127.0.0.1", port: first.address.port) { [] }
        } throws: { error in
            let text = "\(error)"
            return text.contains("127.0.0.1:\(first.address.port)") && text.contains("Address already in use")
        }
    }

    @Test func stopClosesTheConnectionsItHolds() throws {
        let server = try MetricsHTTPServer(address: "127.0.0.1", port: 0, limits: .init(requestTimeout: .seconds(600))) { [] }
        server.start()
        let slow = try RawConnection(port: server.address.port)
        slow.send("GET /metrics HTTP/1.1\r\n")
        let response = try exchange(port: server.address.port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(response.status == 200)
        server.stop()
        #expect(try slow.readToEnd().isEmpty)
    }

    @Test func listensOnIPv6Loopback() throws {
        let server: MetricsHTTPServer
        do {
            server = try MetricsHTTPServer(address: "::1", port: 0) { Array("x 1\n".utf8) }
        } catch {
            Issue.record("cannot listen on [::1] on this machine: \(error)")
            return
        }
        server.start()
        defer { server.stop() }
        #expect(server.address.description == "[::1]:\(server.address.port)")
    }
}
