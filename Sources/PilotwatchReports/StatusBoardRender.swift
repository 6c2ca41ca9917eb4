import PilotwatchCore
import PilotwatchStore

// `pilotwatch status`: the cluster board as JSON, CSV and a table.

extension StatusBoard {
    /// `{"as_of", "programmes": [...], "pilots": [...]}`.
    public func json(pretty: Bool = false) -> String {
        var w = JSONWriter(pretty: pretty)
        w.object { o in
            o.field("as_of", asOf.description)
            if let ingest { ingest.write(into: &o) }
            o.arrayField("programmes") { a in
                for p in programmes {
                    a.object { po in
                        let f = p.figures
                        let withheld = !p.withheldFor.isEmpty
                        po.field("programme", p.programme)
                        po.field("pilots", f.pilots)
                        po.field("enrolled", withheld ? nil : f.enrolled)
                        po.field("withdrawn", withheld ? nil : f.withdrawn)
                        po.field("in_follow_up", withheld ? nil : f.inFollowUp)
                        po.field("enrolment_target", f.enrolmentTarget)
                        po.field("enrolment_pct", withheld ? nil : f.enrolmentPct)
                        po.field("enrolment_rate_30d", withheld ? nil : f.enrolmentRate30d)
                        po.field("active_7d", withheld ? nil : f.active7d)
                        po.field("transmission_adherence", withheld ? nil : f.transmissionAdherence)
                        po.field("unenrolled_subjects", withheld ? nil : f.unenrolledSubjects)
                        po.field("last_observation_at", withheld ? nil : f.lastObservationAt?.description)
                        if withheld { po.field("withheld_for", strings: p.withheldFor) }
                    }
                }
            }
            o.arrayField("pilots") { a in
                for s in pilots {
                    a.object { po in
                        po.field("pilot", s.pilot.id)
                        po.field("name", s.pilot.name)
                        po.field("programme", s.pilot.programme)
                        po.pilotFigures(s.figures, snapshot: s.snapshot)
                        po.pilotHealth(s)
                    }
                }
            }
        }
        return w.text
    }

    static let csvHeader = [
        "scope", "programme", "pilot", "pilots", "enrolled", "withdrawn", "in_follow_up", "enrolment_target",
        "enrolment_pct", "enrolment_rate_30d", "projected_target_date", "on_track", "active_7d",
        "transmission_adherence", "unenrolled_subjects", "last_observation_at", "messages_7d", "refusals_7d",
        "refusal_rate_7d", "flags",
    ]

    /// One row per programme (`scope` = `programme`) then one per pilot (`scope` = `pilot`).
    public func csv() -> String {
        var lines = [CSV.line(StatusBoard.csvHeader)]
        for p in programmes {
            let f = p.figures
            // Withheld (a pilot's snapshot lacks its part): empty cells.
            let w = !p.withheldFor.isEmpty
            func c(_ v: String) -> String { w ? "" : v }
            lines.append(CSV.line([
                "programme", p.programme, "", String(f.pilots), c(String(f.enrolled)), c(String(f.withdrawn)),
                c(String(f.inFollowUp)), String(f.enrolmentTarget), c(csvNumber(f.enrolmentPct)), c(csvNumber(f.enrolmentRate30d)),
                "", "", c(String(f.active7d)), c(csvNumber(f.transmissionAdherence)), c(String(f.unenrolledSubjects)),
                c(f.lastObservationAt?.description ?? ""), "", "", "", "",
            ]))
        }
        for s in pilots {
            let f = s.figures
            lines.append(CSV.line([
                "pilot", s.pilot.programme, s.pilot.id, "", s.shown("enrolled", String(f.enrolled)), s.shown("withdrawn", String(f.withdrawn)),
                s.shown("in_follow_up", String(f.inFollowUp)), String(f.enrolmentTarget), s.shown("enrolment_pct", csvNumber(f.enrolmentPct)),
                s.shown("enrolment_rate_30d", csvNumber(f.enrolmentRate30d)),
                s.shown("projected_target_date", f.projectedTargetDate?.description ?? ""), s.shown("on_track", f.onTrack ? "true" : "false"),
                s.shown("active_7d", String(f.active7d)),
                s.shown("transmission_adherence", csvNumber(f.transmissionAdherence)), s.shown("unenrolled_subjects", String(f.unenrolledSubjects)),
                f.lastObservationAt?.description ?? "",
                String(s.lastWeek.received), String(s.lastWeek.refused), csvNumber(s.refusalRate7d),
                s.flags.map(\.rawValue).joined(separator: ";"),
            ]))
        }
        return lines.joined(separator: "\n")
    }

