import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP server for `/metrics` and `/healthz` (``MetricsHTTP``), on a thread of its own.
///
/// One thread multiplexes every connection with `poll(2)` and non-blocking sockets, so a client
/// that sends slowly, sends garbage or never reads its answer holds only its own connection:
/// each one gets ``Limits/requestTimeout`` from accept to close, and a request head larger than
/// ``Limits/maxRequestBytes`` is answered 431. At ``Limits/maxConnections``, a new connection
/// evicts the oldest one still sending its request. Once answered, a connection is closed when
/// the client closes it, or 2 s later. Nothing here touches the caller's threads: `render` runs
/// on the server's thread, once per `GET /metrics`.
///
/// ```swift
/// let server = try MetricsHTTPServer(address: "127.0.0.1", port: 9464) { metrics.render() }
/// server.start()
/// ...
/// server.stop()
/// ```
// @unchecked Sendable: `listenFD`, `stopRead`, `stopWrite`, `limits`, `render`, `address` and
// `done` are immutable after `init` (`done` is a semaphore, itself thread-safe); `started` and
// `stopped` are read and written only with `lock` held. The connections live in `loop()`'s local
// state, on the server's thread only.
public final class MetricsHTTPServer: @unchecked Sendable {
    /// What one client may use.
    public struct Limits: Sendable {
        /// Bytes of request head (request line and headers) read before answering 431.
        public var maxRequestBytes: Int
        /// Time from accept to close: to send the request, and to read the answer.
        public var requestTimeout: Duration
        /// Connections handled at once.
        public var maxConnections: Int

        /// 8 KiB, 10 s, 16 connections.
        public init(maxRequestBytes: Int = 8192, requestTimeout: Duration = .seconds(10), maxConnections: Int = 16) {
            self.maxRequestBytes = max(64, maxRequestBytes)
            self.requestTimeout = max(requestTimeout, .milliseconds(1))
            self.maxConnections = max(1, maxConnections)
        }
    }

    /// The address it listens on, with the port the system chose when given 0.
    public let address: ListenAddress
    private let limits: Limits
    private let render: @Sendable () -> [UInt8]
    private let listenFD: Int32
    private let stopRead: Int32
    private let stopWrite: Int32
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var started = false
    private var stopped = false

    /// Binds and listens at once (so that a port in use is an error here, not in the thread).
    public init(address: ListenAddress, limits: Limits = Limits(), render: @escaping @Sendable () -> [UInt8]) throws(MetricsServerError) {
        self.limits = limits
        self.render = render
        let (fd, port) = try TCPSocket.listen(on: address)
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .cannotListen(address: address.description, reason: "cannot make a pipe: \(reason)")
        }
        for end in pipeFDs { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        listenFD = fd
        stopRead = pipeFDs[0]
        stopWrite = pipeFDs[1]
        self.address = (try? ListenAddress(host: address.host, port: port)) ?? address
    }

    /// ``init(address:limits:render:)`` with the host and port apart.
    public convenience init(address host: String, port: Int, limits: Limits = Limits(),
                            render: @escaping @Sendable () -> [UInt8]) throws(MetricsServerError) {
        let address: ListenAddress
        do {
            address = try ListenAddress(host: host, port: port)
        } catch {
            throw .cannotListen(address: "\(host):\(port)", reason: error.description)
        }
        try self.init(address: address, limits: limits, render: render)
    }

    deinit {
        stop()
        close(listenFD)
        close(stopRead)
        close(stopWrite)
    }

    /// Starts answering, on a thread of its own. Once only.
    public func start() {
        lock.lock()
        precondition(!started, "MetricsHTTPServer.start() called twice")
        started = true
        lock.unlock()
        let thread = Thread { [self] in
            self.loop()
            self.done.signal()
        }
        thread.name = "pilotwatch.metrics-http"
        thread.start()
    }

    /// Stops answering: closes every connection and waits for the thread. The port is released
    /// when the server is deinitialised.
    public func stop() {
        lock.lock()
        let running = started && !stopped
        stopped = true
        lock.unlock()
        guard running else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
        done.wait()
    }

    // MARK: - The connection loop

    private final class Connection {
        enum Phase { case reading, writing, draining }
        let fd: Int32
        var deadline: ContinuousClock.Instant
        var phase = Phase.reading
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var isOpen = true

        init(fd: Int32, deadline: ContinuousClock.Instant) {
            self.fd = fd
            self.deadline = deadline
        }

        func close() {
            if isOpen { TCPSocket.close(fd) }
            isOpen = false
        }
    }

