import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import PilotwatchStore
import TestSupport
import Testing

// The export of a pilot whose figures come from a day-end snapshot (it reports aggregates, or it
// ended and its raw rows were archived): at `min_cell` 0 every figure equals the export from its
// rows at the same day end; at `min_cell` 11 what the snapshot does not give exactly is
// suppressed `at_site`, and so is each pooled figure that would need it, naming the pilot.

private let exacerbation = Indicator(code: "exacerbation", name: "Exacerbation", kind: .event, unit: "1", range: nil,
                                     programmes: ["respiratory"], direction: .lower)
private let catalogue = Catalogue(indicators: [spo2, respRate, exacerbation])
private let pilot = Pilot(id: "p-rand", name: "Random", programme: "respiratory", lead: "L", call: "C", funders: ["f"],
                          start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
                          milestones: [Milestone(date: Day(parsing: "2026-03-31")!, enrolled: 10),
                                       Milestone(date: Day(parsing: "2026-06-01")!, enrolled: 40),
                                       Milestone(date: Day(parsing: "2026-09-30")!, enrolled: 70)],
                          outcomes: ["spo2", "resp_rate", "exacerbation"])
private let registry = Registry(pilots: [pilot])

@Suite("Export of a pilot from its snapshot")
struct SnapshotExportTests {
    private func request(_ t: Instant) -> ExportRequest {
        ExportRequest(selection: ExportSelection(), asOf: t, periodStart: nil, pilotwatchVersion: "test", generatedAt: nil)
    }

    @Test(arguments: [UInt64(5), 13, 41])
    func atMinCellZeroEveryFigureIsTheExportFromRows(seed: UInt64) throws {
        let data = try RandomStore(seed: seed)
        for day in [t0.day.advanced(by: -60), t0.day.advanced(by: -1), t0.day.advanced(by: 3)] {
            let snapshot = try SnapshotParser.parse(Array(try SnapshotBuilder.build(store: data.store, pilot: pilot, catalogue: catalogue,
                                                                                      day: day, revision: 3, msgID: "m").json().utf8))
            let t = snapshot.asOf
            let raw = try ExportBuilder.build(store: data.store, registry: registry, catalogue: catalogue, request: request(t))
            let fromSnapshot = try ExportBuilder.build(store: data.store, registry: registry, catalogue: catalogue, request: request(t),
                                                       snapshots: [pilot.id: snapshot], fromSnapshots: [pilot.id])
            #expect(fromSnapshot.pilots[0].source == ExportSource(asOf: t, revision: 3, minCell: 0, archived: false))
            let later = try ExportBuilder.build(store: data.store, registry: registry, catalogue: catalogue, request: request(t.adding(days: 2)),
                                                snapshots: [pilot.id: snapshot], fromSnapshots: [pilot.id])
            #expect(later.pilots[0].source?.stale == true, "two days later the snapshot is stale")
            #expect(Disclosure.apply(later, k: 11).markdown().contains("min_cell 0), stale"))
            for k in [11, 5] {
                let a = Disclosure.apply(fromSnapshot, k: k), b = Disclosure.apply(raw, k: k)
                let difference = jsonDifference(try jsonValue(a.json()), try jsonValue(b.json()), dropping: ["source"])
                #expect(difference == nil, "\(day) k=\(k): \(difference ?? "")")
                #expect(a.json().contains("\"source\": {"), "the pilot names its snapshot")
                #expect(a.suppressedCounts[.atSite] == nil, "nothing suppressed at the site at min_cell 0")
            }
            // Enough happened for the comparison to mean something.
            #expect((raw.pilots[0].figures[FigureKey(.enrolled)]?.value ?? 0) > 20)
            #expect((raw.pilots[0].figures[FigureKey(.events, "exacerbation")]?.value ?? 0) > 0)
            #expect((raw.pilots[0].figures[FigureKey(.nPaired, "spo2")]?.value ?? 0) > 0)
        }
    }

    @Test func atMinCellElevenWhatTheSiteHoldsBackIsSuppressedAtSiteAndThePoolNamesThePilot() throws {
        let data = try RandomStore(seed: 8, subjects: 14)
        let (exact, c) = try SnapshotBuilder.buildWithContributions(store: data.store, pilot: pilot, catalogue: catalogue, day: t0.day,
                                                                   revision: 1, msgID: "m")
        let (sent, _) = SnapshotDisclosure.apply(exact, contributions: c, minCell: 11, state: DisclosureState())
        let snapshot = try SnapshotParser.parse(Array(sent.json().utf8))
        #expect(snapshot.enrolment.withdrawn == .lessThan(11), "\(snapshot.enrolment.withdrawn)")
        let report = try ExportBuilder.build(store: data.store, registry: registry, catalogue: catalogue, request: request(snapshot.asOf),
                                             snapshots: [pilot.id: snapshot], fromSnapshots: [pilot.id])
        let disclosed = Disclosure.apply(report, k: 11)
        let p = disclosed.report.pilots[0], pooled = disclosed.report.programmes[0]
        #expect(p[.withdrawn].suppression == .atSite)
        #expect(pooled[.withdrawn].suppression == .atSite, "a pooled figure without the pilot's exact part")
        #expect(pooled.partsNotGivenBy == ["p-rand"])
        // Every count shown is one the snapshot gives exactly.
        if let shown = p[.enrolled].value { #expect(snapshot.enrolment.enrolled == .value(shown)) }
        let json = disclosed.json()
        #expect(json.contains("\"suppressed\": \"at_site\""), "\(json)")
        #expect(json.contains("\"parts_not_given_by\": [\"p-rand\"]") || json.contains("\"parts_not_given_by\": [\n"), "\(json)")
        let markdown = disclosed.markdown()
        #expect(markdown.contains("x: not given exactly by the pilot's site"))
        #expect(markdown.contains("from its site's day-end snapshot as of \(snapshot.asOf) (revision 1, min_cell 11)"))
        #expect(disclosed.html().contains("not given exactly by the pilot&#39;s site") || disclosed.html().contains("not given exactly by the pilot's site"))
        #expect(disclosed.csv().contains("p-rand"))
        #expect(disclosed.fhir().contains("at_site"))
    }

    @Test func aPilotWithoutASnapshotHasEveryFigureSuppressed() throws {
        let data = try RandomStore(seed: 2)
        let report = try ExportBuilder.build(store: data.store, registry: registry, catalogue: catalogue, request: request(t0),
                                             fromSnapshots: [pilot.id])
        let p = Disclosure.apply(report, k: 11).report.pilots[0]
        let notFacts = p.figures.filter { $0.value.kind != .fact }
        #expect(!notFacts.isEmpty)
        for (key, cell) in notFacts { #expect(cell.suppression == .atSite, "\(key)") }
        #expect(p.source?.asOf == nil)
        #expect(p.onTrack == nil)
        #expect(p.enrolmentSeries.isEmpty)
    }
}
