// How often a paused subscriber still reads its socket, so that the connection survives the pause.

/// The reads a subscriber makes while the application's read gate is closed.
///
/// libmosquitto 2.0's keep-alive check (`mosquitto__check_keepalive`, run by
/// `mosquitto_loop_misc`) queues a PINGREQ once `keepAlive` seconds pass without a packet written
/// or read, and closes the socket itself if, at its next check, the PINGRESP has not been *read*.
/// That next check comes `keepAlive` seconds later, or about one second sooner because libmosquitto
/// counts whole seconds. Reading every half keep-alive (at least every second) consumes the
/// PINGRESP in time: the first read after the PINGREQ either finds it (it comes back within a
/// round trip) or happened too early, and then the next one, half a keep-alive later, finds it.
///
/// ```swift
/// var reads = KeepAliveReads(keepAlive: 30)      // a read every 15 s while paused
/// if reads.isDue() { /* read one batch */ reads.noteRead() }
/// let timeout = reads.pollTimeout()               // at most 100 ms: the gate is asked again
/// ```
struct KeepAliveReads {
    /// How long a paused poll waits at most before the read gate is asked again.
    static let gateRecheck: Duration = .milliseconds(100)

    /// The longest a paused subscriber goes without reading its socket.
    let interval: Duration
    private(set) var lastRead: ContinuousClock.Instant

    init(keepAlive: Int, now: ContinuousClock.Instant = .now) {
        interval = duration(seconds: max(Double(keepAlive) / 2, 1))
        lastRead = now
    }

    /// Records a read of the socket, whether or not the gate was open and anything was there.
    mutating func noteRead(at now: ContinuousClock.Instant = .now) {
        lastRead = now
    }

    /// True when a paused subscriber must read now to keep its connection.
    func isDue(at now: ContinuousClock.Instant = .now) -> Bool {
        now >= lastRead + interval
    }

    /// Milliseconds a paused `poll` may wait: until the next read is due, at most `gateRecheck`.
    func pollTimeout(at now: ContinuousClock.Instant = .now) -> Int32 {
        let remaining = now.duration(to: lastRead + interval)
        if remaining <= .zero { return 0 }
        let capped = min(remaining, Self.gateRecheck)
        let (seconds, attoseconds) = capped.components
        return Int32(seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}
