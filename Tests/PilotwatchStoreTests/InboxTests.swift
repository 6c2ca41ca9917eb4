import Foundation
import PilotwatchCore
import Synchronization
import TestSupport
import Testing
@testable import PilotwatchStore

private func record(_ i: Int, payload: [UInt8]? = nil) -> InboxRecord {
    InboxRecord(receivedAt: Instant(millis: 1_772_409_600_000 + Int64(i)), topic: "pilots/hf-nord/dev-\(i % 7)/obs",
                payload: payload ?? Array("{\"msg_id\":\"m\(i)\"}".utf8))
}

private func readAll(_ inbox: Inbox, from: InboxPosition = .start, chunk: Int = 5) throws -> [InboxRecord] {
    var reader = inbox.reader()
    defer { reader.close() }
    var out: [InboxRecord] = []
    var at = from
    while true {
        let (records, next) = try reader.read(from: at, maxRecords: chunk, maxBytes: 1 << 20)
        if records.isEmpty && next == at { return out }
        out += records
        at = next
    }
}

@Suite struct InboxTests {
    @Test func recordsComeBackAsAppendedAcrossBurstsAndReopening() throws {
        let dir = try TempDir()
        let odd: [[UInt8]] = [[], [0xFF, 0xFE, 0x00, 0x80], Array(repeating: 0x41, count: 1 << 20)]
        var expected = (0..<20).map { record($0) } + odd.enumerated().map { record(100 + $0.offset, payload: $0.element) }
        do {
            let inbox = try Inbox(directory: dir.file("inbox"))
            try inbox.append(Array(expected[0..<7]))
            try inbox.append(Array(expected[7...]))
            #expect(try readAll(inbox) == expected)
        }
        let reopened = try Inbox(directory: dir.file("inbox"))
        #expect(reopened.truncatedBytes == 0)
        #expect(reopened.end == InboxPosition(segment: 1, offset: reopened.end.offset) && reopened.end.offset > 1 << 20)
        try reopened.append([record(200)])
        expected.append(record(200))
        #expect(try readAll(reopened, chunk: 1) == expected)
    }

    /// A crash in the middle of an append leaves a torn last record: it was never acknowledged,
    /// so opening zeroes it and the records before it stay.
    @Test(arguments: ["header", "body", "checksum", "length", "after"])
    func aTornLastRecordIsZeroed(damage: String) throws {
        let dir = try TempDir()
        let folder = dir.file("inbox")
        let end: InboxPosition, torn: InboxPosition
        do {
            let inbox = try Inbox(directory: folder, segmentBytes: 8192)
            try inbox.append((0..<3).map { record($0) })
            end = inbox.end
            try inbox.append([record(3)])
            torn = inbox.end
        }
        #expect(torn.segment == end.segment)
        let path = Inbox.path(folder, end.segment)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 8192, "segments are created full of zeros")
        let (from, to) = (Int(end.offset), Int(torn.offset))
        switch damage {
        case "header": for i in (from + 5)..<to { bytes[i] = 0 }  // only part of the header reached the disk
        case "body": for i in (to - 3)..<to { bytes[i] = 0 }
        case "checksum": bytes[to - 1] ^= 0xFF
        case "length": for i in from..<(from + 4) { bytes[i] = 0xFF }  // ~4 GiB declared: does not fit, nothing that size read
        default: for i in from..<to { bytes[i] = 0 }; bytes[to + 100] = 7  // stray bytes after the records
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let inbox = try Inbox(directory: folder, segmentBytes: 8192)
        #expect(inbox.truncatedBytes > 0)
        #expect(inbox.end == end)
        let after = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(after[from...].allSatisfy { $0 == 0 }, "nothing but zeros after the last whole record")
        #expect(try readAll(inbox) == (0..<3).map { record($0) })
        try inbox.append([record(9)])
        #expect(try readAll(inbox) == (0..<3).map { record($0) } + [record(9)])
    }

