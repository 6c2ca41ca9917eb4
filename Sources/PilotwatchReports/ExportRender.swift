import PilotwatchCore

// Shared pieces of the export renderers, the methods section, and the JSON and CSV formats.
// Every renderer prints cells as disclosure control left them: a value (zero included),
// missing, or suppressed with its reason; none sees a suppressed value.

// MARK: - Reading cells

extension DisclosedReport {
    /// `<11`: how a suppressed count reads.
    public var smallMark: String { "<\(k)" }

    /// A cell for reading: rounded numbers, `-` for missing, `<k` for a small count, `w` for a
    /// figure withheld (fewer than k subjects), `s` for a secondary suppression.
    public func text(_ c: Cell, _ format: (Double) -> String = { Graphics.number($0) }) -> String {
        switch c.state {
        case .value(let v): return c.kind == .statistic ? format(v) : String(Int64(v.rounded()))
        case .missing: return "-"
        case .suppressed(.smallCount): return smallMark
        case .suppressed(.fewSubjects): return "w"
        case .suppressed(.secondary): return "s"
        case .suppressed(.atSite): return "x"
        }
    }

    /// A signed change: `+2.67`.
    public func signedText(_ c: Cell) -> String { text(c) { Graphics.signed($0) } }

    /// A percentage with one decimal: `78.4%`.
    public func percentText(_ c: Cell) -> String { text(c) { Graphics.percent1($0) } }

    /// The legend of the marks, one line.
    public var legend: String {
        "\(smallMark): a count between 1 and \(k - 1) · w: withheld, computed from fewer than \(k) subjects · "
            + "s: suppressed so that another suppressed figure cannot be worked out · -: nothing to compute it on"
            + ((suppressedCounts[.atSite] ?? 0) > 0 ? " · x: not given exactly by the pilot's site (below its min_cell, held or withheld there)" : "")
    }

    /// `each pilot's whole life` or `from 2026-07-01`, and `to 2026-09-30T23:59:59.999Z`.
    public var periodText: String {
        let from = report.periodStart.map { "from \($0)" } ?? "each pilot's whole life"
        return "\(from) up to \(report.asOf)"
    }

    /// The scope's name for headings: `resp-copd-idf-01 — Telemonitoring of COPD`.
    func title(_ s: ExportScope) -> String {
        switch s.level {
        case .pilot: return s.id + (s.pilot.map { " — " + $0.name } ?? "")
        case .programme: return "Programme \(s.id), pooled over \(s.pilots.count) pilot\(s.pilots.count == 1 ? "" : "s")"
        }
    }
}

// MARK: - Methods

