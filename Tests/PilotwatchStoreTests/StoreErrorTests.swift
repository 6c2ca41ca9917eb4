import GRDB
import PilotwatchCore
import Testing
@testable import PilotwatchStore

/// SQLite's errors reach the store's callers with SQLite's result code, so that they can decide:
/// a busy database is retried, a refused row quarantined.
@Suite struct StoreErrorTests {
    @Test func aConstraintFailureKeepsItsExtendedResultCode() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        // A NaN value binds as NULL, which `observation.value NOT NULL` refuses.
        let error = try #require(throws: StoreError.self) {
            try store.ingest([obsItem(msgID: "m-1", [measurement("p-ssssss", .nan, at(hour: 9))])])
        }
        #expect(error.sqliteResultCode == 19)                 // SQLITE_CONSTRAINT
        #expect(error.sqliteExtendedResultCode == 1299)       // SQLITE_CONSTRAINT_NOTNULL
        #expect(!error.isBusy)
        #expect(InboxApplier.refusesTheMessage(error))
        #expect(error.sql?.hasPrefix("INSERT INTO observation") == true)
        #expect(error.description == """
            database error while storing 1 messages: NOT NULL constraint failed: observation.value (SQLite result code 1299)
            """)
    }

    @Test func aTriggerRefusalKeepsItsExtendedResultCode() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest([refusedItem(.identifyingData, "observations[0].subject: looks like an e-mail address",
                                      payload: "{}")])
        let error = try #require(throws: StoreError.self) {
            try store.executeRaw("""
                INSERT INTO reject_payload (reject_id, payload)
                SELECT id, x'00' FROM reject WHERE reason = 'identifying_data'
                """)
        }
        #expect(error.sqliteResultCode == 19)
        #expect(error.sqliteExtendedResultCode == 1811)       // SQLITE_CONSTRAINT_TRIGGER
        #expect(error.sql?.contains("INSERT INTO reject_payload") == true)
    }

    @Test func aBusyDatabaseKeepsItsResultCode() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        let store = try Store(path: path, options: StoreOptions(busyTimeoutSeconds: 0.05))
        // Another connection (another process, as far as SQLite can tell) holds the write lock.
        var config = Configuration()
        config.allowsUnsafeTransactions = true  // the lock outlives one access
        let other = try DatabaseQueue(path: path, configuration: config)
        try other.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
        defer { try? other.writeWithoutTransaction { try $0.execute(sql: "ROLLBACK") } }

        let error = try #require(throws: StoreError.self) {
            try store.ingest([obsItem(msgID: "m-1", [measurement("p-ssssss", 94, at(hour: 9))])])
        }
        #expect(error.sqliteResultCode == 5)                  // SQLITE_BUSY
        #expect(error.isBusy)
        #expect(!InboxApplier.refusesTheMessage(error))
        #expect(error.description.hasPrefix("database error while storing 1 messages: "))
        #expect(error.description.hasSuffix(" (SQLite result code 5)"))
    }

    @Test func anErrorWithoutSQLiteHasNoCode() {
        let error = StoreError.sqlite(operation: "reading counters", message: "the ingest_total row is missing")
        #expect(error.sqliteResultCode == nil && error.sqliteExtendedResultCode == nil && error.sql == nil)
        #expect(!error.isBusy)
        #expect(error.description == "database error while reading counters: the ingest_total row is missing")
    }
}
