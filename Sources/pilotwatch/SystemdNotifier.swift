import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The service manager's notify protocol (`sd_notify(3)`): one datagram per message to the
/// `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
/// Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call does nothing.
///
/// ```swift
/// let notifier = SystemdNotifier()
/// notifier.send("READY=1")
/// notifier.watchdogIfDue()      // from the MQTT loop: WATCHDOG=1 at half of $WATCHDOG_USEC
/// ```
// @unchecked Sendable: `fd`, `address`, `addressLength` and `watchdogInterval` are immutable
// after `init`; `lastWatchdog` is read and written only with `lock` held. `sendto` on a datagram
// socket is safe from several threads.
final class SystemdNotifier: @unchecked Sendable {
    private let fd: Int32
    private var address = sockaddr_un()
    private let addressLength: socklen_t
    /// Half of `$WATCHDOG_USEC` (systemd's advice), nil when no watchdog is asked for.
    let watchdogInterval: Double?
    private let lock = NSLock()
    private var lastWatchdog = Date.distantPast

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let usec = environment["WATCHDOG_USEC"].flatMap(Double.init)
        let pid = environment["WATCHDOG_PID"].flatMap(Int32.init)
        // A watchdog meant for another process (WATCHDOG_PID names it) is not ours.
        watchdogInterval = usec.flatMap { $0 > 0 && (pid == nil || pid == getpid()) ? $0 / 2_000_000 : nil }
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108,
              path.hasPrefix("/") || path.hasPrefix("@") else {
            fd = -1
            addressLength = 0
            return
        }
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Whether a service manager listens.
    var isActive: Bool { fd >= 0 }

    /// Sends one notification (`READY=1`, `STATUS=...`, `STOPPING=1`) without waiting; failures
    /// (a full queue included) are ignored, as `sd_notify` callers do: the service works the
    /// same without its manager hearing.
    func send(_ message: String) {
        guard fd >= 0 else { return }
        let bytes = Array(message.utf8)
        var target = address
        _ = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bytes.withUnsafeBytes {
                    // Never waits: a manager that reads slowly must not stall the MQTT loop.
                    sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), sockaddrPointer, addressLength)
                }
            }
        }
    }

    /// Sends `WATCHDOG=1` when half the watchdog interval has passed since the last one.
    func watchdogIfDue() {
        guard fd >= 0, let interval = watchdogInterval else { return }
        let now = Date()
        let due: Bool = lock.withLock {
            guard now.timeIntervalSince(lastWatchdog) >= interval else { return false }
            lastWatchdog = now
            return true
        }
        if due { send("WATCHDOG=1") }
    }
}
