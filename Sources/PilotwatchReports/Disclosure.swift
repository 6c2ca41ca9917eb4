import PilotwatchCore

/// Small-cell suppression of an export (`metrics.md`, "Disclosure control in exports"), applied
/// once to the whole report before any renderer sees it.
///
/// 1. **Primary.** A count of 1 to k-1 is suppressed (shown `<k`). A statistic (mean, share,
///    change, interval bound, rate, patient-days, adherence, enrolment percentage) whose subjects
///    number 1 to k-1 is withheld, and so is a count of an attribute among them (in target,
///    improved, events), zero included: "none of the 4" says something about each of them.
/// 2. **Derived figures.** A figure that can be computed from others goes with them: the
///    enrolment percentage with `enrolled`; a share with its numerator and `n_paired`; a rate
///    with its events and patient-days; an outcome's means, change and interval together.
/// 3. **Secondary.** Wherever figures are tied by a sum, no suppressed one may be the only
///    unknown: programme totals are sums over its pilots (every count, patient-days), `enrolled =
///    withdrawn + in_follow_up` and `refused_total` = the sum over reasons hold in each pilot and
///    programme, and a pooled mean or adherence is a weighted mean of the pilots'. A tie with one
///    hidden figure gets a second one hidden: preferably the programme's pooled figure, then not
///    a scope's `enrolled` or `refused_total`, then one that closes another tie rather than
///    opening one, then the smallest count of at least 2k-1. A tie whose hidden
///    counts could only add up to the shown total one way (all 1, or all k-1) gets another too.
///    A final check solves all the sums together (Gaussian elimination) and hides more until no
///    suppressed figure is determined by them.
/// 4. **Cumulative counts.** Enrolments by milestone dates and the points of the enrolment
///    chart are cumulative: two published ones (and `enrolled`) must differ by 0 or at least k,
///    so that no small number of enrolments between two dates can be worked out.
///
/// ```swift
/// let disclosed = Disclosure.apply(report, k: 11)
/// disclosed.report.pilots[0][.enrolled].state   // .suppressed(.smallCount) for 7 subjects
/// ```
public enum Disclosure {
    /// The default threshold (the French national health data system's rule).
    public static let defaultK = 11
    /// The lowest threshold `--k` accepts.
    public static let minimumK = 5

    public static func apply(_ report: ExportReport, k: Int) -> DisclosedReport {
        var work = Work(report: report, k: max(minimumK, k))
        work.primary()
        work.secondary()
        work.cumulative()
        return work.result()
    }

    /// A figure of one scope (programmes first, then pilots, in report order).
    struct Ref: Hashable, CustomStringConvertible {
        let scope: Int
        let key: FigureKey
        var description: String { "\(scope):\(key)" }
    }

    /// Figures tied together: `total = sum(parts)` when additive, a pooled statistic and the
    /// pilots' (a weighted mean) otherwise.
    struct Tie {
        var total: Ref
        var parts: [Ref]
        var additive: Bool
        /// `total` is a programme's pooled figure (preferred for secondary suppression).
        var pooledTotal: Bool
        var members: [Ref] { [total] + parts }
    }

    struct Work {
        var scopes: [ExportScope]
        let report: ExportReport
        let k: Int
        let programmeCount: Int
        var hidden: [Ref: Suppression] = [:]
        var ties: [Tie] = []
        var tiesOf: [Ref: [Int]] = [:]
        var series: [Int: [EnrolmentPoint]] = [:]

        init(report: ExportReport, k: Int) {
            self.report = report
            self.k = k
            scopes = report.programmes + report.pilots
            programmeCount = report.programmes.count
            // Figures suppressed before disclosure control (not given exactly by a site) stay
            // suppressed, and count as hidden for the identities and totals they belong to.
            for s in scopes.indices {
                for (key, c) in scopes[s].figures { if let why = c.suppression { hidden[Ref(scope: s, key: key)] = why } }
            }
            buildTies()
        }

        func cell(_ r: Ref) -> Cell? { scopes[r.scope].figures[r.key] }
        func value(_ r: Ref) -> Double? { cell(r)?.value }
        func isHidden(_ r: Ref) -> Bool { hidden[r] != nil }
        /// Shown with a value (zero included).
        func isShownValue(_ r: Ref) -> Bool { !isHidden(r) && value(r) != nil }

