import PilotwatchCore
import PilotwatchStore

// The three renderers of each dashboard. JSON and CSV carry values unrounded under the metric
// names of `metrics.md`; tables round for reading and fit an 80-column terminal.

// MARK: - Shared pieces

extension JSONWriter {
    /// The subject and follow-up metrics of a pilot, under their `metrics.md` names.
    ///
    /// For a pilot that reports aggregates, a figure its snapshot does not give exactly is written
    /// as the snapshot carries it (`{"lt": k}`, `{"value", "held_since"}`, or null).
    mutating func pilotFigures(_ f: PilotFigures, snapshot: SnapshotSource? = nil) {
        func put(_ key: String, _ write: (inout JSONWriter) -> Void) {
            if let mark = snapshot?[key] {
                if key == "enrolment_rate_30d", case .held(let v, let since) = mark {
                    SnapshotFigure.held(v * 30 / Metrics.rateWindowDays, since: since).write(&self, key)
                } else if ["enrolment_pct", "projected_target_date", "on_track", "transmission_adherence"].contains(key) {
                    field(key, nil as Double?)
                } else {
                    mark.write(&self, key)
                }
            } else {
                write(&self)
            }
        }
        put("enrolled") { $0.field("enrolled", f.enrolled) }
        put("withdrawn") { $0.field("withdrawn", f.withdrawn) }
        put("in_follow_up") { $0.field("in_follow_up", f.inFollowUp) }
        field("enrolment_target", f.enrolmentTarget)
        put("enrolment_pct") { $0.field("enrolment_pct", f.enrolmentPct) }
        put("enrolment_rate_30d") { $0.field("enrolment_rate_30d", f.enrolmentRate30d) }
        put("projected_target_date") { $0.field("projected_target_date", f.projectedTargetDate?.description) }
        put("on_track") { $0.field("on_track", f.onTrack) }
        put("active_7d") { $0.field("active_7d", f.active7d) }
        put("transmission_adherence") { $0.field("transmission_adherence", f.transmissionAdherence) }
        put("unenrolled_subjects") { $0.field("unenrolled_subjects", f.unenrolledSubjects) }
        field("last_observation_at", f.lastObservationAt?.description)
        if let snapshot {
            objectField("snapshot") { o in
                o.field("as_of", snapshot.asOf?.description)
                o.field("revision", Int(snapshot.revision))
                o.field("min_cell", snapshot.minCell)
                o.field("stale", snapshot.stale)
                o.field("archived", snapshot.archived)
            }
        }
    }

    mutating func milestone(_ m: MilestoneProgress) {
        field("date", m.milestone.date.description)
        field("target", m.milestone.enrolled)
        field("enrolled", m.enrolled)
        field("state", m.state.rawValue)
    }

    /// The last-7-days message counters, the next milestone and the attention flags.
    mutating func pilotHealth(_ s: PilotStatus) {
        if let m = s.nextMilestone { objectField("next_milestone") { $0.milestone(m) } } else { field("next_milestone", nil as String?) }
        field("messages_7d", s.lastWeek.received)
        field("refusals_7d", s.lastWeek.refused)
        field("refusal_rate_7d", s.refusalRate7d)
        field("flags", strings: s.flags.map(\.rawValue))
    }
}

/// A CSV cell for a number: unrounded, empty for nil.
private func csvNumber(_ v: Double?) -> String {
    let s = JSONWriter.number(v)
    return s == "null" ? "" : s
}

private func csvInt(_ v: Int?) -> String { v.map(String.init) ?? "" }

extension SnapshotFigure {
    /// As a table or CSV shows it: `<11`, a held value with `*`, `—` for withheld.
    func display(_ value: (Double) -> String) -> String {
        switch self {
        case .value(let v): return value(v)
        case .lessThan(let k): return "<\(k)"
        case .held(let v, _): return value(v) + "*"
        case .withheld: return "—"
        }
    }
}

extension PilotStatus {
    /// A figure as the table and CSV show it: its mark when the snapshot has one, else `shown`.
    func shown(_ key: String, _ shown: String, integer: Bool = true) -> String {
        guard let mark = snapshot?[key] else { return shown }
        if ["enrolment_pct", "projected_target_date", "on_track", "transmission_adherence"].contains(key) { return "—" }
        return mark.display { integer ? String(Int($0)) : Graphics.number($0) }
    }
}