    @Test func segmentsRollOverAndAppliedOnesAreRemoved() throws {
        let dir = try TempDir()
        let folder = dir.file("inbox")
        let records = (0..<400).map { record($0) }
        let inbox = try Inbox(directory: folder, segmentBytes: 4096)
        for chunk in stride(from: 0, to: records.count, by: 10) { try inbox.append(Array(records[chunk..<(chunk + 10)])) }
        let segments = try Inbox.segments(in: folder)
        #expect(segments.count > 3)
        #expect(segments == Array(1...Int64(segments.count)))
        #expect(try readAll(inbox, chunk: 7) == records)

        // Read half, remove what is behind the reader: the rest still reads, from there.
        var reader = inbox.reader()
        let (firstHalf, middle) = try reader.read(from: .start, maxRecords: 200, maxBytes: 1 << 30)
        reader.close()
        #expect(firstHalf == Array(records[..<200]))
        try inbox.removeSegments(before: middle.segment)
        #expect(try Inbox.segments(in: folder).first == middle.segment)
        #expect(try readAll(inbox, from: middle) == Array(records[200...]))
        // A position in a removed segment reads from the oldest one left.
        #expect(try readAll(inbox, from: .start).last == records.last)
        // Never the segment being written.
        try inbox.removeSegments(before: Int64.max)
        #expect(try Inbox.segments(in: folder) == [inbox.end.segment])
        let reopened = try Inbox(directory: folder, segmentBytes: 4096)
        #expect(reopened.end == inbox.end)
    }

    /// Damage inside a closed segment is not a torn tail: reading stops there with an error that
    /// names the file and the byte, and the records before it are still read.
    @Test func damageBeforeTheEndIsReportedWithFileAndOffset() throws {
        let dir = try TempDir()
        let folder = dir.file("inbox")
        let inbox = try Inbox(directory: folder, segmentBytes: 4096)
        for chunk in stride(from: 0, to: 300, by: 10) { try inbox.append((chunk..<(chunk + 10)).map { record($0) }) }
        #expect(try Inbox.segments(in: folder).count > 2)
        var reader = inbox.reader()
        defer { reader.close() }
        let (firstTwo, damaged) = try reader.read(from: .start, maxRecords: 2, maxBytes: 1 << 20)
        #expect(damaged.segment == 1)
        let path = Inbox.path(folder, 1)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[Int(damaged.offset) + 12] ^= 0x55  // inside the third record's body
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(firstTwo == [record(0), record(1)])
        #expect(throws: InboxError.corrupt(path: path, offset: damaged.offset, reason: "a record checksum does not match")) {
            _ = try reader.read(from: damaged, maxRecords: 10, maxBytes: 1 << 20)
        }
        let again = try reader.read(from: .start, maxRecords: 2, maxBytes: 1 << 20)
        #expect(again.records == firstTwo)
    }
}

@Suite struct InboxApplierTests {
    /// The record's payload is its msg id; a payload "nan" makes an item SQLite refuses.
    static func item(_ r: InboxRecord) -> IngestItem {
        let id = String(decoding: r.payload, as: UTF8.self)
        let value = id == "nan" ? Double.nan : 95
        return obsItem(device: "dev-1", msgID: id, received: r.receivedAt,
                       [Observation(subject: "p-1", indicator: "spo2", kind: .measurement, value: value,
                                    at: r.receivedAt)])
    }

    static func records(_ range: Range<Int>) -> [InboxRecord] {
        range.map { InboxRecord(receivedAt: at(day: 0, hour: Double($0) / 100), topic: "pilots/hf-nord/dev-1/obs",
                                payload: Array("m\($0)".utf8)) }
    }

    @Test func everythingAppendedIsAppliedOnceAcrossRestarts() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"), segmentBytes: 4096)
        #expect(try store.inboxState() == nil)
        #expect(throws: StoreError.self) { try store.ingest([], inboxPosition: .start) }
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        #expect(try store.inboxState()?.id == inbox.id)

        let first = InboxApplier(inbox: inbox, store: store, from: try store.inboxPosition(), maxRecords: 17,
                                 makeItem: Self.item)
        first.start()
        for chunk in stride(from: 0, to: 300, by: 30) {
            try inbox.append(Self.records(chunk..<(chunk + 30)))
            first.wake()
        }
        #expect(first.finish() == nil)
        #expect(try store.inboxPosition() == inbox.end)
        #expect(try store.stats().accepted == 300)
        #expect(try Inbox.segments(in: inbox.directory) == [inbox.end.segment], "applied segments are removed")