        // MARK: Ties

        mutating func buildTies() {
            for (pi, programme) in report.programmes.enumerated() {
                let members = scopes.indices.filter { $0 >= programmeCount && scopes[$0].programme == programme.id }
                // Programme totals: every count and patient-days is a sum over its pilots.
                for key in programme.figures.keys.sorted() {
                    let total = Ref(scope: pi, key: key)
                    guard let c = cell(total), c.kind != .fact, c.value != nil else { continue }
                    let parts = members.map { Ref(scope: $0, key: key) }.filter { cell($0)?.value != nil }
                    switch key.metric {
                    case .enrolled, .withdrawn, .inFollowUp, .unenrolledSubjects, .refusedTotal, .refused, .nPaired,
                         .inTarget, .improved, .events, .subjectsFollowed, .patientDays:
                        addTie(Tie(total: total, parts: parts, additive: true, pooledTotal: true))
                    case .transmissionAdherence, .meanChange:
                        addTie(Tie(total: total, parts: parts, additive: false, pooledTotal: true))
                    default:
                        continue
                    }
                }
            }
            // Identities inside every scope.
            for s in scopes.indices {
                let enrolled = Ref(scope: s, key: FigureKey(.enrolled))
                if value(enrolled) != nil {
                    addTie(Tie(total: enrolled, parts: [Ref(scope: s, key: FigureKey(.withdrawn)),
                                                        Ref(scope: s, key: FigureKey(.inFollowUp))],
                               additive: true, pooledTotal: false))
                }
                let refused = Ref(scope: s, key: FigureKey(.refusedTotal))
                let reasons = scopes[s].reasons.map { Ref(scope: s, key: FigureKey(.refused, $0.rawValue)) }
                if value(refused) != nil, !reasons.isEmpty {
                    addTie(Tie(total: refused, parts: reasons, additive: true, pooledTotal: false))
                }
            }
        }

        mutating func addTie(_ t: Tie) {
            guard !t.parts.isEmpty else { return }
            for m in t.members { tiesOf[m, default: []].append(ties.count) }
            ties.append(t)
        }

        // MARK: Primary suppression

        /// The number of subjects a figure stands on, when it has a basis.
        func basisValue(_ r: Ref) -> Double? {
            ExportScope.basis(of: r.key).flatMap { value(Ref(scope: r.scope, key: $0)) }
        }

        mutating func primary() {
            let small = 1.0...Double(k - 1)
            for s in scopes.indices {
                for (key, c) in scopes[s].figures {
                    let r = Ref(scope: s, key: key)
                    switch c.kind {
                    case .fact:
                        continue
                    case .count:
                        if let v = c.value, small.contains(v) {
                            hidden[r] = .smallCount
                        } else if [.inTarget, .improved, .events].contains(key.metric), c.value != nil,
                                  let b = basisValue(r), small.contains(b) {
                            hidden[r] = .fewSubjects
                        }
                    case .statistic:
                        if let b = basisValue(r), small.contains(b) { hidden[r] = .fewSubjects }
                    }
                }
            }
        }

        // MARK: Derived figures and secondary suppression

        mutating func hide(_ r: Ref) {
            if hidden[r] == nil, cell(r) != nil { hidden[r] = .secondary }
        }

