import PilotwatchCore
import TestSupport
import Testing

/// `T` of these tests: 2026-06-15T12:00:00Z (a Monday; day(T) = 2026-06-15).
private let t = RFC3339.parse("2026-06-15T12:00:00Z")!
private func day(_ text: String) -> Day { Day(parsing: text)! }

private func subject(_ code: String, enrolled: Instant? = nil, withdrawn: Instant? = nil, first: Instant? = nil,
                     last: Instant? = nil, days: [Day] = [], covering: Int = 28) -> SubjectFacts {
    SubjectFacts(code: code, enrolledAt: enrolled, withdrawnAt: withdrawn, firstDataAt: first ?? enrolled,
                 lastObservationAt: last, activity: ActivityDays(lastDay: t.day, days: days, covering: covering))
}

private func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance
}

@Suite("Student t and the incomplete beta function")
struct StatisticsTests {
    @Test("97.5% quantiles match the published table", arguments: [
        (1.0, 12.706), (2.0, 4.303), (3.0, 3.182), (5.0, 2.571), (10.0, 2.228), (30.0, 2.042), (120.0, 1.980),
    ])
    func quantiles(df: Double, published: Double) throws {
        let q = try #require(Statistics.studentTQuantile(0.975, degreesOfFreedom: df))
        #expect(abs(q - published) < 0.0005, "t(0.975, \(df)) = \(q)")
    }

    @Test("large degrees of freedom tend to the normal 1.960")
    func normalLimit() throws {
        let q = try #require(Statistics.studentTQuantile(0.975, degreesOfFreedom: 1_000_000))
        #expect(abs(q - 1.959964) < 0.0001)
    }

    @Test("the quantile inverts the distribution function", arguments: [0.6, 0.9, 0.95, 0.99, 0.999])
    func inverse(p: Double) throws {
        for df in [1.0, 2.5, 7, 40] {
            let q = try #require(Statistics.studentTQuantile(p, degreesOfFreedom: df))
            #expect(abs(Statistics.studentTCDF(q, degreesOfFreedom: df) - p) < 1e-9)
            let lower = try #require(Statistics.studentTQuantile(1 - p, degreesOfFreedom: df))
            #expect(abs(lower + q) < 1e-9, "symmetric around 0")
        }
        #expect(Statistics.studentTCDF(0, degreesOfFreedom: 3) == 0.5)
        #expect(Statistics.studentTQuantile(1, degreesOfFreedom: 3) == nil)
        #expect(Statistics.studentTQuantile(0.5, degreesOfFreedom: 0) == nil)
    }

    @Test("t with 1 degree of freedom is Cauchy: F(t) = 1/2 + atan(t)/pi")
    func cauchy() {
        // F(1) = 0.75 exactly; F(sqrt(3)) = 1/2 + 1/3.
        #expect(abs(Statistics.studentTCDF(1, degreesOfFreedom: 1) - 0.75) < 1e-12)
        #expect(abs(Statistics.studentTCDF(3.0.squareRoot(), degreesOfFreedom: 1) - (0.5 + 1.0 / 3)) < 1e-12)
    }

    @Test("incomplete beta: closed forms")
    func beta() {
        for x in [0.0, 0.1, 0.37, 0.5, 0.9, 1.0] {
            #expect(abs(Statistics.regularizedIncompleteBeta(x, a: 1, b: 1) - x) < 1e-12)
            #expect(abs(Statistics.regularizedIncompleteBeta(x, a: 3, b: 1) - x * x * x) < 1e-12)
            // I_x(1, b) = 1 - (1 - x)^b
            let oneMinus = (1 - x) * (1 - x)
            #expect(abs(Statistics.regularizedIncompleteBeta(x, a: 1, b: 2) - (1 - oneMinus)) < 1e-12)
        }
        #expect(abs(Statistics.regularizedIncompleteBeta(0.5, a: 7.5, b: 7.5) - 0.5) < 1e-12)
    }

