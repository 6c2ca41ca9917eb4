import GRDB
@testable import PilotwatchStore

// Helpers for the store's own tests, reaching its internals through `@testable import`.
extension Store {
    /// Runs raw SQL in one write transaction.
    func executeRaw(_ sql: String) throws {
        try Store.sqlite("executing test SQL") {
            try pool.write { db in try db.execute(sql: sql) }
        }
    }

    /// The first column of the first row of a query, as an integer.
    func scalar(_ sql: String) throws -> Int64? {
        try read { try Int64.fetchOne($0.db, sql: sql) }
    }

    /// The first column of the first row of a query, as text.
    func text(_ sql: String) throws -> String? {
        try read { try String.fetchOne($0.db, sql: sql) }
    }
}

extension Store {
    /// Creates a store file at `path` as an older pilotwatch left it: migrations up to `last`
    /// only, then `sql` (its data).
    static func createOlder(path: String, upTo last: String, sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(queue, upTo: last)
        try queue.write { try $0.execute(sql: sql) }
    }
}
