import Foundation
import PilotwatchCore
@testable import PilotwatchReports
import Testing

// The five formats of `pilotwatch export` over a disclosed model built by hand (see
// DisclosureTests.swift): each shows zero, missing and suppressed as three distinct states and
// prints nothing that disclosure control hid.

private func disclosed() -> DisclosedReport {
    var seven = DisclosureTests.sevenSubjects
    seven.milestones = [(Day(index: 20_100), 10, 0, .missed)]
    let large = ExportPilotSpec(id: "resp-large", enrolled: 80, withdrawn: 12, adherence: 71.25,
                          outcomes: [("spo2", 50, 30, 35)], events: [("exacerbation", 0)], refused: [.badUnit: 12])
    let other = ExportPilotSpec(id: "resp-other", enrolled: 50, withdrawn: 0, adherence: 70,
                          outcomes: [("spo2", 20, 12, 15), ("cat_score", 0, 0, 0)], events: [("exacerbation", 14)])
    return Disclosure.apply(makeExportReport([("respiratory", [seven, large, other])]), k: 11)
}

private func jsonObject(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite("Export formats")
struct ExportRenderTests {
    @Test("CSV: one tidy row per scope and figure, suppression marked, small counts never shown")
    func csv() throws {
        let d = disclosed()
        let text = d.csv()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "pilot,programme,metric,indicator,value,n,suppressed")
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.allSatisfy { $0.count == 7 })
        func row(_ pilot: String, _ metric: String, _ indicator: String = "") -> [String]? {
            rows.first { $0[0] == pilot && $0[2] == metric && $0[3] == indicator }
        }
        #expect(row("resp-seven", "enrolled") == ["resp-seven", "respiratory", "enrolled", "", "<11", "", "small_count"])
        #expect(row("resp-seven", "mean_change", "spo2") == ["resp-seven", "respiratory", "mean_change", "spo2", "", "<11",
                                                             "few_subjects"])
        #expect(row("resp-large", "enrolled")?[4] == "80")
        #expect(row("resp-large", "mean_change", "spo2")?[4...6] == ["2.5", "50", "no"])
        // Zero, missing and suppressed: 0 / empty with `no` / marked.
        #expect(row("resp-large", "events", "exacerbation")?[4...6] == ["0", "80", "no"])
        #expect(row("resp-other", "mean_change", "cat_score")?[4...6] == ["", "0", "no"])
        #expect(row("", "enrolled")?[6] == "secondary")  // the pooled total of the programme
        for r in rows where ["enrolled", "withdrawn", "in_follow_up", "n_paired", "events", "refused", "refused_total",
                             "unenrolled_subjects", "in_target", "improved", "milestone_enrolled"].contains(r[2]) {
            if let v = Int(r[4]) { #expect(v == 0 || v >= 11, "\(r)") }
            if let n = Int(r[5]) { #expect(n == 0 || n >= 11, "\(r)") }
        }
        #expect(text == disclosed().csv())
    }

    @Test("JSON: nested programmes and pilots; null for missing, an object for suppressed")
    func json() throws {
        let o = try jsonObject(disclosed().json())
        #expect((o["disclosure"] as? [String: Any])?["k"] as? Int == 11)
        let programmes = try #require(o["programmes"] as? [[String: Any]])
        #expect(programmes.count == 1)
        let pilots = try #require(programmes[0]["pilot_reports"] as? [[String: Any]])
        #expect(pilots.map { $0["pilot"] as? String } == ["resp-seven", "resp-large", "resp-other"])
        let enrolment = try #require(pilots[0]["enrolment"] as? [String: Any])
        let enrolled = try #require(enrolment["enrolled"] as? [String: Any])
        #expect(enrolled["suppressed"] as? String == "small_count" && enrolled["shown_as"] as? String == "<11")
        #expect(enrolment["enrolment_target"] as? Int == 20)
        let other = try #require(pilots[2]["outcomes"] as? [[String: Any]])
        let cat = try #require(other.first { $0["indicator"] as? String == "cat_score" })
        #expect(cat["n_paired"] as? Int == 0)
        #expect(cat["mean_change"] is NSNull)
        let large = try #require(pilots[1]["events"] as? [String: Any])
        let ex = try #require((large["indicators"] as? [[String: Any]])?.first)
        #expect(ex["events"] as? Int == 0)
        let methods = try #require(o["methods"] as? [String: Any])
        #expect((methods["sections"] as? [Any])?.count == 4)
        let provenance = try #require(o["provenance"] as? [String: Any])
        #expect(provenance["database_fingerprint"] as? String == "sha256:test")
    }

    @Test("Markdown: tables with marks and a legend, the methods with k and every definition")
    func markdown() {
        let md = disclosed().markdown()
        #expect(md.hasPrefix("# Outcome summary\n"))
        #expect(md.contains("## Programme respiratory, pooled over 3 pilots"))
        #expect(md.contains("### Pilot resp-seven — Pilot resp-seven"))
        #expect(md.contains("## Methods") && md.contains("### Disclosure control (k = 11)"))
        for name in ["`enrolled`", "`withdrawn`", "`transmission_adherence`", "`n_paired`", "`mean_change`", "`pct_in_target`",
                     "`improved_pct`", "`rate_per_100_patient_months`", "`unenrolled_subjects`", "30 d", "14 d", "60 d",
                     "30.4375", "Student t"] {
            #expect(md.contains(name), "methods lack \(name)")
        }
        #expect(md.contains(" <11 |"))
        #expect(md.contains("- database fingerprint: `sha256:test`"))
        // Every table line is a well-formed row of the same width as its header.
        let tableLines = md.split(separator: "\n").filter { $0.hasPrefix("|") }
        #expect(!tableLines.isEmpty)
        #expect(tableLines.allSatisfy { $0.hasSuffix("|") })
    }

    @Test("HTML: one self-contained file, no script or network, A4 print styles, inline SVG charts")
    func html() {
        let html = disclosed().html()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains("<link") && !html.contains("<img") && !html.contains("@import") && !html.contains("url("))
        let urls = html.components(separatedBy: "http").dropFirst().map { String($0.prefix(30)) }
        #expect(urls.allSatisfy { $0.hasPrefix("://www.w3.org/2000/svg") }, "\(urls)")
        #expect(html.contains("size: A4"))
        #expect(html.components(separatedBy: "<svg").count - 1 >= 5)  // 3 enrolment charts + 2 outcome charts
        #expect(html.contains("class=\"n sup\""))
        #expect(html.contains("<h2>Methods</h2>"))
        // Balanced elements for the structural tags.
        for tag in ["table", "svg", "section", "figure"] {
            #expect(html.components(separatedBy: "<\(tag)").count == html.components(separatedBy: "</\(tag)>").count, "\(tag)")
        }
    }

    @Test("FHIR: a collection Bundle of summary MeasureReports, suppressed counts masked")
    func fhir() throws {
        let d = disclosed()
        let b = try jsonObject(d.fhir())
        #expect(b["resourceType"] as? String == "Bundle" && b["type"] as? String == "collection")
        let entries = try #require(b["entry"] as? [[String: Any]])
        // Programme: fxSpo2, cat_score, fxExacerbation; pilots: 3 + 2 + 3.
        #expect(entries.count == 3 + 3 + 2 + 3)
        let reports = entries.compactMap { $0["resource"] as? [String: Any] }
        #expect(reports.allSatisfy { $0["status"] as? String == "complete" && $0["type"] as? String == "summary" })
        #expect(Set(entries.compactMap { $0["fullUrl"] as? String }).count == entries.count)
        let seven = try #require(reports.first {
            (($0["identifier"] as? [[String: Any]])?.first?["value"] as? String) == "pilot/resp-seven/spo2"
        })
        let groups = try #require(seven["group"] as? [[String: Any]])
        let change = try #require(groups.first {
            ((($0["code"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["code"] as? String) == "mean_change"
        })
        let populations = try #require(change["population"] as? [[String: Any]])
        #expect(populations.count == 2)
        for p in populations {
            #expect(p["count"] == nil)
            let ext = (p["_count"] as? [String: Any])?["extension"] as? [[String: Any]] ?? []
            #expect(ext.contains { $0["url"] as? String == FHIR.dataAbsentReason && $0["valueCode"] as? String == "masked" })
        }
        let score = try #require(change["measureScore"] as? [String: Any])
        #expect(score["value"] == nil && score["extension"] != nil)
        let improvement = (seven["improvementNotation"] as? [String: Any])?["coding"] as? [[String: Any]]
        #expect(improvement?.first?["code"] as? String == "increase")
        #expect(d.fhir() == disclosed().fhir())
        #expect(FHIR.uuid("x") == FHIR.uuid("x") && FHIR.uuid("x") != FHIR.uuid("y"))
        #expect(FHIR.uuid("x").count == 36)
    }
}
