import Foundation
import PilotwatchCore
import PilotwatchStore

/// The work of an erasure, done by whoever writes the store: `subjects erase` itself, or `serve`
/// on its applier's thread (``InboxApplier/perform(_:)``), between two batches.
enum ErasureWork {
    /// Erases the subject in the store, overwrites the inbox records already applied that name it,
    /// and appends its tombstone to the file beside the database (after the store's commit: a
    /// crash in between is mended by ``reapply(store:database:log:)`` at the next start).
    static func erase(store: Store, inbox: Inbox?, applied: InboxPosition?, database: String,
                      pilot: String, subject: String) throws -> ErasureSummary {
        let keys = try ErasureKeys.ensure(database: database)
        var summary = try store.erase(pilot: pilot, subject: subject, keys: keys, at: .now)
        if let inbox, let applied {
            summary.inboxRecords = try scrub(inbox, before: applied, pilot: pilot, subject: subject)
        }
        if summary.newTombstone {
            try TombstoneFile.append([Tombstone(hash: summary.tombstone, pilot: pilot, erasedAt: Instant.now.millis)], database: database)
        }
        giveFilesTheDatabaseOwner(database)
        return summary
    }

    /// Run as root (a restore, an erasure by the administrator), the key and tombstone files it
    /// made get the database's owner and group, so that serve, running as the service's user,
    /// can read them.
    static func giveFilesTheDatabaseOwner(_ database: String) {
        guard getuid() == 0 else { return }
        var owner = stat()
        guard stat(database, &owner) == 0 else { return }
        for path in [ErasureKeys.path(forDatabase: database), TombstoneFile.path(forDatabase: database)] {
            _ = chown(path, owner.st_uid, owner.st_gid)
        }
    }

    /// Overwrites the inbox records before `applied` whose topic is the pilot's and whose payload
    /// names the subject; returns how many. Only the inbox's applier may do this (serve's applier
    /// thread, or a command holding the writer lock with no applier running).
    static func scrub(_ inbox: Inbox, before applied: InboxPosition, pilot: String, subject: String) throws -> Int {
        var reader = inbox.reader()
        defer { reader.close() }
        var at = InboxPosition(segment: inbox.oldestSegment, offset: 0)
        var count = 0
        let marker = "/" + pilot + "/"
        while at < applied {
            let (records, spans, next) = try reader.readSpans(from: at, maxRecords: 512, maxBytes: 4 << 20)
            if next == at { break }
            let naming = zip(records, spans).filter { record, span in
                span.segment < applied.segment || (span.segment == applied.segment && span.offset < applied.offset)
            }.filter { record, _ in
                !record.isScrubbed && record.topic.contains(marker) && PayloadMention.names(subject, in: record.payload)
            }.map(\.1)
            if !naming.isEmpty { try inbox.scrub(naming) }
            count += naming.count
            at = next
        }
        return count
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
        giveFilesTheDatabaseOwner(database)
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
