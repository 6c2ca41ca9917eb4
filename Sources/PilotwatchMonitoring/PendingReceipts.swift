import PilotwatchCore
import PilotwatchStore

/// When the records the inbox holds past the applied position were received: one mark per
/// second of receiving (the inbox position its last record ends at, the time its first one was
/// received), so that the age of the oldest record not yet in SQLite is known without reading
/// the inbox.
///
/// Marks cover a second each, so the age given is at most a second more than the true one.
/// They are forgotten as the applier passes them (when ``oldest(appliedThrough:)`` is asked).
/// Past ``maxMarks`` (nobody asking for hours while receiving goes on), neighbouring marks are
/// merged two by two: the oldest time stays exact, the ones after it get coarser.
///
/// ```swift
/// var pending = PendingReceipts()
/// pending.received(at: now, through: try inbox.append(records))
/// pending.oldest(appliedThrough: applier.position)   // nil once everything is applied
/// ```
struct PendingReceipts {
    /// About 3 hours of receiving at one mark a second; 240 KiB.
    static let maxMarks = 10_000

    private var marks: [(end: InboxPosition, receivedAt: Instant)] = []
    /// The first mark not yet applied (the ones before it are removed in bulk, now and then).
    private var head = 0

    /// Records received at `at` end at `end` in the inbox.
    mutating func received(at: Instant, through end: InboxPosition) {
        if head < marks.count, let last = marks.last, at.millis - last.receivedAt.millis < 1000, end >= last.end {
            marks[marks.count - 1].end = end
        } else {
            if marks.count - head >= Self.maxMarks { halve() }
            marks.append((end, at))
        }
    }

    /// Merges the marks not yet passed two by two (each pair keeps the first one's time and the
    /// second one's end).
    private mutating func halve() {
        let live = marks[head...]
        marks = stride(from: live.startIndex, to: live.endIndex, by: 2).map { i in
            (end: marks[min(i + 1, live.endIndex - 1)].end, receivedAt: marks[i].receivedAt)
        }
        head = 0
    }

    /// When the oldest record past `position` was received; nil when there is none. Forgets the
    /// marks `position` has passed.
    mutating func oldest(appliedThrough position: InboxPosition) -> Instant? {
        while head < marks.count && marks[head].end <= position { head += 1 }
        if head == marks.count {
            marks.removeAll(keepingCapacity: marks.count < 4096)
            head = 0
        } else if head >= 1024 && head * 2 >= marks.count {
            marks.removeFirst(head)
            head = 0
        }
        return head < marks.count ? marks[head].receivedAt : nil
    }

    /// Marks not yet passed (for tests).
    var count: Int { marks.count - head }
}
