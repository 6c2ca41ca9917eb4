import Foundation
import PilotwatchCore
import PilotwatchStore

/// The work of an erasure, done by whoever writes the store: `subjects erase` itself, or `serve`
/// on its applier's thread (``InboxApplier/perform(_:)``), between two batches.
enum ErasureWork {
    /// Erases the subject: first its tombstone goes into the file beside the database (a crash
    /// after that leaves a tombstone that the next start applies), then the store erases it and
    /// records the inbox records already applied that name it, then those are overwritten.
    ///
    /// On a site instance that forwards the pilot (`federated`), the day ends from the subject's
    /// first data on are sent to the cluster again (by serve's next round), without it.
    static func erase(store: Store, inbox: Inbox?, applied: InboxPosition?, database: String,
                      pilot: String, subject: String, federated: Bool = false) throws -> ErasureSummary {
        let keys = try ErasureKeys.ensure(database: database)
        let hashes = Set(keys.hashes(pilot: pilot, subject: subject))
        if let hash = keys.currentHash(pilot: pilot, subject: subject),
           !(try TombstoneFile.read(database: database)).contains(where: { hashes.contains($0.hash) }) {
            try TombstoneFile.append([Tombstone(hash: hash, pilot: pilot, erasedAt: Instant.now.millis)], database: database)
        }
        var spans: [InboxSpan] = []
        if let inbox, let applied { spans = try naming(inbox, before: applied, pilot: pilot, subject: subject) }
        var summary = try store.erase(pilot: pilot, subject: subject, keys: keys, at: .now, scrubs: spans)
        if let inbox, !spans.isEmpty {
            try inbox.scrub(spans)
            try store.clearInboxScrubs(spans)
        }
        summary.inboxRecords = spans.count
        if federated, let first = summary.firstDataAtMillis {
            summary.dayEndsResent = try store.requeueFederation(pilot: pilot, from: Instant(millis: first).day)
        }
        return summary
    }

    /// The inbox records before `applied` whose topic is the pilot's and whose payload names the
    /// subject. Only the inbox's applier may overwrite them (serve's applier thread, or a command
    /// holding the writer lock with no applier running).
    static func naming(_ inbox: Inbox, before applied: InboxPosition, pilot: String, subject: String) throws -> [InboxSpan] {
        var reader = inbox.reader()
        defer { reader.close() }
        var at = InboxPosition(segment: inbox.oldestSegment, offset: 0)
        var found: [InboxSpan] = []
        let marker = "/" + pilot + "/"
        while at < applied {
            let (records, spans, next) = try reader.readSpans(from: at, maxRecords: 512, maxBytes: 4 << 20)
            if next == at { break }
            for (record, span) in zip(records, spans) where InboxPosition(segment: span.segment, offset: span.offset) < applied {
                if !record.isScrubbed && record.topic.contains(marker) && PayloadMention.names(subject, in: record.payload) {
                    found.append(span)
                }
            }
            at = next
        }
        return found
    }

    /// After a restore, and at `serve`'s start: brings in the keys a restored backup carries
    /// (into the key file, then out of the database), makes sure the store has a key, and
    /// re-applies the tombstones of the file beside the database (a restored older backup does
    /// not bring an erased subject back); the store's tombstones the file lacks are appended to it.
    static func reapply(store: Store, database: String, log: (String) -> Void) throws {
        let carried = try store.keysCarried()
        if !carried.isEmpty {
            let added = try ErasureKeys.merge(carried, database: database)
            try store.dropCarriedKeys()
            if added > 0 { log("erasure: \(added) key(s) from the restored backup added to \(ErasureKeys.path(forDatabase: database))") }
        }
        let keys = try ErasureKeys.ensure(database: database)
        let (missing, again) = try store.reapplyTombstones(try TombstoneFile.read(database: database), keys: keys, at: .now)
        try TombstoneFile.append(missing, database: database)
        if !again.isEmpty {
            log("erasure: \(again.count) erased subject(s) found in the store again (an older backup restored) and erased again: "
                + again.map(SubjectTombstone.short).joined(separator: ", "))
        }
    }

    /// How an audit record names a subject: the short keyed hash, never the pseudonym; without a
    /// readable key, not at all.
    static func auditName(database: String, pilot: String, subject: String) -> String {
        guard let keys = try? ErasureKeys.read(database: database), let hash = keys.currentHash(pilot: pilot, subject: subject) else {
            return "subject=(withheld)"
        }
        return "subject_hash=" + SubjectTombstone.short(hash)
    }
}
