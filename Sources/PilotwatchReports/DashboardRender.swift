import PilotwatchCore
import PilotwatchStore

// The pieces the dashboards' renderers share (StatusBoardRender.swift, PilotBoardRender.swift,
// PilotBoardTable.swift, IndicatorCatalogueView.swift). JSON and CSV carry values unrounded
// under the metric names of `metrics.md`; tables round for reading and fit an 80-column terminal.

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
func csvNumber(_ v: Double?) -> String {
    let s = JSONWriter.number(v)
    return s == "null" ? "" : s
}

func csvInt(_ v: Int?) -> String { v.map(String.init) ?? "" }

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
func heading(_ title: String, asOf t: Instant, colour: Bool) -> String {
    Graphics.Colour.bold.paint(title, colour) + "  " + Graphics.Colour.dim.paint("as of \(Graphics.minute(t)) UTC", colour)
}
