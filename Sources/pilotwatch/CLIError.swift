import PilotwatchStore

/// A one-line error for the terminal: what was wrong, with which value, and what to do.
/// Its kind sets the exit status (see `Pilotwatch.main()` and "Exit codes" in README.md).
///
/// ```swift
/// throw CLIError("unknown pilot \"\(id)\"; valid pilots: ...", kind: .usage)   // exit 64
/// throw CLIError("cannot write \(path): \(error)")                              // exit 1
/// throw CLIError("cannot open the database \(path): \(error)", cause: error)   // 75 when the store is busy
/// ```
struct CLIError: Error, CustomStringConvertible {
    enum Kind: Sendable {
        /// A bad flag, argument or environment value found after parsing (an unknown pilot id,
        /// a time that does not parse): exit 64, EX_USAGE, like swift-argument-parser's own
        /// usage errors.
        case usage
        /// Something went wrong doing the work (a damaged database, an unreadable file): exit 1.
        case failure
        /// Another process holds the store's writer lock, or kept the database locked past the
        /// busy timeout; trying again later may work: exit 75, EX_TEMPFAIL.
        case busy

        var exitCode: Int32 {
            switch self {
            case .usage: 64
            case .failure: 1
            case .busy: 75
            }
        }

        /// The kind of an error from below the CLI: a `CLIError`'s own, busy for a store
        /// still locked by another connection past its busy timeout (`StoreError.isBusy`),
        /// failure otherwise.
        init(of error: any Error) {
            switch error {
            case let error as CLIError: self = error.kind
            case let error as StoreError where error.isBusy: self = .busy
            default: self = .failure
            }
        }
    }

    let description: String
    let kind: Kind
    /// The error this one reports, when it came from below the CLI: kept as it is (a
    /// `StoreError` keeps SQLite's result code), not only as text in `description`.
    let cause: (any Error)?

    init(_ description: String, kind: Kind = .failure) {
        self.description = description
        self.kind = kind
        self.cause = nil
    }

    /// Reports `cause` in the words of `description`, with the kind `cause` calls for.
    init(_ description: String, cause: any Error) {
        self.description = description
        self.kind = Kind(of: cause)
        self.cause = cause
    }
}