    @Test("mean, sample standard deviation and the 95% interval of a mean")
    func interval() throws {
        #expect(Statistics.mean([]) == nil)
        #expect(Statistics.sampleStandardDeviation([4]) == nil)
        #expect(Statistics.confidenceInterval95(of: [4]) == nil)
        // 1, 2, 3: mean 2, s = 1, half-width t(0.975, 2) / sqrt(3).
        let ci = try #require(Statistics.confidenceInterval95(of: [1, 2, 3]))
        let half = 4.302652729749464 / 3.0.squareRoot()
        #expect(abs(ci.lower - (2 - half)) < 1e-6 && abs(ci.upper - (2 + half)) < 1e-6)
        let flat = try #require(Statistics.confidenceInterval95(of: [5, 5, 5, 5]))
        #expect(flat.lower == 5 && flat.upper == 5)
    }
}

@Suite("Activity days")
struct ActivityDaysTests {
    @Test("days are kept inside the covered span and counted by range")
    func bits() {
        let last = day("2026-06-15")
        let a = ActivityDays(lastDay: last, days: [last, day("2026-06-14"), day("2026-05-19"), day("2026-05-18"),
                                                   day("2026-06-16")], covering: 28)
        #expect(a.words.count == 1)
        #expect(a.contains(last) && a.contains(day("2026-05-19")))
        #expect(!a.contains(day("2026-05-18")), "29 days back is outside 28 covered days")
        #expect(!a.contains(day("2026-06-16")), "after the last day")
        #expect(a.count(in: day("2026-05-19")...last) == 3)
        #expect(a.days == [day("2026-05-19"), day("2026-06-14"), last])
    }

    @Test("a long history spans several words, bit 63 included")
    func words() {
        let last = day("2026-06-15")
        let old = [63, 64, 100].map { last.advanced(by: -$0) }
        let a = ActivityDays(lastDay: last, days: old, covering: 105)
        #expect(a.words.count == 2)
        #expect(a.words[0] == 1 << 63)
        for d in old { #expect(a.contains(d)) }
        #expect(a.count(in: last.advanced(by: -104)...last) == 3)
        #expect(!a.contains(last.advanced(by: -62)))
    }

    @Test("counting a range agrees with asking day by day, ranges outside the span included", arguments: 0..<30)
    func countByRange(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed))
        let last = day("2026-06-15")
        let covering = [7, 28, 64, 105, 128, 200].randomElement(using: &rng)!
        let days = (0..<Int.random(in: 0...80, using: &rng)).map { _ in last.advanced(by: -Int.random(in: -5..<210, using: &rng)) }
        let a = ActivityDays(lastDay: last, days: days, covering: covering)
        for _ in 0..<40 {
            let from = last.advanced(by: -Int.random(in: -10..<220, using: &rng))
            let to = from.advanced(by: Int.random(in: 0..<150, using: &rng))
            var expected = 0
            for d in from...to where a.contains(d) { expected += 1 }
            #expect(a.count(in: from...to) == expected, "seed \(seed): \(from)...\(to), \(covering) days")
        }
    }

    @Test("rebasing onto a later day shifts the days and drops those past the span", arguments: 0..<30)
    func rebased(seed: Int) {
        var rng = SplitMix(seed: 100 + UInt64(seed))
        let last = day("2026-06-15")
        let days = (0..<Int.random(in: 0...80, using: &rng)).map { _ in last.advanced(by: -Int.random(in: 0..<128, using: &rng)) }
        let a = ActivityDays(lastDay: last, days: days, covering: 128)
        let newLast = last.advanced(by: Int.random(in: 0..<140, using: &rng))
        let covering = [1, 7, 28, 64, 105, 128].randomElement(using: &rng)!
        #expect(a.rebased(lastDay: newLast, covering: covering) == ActivityDays(lastDay: newLast, days: days, covering: covering),
                "seed \(seed)")
        // From a roll-up's two words, as the readers rebase them (a later day, the same, an earlier one).
        for target in [newLast, last, last.advanced(by: -Int.random(in: 1..<40, using: &rng))] {
            #expect(ActivityDays.rebased(lastDay: last, lo: a.words[0], hi: a.words[1], to: target, covering: covering)
                        == a.rebased(lastDay: target, covering: covering), "seed \(seed), to \(target)")
        }
    }
}

