import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// A site instance's sending of day-end snapshots (federation.md), on a thread of its own in
/// `serve`: each round builds, for every forwarded pilot, the day ends that are over (their end
/// plus `grace` is past) and not built yet, from the pilot's start or the last one built; applies
/// disclosure control with what was published before; puts each in the outbox with the state it
/// leaves (one transaction); then publishes the outbox at QoS 1 to the cluster's broker and
/// removes each snapshot only once the broker acknowledged it. A broker or network outage delays
/// snapshots and loses none: the outbox is in the store, and a restart goes on from it.
// @unchecked Sendable: the configuration, clock, store, logger, condition and the `settled` closure
// (itself Sendable) are immutable after init (Store is thread-safe); `stopping` and `thread` are read and written with `condition` locked;
// `publisher` only on the loop's thread.
final class FederationLoop: @unchecked Sendable {
    private let ctx: Context
    private let federation: FederationSettings
    private let store: Store
    private let logger: Logger
    private let every: Double
    /// The time taken for now when deciding which day ends are due (`serve --federate-now`,
    /// tests); nil: the clock.
    private let fixedNow: Instant?
    private let condition = NSCondition()
    private var stopping = false
    private var finished = false
    private var publisher: MQTTPublisher?
    /// Whether ingest has settled: connected to the broker long enough for what it kept during an
    /// outage to arrive, and all of it applied. Day ends are built only then.
    private let settled: @Sendable () -> Bool

    init(ctx: Context, federation: FederationSettings, store: Store, logger: Logger, every: Double, now: Instant? = nil,
         settled: @escaping @Sendable () -> Bool = { true }) {
        self.ctx = ctx; self.federation = federation; self.store = store; self.logger = logger; self.every = every
        fixedNow = now
        self.settled = settled
    }

    /// Waits until ingest has settled (or serve stops); says so once when it has to wait.
    private func waitUntilSettled() {
        var said = false
        while !isStopping && !settled() {
            if !said {
                logger.info("federation: waiting for ingest to settle (connected, everything received applied) before building day ends")
                said = true
            }
            condition.lock()
            if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.25)) }
            condition.unlock()
        }
    }

    func start() {
        let thread = Thread { [self] in
            self.loop()
            self.condition.lock(); self.finished = true; self.condition.broadcast(); self.condition.unlock()
        }
        thread.name = "pilotwatch.federation"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private var isStopping: Bool { condition.lock(); defer { condition.unlock() }; return stopping }

    private func loop() {
        while !isStopping {
            do {
                // What waits in the outbox goes first; day ends are built once ingest has settled.
                try publishOutbox()
                waitUntilSettled()
                if isStopping { break }
                try buildDue(now: fixedNow ?? .now)
                try publishOutbox()
            } catch {
                logger.warning("federation: \(error) (tried again in \(Int(every)) s; snapshots wait in the outbox)")
                publisher?.disconnect()
                publisher = nil
            }
            condition.lock()
            if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: every)) }
            condition.unlock()
        }
        publisher?.disconnect()
    }

    /// Builds the day ends that are due and not built yet.
    func buildDue(now: Instant) throws {
        let lastDue = now.adding(millis: -Int64(federation.graceSeconds) * 1000).day.advanced(by: -1)
        for id in federation.pilots {
            guard let pilot = ctx.registry.pilot(id) else { continue }
            var day = try store.lastFederatedDayEnd(pilot: id).map { $0.day.advanced(by: 1) } ?? pilot.start
            let last = min(lastDue, pilot.end)
            var built = 0
            while day <= last && !isStopping {
                try queue(pilot, day: day)
                day = day.advanced(by: 1)
                built += 1
            }
            if built > 0 { logger.notice("federation: built \(built) day-end snapshot(s) of \(id), through \(day.advanced(by: -1))") }
        }
    }

    /// Builds one day end of `pilot`, applies disclosure control, and queues it.
    func queue(_ pilot: Pilot, day: Day) throws {
        let revision = Instant.now.millis
        let (exact, contributions) = try SnapshotBuilder.buildWithContributions(
            store: store, pilot: pilot, catalogue: ctx.catalogue, day: day, revision: revision,
            msgID: "\(federation.siteID)-\(pilot.id)-\(day)-\(revision)", thresholds: ctx.service.alerts.thresholds)
        var state = DisclosureState()
        if let text = try store.federationState(pilot: pilot.id) {
            state = try JSONDecoder().decode(DisclosureState.self, from: Data(text.utf8))
        }
        let (sent, next) = SnapshotDisclosure.apply(exact, contributions: contributions, minCell: federation.minCell, state: state)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let stateText = String(decoding: try encoder.encode(next), as: UTF8.self)
        try store.queueSnapshot(QueuedSnapshot(pilot: pilot.id, asOf: sent.asOf, revision: revision, msgID: sent.msgID,
                                               payload: sent.json()), state: stateText)
    }

    /// Publishes what the outbox holds; each snapshot leaves it once the broker acknowledged it.
    func publishOutbox() throws {
        let waiting = try store.federationOutbox()
        guard !waiting.isEmpty else { return }
        if publisher == nil {
            var service = ctx.service
            service.broker = federation.cluster
            service.broker.clientID = federation.siteID + "-federation"
            let p = try MQTTPublisher(configuration: try mqttConfiguration(service), logger: logger, maxUnacknowledged: 100)
            try p.connect()
            publisher = p
        }
        guard let publisher else { return }
        var sent = 0
        for chunk in stride(from: 0, to: waiting.count, by: 50) {
            let part = waiting[chunk..<min(chunk + 50, waiting.count)]
            for q in part {
                try publisher.publish(topic: "\(ctx.service.topicRoot)/\(q.pilot)/\(federation.siteID)/agg", payload: Array(q.payload.utf8), qos: 1)
            }
            try publisher.waitForAllAcknowledged(timeout: 30)
            for q in part { try store.markSnapshotSent(q, at: .now) }
            sent += part.count
            if isStopping { break }
        }
        logger.notice("federation: \(sent) snapshot(s) acknowledged by the cluster's broker")
    }
}
