import Foundation
import PilotwatchCore

/// HTML text escaping.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// Markdown inline code (`x`) as `<code>`, the rest escaped.
    static func inline(_ s: String) -> String {
        let parts = s.split(separator: "`", omittingEmptySubsequences: false)
        return parts.enumerated().map { i, p in i % 2 == 1 ? "<code>\(escape(String(p)))</code>" : escape(String(p)) }
            .joined()
    }

    /// A coordinate with one decimal.
    static func n(_ v: Double) -> String { Graphics.fixed(v, 1) }
}

extension DisclosedReport {
    /// One self-contained HTML file: no script, no network, styles inline, printable on A4, with
    /// inline SVG charts (enrolment over time against the target and milestones, per pilot; the
    /// mean change of each outcome with its 95% interval, per programme).
    public func html() -> String {
        let r = report
        var b: [String] = []
        b.append("<!DOCTYPE html>")
        b.append("<html lang=\"en\">")
        b.append("<head>")
        b.append("<meta charset=\"utf-8\">")
        b.append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        b.append("<meta name=\"generator\" content=\"pilotwatch \(HTML.escape(r.provenance.pilotwatchVersion))\">")
        b.append("<title>Outcome summary as of \(HTML.escape(r.asOf.description))</title>")
        b.append("<style>\(HTMLStyle.css)</style>")
        b.append("</head>")
        b.append("<body>")
        b.append("<header>")
        b.append("<h1>Outcome summary</h1>")
        b.append("<p class=\"lead\">As of <strong>\(HTML.escape(r.asOf.description))</strong> · period: \(HTML.escape(periodText)) · "
                 + "selection: \(HTML.escape(r.selection.summary)) · disclosure control k = \(k)</p>")
        b.append("<p class=\"legend\">\(HTML.escape(legend))</p>")
        b.append("</header>")
        if r.pilots.isEmpty { b.append("<p>No pilot matches the selection.</p>") }
        for p in r.programmes {
            b.append("<section class=\"programme\">")
            b.append("<h2>\(HTML.escape(title(p)))</h2>")
            b.append("<p>Pilots: \(HTML.escape(p.pilots.joined(separator: ", "))).</p>")
            if !p.partsNotGivenBy.isEmpty {
                b.append("<p>Pooled figures marked x lack a part that the site of \(HTML.escape(p.partsNotGivenBy.joined(separator: ", "))) does not give exactly.</p>")
            }
            b += scopeHTML(p)
            let pilots = r.pilots(of: p.id)
            for o in p.outcomes {
                b.append(changeChart(indicator: o, programme: p, pilots: pilots.filter { $0.outcomes.contains(o) }))
            }
            b.append("</section>")
            for s in pilots {
                b.append("<section class=\"pilot\">")
                b.append("<h2>Pilot \(HTML.escape(title(s)))</h2>")
                if let pilot = s.pilot {
                    b.append("<table class=\"facts\"><tbody>")
                    for (k, v) in [("Lead", pilot.lead), ("Call", pilot.call), ("Funders", pilot.funders.joined(separator: ", ")),
                                   ("Dates", "\(pilot.start) to \(pilot.end)"), ("On track", s.onTrack.map { $0 ? "yes" : "no" } ?? "not given")]
                        + (s.source.map { [("Figures", $0.text)] } ?? []) {
                        b.append("<tr><th scope=\"row\">\(k)</th><td>\(HTML.escape(v))</td></tr>")
                    }
                    b.append("</tbody></table>")
                    b.append(enrolmentChart(s, pilot: pilot))
                }
                b += scopeHTML(s)
                b.append("</section>")
            }
        }
        b.append("<section class=\"methods\">")
        b.append("<h2>Methods</h2>")
        for section in methods {
            b.append("<h3>\(HTML.escape(section.title))</h3>")
            for para in section.paragraphs { b.append("<p>\(HTML.inline(para))</p>") }
        }
        b.append("</section>")
        b.append("<footer>")
        b.append("<h2>Provenance</h2>")
        b.append("<dl>")
        b.append("<dt>pilotwatch version</dt><dd>\(HTML.escape(r.provenance.pilotwatchVersion))</dd>")
        b.append("<dt>database fingerprint</dt><dd><code>\(HTML.escape(r.provenance.databaseFingerprint))</code></dd>")
        b.append("<dt>generated at</dt><dd>\(HTML.escape(r.provenance.generatedAt.description)) "
                 + "(the as-of time unless --generated-at was given)</dd>")
        b.append("</dl>")
        b.append("</footer>")
        b.append("</body>")
        b.append("</html>")
        return b.joined(separator: "\n") + "\n"
    }