    /// The overview for a terminal: programmes, then one row per pilot, then a legend.
    public func table(colour: Bool) -> String {
        var out = ingest.map { [$0.line(now: asOf, colour: colour)] } ?? []
        out += [heading("pilotwatch status", asOf: asOf, colour: colour), ""]

        var pt = TextTable(["programme", "pilots", "enrolled", "target", "%", "follow-up", "active 7d", "adherence"],
                           rightAligned: [1, 2, 3, 4, 5, 6, 7])
        var withheldNotes: [String] = []
        for p in programmes {
            let f = p.figures
            if !p.withheldFor.isEmpty {
                pt.row([Graphics.truncate(p.programme, 20), String(f.pilots), "—", String(f.enrolmentTarget), "—", "—", "—", "—"])
                withheldNotes.append("\(p.programme): pooled figures withheld, \(p.withheldFor.joined(separator: ", ")) reports withheld or held values")
                continue
            }
            pt.row([Graphics.truncate(p.programme, 20), String(f.pilots), String(f.enrolled), String(f.enrolmentTarget),
                    Graphics.percent(f.enrolmentPct), String(f.inFollowUp), String(f.active7d),
                    Graphics.percent(f.transmissionAdherence)])
        }
        out.append(pt.render())
        out += withheldNotes.map { Graphics.Colour.dim.paint($0, colour) }
        out.append("")

        if pilots.isEmpty {
            out.append("no pilots")
            return out.joined(separator: "\n")
        }
        let header = ["pilot", "enrolment", "track", "act7d", "adh", "last", "ref7d", "flags"]
        var rows: [[String]] = []
        for s in pilots {
            let f = s.figures
            let bar = Graphics.bar(enrolled: f.enrolled, target: f.enrolmentTarget,
                                   milestone: s.nextMilestone?.milestone.enrolled)
            let counts = "\(s.shown("enrolled", String(f.enrolled)))/\(f.enrolmentTarget)"
            let track = s.snapshot?["on_track"] != nil ? "—"
                : f.onTrack ? Graphics.Colour.green.paint("yes", colour) : Graphics.Colour.red.paint("no", colour)
            var flags = s.flags.map(\.letter).joined(separator: " ")
            if let source = s.snapshot { flags = (source.stale ? "Z " : "") + (source.archived ? "E " : "G ") + flags }
            rows.append([s.pilot.id, bar + " " + counts, track, s.shown("active_7d", String(f.active7d)),
                         s.shown("transmission_adherence", Graphics.percent(f.transmissionAdherence)),
                         Graphics.ago(f.lastObservationAt, now: asOf),
                         String(s.lastWeek.refused), Graphics.Colour.yellow.paint(flags.trimmingCharacters(in: .whitespaces), colour)])
        }
        var t = TextTable(header, rightAligned: [3, 4, 5, 6])
        // The pilot column takes what the others leave of 80 columns.
        var others = 2 * (header.count - 1)
        for c in 1..<header.count {
            others += rows.reduce(displayWidth(header[c])) { max($0, displayWidth($1[c])) }
        }
        let pilotWidth = max(8, Graphics.width - others)
        for r in rows { t.row([Graphics.truncate(r[0], pilotWidth)] + r.dropFirst()) }
        out.append(t.render())
        out.append("")
        let aggregates = pilots.contains { $0.snapshot.map { !$0.archived } ?? false }
        let archived = pilots.contains { $0.snapshot?.archived ?? false }
        out += Graphics.wrap(["bar: enrolled of target, │ next milestone"]
                             + (aggregates ? ["G from its site's day-end snapshot (<k small, * held, — withheld)", "Z snapshot stale"] : [])
                             + (archived ? ["E ended, from its archived final figures"] : [])
                             + AlertRule.pilotRules.map { "\($0.letter) \($0.meaning(thresholds))" }, separator: " · ")
            .map { Graphics.Colour.dim.paint($0, colour) }
        return out.joined(separator: "\n")
    }
}
