import Foundation

/// How much of the machine's CPU time the work around the applier leaves idle: the share of
/// all cores' time, between two samples, that was idle or used by the calling thread itself.
///
/// The applier asks it on its own thread before starting on records that are due: at light load
/// (the broker, the receiving thread and whatever else runs leave a good share idle), SQLite work
/// fits beside receiving; at full load it would take CPU from acknowledging.
///
/// ```swift
/// var spare = SpareCPU()
/// if let share = spare.sample(), share >= 0.25 { applyNow() }
/// ```
///
/// Linux only (`/proc/stat` and the thread's CPU clock); elsewhere ``sample()`` returns nil.
struct SpareCPU {
    private var last: (busy: UInt64, idle: UInt64, own: UInt64)?

    private var share: Double?

    /// Starts a new window: the next ``sample()`` measures from now.
    mutating func restart() {
        guard let (busy, idle) = Self.machineTicks() else { return }
        last = (busy, idle, Self.threadTicks())
        share = nil
    }

    /// The share (0...1) of CPU time idle or used by this thread since the previous sample; nil
    /// on the first sample or when the kernel's counters cannot be read. Until 20 clock ticks
    /// of CPU time (0.1 s on two cores) have passed since the previous sample, the previous
    /// figure (too few ticks to tell).
    mutating func sample() -> Double? {
        guard let (busy, idle) = Self.machineTicks() else { return nil }
        let own = Self.threadTicks()
        guard let last, busy >= last.busy, idle >= last.idle else {
            self.last = (busy, idle, own)
            return nil
        }
        let total = (busy - last.busy) + (idle - last.idle)
        guard total >= 20 else { return share }
        let ownTicks = own >= last.own ? own - last.own : 0
        share = min(1, Double(idle - last.idle + ownTicks) / Double(total))
        self.last = (busy, idle, own)
        return share
    }

    /// Busy and idle time of all cores since boot, in clock ticks (`/proc/stat`, first line:
    /// user nice system idle iowait irq softirq steal).
    static func machineTicks() -> (busy: UInt64, idle: UInt64)? {
        #if os(Linux)
        let fd = open("/proc/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n > 5 else { return nil }
        let line = buffer[0..<n].prefix { $0 != UInt8(ascii: "\n") }
        let fields = line.split(separator: UInt8(ascii: " ")).dropFirst().prefix(8)
            .compactMap { UInt64(String(decoding: $0, as: UTF8.self)) }
        guard fields.count >= 5 else { return nil }
        let idle = fields[3] + fields[4]
        return (fields.reduce(0, +) - idle, idle)
        #else
        return nil
        #endif
    }

    /// Clock ticks a second (USER_HZ), the unit of `/proc/stat`.
    static let ticksPerSecond = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// CPU time of the calling thread, in the same clock ticks.
    static func threadTicks() -> UInt64 {
        #if os(Linux)
        var t = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 else { return 0 }
        return UInt64(t.tv_sec) * ticksPerSecond + UInt64(t.tv_nsec) * ticksPerSecond / 1_000_000_000
        #else
        return 0
        #endif
    }
}
