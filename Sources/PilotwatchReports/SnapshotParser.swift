import PilotwatchCore

/// Reads a snapshot message as strictly as an observation message (federation.md, "Snapshot
/// message"): one JSON object of at most 256 KiB, no field outside the list, finite numbers,
/// counts that are non-negative whole numbers, `{"lt": k}` only with the snapshot's own `min_cell`,
/// consistent counts (`in_follow_up = enrolled - withdrawn`, `active_7d ≤ in_follow_up`, a
/// non-negative `m2_change`...). A refusal is `schema`, with a detail naming the field.
///
/// ```swift
/// let snapshot = try SnapshotParser.parse(Array(payload))   // throws Refusal(.schema, "...")
/// ```
public enum SnapshotParser {
    public static func parse(_ bytes: [UInt8]) throws(Refusal) -> PilotSnapshot {
        guard bytes.count <= ContractLimits.maxPayloadBytes else {
            throw Refusal(.tooLarge, "payload: \(bytes.count) bytes is more than the limit of \(ContractLimits.maxPayloadBytes) bytes")
        }
        let root: JSONValue
        do { root = try JSON.parse(bytes) } catch { throw Refusal(.malformedJSON, "payload: \(error.description)") }
        var r = Reader(path: "")
        return try r.snapshot(root)
    }

    private struct Reader {
        var path: String
        var minCell = 0
        var asOf = Instant(millis: 0)

        func fail(_ field: String, _ problem: String) -> Refusal { Refusal(.schema, "\(field): \(problem)") }

        func object(_ v: JSONValue?, _ field: String, keys: Set<String>) throws(Refusal) -> JSONObject {
            guard let o = v?.object else { throw fail(field, v.map { "must be an object, not \($0.typeName)" } ?? "missing") }
            if let extra = o.keys.first(where: { !keys.contains($0) }) { throw fail(field.isEmpty ? extra : field + "." + extra, "is not a field of a snapshot") }
            return o
        }

        func string(_ v: JSONValue?, _ field: String) throws(Refusal) -> String {
            guard let s = v?.string else { throw fail(field, v.map { "must be a string, not \($0.typeName)" } ?? "missing") }
            return s
        }

        func number(_ v: JSONValue?, _ field: String) throws(Refusal) -> Double {
            guard let n = v?.number else { throw fail(field, v.map { "must be a number, not \($0.typeName)" } ?? "missing") }
            guard n.isFinite else { throw fail(field, "\(n.lexeme) is not a finite number") }
            return n.double
        }

        func whole(_ v: JSONValue?, _ field: String) throws(Refusal) -> Int {
            let d = try number(v, field)
            guard d >= 0, d == d.rounded(), d < 1e12 else { throw fail(field, "\(d) is not a count (a whole number, 0 or more)") }
            return Int(d)
        }

        func day(_ v: JSONValue?, _ field: String) throws(Refusal) -> Day {
            let s = try string(v, field)
            guard let d = Day(parsing: s) else { throw fail(field, "\"\(s)\" is not a date YYYY-MM-DD") }
            return d
        }

        /// A figure: a number, `{"lt": min_cell}`, `{"value": v, "held_since": "..."}` or null.
        func figure(_ v: JSONValue?, _ field: String, count: Bool) throws(Refusal) -> SnapshotFigure {
            guard let v else { throw fail(field, "missing") }
            switch v {
            case .null:
                guard minCell > 0 || field.hasSuffix("in_target") || field.hasSuffix("improved") else {
                    throw fail(field, "is null, but with min_cell 0 every figure is given")
                }
                return .withheld
            case .number:
                return .value(count ? Double(try whole(v, field)) : try number(v, field))
            case .object(let o):
                if o.keys == ["lt"] {
                    let k = try whole(o["lt"], field + ".lt")
                    guard count, minCell > 0, k == minCell else {
                        throw fail(field + ".lt", count ? "\(k) is not the snapshot's min_cell (\(minCell))" : "only a count may be given as lt")
                    }
                    return .lessThan(k)
                }
                guard Set(o.keys) == ["value", "held_since"] else { throw fail(field, "must be a number, {\"lt\": k} or {\"value\", \"held_since\"}") }
                let value = count ? Double(try whole(o["value"], field + ".value")) : try number(o["value"], field + ".value")
                guard minCell > 0 else { throw fail(field, "is held, but with min_cell 0 every figure is given as it is") }
                let since = try string(o["held_since"], field + ".held_since")
                guard let at = RFC3339.parse(since), at == at.day.advanced(by: 1).start.adding(millis: -1), at < asOf else {
                    throw fail(field + ".held_since", "\"\(since)\" is not the end of a UTC day before as_of")
                }
                return .held(value, since: at)
            default:
                throw fail(field, "must be a number, not \(v.typeName)")
            }
        }