/// The header lines every table view starts with.
private func heading(_ title: String, asOf t: Instant, colour: Bool) -> String {
    Graphics.Colour.bold.paint(title, colour) + "  " + Graphics.Colour.dim.paint("as of \(Graphics.minute(t)) UTC", colour)
}

// MARK: - status

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

// MARK: - pilot

extension PilotBoard {
    /// One pilot object: registry facts, the metrics, then `milestones`, `weekly`, `outcomes`,
    /// `events`, `devices` and `quality`.
    public func json(pretty: Bool = false) -> String {
        var w = JSONWriter(pretty: pretty)
        w.object { o in
            o.field("as_of", asOf.description)
            if let ingest { ingest.write(into: &o) }
            o.registryFacts(pilot)
            o.field("period_start", since?.description)
            o.pilotFigures(figures, snapshot: status.snapshot)
            o.pilotHealth(status)
            writeMilestones(&o)
            writeWeekly(&o)
            writeOutcomes(&o)
            writeEvents(&o)
            writeDevices(&o)
            writeQuality(&o)
        }
        return w.text
    }

    /// `milestones`: each with its target, the enrolled count and its state.
    func writeMilestones(_ o: inout JSONWriter) {
        o.arrayField("milestones") { a in
            for m in milestones {
                a.object { mo in
                    if let mark = snapshotMarks["milestone@\(m.milestone.date)"] {
                        // From a snapshot that gives this count as {lt}, held or withheld.
                        mo.field("date", m.milestone.date.description)
                        mo.field("target", m.milestone.enrolled)
                        mark.write(&mo, "enrolled")
                        mo.field("state", nil as String?)
                    } else {
                        mo.milestone(m)
                    }
                }
            }
        }
    }

    /// `weekly`: enrolments (null when a snapshot withholds them) and adherence per week.
    func writeWeekly(_ o: inout JSONWriter) {
        let weeklyWithheld = snapshotMarks["weekly"] != nil
        o.arrayField("weekly") { a in
            for p in weekly {
                a.object { po in
                    po.field("week_ending", p.weekEnding.description)
                    po.field("enrolments", weeklyWithheld ? nil : p.enrolments)
                    po.field("transmission_adherence", p.transmissionAdherence)
                }
            }
        }
    }

    /// `outcomes`: per measured indicator, baseline against latest, with a snapshot's marks.
    func writeOutcomes(_ o: inout JSONWriter) {
        o.arrayField("outcomes") { a in
            for (indicator, f) in outcomes {
                a.object { po in
                    po.field("indicator", f.indicator)
                    po.field("unit", indicator.unit)
                    po.field("direction", indicator.direction.rawValue)
                    if let mark = snapshotMarks["outcomes.\(f.indicator).n_paired"] { mark.write(&po, "n_paired") } else { po.field("n_paired", f.nPaired) }
                    po.field("mean_baseline", f.meanBaseline)
                    po.field("mean_latest", f.meanLatest)
                    po.field("mean_change", f.meanChange)
                    if let ci = f.changeCI95 {
                        po.arrayField("change_ci95") { $0.element(ci.lower); $0.element(ci.upper) }
                    } else {
                        po.field("change_ci95", nil as Double?)
                    }
                    po.field("pct_in_target", f.pctInTarget)
                    po.field("improved_pct", f.improvedPct)
                    // From a snapshot that does not give these figures exactly: how they are marked.
                    if let mark = snapshotMarks["outcomes.\(f.indicator)"] {
                        // Held: the figures above are those published at that day end.
                        if case .held(_, let since) = mark { po.field("held_since", since.description) } else { mark.write(&po, "snapshot_withheld") }
                    }
                }
            }
        }
    }

    /// `events`: counts, patient-days and rates per event indicator.
    func writeEvents(_ o: inout JSONWriter) {
        o.arrayField("events") { a in
            for e in events {
                a.object { po in
                    po.field("indicator", e.indicator)
                    if let mark = snapshotMarks["events.\(e.indicator).events"] { mark.write(&po, "events") } else { po.field("events", e.events) }
                    if let mark = snapshotMarks["events.\(e.indicator).patient_days"] { mark.write(&po, "patient_days") } else { po.field("patient_days", e.patientDays) }
                    po.field("rate_per_100_patient_months", e.ratePer100PatientMonths)
                }
            }
        }
    }

