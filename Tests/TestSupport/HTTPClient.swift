// A plain HTTP/1.x client over a blocking socket, for tests of pilotwatch's metrics endpoint and
// of the Prometheus server that scrapes it.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why a test's HTTP exchange failed.
public struct ClientError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A blocking TCP connection to 127.0.0.1, for talking to the server byte by byte. Every read
/// gives up after `timeout` seconds, so that no test waits forever.
///
/// ```swift
/// let connection = try RawConnection(port: port)
/// connection.send("GET /metrics HTTP/1.1\r\n\r\n")
/// let response = try connection.readResponse()
/// ```
public final class RawConnection {
    public let fd: Int32

    public init(port: Int, timeout: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ClientError("connect to 127.0.0.1:\(port): \(reason)")
        }
    }

    deinit { close(fd) }

    /// Sends every byte; false once the server has closed the connection.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    public func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads until the server closes the connection; throws when it has not within the timeout.
    public func readToEnd() throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw ClientError("the server neither answered nor closed within the timeout (got \(out.count) bytes)")
            }
            if n < 0 && errno == ECONNRESET { return out }
            guard n > 0 else { return out }
            out.append(contentsOf: buffer[..<n])
        }
    }

    /// Reads one response: its head, then as many body bytes as its Content-Length says (the
    /// server waits for the client to close first; an HTTP client does, once it has the body).
    public func readResponse() throws -> HTTPResponse {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let response = try? HTTPResponse(out), let length = response.headers["content-length"].flatMap(Int.init),
               response.bodyBytes >= length {
                return response
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw ClientError("no whole response within the timeout (got \(out.count) bytes)")
            }
            guard n > 0 else { return try HTTPResponse(out) }
            out.append(contentsOf: buffer[..<n])
        }
    }

    /// Whether the server still holds the connection open, without waiting: no data and no
    /// end of stream is pending.
    public var isHeldOpen: Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }
}

/// One parsed HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: String
    public var bodyBytes: Int

    public init(_ bytes: [UInt8]) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw ClientError("no complete response head in: \(text)") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw ClientError("not an HTTP/1.x status line: \(head[0])")
        }
        self.status = status
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw ClientError("not a header line: \(line)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.headers = headers
        body = String(text[split.upperBound...])
        bodyBytes = body.utf8.count
    }
}

/// Sends `request` on a new connection to 127.0.0.1:`port` and reads one response.
public func exchange(port: Int, _ request: String) throws -> HTTPResponse {
    let connection = try RawConnection(port: port)
    connection.send(request)
    return try connection.readResponse()
}