        /// Hides what can be computed from hidden figures; true when something changed.
        mutating func applyLinks() -> Bool {
            let before = hidden.count
            for s in scopes.indices {
                let scope = scopes[s]
                func h(_ key: FigureKey) -> Bool { isHidden(Ref(scope: s, key: key)) }
                func hideIfValue(_ key: FigureKey) {
                    let r = Ref(scope: s, key: key)
                    if value(r) != nil { hide(r) }
                }
                if h(FigureKey(.enrolled)) { hideIfValue(FigureKey(.enrolmentPct)) }
                for o in scope.outcomes {
                    let n = h(FigureKey(.nPaired, o.code))
                    if n || h(FigureKey(.inTarget, o.code)) { hideIfValue(FigureKey(.pctInTarget, o.code)) }
                    if n || h(FigureKey(.improved, o.code)) { hideIfValue(FigureKey(.improvedPct, o.code)) }
                    // Means, change and interval bounds go together (any two give a third).
                    if ExportMetric.outcomeMeans.contains(where: { h(FigureKey($0, o.code)) }) {
                        for m in ExportMetric.outcomeMeans { hideIfValue(FigureKey(m, o.code)) }
                    }
                }
                let daysHidden = h(FigureKey(.patientDays))
                // A pooled rate of an indicator that only some of the programme's pilots report
                // stands on their patient-days, not on the programme's: it would give a hidden
                // pilot's patient-days away.
                let eventPilots = scopes.indices.filter { i in
                    scope.level == .programme && i >= programmeCount && scopes[i].programme == scope.id
                        && !scopes[i].events.isEmpty
                }
                let pilotDaysHidden = eventPilots.contains { isHidden(Ref(scope: $0, key: FigureKey(.patientDays))) }
                for e in scope.events {
                    let partial = eventPilots.contains { !scopes[$0].events.contains(e) }
                    if daysHidden || h(FigureKey(.events, e.code)) || (partial && pilotDaysHidden) {
                        hideIfValue(FigureKey(.ratePer100PatientMonths, e.code))
                    }
                }
            }
            return hidden.count != before
        }

        /// Whether the hidden counts of an additive tie with a shown total can add up to it in
        /// one way only (each at its lowest, or each at k-1).
        func pinned(_ tie: Tie, hiddenMembers: [Ref]) -> Bool {
            guard tie.additive, !isHidden(tie.total) else { return false }
            var lowest = 0.0, sum = 0.0
            for m in hiddenMembers {
                switch hidden[m] {
                case .smallCount?: lowest += 1
                case .fewSubjects?: lowest += 0
                default: return false  // a secondary figure is not bounded above
                }
                sum += value(m) ?? 0
            }
            return sum == lowest || sum == Double(k - 1) * Double(hiddenMembers.count)
        }

        /// The figure to hide so that `tie` no longer gives a hidden one away.
        func choose(in tie: Tie) -> Ref? {
            let candidates = tie.members.filter(isShownValue)
            guard !candidates.isEmpty else { return nil }
            func opened(_ r: Ref) -> Int {
                (tiesOf[r] ?? []).reduce(0) { n, i in
                    n + (ties[i].members.contains(where: isHidden) ? 0 : 1)
                }
            }
            let target = Double(2 * k - 1)
            // `enrolled` and `refused_total` head their scope's identity: keep them when possible.
            func headline(_ r: Ref) -> Bool { r.key.metric == .enrolled || r.key.metric == .refusedTotal }
            return candidates.min { a, b in
                let va = value(a) ?? 0, vb = value(b) ?? 0
                if (va == 0) != (vb == 0) { return vb == 0 }          // a zero protects nothing
                let ta = tie.pooledTotal && a == tie.total, tb = tie.pooledTotal && b == tie.total
                if ta != tb { return ta }
                if headline(a) != headline(b) { return !headline(a) }
                let oa = opened(a), ob = opened(b)
                if oa != ob { return oa < ob }
                if (va >= target) != (vb >= target) { return va >= target }
                if va != vb { return va >= target ? va < vb : va > vb }
                return a.description < b.description
            }
        }

        mutating func secondary() {
            while true {
                var changed = applyLinks()
                for tie in ties {
                    let h = tie.members.filter(isHidden)
                    if h.count == 1 || (h.count > 1 && pinned(tie, hiddenMembers: h)) {
                        if let r = choose(in: tie) { hide(r); changed = true }
                    }
                }
                if changed { continue }
                // No tie has a single unknown: check that the sums together determine none.
                guard let determined = determinedByTies() else { return }
                var fixed = false
                for i in tiesOf[determined] ?? [] where ties[i].additive {
                    if let r = choose(in: ties[i]) { hide(r); fixed = true; break }
                }
                if !fixed { return }
            }
        }