    /// A table cell for a figure: right-aligned, suppressed ones marked and explained.
    private func td(_ c: Cell, _ shown: String? = nil) -> String {
        let t = HTML.escape(shown ?? text(c))
        switch c.state {
        case .value: return "<td class=\"n\">\(t)</td>"
        case .missing: return "<td class=\"n missing\" title=\"nothing to compute it on\">\(t)</td>"
        case .suppressed(let why): return "<td class=\"n sup\" title=\"\(HTML.escape(explanation(why)))\">\(t)</td>"
        }
    }

    /// `16 (53.3%)`: a count and its share in one cell, marked when either is suppressed.
    private func shareTD(_ s: ExportScope, _ count: ExportMetric, _ pct: ExportMetric, _ code: String) -> String {
        let c = s[count, code], p = s[pct, code]
        let shown = share(s, count, pct, code)
        if let why = c.suppression ?? p.suppression {
            return "<td class=\"n sup\" title=\"\(HTML.escape(explanation(why)))\">\(HTML.escape(shown))</td>"
        }
        if case .missing = c.state { return "<td class=\"n missing\" title=\"does not apply\">\(HTML.escape(shown))</td>" }
        return "<td class=\"n\">\(HTML.escape(shown))</td>"
    }

    func explanation(_ why: Suppression) -> String {
        switch why {
        case .smallCount: return "suppressed: a count between 1 and \(k - 1)"
        case .fewSubjects: return "withheld: computed from fewer than \(k) subjects"
        case .secondary: return "suppressed so that another suppressed figure cannot be worked out"
        case .atSite: return "not given exactly by the pilot's site (below its min_cell, held or withheld there)"
        }
    }

