import PilotwatchCore
import TestSupport
import Testing

// The split of every metric into sufficient statistics and figures (federation.md): on many
// random datasets, figures from statistics equal figures computed from the subjects by the
// definitions of metrics.md written out here, and statistics pooled over pilots equal the
// statistics of all their subjects together.

/// The tests' seeded generator (SplitMix64), so that a failing dataset can be found again.
private typealias Seeded = SplitMix

private let t = Instant(seconds: 1_780_000_000)  // 2026-05-28

private func randomSubjects(_ n: Int, prefix: String, _ g: inout Seeded) -> [SubjectFacts] {
    (0..<n).map { i in
        let enrolled: Instant? = Bool.random(using: &g) || i == 0 ? t.adding(days: -Double.random(in: 0...120, using: &g)) : nil
        // Some enrolments after T, some withdrawals, before or after T.
        let late = Int.random(in: 0..<10, using: &g) == 0
        let enrolledAt = late ? t.adding(days: Double.random(in: 0.1...5, using: &g)) : enrolled
        let withdrawnAt = enrolledAt.flatMap { e in Int.random(in: 0..<4, using: &g) == 0 ? e.adding(days: Double.random(in: 1...150, using: &g)) : nil }
        let days = (0..<200).compactMap { d in Int.random(in: 0..<3, using: &g) == 0 ? t.day.advanced(by: -d) : nil }
        let last = days.first.map { $0.start.adding(days: Double.random(in: 0..<0.99, using: &g)) }.map { min($0, t) }
        return SubjectFacts(code: "\(prefix)-\(i)", enrolledAt: enrolledAt, withdrawnAt: withdrawnAt,
                            firstDataAt: enrolledAt ?? last, lastObservationAt: last,
                            activity: ActivityDays(lastDay: t.day, days: days, covering: Metrics.historyDays(weeks: 12)))
    }
}

private func close(_ a: Double?, _ b: Double?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case let (a?, b?): return abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    default: return false
    }
}

@Suite("Sufficient statistics: figures from statistics equal figures from subjects, and pool exactly")
struct SufficientStatisticsTests {
    @Test(arguments: 0..<40)
    func pilotFiguresFromStatisticsFollowTheDefinitions(seed: UInt64) {
        var g = Seeded(state: seed)
        let subjects = randomSubjects(Int.random(in: 0...60, using: &g), prefix: "s", &g)
        let f = Metrics.pilot(Metrics.statistics(subjects, asOf: t), target: 50, end: t.day.advanced(by: 200), asOf: t)
        // metrics.md, written out.
        let enrolled = subjects.filter { $0.enrolledAt.map { $0 <= t } ?? false }
        let withdrawn = enrolled.filter { s in s.withdrawnAt.map { $0 <= t && $0 > s.enrolledAt! } ?? false }
        let inFollowUp = enrolled.filter { s in !withdrawn.contains(s) }
        let active = inFollowUp.filter { $0.lastObservationAt.map { $0 > t.adding(days: -7) && $0 <= t } ?? false }
        let adherences = inFollowUp.map { s -> Double in
            let first = max(t.day.advanced(by: -27), s.enrolledAt!.day)
            let window = (0...first.distance(to: t.day)).map { first.advanced(by: $0) }
            return 100 * Double(window.filter { s.activity.contains($0) }.count) / Double(window.count)
        }
        #expect(f.enrolled == enrolled.count)
        #expect(f.withdrawn == withdrawn.count)
        #expect(f.inFollowUp == inFollowUp.count)
        #expect(f.active7d == active.count)
        #expect(close(f.transmissionAdherence, adherences.isEmpty ? nil : adherences.reduce(0, +) / Double(adherences.count)))
        #expect(f.enrolmentRate30d == Double(enrolled.filter { $0.enrolledAt! > t.adding(days: -30) }.count))
        #expect(f.unenrolledSubjects == subjects.filter { $0.enrolledAt.map { $0 > t } ?? true && $0.firstDataAt.map { $0 <= t } ?? false }.count)
    }

