import Foundation

#if os(Linux)
/// Gives the calling thread its name as the system shows it (`top -H`, `ps -L`, profilers; at
/// most 15 bytes): Foundation's `Thread.name` stays inside Foundation, and glibc's
/// `pthread_setname_np` is not visible to Swift.
func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
#endif
