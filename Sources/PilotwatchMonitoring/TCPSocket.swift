#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few socket calls the metrics server makes, with the platforms' differences in one place.
enum TCPSocket {
    /// A listening, non-blocking socket bound to `address`, and the port it got.
    static func listen(on address: ListenAddress) throws(MetricsServerError) -> (fd: Int32, port: Int) {
        let family = ListenAddress.family(of: address.host) ?? AF_INET
        let fd = socket(family, streamSocketType, 0)
        func failure(_ doing: String) -> MetricsServerError {
            .cannotListen(address: address.description, reason: "\(doing): \(String(cString: strerror(errno)))")
        }
        guard fd >= 0 else { throw failure("socket") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length: socklen_t
        if family == AF_INET6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = UInt16(address.port).bigEndian
            _ = inet_pton(AF_INET6, address.host, &a.sin6_addr)
            withUnsafeBytes(of: a) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(address.port).bigEndian
            _ = inet_pton(AF_INET, address.host, &a.sin_addr)
            withUnsafeBytes(of: a) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { let error = failure("bind"); close(fd); throw error }
        guard startListening(fd, backlog: 64) == 0 else { let error = failure("listen"); close(fd); throw error }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var named = sockaddr_storage()
        var namedLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &named) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &namedLength) }
        }
        let port = withUnsafeBytes(of: named) { raw -> Int in
            family == AF_INET6
                ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
        return (fd, port)
    }

    /// `recv` into `buffer`: bytes read, 0 at the end of the stream, -1 with `errno`.
    static func receive(_ fd: Int32, into buffer: inout [UInt8]) -> Int {
        buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    }

    /// `send` of what the socket takes now, without SIGPIPE: bytes sent, or -1 with `errno`.
    static func sendSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int {
        bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, sendFlags) }
    }

    #if os(Linux)
    static let streamSocketType = Int32(SOCK_STREAM.rawValue)
    static let sendFlags = Int32(MSG_NOSIGNAL)
    static func noSignalOnWrite(_ fd: Int32) {}
    #else
    static let streamSocketType = SOCK_STREAM
    static let sendFlags: Int32 = 0
    static func noSignalOnWrite(_ fd: Int32) {
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
    }
    #endif

    static func close(_ fd: Int32) { _ = closeDescriptor(fd) }
}

// The C calls whose names the enum's own functions take.
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
private func startListening(_ fd: Int32, backlog: Int32) -> Int32 { listen(fd, backlog) }