    /// `devices`: every device seen, with its last status and counters.
    func writeDevices(_ o: inout JSONWriter) {
        o.arrayField("devices") { a in
            for h in devices {
                let d = h.device
                a.object { po in
                    po.field("device", d.code)
                    po.field("first_seen", d.firstSeen.description)
                    po.field("last_seen", d.lastSeen.description)
                    po.field("silent", h.silent)
                    po.field("status", d.statusState?.rawValue)
                    po.field("status_at", d.statusAt?.description)
                    po.field("battery_pct", d.batteryPct)
                    po.field("firmware", d.firmware)
                    po.field("messages", d.messages)
                    po.field("duplicates", d.duplicates)
                    po.field("refused", d.refused)
                    po.field("observations", d.observations)
                }
            }
        }
    }

    /// `quality`: the period's message counters and the subjects not enrolled.
    func writeQuality(_ o: inout JSONWriter) {
        o.objectField("quality") { q in
            let c = quality.period
            q.field("messages", c.received)
            q.field("accepted", c.accepted)
            q.field("refused", c.refused)
            q.objectField("refused_by_reason") { r in
                for (k, v) in c.refusedByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { r.field(k.rawValue, v) }
            }
            q.field("duplicate_messages", c.duplicate)
            q.field("duplicate_observations", c.duplicateObservations)
            q.field("unenrolled_subjects", quality.unenrolledSubjects.count)
            q.field("unenrolled_subject_codes", strings: quality.unenrolledSubjects)
        }
    }

