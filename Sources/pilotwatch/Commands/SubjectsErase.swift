import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchStore

extension Subjects {
    struct Erase: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erase",
            abstract: "Erase everything about a subject, for good (a person withdrew consent and asked for deletion).",
            discussion: """
            Removes the subject's readings, events and roll-ups (every figure is then as if it had \
            never sent anything), the messages that named it alone, the refused messages that name \
            it, a device that only it used, and its records still in the inbox. Deleted bytes are \
            overwritten (SQLite's secure_delete), the file is rewritten (VACUUM: a write of the \
            whole store) and the write-ahead log is emptied, so the pseudonym is gone from the \
            files, not only from the tables.

            A tombstone stays: the keyed hash of pilot and subject (the key is {database}.key, made \
            at install, never in the database). Every later message naming the subject is refused \
            as erased_subject and kept as hash only, and the tombstone is also appended to \
            {database}.erased, so that `db restore` of an older backup and serve's start erase the \
            subject again. Backups carry the key.

            While serve runs, the erasure is handed to it and done between two batches. It is \
            recorded in the audit trail with the reason and the subject's keyed hash. The reason \
            must not identify the person (no name, e-mail, phone number or birth date).

            Examples:
              pilotwatch subjects erase --pilot resp-copd-idf-01 --subject p-7f3a9c21 --reason "consent withdrawn, request DPO-2026-041"
              pilotwatch subjects erase --pilot resp-copd-idf-01 --subject p-7f3a9c21 --reason "..." --format json
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The pilot id.", valueName: "id"))
        var pilot: String

        @Option(help: ArgumentHelp("The subject's pseudonym, as the pilot sends it.", valueName: "pseudonym"))
        var subject: String

        @Option(help: ArgumentHelp("Why (recorded in the audit trail): a request reference, never the person's name.", valueName: "text"))
        var reason: String

        @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
        var format: OutputFormat = .table

        func validate() throws {
            try requireCode(pilot, flag: "--pilot", naming: "pilot id")
            guard (1...64).contains(subject.utf8.count) else {
                throw ValidationError("--subject must be a pseudonym of 1 to 64 bytes, as the pilot sends it")
            }
            let text = reason.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty, text.utf8.count <= 500 else {
                throw ValidationError("--reason must say why in 1 to 500 bytes (a request reference, for example)")
            }
            guard !text.contains(subject) else {
                throw ValidationError("--reason must not contain the pseudonym: the audit trail keeps the reason and names the subject by a keyed hash only")
            }
            let recent = Instant.now.adding(days: -366).day
            if let kind = IdentifierGuard.kind(of: text, policy: .tolerant(timestampsFrom: recent)) {
                throw ValidationError("--reason looks like it holds \(kind.rawValue == "e-mail address" ? "an" : "a") \(kind.rawValue): the audit trail keeps the reason, so it must not identify the person; give a request reference instead")
            }
            if format == .csv { throw ValidationError("--format csv: erase prints table or json") }
        }

        func run() throws {
            let ctx = try Context.load(global)
            let database = ctx.service.databasePath
            guard FileManager.default.fileExists(atPath: database) else {
                throw CLIError("no database at \(database); check --db or `database:` in \(global.configPath)")
            }
            // The key first: the audit record names the subject by its keyed hash.
            let keys: ErasureKeys
            do {
                if let existing = try ErasureKeys.read(database: database) {
                    keys = existing
                } else {
                    // A store with tombstones and no key must get its key back, never a new one.
                    let held = try openStore(database, readOnly: true).tombstoneCount()
                    if held > 0 {
                        throw CLIError("the erasure key \(ErasureKeys.path(forDatabase: database)) is missing and the store holds \(held) tombstones made with it; put the key file back (every backup carries it: `pilotwatch db restore` brings it back)")
                    }
                    keys = try ErasureKeys.ensure(database: database)
                }
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("\(error); run the erasure as the service's user (sudo -u pilotwatch) or as root", cause: error)
            }
            let hash = keys.currentHash(pilot: pilot, subject: subject) ?? ""
            let selection = "pilot=\(pilot) subject_hash=\(SubjectTombstone.short(hash)) reason=\(reason.trimmingCharacters(in: .whitespacesAndNewlines))"
            let summary = try audited("subjects erase", database: database, selection: selection) { _ -> ErasureSummary in
                switch try WriteAccess.obtain(database: database, role: "subjects-erase") {
                case .serve(_, let client):
                    try client.send(ServeRequest(op: .erase, pilot: pilot, subject: subject))
                    client.finishSending()
                    guard let summary = try client.answer(doing: "erase the subject").erasure else {
                        throw CLIError("`pilotwatch serve` answered without saying what it erased; see its log")
                    }
                    return summary
                case .own(let lock):
                    defer { lock.release() }
                    let store = try openStore(database)
                    // What was acknowledged before goes into SQLite first, so that the erasure
                    // reaches it and the inbox records are all applied (and may be overwritten).
                    let applied = try StoreWork.applyInbox(database: database, store: store, validator: { ctx.validator },
                                                           log: { printError("subjects erase: \($0)") })
                    if applied > 0 { printError("subjects erase: applied \(applied) bytes of the inbox first") }
                    let inboxPath = database + ".inbox"
                    var inbox: Inbox?
                    if FileManager.default.fileExists(atPath: inboxPath) {
                        inbox = try StoreWork.openInbox(inboxPath, store: store, validator: { ctx.validator },
                                                        log: { printError("subjects erase: \($0)") })
                    }
                    return try ErasureWork.erase(store: store, inbox: inbox, applied: inbox?.end, database: database,
                                                 pilot: pilot, subject: subject,
                                                 federated: ctx.service.federation?.pilots.contains(pilot) ?? false)
                }
            }
            print(Self.render(summary, pilot: pilot, format: format))
            if !summary.walEmptied {
                // The log may still hold copies of pages from before the erasure.
                throw CLIError("the subject is erased in the database, but its write-ahead log could not be emptied (readers held it for 5 s), so it may still hold old copies of the pages; run the same command again when the views are idle (it is safe: the subject is already erased)")
            }
        }

        static func render(_ s: ErasureSummary, pilot: String, format: OutputFormat) -> String {
            if format == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                let data = (try? encoder.encode(s)) ?? Data("{}".utf8)
                return "{\"pilot\":\"\(pilot)\",\"erasure\":" + String(decoding: data, as: UTF8.self) + "}"
            }
            var lines = [s.newTombstone ? "erased a subject of \(pilot) (tombstone \(SubjectTombstone.short(s.tombstone)))"
                                        : "the subject of \(pilot) was already erased (tombstone \(SubjectTombstone.short(s.tombstone))); removed again what had come back"]
            let rows: [(String, Int)] = [
                ("observations", s.observations), ("events", s.events), ("day roll-ups", s.dayRollups),
                ("indicator roll-ups", s.indicatorRollups), ("messages", s.messages), ("refused messages", s.quarantined),
                ("devices forgotten", s.devicesForgotten), ("inbox records overwritten", s.inboxRecords),
            ]
            for (name, n) in rows { lines.append("  " + name.padding(toLength: 26, withPad: " ", startingAt: 0) + String(n)) }
            if s.dayEndsResent > 0 {
                lines.append("  \(s.dayEndsResent) day-end snapshots are sent to the cluster again without it (serve's next federation round)")
            }
            if s.messagesNotAttributed > 0 {
                lines.append("  \(s.messagesNotAttributed) messages on its devices are not tied to it alone (several subjects, pilot-level, or stored before schema v7): kept, with their counts")
            }
            lines.append("  write-ahead log           " + (s.walEmptied ? "emptied" : "not yet emptied"))
            return lines.joined(separator: "\n")
        }
    }
}