@Suite("Subjects and follow-up (metrics.md)")
struct FollowUpMetricsTests {
    /// Enrolments and withdrawals on both sides of `T`.
    let subjects = [
        subject("a-enrolled-10d", enrolled: t.adding(days: -10)),
        subject("b-enrolled-at-T", enrolled: t),
        subject("c-enrolled-after-T", enrolled: t.adding(millis: 1)),
        subject("d-withdrawn", enrolled: t.adding(days: -40), withdrawn: t.adding(days: -1)),
        subject("e-withdrawn-at-T", enrolled: t.adding(days: -20), withdrawn: t),
        subject("f-withdraws-later", enrolled: t.adding(days: -5), withdrawn: t.adding(days: 1.0 / 24)),
        subject("g-never-enrolled", first: t.adding(days: -3)),
        subject("h-enrols-after-T", enrolled: t.adding(days: 1), first: t.adding(days: -2)),
        subject("i-data-after-T", first: t.adding(millis: 1)),
    ]

    @Test("enrolled, withdrawn, in follow-up and unenrolled count only what happened by T")
    func counts() {
        #expect(Metrics.enrolled(subjects, asOf: t) == 5)      // a b d e f
        #expect(Metrics.withdrawn(subjects, asOf: t) == 2)     // d e
        #expect(Metrics.unenrolledSubjects(subjects, asOf: t) == 2)  // g h
        let f = Metrics.pilot(subjects, target: 10, end: day("2027-01-01"), asOf: t)
        #expect(f.inFollowUp == 3)
        #expect(f.enrolmentPct == 50)
        // At an earlier T, d's withdrawal has not happened yet and b, a are not enrolled.
        let earlier = t.adding(days: -15)
        #expect(Metrics.enrolled(subjects, asOf: earlier) == 2)   // d e
        #expect(Metrics.withdrawn(subjects, asOf: earlier) == 0)
    }

    @Test("the enrolment rate counts (T-30d, T]: exactly 30 days before is out")
    func rate() {
        let s = [
            subject("x1", enrolled: t.adding(days: -30)),
            subject("x2", enrolled: t.adding(days: -30).adding(millis: 1)),
            subject("x3", enrolled: t),
            subject("x4", enrolled: t.adding(days: 2)),
        ]
        #expect(Metrics.enrolmentRate30d(s, asOf: t) == 2)
    }

    @Test("projection: T + 30d × remaining / rate, on track when on or before the end date")
    func projection() throws {
        // 5 enrolled, target 20, 4 in 30 days: T + 112.5 days = 2026-10-06T00:00Z.
        let d = try #require(Metrics.projectedTargetDate(enrolled: 5, target: 20, rate30d: 4, asOf: t))
        #expect(d == day("2026-10-06"))
        #expect(Metrics.onTrack(enrolled: 5, target: 20, projected: d, end: day("2026-10-06")))
        #expect(!Metrics.onTrack(enrolled: 5, target: 20, projected: d, end: day("2026-10-05")))
        #expect(Metrics.projectedTargetDate(enrolled: 20, target: 20, rate30d: 4, asOf: t) == nil)
        #expect(Metrics.onTrack(enrolled: 20, target: 20, projected: nil, end: day("2026-01-01")))
        #expect(Metrics.projectedTargetDate(enrolled: 5, target: 20, rate30d: 0, asOf: t) == nil)
        #expect(!Metrics.onTrack(enrolled: 5, target: 20, projected: nil, end: day("2030-01-01")))
        #expect(Metrics.enrolmentPct(enrolled: 3, target: 0) == nil)
    }

    @Test("active in (T-7d, T]: exactly 7 days before is out; withdrawn and unenrolled never count")
    func active() {
        let e = t.adding(days: -60)
        let s = [
            subject("edge-out", enrolled: e, last: t.adding(days: -7)),
            subject("edge-in", enrolled: e, last: t.adding(days: -7).adding(millis: 1)),
            subject("at-T", enrolled: e, last: t),
            subject("withdrawn", enrolled: e, withdrawn: t.adding(days: -1), last: t),
            subject("unenrolled", first: e, last: t),
            subject("never", enrolled: e),
        ]
        #expect(Metrics.active7d(s, asOf: t) == 2)
    }

    @Test("follow-up days run from enrolment to T or withdrawal, whichever is first")
    func followUp() {
        let w = subject("w", enrolled: t.adding(days: -10), withdrawn: t.adding(days: -2.5))
        #expect(Metrics.followUpDays(w, asOf: t) == 7.5)
        let open = subject("o", enrolled: t.adding(days: -1.25))
        #expect(Metrics.followUpDays(open, asOf: t) == 1.25)
        #expect(Metrics.followUpDays(subject("n", first: t), asOf: t) == nil)
    }