        /// A hidden figure that the additive ties determine (solving them all together), if any.
        func determinedByTies() -> Ref? {
            let additive = ties.filter(\.additive)
            var unknowns: [Ref] = []
            var column: [Ref: Int] = [:]
            for t in additive {
                for m in t.members where isHidden(m) && column[m] == nil {
                    column[m] = unknowns.count
                    unknowns.append(m)
                }
            }
            guard !unknowns.isEmpty else { return nil }
            var rows: [[Double]] = []
            for t in additive {
                var row = Array(repeating: 0.0, count: unknowns.count)
                var any = false
                if let c = column[t.total] { row[c] += 1; any = true }
                for p in t.parts { if let c = column[p] { row[c] -= 1; any = true } }
                if any { rows.append(row) }
            }
            // Reduced row echelon form; an unknown is determined when a row has no other entry.
            var pivotRow = 0
            for c in unknowns.indices where pivotRow < rows.count {
                guard let best = (pivotRow..<rows.count).max(by: { abs(rows[$0][c]) < abs(rows[$1][c]) }),
                      abs(rows[best][c]) > 1e-9 else { continue }
                rows.swapAt(pivotRow, best)
                let p = rows[pivotRow][c]
                rows[pivotRow] = rows[pivotRow].map { $0 / p }
                for r in rows.indices where r != pivotRow && abs(rows[r][c]) > 1e-12 {
                    let f = rows[r][c]
                    for j in unknowns.indices { rows[r][j] -= f * rows[pivotRow][j] }
                }
                pivotRow += 1
            }
            for row in rows.prefix(pivotRow) {
                let nonzero = row.indices.filter { abs(row[$0]) > 1e-9 }
                if nonzero.count == 1 { return unknowns[nonzero[0]] }
            }
            return nil
        }

        // MARK: Cumulative enrolment

        /// `d` may separate two published cumulative counts.
        func gapAllowed(_ d: Int) -> Bool { d == 0 || d >= k }

        mutating func cumulative() {
            for s in scopes.indices where scopes[s].level == .pilot {
                let scope = scopes[s]
                let t = report.asOf
                let enrolled = Ref(scope: s, key: FigureKey(.enrolled))
                let total: Int? = isHidden(enrolled) ? nil : value(enrolled).map { Int($0) }
                // Milestones in date order: those counted up to T equal `enrolled`.
                var kept: [(at: Instant, n: Int, ref: Ref)] = []
                var prev = 0
                for m in scope.milestones.sorted(by: { $0.date < $1.date }) {
                    let r = Ref(scope: s, key: FigureKey(.milestoneEnrolled, m.date.description))
                    guard let v = value(r), !isHidden(r) else { continue }
                    let n = Int(v)
                    if m.cutoff >= t {
                        if total == nil { hide(r) }
                        continue
                    }
                    if gapAllowed(n - prev) { kept.append((m.cutoff, n, r)); prev = n } else { hide(r) }
                }
                if let total {
                    while let last = kept.last, !gapAllowed(total - last.n) {
                        hide(last.ref)
                        kept.removeLast()
                    }
                }
                // Chart points: between published anchors (milestones, then `enrolled` at T).
                var anchors = kept.map { (at: $0.at, n: $0.n) }
                if let total { anchors.append((t, total)) }
                var published: [EnrolmentPoint] = []
                var last = 0
                var next = 0
                for p in scope.enrolmentSeries {
                    while next < anchors.count, anchors[next].at < p.at {
                        last = anchors[next].n
                        next += 1
                    }
                    if p.at >= t {
                        if let total { published.append(EnrolmentPoint(day: p.day, at: p.at, enrolled: total)) }
                        continue
                    }
                    let nextValue = next < anchors.count ? anchors[next].n : nil
                    if gapAllowed(p.enrolled - last), nextValue.map({ gapAllowed($0 - p.enrolled) }) ?? true {
                        published.append(p)
                        last = p.enrolled
                    }
                }
                series[s] = published
            }
        }

        // MARK: Result

        func result() -> DisclosedReport {
            var out = scopes
            var counts: [Suppression: Int] = [:]
            for (r, why) in hidden.sorted(by: { $0.key.description < $1.key.description }) {
                guard var c = out[r.scope].figures[r.key] else { continue }
                c.state = .suppressed(why)
                out[r.scope].figures[r.key] = c
                counts[why, default: 0] += 1
            }
            for s in out.indices { out[s].enrolmentSeries = series[s] ?? [] }
            var report = self.report
            report.programmes = Array(out[..<programmeCount])
            report.pilots = Array(out[programmeCount...])
            return DisclosedReport(report: report, k: k, suppressedCounts: counts)
        }
    }
}