    /// Long form: one `section,item,metric,value` row per number.
    public func csv() -> String {
        var lines = [CSV.line(["section", "item", "metric", "value"])]
        func add(_ section: String, _ item: String, _ metric: String, _ value: String) {
            lines.append(CSV.line([section, item, metric, value]))
        }
        let f = figures
        add("pilot", pilot.id, "as_of", asOf.description)
        add("pilot", pilot.id, "period_start", since?.description ?? "")
        // From a snapshot, a figure it does not give exactly shows its mark (<k, * held, — withheld).
        let m = status.shown
        add("pilot", pilot.id, "enrolled", m("enrolled", String(f.enrolled), true))
        add("pilot", pilot.id, "withdrawn", m("withdrawn", String(f.withdrawn), true))
        add("pilot", pilot.id, "in_follow_up", m("in_follow_up", String(f.inFollowUp), true))
        add("pilot", pilot.id, "enrolment_target", String(f.enrolmentTarget))
        add("pilot", pilot.id, "enrolment_pct", m("enrolment_pct", csvNumber(f.enrolmentPct), false))
        add("pilot", pilot.id, "enrolment_rate_30d", m("enrolment_rate_30d", csvNumber(f.enrolmentRate30d), false))
        add("pilot", pilot.id, "projected_target_date", m("projected_target_date", f.projectedTargetDate?.description ?? "", false))
        add("pilot", pilot.id, "on_track", m("on_track", f.onTrack ? "true" : "false", false))
        add("pilot", pilot.id, "active_7d", m("active_7d", String(f.active7d), true))
        add("pilot", pilot.id, "transmission_adherence", m("transmission_adherence", csvNumber(f.transmissionAdherence), false))
        add("pilot", pilot.id, "unenrolled_subjects", m("unenrolled_subjects", String(f.unenrolledSubjects), true))
        add("pilot", pilot.id, "last_observation_at", f.lastObservationAt?.description ?? "")
        add("pilot", pilot.id, "messages_7d", String(status.lastWeek.received))
        add("pilot", pilot.id, "refusals_7d", String(status.lastWeek.refused))
        add("pilot", pilot.id, "refusal_rate_7d", csvNumber(status.refusalRate7d))
        add("pilot", pilot.id, "flags", status.flags.map(\.rawValue).joined(separator: ";"))
        for m in milestones {
            add("milestone", m.milestone.date.description, "target", String(m.milestone.enrolled))
            add("milestone", m.milestone.date.description, "enrolled", String(m.enrolled))
            add("milestone", m.milestone.date.description, "state", m.state.rawValue)
        }
        for p in weekly {
            add("weekly", p.weekEnding.description, "enrolments", String(p.enrolments))
            add("weekly", p.weekEnding.description, "transmission_adherence", csvNumber(p.transmissionAdherence))
        }
        for (_, o) in outcomes {
            add("outcome", o.indicator, "n_paired", String(o.nPaired))
            add("outcome", o.indicator, "mean_baseline", csvNumber(o.meanBaseline))
            add("outcome", o.indicator, "mean_latest", csvNumber(o.meanLatest))
            add("outcome", o.indicator, "mean_change", csvNumber(o.meanChange))
            add("outcome", o.indicator, "change_ci95_lower", csvNumber(o.changeCI95?.lower))
            add("outcome", o.indicator, "change_ci95_upper", csvNumber(o.changeCI95?.upper))
            add("outcome", o.indicator, "pct_in_target", csvNumber(o.pctInTarget))
            add("outcome", o.indicator, "improved_pct", csvNumber(o.improvedPct))
        }
        for e in events {
            add("event", e.indicator, "events", snapshotMarks["events.\(e.indicator).events"]?.display { String(Int($0)) } ?? String(e.events))
            add("event", e.indicator, "patient_days",
                snapshotMarks["events.\(e.indicator).patient_days"]?.display { csvNumber($0) } ?? csvNumber(e.patientDays))
            add("event", e.indicator, "rate_per_100_patient_months", csvNumber(e.ratePer100PatientMonths))
        }
        for h in devices {
            let d = h.device
            add("device", d.code, "last_seen", d.lastSeen.description)
            add("device", d.code, "silent", h.silent ? "true" : "false")
            add("device", d.code, "status", d.statusState?.rawValue ?? "")
            add("device", d.code, "battery_pct", csvNumber(d.batteryPct))
            add("device", d.code, "messages", String(d.messages))
            add("device", d.code, "refused", String(d.refused))
        }
        let c = quality.period
        add("quality", pilot.id, "messages", String(c.received))
        add("quality", pilot.id, "refused", String(c.refused))
        for (k, v) in c.refusedByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            add("quality", k.rawValue, "refused", String(v))
        }
        add("quality", pilot.id, "duplicate_messages", String(c.duplicate))
        add("quality", pilot.id, "duplicate_observations", String(c.duplicateObservations))
        add("quality", pilot.id, "unenrolled_subjects", String(quality.unenrolledSubjects.count))
        return lines.joined(separator: "\n")
    }

    /// The pilot for a terminal, in sections: the heading, then enrolment, activity, outcomes,
    /// events, devices and data quality, a blank line between two.
    public func table(colour: Bool) -> String {
        let sections = [tableHeading(colour: colour), enrolmentSection(colour: colour), activitySection(colour: colour),
                        outcomesSection(colour: colour), eventsSection(colour: colour), devicesSection(colour: colour),
                        qualitySection(colour: colour)]
        return Array(sections.joined(separator: [""])).joined(separator: "\n")
    }

    /// The ingest line, the pilot's registry facts, the time of the view and, for a pilot that
    /// reports aggregates, where its figures come from.
    func tableHeading(colour: Bool) -> [String] {
        let dim = Graphics.Colour.dim, bold = Graphics.Colour.bold
        var out = ingest.map { [$0.line(now: asOf, colour: colour)] } ?? []
        out.append(bold.paint(Graphics.truncate(pilot.id, 40), colour) + "  " + Graphics.truncate(pilot.name, 78 - min(40, pilot.id.count)))
        out += Graphics.wrap(["programme \(pilot.programme)", "call \(pilot.call)", "lead \(pilot.lead)"])
        out += Graphics.wrap(["funders \(pilot.funders.isEmpty ? "-" : pilot.funders.joined(separator: ", "))",
                              "runs \(pilot.start) to \(pilot.end)"])
        out.append(dim.paint("as of \(Graphics.minute(asOf)) UTC"
                             + (since.map { " · events and quality since \(Graphics.minute($0))" } ?? ""), colour))
        if let source = status.snapshot {
            let origin = source.archived ? "ended: from its archived final figures"
                : "from its site's day-end snapshot (revision \(source.revision), min_cell \(source.minCell))" + (source.stale ? ", stale" : "")
            out.append(dim.paint(origin + " · <k below min_cell, * held since an earlier day end, — withheld", colour))
        }
        return out
    }

    /// Enrolment: the bar towards the target, the projection and the milestones.
    func enrolmentSection(colour: Bool) -> [String] {
        let f = figures
        let m = status.shown
        var out = [Graphics.Colour.bold.paint("Enrolment", colour)]
        let next = status.nextMilestone
        let bar = Graphics.bar(enrolled: f.enrolled, target: f.enrolmentTarget, milestone: next?.milestone.enrolled, width: 20)
        out += Graphics.wrap(["\(bar)  \(m("enrolled", String(f.enrolled), true)) of \(f.enrolmentTarget) (\(m("enrolment_pct", Graphics.percent1(f.enrolmentPct), false)))",
                              "withdrawn \(m("withdrawn", String(f.withdrawn), true))", "in follow-up \(m("in_follow_up", String(f.inFollowUp), true))"], indent: "  ")
        let projection: String
        if f.enrolled >= f.enrolmentTarget {
            projection = "target reached"
        } else if let d = f.projectedTargetDate {
            projection = "target projected for \(d) (end \(pilot.end))"
        } else {
            projection = "no projection (no enrolment in the last 30 days)"
        }
        let track = status.snapshot?["on_track"] != nil ? "on track —"
            : f.onTrack ? Graphics.Colour.green.paint("on track", colour) : Graphics.Colour.red.paint("behind", colour)
        out += Graphics.wrap(["\(m("enrolment_rate_30d", Graphics.number(f.enrolmentRate30d), false)) enrolled in the last 30 days",
                              status.snapshot?["projected_target_date"] != nil ? "projection —" : projection, track],
                             indent: "  ")
        out += milestoneLines(colour: colour)
        return out
    }

    /// The registry's milestones, each met, missed or pending.
    func milestoneLines(colour: Bool) -> [String] {
        guard !milestones.isEmpty else { return ["  milestones: none in the registry"] }
        return Graphics.wrap(milestones.map { m in
            let state: String
            switch m.state {
            case .met: state = Graphics.Colour.green.paint("met", colour)
            case .missed: state = Graphics.Colour.red.paint("missed", colour)
            case .pending: state = "pending"
            }
            let n = snapshotMarks["milestone@\(m.milestone.date)"]?.display { String(Int($0)) } ?? String(m.enrolled)
            let count = m.state == .pending ? "\(n) so far" : "\(n) by then"
            return "\(m.milestone.date) \(m.milestone.enrolled): \(state) (\(count))"
        }, separator: " · ", indent: "  milestones ")
    }

    /// Activity: who transmits, the last data and messages, the weekly sparklines and the
    /// conditions that need attention.
    func activitySection(colour: Bool) -> [String] {
        let f = figures
        let m = status.shown
        let dim = Graphics.Colour.dim
        var out = [Graphics.Colour.bold.paint("Activity", colour)]
        out += Graphics.wrap(["active in the last 7 days \(m("active_7d", String(f.active7d), true)) of \(m("in_follow_up", String(f.inFollowUp), true))",
                              "transmission adherence \(m("transmission_adherence", Graphics.percent1(f.transmissionAdherence), false))"], indent: "  ")
        let last = f.lastObservationAt.map { "last data \(Graphics.ago($0, now: asOf)) ago (\(Graphics.minute($0)))" } ?? "no data yet"
        out += Graphics.wrap([last,
                              "messages 7d \(status.lastWeek.received), refused \(status.lastWeek.refused)"
                                + (status.refusalRate7d.map { " (\(Graphics.percent1($0)))" } ?? "")], indent: "  ")
        if !weekly.isEmpty {
            let maxEnrol = weekly.map(\.enrolments).max() ?? 0
            let first = weekly.first.map { $0.weekEnding.advanced(by: -6).description } ?? ""
            out.append("  weekly, \(weekly.count) weeks from \(first) to \(weekly.last?.weekEnding.description ?? "")")
            out.append("    enrolments  " + Graphics.sparkline(weekly.map { Double($0.enrolments) }, max: Double(maxEnrol))
                       + dim.paint("  0..\(maxEnrol) a week", colour))
            out.append("    adherence   " + Graphics.sparkline(weekly.map(\.transmissionAdherence), max: 100)
                       + dim.paint("  0..100%, 28-day window at each week's end", colour))
        }
        if !status.flags.isEmpty {
            out.append("  " + Graphics.Colour.yellow.paint("needs attention:", colour))
            for c in status.conditions {
                out.append(Graphics.Colour.yellow.paint("    \(c.rule.letter) \(Graphics.truncate(c.message, Graphics.width - 6))", colour))
            }
        }
        return out
    }

    /// Outcomes: per measured indicator, baseline against latest.
    func outcomesSection(colour: Bool) -> [String] {
        var out = [Graphics.Colour.bold.paint("Outcomes", colour)
                   + Graphics.Colour.dim.paint("  baseline near enrolment, latest after follow-up", colour)]
        guard !outcomes.isEmpty else { return out + ["  no measured outcome in the registry"] }
        // Within 80 columns up to a 21-character label, 5-digit counts and values.
        var t = TextTable(["indicator", "n", "baseline", "latest", "change ±95% CI", "in target", "improved"],
                          rightAligned: [1, 2, 3, 4, 5, 6], gap: 1, labelGap: 2)
        for (indicator, o) in outcomes {
            var change = Graphics.signed(o.meanChange)
            if let ci = o.changeCI95 { change += " ±" + Graphics.number((ci.upper - ci.lower) / 2) }
            let n = snapshotMarks["outcomes.\(indicator.code).n_paired"]?.display { String(Int($0)) } ?? String(o.nPaired)
            let held: Bool
            if case .held = snapshotMarks["outcomes.\(indicator.code)"] { held = true } else { held = false }
            if held { change += "*" }
            t.row([Graphics.truncate("\(indicator.code) (\(indicator.unit))", 21), n,
                   Graphics.number(o.meanBaseline), Graphics.number(o.meanLatest), change,
                   Graphics.percent(o.pctInTarget), Graphics.percent(o.improvedPct)])
        }
        out += t.render().split(separator: "\n").map { "  " + $0 }
        return out
    }

    /// Events during follow-up, as rates per 100 patient-months.
    func eventsSection(colour: Bool) -> [String] {
        var out = [Graphics.Colour.bold.paint("Events", colour)
                   + Graphics.Colour.dim.paint("  during follow-up" + (since == nil ? "" : ", in the period"), colour)]
        guard !events.isEmpty else { return out + ["  no event indicator"] }
        var t = TextTable(["indicator", "events", "per 100 patient-months", "patient-days"], rightAligned: [1, 2, 3])
        for e in events {
            // From a snapshot: a count given as {lt} and held patient-days keep their marks.
            t.row([Graphics.truncate(e.indicator, 30),
                   snapshotMarks["events.\(e.indicator).events"]?.display { String(Int($0)) } ?? String(e.events),
                   Graphics.number(e.ratePer100PatientMonths),
                   snapshotMarks["events.\(e.indicator).patient_days"]?.display { Graphics.number($0) } ?? Graphics.number(e.patientDays)])
        }
        out += t.render().split(separator: "\n").map { "  " + $0 }
        return out
    }

    /// Devices: how many are silent or low on battery, and the ten quietest.
    func devicesSection(colour: Bool) -> [String] {
        let silent = devices.filter(\.silent)
        let lowBattery = devices.filter { ($0.device.batteryPct ?? 100) < 20 }
        var out = [Graphics.Colour.bold.paint("Devices", colour) + "  \(devices.count) seen, \(silent.count) silent >48h, \(lowBattery.count) battery <20%"]
        guard !devices.isEmpty else { return out }
        let shown = devices.sorted { ($0.device.lastSeen, $0.device.code) < ($1.device.lastSeen, $1.device.code) }.prefix(10)
        var t = TextTable(["device", "last seen", "silent", "status", "battery", "messages", "refused"],
                          rightAligned: [4, 5, 6])
        for h in shown {
            let d = h.device
            t.row([Graphics.truncate(d.code, 18), Graphics.minute(d.lastSeen),
                   h.silent ? Graphics.Colour.yellow.paint(Graphics.ago(d.lastSeen, now: asOf), colour) : "no",
                   d.statusState?.rawValue ?? "-", Graphics.percent(d.batteryPct), String(d.messages), String(d.refused)])
        }
        out += t.render().split(separator: "\n").map { "  " + $0 }
        if devices.count > shown.count {
            out.append(Graphics.Colour.dim.paint("  (the \(shown.count) quietest of \(devices.count); --format json lists all)", colour))
        }
        return out
    }

    /// Data quality: messages refused and duplicated, and the subjects not enrolled.
    func qualitySection(colour: Bool) -> [String] {
        let c = quality.period
        var out = [Graphics.Colour.bold.paint("Data quality", colour)
                   + Graphics.Colour.dim.paint(since == nil ? "  whole life" : "  in the period", colour)]
        out += Graphics.wrap(["messages \(c.received)", "refused \(c.refused)", "duplicate messages \(c.duplicate)",
                              "duplicate observations \(c.duplicateObservations)"], indent: "  ")
        if !c.refusedByReason.isEmpty {
            out += Graphics.wrap(c.refusedByReason.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" },
                                 separator: ", ", indent: "  refused by reason: ")
        }
        let u = quality.unenrolledSubjects
        if u.isEmpty {
            out.append("  unenrolled subjects: none")
        } else {
            out += Graphics.wrap(Array(u.prefix(12)) + (u.count > 12 ? ["… (\(u.count) in all)"] : []), separator: ", ",
                                 indent: "  unenrolled subjects (\(u.count)): ")
        }
        return out
    }
}