        func figures(_ v: JSONValue?, _ field: String, count: Bool) throws(Refusal) -> [SnapshotFigure] {
            guard let a = v?.array else { throw fail(field, v.map { "must be an array, not \($0.typeName)" } ?? "missing") }
            guard a.count <= 1000 else { throw fail(field, "more than 1000 items") }
            var out: [SnapshotFigure] = []
            for (i, x) in a.enumerated() { out.append(try figure(x, "\(field)[\(i)]", count: count)) }
            return out
        }

        mutating func snapshot(_ root: JSONValue) throws(Refusal) -> PilotSnapshot {
            let o = try object(root, "payload", keys: ["msg_id", "kind", "pilot", "as_of", "revision", "metrics_version", "min_cell",
                                                      "registry", "enrolment", "activity", "outcomes", "events", "devices", "quality",
                                                      "last_observation_at"])
            let msgID = try string(o["msg_id"], "msg_id")
            guard (1...ContractLimits.maxMsgIDLength).contains(msgID.utf8.count), msgID.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw fail("msg_id", "must be 1 to \(ContractLimits.maxMsgIDLength) printable ASCII characters")
            }
            guard try string(o["kind"], "kind") == PilotSnapshot.kind else { throw fail("kind", "must be \"\(PilotSnapshot.kind)\"") }
            let pilot = try string(o["pilot"], "pilot")
            let asOfText = try string(o["as_of"], "as_of")
            guard let asOf = RFC3339.parse(asOfText), asOf == asOf.day.advanced(by: 1).start.adding(millis: -1) else {
                throw fail("as_of", "\"\(asOfText)\" is not the end of a UTC day (YYYY-MM-DDT23:59:59.999Z)")
            }
            self.asOf = asOf
            let revision = try number(o["revision"], "revision")
            guard revision >= 0, revision == revision.rounded(), revision < 1e15 else { throw fail("revision", "must be milliseconds since the epoch") }
            guard try whole(o["metrics_version"], "metrics_version") == PilotSnapshot.metricsVersion else {
                throw fail("metrics_version", "must be \(PilotSnapshot.metricsVersion)")
            }
            minCell = try whole(o["min_cell"], "min_cell")
            guard minCell == 0 || minCell >= 5 else { throw fail("min_cell", "\(minCell) is between 1 and 4 (0 turns disclosure control off; otherwise at least 5)") }

            let reg = try object(o["registry"], "registry", keys: ["start", "end", "enrolment_target", "milestones", "outcomes"])
            var registry = SnapshotRegistry(start: try day(reg["start"], "registry.start"), end: try day(reg["end"], "registry.end"),
                                            enrolmentTarget: try whole(reg["enrolment_target"], "registry.enrolment_target"),
                                            milestones: [], outcomes: [])
            guard let milestoneItems = reg["milestones"]?.array else { throw fail("registry.milestones", "must be an array") }
            guard let outcomeRegistry = reg["outcomes"]?.array else { throw fail("registry.outcomes", "must be an array") }
            for (i, m) in milestoneItems.enumerated() {
                let mo = try object(m, "registry.milestones[\(i)]", keys: ["date", "enrolled"])
                registry.milestones.append(Milestone(date: try day(mo["date"], "registry.milestones[\(i)].date"),
                                                     enrolled: try whole(mo["enrolled"], "registry.milestones[\(i)].enrolled")))
            }
            for (i, x) in outcomeRegistry.enumerated() {
                let f = "registry.outcomes[\(i)]"
                let xo = try object(x, f, keys: ["indicator", "unit", "target", "windows"])
                var target: ValueRange?
                if let t = xo["target"], t != .null {
                    let to = try object(t, f + ".target", keys: ["min", "max"])
                    target = ValueRange(min: try number(to["min"], f + ".target.min"), max: try number(to["max"], f + ".target.max"))
                }
                let wo = try object(xo["windows"], f + ".windows", keys: ["baseline_before_days", "baseline_after_days", "follow_up_days"])
                registry.outcomes.append(.init(indicator: try string(xo["indicator"], f + ".indicator"), unit: try string(xo["unit"], f + ".unit"),
                                               target: target,
                                               windows: OutcomeWindows(baselineBeforeDays: try number(wo["baseline_before_days"], f + ".windows.baseline_before_days"),
                                                                       baselineAfterDays: try number(wo["baseline_after_days"], f + ".windows.baseline_after_days"),
                                                                       followUpDays: try number(wo["follow_up_days"], f + ".windows.follow_up_days"))))
            }

