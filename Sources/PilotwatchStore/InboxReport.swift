import Foundation

/// What `pilotwatch db check` finds in an inbox, read without changing a byte (so it can run
/// beside `serve`).
public struct InboxReport: Sendable {
    /// The inbox's identity, nil when the folder has no `id` file.
    public var id: String?
    public var segments: [Int64] = []
    /// Whole, checksummed records found, and how many lie at or after the applied position.
    public var records = 0
    public var unapplied = 0
    public var unappliedBytes: Int64 = 0
    /// Damage: a record that fails its checksum before the last one, a missing segment, an
    /// applied position that is not on a record boundary or lies beyond the records.
    public var problems: [String] = []
    /// Worth knowing, not damage (a torn last record that was never acknowledged).
    public var notes: [String] = []

    /// Reads every segment of the inbox in `directory` and checks its records and `applied`
    /// (the store's recorded position, nil when the store adopted no inbox). Records at
    /// `scrubbing` may fail their checksum (an overwrite torn by a crash, redone at start).
    public static func check(directory: String, applied: InboxPosition?, scrubbing: [InboxSpan] = []) -> InboxReport {
        var report = InboxReport()
        if let data = FileManager.default.contents(atPath: directory + "/id") {
            report.id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        do {
            report.segments = try Inbox.segments(in: directory)
        } catch {
            report.problems.append("\(error)")
            return report
        }
        let scrub = Set(scrubbing.map { InboxPosition(segment: $0.segment, offset: $0.offset) })
        let files = SegmentFiles(directory: directory)
        defer { files.close() }
        var boundaries: Set<InboxPosition> = []
        var lastEnd: InboxPosition?
        for (index, segment) in report.segments.enumerated() {
            let isLast = index == report.segments.count - 1
            if index > 0, segment != report.segments[index - 1] + 1 {
                report.problems.append("segment \(report.segments[index - 1] + 1) is missing (found \(report.segments[index - 1]), then \(segment))")
            }
            var offset: Int64 = 0
            boundaries.insert(InboxPosition(segment: segment, offset: 0))
            scan: while true {
                let at = InboxPosition(segment: segment, offset: offset)
                do {
                    guard let (_, length) = try files.record(segment: segment, offset: offset, limit: Int64.max) else { break scan }
                    report.records += 1
                    if let applied, at >= applied { report.unapplied += 1; report.unappliedBytes += Int64(length) }
                    offset += Int64(length)
                } catch InboxError.corrupt(let path, let where_, let reason) {
                    if scrub.contains(at), let length = try? files.recordLength(segment: segment, offset: offset) {
                        report.notes.append("\(path) byte \(where_): a record being overwritten when serve stopped; the next start overwrites it again")
                        offset += Int64(length)
                        boundaries.insert(InboxPosition(segment: segment, offset: offset))
                        continue scan
                    }
                    let followed = (try? files.recordLength(segment: segment, offset: offset)).flatMap { $0 }
                        .map { length in ((try? files.record(segment: segment, offset: offset + Int64(length), limit: Int64.max)) ?? nil) != nil }
                        ?? false
                    if isLast && !followed {
                        report.notes.append("\(path) byte \(where_): \(reason), after the last whole record; if serve is not running, this is a record torn by a crash, never acknowledged, zeroed at the next start")
                    } else {
                        report.problems.append("\(path) is damaged at byte \(where_): \(reason)")
                    }
                    break scan
                } catch {
                    report.problems.append("\(error)")
                    break scan
                }
                boundaries.insert(InboxPosition(segment: segment, offset: offset))
            }
            lastEnd = InboxPosition(segment: segment, offset: offset)
        }
        if let applied, let oldest = report.segments.first, let lastEnd {
            if applied.segment < oldest {
                report.problems.append("the database has applied the inbox up to \(applied), but the oldest segment left is \(oldest): the records in between are gone")
            } else if applied > lastEnd {
                report.problems.append("the database has applied the inbox up to \(applied), beyond its last record (\(lastEnd))")
            } else if !boundaries.contains(applied) {
                report.problems.append("the applied position \(applied) is not at the start of a record")
            }
        }
        return report
    }
}
