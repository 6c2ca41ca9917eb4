#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the metrics endpoint listens: an IP address and a TCP port.
///
/// Written `HOST:PORT` (`127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`) or `PORT` alone, which
/// listens on loopback only (`127.0.0.1`).
///
/// ```swift
/// let address = try ListenAddress(parsing: "9464")   // 127.0.0.1:9464
/// ```
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The IP address, as written (`127.0.0.1`, `::1`).
    public let host: String
    public let port: Int

    /// An address in numeric form; the port may be 0 (any free port, for tests).
    public init(host: String, port: Int) throws(ListenAddressError) {
        guard (0...65_535).contains(port) else { throw .badPort("\(port)") }
        guard Self.family(of: host) != nil else { throw .badHost(host) }
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `PORT`; the port must be 1 to 65535, the host an IPv4 or a
    /// bracketed IPv6 address.
    public init(parsing text: String) throws(ListenAddressError) {
        let host: String
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .badPort(String(rest)) }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw .badHost(host) }  // IPv6 without brackets: where would the port be?
        } else {
            host = "127.0.0.1"
            portText = text[...]
        }
        guard let port = Int(portText), (1...65_535).contains(port) else { throw .badPort(String(portText)) }
        try self.init(host: host, port: port)
    }

    /// `HOST:PORT`, with an IPv6 address in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `AF_INET` or `AF_INET6` when `host` is a numeric address of that family.
    static func family(of host: String) -> Int32? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return AF_INET }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return AF_INET6 }
        return nil
    }
}

/// Why a metrics listen address was refused.
public enum ListenAddressError: Error, Equatable, CustomStringConvertible {
    case badHost(String)
    case badPort(String)

    public var description: String {
        switch self {
        case .badHost(let host):
            return "the host \"\(host)\" is not an IP address; write an IPv4 address (127.0.0.1:9464), an IPv6 one in brackets ([::1]:9464), or the port alone for loopback"
        case .badPort(let port):
            return "the port \"\(port)\" is not a number from 1 to 65535"
        }
    }
}
