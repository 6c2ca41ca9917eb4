import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Import an NDJSON file of messages through the same validation as the broker.",
        discussion: """
        Each line is one message as a pilot back-end would publish it:
          {"topic": "pilots/resp-copd-idf-01/dev-0042/obs", "payload": {"msg_id": "...", "observations": [...]}}
        `payload_text` may replace `payload` to give the raw payload verbatim (a string). A malformed \
        line is refused with a reason and recorded in quarantine; it never stops the import. Lines are \
        committed in batches; duplicates of what is already stored are counted, not stored twice.

        Examples:
          pilotwatch ingest uploads/2026-11-29.ndjson
          pilotwatch simulate --scenario seeds/scenario.yaml --dry-run --out - | pilotwatch ingest -
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("NDJSON file to import, or - for standard input.", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("Lines committed per transaction.", valueName: "n"))
    var batch: Int = 500

    @Option(help: ArgumentHelp("Output format: table or json.", valueName: "format"))
    var format: OutputFormat = .table

    func validate() throws {
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch \(batch) must be 1...100000") }
    }

    func run() throws {
        let ctx = try Context.load(global)
        let database = ctx.service.databasePath
        try audited("ingest", database: database, creates: true, selection: "file=\(file)") { _ in
            guard let reader = LineReader(path: file) else {
                throw CLIError("cannot open \(file) for reading; check the path (use - for standard input)")
            }
            let progress = Progress(label: "ingest", total: reader.size)
            var tally: IngestTally
            switch try WriteAccess.obtain(database: database, role: "ingest") {
            case .own(let lock):
                defer { lock.release() }
                let store = try openStore(database)
                let validator = ctx.validator
                tally = try StoreWork.ingest(reader, source: file, store: store, validator: validator, batch: batch,
                                             progress: { progress.update(done: $0) })
            case .serve(let holder, let client):
                // `serve` writes this store: it validates and stores the lines, with its configuration.
                printError("ingest: handing the import to \(holder)")
                try client.send(ServeRequest(op: .ingest, source: file, batch: batch))
                var chunk: [UInt8] = []
                while let line = reader.next() {
                    chunk.append(contentsOf: line)
                    chunk.append(0x0A)
                    if chunk.count >= 1 << 20 {
                        try client.sendBody(chunk)
                        chunk.removeAll(keepingCapacity: true)
                        progress.update(done: reader.offset)
                    }
                }
                try client.sendBody(chunk)
                client.finishSending()
                if let error = reader.error { throw CLIError("reading \(file) stopped: \(error); serve stored the lines before it") }
                tally = IngestTally(reply: try client.answer(doing: "import \(file)"))
            }
            progress.finish()
            print(tally.render(format))
        }
    }
}

/// One NDJSON line turned into an ingest item: the message it carries, or a refusal.
///
/// A line whose wrapper is refused is kept whole in quarantine, so it is first scanned for
/// identifying data like a payload: if any part of it (keys, values, the payload, bytes
/// that are not JSON) looks like a direct identifier, it is refused as `identifying_data`
/// and only its placeholder topic `ingest:<file>:<line>`, time, reason and hash are kept.
enum NDJSONLine {
    static func item(_ line: [UInt8], number: Int, source: String, validator: ContractValidator, receivedAt: Instant) -> IngestItem {
        let placeholderTopic = "ingest:\(source):\(number)"
        switch wrapper(line) {
        case .success(let (topic, payload)):
            let verdict = validator.validate(topic: topic, payload: payload, receivedAt: receivedAt)
            // Refused without a topic for identifying data: the topic itself may be what identifies.
            if case .refused(nil, let refusal) = verdict, refusal.reason == .identifyingData {
                return IngestItem(topic: placeholderTopic, receivedAt: receivedAt, verdict: verdict, payload: payload)
            }
            return IngestItem(topic: topic, receivedAt: receivedAt, verdict: verdict, payload: payload)
        case .failure(let problem):
            var refusal = validator.identifyingRefusal(rawBytes: line, receivedAt: receivedAt, naming: "line \(number)")
                ?? Refusal(problem.reason, "line \(number): \(problem.detail)")
            // A topic kept with the refusal gets the topic's own check, as over MQTT.
            if refusal.reason != .identifyingData, let topic = problem.topic,
               case .failure(let topicRefusal) = validator.parseTopic(topic), topicRefusal.reason == .identifyingData {
                refusal = Refusal(.identifyingData, "line \(number), \(topicRefusal.detail)")
            }
            let topic = refusal.reason == .identifyingData ? placeholderTopic : problem.topic ?? placeholderTopic
            return IngestItem(topic: topic, receivedAt: receivedAt, verdict: .refused(nil, refusal), payload: line)
        }
    }

    /// Why a line's wrapper is refused, and the topic to keep with it if the line named one.
    struct WrapperProblem: Error {
        var reason: ReasonCode
        var detail: String
        var topic: String?
    }

    /// The topic and payload bytes a line carries.
    static func wrapper(_ line: [UInt8]) -> Result<(topic: String, payload: [UInt8]), WrapperProblem> {
        func refused(_ reason: ReasonCode, _ detail: String, topic: String? = nil) -> Result<(topic: String, payload: [UInt8]), WrapperProblem> {
            .failure(WrapperProblem(reason: reason, detail: detail, topic: topic))
        }
        let value: JSONValue
        do {
            value = try JSON.parse(line)
        } catch {
            return refused(.malformedJSON, "not a JSON object: \(error)")
        }
        guard case .object(let obj) = value else { return refused(.schema, "the line must be a JSON object {\"topic\", \"payload\"}") }
        var topic: String?
        var payload: [UInt8]?
        for (key, v) in obj.pairs {
            switch (key, v) {
            case ("topic", .string(let s)): topic = s
            case ("payload", .object): payload = JSON.encode(v)
            case ("payload_text", .string(let s)): payload = Array(s.utf8)
            case ("topic", _): return refused(.schema, "topic must be a string")
            case ("payload", _): return refused(.schema, "payload must be a JSON object (use payload_text for a raw string)")
            case ("payload_text", _): return refused(.schema, "payload_text must be a string")
            default: return refused(.schema, "unknown key \"\(key.prefix(40))\"; a line has only topic and payload (or payload_text)")
            }
        }
        guard let topic else { return refused(.schema, "topic is missing") }
        guard let payload else { return refused(.schema, "payload is missing", topic: topic) }
        return .success((topic, payload))
    }
}

/// Counts of what an import did.
struct IngestTally {
    var lines = 0, accepted = 0, duplicate = 0, status = 0, observations = 0, duplicateObservations = 0
    var refused: [ReasonCode: Int] = [:]

    mutating func add(_ outcomes: [IngestOutcome]) {
        for o in outcomes {
            switch o {
            case .accepted(let n, let d): accepted += 1; observations += n; duplicateObservations += d
            case .duplicateMessage, .duplicateSnapshot: duplicate += 1
            case .status: status += 1
            case .snapshot: accepted += 1  // a snapshot message, with no observations
            case .refused(let r): refused[r, default: 0] += 1
            }
        }
    }

    func render(_ format: OutputFormat) -> String {
        let refusedTotal = refused.values.reduce(0, +)
        let reasons = refused.sorted { $0.key.rawValue < $1.key.rawValue }
        switch format {
        case .json:
            var o = JSONWriter()
            o.object {
                $0.field("lines", lines)
                $0.field("accepted", accepted)
                $0.field("duplicate", duplicate)
                $0.field("status", status)
                $0.field("refused", refusedTotal)
                $0.objectField("refused_by_reason") { r in for (k, v) in reasons { r.field(k.rawValue, v) } }
                $0.field("observations", observations)
                $0.field("duplicate_observations", duplicateObservations)
            }
            return o.text
        case .table, .csv:
            var out = "lines \(lines): accepted \(accepted), duplicate \(duplicate), status \(status), refused \(refusedTotal)\n"
            out += "observations stored \(observations), duplicate observations \(duplicateObservations)"
            for (k, v) in reasons { out += "\n  refused \(k.rawValue): \(v)" }
            return out
        }
    }
}

/// Streams a file (or stdin) line by line without loading it whole.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private(set) var offset: Int64 = 0
    let size: Int64?
    private(set) var error: String?

    /// Reads an open descriptor (a socket) until its end; does not close it.
    init(fileDescriptor: Int32) {
        handle = FileHandle(fileDescriptor: fileDescriptor, closeOnDealloc: false)
        size = nil
    }

    init?(path: String) {
        if path == "-" {
            handle = FileHandle.standardInput
            size = nil
        } else {
            guard let h = FileHandle(forReadingAtPath: path) else { return nil }
            handle = h
            let attrs = try? FileManager.default.attributesOfItem(atPath: path)
            size = (attrs?[.size] as? NSNumber)?.int64Value
        }
    }

    /// Longest line kept whole (1 MiB, four times the contract's largest payload): a longer one
    /// comes back cut to this size with ``lastLineTooLong`` set, the rest of it skipped.
    let maxLineBytes = 1 << 20
    /// The line ``next()`` returned last was longer than ``maxLineBytes`` (and cut).
    private(set) var lastLineTooLong = false
    /// The line ``next()`` returned last had no newline after it (the input ended inside it).
    private(set) var lastLineUnterminated = false
    /// Where the search for the next newline goes on (bytes before it hold none).
    private var scanned = 0

    /// The next line without its newline; nil at the end.
    func next() -> [UInt8]? {
        lastLineTooLong = false
        lastLineUnterminated = false
        var skipping = false
        var cut: [UInt8] = []
        while true {
            if let nl = buffer[max(start, scanned)...].firstIndex(of: 0x0A) {
                let line = skipping ? cut : Array(buffer[start..<nl])
                offset += Int64(nl - start + 1)
                start = nl + 1
                scanned = start
                lastLineTooLong = skipping
                return line
            }
            scanned = buffer.count
            if !skipping && buffer.count - start > maxLineBytes {
                // Too long to be a message: keep its first bytes (for its hash), drop the rest.
                skipping = true
                cut = Array(buffer[start..<(start + maxLineBytes)])
            }
            if skipping {
                offset += Int64(buffer.count - start)
                start = buffer.count
                scanned = start
            }
            if eof {
                guard skipping || start < buffer.count else { return nil }
                let line = skipping ? cut : Array(buffer[start...])
                offset += Int64(skipping ? 0 : line.count)
                start = buffer.count
                scanned = start
                lastLineTooLong = skipping
                lastLineUnterminated = true
                return line
            }
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            do {
                let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
                if chunk.isEmpty { eof = true } else { buffer.append(contentsOf: chunk) }
            } catch {
                self.error = "\(error)"
                eof = true
            }
        }
    }
}
