/// Checks the lines of an audit trail one after the other: each must be a record, its `seq` one
/// more than the previous one's (1 for the first), and its `prev` the SHA-256 of the previous
/// line's bytes. The first line that fails is named, with why.
///
/// ```swift
/// var chain = AuditChain()
/// for line in lines { if let problem = chain.check(line) { print(problem); break } }
/// ```
public struct AuditChain: Sendable {
    /// The first line that breaks the chain.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// 1-based line number in the file.
        public var line: Int
        /// The record's `seq` when the line could be read.
        public var seq: Int?
        public var reason: String

        public init(line: Int, seq: Int?, reason: String) {
            self.line = line; self.seq = seq; self.reason = reason
        }

        public var description: String {
            "line \(line)\(seq.map { " (seq \($0))" } ?? ""): \(reason)"
        }
    }

    /// Lines checked so far.
    public private(set) var count = 0
    /// The last record checked and the hash of its line.
    public private(set) var last: (seq: Int, hash: String)?
    /// Unreadable lines that the next record chained past (its seq and prev continue the record
    /// before them): records a writer left cut short when it died, closed by the next append.
    public private(set) var tornLines: [Int] = []
    /// An unreadable line waiting for the next one to tell torn (chained past) from edited.
    private var pending: Problem?

    public init() {}

    /// Checks the next line (without its newline); nil when it continues the chain.
    public mutating func check(_ line: some Collection<UInt8>) -> Problem? {
        count += 1
        let record: AuditRecord
        do {
            record = try AuditRecord(line: line)
        } catch {
            if let pending { return pending }
            pending = Problem(line: count, seq: nil, reason: "cannot be read as an audit record: \(error) (edited, or cut short)")
            return nil
        }
        let expectedSeq = (last?.seq ?? 0) + 1
        if let torn = pending {
            // Chained past it (seq and prev continue the record before): a torn write. Otherwise
            // the unreadable line is where the chain breaks.
            guard record.seq == expectedSeq, record.prev == (last?.hash ?? AuditRecord.genesis) else { return torn }
            tornLines.append(torn.line)
            pending = nil
        }
        if record.seq != expectedSeq {
            let why = record.seq > expectedSeq
                ? "seq \(record.seq) where \(expectedSeq) was expected: record\(record.seq - expectedSeq == 1 ? "" : "s") \(expectedSeq)\(record.seq - expectedSeq == 1 ? "" : "...\(record.seq - 1)") deleted, or this seq edited"
                : "seq \(record.seq) where \(expectedSeq) was expected: a record repeated or reordered, or this seq edited"
            return Problem(line: count, seq: record.seq, reason: why)
        }
        if let last, record.prev != last.hash {
            // The seqs follow each other, so nothing was deleted between: the line before was changed.
            return Problem(line: count - 1, seq: last.seq,
                           reason: "edited: its SHA-256 is not the prev that line \(count) (seq \(record.seq)) recorded (or that prev was edited)")
        }
        if last == nil, record.prev != AuditRecord.genesis {
            return Problem(line: count, seq: record.seq, reason: "the first record's prev is not 64 zeros: records before it deleted, or this line edited")
        }
        last = (record.seq, SHA256.hex(line))
        return nil
    }

    /// Checks the end of the trail once every line passed ``check(_:)``: the last line must end
    /// with a newline, and the head kept beside the trail (the seq and hash of its last line)
    /// must name the last record, which tells what the chain alone cannot: the last record
    /// edited or the last records deleted.
    public func checkEnd(terminated: Bool, head: (seq: Int, hash: String)?) -> Problem? {
        if let pending { return pending }
        if !terminated {
            return Problem(line: count, seq: last?.seq,
                           reason: "the last line does not end with a newline: the file was cut short, or a writer died mid-record")
        }
        guard let head else {
            return count == 0 ? nil : Problem(line: count, seq: last?.seq, reason: "the head beside the trail is missing, so its last records cannot be checked")
        }
        return checkHead(seq: head.seq, hash: head.hash)
    }

    private func checkHead(seq: Int, hash: String) -> Problem? {
        guard let last else {
            return seq == 0 ? nil : Problem(line: 1, seq: nil, reason: "the trail is empty but its head names seq \(seq): every record deleted")
        }
        if seq > last.seq {
            return Problem(line: count + 1, seq: last.seq + 1,
                           reason: "missing: the trail ends at seq \(last.seq) but its head names seq \(seq): the last \(seq - last.seq) record\(seq - last.seq == 1 ? "" : "s") deleted")
        }
        if seq == last.seq && hash != last.hash {
            return Problem(line: count, seq: last.seq, reason: "its SHA-256 is not the one the head recorded: the last record was edited")
        }
        if seq < last.seq {
            return Problem(line: count, seq: last.seq, reason: "the head names seq \(seq), before the trail's last record: the head is stale or was edited")
        }
        return nil
    }
}
