import PilotwatchCore

/// One numbering of codes (a ``KeyInterner``'s): a slot names the same code only within it.
final class KeySpace: Sendable {}

/// Numbers the pilot, device, subject and indicator codes of the applier's batches, on the
/// preparer's thread, so that the writer finds a message's ids by index in ``SlotIDs`` where it
/// hashed four codes a message (the strings are hashed here, beside the commits, instead).
///
/// ```swift
/// let interner = KeyInterner()
/// let keys = interner.keys(of: batch.items)   // slots, one ItemKeys an item
/// ```
///
/// Not thread-safe: one thread numbers (the preparer's). Past `capacity` codes it starts a new
/// numbering (a new ``KeySpace``), so that a service seeing ever new subjects does not keep
/// every code it ever saw twice (here and in the writer's caches).
final class KeyInterner {
    private(set) var space = KeySpace()
    private var pilots: [String: Int32] = [:]
    private var devices: [CodeKey: Int32] = [:]
    private var subjects: [CodeKey: Int32] = [:]
    private var indicators: [String: Int32] = [:]
    private let capacity: Int

    init(capacity: Int = 1 << 18) {
        self.capacity = capacity
    }

    private struct CodeKey: Hashable {
        var pilot: Int32
        var code: String
    }

    /// The slots of `items`' codes, one ``ItemKeys`` an item (for observation messages and
    /// statuses; none for the rest).
    func keys(of items: [IngestItem]) -> BatchKeys {
        if pilots.count + devices.count + subjects.count + indicators.count > capacity {
            space = KeySpace()
            pilots = [:]; devices = [:]; subjects = [:]; indicators = [:]
        }
        var keys = BatchKeys(space: space, items: [], observations: [])
        keys.items.reserveCapacity(items.count)
        keys.observations.reserveCapacity(items.count)
        for item in items {
            switch item.verdict {
            case .observations(let topic, let message):
                let pilot = Self.slot(of: topic.pilot, in: &pilots)
                let first = keys.observations.count
                // The one subject every observation names; -1 once two differ or one names none.
                var only: Int32?
                for obs in message.observations {
                    let subject = obs.subject.map { Self.slot(of: CodeKey(pilot: pilot, code: $0), in: &subjects) } ?? -1
                    only = (only == nil || only == subject) ? subject : -1
                    keys.observations.append(ObservationKeys(subject: subject,
                                                             indicator: Self.slot(of: obs.indicator, in: &indicators)))
                }
                keys.items.append(ItemKeys(pilot: pilot,
                                           device: Self.slot(of: CodeKey(pilot: pilot, code: topic.device), in: &devices),
                                           subject: only ?? -1, observations: first..<keys.observations.count))
            case .status(let topic, _):
                let pilot = Self.slot(of: topic.pilot, in: &pilots)
                keys.items.append(ItemKeys(pilot: pilot, device: Self.slot(of: CodeKey(pilot: pilot, code: topic.device), in: &devices)))
            case .snapshot, .refused:
                keys.items.append(ItemKeys())
            }
        }
        return keys
    }

    private static func slot<Key: Hashable>(of key: Key, in slots: inout [Key: Int32]) -> Int32 {
        if let slot = slots[key] { return slot }
        let slot = Int32(slots.count)
        slots[key] = slot
        return slot
    }
}

/// The slots of a batch's codes (``KeyInterner``), one ``ItemKeys`` an item.
struct BatchKeys: Sendable {
    let space: KeySpace
    var items: [ItemKeys]
    var observations: [ObservationKeys]
}

/// An item's slots: its pilot's and device's, its one subject's (-1: none or several), and
/// where its observations' slots are in ``BatchKeys/observations``. -1: no slot.
struct ItemKeys: Sendable {
    var pilot: Int32 = -1
    var device: Int32 = -1
    var subject: Int32 = -1
    var observations: Range<Int> = 0..<0
}

/// An observation's slots: its subject's (-1: a pilot-level observation) and its indicator's.
struct ObservationKeys: Sendable {
    var subject: Int32
    var indicator: Int32
}

/// The ids the writer found for one numbering's slots: kept in ``WriterState``, so they are as
/// true as its other caches, and forgotten with them.
struct SlotIDs {
    private(set) var space: KeySpace?
    var pilots = SlotTable<Int64>()
    var devices = SlotTable<Int64>()
    var indicators = SlotTable<Int64>()
    /// A subject's id and first times.
    var subjects = SlotTable<SubjectInfo>()

    /// Starts over when `space` is another numbering than the one held.
    mutating func use(_ space: KeySpace) {
        if self.space !== space { self = SlotIDs(space: space) }
    }
}

/// What was found for each slot of one kind of code (nil: not resolved yet); slot -1 (no
/// slot) reads nil and keeps nothing.
struct SlotTable<Value> {
    private var values: [Value?] = []

    subscript(slot: Int32) -> Value? {
        get {
            let i = Int(slot)
            return i >= 0 && i < values.count ? values[i] : nil
        }
        set {
            let i = Int(slot)
            guard i >= 0 else { return }
            if i >= values.count { values.append(contentsOf: repeatElement(nil, count: i - values.count + 1)) }
            values[i] = newValue
        }
    }
}