extension DisclosedReport {
    /// The methods section: every definition, window and the suppression rule applied, as
    /// titled sections of paragraphs (Markdown inline code allowed).
    public var methods: [(title: String, paragraphs: [String])] {
        let r = report
        var windows: [String] = []
        var seen = Set<String>()
        for s in r.programmes + r.pilots {
            for o in s.outcomes where !seen.contains(o.code) {
                seen.insert(o.code)
                if o.windows != .standard {
                    windows.append("`\(o.code)`: baseline in [enrolment − \(formatNumber(o.windows.baselineBeforeDays)) d, "
                                   + "enrolment + \(formatNumber(o.windows.baselineAfterDays)) d], latest from "
                                   + "enrolment + \(formatNumber(o.windows.followUpDays)) d")
                }
            }
        }
        let from = r.periodStart.map { "from \($0)" } ?? "over each pilot's whole life"
        let refusedFrom = r.periodStart.map { "from \($0.day)" } ?? "from the first day"
        return [
            ("Time and period", [
                "Every figure is computed as it stood at T = \(r.asOf) (UTC): nothing observed after T counts. "
                    + "Events, patient-days and rates cover the period \(from) up to T. Refused messages are counted "
                    + "by the UTC day pilotwatch received them, \(refusedFrom) to \(r.asOf.day).",
                "The generation time printed under Provenance is `--generated-at` when given, otherwise T itself, "
                    + "so that the same database and arguments always give byte-identical files.",
            ]),
            ("Definitions (pilotwatch metric definitions, version 1)", [
                "`enrolled`: subjects with an `enrolled` event at or before T (a subject's first one counts). "
                    + "`withdrawn`: enrolled subjects with a `withdrawn` event after their enrolment and at or before T. "
                    + "`in_follow_up` = enrolled − withdrawn. `enrolment_pct` = 100 × enrolled / `enrolment_target` "
                    + "(the registry's target).",
                "Milestones (registry: so many enrolled by a date): met when the enrolments made by the end of the date "
                    + "(or by T, if earlier) reach the number, missed when the date has passed without that, pending "
                    + "otherwise. `on_track`: the target is reached, or at the pace of the last 30 days it would be "
                    + "reached by the pilot's end date.",
                "`transmission_adherence`: for each subject in follow-up, the share of the UTC days of the last 28 up "
                    + "to T (or since the day of enrolment, if later) with at least one measurement or score; the mean "
                    + "of these shares, in percent.",
                "Outcome indicators (the registry's `outcomes`, values in the catalogue unit): a subject's baseline is "
                    + "its earliest value in [enrolment − 30 d, enrolment + 14 d]; its latest is its latest value in "
                    + "[enrolment + 60 d, T]. `n_paired`: subjects with both. `mean_baseline`, `mean_latest`: means over "
                    + "them; `mean_change`: mean of latest − baseline, with its 95% confidence interval (Student t, "
                    + "n_paired − 1 degrees of freedom; none under 2 subjects). `in_target`, `pct_in_target`: paired "
                    + "subjects whose latest value is in the indicator's target range (bounds included), and their "
                    + "share. `improved`, `improved_pct`: those whose change is strictly in the good direction (none "
                    + "for indicators where stable is the goal).",
                windows.isEmpty ? "Every outcome indicator of this report uses these windows."
                    : "Windows set by the catalogue for some indicators: " + windows.joined(separator: "; ") + ".",
                "Events (the registry's event `outcomes`): `events` counts the events of enrolled subjects inside "
                    + "their follow-up (enrolment to T or withdrawal, both included) and the period. `patient_days`: "
                    + "the days of follow-up inside the period, summed over enrolled subjects; `subjects_followed`: the "
                    + "enrolled subjects with follow-up inside the period. `rate_per_100_patient_months` = 100 × events "
                    + "/ (patient_days / 30.4375).",
                "Data completeness: `refused` counts the messages refused (kept in quarantine) by the reason code of "
                    + "the wire contract, `refused_total` their sum. `unenrolled_subjects`: pseudonyms with data at or "
                    + "before T but no enrolment at or before T; their data is left out of every outcome.",
                "Programme figures pool the subjects of the programme's selected pilots: counts are sums, means and "
                    + "shares are computed over all their subjects (never averaged from pilot means). A programme's "
                    + "rate for an event indicator stands on the pilots that report it.",
                "A figure with no subject to compute it on (`-`, JSON `null`) is never shown as 0. Values are rounded "
                    + "for reading in Markdown and HTML; JSON, CSV and FHIR carry them unrounded.",
            ]),
            ("Disclosure control (k = \(k))", [
                "Small-cell suppression was applied once to all figures before any format was written, with k = \(k). "
                    + "A count between 1 and \(k - 1) is shown as `\(smallMark)`. A mean, share, change, interval, rate, "
                    + "patient-days or adherence computed from 1 to \(k - 1) subjects is withheld (`w`), and so is a count "
                    + "of an attribute among them (in target, improved, events), zero included.",
                "Figures that can be computed from others go with them: the enrolment percentage with `enrolled`; a "
                    + "share with its numerator and `n_paired`; a rate with its events and patient-days; an outcome's "
                    + "means, change and interval together.",
                "Secondary suppression (`s`): wherever figures are tied by a sum, no suppressed one is left as the "
                    + "only unknown. The ties are: each programme count and patient-days is the sum of its pilots'; "
                    + "enrolled = withdrawn + in_follow_up and refused_total = the sum over reasons, in every pilot and "
                    + "programme; a pooled mean or adherence is a weighted mean of the pilots'. A tie with one hidden "
                    + "figure gets another hidden (preferably the programme's pooled figure), and so does a tie whose "
                    + "hidden counts could add up to the shown total one way only; all sums are then solved together "
                    + "and more figures hidden until none of the suppressed ones is determined. `n_paired`, `in_target`, "
                    + "`improved` and `subjects_followed` are bounded by `enrolled` but never give its value.",
                "Enrolments by milestone dates and the points of the enrolment chart are cumulative counts: a "
                    + "milestone count or chart point is published only where it differs from the previous published "
                    + "one, and from `enrolled`, by 0 or at least \(k), so that no small number of enrolments between "
                    + "two dates can be worked out. A milestone's state is always shown.",
                "Zero (`0`), missing (`-`, JSON `null`) and suppressed (`\(smallMark)`, `w`, `s`; JSON "
                    + "`{\"suppressed\": reason}`; CSV column `suppressed`) stay distinct in every format.",
            ]),
            ("Provenance", [
                "pilotwatch \(r.provenance.pilotwatchVersion); database fingerprint \(r.provenance.databaseFingerprint): "
                    + "SHA-256 of a canonical dump, in key order, of the store's message counters, subjects, "
                    + "first and last values per subject and indicator, and events (not of the file's bytes, which "
                    + "change with SQLite's page layout); generated at \(r.provenance.generatedAt).",
            ]),
        ]
    }
}