    private func loop() {
        var connections: [Connection] = []
        defer { connections.forEach { $0.close() } }
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.phase == .writing ? POLLOUT : POLLIN), revents: 0))
            }
            let ready = poll(&fds, nfds_t(fds.count), Self.milliseconds(until: connections.map(\.deadline).min()))
            if ready < 0 {
                if errno != EINTR { usleep(100_000) }  // out of memory for poll: try again shortly
                continue
            }
            if fds[0].revents != 0 { return }
            for (index, c) in connections.enumerated() where fds[index + 2].revents != 0 {
                serve(c, revents: fds[index + 2].revents, scratch: &scratch)
            }
            let now = ContinuousClock.now
            for c in connections where c.isOpen && c.deadline <= now {
                if c.phase == .reading && !c.input.isEmpty {
                    _ = TCPSocket.sendSome(c.fd, MetricsHTTP.timedOut.bytes[...])  // best effort: the client is stuck anyway
                }
                c.close()
            }
            connections.removeAll { !$0.isOpen }
            if fds[1].revents & Int16(POLLIN) != 0 { acceptAll(into: &connections) }
        }
    }

    /// Accepts every pending connection; at the limit, each evicts the oldest one already
    /// answered, else the oldest one still sending its request, else the oldest one.
    private func acceptAll(into connections: inout [Connection]) {
        while true {
            let fd = accept(listenFD, nil, nil)
            guard fd >= 0 else {
                // EAGAIN: none left. Out of descriptors or memory: the connection stays queued and
                // the listening socket readable, so wait a little rather than spin.
                if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(errno) { usleep(100_000) }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            TCPSocket.noSignalOnWrite(fd)
            if connections.count >= limits.maxConnections {
                let victim = connections.firstIndex { $0.phase == .draining }
                    ?? connections.firstIndex { $0.phase == .reading } ?? 0
                connections[victim].close()
                connections.remove(at: victim)
            }
            connections.append(Connection(fd: fd, deadline: ContinuousClock.now + limits.requestTimeout))
        }
    }

    /// Moves one connection on, as far as its socket allows without waiting.
    private func serve(_ c: Connection, revents: Int16, scratch: inout [UInt8]) {
        switch c.phase {
        case .reading:
            let n = TCPSocket.receive(c.fd, into: &scratch)
            guard n > 0 else {
                if n == 0 || errno != EAGAIN && errno != EINTR { c.close() }
                return
            }
            c.input.append(contentsOf: scratch[..<n])
            let response: MetricsHTTP.Response
            if let length = MetricsHTTP.headLength(in: c.input), length <= limits.maxRequestBytes {
                response = MetricsHTTP.respond(toHead: Array(c.input[..<length]), render: render)
            } else if c.input.count > limits.maxRequestBytes {
                response = MetricsHTTP.headTooLarge
            } else {
                return
            }
            c.input = []
            c.output = response.bytes
            c.phase = .writing
            flush(c)
        case .writing:
            if revents & Int16(POLLERR | POLLHUP) != 0 && revents & Int16(POLLOUT) == 0 { c.close(); return }
            flush(c)
        case .draining:
            // What the client still sends after the answer is read and dropped until it closes,
            // so that closing does not reset the connection before the client has read it all.
            let n = TCPSocket.receive(c.fd, into: &scratch)
            if n == 0 || n < 0 && errno != EAGAIN && errno != EINTR { c.close() }
        }
    }

    /// Sends what the socket takes of the answer; once all is sent, shuts the writing side.
    private func flush(_ c: Connection) {
        let n = TCPSocket.sendSome(c.fd, c.output[c.sent...])
        if n < 0 {
            if errno != EAGAIN && errno != EINTR { c.close() }
            return
        }
        c.sent += n
        if c.sent == c.output.count {
            c.output = []
            _ = shutdown(c.fd, Int32(SHUT_WR))
            c.phase = .draining
            c.deadline = min(c.deadline, ContinuousClock.now + Self.linger)
        }
    }

    /// How long, at most, a client that has its answer may keep sending before the connection
    /// is closed under it.
    private static let linger = Duration.seconds(2)

    private static func milliseconds(until deadline: ContinuousClock.Instant?) -> Int32 {
        guard let deadline else { return -1 }
        let left = deadline - ContinuousClock.now
        if left <= .zero { return 0 }
        let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
        return Int32(min(ms, 60_000))
    }
}

/// Why the metrics endpoint could not be served.
public enum MetricsServerError: Error, Equatable, CustomStringConvertible {
    case cannotListen(address: String, reason: String)

    public var description: String {
        switch self {
        case .cannotListen(let address, let reason):
            return "cannot serve metrics on \(address) (\(reason)); choose another address or port, or stop what listens there"
        }
    }
}
