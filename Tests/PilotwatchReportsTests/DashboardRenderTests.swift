import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import PilotwatchStore
import Testing

@Suite("Dashboard text pieces")
struct GraphicsTests {
    @Test("the enrolment bar fills eighths of cells and ticks the next milestone")
    func bar() {
        #expect(Graphics.bar(enrolled: 0, target: 100, width: 10) == "░░░░░░░░░░")
        #expect(Graphics.bar(enrolled: 100, target: 100, width: 10) == "██████████")
        #expect(Graphics.bar(enrolled: 150, target: 100, width: 10) == "██████████")
        // 42 of 120 is 28 eighths of 80: three full cells and a half one.
        #expect(Graphics.bar(enrolled: 42, target: 120, width: 10) == "███▌░░░░░░")
        // The milestone 60 of 120 falls in cell 5.
        #expect(Graphics.bar(enrolled: 42, target: 120, milestone: 60, width: 10) == "███▌░│░░░░")
        // A milestone already passed is not drawn.
        #expect(Graphics.bar(enrolled: 42, target: 120, milestone: 30, width: 10) == "███▌░░░░░░")
        #expect(Graphics.bar(enrolled: 3, target: 0, width: 4) == "████")
        for n in 0...120 { #expect(Graphics.bar(enrolled: n, target: 120, milestone: 90, width: 10).count == 10) }
    }

    @Test("sparklines scale to their maximum; missing values are blank")
    func sparkline() {
        #expect(Graphics.sparkline([0, 50, 100], max: 100) == "▁▅█")
        #expect(Graphics.sparkline([nil, 1, 2, 4], max: 4) == " ▃▅█")
        #expect(Graphics.sparkline([0, 0], max: 0) == "▁▁")
    }

    @Test("numbers are rounded for reading, times shown to the minute")
    func numbers() {
        #expect(Graphics.number(123.456) == "123")
        #expect(Graphics.number(12.345) == "12.3")
        #expect(Graphics.number(2.3456) == "2.35")
        #expect(Graphics.number(0.05551) == "0.056")
        #expect(Graphics.number(-0.0001) == "0.000")
        #expect(Graphics.number(nil) == "-")
        #expect(Graphics.number(91) == "91" && Graphics.number(-3) == "-3")
        #expect(Graphics.signed(2.2) == "+2.20" && Graphics.signed(-1) == "-1" && Graphics.signed(0) == "0")
        #expect(Graphics.percent(78.5) == "78%" || Graphics.percent(78.5) == "79%")
        #expect(Graphics.percent(nil) == "-")
        let now = Instant(millis: 1_781_524_800_000)
        #expect(Graphics.ago(now.adding(millis: -59 * 60_000), now: now) == "59m")
        #expect(Graphics.ago(now.adding(days: -1.99), now: now) == "47h")
        #expect(Graphics.ago(now.adding(days: -3), now: now) == "3d")
        #expect(Graphics.ago(nil, now: now) == "-")
        #expect(Graphics.minute(now) == "2026-06-15 12:00")
    }

    @Test("long text is cut with an ellipsis and wrapped within the width")
    func fitting() {
        #expect(Graphics.truncate("resp-copd-idf-01", 8) == "resp-co…")
        #expect(Graphics.truncate("short", 8) == "short")
        let lines = Graphics.wrap(Array(repeating: "twelve chars", count: 10), width: 40, indent: "  ")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.count <= 40 && $0.hasPrefix("  ") })
        #expect(Graphics.Colour.red.paint("no", false) == "no")
        #expect(Graphics.Colour.red.paint("no", true) == "\u{1B}[31mno\u{1B}[0m")
    }
}

@Suite("Dashboard renderers")
struct DashboardRenderTests {
    let registry = Registry(pilots: [
        Pilot(id: "p-rand", name: "A pilot with random data and a name long enough to need cutting in a table",
              programme: "respiratory", lead: "L", call: "C", funders: ["f1", "f2"],
              start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!, enrolmentTarget: 80,
              milestones: [Milestone(date: Day(parsing: "2026-09-30")!, enrolled: 60)], outcomes: ["spo2", "exacerbation"]),
        Pilot(id: "p-none-with-a-very-long-identifier-that-does-not-fit", name: "Nothing", programme: "cardiac",
              lead: "L", call: "C", funders: [], start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2026-12-31")!,
              enrolmentTarget: 10, milestones: [], outcomes: []),
    ])
    let catalogue = Catalogue(indicators: [
        spo2, respRate,
        Indicator(code: "exacerbation", name: "COPD exacerbation", kind: .event, unit: "1", range: nil,
                  programmes: ["respiratory"], direction: .lower),
    ])

