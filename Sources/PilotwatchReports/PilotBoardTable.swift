import PilotwatchCore
import PilotwatchStore

extension PilotBoard {
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
