import Foundation
import PilotwatchCore

/// A Markdown table whose columns are padded, so that it reads in a plain terminal as well as
/// in any Markdown viewer.
struct MarkdownTable {
    var header: [String]
    var rightAligned: Set<Int>
    var rows: [[String]] = []

    init(_ header: [String], rightAligned: Set<Int> = []) { self.header = header; self.rightAligned = rightAligned }

    mutating func row(_ cells: [String]) { rows.append(cells.map(MarkdownTable.escape)) }

    static func escape(_ s: String) -> String {
        s.replacingAll("|", with: "\\|").replacingAll("\n", with: " ")
    }

    func render() -> String {
        var widths = header.map { max(3, displayWidth($0)) }
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], displayWidth(c)) } }
        func pad(_ c: String, _ i: Int) -> String {
            let fill = String(repeating: " ", count: max(0, widths[i] - displayWidth(c)))
            return rightAligned.contains(i) ? fill + c : c + fill
        }
        func line(_ cells: [String]) -> String {
            "| " + widths.indices.map { pad($0 < cells.count ? cells[$0] : "", $0) }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.indices.map { i in
            rightAligned.contains(i) ? String(repeating: "-", count: widths[i] + 1) + ":" : String(repeating: "-", count: widths[i] + 2)
        }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        replacingOccurrences(of: target, with: replacement)
    }
}

extension DisclosedReport {
    /// The report in Markdown: a summary per programme (pooled) then per pilot, the methods and
    /// the provenance. Numbers are rounded for reading.
    public func markdown() -> String {
        let r = report
        var out: [String] = []
        out.append("# Outcome summary")
        out.append("")
        out.append("- As of: **\(r.asOf)** (UTC)")
        out.append("- Period: \(periodText)")
        out.append("- Selection: \(r.selection.summary)")
        out.append("- Disclosure control: k = \(k) (see Methods)")
        out.append("")
        out.append("Marks: " + legend.replacingAll(smallMark + ":", with: "`\(smallMark)`:") + ".")
        if r.pilots.isEmpty {
            out.append("")
            out.append("No pilot matches the selection.")
        }
        for p in r.programmes {
            out.append("")
            out.append("## " + title(p))
            out.append("")
            out.append("Pilots: " + p.pilots.joined(separator: ", ") + ".")
            if !p.partsNotGivenBy.isEmpty {
                out.append("")
                out.append("Pooled figures marked x lack a part that the site of " + p.partsNotGivenBy.joined(separator: ", ") + " does not give exactly.")
            }
            out += scopeSections(p, level: "###")
            for s in r.pilots(of: p.id) {
                out.append("")
                out.append("### Pilot " + title(s))
                if let pilot = s.pilot {
                    out.append("")
                    out.append("- Lead: \(pilot.lead)")
                    out.append("- Call: \(pilot.call) · funders: \(pilot.funders.joined(separator: ", "))")
                    out.append("- Dates: \(pilot.start) to \(pilot.end) · on track: \(s.onTrack.map { $0 ? "yes" : "no" } ?? "not given")")
                    if let source = s.source { out.append("- Figures: \(source.text)") }
                }
                out += scopeSections(s, level: "####")
            }
        }
        out.append("")
        out.append("## Methods")
        for section in methods {
            out.append("")
            out.append("### " + section.title)
            for para in section.paragraphs {
                out.append("")
                out.append(para)
            }
        }
        out.append("")
        out.append("## Provenance")
        out.append("")
        out.append("- pilotwatch version: \(r.provenance.pilotwatchVersion)")
        out.append("- database fingerprint: `\(r.provenance.databaseFingerprint)`")
        out.append("- generated at: \(r.provenance.generatedAt) (the as-of time unless --generated-at was given)")
        return out.joined(separator: "\n") + "\n"
    }

    private func scopeSections(_ s: ExportScope, level h: String) -> [String] {
        var out: [String] = []
        out.append("")
        out.append("\(h) Enrolment and follow-up")
        out.append("")
        var t = MarkdownTable(["enrolled", "target", "% of target", "withdrawn", "in follow-up", "adherence"],
                              rightAligned: [0, 1, 2, 3, 4, 5])
        t.row([text(s[.enrolled]), text(s[.enrolmentTarget]), percentText(s[.enrolmentPct]), text(s[.withdrawn]),
               text(s[.inFollowUp]), percentText(s[.transmissionAdherence])])
        out.append(t.render())
        if !s.milestones.isEmpty {
            out.append("")
            var m = MarkdownTable(["milestone date", "target", "enrolled by then", "state"], rightAligned: [1, 2])
            for ms in s.milestones {
                m.row([ms.date.description, String(ms.target), text(s[.milestoneEnrolled, ms.date.description]),
                       ms.state.rawValue])
            }
            out.append(m.render())
        }
        if !s.outcomes.isEmpty {
            out.append("")
            out.append("\(h) Outcome indicators")
            out.append("")
            var o = MarkdownTable(["indicator", "unit", "n paired", "baseline", "latest", "change", "95% CI", "in target",
                                   "improved"], rightAligned: [2, 3, 4, 5, 6, 7, 8])
            for i in s.outcomes {
                let c = i.code
                let ci: String
                if s[.changeCI95Lower, c].value != nil || s[.changeCI95Upper, c].value != nil {
                    ci = "[\(text(s[.changeCI95Lower, c])), \(text(s[.changeCI95Upper, c]))]"
                } else {
                    ci = text(s[.changeCI95Lower, c])
                }
                o.row([c, i.unit, text(s[.nPaired, c]), text(s[.meanBaseline, c]), text(s[.meanLatest, c]),
                       signedText(s[.meanChange, c]), ci, share(s, .inTarget, .pctInTarget, c),
                       share(s, .improved, .improvedPct, c)])
            }
            out.append(o.render())
        }
        if !s.events.isEmpty {
            out.append("")
            out.append("\(h) Events")
            out.append("")
            out.append("Subjects followed in the period: \(text(s[.subjectsFollowed])) · patient-days: "
                       + "\(text(s[.patientDays]) { Graphics.fixed($0, 1) })")
            out.append("")
            var e = MarkdownTable(["event", "events", "per 100 patient-months"], rightAligned: [1, 2])
            for i in s.events {
                e.row([i.code, text(s[.events, i.code]), text(s[.ratePer100PatientMonths, i.code]) { Graphics.fixed($0, 1) }])
            }
            out.append(e.render())
        }
        out.append("")
        out.append("\(h) Data completeness")
        out.append("")
        var d = MarkdownTable(["refused messages", "count"], rightAligned: [1])
        for reason in s.reasons { d.row([reason.rawValue, text(s[.refused, reason.rawValue])]) }
        d.row(["total", text(s[.refusedTotal])])
        out.append(d.render())
        out.append("")
        out.append("Unenrolled subjects (data without an enrolment, left out of outcomes): \(text(s[.unenrolledSubjects]))")
        return out
    }

    /// `12 (40.0%)`, `<11 (w)`, `- (-)` for an indicator without a target range.
    func share(_ s: ExportScope, _ count: ExportMetric, _ pct: ExportMetric, _ code: String) -> String {
        let c = s[count, code], p = s[pct, code]
        if case .missing = c.state, case .missing = p.state { return "-" }
        return "\(text(c)) (\(percentText(p)))"
    }
}