    @Test("status: JSON keys are the metric names; the table fits 80 columns; colour only when asked")
    func status() throws {
        let data = try RandomStore(seed: 21)
        let board = try Dashboard.status(store: data.store, registry: registry, programme: nil, asOf: t0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(board.json().utf8)) as? [String: Any])
        let pilots = try #require(json["pilots"] as? [[String: Any]])
        for key in ["enrolled", "withdrawn", "in_follow_up", "enrolment_target", "enrolment_pct", "enrolment_rate_30d",
                    "projected_target_date", "on_track", "active_7d", "transmission_adherence", "unenrolled_subjects"] {
            #expect(pilots.allSatisfy { $0[key] != nil }, "\(key)")
        }
        #expect((json["programmes"] as? [[String: Any]])?.map { $0["programme"] as? String } == ["respiratory", "cardiac"])

        let plain = board.table(colour: false)
        #expect(!plain.contains("\u{1B}"))
        for line in plain.split(separator: "\n") { #expect(displayWidth(String(line)) <= 80, "\(line)") }
        #expect(plain.contains("p-none-with-a-very-long…") || plain.contains("…"))
        let coloured = board.table(colour: true)
        #expect(coloured.contains("\u{1B}["))
        for line in coloured.split(separator: "\n") { #expect(displayWidth(String(line)) <= 80, "\(line)") }

        let csv = board.csv().split(separator: "\n")
        #expect(csv.count == 1 + 2 + 2)
        let filtered = try Dashboard.status(store: data.store, registry: registry, programme: "cardiac", asOf: t0)
        #expect(filtered.pilots.map(\.pilot.id) == ["p-none-with-a-very-long-identifier-that-does-not-fit"])
        #expect(filtered.programmes.map(\.programme) == ["cardiac"])
    }

    @Test("pilot: every section renders within 80 columns, in each format")
    func pilot() throws {
        let data = try RandomStore(seed: 22)
        let board = try Dashboard.pilot(store: data.store, pilot: registry.pilots[0], catalogue: catalogue,
                                        since: t0.adding(days: -90), asOf: t0)
        #expect(board.weekly.count == Dashboard.weeks)
        #expect(board.outcomes.map(\.indicator.code) == ["spo2"])
        #expect(board.events.map(\.indicator) == ["exacerbation"])
        #expect(board.devices.count == 1)
        for colour in [false, true] {
            let text = board.table(colour: colour)
            for line in text.split(separator: "\n") { #expect(displayWidth(String(line)) <= 80, "\(line)") }
            for section in ["Enrolment", "Activity", "Outcomes", "Events", "Devices", "Data quality"] {
                #expect(text.contains(section))
            }
        }
        // The widest outcome rows a pilot can have: long codes and units, 5-digit counts and values.
        var wide = board
        let long = Indicator(code: "bp_diastolic_home", name: "Diastolic BP at home", kind: .measurement,
                             unit: "mm[Hg]", range: ValueRange(min: 0, max: 99_999), programmes: ["cardiac"],
                             direction: .lower, target: ValueRange(min: 60, max: 80))
        wide.outcomes = [(long, OutcomeFigures(indicator: long.code, nPaired: 12_345, meanBaseline: 35_000,
                                               meanLatest: -12_345, meanChange: -47_345,
                                               changeCI95: Interval(lower: -59_690, upper: -35_000),
                                               pctInTarget: 100, improvedPct: 100))]
        let outcomesTable = wide.table(colour: false)
        #expect(outcomesTable.contains("12345"))
        for line in outcomesTable.split(separator: "\n") { #expect(displayWidth(String(line)) <= 80, "\(line)") }

        let json = try #require(try JSONSerialization.jsonObject(with: Data(board.json().utf8)) as? [String: Any])
        for key in ["outcomes", "events", "devices", "quality", "milestones", "weekly"] { #expect(json[key] != nil, "\(key)") }
        let outcome = try #require((json["outcomes"] as? [[String: Any]])?.first)
        #expect(Set(outcome.keys) == ["indicator", "unit", "direction", "n_paired", "mean_baseline", "mean_latest",
                                      "mean_change", "change_ci95", "pct_in_target", "improved_pct"])
        let event = try #require((json["events"] as? [[String: Any]])?.first)
        #expect(Set(event.keys) == ["indicator", "events", "patient_days", "rate_per_100_patient_months"])
        let csv = board.csv()
        #expect(csv.hasPrefix("section,item,metric,value\n"))
        #expect(csv.split(separator: "\n").dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count >= 4 })
    }

    @Test("indicators: the catalogue, filtered by programme")
    func indicators() throws {
        let view = IndicatorCatalogueView(indicators: Dashboard.indicators(catalogue, programme: "respiratory"))
        #expect(view.indicators.count == 3)
        for line in view.table(colour: false).split(separator: "\n") { #expect(displayWidth(String(line)) <= 80) }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(view.json().utf8)) as? [[String: Any]])
        #expect(json.first?["code"] as? String == "spo2")
        #expect(Dashboard.indicators(catalogue, programme: "cardiac").isEmpty)
        #expect(view.csv().split(separator: "\n").count == 4)
    }
}
