import PilotwatchCore

/// Message and observation counters (deltas within a batch; negative when replay moves a refusal).
struct Counts {
    var accepted = 0, duplicate = 0, refused = 0, statuses = 0, observations = 0, duplicateObservations = 0
}

struct DayKey: Hashable { var pilot: Int64; var day: Int }
struct RefusalKey: Hashable { var pilot: Int64; var day: Int; var reason: ReasonCode }

/// Keyed values, most often a few (a batch's pilots and days received, a subject's days and
/// indicators): looked up by trying the last key found, then by a scan while there are up to
/// 16, by a hash index beyond (hashing costs more than comparing a few keys). Keeps the order in
/// which keys were first added.
struct SmallMap<Key: Hashable, Value> {
    private(set) var entries: [(key: Key, value: Value)] = []
    private var index: [Key: Int] = [:]
    private var last = 0
    private static var scanned: Int { 16 }

    /// Makes `change` to the value of `key`, added as `initial` when absent.
    mutating func update(_ key: Key, default initial: @autoclosure () -> Value, _ change: (inout Value) -> Void) {
        if !(last < entries.count && entries[last].key == key) {
            if let i = position(of: key) {
                last = i
            } else {
                last = entries.count
                entries.append((key, initial()))
                if entries.count == Self.scanned + 1 {
                    for (i, e) in entries.enumerated() { index[e.key] = i }  // past a scan's worth: indexed
                } else if entries.count > Self.scanned {
                    index[key] = last
                }
            }
        }
        change(&entries[last].value)
    }

    private func position(of key: Key) -> Int? {
        entries.count > Self.scanned ? index[key] : entries.firstIndex { $0.key == key }
    }
}

struct DayAggregate {
    var firstAt: Int64 = .max, lastAt: Int64 = .min, n = 0

    mutating func add(at: Int64) {
        firstAt = min(firstAt, at); lastAt = max(lastAt, at); n += 1
    }
}

/// A subject's activity roll-up as the `subject` row stores it (``Schema/v2``): its latest
/// measurement or score and the days with one among the 128 ending on that one's day, as
/// ``ActivityDays`` of two words (`lo`: days 0-63 back, `hi`: 64-127).
struct ActivityMask: Equatable {
    static let coveredDays = 128

    private(set) var lastAt: Int64?
    private var days: ActivityDays

    init(lastAt: Int64? = nil, lo: UInt64 = 0, hi: UInt64 = 0) {
        self.lastAt = lastAt
        days = ActivityDays(lastDay: lastAt.map { Instant(millis: $0).day } ?? Day(index: 0), words: [lo, hi])
    }

    var lo: UInt64 { days.words[0] }
    var hi: UInt64 { days.words[1] }

    /// Adds a measurement or score at `at` (epoch milliseconds): a later day moves the set to
    /// end there (days older than 128 days before it fall off), an earlier day within the 128
    /// sets its bit, an older one changes nothing.
    mutating func add(at: Int64) {
        let day = Instant(millis: at).day
        if lastAt == nil || day > days.lastDay { days = days.rebased(lastDay: day, covering: Self.coveredDays) }
        days.insert(day)
        lastAt = max(lastAt ?? at, at)
    }
}

struct IndicatorAggregate {
    var n = 0, firstAt: Int64 = 0, firstValue = 0.0, lastAt: Int64 = 0, lastValue = 0.0

    /// Counts a value; the first and last are those of the earliest and latest time (the
    /// first added of equal times).
    mutating func add(at: Int64, value: Double) {
        n += 1
        if n == 1 || at < firstAt { firstAt = at; firstValue = value }
        if n == 1 || at > lastAt { lastAt = at; lastValue = value }
    }
}

/// What a batch changes in a subject row: its first times, when lowered, and the times of its
/// new measurements and scores (for its activity roll-up).
struct SubjectChange {
    var firstAt: Int64?
    var firstMeasureAt: Int64?
    var measures: [Int64] = []
}

/// What a batch adds to one subject's roll-ups: its measurements and scores by day and by
/// indicator, and its ``SubjectChange``. Kept together so that an observation costs one lookup
/// of its subject (its days and indicators in a batch are few: ``SmallMap``s).
struct SubjectAggregate {
    var id: Int64
    private(set) var days = SmallMap<Int, DayAggregate>()
    private(set) var indicators = SmallMap<Int64, IndicatorAggregate>()
    var change: SubjectChange?

    init(id: Int64) { self.id = id }

    /// Counts a measurement or score of `indicator` at `at` (epoch milliseconds) on `day`.
    mutating func add(day: Int, indicator: Int64, at: Int64, value: Double) {
        days.update(day, default: DayAggregate()) { $0.add(at: at) }
        indicators.update(indicator, default: IndicatorAggregate()) { $0.add(at: at, value: value) }
    }
}

struct DeviceDelta {
    var firstSeen: Int64
    var lastSeen: Int64
    var messages = 0, duplicates = 0, refused = 0, statuses = 0, observations = 0
    var status: (state: String, at: Int64, battery: Double?, firmware: String?, receivedAt: Int64)?
}