    @Test("adherence: days with data over the window from max(day(T) - 27, enrolment day) to day(T)")
    func adherence() throws {
        // Long-enrolled: window 2026-05-19...2026-06-15 (28 days), data on 14 of them (+1 before the window).
        let long = (0..<14).map { day("2026-05-19").advanced(by: 2 * $0) } + [day("2026-05-18")]
        let p = subject("p", enrolled: RFC3339.parse("2026-05-01T08:00:00Z"), days: long, covering: 40)
        #expect(Metrics.adherenceWindow(enrolment: p.enrolledAt!, asOf: t) == day("2026-05-19")...day("2026-06-15"))
        #expect(Metrics.subjectAdherence(p, asOf: t) == 50)
        // Enrolled late on 2026-06-13: window 06-13...06-15 (3 days), data on 06-13 and 06-15 (06-12 is before it).
        let q = subject("q", enrolled: RFC3339.parse("2026-06-13T20:00:00Z"),
                        days: [day("2026-06-12"), day("2026-06-13"), day("2026-06-15")])
        #expect(Metrics.adherenceWindow(enrolment: q.enrolledAt!, asOf: t) == day("2026-06-13")...day("2026-06-15"))
        let r = subject("r", enrolled: t.adding(days: -100))
        let withdrawn = subject("s", enrolled: t.adding(days: -100), withdrawn: t.adding(days: -1),
                                days: (0..<28).map { t.day.advanced(by: -$0) })
        let mean = try #require(Metrics.transmissionAdherence([p, q, r, withdrawn], asOf: t))
        #expect(close(mean, (50 + 200.0 / 3 + 0) / 3))
        #expect(Metrics.transmissionAdherence([withdrawn, subject("u", first: t)], asOf: t) == nil,
                "nobody in follow-up: null, not 0")
        // Enrolled at T itself: a one-day window.
        let today = subject("today", enrolled: t, days: [t.day])
        #expect(Metrics.subjectAdherence(today, asOf: t) == 100)
    }

    @Test("programme figures pool subjects: adherence is not a mean of pilot means")
    func pooling() throws {
        let e = t.adding(days: -100)
        let full = (0..<28).map { t.day.advanced(by: -$0) }
        let pilotA = [subject("a1", enrolled: e, last: t, days: full)]
        let pilotB = [subject("b1", enrolled: e), subject("b2", enrolled: e), subject("b3", enrolled: e)]
        let f = Metrics.programme([(pilotA, 10), (pilotB, 30)], asOf: t)
        #expect(f.pilots == 2 && f.enrolled == 4 && f.enrolmentTarget == 40 && f.inFollowUp == 4)
        #expect(f.enrolmentPct == 10)
        #expect(f.active7d == 1)
        #expect(f.transmissionAdherence == 25, "(100 + 0 + 0 + 0) / 4, where a mean of pilot means would say 50")
        #expect(f.lastObservationAt == t)
        #expect(Metrics.programme([], asOf: t).transmissionAdherence == nil)
    }

    @Test("milestones: met, missed or pending; the next one is the first pending")
    func milestones() {
        let s = [
            subject("m1", enrolled: RFC3339.parse("2026-03-31T23:59:59.999Z")),
            subject("m2", enrolled: RFC3339.parse("2026-04-01T00:00:00Z")),
            subject("m3", enrolled: RFC3339.parse("2026-05-10T00:00:00Z")),
        ]
        let ms = [Milestone(date: day("2026-07-31"), enrolled: 5), Milestone(date: day("2026-03-31"), enrolled: 1),
                  Milestone(date: day("2026-04-01"), enrolled: 3)]
        let p = Metrics.milestones(ms, subjects: s, asOf: t)
        #expect(p.map(\.milestone.date) == [day("2026-03-31"), day("2026-04-01"), day("2026-07-31")])
        #expect(p.map(\.enrolled) == [1, 2, 3])
        #expect(p.map(\.state) == [.met, .missed, .pending])
        #expect(Metrics.nextMilestone(ms, subjects: s, asOf: t)?.milestone.enrolled == 5)
    }

    @Test("weekly history: enrolments per 7 UTC days and adherence at each week's end")
    func weekly() throws {
        // Enrolled 2026-06-01 08:00; data every day from 06-01 to 06-15.
        let days = (0..<15).map { day("2026-06-01").advanced(by: $0) }
        let a = subject("a", enrolled: RFC3339.parse("2026-06-01T08:00:00Z"), days: days,
                        covering: Metrics.historyDays(weeks: 3))
        let b = subject("b", enrolled: RFC3339.parse("2026-06-09T00:00:00Z"), covering: Metrics.historyDays(weeks: 3))
        let w = Metrics.weekly([a, b], weeks: 3, asOf: t)
        #expect(w.map(\.weekEnding) == [day("2026-06-01"), day("2026-06-08"), day("2026-06-15")])
        #expect(w.map(\.enrolments) == [1, 0, 1])
        // End of 06-01: a alone, window 06-01...06-01 → 100%. End of 06-08: a, 8 of 8 days → 100%.
        // At T: a 15/15 = 100%, b 0/7 = 0% → 50%.
        #expect(w.map(\.transmissionAdherence) == [100, 100, 50])
    }
}

