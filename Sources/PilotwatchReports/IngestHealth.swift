import PilotwatchCore
import PilotwatchStore

/// Whether ingest runs, told from `serve`'s heartbeat in the store: the line the views open
/// with, so that a pilot that looks silent is not blamed for our own outage.
///
/// ```swift
/// let health = IngestHealth.evaluate(try store.heartbeat(), now: .now)
/// print(health.line(now: now, colour: true))   // INGEST STOPPED since 2026-12-04 14:02 UTC ...
/// ```
public struct IngestHealth: Sendable, Equatable {
    public enum State: String, Sendable {
        /// serve beats and is connected to the broker (or has been disconnected only briefly).
        case running
        /// serve beats but has been disconnected from the broker for longer than the bound.
        case disconnected
        /// No beat within the bound, a clean stop, or serve never ran on this store.
        case stopped
    }

    /// A heartbeat older than this (or a disconnection longer) makes ingest unwell: 2 minutes.
    public static let defaultStaleAfter: Double = 120

    public var state: State
    /// Since when ingest is in this state (nil: serve never ran on this store).
    public var since: Instant?
    public var heartbeat: ServiceHeartbeat?

    /// Views' silence flags over the gap may be ingest's doing, not the pilots'.
    public var silenceMayBeOurs: Bool { state != .running }

    /// The state `heartbeat` shows at `now`.
    public static func evaluate(_ heartbeat: ServiceHeartbeat?, now: Instant,
                                staleAfter: Double = defaultStaleAfter) -> IngestHealth {
        guard let h = heartbeat else { return IngestHealth(state: .stopped, since: nil, heartbeat: nil) }
        let bound = Int64(staleAfter * 1000)
        if let stopped = h.stoppedAt { return IngestHealth(state: .stopped, since: stopped, heartbeat: h) }
        if now.millis - h.beatAt.millis > bound { return IngestHealth(state: .stopped, since: h.beatAt, heartbeat: h) }
        if !h.brokerConnected && now.millis - h.connectionSince.millis > bound {
            return IngestHealth(state: .disconnected, since: h.connectionSince, heartbeat: h)
        }
        return IngestHealth(state: .running, since: h.startedAt, heartbeat: h)
    }

    /// The lines for a terminal (within 80 columns); loud when ingest is unwell.
    public func line(now: Instant, colour: Bool) -> String {
        let ours = "  silence flags below may be ours, not the pilots'"
        let red = Graphics.Colour.red
        switch state {
        case .stopped:
            guard let since else {
                return red.paint("INGEST NOT RUNNING: `pilotwatch serve` never ran on this store", colour) + "\n" + red.paint(ours, colour)
            }
            let why = heartbeat?.stoppedAt != nil ? "serve stopped" : "no heartbeat from serve for \(Self.duration(now.millis - since.millis))"
            return red.paint("INGEST STOPPED since \(Graphics.minute(since)) UTC (\(why))", colour) + "\n" + red.paint(ours, colour)
        case .disconnected:
            let how = Self.duration(now.millis - (since?.millis ?? now.millis))
            return red.paint("BROKER DISCONNECTED since \(Graphics.minute(since)) UTC (\(how))", colour) + "\n" + red.paint(ours, colour)
        case .running:
            guard let h = heartbeat else { return "ingest: running" }
            var parts = ["ingest: running since \(Graphics.minute(h.startedAt)) UTC"]
            parts.append(h.brokerConnected ? "broker connected" : "broker reconnecting for \(Self.duration(now.millis - h.connectionSince.millis))")
            parts.append(h.lastMessageAt.map { "last message \(Self.duration(now.millis - $0.millis)) ago" } ?? "no message yet")
            parts.append("backlog \(h.backlogBytes) bytes" + (h.applyLagMillis > 0 ? ", for \(Self.duration(h.applyLagMillis))" : ""))
            return Graphics.wrap(parts, separator: ", ").map { Graphics.Colour.dim.paint($0, colour) }.joined(separator: "\n")
        }
    }

    /// The `ingest` object of the views' JSON.
    public func write(into o: inout JSONWriter) {
        o.objectField("ingest") { i in
            i.field("state", state.rawValue)
            i.field("since", since?.description)
            i.field("silence_may_be_ours", silenceMayBeOurs)
            i.field("last_beat", heartbeat?.beatAt.description)
            i.field("broker_connected", heartbeat?.brokerConnected)
            i.field("last_message_at", heartbeat?.lastMessageAt?.description)
            i.field("backlog_bytes", heartbeat.map { Int($0.backlogBytes) })
            i.field("apply_lag_seconds", heartbeat.map { Double($0.applyLagMillis) / 1000 })
        }
    }

    /// `45 s`, `12 min`, `3 h`, `2 d`.
    static func duration(_ millis: Int64) -> String {
        let s = max(0, millis / 1000)
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return "\(s / 86_400) d"
    }
}