// MARK: - indicators

/// `pilotwatch indicators`: the catalogue as staff need it.
public struct IndicatorCatalogueView: Sendable {
    public var indicators: [Indicator]
    public init(indicators: [Indicator]) { self.indicators = indicators }

    /// An array of indicator objects.
    public func json(pretty: Bool = false) -> String {
        var w = JSONWriter(pretty: pretty)
        w.array { a in
            for i in indicators {
                a.object { o in
                    o.field("code", i.code)
                    o.field("name", i.name)
                    o.field("loinc", i.loinc)
                    o.field("kind", i.kind.rawValue)
                    o.field("level", i.level.rawValue)
                    o.field("unit", i.unit)
                    if let r = i.range {
                        o.objectField("range") { $0.field("min", r.min); $0.field("max", r.max) }
                    } else {
                        o.field("range", nil as String?)
                    }
                    o.field("direction", i.direction.rawValue)
                    if let r = i.target {
                        o.objectField("target") { $0.field("min", r.min); $0.field("max", r.max) }
                    } else {
                        o.field("target", nil as String?)
                    }
                    o.field("programmes", strings: i.programmes)
                    o.objectField("windows") { ww in
                        ww.field("baseline_before_days", i.windows.baselineBeforeDays)
                        ww.field("baseline_after_days", i.windows.baselineAfterDays)
                        ww.field("follow_up_days", i.windows.followUpDays)
                    }
                }
            }
        }
        return w.text
    }