    private func scopeHTML(_ s: ExportScope) -> [String] {
        var b: [String] = []
        b.append("<h3>Enrolment and follow-up</h3>")
        b.append("<table><thead><tr><th>enrolled</th><th>target</th><th>% of target</th><th>withdrawn</th>"
                 + "<th>in follow-up</th><th>adherence</th></tr></thead><tbody><tr>"
                 + td(s[.enrolled]) + td(s[.enrolmentTarget]) + td(s[.enrolmentPct], percentText(s[.enrolmentPct]))
                 + td(s[.withdrawn]) + td(s[.inFollowUp])
                 + td(s[.transmissionAdherence], percentText(s[.transmissionAdherence])) + "</tr></tbody></table>")
        if !s.milestones.isEmpty {
            b.append("<table><thead><tr><th>milestone date</th><th>target</th><th>enrolled by then</th><th>state</th></tr></thead><tbody>")
            for m in s.milestones {
                b.append("<tr><td>\(m.date)</td><td class=\"n\">\(m.target)</td>"
                         + td(s[.milestoneEnrolled, m.date.description])
                         + "<td class=\"state \(m.state.rawValue)\">\(m.state.rawValue)</td></tr>")
            }
            b.append("</tbody></table>")
        }
        if !s.outcomes.isEmpty {
            b.append("<h3>Outcome indicators</h3>")
            b.append("<table><thead><tr><th>indicator</th><th>unit</th><th>n paired</th><th>baseline</th><th>latest</th>"
                     + "<th>change</th><th>95% CI</th><th>in target</th><th>improved</th></tr></thead><tbody>")
            for i in s.outcomes {
                let c = i.code
                let lo = s[.changeCI95Lower, c], hi = s[.changeCI95Upper, c]
                let ci = lo.value != nil || hi.value != nil ? "[\(text(lo)), \(text(hi))]" : text(lo)
                b.append("<tr><td title=\"\(HTML.escape(i.name))\">\(HTML.escape(c))</td><td>\(HTML.escape(i.unit))</td>"
                         + td(s[.nPaired, c]) + td(s[.meanBaseline, c]) + td(s[.meanLatest, c])
                         + td(s[.meanChange, c], signedText(s[.meanChange, c])) + td(lo, ci)
                         + shareTD(s, .inTarget, .pctInTarget, c) + shareTD(s, .improved, .improvedPct, c) + "</tr>")
            }
            b.append("</tbody></table>")
        }
        if !s.events.isEmpty {
            b.append("<h3>Events</h3>")
            b.append("<table><thead><tr><th>event</th><th>events</th><th>per 100 patient-months</th></tr></thead><tbody>")
            for i in s.events {
                let rate = s[.ratePer100PatientMonths, i.code]
                b.append("<tr><td title=\"\(HTML.escape(i.name))\">\(HTML.escape(i.code))</td>" + td(s[.events, i.code])
                         + td(rate, text(rate) { Graphics.fixed($0, 1) }) + "</tr>")
            }
            b.append("</tbody></table>")
            b.append("<p class=\"note\">Subjects followed in the period: \(HTML.escape(text(s[.subjectsFollowed]))) · "
                     + "patient-days: \(HTML.escape(text(s[.patientDays]) { Graphics.fixed($0, 1) }))</p>")
        }
        b.append("<h3>Data completeness</h3>")
        b.append("<table><thead><tr><th>refused messages</th><th>count</th></tr></thead><tbody>")
        for reason in s.reasons {
            b.append("<tr><td>\(HTML.escape(reason.rawValue))</td>" + td(s[.refused, reason.rawValue]) + "</tr>")
        }
        b.append("<tr class=\"total\"><td>total</td>" + td(s[.refusedTotal]) + "</tr></tbody></table>")
        b.append("<p class=\"note\">Unenrolled subjects (data without an enrolment, left out of outcomes): "
                 + "\(HTML.escape(text(s[.unenrolledSubjects])))</p>")
        return b
    }

    // MARK: Charts

