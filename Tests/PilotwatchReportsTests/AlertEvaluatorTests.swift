import PilotwatchCore
import PilotwatchStore
import Testing

@testable import PilotwatchReports

/// Each alert rule: a case that raises it and its nearest neighbour that does not.
@Suite("Alert rules, each raised and not raised by its neighbour")
struct AlertEvaluatorTests {
    let t = RFC3339.parse("2026-11-30T12:00:00Z")!
    let pilot = Pilot(id: "card-x", name: "X", programme: "cardiac", lead: "L", call: "c", funders: ["f"],
                      start: Day(parsing: "2026-01-01")!, end: Day(parsing: "2027-12-31")!, enrolmentTarget: 100,
                      milestones: [], outcomes: [])

    /// Figures of a pilot with nothing wrong.
    var healthy: PilotFigures {
        PilotFigures(enrolled: 50, withdrawn: 0, inFollowUp: 50, enrolmentTarget: 100, enrolmentPct: 50,
                     enrolmentRate30d: 10, projectedTargetDate: Day(parsing: "2027-06-01"), onTrack: true, active7d: 40,
                     transmissionAdherence: 80, unenrolledSubjects: 0, lastObservationAt: t.adding(millis: -3_600_000))
    }

    func rules(_ f: PilotFigures, milestones: [MilestoneProgress] = [], lastWeek: MessageCounts = MessageCounts(),
               rate: Double? = nil, devices: DeviceCounts = DeviceCounts(), thresholds: AlertThresholds = .defaults,
               pilot: Pilot? = nil, at: Instant? = nil) -> [AlertRule] {
        AlertEvaluator.pilot(pilot ?? self.pilot, figures: f, milestones: milestones, lastWeek: lastWeek, refusalRate: rate,
                             devices: devices, thresholds: thresholds, asOf: at ?? t).map(\.rule)
    }

    func device(_ code: String, lastSeenHoursAgo: Double, battery: Double?) -> DeviceRecord {
        DeviceRecord(pilot: "card-x", code: code, firstSeen: t.adding(days: -100),
                     lastSeen: t.adding(millis: -Int64(lastSeenHoursAgo * 3_600_000)), messages: 1, duplicates: 0,
                     refused: 0, statuses: 0, observations: 1, statusState: nil, statusAt: nil, batteryPct: battery, firmware: nil)
    }

    @Test func aHealthyPilotRaisesNothing() {
        #expect(rules(healthy) == [])
    }

    @Test func behindTarget() {
        var f = healthy
        f.onTrack = false
        #expect(rules(f) == [.behindTarget])
    }

    @Test func missedMilestoneIsTheLatestPastOneOnly() {
        let missed = MilestoneProgress(milestone: Milestone(date: Day(parsing: "2026-06-30")!, enrolled: 60), enrolled: 40, state: .missed)
        let metLater = MilestoneProgress(milestone: Milestone(date: Day(parsing: "2026-09-30")!, enrolled: 45), enrolled: 48, state: .met)
        let pending = MilestoneProgress(milestone: Milestone(date: Day(parsing: "2026-12-31")!, enrolled: 90), enrolled: 50, state: .pending)
        #expect(rules(healthy, milestones: [missed, pending]) == [.missedMilestone])
        // Caught up by the next milestone: the old miss is history, not an alert.
        #expect(rules(healthy, milestones: [missed, metLater, pending]) == [])
    }

    @Test func silentAfterTheBoundAndNotBefore() {
        var f = healthy
        f.lastObservationAt = t.adding(millis: -49 * 3_600_000)
        #expect(rules(f) == [.silent])
        f.lastObservationAt = t.adding(millis: -47 * 3_600_000)
        #expect(rules(f) == [])
        // A pilot's own bound.
        var mine = AlertThresholds()
        mine.silentHours = 24
        f.lastObservationAt = t.adding(millis: -30 * 3_600_000)
        #expect(rules(f, thresholds: mine) == [.silent])
    }

    @Test func lowActivityBelowHalfOfFollowUp() {
        var f = healthy
        f.active7d = 24  // of 50
        #expect(rules(f) == [.lowActivity])
        f.active7d = 25
        #expect(rules(f) == [])
    }

    @Test func lowAdherenceBelowSixtyPercent() {
        var f = healthy
        f.transmissionAdherence = 59.9
        #expect(rules(f) == [.lowAdherence])
        f.transmissionAdherence = 60
        #expect(rules(f) == [])
    }

    @Test func devicesSilentFromTwentyPercent() {
        let quiet = (0..<2).map { device("q\($0)", lastSeenHoursAgo: 72, battery: 90) }
        let busy = (0..<8).map { device("b\($0)", lastSeenHoursAgo: 1, battery: 90) }
        #expect(rules(healthy, devices: DeviceCounts(quiet + busy, thresholds: .defaults, asOf: t)) == [.devicesSilent])
        let busier = (0..<9).map { device("b\($0)", lastSeenHoursAgo: 1, battery: 90) }
        #expect(rules(healthy, devices: DeviceCounts([quiet[0]] + busier, thresholds: .defaults, asOf: t)) == [])
    }

