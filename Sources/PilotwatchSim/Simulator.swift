import PilotwatchCore

/// One message of the simulated stream: what to publish, where, and when (simulated time).
public struct SimMessage: Sendable, Hashable {
    /// What a message is, for the summary: valid observations, device status, a retry of an
    /// already published message, or one of the deliberate misbehaviours.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case obs, status, duplicate, malformed, identifying, invalid
    }

    public var topic: String
    public var payload: [UInt8]
    /// Simulated publish time; every observation in the payload is at or before it.
    public var at: Instant
    public var kind: Kind
    /// Status messages are retained, observations are not.
    public var retain: Bool
    public var pilot: String
    /// Observations in the payload (0 for status and malformed messages).
    public var observations: Int
}

/// Counts of what a simulation published.
public struct SimulationSummary: Sendable, Hashable {
    public var published = 0
    /// Messages per kind (`obs`, `status`, `duplicate`, `malformed`, `identifying`, `invalid`); every kind is present.
    public var byKind: [String: Int]
    /// Observations in the valid observation messages (kind `obs`): what a correct ingest stores.
    public var observations = 0
    /// Observations in all observation payloads that parse, duplicates and refused copies included.
    public var observationsSent = 0

    public init() {
        byKind = Dictionary(uniqueKeysWithValues: SimMessage.Kind.allCases.map { ($0.rawValue, 0) })
    }

    public mutating func add(_ m: SimMessage) {
        published += 1
        byKind[m.kind.rawValue, default: 0] += 1
        if m.kind == .obs { observations += m.observations }
        observationsSent += m.observations
    }
}

/// The simulated stream of a scenario: a lazy sequence of messages in publish-time order.
/// (The scenario was already checked against the registry and the catalogue by `ScenarioParser`.)
///
/// Deterministic: the same scenario, seed, end and window give byte-identical messages. The world
/// itself does not depend on `end` or `days` (they only cut the stream), except for a fleet that
/// goes silent, which does so relative to `end`.
///
/// ```swift
/// let end = Day(year: 2026, month: 11, day: 29)?.start ?? Instant(millis: 0)
/// for message in Simulation(scenario: scenario, seed: 1, end: end) { publish(message.topic, message.payload) }
/// ```
public struct Simulation: Sequence, Sendable {
    public var scenario: Scenario
    public var seed: UInt64
    /// Nothing is published after this instant.
    public var end: Instant
    /// Only messages published in `(end - days, end]`; nil: from the first pilot's start.
    public var days: Double?
    public var topicRoot: String

    public init(scenario: Scenario, seed: UInt64, end: Instant, days: Double? = nil, topicRoot: String = "pilots") {
        self.scenario = scenario; self.seed = seed; self.end = end; self.days = days; self.topicRoot = topicRoot
    }

    /// Where the published period starts: `end - days`, or the first pilot's start (for progress and summaries).
    public var windowStart: Instant {
        if let days { return end.adding(days: -days) }
        return (scenario.pilots.map(\.pilot.start).min() ?? end.day).start
    }

    public func makeIterator() -> SimulationIterator { SimulationIterator(self) }
}

/// Generates one simulated day at a time for every pilot and hands messages out in time order.
public struct SimulationIterator: IteratorProtocol {
    private var pilots: [PilotSim]
    private var heap = MessageHeap()
    private var nextDay: Day
    private let lastDay: Day
    private let windowStart: Instant?
    private var buffer: [SimMessage] = []

    init(_ sim: Simulation) {
        var tagRandom = SimRandom(seed: sim.seed, stream: "msg-id-tag")
        let tag = tagRandom.hex(6)
        pilots = sim.scenario.pilots.map { PilotSim(plan: $0, seed: sim.seed, tag: tag, end: sim.end, topicRoot: sim.topicRoot) }
        nextDay = sim.scenario.pilots.map(\.pilot.start).min() ?? sim.end.day.advanced(by: 1)
        lastDay = sim.end.day
        windowStart = sim.days.map { sim.end.adding(days: -$0) }
    }

    public mutating func next() -> SimMessage? {
        while true {
            if let top = heap.first, nextDay > lastDay || top.at < nextDay.start {
                guard let m = heap.pop() else { return nil }
                if let windowStart, m.at <= windowStart { continue }
                return m
            }
            guard nextDay <= lastDay else { return nil }
            for i in pilots.indices {
                pilots[i].generate(day: nextDay, into: &buffer)
            }
            for m in buffer { heap.push(m) }
            buffer.removeAll(keepingCapacity: true)
            nextDay = nextDay.advanced(by: 1)
        }
    }
}

/// A binary min-heap of messages ordered by time, then by insertion order (so ties stay deterministic).
struct MessageHeap {
    private var items: [(key: Int64, seq: Int, message: SimMessage)] = []
    private var seq = 0

    var first: SimMessage? { items.first?.message }

    private static func less(_ a: (key: Int64, seq: Int, message: SimMessage), _ b: (key: Int64, seq: Int, message: SimMessage)) -> Bool {
        a.key != b.key ? a.key < b.key : a.seq < b.seq
    }

    mutating func push(_ m: SimMessage) {
        items.append((m.at.millis, seq, m))
        seq += 1
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> SimMessage? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, Self.less(items[l], items[m]) { m = l }
            if r < items.count, Self.less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top.message
    }
}