    /// Cumulative enrolment (the published points) against the target line and the milestones.
    func enrolmentChart(_ s: ExportScope, pilot: Pilot) -> String {
        let w = 640.0, h = 210.0, left = 48.0, right = 20.0, top = 16.0, bottom = 30.0
        let first = min(pilot.start, s.enrolmentSeries.first?.day ?? pilot.start)
        let last = max(pilot.end, report.asOf.day)
        let span = Double(max(1, first.distance(to: last)))
        var yMax = Double(pilot.enrolmentTarget)
        for m in s.milestones { yMax = max(yMax, Double(m.target)) }
        for p in s.enrolmentSeries { yMax = max(yMax, Double(p.enrolled)) }
        yMax = ChartScale.niceCeiling(max(1, yMax * 1.05))
        func x(_ d: Day) -> Double { left + (w - left - right) * Double(first.distance(to: d)) / span }
        func y(_ v: Double) -> Double { top + (h - top - bottom) * (1 - v / yMax) }
        let label = "Cumulative enrolment of \(pilot.id) against its target of \(pilot.enrolmentTarget)"
        var svg: [String] = []
        svg.append("<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" "
                   + "width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(HTML.escape(label))\">")
        svg.append("<title>\(HTML.escape(label))</title>")
        for tick in ChartScale.ticks(max: yMax) {
            svg.append("<line class=\"grid\" x1=\"\(HTML.n(left))\" x2=\"\(HTML.n(w - right))\" y1=\"\(HTML.n(y(tick)))\" y2=\"\(HTML.n(y(tick)))\"/>")
            svg.append("<text class=\"axis\" x=\"\(HTML.n(left - 4))\" y=\"\(HTML.n(y(tick) + 3))\" text-anchor=\"end\">\(formatNumber(tick))</text>")
        }
        svg.append("<line class=\"axisline\" x1=\"\(HTML.n(left))\" x2=\"\(HTML.n(w - right))\" y1=\"\(HTML.n(y(0)))\" y2=\"\(HTML.n(y(0)))\"/>")
        for (d, anchor) in [(first, "start"), (last, "end")] {
            svg.append("<text class=\"axis\" x=\"\(HTML.n(x(d)))\" y=\"\(HTML.n(h - 10))\" text-anchor=\"\(anchor)\">\(d)</text>")
        }
        // The pilot's end and the as-of instant.
        svg.append("<line class=\"end\" x1=\"\(HTML.n(x(pilot.end)))\" x2=\"\(HTML.n(x(pilot.end)))\" y1=\"\(HTML.n(top))\" y2=\"\(HTML.n(y(0)))\"/>")
        let tx = x(report.asOf.day)
        svg.append("<line class=\"asof\" x1=\"\(HTML.n(tx))\" x2=\"\(HTML.n(tx))\" y1=\"\(HTML.n(top))\" y2=\"\(HTML.n(y(0)))\"/>")
        svg.append("<text class=\"axis\" x=\"\(HTML.n(tx))\" y=\"\(HTML.n(h - 10))\" text-anchor=\"middle\">as of</text>")
        // Target line.
        let ty = y(Double(pilot.enrolmentTarget))
        svg.append("<line class=\"target\" x1=\"\(HTML.n(left))\" x2=\"\(HTML.n(w - right))\" y1=\"\(HTML.n(ty))\" y2=\"\(HTML.n(ty))\"/>")
        svg.append("<text class=\"label\" x=\"\(HTML.n(left + 4))\" y=\"\(HTML.n(ty - 4))\">target \(pilot.enrolmentTarget)</text>")
        // Published cumulative enrolment, as steps.
        if !s.enrolmentSeries.isEmpty {
            var points: [String] = []
            var previous: Double?
            for p in s.enrolmentSeries {
                let px = x(p.day), py = y(Double(p.enrolled))
                if let previous { points.append("\(HTML.n(px)),\(HTML.n(previous))") }
                points.append("\(HTML.n(px)),\(HTML.n(py))")
                previous = py
            }
            svg.append("<polyline class=\"enrolment\" points=\"\(points.joined(separator: " "))\"/>")
            for p in s.enrolmentSeries {
                svg.append("<circle class=\"point\" cx=\"\(HTML.n(x(p.day)))\" cy=\"\(HTML.n(y(Double(p.enrolled))))\" r=\"2\">"
                           + "<title>\(p.day): \(p.enrolled) enrolled</title></circle>")
            }
        }
        if s[.enrolled].isSuppressed {
            svg.append("<text class=\"note\" x=\"\(HTML.n(w / 2))\" y=\"\(HTML.n(top + 14))\" text-anchor=\"middle\">"
                       + "enrolment to date suppressed (\(HTML.escape(explanation(s[.enrolled].suppression ?? .smallCount))))</text>")
        }
        // Milestones: a diamond at (date, number), coloured by state.
        for m in s.milestones {
            let mx = x(m.date), my = y(Double(m.target))
            svg.append("<path class=\"milestone \(m.state.rawValue)\" d=\"M\(HTML.n(mx)) \(HTML.n(my - 5))l5 5l-5 5l-5 -5z\">"
                       + "<title>milestone \(m.target) by \(m.date): \(m.state.rawValue)</title></path>")
            svg.append("<text class=\"label\" x=\"\(HTML.n(mx + 7))\" y=\"\(HTML.n(my + 4))\">\(m.target) by \(m.date)</text>")
        }
        svg.append("</svg><figcaption>\(HTML.escape(label)). Steps: published cumulative enrolment (points at least \(k) "
                   + "apart, see Methods); dashed: target; diamonds: milestones (green met, red missed, grey pending); "
                   + "dotted: as of.</figcaption></figure>")
        return svg.joined(separator: "\n")
    }

