import Foundation
import PilotwatchCore
import PilotwatchStore

/// How a command that writes the store gets to write: by taking the writer lock itself, or,
/// while `serve` holds it, by handing its work to `serve` (``ServeChannel``).
enum WriteAccess {
    case own(WriterLock)
    case serve(WriterLock.Holder)

    /// Takes the writer lock of `database` as `role`; when `serve` holds it, says so instead.
    /// Another maintenance command holding it is waited for (it finishes by itself).
    static func obtain(database: String, role: String) throws -> WriteAccess {
        let folder = ConfigPath.folder(of: database)
        if !FileManager.default.fileExists(atPath: folder) {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        do {
            return .own(try WriterLock.acquire(database: database, role: role))
        } catch WriterLockError.held(_, let holder?) where holder.role == "serve" {
            return .serve(holder)
        } catch WriterLockError.held {
            let lock = try WriterLock.acquire(database: database, role: role, wait: true) { holder in
                if holder.role == "serve" { return }
                printError("waiting for \(holder) to finish writing \(database)")
            }
            return .own(lock)
        }
    }
}

/// The work of the commands that write, done by whoever writes: the command itself, or `serve`
/// on its behalf.
enum StoreWork {
    /// Imports NDJSON lines (`{"topic", "payload"}`) in transactions of `batch` lines.
    static func ingest(_ reader: LineReader, source: String, store: Store, validator: ContractValidator,
                       batch: Int, progress: ((Int64) -> Void)? = nil) throws -> IngestTally {
        var tally = IngestTally()
        var pending: [IngestItem] = []
        pending.reserveCapacity(batch)
        var lineNo = 0
        func flush() throws {
            guard !pending.isEmpty else { return }
            tally.add(try store.ingest(pending))
            pending.removeAll(keepingCapacity: true)
        }
        while let line = reader.next() {
            lineNo += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            pending.append(NDJSONLine.item(line, number: lineNo, source: source, validator: validator, receivedAt: .now))
            if pending.count >= batch {
                try flush()
                progress?(reader.offset)
            }
        }
        try flush()
        if let error = reader.error { throw CLIError("reading \(source) stopped at line \(lineNo + 1): \(error)") }
        tally.lines = lineNo
        return tally
    }

    /// Re-validates the quarantine matching `filter` and imports what now passes, committing
    /// `batch` rejects per transaction (so a long replay never holds the write lock for long).
    static func replay(store: Store, validator: ContractValidator, filter: RejectFilter,
                       batch: Int = 500) throws -> (candidates: Int, summary: ReplaySummary) {
        let candidates = try store.replayCandidates(filter)
        let results = candidates.compactMap { r -> (rejectID: Int64, item: IngestItem)? in
            guard let payload = r.payload else { return nil }
            // Re-check the time against when the message first arrived, not today.
            let verdict = validator.validate(topic: r.topic, payload: payload, receivedAt: r.receivedAt)
            return (r.id, IngestItem(topic: r.topic, receivedAt: r.receivedAt, verdict: verdict, payload: payload))
        }
        var total = ReplaySummary()
        for start in stride(from: 0, to: results.count, by: max(1, batch)) {
            let part = try store.replay(Array(results[start..<min(results.count, start + max(1, batch))]))
            total.accepted += part.accepted
            total.duplicates += part.duplicates
            total.statuses += part.statuses
            total.stillRefused += part.stillRefused
            total.missing += part.missing
            total.newObservations += part.newObservations
        }
        return (results.count, total)
    }
}

extension IngestTally {
    /// The tally as `serve` sends it back to `ingest`.
    var reply: ServeReply {
        ServeReply(ok: true, counts: ["lines": lines, "accepted": accepted, "duplicate": duplicate, "status": status,
                                      "observations": observations, "duplicate_observations": duplicateObservations],
                   refusedByReason: Dictionary(uniqueKeysWithValues: refused.map { ($0.key.rawValue, $0.value) }))
    }

    init(reply: ServeReply) {
        let c = reply.counts ?? [:]
        self.init()
        lines = c["lines"] ?? 0
        accepted = c["accepted"] ?? 0
        duplicate = c["duplicate"] ?? 0
        status = c["status"] ?? 0
        observations = c["observations"] ?? 0
        duplicateObservations = c["duplicate_observations"] ?? 0
        for (k, v) in reply.refusedByReason ?? [:] {
            if let reason = ReasonCode(rawValue: k) { refused[reason] = v }
        }
    }
}
