/// Surrogate ids the writer already knows, so that most messages need no id lookup.
///
/// Entries are added inside a write transaction; if that transaction rolls back, ``reset()``
/// forgets everything (a rolled-back id could otherwise be reused by SQLite for another row).
/// Rows are never deleted, so a committed entry stays true for the life of the file, even when
/// another process (the CLI replaying quarantine) writes to the same store.
final class WriterState: @unchecked Sendable {
    // @unchecked Sendable: this object is owned by one `Store`, and every read and write of its
    // properties happens inside that store's `DatabasePool.writeWithoutTransaction` closures.
    // GRDB runs those closures one at a time on the pool's serial writer queue, so no two
    // accesses ever overlap, and each one happens-after the previous one.
    var pilots: [String: Int64] = [:]
    var indicators: [String: Int64] = [:]
    var devices: [DeviceKey: Int64] = [:]
    var subjects: [SubjectKey: SubjectInfo] = [:]
    /// The same ids by the applier's slots (``KeyInterner``); a ``BatchWriter`` holds them
    /// during its transaction and puts them back when it finishes.
    var slots = SlotIDs()

    func reset() {
        pilots = [:]; indicators = [:]; devices = [:]; subjects = [:]; slots = SlotIDs()
    }
}

struct DeviceKey: Hashable { var pilot: Int64; var code: String }
struct SubjectKey: Hashable { var pilot: Int64; var code: String }

/// What the writer remembers of a subject row, to skip updates that would change nothing.
struct SubjectInfo {
    var id: Int64
    var firstAt: Int64
    var firstMeasureAt: Int64?
}
