import ArgumentParser
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchSim

/// Publishes a demo scenario over MQTT, or writes it as NDJSON for `pilotwatch ingest`.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Publish a simulated cluster of pilots (devices, back-ends and their mistakes) over MQTT.",
        discussion: """
        Generates every pilot's traffic from a scenario file: enrolments, device readings, lab \
        results, events, device status, and the deliberate misbehaviours the scenario asks for \
        (malformed, identifying or invalid payloads, retries, a silent fleet, unenrolled subjects). \
        The stream is deterministic for a given --seed, --end and --days. Messages go out at QoS 1, \
        one MQTT client per pilot (client id sim-{pilot}); status messages are retained.

        --end is an RFC 3339 time, a date (its whole day is included) or a duration back from now \
        (7d); the default is now, rounded down to the minute. Without --days the stream starts \
        with the first pilot's start date. --speed X replays X simulated seconds per real second \
        (0: as fast as possible); --rate caps messages per second.

        Pilots that report aggregates here (`reporting: aggregates`) are left out: their devices \
        publish to their site instance's broker. --pilot ID (repeatable) simulates only the pilots \
        named, whatever they report; the scenario's other entries are skipped, so a site instance's \
        configuration, whose registry holds its own pilots only, can use the cluster's scenario. A \
        pilot's messages are the same whichever pilots are simulated beside it.

        Examples:
          pilotwatch simulate --config seeds/pilotwatch.yaml \\
              --scenario seeds/scenario.yaml --port 1883
          pilotwatch simulate --config seeds/pilotwatch.yaml \\
              --scenario seeds/scenario.yaml --end 2026-11-29 --days 7 --speed 3600
          pilotwatch simulate --config seeds/pilotwatch.yaml \\
              --scenario seeds/scenario.yaml --dry-run --out - \\
            | pilotwatch ingest --config seeds/pilotwatch.yaml -
          pilotwatch simulate --config seeds/site/pilotwatch.yaml --scenario seeds/scenario.yaml \\
              --pilot resp-ild-spiro-05 --pilot diab-t2-bp-09 --pilot card-hf-nurse-14
        """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions

    @Option(help: ArgumentHelp("Scenario file (see seeds/scenario.yaml).", valueName: "file"))
    var scenario: String

    @Option(help: ArgumentHelp("Only publish the last N days before --end.", valueName: "n"))
    var days: Double?

    @Option(help: ArgumentHelp("Last simulated instant: RFC 3339 time, date, or 7d back from now (default: now).", valueName: "time"))
    var end: String?

    @Option(help: ArgumentHelp("Simulated seconds per real second (0: as fast as possible).", valueName: "x"))
    var speed: Double = 0

    @Option(help: ArgumentHelp("Random seed; the same seed gives the same messages.", valueName: "n"))
    var seed: UInt64 = 1

    @Option(help: ArgumentHelp("At most this many messages per second.", valueName: "msgs-per-sec"))
    var rate: Double?

    @Option(name: .customLong("pilot"), help: ArgumentHelp(
        "Simulate only this pilot (repeat for more; default: every pilot that reports observations here).", valueName: "id"))
    var pilots: [String] = []

    @Flag(help: "Write the messages as NDJSON instead of publishing them.")
    var dryRun = false

    @Option(help: ArgumentHelp("With --dry-run: the NDJSON file to write, or - for standard output.", valueName: "file"))
    var out: String?

    func validate() throws {
        if let days, !(days > 0 && days <= 3650) { throw ValidationError("--days \(days) must be more than 0 and at most 3650") }
        if !(speed >= 0 && speed.isFinite) { throw ValidationError("--speed \(speed) must be 0 (as fast as possible) or a positive number") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate \(rate) must be a positive number of messages per second") }
        if out != nil, !dryRun { throw ValidationError("--out goes with --dry-run; without it the messages are published to the broker") }
        for id in pilots { try requireCode(id, flag: "--pilot", naming: "pilot id") }
    }

    func run() throws {
        let ctx = try Context.load(global, broker: broker)
        let selection = pilots.isEmpty ? nil : Set(pilots)
        for id in pilots where ctx.registry.pilot(id) == nil {
            let hint = closest(id, in: ctx.registry.pilots.map(\.id)).map { " (did you mean \($0)?)" } ?? ""
            throw CLIError("--pilot \(id) is not in the pilot registry of \(global.configPath)\(hint)", kind: .usage)
        }
        var parsed = try Self.loadScenario(scenario, registry: ctx.registry, catalogue: ctx.catalogue, only: selection)
        if selection == nil {
            let elsewhere = parsed.pilots.filter { $0.pilot.site != nil }
            if !elsewhere.isEmpty {
                parsed.pilots.removeAll { $0.pilot.site != nil }
                printError("note: \(elsewhere.count) pilot(s) report aggregates through their site (reporting: aggregates), so their devices publish to the site's broker and are not simulated here: \(elsewhere.map(\.pilot.id).joined(separator: ", ")) (name them with --pilot to send them anyway)")
            }
        }
        let now = Instant.now
        let endInstant: Instant
        if let end {
            guard let t = parseTimeArgument(end, endOfDay: true, now: now) else {
                throw CLIError("--end \"\(end)\" is not a time; write 2026-11-29T09:00:00Z, a date such as 2026-11-29, or 7d (seven days ago)", kind: .usage)
            }
            endInstant = t
        } else {
            endInstant = Instant(millis: now.millis - now.millis % 60_000)
        }
        let sim = Simulation(scenario: parsed, seed: seed, end: endInstant, days: days, topicRoot: ctx.service.topicRoot)
        let missing = ctx.registry.pilots.filter { p in selection == nil && p.site == nil && !parsed.pilots.contains { $0.pilot.id == p.id } }.map(\.id)
        if !missing.isEmpty { printError("note: \(missing.count) pilot(s) of the registry have no scenario entry and send nothing: \(missing.joined(separator: ", "))") }
        if speed > 0 {
            let hours = Double(endInstant.millis - sim.windowStart.millis) / 1000 / speed / 3600
            if hours > 1 { printError("note: at --speed \(formatNumber(speed)) this replay takes about \(formatNumber((hours * 10).rounded() / 10)) hours") }
        }

        let progress = Progress(label: "simulate", total: Int64(max(1, endInstant.millis - sim.windowStart.millis)))
        let windowStart = sim.windowStart
        let summary: SimulationSummary
        let destination: String
        if dryRun {
            let path = out ?? "-"
            destination = path == "-" ? "standard output" : path
            summary = try Self.writeNDJSON(sim, to: path, pacing: Pacing(speed: speed, rate: rate)) { at in
                progress.update(done: at.millis - windowStart.millis)
            }
        } else {
            let b = ctx.service.broker
            var password: String?
            if let file = b.passwordFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw CLIError("cannot read the broker password file \(file); check broker.password_file and its permissions")
                }
                password = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let config = MQTTConfiguration(host: b.host, port: b.port, clientID: "sim", username: b.username, password: password,
                                           tls: b.tls.map { MQTTTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) },
                                           keepAlive: b.keepAlive)
            destination = "the broker at \(b.host):\(b.port)"
            let publisher = SimulationPublisher(simulation: sim, broker: config, logger: makeLogger("pilotwatch.simulate", level: .warning))
            do {
                summary = try publisher.run(pacing: Pacing(speed: speed, rate: rate)) { fraction, _ in
                    progress.update(done: Int64(fraction * Double(endInstant.millis - windowStart.millis)))
                }
            } catch let error as MQTTError {
                progress.finish()
                throw CLIError("\(error) Is a broker running at \(b.host):\(b.port)? Pass --host/--port.")
            }
        }
        progress.finish()
        let report = Self.render(summary, from: windowStart, to: endInstant, seed: seed, destination: destination)
        if dryRun, out ?? "-" == "-" { printError(report) } else { print(report) }
    }

    static func loadScenario(_ path: String, registry: Registry, catalogue: Catalogue, only: Set<String>? = nil) throws -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read; check its permissions" : "no such file"
            throw CLIError("--scenario \(path): \(why) (seeds/scenario.yaml is an example)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("--scenario \(path) is not UTF-8 text") }
        let (parsed, problems) = ScenarioParser.parse(yaml: text, file: path, registry: registry, catalogue: catalogue, only: only)
        guard let parsed, problems.isEmpty else {
            let list = problems.map { "  \($0)" }.joined(separator: "\n")
            throw CLIError("the scenario has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n\(list)")
        }
        return parsed
    }

    /// Writes the stream as NDJSON lines (`-`: standard output), paced like a publish.
    static func writeNDJSON(_ sim: Simulation, to path: String, pacing: Pacing, progress: (Instant) -> Void) throws -> SimulationSummary {
        let handle: FileHandle
        if path == "-" {
            handle = FileHandle.standardOutput
        } else {
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw CLIError("cannot create --out \(path); check that its folder exists and is writable")
            }
            handle = h
        }
        defer { if path != "-" { try? handle.close() } }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func flush() throws {
            guard !buffer.isEmpty else { return }
            do { try handle.write(contentsOf: buffer) } catch {
                throw CLIError("cannot write to \(path == "-" ? "standard output" : path): \(error.localizedDescription)")
            }
            buffer.removeAll(keepingCapacity: true)
        }
        var summary = SimulationSummary()
        let clock = ContinuousClock()
        let started = clock.now
        var origin: Instant?
        let paced = (pacing.speed ?? 0) > 0 || pacing.rate != nil
        for m in sim {
            if paced {
                let first = origin ?? m.at
                origin = first
                let elapsed = clock.now - started
                let wait = pacing.due(index: summary.published, at: m.at, origin: first)
                    - Double(elapsed.components.seconds) - Double(elapsed.components.attoseconds) * 1e-18
                if wait > 0.0005 { try flush(); Thread.sleep(forTimeInterval: wait) }
            }
            buffer.append(contentsOf: m.ndjsonLine)
            summary.add(m)
            if buffer.count >= 1 << 20 { try flush(); progress(m.at) }
        }
        try flush()
        return summary
    }

    static func render(_ s: SimulationSummary, from: Instant, to: Instant, seed: UInt64, destination: String) -> String {
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        func right(_ n: Int, _ width: Int) -> String { let t = String(n); return String(repeating: " ", count: max(0, width - t.count)) + t }
        var lines = ["published \(s.published) messages to \(destination) (simulated from \(from) to \(to), seed \(seed))"]
        for kind in SimMessage.Kind.allCases {
            var line = "  " + pad(kind.rawValue, 12) + right(s.byKind[kind.rawValue] ?? 0, 9)
            if kind == .obs { line += "  (\(s.observations) observations)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