@Suite("Outcome indicators (metrics.md)")
struct OutcomeMetricsTests {
    let e = RFC3339.parse("2026-03-01T00:00:00Z")!
    let windows = OutcomeWindows.standard

    @Test("baseline: earliest value in [enrolment - 30d, enrolment + 14d]")
    func baseline() {
        let lo = e.adding(days: -30), hi = e.adding(days: 14)
        let justOutside = [Reading(at: lo.adding(millis: -1), value: 1), Reading(at: hi.adding(millis: 1), value: 2)]
        #expect(Metrics.baseline(justOutside, enrolment: e, windows: windows, asOf: t) == nil)
        let edges = justOutside + [Reading(at: hi, value: 4), Reading(at: lo, value: 3)]
        #expect(Metrics.baseline(edges, enrolment: e, windows: windows, asOf: t)?.value == 3)
        #expect(Metrics.baseline([Reading(at: hi, value: 4)], enrolment: e, windows: windows, asOf: t)?.value == 4)
        // Nothing after T counts, even inside the window.
        #expect(Metrics.baseline([Reading(at: e.adding(days: 1), value: 5)], enrolment: e, windows: windows,
                                 asOf: e)?.value == nil)
        // A catalogue override widens the window.
        let wide = OutcomeWindows(baselineBeforeDays: 90, baselineAfterDays: 14, followUpDays: 90)
        #expect(Metrics.baseline([Reading(at: e.adding(days: -60), value: 6)], enrolment: e, windows: wide, asOf: t)?.value == 6)
    }

    @Test("latest: latest value in [enrolment + 60d, T]")
    func latest() {
        let lo = e.adding(days: 60)
        let early = Reading(at: lo.adding(millis: -1), value: 1)
        #expect(Metrics.latest([early], enrolment: e, windows: windows, asOf: t) == nil, "59.99… days is not follow-up")
        #expect(Metrics.latest([early, Reading(at: lo, value: 2)], enrolment: e, windows: windows, asOf: t)?.value == 2)
        let values = [early, Reading(at: lo, value: 2), Reading(at: t, value: 3), Reading(at: t.adding(millis: 1), value: 4)]
        #expect(Metrics.latest(values, enrolment: e, windows: windows, asOf: t)?.value == 3)
        #expect(Metrics.latestWindow(enrolment: e, windows: windows, asOf: lo.adding(millis: -1)) == nil)
    }

    let spo2 = Indicator(code: "spo2", name: "SpO2", kind: .measurement, unit: "%", range: ValueRange(min: 50, max: 100),
                         programmes: ["respiratory"], direction: .higher, target: ValueRange(min: 90, max: 100))

    @Test("figures from paired values: means, change with its t interval, shares in target and improved")
    func figures() throws {
        let pairs = [OutcomePair(baseline: 90, latest: 92), OutcomePair(baseline: 88, latest: 89),
                     OutcomePair(baseline: 95, latest: 94)]
        let f = Metrics.outcome(spo2, pairs: pairs)
        #expect(f.nPaired == 3)
        #expect(close(f.meanBaseline, 91))
        #expect(close(f.meanLatest, 275.0 / 3))
        // Changes 2, 1, -1: mean 2/3, s² = ((4/3)² + (1/3)² + (5/3)²) / 2 = 7/3.
        #expect(close(f.meanChange, 2.0 / 3))
        let half = 4.302652729749464 * (7.0 / 3).squareRoot() / 3.0.squareRoot()
        let ci = try #require(f.changeCI95)
        #expect(close(ci.lower, 2.0 / 3 - half, 1e-6) && close(ci.upper, 2.0 / 3 + half, 1e-6))
        #expect(close(f.pctInTarget, 200.0 / 3), "92 and 94 are in 90..100, 89 is not")
        #expect(close(f.improvedPct, 200.0 / 3), "2 of 3 went up")

        var lower = spo2
        lower.direction = .lower
        #expect(close(Metrics.outcome(lower, pairs: pairs).improvedPct, 100.0 / 3))
        var stable = spo2
        stable.direction = .stable
        stable.target = nil
        let s = Metrics.outcome(stable, pairs: pairs)
        #expect(s.improvedPct == nil && s.pctInTarget == nil)
    }

    @Test("target bounds are included; an unchanged value is not improved")
    func bounds() {
        let pairs = [OutcomePair(baseline: 90, latest: 90), OutcomePair(baseline: 99, latest: 100)]
        let f = Metrics.outcome(spo2, pairs: pairs)
        #expect(f.pctInTarget == 100)
        #expect(f.improvedPct == 50)
    }

    @Test("one pair: means but no interval; no pair: every figure null")
    func small() {
        let one = Metrics.outcome(spo2, pairs: [OutcomePair(baseline: 90, latest: 93)])
        #expect(one.nPaired == 1 && one.meanChange == 3 && one.changeCI95 == nil && one.improvedPct == 100)
        let none = Metrics.outcome(spo2, pairs: [])
        #expect(none.nPaired == 0)
        #expect(none.meanBaseline == nil && none.meanLatest == nil && none.meanChange == nil)
        #expect(none.changeCI95 == nil && none.pctInTarget == nil && none.improvedPct == nil)
    }
}