        // Appended while no applier runs (acknowledged, then a crash): the next one starts where
        // the store says and applies only those.
        try inbox.append(Self.records(300..<350))
        let second = InboxApplier(inbox: inbox, store: store, from: try store.inboxPosition(), makeItem: Self.item)
        second.start()
        #expect(second.finish() == nil)
        let stats = try store.stats()
        #expect(stats.accepted == 350)
        #expect(stats.duplicate == 0, "nothing applied twice")
        #expect(try store.integrityCheck() == [])
    }

    /// A message SQLite refuses on every try is quarantined as `store_error` (its bytes kept for
    /// replay), the rest of its batch is stored, and the applier goes on: no crash loop.
    @Test func aMessageTheStoreRefusesIsQuarantinedAndTheRestStored() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        try inbox.append(Self.records(0..<5))
        try inbox.append([InboxRecord(receivedAt: at(hour: 1), topic: "pilots/hf-nord/dev-1/obs", payload: Array("nan".utf8))])
        try inbox.append(Self.records(5..<8))
        let failures = Counter()
        let troubles = Lines()
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, maxRecords: 5, makeItem: Self.item,
                                   onTrouble: { troubles.append($0) }, onFailure: { _ in failures.add() })
        applier.start()
        #expect(applier.finish() == nil)
        #expect(failures.value == 0)
        #expect(applier.position == inbox.end)
        #expect(try store.inboxPosition() == inbox.end)
        let stats = try store.stats()
        #expect(stats.accepted == 8)
        #expect(stats.refusedByReason == [.storeError: 1])
        #expect(stats.pilots.first?.refused == 0, "store_error is never counted against the pilot")
        let rejects = try store.replayCandidates(RejectFilter())
        #expect(rejects.count == 1)
        #expect(rejects.first?.reason == .storeError)
        let kept = String(decoding: rejects.first?.payload ?? [], as: UTF8.self)
        #expect(kept.contains("\"nan\""), "kept for replay: \(kept)")
        #expect(rejects.first?.detail.contains("NOT NULL") == true, "\(rejects.first?.detail ?? "")")
        #expect(troubles.all.contains { $0.contains("one at a time") })
        #expect(troubles.all.contains { $0.contains("quarantined a message") })
        #expect(try store.integrityCheck() == [])
    }

    /// A record refused as identifying data is overwritten in the inbox once its refusal is
    /// committed: its bytes are in no file afterwards; the records around it are intact.
    @Test func identifyingRecordsAreScrubbedFromTheInbox() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        let secret = "jean.dupont@example.fr"
        try inbox.append(Self.records(0..<3)
            + [InboxRecord(receivedAt: at(hour: 1), topic: "pilots/hf-nord/dev-1/obs", payload: Array(secret.utf8))]
            + Self.records(3..<6))
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, makeItem: { r in
            String(decoding: r.payload, as: UTF8.self) == secret
                ? IngestItem(topic: r.topic, receivedAt: r.receivedAt,
                             verdict: .refused(nil, Refusal(.identifyingData, "payload: looks like an e-mail address")),
                             payload: r.payload)
                : Self.item(r)
        })
        applier.start()
        #expect(applier.finish() == nil)
        #expect(try store.stats().accepted == 6)
        #expect(try store.pendingInboxScrubs() == [])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Inbox.path(inbox.directory, 1)))
        #expect(bytes.range(of: Data(secret.utf8)) == nil, "the identifying bytes are gone from the segment")
        // Every record still reads (offsets kept, checksums valid).
        var reader = inbox.reader()
        let all = try reader.read(from: .start, maxRecords: 100, maxBytes: 1 << 20)
        #expect(all.records.count == 7)
        #expect(all.records[3].payload.allSatisfy { $0 == 0 } && all.records[3].topic.isEmpty)
        #expect(InboxReport.check(directory: inbox.directory, applied: try store.inboxPosition()).problems == [])
    }

    /// A crash between the commit of a refusal and the overwrite of its bytes (or during the
    /// overwrite, tearing it): the next open of the inbox overwrites them, and the records after
    /// the torn one are not mistaken for a torn tail.
    @Test func aPendingScrubIsRedoneWhenTheInboxOpens() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite.inbox")
        let secret = "0612345678"
        var spans: [InboxSpan] = []
        do {
            let inbox = try Inbox(directory: path)
            try inbox.append(Self.records(0..<2))
            var reader = inbox.reader()
            try inbox.append([InboxRecord(receivedAt: at(hour: 1), topic: "pilots/hf-nord/dev-1/obs", payload: Array(secret.utf8))])
            try inbox.append(Self.records(2..<4))
            spans = try reader.readSpans(from: .start, maxRecords: 10, maxBytes: 1 << 20).spans
        }
        // A torn overwrite: half of the body zeroed, the checksum left as it was.
        let segment = Inbox.path(path, 1)
        let handle = try #require(FileHandle(forUpdatingAtPath: segment))
        try handle.seek(toOffset: UInt64(spans[2].offset + 8 + 10))
        try handle.write(contentsOf: Data(count: 5))
        try handle.close()
        #expect(InboxReport.check(directory: path, applied: nil).notes.count == 0)
        #expect(InboxReport.check(directory: path, applied: nil).problems.count == 1, "a bad checksum before other records is damage")
        #expect(InboxReport.check(directory: path, applied: nil, scrubbing: [spans[2]]).problems == [])

        let reopened = try Inbox(directory: path, pendingScrubs: [spans[2]])
        #expect(reopened.truncatedBytes == 0, "the records after the torn overwrite are kept")
        #expect(reopened.end == InboxPosition(segment: 1, offset: spans[4].offset + spans[4].length))
        var reader = reopened.reader()
        let records = try reader.read(from: .start, maxRecords: 10, maxBytes: 1 << 20).records
        #expect(records.count == 5)
        #expect(records[4] == Self.records(3..<4)[0])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        #expect(bytes.range(of: Data(secret.utf8)) == nil)
    }
}

