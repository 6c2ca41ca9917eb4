import ArgumentParser
import Foundation
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// `--format` of `pilotwatch export`.
enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case md, html, csv, json, fhir
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an outcome summary for funders, with small-cell suppression (Markdown, HTML, CSV, JSON, FHIR).",
        discussion: """
        Per pilot and pooled per programme: registry facts, enrolment against target and \
        milestones, withdrawals and transmission adherence, each outcome indicator (paired \
        subjects, baseline and latest means, mean change with its 95% interval, share in target, \
        share improved), event rates per 100 patient-months, refused messages by reason and \
        unenrolled subjects, a methods section and the provenance (pilotwatch version, database \
        fingerprint, generation time). Programme figures pool the subjects of the selected pilots.

        A pilot that reports aggregates is exported from its site's latest day-end snapshot at or \
        before the end of the period, an ended pilot whose raw rows were purged from its archived \
        final figures; each names where its figures come from, and a figure the snapshot does not \
        give exactly (or a pooled one that would need it) is marked x.

        Disclosure control is applied before any format is written: counts of 1 to k-1 are shown \
        as <k, statistics from fewer than k subjects are withheld, and more figures are hidden \
        wherever a total, a pooled figure or an identity would give a suppressed one away. Every \
        suppression is marked.

        Figures are computed as of the end of the period (--to, or --as-of, or now). The same \
        database and arguments give byte-identical files: the generation time printed is \
        --generated-at, by default that same instant. Definitions: docs/metrics.md.

        Examples:
          pilotwatch export --as-of 2026-09-30 --format html --out q3.html
          pilotwatch export --funder feder-idf --from 2026-07-01 --to 2026-09-30
          pilotwatch export --pilot resp-copd-idf-01 --format fhir --out q3.json
          pilotwatch export --programme diabetes --format csv --k 15
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("pilot"), help: ArgumentHelp("Only this pilot (repeatable).", valueName: "id"))
    var pilots: [String] = []

    @Option(help: ArgumentHelp("Only the pilots of this programme.", valueName: "programme"))
    var programme: String?

    @Option(help: ArgumentHelp("Only the pilots this funder funds.", valueName: "funder"))
    var funder: String?

    @Option(help: ArgumentHelp("Only the pilots of this call.", valueName: "call"))
    var call: String?

    @Option(help: ArgumentHelp("Start of the period of events and refused messages (default: each pilot's whole life): \(timeArgumentHelp); a duration counts back from the end.",
                               valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("End of the period, the instant figures are computed at (default: --as-of). A date means its end.",
                               valueName: "time"))
    var to: String?

    @Option(name: .customLong("as-of"),
            help: ArgumentHelp("Compute as of this instant (default: now): \(timeArgumentHelp). A date means its end.",
                               valueName: "time"))
    var asOf: String?

    @Option(help: ArgumentHelp("Output format: md, html, csv, json or fhir.", valueName: "format"))
    var format: ExportFormat = .md

    @Option(help: ArgumentHelp("Write to this file (default: standard output).", valueName: "file"))
    var out: String?

    @Option(help: ArgumentHelp("Disclosure threshold: counts of 1 to k-1 are suppressed (at least \(Disclosure.minimumK)).",
                               valueName: "k"))
    var k: Int = Disclosure.defaultK

    @Option(name: .customLong("generated-at"),
            help: ArgumentHelp("Generation time printed in the provenance (default: the as-of instant, for reproducible files).",
                               valueName: "time"))
    var generatedAt: String?

    func validate() throws {
        if k < Disclosure.minimumK {
            throw ValidationError("--k \(k) is below \(Disclosure.minimumK); the disclosure threshold may be raised or lowered to no less than \(Disclosure.minimumK)")
        }
    }

    func run() throws {
        let ctx = try Context.load(global)
        let registry = ctx.registry
        for id in pilots where registry.pilot(id) == nil {
            throw CLIError("unknown pilot \"\(id)\"; valid pilots: \(registry.pilots.map(\.id).joined(separator: ", "))", kind: .usage)
        }
        if let programme, !registry.programmes.contains(programme) {
            throw CLIError("unknown programme \"\(programme)\"; valid programmes: \(registry.programmes.joined(separator: ", "))", kind: .usage)
        }
        if let funder {
            let known = Set(registry.pilots.flatMap(\.funders)).sorted()
            if !known.contains(funder) {
                throw CLIError("no pilot is funded by \"\(funder)\"; funders in the registry: \(known.joined(separator: ", "))", kind: .usage)
            }
        }
        if let call {
            let known = Set(registry.pilots.map(\.call)).sorted()
            if !known.contains(call) {
                throw CLIError("no pilot belongs to the call \"\(call)\"; calls in the registry: \(known.joined(separator: ", "))", kind: .usage)
            }
        }
        let selection = ExportSelection(pilots: pilots, programme: programme, funder: funder, call: call)
        if selection.apply(to: registry).isEmpty {
            throw CLIError("no pilot matches \(selection.summary); drop a filter or check `pilotwatch status`", kind: .usage)
        }

        let (t, start) = try period()
        var generated: Instant?
        if let generatedAt {
            guard let g = parseTimeArgument(generatedAt, now: t) else {
                throw CLIError("--generated-at \"\(generatedAt)\" is not a time; give \(timeArgumentHelp)", kind: .usage)
            }
            generated = g
        }

        try audited("export", database: ctx.service.databasePath,
                    selection: selection.summary + (start.map { ", from \($0)" } ?? "") + ", k=\(k)", asOf: t) { audit in
            let store = try openStore(ctx.service.databasePath, readOnly: true)
            let request = ExportRequest(selection: selection, asOf: t, periodStart: start,
                                        pilotwatchVersion: PilotwatchVersion.current, generatedAt: generated)
            // Aggregate pilots and archived ended pilots: from their snapshot at or before T.
            let sources = try ctx.snapshotSources(store, asOf: t, pilots: selection.apply(to: registry))
            if start != nil, !sources.pilots.isEmpty {
                throw CLIError("--from: \(sources.pilots.sorted().joined(separator: ", ")) \(sources.pilots.count == 1 ? "has" : "have") figures only from day-end snapshots or an archive, which cover a pilot's whole life; a period would rest on the difference of two day ends, which disclosure control does not allow. Drop --from, or leave those pilots out with --pilot", kind: .usage)
            }
            let report = try ExportBuilder.build(store: store, registry: registry, catalogue: ctx.catalogue, request: request,
                                                 snapshots: sources.snapshots, fromSnapshots: sources.pilots)
            let disclosed = Disclosure.apply(report, k: k)
            let text: String
            switch format {
            case .md: text = disclosed.markdown()
            case .html: text = disclosed.html()
            case .csv: text = disclosed.csv()
            case .json: text = disclosed.json()
            case .fhir: text = disclosed.fhir()
            }
            try write(Data(text.utf8), audit: audit)
        }
    }

    /// `T` (the end of the period) and the period's start.
    func period() throws -> (asOf: Instant, start: Instant?) {
        func parse(_ text: String?, _ flag: String, endOfDay: Bool, now: Instant = .now) throws -> Instant? {
            try timeOption(text, flag, endOfDay: endOfDay, now: now)
        }
        let asOfTime = try parse(asOf, "--as-of", endOfDay: true)
        let toTime = try parse(to, "--to", endOfDay: true, now: asOfTime ?? .now)
        if let asOfTime, let toTime, toTime > asOfTime {
            throw CLIError("--to \(toTime) is after --as-of \(asOfTime); nothing after the as-of instant counts, so the period must end by then", kind: .usage)
        }
        let t = toTime ?? asOfTime ?? .now
        let start = try parse(from, "--from", endOfDay: false, now: t)
        if let start, start > t {
            throw CLIError("--from \(start) is after the end of the period (\(t)); give an earlier --from or a later --to", kind: .usage)
        }
        return (t, start)
    }

    /// Writes the export and records it with the SHA-256 of its bytes: to standard output after
    /// the record (nothing is shown unaudited); to a file before it, and the file is removed when
    /// the record cannot be written.
    private func write(_ bytes: Data, audit: CommandAudit) throws {
        let sha256 = SHA256.hex(bytes)
        guard let out, out != "-" else {
            try audit.record(output: "stdout", sha256: sha256, beforeOutput: true)
            FileHandle.standardOutput.write(bytes)
            return
        }
        let url = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        let folder = url.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw CLIError("cannot write \(out): the folder \(folder) does not exist; create it first or choose another --out")
        }
        // Recorded before it is written: a file handed on is never unaudited, and a failed
        // record never costs an earlier file at that path.
        try audit.record(output: url.standardizedFileURL.path, sha256: sha256, beforeOutput: true)
        do {
            try bytes.write(to: url, options: .atomic)
        } catch {
            throw CLIError("cannot write \(out): \(error.localizedDescription); check the path and its permissions (its audit record is written: the file is not)")
        }
    }
}
