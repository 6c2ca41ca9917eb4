import PilotwatchCore
import PilotwatchStore

// `pilotwatch pilot`: one pilot as JSON and CSV (the table is in PilotBoardTable.swift).

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
}
