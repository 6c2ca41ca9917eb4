import Logging
import PilotwatchCore
import PilotwatchStore

/// What `serve` writes to: the store, its inbox, and the contract that messages are validated
/// by (replaced when a replay handed over reloads the registry).
struct ServeStorage: Sendable {
    let database: String
    let inboxPath: String
    let store: Store
    let inbox: Inbox
    let validator: Mutex<ContractValidator>

    /// Opens the store and its inbox, then re-applies the recorded erasures. The caller holds
    /// the writer lock.
    static func open(_ ctx: Context, logger: Logger) throws -> ServeStorage {
        let database = ctx.service.databasePath
        // 8 MiB of SQLite page cache a connection, not 32: on the ingest benchmark (1,000,000
        // messages) peak memory fell from 73 to 47 MiB and the applier was no slower; the views
        // (other processes) keep their own cache.
        let store = try openStore(database, cacheSizeMiB: 8)
        let inboxPath = database + ".inbox"
        let inbox = try StoreWork.openInbox(inboxPath, store: store, validator: { ctx.validator }, log: { logger.warning("\($0)") })
        // Erased subjects stay erased whatever backup was put back; the store has its erasure key.
        do {
            try ErasureWork.reapply(store: store, database: database, log: { logger.notice("\($0)") })
        } catch {
            throw CLIError("cannot re-apply the erasures of \(database): \(error)", cause: error)
        }
        // The contract as configured; a replay handed over reloads the registry and catalogue
        // (that is when an operator has just added what messages were refused for).
        return ServeStorage(database: database, inboxPath: inboxPath, store: store, inbox: inbox,
                            validator: Mutex(ctx.validator))
    }
}