    /// One outcome's mean change with its 95% interval, one row per pilot and the pooled one.
    func changeChart(indicator o: ExportIndicator, programme: ExportScope, pilots: [ExportScope]) -> String {
        let rows = pilots.map { ($0.id, $0, false) } + [("pooled", programme, true)]
        let w = 640.0, labelWidth = 170.0, right = 110.0, rowHeight = 22.0, top = 14.0, bottom = 26.0
        let h = top + bottom + rowHeight * Double(rows.count)
        var lo = 0.0, hi = 0.0
        for (_, s, _) in rows {
            for m in [ExportMetric.meanChange, .changeCI95Lower, .changeCI95Upper] {
                if let v = s[m, o.code].value { lo = min(lo, v); hi = max(hi, v) }
            }
        }
        if lo == hi { lo -= 1; hi += 1 }
        let pad = (hi - lo) * 0.08
        lo -= pad; hi += pad
        func x(_ v: Double) -> Double { labelWidth + (w - labelWidth - right) * (v - lo) / (hi - lo) }
        let better = o.direction == .higher ? "higher is better" : o.direction == .lower ? "lower is better" : "stable is the goal"
        let label = "\(o.code): mean change from baseline to latest (\(o.unit)) with its 95% interval; \(better)"
        var svg: [String] = []
        svg.append("<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" "
                   + "width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(HTML.escape(label))\">")
        svg.append("<title>\(HTML.escape(label))</title>")
        let zero = x(0)
        svg.append("<line class=\"zero\" x1=\"\(HTML.n(zero))\" x2=\"\(HTML.n(zero))\" y1=\"\(HTML.n(top - 4))\" y2=\"\(HTML.n(h - bottom))\"/>")
        // Axis labels at both ends, and at 0 when it is not crowded by them.
        let far = min(abs(x(0) - x(lo)), abs(x(hi) - x(0))) > 36
        for v in far ? [lo, 0, hi] : [lo, hi] {
            svg.append("<text class=\"axis\" x=\"\(HTML.n(x(v)))\" y=\"\(HTML.n(h - 10))\" text-anchor=\"middle\">\(HTML.escape(Graphics.signed(v)))</text>")
        }
        for (i, row) in rows.enumerated() {
            let (name, s, pooled) = row
            let cy = top + rowHeight * (Double(i) + 0.5)
            svg.append("<text class=\"\(pooled ? "label pooled" : "label")\" x=\"4\" y=\"\(HTML.n(cy + 4))\">\(HTML.escape(Graphics.truncate(name, 26)))</text>")
            let change = s[.meanChange, o.code]
            let n = s[.nPaired, o.code]
            let summary = "n \(text(n)) · \(signedText(change))"
            if let m = change.value {
                if let l = s[.changeCI95Lower, o.code].value, let u = s[.changeCI95Upper, o.code].value {
                    svg.append("<line class=\"ci\" x1=\"\(HTML.n(x(l)))\" x2=\"\(HTML.n(x(u)))\" y1=\"\(HTML.n(cy))\" y2=\"\(HTML.n(cy))\"/>")
                    for b in [l, u] {
                        svg.append("<line class=\"ci\" x1=\"\(HTML.n(x(b)))\" x2=\"\(HTML.n(x(b)))\" y1=\"\(HTML.n(cy - 4))\" y2=\"\(HTML.n(cy + 4))\"/>")
                    }
                }
                svg.append("<rect class=\"\(pooled ? "mean pooled" : "mean")\" x=\"\(HTML.n(x(m) - 4))\" y=\"\(HTML.n(cy - 4))\" width=\"8\" height=\"8\">"
                           + "<title>\(HTML.escape(name)): \(HTML.escape(summary))</title></rect>")
            } else {
                let why = change.suppression.map(explanation) ?? "no paired subject"
                svg.append("<text class=\"note\" x=\"\(HTML.n(labelWidth))\" y=\"\(HTML.n(cy + 4))\">\(HTML.escape(why))</text>")
            }
            svg.append("<text class=\"axis\" x=\"\(HTML.n(w - right + 6))\" y=\"\(HTML.n(cy + 4))\">\(HTML.escape(summary))</text>")
        }
        svg.append("</svg><figcaption>\(HTML.escape(o.name)): \(HTML.escape(label)).</figcaption></figure>")
        return svg.joined(separator: "\n")
    }
}

