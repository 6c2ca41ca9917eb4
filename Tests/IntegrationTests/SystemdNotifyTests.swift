import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for systemd's notify socket: a datagram socket that collects what `serve` sends.
private final class NotifySocket {
    let path: String
    private let fd: Int32

    init() throws {
        path = "/tmp/pw-notify-\(UUID().uuidString.prefix(8)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw TestFailure("cannot bind \(path): \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: 0, tv_usec: 200_000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Every datagram received within `seconds`.
    func collect(for seconds: Double) -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { messages.append(String(decoding: buffer[..<n], as: UTF8.self)) }
        }
        return messages
    }
}

@Suite("systemd: Type=notify", .serialized)
struct SystemdNotifyTests {
    /// READY=1 once subscribed, WATCHDOG=1 repeatedly while a stream is ingested, the counts as
    /// STATUS=, STOPPING=1 on SIGTERM.
    @Test func readyThenWatchdogWhileIngesting() throws {
        try withBrokerAndWorkspace { broker, ws in
            let notify = try NotifySocket()
            let serve = try ws.startServe(port: broker.port, extra: ["--counts-every", "0.5"],
                                          environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            let start = notify.collect(for: 1)
            #expect(start.contains("READY=1"), "\(start)")
            #expect(start.filter { $0 == "READY=1" }.count == 1)
            #expect(start.contains { $0.hasPrefix("STATUS=connected to the broker") }, "\(start)")

            let publisher = Thread {
                try? publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-w1/obs", lines: stream("w", count: 20_000))
            }
            publisher.start()
            let during = notify.collect(for: 5)
            // A ping at half the watchdog interval (1 s here); the loop turns at least once a second.
            #expect(during.filter { $0 == "WATCHDOG=1" }.count >= 2, "pings while ingesting: \(during)")
            #expect(during.contains { $0.hasPrefix("STATUS=counts: received=") }, "\(during)")
            #expect(!during.contains("READY=1"), "ready is said once")
            while publisher.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
            try ws.waitFor("the stream", timeout: 120) { $0.accepted >= 20_000 }
            _ = notify.collect(for: 0.3)
            #expect(serve.terminate() == 0, "\(serve.logText)")
            #expect(notify.collect(for: 0.5).contains("STOPPING=1"))
        }
    }

    /// A manager that does not read (the socket's queue full: 10 datagrams by Linux's default)
    /// never stalls serve: ingest goes on, and SIGTERM stops it.
    @Test func aNotifySocketNobodyReadsDoesNotStallServe() throws {
        try withBrokerAndWorkspace { broker, ws in
            let notify = try NotifySocket()
            let serve = try ws.startServe(port: broker.port, extra: ["--counts-every", "0.2"],
                                          environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"])
            defer { serve.terminate() }
            try serve.waitUntilSubscribed()
            Thread.sleep(forTimeInterval: 3)  // the queue fills: pings every 0.1 s, counts every 0.2 s
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-w3/obs", lines: stream("u", count: 2000))
            try ws.waitFor("the stream, with the queue full", timeout: 60) { $0.accepted >= 2000 }
            #expect(serve.terminate(timeout: 20) == 0, "\(serve.logText)")
            _ = notify
        }
    }

    /// Without NOTIFY_SOCKET (not under systemd) serve runs as before.
    @Test func withoutANotifySocketNothingIsSent() throws {
        try withRunningServe { broker, ws, _ in
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-w2/obs", lines: stream("v", count: 10))
            try ws.waitFor("10 stored") { $0.accepted >= 10 }
        }
    }
}