    @Test func aDeviceOfflineOrSilentForAMonthIsRetiredNotSilent() {
        let busy = (0..<8).map { device("b\($0)", lastSeenHoursAgo: 1, battery: 90) }
        // Still sending through a back-end, but its last status said offline three days ago.
        var offline = device("o1", lastSeenHoursAgo: 1, battery: 90)
        offline.statusState = .offline
        offline.statusAt = t.adding(days: -3)
        let quiet = device("q1", lastSeenHoursAgo: 72, battery: 90)
        let counts = DeviceCounts(busy + [offline, quiet], thresholds: .defaults, asOf: t)
        #expect(counts.total == 10 && counts.silent == 2)
        #expect(rules(healthy, devices: counts) == [.devicesSilent])
        // Silent for 40 days: retired, out of both counts.
        let gone = (0..<5).map { device("g\($0)", lastSeenHoursAgo: 40 * 24, battery: 90) }
        let retired = DeviceCounts(busy + gone + [quiet], thresholds: .defaults, asOf: t)
        #expect(retired.total == 9 && retired.silent == 1)
        #expect(rules(healthy, devices: retired) == [])
    }

    @Test func lowBatteryFromTwentyPercentOfDevices() {
        let low = (0..<2).map { device("l\($0)", lastSeenHoursAgo: 1, battery: 15) }
        let fine = (0..<8).map { device("f\($0)", lastSeenHoursAgo: 1, battery: 20) }
        #expect(rules(healthy, devices: DeviceCounts(low + fine, thresholds: .defaults, asOf: t)) == [.lowBattery])
        let unknown = (0..<8).map { device("u\($0)", lastSeenHoursAgo: 1, battery: nil) }
        #expect(rules(healthy, devices: DeviceCounts([low[0]] + unknown + [fine[0]], thresholds: .defaults, asOf: t)) == [])
    }

    @Test func refusalsAboveFivePercent() {
        var week = MessageCounts()
        week.accepted = 94; week.refused = 6
        #expect(rules(healthy, lastWeek: week, rate: 6) == [.refusals])
        week.accepted = 95; week.refused = 5
        #expect(rules(healthy, lastWeek: week, rate: 5) == [])
    }

    @Test func unenrolledSubjectsFromTheThreshold() {
        var f = healthy
        f.unenrolledSubjects = 1
        #expect(rules(f) == [.unenrolledSubjects])
        var mine = AlertThresholds()
        mine.unenrolledSubjects = 2
        #expect(rules(f, thresholds: mine) == [])
    }

    @Test func aRuleSwitchedOffAndAPilotNotRunningRaiseNothing() {
        var f = healthy
        f.onTrack = false
        var off = AlertThresholds()
        off.off = [.behindTarget]
        #expect(rules(f, thresholds: off) == [])
        // Before its start and after its end, a pilot is not chased.
        #expect(rules(f, at: RFC3339.parse("2025-12-31T12:00:00Z")!) == [])
        #expect(rules(f, at: RFC3339.parse("2028-01-01T12:00:00Z")!) == [])
    }

    @Test func theValuesSayWhatRaisedIt() {
        var f = healthy
        f.transmissionAdherence = 21.5
        let c = AlertEvaluator.pilot(pilot, figures: f, milestones: [], lastWeek: MessageCounts(), refusalRate: nil,
                                     devices: DeviceCounts(), thresholds: .defaults, asOf: t)
        #expect(c.count == 1)
        #expect(c.first?.values["transmission_adherence"]?.number?.double == 21.5)
        #expect(c.first?.values["threshold_pct"]?.number?.double == 60)
        #expect(c.first?.message.contains("below 60%") == true)
    }

    // MARK: - The service's rules

    func heartbeat(beatSecondsAgo: Double, connected: Bool = true, disconnectedSecondsAgo: Double = 0,
                   backlog: Int64 = 0) -> ServiceHeartbeat {
        ServiceHeartbeat(pid: 1, startedAt: t.adding(days: -1), beatAt: t.adding(millis: -Int64(beatSecondsAgo * 1000)),
                         brokerConnected: connected, connectionSince: t.adding(millis: -Int64(disconnectedSecondsAgo * 1000)),
                         lastMessageAt: nil, backlogBytes: backlog, applyLagMillis: backlog > 0 ? 5000 : 0, stoppedAt: nil)
    }

    func service(_ h: ServiceHeartbeat?, refused: Int = 0, limit: Int64 = 256 << 20) -> [AlertRule] {
        AlertEvaluator.service(health: IngestHealth.evaluate(h, now: t), backlogLimit: limit, refusedLastHour: refused,
                               thresholds: .defaults).map(\.rule)
    }

    @Test func ingestStoppedOnceTheHeartbeatIsStale() {
        #expect(service(heartbeat(beatSecondsAgo: 121)) == [.ingestStopped])
        #expect(service(heartbeat(beatSecondsAgo: 5)) == [])
    }

    @Test func brokerDisconnectedPastTheBound() {
        #expect(service(heartbeat(beatSecondsAgo: 1, connected: false, disconnectedSecondsAgo: 121)) == [.brokerDisconnected])
        #expect(service(heartbeat(beatSecondsAgo: 1, connected: false, disconnectedSecondsAgo: 60)) == [])
    }

    @Test func backlogAboveItsLimit() {
        #expect(service(heartbeat(beatSecondsAgo: 1, backlog: 300 << 20)) == [.backlog])
        #expect(service(heartbeat(beatSecondsAgo: 1, backlog: 200 << 20)) == [])
    }

    @Test func quarantineGrowingAboveItsRate() {
        #expect(service(heartbeat(beatSecondsAgo: 1), refused: 1001) == [.quarantineGrowing])
        #expect(service(heartbeat(beatSecondsAgo: 1), refused: 1000) == [])
    }
}
