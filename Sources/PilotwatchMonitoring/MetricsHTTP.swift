/// The HTTP side of the metrics endpoint without the sockets: a request head in, a response out.
///
/// Only `GET /metrics` (the Prometheus text format) and `GET /healthz` (`ok`) are answered; any
/// other method on those paths is 405, any other path 404, a head that is not HTTP/1.x 400.
/// Every response closes the connection.
///
/// ```swift
/// let response = MetricsHTTP.respond(toHead: Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)) { registry.emitToBuffer() }
/// response.status   // 200
/// ```
public enum MetricsHTTP {
    /// The content type of the Prometheus text exposition format, version 0.0.4.
    public static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// One response, ready to send.
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var reason: String
        public var contentType: String
        /// Extra headers (`Allow` on a 405).
        public var headers: [String]
        public var body: [UInt8]

        /// A short plain-text response.
        static func text(_ status: Int, _ reason: String, _ body: String, headers: [String] = []) -> Response {
            Response(status: status, reason: reason, contentType: "text/plain; charset=utf-8", headers: headers,
                     body: Array(body.utf8))
        }

        /// The status line, the headers and the body, as sent.
        public var bytes: [UInt8] {
            var head = "HTTP/1.1 \(status) \(reason)\r\n"
            head += "Content-Type: \(contentType)\r\n"
            head += "Content-Length: \(body.count)\r\n"
            for header in headers { head += header + "\r\n" }
            head += "Connection: close\r\n\r\n"
            return Array(head.utf8) + body
        }
    }

    /// The answer to a request whose head grew past the size limit before it ended.
    public static let headTooLarge = Response.text(431, "Request Header Fields Too Large", "request head too large\n")

    /// The answer to a request not complete by the deadline.
    public static let timedOut = Response.text(408, "Request Timeout", "request not received in time\n")

    /// The length of the request head in `buffer` (through the blank line that ends it), or nil
    /// while it is incomplete. A bare LF is accepted for CRLF.
    public static func headLength(in buffer: [UInt8]) -> Int? {
        var index = 0
        while index < buffer.count {
            if buffer[index] == 0x0A {
                if index + 1 < buffer.count && buffer[index + 1] == 0x0A { return index + 2 }
                if index + 2 < buffer.count && buffer[index + 1] == 0x0D && buffer[index + 2] == 0x0A { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// The response to a complete request head; `render` is called for `GET /metrics` only.
    public static func respond(toHead head: [UInt8], render: () -> [UInt8]) -> Response {
        let firstLine = head.prefix { $0 != 0x0A && $0 != 0x0D }
        let parts = firstLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].starts(with: Array("HTTP/1.".utf8)),
              !parts[0].isEmpty, parts[0].allSatisfy({ (0x41...0x5A).contains($0) }),
              parts[1].first == 0x2F  // "/"
        else {
            return .text(400, "Bad Request", "not an HTTP/1.x request line\n")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let path = String(decoding: parts[1].prefix { $0 != 0x3F }, as: UTF8.self)  // up to "?"
        switch path {
        case "/metrics", "/healthz":
            guard method == "GET" else {
                return .text(405, "Method Not Allowed", "only GET is allowed here\n", headers: ["Allow: GET"])
            }
            if path == "/healthz" { return .text(200, "OK", "ok\n") }
            return Response(status: 200, reason: "OK", contentType: metricsContentType, headers: [], body: render())
        default:
            return .text(404, "Not Found", "not found; this endpoint serves /metrics and /healthz\n")
        }
    }
}