// MARK: - JSON

extension JSONWriter {
    /// A figure: a number, `null` when missing, `{"suppressed": reason, "shown_as": "<11"}`.
    mutating func cell(_ k: String, _ c: Cell, threshold: Int) {
        switch c.state {
        case .value(let v):
            if c.kind == .statistic { field(k, v) } else { field(k, Int(v.rounded())) }
        case .missing:
            field(k, nil as Double?)
        case .suppressed(let why):
            objectField(k) { o in
                o.field("suppressed", why.rawValue)
                o.field("shown_as", why == .smallCount ? "<\(threshold)" : "withheld")
            }
        }
    }
}

extension DisclosedReport {
    /// The whole report as nested objects: `programmes[]`, each with its `pooled` figures and
    /// its `pilots[]`, then `methods` and `provenance`. Values unrounded.
    public func json(pretty: Bool = true) -> String {
        var w = JSONWriter(pretty: pretty)
        let r = report
        w.object { o in
            o.field("report", "pilotwatch outcome summary")
            o.field("metrics_version", 1)
            o.field("as_of", r.asOf.description)
            o.objectField("period") { p in
                p.field("from", r.periodStart?.description)
                p.field("to", r.asOf.description)
            }
            o.objectField("selection") { s in
                s.field("pilots", strings: r.selection.pilots)
                s.field("programme", r.selection.programme)
                s.field("funder", r.selection.funder)
                s.field("call", r.selection.call)
            }
            o.objectField("disclosure") { d in
                d.field("k", k)
                for why in Suppression.allCases { d.field("suppressed_" + why.rawValue, suppressedCounts[why] ?? 0) }
            }
            o.arrayField("programmes") { a in
                for p in r.programmes {
                    a.object { po in
                        po.field("programme", p.id)
                        po.field("pilots", strings: p.pilots)
                        po.objectField("pooled") { scopeJSON(&$0, p) }
                        po.arrayField("pilot_reports") { pa in
                            for s in r.pilots(of: p.id) { pa.object { scopeJSON(&$0, s) } }
                        }
                    }
                }
            }
            o.objectField("methods") { m in
                m.field("k", k)
                m.arrayField("sections") { a in
                    for section in methods {
                        a.object { so in
                            so.field("title", section.title)
                            so.field("paragraphs", strings: section.paragraphs)
                        }
                    }
                }
            }
            o.objectField("provenance") { p in
                p.field("pilotwatch_version", r.provenance.pilotwatchVersion)
                p.field("database_fingerprint", r.provenance.databaseFingerprint)
                p.field("generated_at", r.provenance.generatedAt.description)
            }
        }
        return w.text + "\n"
    }

