import Foundation
import PilotwatchCore
import PilotwatchStore

/// How a command that writes the store gets to write: by taking the writer lock itself, or,
/// while `serve` holds it, by handing its work to `serve` (``ServeChannel``).
enum WriteAccess {
    case own(WriterLock)
    /// `serve` holds the lock; the connection to it is open.
    case serve(WriterLock.Holder, ServeChannelClient)

    /// Takes the writer lock of `database` as `role`; when `serve` holds it, connects to it
    /// instead. Another maintenance command holding it is waited for (it finishes by itself),
    /// and so is a `serve` that no longer answers (it is finishing: it releases the lock).
    static func obtain(database: String, role: String) throws -> WriteAccess {
        makeFolder(of: database)
        do {
            return .own(try WriterLock.acquire(database: database, role: role))
        } catch WriterLockError.held(_, let holder) {
            // The socket answers only while `serve` runs, whatever the lock file's line says.
            if let client = try? ServeChannelClient(database: database, seconds: holder?.role == "serve" ? 10 : 0) {
                return .serve(holder ?? WriterLock.Holder(pid: nil, role: "serve", since: "unknown"), client)
            }
            let lock = try WriterLock.acquire(database: database, role: role, wait: true) { holder in
                printError("waiting for \(holder) to finish writing \(database)")
            }
            return .own(lock)
        }
    }
}

/// The work of the commands that write, done by whoever writes: the command itself, or `serve`
/// on its behalf.
enum StoreWork {
    /// Opens the inbox, overwriting what a crash left to overwrite, and makes sure it is the
    /// one the store applies: an inbox found next to a different (deleted or replaced) database
    /// is set aside, never applied to it. The caller holds the writer lock.
    ///
    /// An inbox set aside may hold messages never validated: those the contract refuses as hash
    /// only (identifying data) are overwritten in it before it is left.
    static func openInbox(_ inboxPath: String, store: Store, validator: () throws -> ContractValidator,
                          log: (String) -> Void) throws -> Inbox {
        do {
            let adopted = try store.inboxState()?.id
            let pending = try store.pendingInboxScrubs()
            let ours = adopted != nil && Inbox.existingID(directory: inboxPath) == adopted
            var inbox = try Inbox(directory: inboxPath, pendingScrubs: ours ? pending : [])
            if !pending.isEmpty { try store.clearInboxScrubs(pending) }
            if adopted != inbox.id {
                if !inbox.isEmpty {
                    let aside = inboxPath + ".orphan-" + String(Int(Date().timeIntervalSince1970))
                    try FileManager.default.moveItem(atPath: inboxPath, toPath: aside)
                    let scrubbed = try scrubRefused(inboxAt: aside, validator: try validator())
                    log("inbox \(inboxPath) holds messages for another database; moved it to \(aside) and started a new one"
                        + (scrubbed > 0 ? " (\(scrubbed) identifying messages in it overwritten)" : ""))
                    inbox = try Inbox(directory: inboxPath)
                }
                try store.adoptInbox(id: inbox.id, position: inbox.end)
            }
            if inbox.truncatedBytes > 0 {
                log("inbox: zeroed \(inbox.truncatedBytes) bytes of a record torn by a crash; it was never acknowledged, so the broker delivers it again")
            }
            return inbox
        } catch {
            throw CLIError("cannot open the inbox \(inboxPath): \(error)", cause: error)
        }
    }

    /// Overwrites, in the inbox at `path`, every record that `validator` refuses as hash only;
    /// returns how many.
    static func scrubRefused(inboxAt path: String, validator: ContractValidator) throws -> Int {
        let inbox = try Inbox(directory: path)
        var reader = inbox.reader()
        defer { reader.close() }
        var at = InboxPosition.start
        var count = 0
        while at < inbox.end {
            let (records, spans, next) = try reader.readSpans(from: at, maxRecords: 512, maxBytes: 4 << 20)
            if next == at { break }
            let refused = zip(records, spans).filter { record, _ in
                !record.isScrubbed && !record.item(validatedBy: validator).keepsPayload
            }.map(\.1)
            try inbox.scrub(refused)
            count += refused.count
            at = next
        }
        return count
    }

