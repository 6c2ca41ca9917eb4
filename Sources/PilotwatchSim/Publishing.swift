import Foundation
import Logging
import MQTT
import PilotwatchCore

/// How fast to publish a simulation.
public struct Pacing: Sendable, Hashable {
    /// Simulated seconds per real second; nil or 0: as fast as the broker acknowledges.
    public var speed: Double?
    /// At most this many messages per real second; nil: no limit.
    public var rate: Double?
    public init(speed: Double? = nil, rate: Double? = nil) { self.speed = speed; self.rate = rate }

    /// Real seconds from the start at which message number `index` (0-based), simulated at `at`, may go,
    /// the stream's first message being simulated at `origin`.
    public func due(index: Int, at: Instant, origin: Instant) -> Double {
        var due = 0.0
        if let speed, speed > 0 { due = max(due, Double(at.millis - origin.millis) / 1000 / speed) }
        if let rate, rate > 0 { due = max(due, Double(index) / rate) }
        return due
    }
}

/// Publishes a simulation over MQTT at QoS 1: one client per pilot (client id `sim-{pilot}`), as each
/// pilot's fleet would have its own connection. Status messages are retained.
///
/// ```swift
/// let summary = try SimulationPublisher(simulation: sim, broker: config, logger: logger)
///     .run(pacing: Pacing(rate: 2000)) { fraction, summary in draw(fraction) }
/// ```
public struct SimulationPublisher {
    public var simulation: Simulation
    /// Broker address, credentials and TLS; the client id is replaced by `sim-{pilot}`.
    public var broker: MQTTConfiguration
    public var logger: Logger
    /// Seconds to wait at the end for the broker to acknowledge everything.
    public var acknowledgeTimeout: Double = 120

    public init(simulation: Simulation, broker: MQTTConfiguration, logger: Logger = Logger(label: "pilotwatch.simulate")) {
        self.simulation = simulation; self.broker = broker; self.logger = logger
    }

    /// A publisher to a plain (no TLS, anonymous) broker at `host:port`.
    public init(simulation: Simulation, host: String, port: Int, logger: Logger = Logger(label: "pilotwatch.simulate")) {
        self.init(simulation: simulation, broker: MQTTConfiguration(host: host, port: port, clientID: "sim"), logger: logger)
    }

    /// Connects every pilot's client, publishes the stream, waits for every acknowledgement and
    /// disconnects. `progress` is called now and then with the share of simulated time done.
    /// Throws `MQTTError` (which names the broker's host:port) when the broker cannot be reached.
    public func run(pacing: Pacing = Pacing(), progress: (Double, SimulationSummary) -> Void = { _, _ in }) throws -> SimulationSummary {
        var clients: [String: MQTTPublisher] = [:]
        defer { for c in clients.values { c.disconnect() } }
        for plan in simulation.scenario.pilots where clients[plan.pilot.id] == nil {
            var config = broker
            config.clientID = "sim-" + plan.pilot.id
            let client = try MQTTPublisher(configuration: config, logger: logger)
            try client.connect()
            clients[plan.pilot.id] = client
        }
        var summary = SimulationSummary()
        let clock = ContinuousClock()
        let started = clock.now
        let windowStart = simulation.windowStart
        let span = Double(max(1, simulation.end.millis - windowStart.millis))
        var origin: Instant?
        var lastReport = started
        for m in simulation {
            let first = origin ?? m.at
            origin = first
            let due = pacing.due(index: summary.published, at: m.at, origin: first)
            let elapsed = clock.now - started
            let wait = due - Double(elapsed.components.seconds) - Double(elapsed.components.attoseconds) * 1e-18
            if wait > 0.0005 { Thread.sleep(forTimeInterval: wait) }
            guard let client = clients[m.pilot] else { continue }
            try client.publish(topic: m.topic, payload: m.payload, qos: 1, retain: m.retain)
            summary.add(m)
            if clock.now - lastReport > .milliseconds(100) {
                lastReport = clock.now
                progress(Double(m.at.millis - windowStart.millis) / span, summary)
            }
        }
        for c in clients.values { try c.waitForAllAcknowledged(timeout: acknowledgeTimeout) }
        progress(1, summary)
        return summary
    }
}