    private func scopeJSON(_ o: inout JSONWriter, _ s: ExportScope) {
        let k = self.k
        func cell(_ w: inout JSONWriter, _ name: String, _ key: FigureKey) { w.cell(name, s.figures[key] ?? .statistic(nil), threshold: k) }
        if let p = s.pilot {
            o.registryFacts(p)
        }
        if let source = s.source {
            o.objectField("source") { so in
                so.field("kind", source.archived ? "archive" : "snapshot")
                so.field("as_of", source.asOf?.description)
                so.field("revision", Int(source.revision))
                so.field("min_cell", source.minCell)
                so.field("stale", source.stale)
            }
        }
        if !s.partsNotGivenBy.isEmpty { o.field("parts_not_given_by", strings: s.partsNotGivenBy) }
        o.objectField("period") { p in
            p.field("from", s.periodStart?.description)
            p.field("to", report.asOf.description)
        }
        o.objectField("enrolment") { e in
            cell(&e, "enrolled", FigureKey(.enrolled))
            cell(&e, "enrolment_target", FigureKey(.enrolmentTarget))
            cell(&e, "enrolment_pct", FigureKey(.enrolmentPct))
            if let onTrack = s.onTrack { e.field("on_track", onTrack) }
            cell(&e, "withdrawn", FigureKey(.withdrawn))
            cell(&e, "in_follow_up", FigureKey(.inFollowUp))
            cell(&e, "transmission_adherence", FigureKey(.transmissionAdherence))
            if s.level == .pilot {
                e.arrayField("milestones") { a in
                    for m in s.milestones {
                        a.object { mo in
                            mo.field("date", m.date.description)
                            mo.field("target", m.target)
                            cell(&mo, "enrolled", FigureKey(.milestoneEnrolled, m.date.description))
                            mo.field("state", m.state.rawValue)
                        }
                    }
                }
                e.arrayField("published_cumulative_enrolment") { a in
                    for p in s.enrolmentSeries {
                        a.object { po in
                            po.field("date", p.day.description)
                            po.field("enrolled", p.enrolled)
                        }
                    }
                }
            }
        }
        o.arrayField("outcomes") { a in
            for i in s.outcomes {
                a.object { io in
                    io.field("indicator", i.code)
                    io.field("name", i.name)
                    io.field("unit", i.unit)
                    io.field("direction", i.direction.rawValue)
                    cell(&io, "n_paired", FigureKey(.nPaired, i.code))
                    cell(&io, "mean_baseline", FigureKey(.meanBaseline, i.code))
                    cell(&io, "mean_latest", FigureKey(.meanLatest, i.code))
                    cell(&io, "mean_change", FigureKey(.meanChange, i.code))
                    io.objectField("change_ci95") { ci in
                        cell(&ci, "lower", FigureKey(.changeCI95Lower, i.code))
                        cell(&ci, "upper", FigureKey(.changeCI95Upper, i.code))
                    }
                    cell(&io, "in_target", FigureKey(.inTarget, i.code))
                    cell(&io, "pct_in_target", FigureKey(.pctInTarget, i.code))
                    cell(&io, "improved", FigureKey(.improved, i.code))
                    cell(&io, "improved_pct", FigureKey(.improvedPct, i.code))
                }
            }
        }
        o.objectField("events") { ev in
            if !s.events.isEmpty {
                cell(&ev, "subjects_followed", FigureKey(.subjectsFollowed))
                cell(&ev, "patient_days", FigureKey(.patientDays))
            }
            ev.arrayField("indicators") { a in
                for i in s.events {
                    a.object { io in
                        io.field("indicator", i.code)
                        io.field("name", i.name)
                        cell(&io, "events", FigureKey(.events, i.code))
                        cell(&io, "rate_per_100_patient_months", FigureKey(.ratePer100PatientMonths, i.code))
                    }
                }
            }
        }
        o.objectField("data_completeness") { d in
            cell(&d, "refused_total", FigureKey(.refusedTotal))
            d.objectField("refused_by_reason") { rr in
                for reason in s.reasons { cell(&rr, reason.rawValue, FigureKey(.refused, reason.rawValue)) }
            }
            cell(&d, "unenrolled_subjects", FigureKey(.unenrolledSubjects))
        }
    }
}

// MARK: - CSV

extension DisclosedReport {
    public static let csvHeader = ["pilot", "programme", "metric", "indicator", "value", "n", "suppressed"]

    /// One tidy row per pilot (or pooled programme, `pilot` empty) and figure: `value` unrounded
    /// (`<k` for a small count, empty when missing or withheld), `n` the subjects it stands on,
    /// `suppressed` `no` or the reason (`small_count`, `few_subjects`, `secondary`). `indicator`
    /// holds the indicator code, the refusal reason or the milestone date.
    public func csv() -> String {
        var lines = [CSV.line(DisclosedReport.csvHeader)]
        for s in scopesInOrder {
            let pilot = s.level == .pilot ? s.id : ""
            for key in s.figures.keys.sorted() {
                guard let c = s.figures[key] else { continue }
                let n = ExportScope.basis(of: key).flatMap { s.figures[$0] }.map(csvValue) ?? ""
                lines.append(CSV.line([pilot, s.programme, key.metric.rawValue, key.qualifier ?? "", csvValue(c), n,
                                       c.suppression?.rawValue ?? "no"]))
                if key.metric == .enrolmentPct, let onTrack = s.onTrack {
                    lines.append(CSV.line([pilot, s.programme, "on_track", "", onTrack ? "true" : "false", "", "no"]))
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func csvValue(_ c: Cell) -> String {
        switch c.state {
        case .value(let v): return c.kind == .statistic ? JSONWriter.number(v) : String(Int64(v.rounded()))
        case .missing: return ""
        case .suppressed(.smallCount): return smallMark
        case .suppressed: return ""
        }
    }
}