/// Lines collected from several threads.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

extension InboxApplierTests {
    /// An inbox adopted by a fresh store, and an applier over it with `policy`, started.
    static func deferring(_ dir: TempDir, _ policy: InboxApplier.ApplyPolicy) throws -> (Inbox, Store, InboxApplier) {
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, policy: policy, makeItem: Self.item)
        applier.start()
        return (inbox, store, applier)
    }

    /// Polls `condition` every 10 ms for up to `timeout` seconds.
    static func within(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date(timeIntervalSinceNow: timeout)
        while Date() < end {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return try condition()
    }

    @Test func whileABurstIsArrivingSQLiteWaitsThenCatchesUp() throws {
        let dir = try TempDir()
        // Quiet after 2 s without an arrival; the other bounds out of reach.
        let (inbox, store, applier) = try Self.deferring(
            dir, .init(quiet: .seconds(2), maxDelay: .seconds(600), maxDeferredBytes: 1 << 40, due: .seconds(600)))
        for chunk in stride(from: 0, to: 100, by: 4) {
            try inbox.append(Self.records(chunk..<(chunk + 4)))
            applier.wake()
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(applier.position == .start, "nothing applied while the burst goes on")
        #expect(try store.stats().accepted == 0)
        #expect(Self.within(30) { applier.position == inbox.end }, "caught up once the burst is over")
        #expect(try store.stats().accepted == 100)
        #expect(applier.finish() == nil)
    }

    /// Ten records appended (and `wake()` called when `wake`) under `policy`: still waiting
    /// after `pause` seconds, then applied.
    static func expectWaitThenApply(_ policy: InboxApplier.ApplyPolicy, wake: Bool, pause: Double,
                                    _ why: Comment) throws {
        let dir = try TempDir()
        let (inbox, store, applier) = try Self.deferring(dir, policy)
        try inbox.append(Self.records(0..<10))
        if wake { applier.wake() }
        Thread.sleep(forTimeInterval: pause)
        #expect(applier.position == .start, why)
        #expect(Self.within(30) { applier.position == inbox.end })
        #expect(try store.stats().accepted == 10)
        #expect(applier.finish() == nil)
    }

    @Test func atLightLoadWhatIsDueIsAppliedWhileTheBurstGoesOn() throws {
        let dir = try TempDir()
        // Quiet and the bounds out of reach; any load counts as light.
        let (inbox, store, applier) = try Self.deferring(
            dir, .init(quiet: .seconds(600), maxDelay: .seconds(600), maxDeferredBytes: 1 << 40,
                       due: .milliseconds(300), lightShare: .infinity))
        var sent = 0
        let end = Date(timeIntervalSinceNow: 20)
        while applier.position == .start && Date() < end {
            try inbox.append(Self.records(sent..<(sent + 4)))
            sent += 4
            applier.wake()
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(applier.position > .start, "applied within 20 s while records kept arriving every 20 ms")
        #expect(try store.stats().accepted > 0)
        #expect(applier.finish() == nil)
        #expect(try store.stats().accepted == sent)
        #expect(applier.applyWork.records == sent)
        #expect(applier.applyWork.waitingForValidation <= applier.applyWork.busy)
    }

    #if os(Linux)
    /// The applier's two threads carry names the system shows (`top -H`, profilers).
    @Test func theApplierThreadsAreNamedForTheSystem() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, makeItem: Self.item)
        applier.start()
        try inbox.append(Self.records(0..<3))
        applier.wake()
        func names() -> Set<String> {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return Set(tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while !names().isSuperset(of: ["pw-apply", "pw-validate"]) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(names().isSuperset(of: ["pw-apply", "pw-validate"]), "\(names().sorted())")
        #expect(applier.finish() == nil)
    }
    #endif

    @Test func theDelayBoundEndsTheWait() throws {
        // 600 s of quiet out of reach: only the 3 s delay can end the wait.
        try Self.expectWaitThenApply(.init(quiet: .seconds(600), maxDelay: .seconds(3), maxDeferredBytes: 1 << 40, due: .seconds(600)),
                                     wake: true, pause: 0.3, "waiting: the delay has not run out")
    }

    @Test func theByteBoundEndsTheWait() throws {
        // The bound: one byte more than ten records take in an inbox.
        let scratch = try TempDir()
        let measure = try Inbox(directory: scratch.file("m.inbox"))
        try measure.append(Self.records(0..<10))
        let tenRecords = measure.backlogBytes(after: .start)

        let dir = try TempDir()
        let (inbox, store, applier) = try Self.deferring(
            dir, .init(quiet: .seconds(600), maxDelay: .seconds(600), maxDeferredBytes: tenRecords + 1, due: .seconds(600)))
        try inbox.append(Self.records(0..<10))
        applier.wake()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(applier.position == .start, "waiting: \(tenRecords) bytes are under the bound")
        try inbox.append(Self.records(10..<20))
        applier.wake()
        #expect(Self.within(30) { applier.position == inbox.end }, "applied once the bound is passed")
        #expect(try store.stats().accepted == 20)
        #expect(applier.finish() == nil)
    }

    @Test func whatTheInboxHeldAtTheStartIsAppliedWithoutWaiting() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        try inbox.append(Self.records(0..<10))  // acknowledged before a restart
        let applier = InboxApplier(inbox: inbox, store: store, from: .start,
                                   policy: .init(quiet: .seconds(600), maxDelay: .seconds(600), maxDeferredBytes: 1 << 40, due: .seconds(600)),
                                   makeItem: Self.item)
        applier.start()
        #expect(Self.within(30) { applier.position == inbox.end })
        #expect(try store.stats().accepted == 10)
        #expect(applier.finish() == nil)
    }

    @Test func eachCommitIsTimedForMonitoring() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        try inbox.append(Self.records(0..<30))
        let commits = Mutex<[Duration]>([])
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, maxRecords: 10, maxTransactionRecords: 10,
                                   makeItem: Self.item,
                                   onCommit: { duration in commits.withLock { $0.append(duration) } })
        applier.start()
        #expect(applier.finish() == nil)
        #expect(try store.stats().accepted == 30)
        let durations = commits.withLock { $0 }
        #expect(durations.count == 3, "one per batch of 10")
        #expect(durations.allSatisfy { $0 >= .zero })
    }

    /// A backlog goes into SQLite in transactions of several batches (up to
    /// `maxTransactionRecords`): each record once, the inbox position of the last batch recorded,
    /// a hash-only refusal in a later batch overwritten in the inbox, and `onStored` given the
    /// items it asked for with their own outcomes.
    @Test func aBacklogIsAppliedInTransactionsOfSeveralBatches() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"), segmentBytes: 2048)
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        let secret = "jean.dupont@example.fr"
        try inbox.append(Self.records(0..<55)
            + [InboxRecord(receivedAt: at(hour: 1), topic: "pilots/hf-nord/dev-1/obs", payload: Array(secret.utf8))]
            + Self.records(55..<99))
        let commits = Counter()
        let stored = Mutex<[(String, IngestOutcome)]>([])
        let applier = InboxApplier(
            inbox: inbox, store: store, from: .start, maxRecords: 10, maxTransactionRecords: 40,
            makeItem: { r in
                String(decoding: r.payload, as: UTF8.self) == secret
                    ? IngestItem(topic: r.topic, receivedAt: r.receivedAt,
                                 verdict: .refused(nil, Refusal(.identifyingData, "payload: looks like an e-mail address")),
                                 payload: r.payload)
                    : Self.item(r)
            },
            onCommit: { _ in commits.add() },
            onStored: { items, outcomes in
                stored.withLock { $0 += zip(items.map(Self.name), outcomes) }
            },
            storedNeeds: { ["m7", "m50", "m98", "refused"].contains(Self.name($0)) })
        applier.start()
        #expect(applier.finish() == nil)
        #expect(commits.value == 3, "40 + 40 + 20 records")
        let stats = try store.stats()
        #expect(stats.accepted == 99)
        #expect(stats.duplicate == 0)
        #expect(stats.refusedByReason == [.identifyingData: 1])
        #expect(try store.inboxPosition() == inbox.end)
        #expect(try store.pendingInboxScrubs() == [])
        for segment in try Inbox.segments(in: inbox.directory) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: Inbox.path(inbox.directory, segment)))
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "segment \(segment) still holds the refused bytes")
        }
        let picked = stored.withLock { $0 }
        #expect(picked.map(\.0) == ["m7", "m50", "refused", "m98"])
        #expect(picked.map(\.1) == [.accepted(newObservations: 1, duplicateObservations: 0),
                                    .accepted(newObservations: 1, duplicateObservations: 0),
                                    .refused(.identifyingData),
                                    .accepted(newObservations: 1, duplicateObservations: 0)])
        #expect(try store.integrityCheck() == [])
    }

    /// An item's msg id, or "refused".
    static func name(_ item: IngestItem) -> String {
        if case .observations(_, let message) = item.verdict { return message.msgID }
        return "refused"
    }

    /// When a transaction of several batches fails (SQLite refuses a message in its third
    /// batch), its first batch is stored alone and the rest read again from the inbox: every
    /// other message stored once, the refused one quarantined as `store_error`.
    @Test func aTransactionOfSeveralBatchesThatFailsFallsBackToOne() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
        try store.adoptInbox(id: inbox.id, position: inbox.end)
        try inbox.append(Self.records(0..<12))
        try inbox.append([InboxRecord(receivedAt: at(hour: 1), topic: "pilots/hf-nord/dev-1/obs", payload: Array("nan".utf8))])
        try inbox.append(Self.records(12..<30))
        let commits = Counter()
        let applier = InboxApplier(inbox: inbox, store: store, from: .start, maxRecords: 5, maxTransactionRecords: 100,
                                   makeItem: Self.item, onCommit: { _ in commits.add() })
        applier.start()
        #expect(applier.finish() == nil)
        let stats = try store.stats()
        #expect(stats.accepted == 30)
        #expect(stats.duplicate == 0, "nothing of the failed transaction was kept, nothing applied twice")
        #expect(stats.refusedByReason == [.storeError: 1])
        #expect(try store.inboxPosition() == inbox.end)
        #expect(commits.value >= 3, "the first batches alone, the refused message quarantined, then the rest")
        #expect(try store.integrityCheck() == [])
    }

    @Test func recordsNoticedBeforeTheirWakeStillWait() throws {
        // No wake(): the applier finds the records on its 1 s poll, then waits for quiet as for a burst.
        try Self.expectWaitThenApply(.init(quiet: .seconds(3), maxDelay: .seconds(600), maxDeferredBytes: 1 << 40, due: .seconds(600)),
                                     wake: false, pause: 1.5, "found on the poll, then waiting for quiet")
    }

    @Test func finishingAppliesWhatAWaitingApplierHolds() throws {
        let dir = try TempDir()
        let (inbox, store, applier) = try Self.deferring(
            dir, .init(quiet: .seconds(600), maxDelay: .seconds(600), maxDeferredBytes: 1 << 40, due: .seconds(600)))
        try inbox.append(Self.records(0..<10))
        applier.wake()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(applier.position == .start, "still waiting for the burst to end")
        #expect(applier.finish() == nil)
        #expect(applier.position == inbox.end)
        #expect(try store.stats().accepted == 10)
    }
}