    @Test(arguments: 0..<40)
    func programmeStatisticsPoolToTheStatisticsOfAllSubjects(seed: UInt64) {
        var g = Seeded(state: 1000 + seed)
        let pilots = (0..<Int.random(in: 1...5, using: &g)).map { p in
            (subjects: randomSubjects(Int.random(in: 0...40, using: &g), prefix: "p\(p)", &g), target: Int.random(in: 10...100, using: &g))
        }
        let pooled = Metrics.programme(pilots.map { (Metrics.statistics($0.subjects, asOf: t), $0.target) })
        let all = Metrics.pilot(pilots.flatMap(\.subjects), target: pilots.reduce(0) { $0 + $1.target }, end: t.day, asOf: t)
        #expect(pooled.enrolled == all.enrolled)
        #expect(pooled.withdrawn == all.withdrawn)
        #expect(pooled.inFollowUp == all.inFollowUp)
        #expect(pooled.active7d == all.active7d)
        #expect(pooled.unenrolledSubjects == all.unenrolledSubjects)
        #expect(pooled.lastObservationAt == all.lastObservationAt)
        #expect(close(pooled.enrolmentRate30d, all.enrolmentRate30d))
        #expect(close(pooled.enrolmentPct, all.enrolmentPct))
        #expect(close(pooled.transmissionAdherence, all.transmissionAdherence))
    }

    @Test(arguments: 0..<60)
    func outcomeStatisticsPoolExactlyWithTheirVariance(seed: UInt64) {
        var g = Seeded(state: 5000 + seed)
        let indicator = Indicator(code: "hba1c", name: "HbA1c", kind: .measurement, unit: "%", range: nil, programmes: ["diabetes"],
                                  direction: .lower, target: ValueRange(min: 4, max: 7))
        let parts = (0..<Int.random(in: 1...6, using: &g)).map { _ in
            (0..<Int.random(in: 0...30, using: &g)).map { _ in
                OutcomePair(baseline: Double.random(in: 5...12, using: &g), latest: Double.random(in: 5...12, using: &g))
            }
        }
        let pooled = Metrics.outcome(OutcomeStatistics.pooled("hba1c", parts.map { Metrics.outcomeStatistics(indicator, pairs: $0) }))
        let all = parts.flatMap { $0 }
        let direct = Metrics.outcome(indicator, pairs: all)
        #expect(pooled.nPaired == all.count)
        #expect(close(pooled.meanBaseline, direct.meanBaseline))
        #expect(close(pooled.meanLatest, direct.meanLatest))
        #expect(close(pooled.meanChange, direct.meanChange))
        #expect(close(pooled.changeCI95?.lower, direct.changeCI95?.lower))
        #expect(close(pooled.changeCI95?.upper, direct.changeCI95?.upper))
        #expect(close(pooled.pctInTarget, direct.pctInTarget))
        #expect(close(pooled.improvedPct, direct.improvedPct))
        // The interval from the definition: mean ± t(0.975, n-1) · s / √n over all the changes.
        if all.count >= 2 {
            let changes = all.map { $0.latest - $0.baseline }
            let mean = changes.reduce(0, +) / Double(changes.count)
            let s = (changes.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(changes.count - 1)).squareRoot()
            let half = Statistics.studentTQuantile(0.975, degreesOfFreedom: Double(changes.count - 1))! * s / Double(changes.count).squareRoot()
            #expect(close(pooled.changeCI95?.lower, mean - half))
        }
    }

    @Test func momentSumsCombineLikeTheWholeSet() {
        let a: [Double] = [1, 2, 3, 4], b: [Double] = [10, 20]
        let combined = MomentSums(a).combined(with: MomentSums(b))
        let whole = MomentSums(a + b)
        #expect(combined.n == 6 && combined.sum == whole.sum)
        #expect(close(combined.m2, whole.m2))
        #expect(MomentSums([]).combined(with: MomentSums(b)) == MomentSums(b))
        #expect(MomentSums([5]).confidenceInterval95 == nil)
    }
}