            let en = try object(o["enrolment"], "enrolment", keys: ["enrolled", "withdrawn", "in_follow_up", "enrolled_30d", "milestones", "curve"])
            let enrolment = PilotSnapshot.Enrolment(
                enrolled: try figure(en["enrolled"], "enrolment.enrolled", count: true),
                withdrawn: try figure(en["withdrawn"], "enrolment.withdrawn", count: true),
                inFollowUp: try figure(en["in_follow_up"], "enrolment.in_follow_up", count: true),
                enrolled30d: try figure(en["enrolled_30d"], "enrolment.enrolled_30d", count: true),
                milestones: try figures(en["milestones"], "enrolment.milestones", count: true),
                curve: try figures(en["curve"], "enrolment.curve", count: true))

            let ac = try object(o["activity"], "activity", keys: ["active_7d", "adherence_sum", "adherence_n", "weekly"])
            guard let weeklyItems = ac["weekly"]?.array, weeklyItems.count <= 520 else { throw fail("activity.weekly", "must be an array of at most 520 weeks") }
            var weekly: [PilotSnapshot.Week] = []
            for (i, w) in weeklyItems.enumerated() {
                let wo = try object(w, "activity.weekly[\(i)]", keys: ["adherence_sum", "adherence_n"])
                weekly.append(.init(adherenceSum: try figure(wo["adherence_sum"], "activity.weekly[\(i)].adherence_sum", count: false),
                                    adherenceN: try figure(wo["adherence_n"], "activity.weekly[\(i)].adherence_n", count: true)))
            }
            let activity = PilotSnapshot.Activity(
                active7d: try figure(ac["active_7d"], "activity.active_7d", count: true),
                adherenceSum: try figure(ac["adherence_sum"], "activity.adherence_sum", count: false),
                adherenceN: try figure(ac["adherence_n"], "activity.adherence_n", count: true),
                weekly: weekly)