    /// Applies what the inbox of the store at `database` holds past the store's position (a
    /// `serve` stopped before it caught up), as `serve` would at its start; returns the bytes
    /// applied. The caller holds the writer lock.
    static func applyInbox(database: String, store: Store, validator: @escaping @Sendable () throws -> ContractValidator,
                           log: @escaping @Sendable (String) -> Void) throws -> Int64 {
        let path = database + ".inbox"
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        let inbox = try openInbox(path, store: store, validator: validator, log: log)
        let from = try store.inboxPosition()
        let bytes = inbox.backlogBytes(after: from)
        guard bytes > 0 else { return 0 }
        let contract = try validator()
        let applier = InboxApplier(inbox: inbox, store: store, from: from, policy: .immediate,
                                   makeItem: { store.screen($0.item(validatedBy: contract)) }, onTrouble: log)
        applier.start()
        if let error = applier.finish() { throw CLIError("the inbox \(path) cannot be applied: \(error)", cause: error) }
        return bytes
    }

    /// Imports NDJSON lines (`{"topic", "payload"}`) in transactions of `batch` lines.
    ///
    /// A line over ``LineReader/maxLineBytes`` is refused as `too_large` (hash only). With
    /// `terminated` (the lines handed over to `serve`, each sent with its newline), input that
    /// ends inside a line was cut short (the command stopped): that line is not imported and the
    /// import fails, saying that the lines before it are stored.
    static func ingest(_ reader: LineReader, source: String, store: Store, validator: ContractValidator,
                       batch: Int, terminated: Bool = false, progress: ((Int64) -> Void)? = nil,
                       stored: ([IngestOutcome]) -> Void = { _ in }) throws -> IngestTally {
        var tally = IngestTally()
        var pending: [IngestItem] = []
        pending.reserveCapacity(batch)
        var lineNo = 0
        func flush() throws {
            guard !pending.isEmpty else { return }
            let outcomes = try store.ingest(pending)
            tally.add(outcomes)
            stored(outcomes)
            pending.removeAll(keepingCapacity: true)
        }
        while let line = reader.next() {
            lineNo += 1
            if terminated && reader.lastLineUnterminated {
                try flush()
                throw CLIError("the input ended inside line \(lineNo) (the sending command stopped?); the \(lineNo - 1) lines before it are stored; run the import again (what is stored is recognised)")
            }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            if reader.lastLineTooLong {
                pending.append(IngestItem(topic: "ingest:\(source):\(lineNo)", receivedAt: .now,
                                          verdict: .refused(nil, Refusal(.tooLarge, "line \(lineNo): more than \(reader.maxLineBytes) bytes")),
                                          payload: line))
            } else {
                pending.append(NDJSONLine.item(line, number: lineNo, source: source, validator: validator, receivedAt: .now))
            }
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
        // A page of `batch` rejects at a time, oldest first: the payloads of a whole quarantine
        // are never in memory at once.
        var page = filter
        page.limit = max(1, batch)
        var count = 0
        var total = ReplaySummary()
        while true {
            let candidates = try store.replayCandidates(page)
            guard let last = candidates.last else { break }
            page.afterID = last.id
            let results = candidates.compactMap { r -> (rejectID: Int64, item: IngestItem)? in
                guard let payload = r.payload else { return nil }
                // Re-check the time against when the message first arrived, not today.
                let verdict = validator.validate(topic: r.topic, payload: payload, receivedAt: r.receivedAt)
                return (r.id, IngestItem.received(topic: r.topic, receivedAt: r.receivedAt, verdict: verdict, payload: payload))
            }
            count += results.count
            do {
                total.add(try store.replay(results))
            } catch let error as StoreError where !error.isBusy {
                // One reject the database still refuses (a `store_error` whose cause is still
                // there) must not keep the others of its page out: one at a time, and those
                // refused stay in quarantine as they were.
                for one in results {
                    do {
                        total.add(try store.replay([one]))
                    } catch let error as StoreError where !error.isBusy {
                        total.failed += 1
                    }
                }
            }
        }
        return (count, total)
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

/// Takes the store's writer lock for a command that must have it to itself, or refuses at once
/// (exit 75) naming the holder and then `advice`.
func exclusiveWriterLock(_ database: String, role: String, advice: String) throws -> WriterLock {
    do {
        return try WriterLock.acquire(database: database, role: role)
    } catch WriterLockError.held(_, let holder) {
        throw CLIError("the database \(database) is being written by \(holder.map(\.description) ?? "another process"); \(advice)",
                       kind: .busy)
    }
}
