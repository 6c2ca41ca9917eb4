/// One line of the audit trail: who ran which command on subject-level data, when, on what
/// selection, what it wrote (with the SHA-256 of the bytes) and how it ended. `prev` is the
/// SHA-256 of the previous line's bytes (64 zeros for the first), so that a line edited or
/// removed breaks the chain (``AuditChain``).
///
/// ```swift
/// let line = record.encoded()                    // one line of compact JSON, no newline
/// let back = try AuditRecord(line: line)         // the same record
/// ```
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int
    public var at: Instant
    public var user: String
    public var host: String
    public var pid: Int
    public var command: String
    /// The command line after the program name, with the values of secret-looking options masked.
    public var arguments: [String]
    public var database: String?
    /// The data the command looked at or changed, in words (`pilot=resp-copd-idf-01`).
    public var selection: String?
    public var asOf: Instant?
    /// `stdout` or a file path.
    public var output: String?
    public var outputSHA256: String?
    /// `ok`, or `error: ` and what went wrong.
    public var outcome: String
    public var prev: String

    /// The `prev` of the first record.
    public static let genesis = String(repeating: "0", count: 64)

    public init(seq: Int, at: Instant, user: String, host: String, pid: Int, command: String, arguments: [String],
                database: String? = nil, selection: String? = nil, asOf: Instant? = nil, output: String? = nil,
                outputSHA256: String? = nil, outcome: String, prev: String) {
        self.seq = seq; self.at = at; self.user = user; self.host = host; self.pid = pid
        self.command = command; self.arguments = arguments; self.database = database
        self.selection = selection; self.asOf = asOf; self.output = output; self.outputSHA256 = outputSHA256
        self.outcome = outcome; self.prev = prev
    }

    /// The record as one line of compact JSON (keys in a fixed order, absent fields left out),
    /// without the newline.
    public func encoded() -> [UInt8] {
        var pairs: [(String, JSONValue)] = [
            ("seq", .number(JSONNumber(seq))), ("at", .string(at.description)), ("user", .string(user)),
            ("host", .string(host)), ("pid", .number(JSONNumber(pid))), ("command", .string(command)),
            ("arguments", .array(arguments.map(JSONValue.string))),
        ]
        if let database { pairs.append(("database", .string(database))) }
        if let selection { pairs.append(("selection", .string(selection))) }
        if let asOf { pairs.append(("as_of", .string(asOf.description))) }
        if let output { pairs.append(("output", .string(output))) }
        if let outputSHA256 { pairs.append(("output_sha256", .string(outputSHA256))) }
        pairs.append(("outcome", .string(outcome)))
        pairs.append(("prev", .string(prev)))
        return JSON.encode(.object(JSONObject(pairs)))
    }

    /// Why a line is not a record.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads one line (without its newline) written by ``encoded()``.
    public init(line: some Collection<UInt8>) throws(ParseError) {
        let value: JSONValue
        do {
            value = try JSON.parse(line)
        } catch {
            throw ParseError(description: "not JSON (\(error))")
        }
        guard let o = value.object else { throw ParseError(description: "not a JSON object") }
        func string(_ key: String) throws(ParseError) -> String {
            guard let s = o[key]?.string else { throw ParseError(description: "\"\(key)\" is missing or not a string") }
            return s
        }
        func optional(_ key: String) throws(ParseError) -> String? {
            guard let v = o[key] else { return nil }
            guard let s = v.string else { throw ParseError(description: "\"\(key)\" is not a string") }
            return s
        }
        func int(_ key: String) throws(ParseError) -> Int {
            guard let n = o[key]?.number, let i = Int(n.lexeme) else { throw ParseError(description: "\"\(key)\" is missing or not an integer") }
            return i
        }
        func instant(_ text: String, _ key: String) throws(ParseError) -> Instant {
            guard let t = RFC3339.parse(text) else { throw ParseError(description: "\"\(key)\" is not an RFC 3339 time") }
            return t
        }
        guard let args = o["arguments"]?.array, args.allSatisfy({ $0.string != nil }) else {
            throw ParseError(description: "\"arguments\" is missing or not an array of strings")
        }
        seq = try int("seq")
        at = try instant(try string("at"), "at")
        user = try string("user")
        host = try string("host")
        pid = try int("pid")
        command = try string("command")
        arguments = args.compactMap(\.string)
        database = try optional("database")
        selection = try optional("selection")
        let asOfText = try optional("as_of")
        asOf = nil
        if let asOfText { asOf = try instant(asOfText, "as_of") }
        output = try optional("output")
        outputSHA256 = try optional("output_sha256")
        outcome = try string("outcome")
        prev = try string("prev")
    }
}
