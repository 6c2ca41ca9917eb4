import Foundation
import PilotwatchStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The local socket (`{database}.sock`) through which maintenance commands hand their writes
/// to the running `serve`, the store's one writer (see ``WriterLock``).
///
/// Why a socket rather than a request table: the work a command hands over can be a whole
/// NDJSON file, and such bytes must not pass through the database before they are validated
/// (a refused line may hold identifying data); a socket carries them to `serve`'s validator
/// and leaves nothing behind. `serve` runs the requests one at a time on the channel's thread,
/// with the same store as its applier, whose writes GRDB serialises with the applier's
/// batches: the work is done between batches, by the one writer.
///
/// One request per connection: a JSON line (``ServeRequest``), then for `ingest` the NDJSON
/// bytes until the client shuts its side down; `serve` answers with one JSON line
/// (``ServeReply``). The socket is made by `serve` while it holds the writer lock, mode 0660.
enum ServeChannel {
    static func socketPath(forDatabase database: String) -> String { database + ".sock" }
}

/// What a command asks of `serve`.
struct ServeRequest: Codable, Sendable {
    enum Operation: String, Codable, Sendable {
        /// Import the NDJSON that follows the request line.
        case ingest
        /// Re-validate the quarantine (filtered) and import what now passes.
        case replay
        /// Answer once everything acknowledged before the request is in SQLite.
        case sync
        /// Erase a subject (`subjects erase`), between two of the applier's batches.
        case erase
        /// Apply the retention policy (`db purge`) as it stands at `sinceMillis` (the as-of time).
        case purge
        /// Build and send again a site's day ends of `pilot` from `sinceMillis` on (`federate --resend`).
        case resend
        /// Remove the raw rows of `pilot`, switched to aggregates (`pilots switch-to-aggregates`),
        /// with the registry reloaded first, between two of the applier's batches.
        case removeRawRows = "remove_raw_rows"
    }

    var op: Operation
    /// `ingest`: the name its refusals are recorded under (`ingest:{source}:{line}`).
    var source: String?
    /// `ingest`, `replay`: messages per transaction.
    var batch: Int?
    /// `replay`: the filter; `erase`: the subject's pilot.
    var pilot: String?
    /// `erase`: the pseudonym (over the local socket only; never logged).
    var subject: String?
    var reason: String?
    var sinceMillis: Int64?
}

/// What `serve` answers: the counts of what it did, or why it could not.
struct ServeReply: Codable, Sendable {
    init(ok: Bool, error: String? = nil, counts: [String: Int]? = nil, refusedByReason: [String: Int]? = nil,
         erasure: ErasureSummary? = nil, removal: RawRowsRemoval? = nil) {
        self.ok = ok; self.error = error; self.counts = counts; self.refusedByReason = refusedByReason; self.erasure = erasure
        self.removal = removal
    }

    var ok: Bool
    var error: String?
    var counts: [String: Int]?
    var refusedByReason: [String: Int]?
    /// `erase`: what was removed.
    var erasure: ErasureSummary?
    /// `remove_raw_rows`: what was removed.
    var removal: RawRowsRemoval?

    static func failure(_ message: String) -> ServeReply { ServeReply(ok: false, error: message) }
}

/// Why talking to `serve` failed.
struct ServeChannelError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `serve`'s side: accepts one connection at a time on its own thread and runs `handler`.
// @unchecked Sendable: `listenFD`, `stopRead`, `stopWrite`, `path`, `handler` and `done` are
// immutable after `init`; `started` is written only by `start()` and read by `stop()`, both called
// from the thread that owns the server (serve's main thread), never concurrently; `active` is
// read and written only with `lock` held.
final class ServeChannelServer: @unchecked Sendable {
    let path: String
    private let listenFD: Int32
    private let stopRead: Int32
    private let stopWrite: Int32
    private let handler: @Sendable (ServeRequest, ServeConnection) -> ServeReply
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    private let lock = NSLock()
    /// The connection being handled, if any.
    private var active: Int32 = -1

    /// Binds the socket at `path` (replacing a stale one: the caller holds the writer lock, so no
    /// other server can be listening there).
    init(path: String, handler: @escaping @Sendable (ServeRequest, ServeConnection) -> ServeReply) throws {
        self.path = path
        self.handler = handler
        unlink(path)
        let (fd, bound) = try streamSocket(at: path) { fd, address, length in bind(fd, address, length) }
        guard bound == 0, chmod(path, 0o660) == 0, listen(fd, 8) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ServeChannelError("cannot listen on \(path): \(reason)")
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            close(fd)
            throw ServeChannelError("cannot make a pipe: \(String(cString: strerror(errno)))")
        }
        listenFD = fd
        stopRead = pipeFDs[0]
        stopWrite = pipeFDs[1]
    }

    deinit {
        close(listenFD)
        close(stopRead)
        close(stopWrite)
    }

    func start() {
        precondition(!started, "ServeChannelServer.start() called twice")
        started = true
        let thread = Thread { [self] in
            self.loop()
            self.done.signal()
        }
        thread.name = "pilotwatch.serve-channel"
        thread.start()
    }

    /// Stops accepting and removes the socket. A request being handled is cut off (its
    /// connection shut down): an import stops at the line it was on, with what came before it
    /// stored, and its command reports that serve stopped.
    func stop() {
        guard started else { unlink(path); return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
        lock.withLock { if active >= 0 { _ = shutdown(active, Int32(SHUT_RDWR)) } }
        done.wait()
        unlink(path)
    }

    private func loop() {
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let connection = ServeConnection(fd: client)
            let stopping = lock.withLock { () -> Bool in
                active = client
                var fd = pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)
                return poll(&fd, 1, 0) > 0
            }
            defer { lock.withLock { active = -1 } }
            if stopping { return }
            let reply: ServeReply
            if let request = connection.readRequest() {
                reply = handler(request, connection)
            } else {
                reply = .failure("the request line is not a pilotwatch request")
            }
            connection.send(reply)
            connection.close()
        }
    }
}

