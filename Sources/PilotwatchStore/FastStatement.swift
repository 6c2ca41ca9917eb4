import GRDB
import GRDBSQLite

/// A cached statement stepped through SQLite's C API, for the statements ingest runs once per
/// message or per roll-up key.
///
/// Binding integers, doubles and text directly skips GRDB's per-call argument boxing and
/// validation, which cost about a tenth of ingest CPU. For INSERT and UPDATE statements (no
/// result rows) run inside the writer's transaction, and for reads stepped by
/// ``forEachRow(_:)`` or ``firstRow(_:)``; GRDB still owns the statement.
struct FastStatement {
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        guard let connection = db.sqliteConnection else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the database connection is closed")
        }
        self.connection = connection
    }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    /// NaN binds as NULL (SQLite's rule), which NOT NULL columns refuse.
    func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(handle, index, value) }
    /// Binds the exact UTF-8 bytes (a NUL inside the text does not cut it short).
    func bind(_ index: Int32, _ value: String) {
        var text = value
        text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                if let start = chars.baseAddress {
                    _ = sqlite3_bind_text(handle, index, start, Int32(chars.count), sqliteTransient)
                } else {
                    // An empty buffer has no address, and a NULL pointer would bind NULL, not ''.
                    _ = "".withCString { sqlite3_bind_text(handle, index, $0, 0, sqliteTransient) }
                }
            }
        }
    }
    func bind(_ index: Int32, _ value: Int64?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Runs the statement with the values bound so far; returns the number of rows it changed.
    @discardableResult
    func run() throws -> Int {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(connection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
        return Int(sqlite3_changes(connection))
    }
}

extension FastStatement {
    /// The columns of the row a query statement is on, read through SQLite's C API.
    struct Columns {
        fileprivate let handle: OpaquePointer

        func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }
        func optionalInt64(_ index: Int32) -> Int64? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, index)
        }
        func text(_ index: Int32) -> String {
            guard let bytes = sqlite3_column_text(handle, index) else { return "" }
            let count = Int(sqlite3_column_bytes(handle, index))
            return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        }
        func optionalText(_ index: Int32) -> String? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : text(index)
        }
        func double(_ index: Int32) -> Double { sqlite3_column_double(handle, index) }
        func optionalDouble(_ index: Int32) -> Double? {
            sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_double(handle, index)
        }
        /// The text of the column compared with `known`'s bytes; `known` itself when equal (no new String).
        func text(_ index: Int32, reusing known: String) -> String {
            guard let bytes = sqlite3_column_text(handle, index) else { return "" }
            let buffer = UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, index)))
            return known.utf8.elementsEqual(buffer) ? known : String(decoding: buffer, as: UTF8.self)
        }
    }

    /// Runs a query with the values bound so far and returns `body` of its first row, if any.
    func firstRow<T>(_ body: (Columns) throws -> T) throws -> T? {
        var result: T?
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW {
            result = try body(Columns(handle: handle))
        } else if code != SQLITE_DONE {
            throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                message: String(cString: sqlite3_errmsg(connection)), sql: statement.sql)
        }
        return result
    }

    /// Runs a query with the values bound so far and calls `body` with each row, in order.
    /// For reads of many small rows, where decoding each column through GRDB's `Row` costs more
    /// than SQLite's own work.
    func forEachRow(_ body: (Columns) throws -> Void) throws {
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                    message: String(cString: sqlite3_errmsg(connection)), sql: statement.sql)
            }
            try body(Columns(handle: handle))
        }
    }
}

/// SQLite copies the bound bytes before the call returns.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