    public func csv() -> String {
        var lines = [CSV.line(["code", "name", "loinc", "kind", "level", "unit", "range_min", "range_max", "direction",
                               "target_min", "target_max", "programmes"])]
        for i in indicators {
            lines.append(CSV.line([i.code, i.name, i.loinc ?? "", i.kind.rawValue, i.level.rawValue, i.unit,
                                   csvNumber(i.range?.min), csvNumber(i.range?.max), i.direction.rawValue,
                                   csvNumber(i.target?.min), csvNumber(i.target?.max),
                                   i.programmes.joined(separator: ";")]))
        }
        return lines.joined(separator: "\n")
    }

    public func table(colour: Bool) -> String {
        let header = ["code", "name", "LOINC", "unit", "range", "better", "target"]
        let rows = indicators.map { i -> [String] in
            let better: String
            switch i.direction {
            case .higher: better = "higher"
            case .lower: better = "lower"
            case .stable: better = "stable"
            }
            return [i.code, i.name, i.loinc ?? "-", i.kind == .event ? "event" : i.unit,
                    i.range?.description ?? "-", better, i.target?.description ?? "-"]
        }
        if indicators.isEmpty { return "no indicators" }
        var others = 2 * (header.count - 1)
        for c in header.indices where c != 1 {
            others += rows.reduce(displayWidth(header[c])) { max($0, displayWidth($1[c])) }
        }
        let nameWidth = Graphics.width - others
        if rows.allSatisfy({ displayWidth($0[1]) <= nameWidth }) {
            var t = TextTable(header)
            for r in rows { t.row(r) }
            return t.render()
        }
        // Names too long for a column: each goes on its own line under its code.
        var t = TextTable(header.enumerated().filter { $0.offset != 1 }.map(\.element))
        for r in rows { t.row(r.enumerated().filter { $0.offset != 1 }.map(\.element)) }
        let lines = t.render().split(separator: "\n").map(String.init)
        var out = Array(lines.prefix(2))
        for (i, line) in lines.dropFirst(2).enumerated() {
            out.append(line)
            out.append(Graphics.Colour.dim.paint("  " + Graphics.truncate(rows[i][1], Graphics.width - 2), colour))
        }
        return out.joined(separator: "\n")
    }
}