/// Axis helpers.
enum ChartScale {
    /// The smallest of 1, 2, 2.5, 5 × 10^n at or above `v`.
    static func niceCeiling(_ v: Double) -> Double {
        guard v > 0, v.isFinite else { return 1 }
        let p = pow(10, floor(log10(v)))
        for m in [1.0, 2, 2.5, 5, 10] where m * p >= v { return m * p }
        return 10 * p
    }

    /// Four gridlines from 0 to `max`.
    static func ticks(max: Double) -> [Double] { (0...4).map { max * Double($0) / 4 } }
}

enum HTMLStyle {
    static let css = """
    @page { size: A4; margin: 14mm 12mm; }
    html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
    body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10pt; line-height: 1.35;
      color: #111; max-width: 186mm; margin: 0 auto; padding: 8mm 0; }
    h1 { font-size: 18pt; margin: 0 0 4pt; }
    h2 { font-size: 13pt; margin: 14pt 0 4pt; border-bottom: 1px solid #888; break-after: avoid; }
    h3 { font-size: 11pt; margin: 10pt 0 3pt; break-after: avoid; }
    p { margin: 3pt 0; }
    .lead { font-size: 10.5pt; }
    .legend, .note, figcaption { font-size: 8.5pt; color: #444; }
    table { border-collapse: collapse; margin: 3pt 0 6pt; break-inside: avoid; font-size: 8.5pt; max-width: 100%; }
    th, td { border: 1px solid #bbb; padding: 1.5pt 4pt; vertical-align: top; }
    th { white-space: normal; }
    th { background: #eef1f4; font-weight: 600; text-align: left; }
    td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    td.sup { color: #9b2c2c; font-style: italic; background: #fbf1f1; }
    td.missing { color: #777; }
    td.state.met { color: #276749; } td.state.missed { color: #9b2c2c; } td.state.pending { color: #555; }
    table.facts th { width: 22mm; }
    tr.total td { font-weight: 600; }
    section.programme { break-before: page; }
    section.programme:first-of-type { break-before: auto; }
    figure.chart { margin: 4pt 0 8pt; break-inside: avoid; }
    svg { max-width: 100%; height: auto; display: block; font-family: inherit; }
    svg .grid { stroke: #e2e2e2; stroke-width: 1; }
    svg .axisline { stroke: #888; stroke-width: 1; }
    svg .axis { font-size: 9px; fill: #555; }
    svg .label { font-size: 9.5px; fill: #222; }
    svg .label.pooled { font-weight: bold; }
    svg .note { font-size: 9px; fill: #9b2c2c; font-style: italic; }
    svg .target { stroke: #2b6cb0; stroke-width: 1.2; stroke-dasharray: 5 3; }
    svg .end { stroke: #aaa; stroke-width: 1; stroke-dasharray: 2 2; }
    svg .asof { stroke: #555; stroke-width: 1; stroke-dasharray: 1 2; }
    svg .enrolment { fill: none; stroke: #2f855a; stroke-width: 2; }
    svg .point { fill: #2f855a; }
    svg .milestone { stroke: #222; stroke-width: 0.8; }
    svg .milestone.met { fill: #48bb78; } svg .milestone.missed { fill: #e53e3e; } svg .milestone.pending { fill: #cbd5e0; }
    svg .zero { stroke: #888; stroke-width: 1; stroke-dasharray: 3 2; }
    svg .ci { stroke: #2d3748; stroke-width: 1.5; }
    svg .mean { fill: #2b6cb0; } svg .mean.pooled { fill: #1a202c; }
    dl { display: grid; grid-template-columns: max-content auto; gap: 2pt 10pt; font-size: 9pt; }
    dt { font-weight: 600; } dd { margin: 0; }
    code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.92em; word-break: break-all; }
    """
}