/// One accepted connection: its request line, then its body, read by the handler.
final class ServeConnection: @unchecked Sendable {
    // @unchecked Sendable: used by one thread only (the server's), from accept to close.
    let fd: Int32
    private var closed = false

    init(fd: Int32) { self.fd = fd }

    deinit { close() }

    func close() {
        if !closed { closeDescriptor(fd) }
        closed = true
    }

    /// Reads the request line byte by byte (so that the body stays unread in the socket). A
    /// client that sends no whole line within 10 s is dropped, and one whose body then pauses
    /// for more than 5 minutes, so that no client can hold the channel for good.
    func readRequest() -> ServeRequest? {
        setReceiveTimeout(seconds: 10)
        defer { setReceiveTimeout(seconds: 300) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 65_536 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return nil }
            if byte == 0x0A { break }
            line.append(byte)
        }
        return try? JSONDecoder().decode(ServeRequest.self, from: Data(line))
    }

    private func setReceiveTimeout(seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ reply: ServeReply) {
        guard var bytes = try? JSONEncoder().encode(reply) else { return }
        bytes.append(0x0A)
        _ = writeAll(fd, Array(bytes))
    }
}

/// A command's side of the channel.
final class ServeChannelClient {
    private let fd: Int32

    /// Connects to the `serve` of the store at `database`; retries for up to `seconds` while it
    /// is starting (the lock is taken before the socket listens).
    init(database: String, seconds: Double = 10) throws {
        let path = ServeChannel.socketPath(forDatabase: database)
        let deadline = Date(timeIntervalSinceNow: seconds)
        while true {
            let (fd, rc) = try streamSocket(at: path) { fd, address, length in connect(fd, address, length) }
            if rc == 0 {
                self.fd = fd
                return
            }
            let reason = String(cString: strerror(errno))
            close(fd)
            if Date() >= deadline {
                throw ServeChannelError("cannot reach the running `pilotwatch serve` through \(path): \(reason)")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    deinit { close(fd) }

    func send(_ request: ServeRequest) throws {
        var bytes = Array(try JSONEncoder().encode(request))
        bytes.append(0x0A)
        try sendBody(bytes)
    }

    func sendBody(_ bytes: [UInt8]) throws {
        guard writeAll(fd, bytes) else {
            throw ServeChannelError("`pilotwatch serve` closed the connection: \(String(cString: strerror(errno)))")
        }
    }

    /// Says that the body is complete.
    func finishSending() { _ = shutdown(fd, Int32(SHUT_WR)) }

    /// Waits for `serve`'s answer; throws its refusal as the error of `what` it could not do.
    func answer(doing what: String) throws -> ServeReply {
        let reply = try reply()
        guard reply.ok else { throw CLIError("`pilotwatch serve` could not \(what): \(reply.error ?? "no reason given")") }
        return reply
    }

    /// Waits for `serve`'s answer.
    func reply() throws -> ServeReply {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !line.contains(0x0A) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            line.append(contentsOf: buffer[..<n])
        }
        let text = line.split(separator: 0x0A).first.map(Array.init) ?? []
        guard let reply = try? JSONDecoder().decode(ServeReply.self, from: Data(text)) else {
            throw ServeChannelError("`pilotwatch serve` ended the connection without an answer (it stopped, or see its log); what it had received before is stored, and running the command again is safe (what is stored is recognised)")
        }
        return reply
    }
}

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// Writes every byte (through `EINTR`); false when the peer is gone. SIGPIPE is not raised.
private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        done += n
    }
    return true
}

/// A new Unix stream socket (close-on-exec) and what `call` (bind or connect) returned for it at
/// `path`; the socket is closed if `path` cannot be addressed.
private func streamSocket(at path: String,
                          _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) throws -> (fd: Int32, result: Int32) {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServeChannelError("cannot make a socket: \(String(cString: strerror(errno)))") }
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    do {
        return (fd, try withSocketAddress(path) { address, length in call(fd, address, length) })
    } catch {
        close(fd)
        throw error
    }
}

/// Calls `body` with a `sockaddr_un` for `path`. A path too long for `sun_path` (108 bytes) is
/// reached through its folder's descriptor: `/proc/self/fd/N/name`.
private func withSocketAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) throws -> Int32 {
    var target = path
    var folderFD: Int32 = -1
    defer { if folderFD >= 0 { close(folderFD) } }
    var address = sockaddr_un()
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    if target.utf8.count >= capacity {
        let url = URL(fileURLWithPath: path)
        folderFD = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folderFD >= 0 else { throw ServeChannelError("cannot open the folder of \(path): \(String(cString: strerror(errno)))") }
        target = "/proc/self/fd/\(folderFD)/\(url.lastPathComponent)"
        guard target.utf8.count < capacity else { throw ServeChannelError("the socket name \(path) is too long") }
    }
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: Array(target.utf8) + [0])
    }
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}