/// A thread-safe counter for callbacks.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite struct InboxResourceTests {
    /// How many of this process's descriptors are open on a file under `folder` (other tests
    /// run beside this one, so descriptors are counted by what they point at).
    static func openDescriptors(under folder: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)) ?? "").hasPrefix(folder)
        }.count
    }

    /// A reader that is dropped without `close()` closes its segment file all the same.
    @Test func aReaderClosesItsFileWhenItGoesAway() throws {
        let dir = try TempDir()
        let inbox = try Inbox(directory: dir.file("s.inbox"))
        try inbox.append((0..<3).map { record($0) })
        let folder = URL(fileURLWithPath: inbox.directory).resolvingSymlinksInPath().path
        let before = Self.openDescriptors(under: folder)
        #expect(before == 1, "the inbox holds its segment open for appending")
        for _ in 0..<20 {
            var reader = inbox.reader()
            _ = try reader.read(from: .start, maxRecords: 10, maxBytes: 1 << 20)
            #expect(Self.openDescriptors(under: folder) == before + 1, "the reader holds one file while it lives")
        }
        #expect(Self.openDescriptors(under: folder) == before, "and none once it is gone")
    }

    @Test func startingTwiceIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            let dir = try TempDir()
            let store = try Store(path: dir.file("s.sqlite"))
            let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
            let applier = InboxApplier(inbox: inbox, store: store, from: .start, makeItem: InboxApplierTests.item)
            applier.start()
            applier.start()
        }
    }

    @Test func finishingBeforeStartingIsAPreconditionFailureNotAHang() async {
        await #expect(processExitsWith: .failure) {
            let dir = try TempDir()
            let store = try Store(path: dir.file("s.sqlite"))
            let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
            InboxApplier(inbox: inbox, store: store, from: .start, makeItem: InboxApplierTests.item).finish()
        }
    }

    @Test func finishingTwiceIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            let dir = try TempDir()
            let store = try Store(path: dir.file("s.sqlite"))
            let inbox = try Inbox(directory: dir.file("s.sqlite.inbox"))
            try store.adoptInbox(id: inbox.id, position: inbox.end)
            let applier = InboxApplier(inbox: inbox, store: store, from: .start, makeItem: InboxApplierTests.item)
            applier.start()
            applier.finish()
            applier.finish()
        }
    }
}

@Suite struct StoreErrorClassTests {
    /// Only a refusal of the message itself sends it to quarantine; a store refusing everything
    /// (disk full, I/O, read-only) or a busy one is waited for, blaming no message.
    @Test(arguments: [(Int32(19), true), (2067, true), (1811, true), (18, true), (20, true),
                      (13, false), (10, false), (8, false), (5, false), (11, false), (1, false)])
    func whatCountsAsTheMessagesOwnFault(_ code: Int32, _ quarantined: Bool) {
        #expect(InboxApplier.refusesTheMessage(StoreError.sqlite(operation: "storing", message: "x", code: code)) == quarantined)
    }

    @Test func anErrorWithoutAResultCodeIsNotTheMessagesFault() {
        #expect(!InboxApplier.refusesTheMessage(StoreError.sqlite(operation: "storing", message: "x")))
        #expect(!InboxApplier.refusesTheMessage(InboxError.io(path: "p", call: "write", reason: "r")))
    }
}