@Suite("Event rates (metrics.md)")
struct EventMetricsTests {
    let s1 = subject("s1", enrolled: t.adding(days: -100), withdrawn: t.adding(days: -40))
    let s2 = subject("s2", enrolled: t.adding(days: -30))
    let unenrolled = subject("u", first: t.adding(days: -50))

    var events: [SubjectEvent] {
        [
            SubjectEvent(subject: "s1", indicator: "hosp", at: t.adding(days: -101)),  // before enrolment
            SubjectEvent(subject: "s1", indicator: "hosp", at: t.adding(days: -100)),  // at enrolment
            SubjectEvent(subject: "s1", indicator: "hosp", at: t.adding(days: -40)),   // at withdrawal
            SubjectEvent(subject: "s1", indicator: "hosp", at: t.adding(days: -39)),   // after withdrawal
            SubjectEvent(subject: "s2", indicator: "hosp", at: t.adding(days: -1)),
            SubjectEvent(subject: "s2", indicator: "hosp", at: t.adding(days: 1)),     // after T
            SubjectEvent(subject: "s2", indicator: "exac", at: t),
            SubjectEvent(subject: "u", indicator: "hosp", at: t.adding(days: -2)),     // not enrolled
        ]
    }

    @Test("events inside follow-up, per 100 patient-months of follow-up")
    func wholeLife() {
        let f = Metrics.events(["hosp", "exac", "none"], subjects: [s1, s2, unenrolled], events: events, since: nil, asOf: t)
        #expect(f.map(\.events) == [3, 1, 0])
        #expect(f[0].patientDays == 90)
        #expect(close(f[0].ratePer100PatientMonths, 100 * 3 / (90 / 30.4375)))
        #expect(f[2].ratePer100PatientMonths == 0)
    }

    @Test("a period cuts both the events and the patient-days")
    func period() {
        let f = Metrics.events(["hosp"], subjects: [s1, s2], events: events, since: t.adding(days: -50), asOf: t)
        // s1: [T-50d, T-40d] = 10 days, 1 event; s2: 30 days, 1 event.
        #expect(f[0].events == 2)
        #expect(f[0].patientDays == 40)
        #expect(close(f[0].ratePer100PatientMonths, 100 * 2 / (40 / 30.4375)))
    }

    @Test("no follow-up at all: the rate is null")
    func empty() {
        let f = Metrics.events(["hosp"], subjects: [unenrolled], events: events, since: nil, asOf: t)
        #expect(f[0].events == 0 && f[0].patientDays == 0 && f[0].ratePer100PatientMonths == nil)
    }
}