            guard let outcomeItems = o["outcomes"]?.array else { throw fail("outcomes", "must be an array") }
            var outcomes: [PilotSnapshot.Outcome] = []
            for (i, x) in outcomeItems.enumerated() {
                let f = "outcomes[\(i)]"
                let xo = try object(x, f, keys: ["indicator", "n_paired", "sum_baseline", "sum_latest", "sum_change", "m2_change", "in_target", "improved"])
                let inTarget = try figure(xo["in_target"], f + ".in_target", count: true)
                let improved = try figure(xo["improved"], f + ".improved", count: true)
                outcomes.append(.init(indicator: try string(xo["indicator"], f + ".indicator"),
                                      nPaired: try figure(xo["n_paired"], f + ".n_paired", count: true),
                                      sumBaseline: try figure(xo["sum_baseline"], f + ".sum_baseline", count: false),
                                      sumLatest: try figure(xo["sum_latest"], f + ".sum_latest", count: false),
                                      sumChange: try figure(xo["sum_change"], f + ".sum_change", count: false),
                                      m2Change: try figure(xo["m2_change"], f + ".m2_change", count: false),
                                      inTarget: inTarget == .withheld ? nil : inTarget, improved: improved == .withheld ? nil : improved))
                if let m2 = outcomes.last?.m2Change.value, m2 < 0 { throw fail(f + ".m2_change", "\(m2) is negative (a sum of squares)") }
            }
            guard let eventItems = o["events"]?.array else { throw fail("events", "must be an array") }
            var events: [PilotSnapshot.Event] = []
            for (i, x) in eventItems.enumerated() {
                let f = "events[\(i)]"
                let xo = try object(x, f, keys: ["indicator", "events", "patient_days"])
                let days = try figure(xo["patient_days"], f + ".patient_days", count: false)
                if let d = days.value, d < 0 { throw fail(f + ".patient_days", "\(d) is negative") }
                events.append(.init(indicator: try string(xo["indicator"], f + ".indicator"),
                                    events: try figure(xo["events"], f + ".events", count: true), patientDays: days))
            }
            let de = try object(o["devices"], "devices", keys: ["seen", "silent_48h", "battery_low", "messages_7d", "refusals_7d"])
            let devices = PilotSnapshot.Devices(seen: try figure(de["seen"], "devices.seen", count: true),
                                                silent48h: try figure(de["silent_48h"], "devices.silent_48h", count: true),
                                                batteryLow: try figure(de["battery_low"], "devices.battery_low", count: true),
                                                messages7d: try figure(de["messages_7d"], "devices.messages_7d", count: true),
                                                refusals7d: try figure(de["refusals_7d"], "devices.refusals_7d", count: true))
            let qu = try object(o["quality"], "quality", keys: ["messages", "accepted", "refused", "duplicate_messages", "duplicate_observations", "unenrolled_subjects"])
            let refusedObject = try object(qu["refused"], "quality.refused", keys: Set(ReasonCode.allCases.map(\.rawValue)))
            var refused: [(reason: ReasonCode, n: SnapshotFigure)] = []
            for (k, v) in refusedObject.pairs {
                guard let reason = ReasonCode(rawValue: k) else { continue }
                refused.append((reason, try figure(v, "quality.refused.\(k)", count: true)))
            }
            let quality = PilotSnapshot.Quality(messages: try figure(qu["messages"], "quality.messages", count: true),
                                                accepted: try figure(qu["accepted"], "quality.accepted", count: true),
                                                duplicateMessages: try figure(qu["duplicate_messages"], "quality.duplicate_messages", count: true),
                                                duplicateObservations: try figure(qu["duplicate_observations"], "quality.duplicate_observations", count: true),
                                                unenrolledSubjects: try figure(qu["unenrolled_subjects"], "quality.unenrolled_subjects", count: true),
                                                refused: refused)
            var last: Instant?
            if let l = o["last_observation_at"], l != .null {
                let text = try string(l, "last_observation_at")
                guard let at = RFC3339.parse(text), at <= asOf else { throw fail("last_observation_at", "\"\(text)\" is not a time at or before as_of") }
                guard minCell == 0 || at.millis % 3_600_000 == 0 else {
                    throw fail("last_observation_at", "\"\(text)\" is not on the hour (with min_cell > 0, times are coarse)")
                }
                last = at
            }
            let snapshot = PilotSnapshot(msgID: msgID, pilot: pilot, asOf: asOf, revision: Int64(revision), minCell: minCell, registry: registry,
                                         enrolment: enrolment, activity: activity, outcomes: outcomes, events: events,
                                         devices: devices, quality: quality, lastObservationAt: last)
            try consistent(snapshot)
            return snapshot
        }

        /// Counts that contradict each other (among those given as current values: a held value
        /// is from an earlier day end, and a withheld one is not known).
        func consistent(_ s: PilotSnapshot) throws(Refusal) {
            let e = s.enrolment
            if let enrolled = e.enrolled.exact, let withdrawn = e.withdrawn.exact, let follow = e.inFollowUp.exact {
                guard withdrawn <= enrolled, follow == enrolled - withdrawn else {
                    throw fail("enrolment.in_follow_up", "\(follow) is not enrolled \(enrolled) - withdrawn \(withdrawn)")
                }
            }
            if let enrolled = e.enrolled.exact, let recent = e.enrolled30d.exact, recent > enrolled {
                throw fail("enrolment.enrolled_30d", "\(recent) is more than enrolled \(enrolled)")
            }
            if let follow = e.inFollowUp.exact {
                if let active = s.activity.active7d.exact, active > follow {
                    throw fail("activity.active_7d", "\(active) is more than in_follow_up \(follow)")
                }
                if let n = s.activity.adherenceN.exact, n != follow {
                    throw fail("activity.adherence_n", "\(n) is not in_follow_up \(follow)")
                }
            }
            if let n = s.activity.adherenceN.exact, s.activity.adherenceSum.isShown, let sum = s.activity.adherenceSum.value, sum < 0 || sum > Double(n) {
                throw fail("activity.adherence_sum", "\(sum) is outside 0...\(n) (a sum of ratios)")
            }
            for (i, o) in s.outcomes.enumerated() {
                guard let n = o.nPaired.exact else { continue }
                for (name, part) in [("in_target", o.inTarget), ("improved", o.improved)] {
                    if let c = part?.exact, c > n { throw fail("outcomes[\(i)].\(name)", "\(c) is more than n_paired \(n)") }
                }
            }
            if let messages = s.quality.messages.exact, let accepted = s.quality.accepted.exact, accepted > messages {
                throw fail("quality.accepted", "\(accepted) is more than messages \(messages)")
            }
        }
    }
}
