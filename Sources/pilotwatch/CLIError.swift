/// A one-line error for the terminal: what was wrong, with which value, and what to do.
/// Its kind sets the exit status (see `Pilotwatch.main()` and "Exit codes" in README.md).
///
/// ```swift
/// throw CLIError("unknown pilot \"\(id)\"; valid pilots: ...", kind: .usage)   // exit 64
/// throw CLIError("cannot write \(path): \(error)")                              // exit 1
/// ```
struct CLIError: Error, CustomStringConvertible {
    enum Kind: Sendable {
        /// A bad flag, argument or environment value found after parsing (an unknown pilot id,
        /// a time that does not parse): exit 64, EX_USAGE, like swift-argument-parser's own
        /// usage errors.
        case usage
        /// Something went wrong doing the work (a damaged database, an unreadable file): exit 1.
        case failure
        /// Another process holds the store's writer lock; trying again later may work:
        /// exit 75, EX_TEMPFAIL.
        case busy

        var exitCode: Int32 {
            switch self {
            case .usage: 64
            case .failure: 1
            case .busy: 75
            }
        }
    }

    let description: String
    let kind: Kind

    init(_ description: String, kind: Kind = .failure) {
        self.description = description
        self.kind = kind
    }
}
