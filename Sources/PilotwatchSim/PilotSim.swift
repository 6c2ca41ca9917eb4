#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PilotwatchCore

/// One subject's evolving state for one indicator.
struct IndicatorState {
    var baseline: Double
    /// Change per month of follow-up (this subject's own response).
    var slope: Double
    /// For `everyDays`: when the next value is due.
    var nextDue: Instant?
    var excursionStart: Instant?
}

/// A simulated subject: a pseudonym, a device, an enrolment, perhaps a withdrawal.
struct SubjectSim {
    var pseudonym: String
    /// `dev-NNNN` for a device pilot; unused for a back-end pilot.
    var device: String
    var hub: Int
    var enrolledAt: Instant
    var withdrawAt: Instant?
    /// False for the deliberate "never enrolled" subjects.
    var reportsEnrolment: Bool
    var adherence: Double
    /// Battery drain of the home device, % per day.
    var drain: Double
    var style: TimeStyle
    var indicators: [IndicatorState]
    var rng: SimRandom
    var lastStatus: Instant?
    var finished = false
}

/// A pilot back-end (`hub-01`): holds records until its next flush.
struct HubSim {
    var id: String
    var style: TimeStyle
    var pending: [Record] = []
    var lastStatus: Instant?
}

private let millisPerHour: Int64 = 3_600_000
private let daysPerMonth = 30.4375

@inline(__always) private func wholeSeconds(_ t: Instant) -> Instant { Instant(millis: t.millis - ((t.millis % 1000) + 1000) % 1000) }

/// Everything one pilot does, one simulated day at a time.
struct PilotSim {
    let plan: PilotPlan
    let prefix: String
    let tag: String
    let end: Instant
    let silenceStart: Instant?
    let enrolStart: Day
    let followUpEnd: Instant
    let planIndex: [String: Int]
    let deviceSpace: Int
    var rng: SimRandom
    var wire: SimRandom
    var subjects: [SubjectSim] = []
    var active: [Int] = []
    var hubs: [HubSim]
    var reported = 0
    var unenrolledDays: [Day]
    var usedDevices: Set<Int> = []
    var usedPseudonyms: Set<String> = []
    var counters: [String: Int] = [:]
    var day = Day(index: 0)

    init(plan: PilotPlan, seed: UInt64, tag: String, end: Instant, topicRoot: String) {
        self.plan = plan
        self.prefix = "\(topicRoot)/\(plan.pilot.id)/"
        self.tag = tag
        self.end = end
        self.silenceStart = plan.misbehaviour.silentLastWeeks > 0 ? end.adding(days: -7 * plan.misbehaviour.silentLastWeeks) : nil
        self.enrolStart = plan.pilot.start.advanced(by: Int(plan.enrolment.delayDays.rounded(.up)))
        self.followUpEnd = plan.pilot.end.advanced(by: 1).start
        self.planIndex = Dictionary(plan.indicators.enumerated().map { ($1.code, $0) }, uniquingKeysWith: { a, _ in a })
        let population = plan.pilot.enrolmentTarget + plan.misbehaviour.unenrolledSubjects
        self.deviceSpace = population * 3 > 10_000 ? 1_000_000 : 10_000
        rng = SimRandom(seed: seed, stream: "pilot:" + plan.pilot.id)
        wire = SimRandom(seed: seed, stream: "wire:" + plan.pilot.id)
        var hubs: [HubSim] = []
        for h in 0..<plan.hubs {
            let n = h + 1
            hubs.append(HubSim(id: "hub-" + (n < 10 ? "0\(n)" : "\(n)"), style: rng.bernoulli(0.5) ? .local : .utc))
        }
        self.hubs = hubs
        var days: [Day] = []
        let span = max(1, min(180, plan.pilot.end.index - enrolStart.index - 14))
        for _ in 0..<plan.misbehaviour.unenrolledSubjects {
            days.append(enrolStart.advanced(by: 14 + rng.int(below: span)))
        }
        unenrolledDays = days.sorted()
    }

    // MARK: one day

    mutating func generate(day d: Day, into out: inout [SimMessage]) {
        guard d >= plan.pilot.start, d <= plan.pilot.end else { return }
        day = d
        counters.removeAll(keepingCapacity: true)
        enrol(day: d)

        var deviceRecords: [Record] = []
        var still: [Int] = []
        still.reserveCapacity(active.count)
        for i in active {
            deviceRecords.removeAll(keepingCapacity: true)
            let withdrawn = Self.subjectDay(&subjects[i], plan: plan, day: d, followUpEnd: followUpEnd,
                                            device: &deviceRecords, hub: &hubs[subjects[i].hub].pending)
            if !deviceRecords.isEmpty { sendDeviceDay(i, records: &deviceRecords, into: &out) }
            if withdrawn {
                if plan.transport == .device, subjects[i].lastStatus != nil, let w = subjects[i].withdrawAt {
                    let at = wholeSeconds(w.adding(millis: Int64(subjects[i].rng.uniform(1, 6) * Double(millisPerHour))))
                    sendStatus(device: subjects[i].device, online: false, at: at, battery: battery(i, at: at),
                               style: subjects[i].style, fleet: true, into: &out)
                }
                subjects[i].finished = true
            }
            if !subjects[i].finished { still.append(i) }
        }
        active = still

        if ParisTime.weekday(d) == 1, d.index - enrolStart.index >= 7 { pilotCounts(day: d) }
        announceSilence(day: d, into: &out)

        var k = 0.0
        while k * plan.hubEveryHours < 24 {
            let t = wholeSeconds(d.start.adding(millis: Int64(k * plan.hubEveryHours * Double(millisPerHour)) + Int64(rng.uniform(60, 900) * 1000)))
            for h in hubs.indices { flush(hub: h, at: t, into: &out) }
            k += 1
        }
    }

    // MARK: enrolment

    mutating func enrol(day d: Day) {
        let target = plan.pilot.enrolmentTarget
        let weekday = ParisTime.weekday(d)
        if d >= enrolStart, reported < target, (1...5).contains(weekday) {
            var rate = plan.enrolment.perWeek / 5
            if plan.enrolment.rampWeeks > 0 {
                rate *= min(1, (Double(d.index - enrolStart.index) + 0.5) / (plan.enrolment.rampWeeks * 7))
            }
            let n = min(rng.poisson(rate), target - reported)
            var times: [Instant] = []
            for _ in 0..<n { times.append(wholeSeconds(ParisTime.instant(day: d, localHours: rng.uniform(8.5, 17.5)))) }
            for t in times.sorted() { addSubject(enrolledAt: t, reportsEnrolment: true) }
        }
        while let u = unenrolledDays.first, u <= d {
            unenrolledDays.removeFirst()
            addSubject(enrolledAt: wholeSeconds(ParisTime.instant(day: d, localHours: rng.uniform(8, 12))), reportsEnrolment: false)
        }
    }

    /// True when a pseudonym's hex part holds a run of six digits (it could read as a date or a number).
    static func looksLikeNumber(_ s: String) -> Bool {
        var run = 0
        for b in s.utf8 {
            run = (b >= 48 && b <= 57) ? run + 1 : 0
            if run >= 6 { return true }
        }
        return false
    }

    mutating func addSubject(enrolledAt: Instant, reportsEnrolment: Bool) {
        var pseudonym = ""
        repeat { pseudonym = "p-" + rng.hex(8) } while Self.looksLikeNumber(pseudonym) || usedPseudonyms.contains(pseudonym)
        usedPseudonyms.insert(pseudonym)
        var device = ""
        if plan.transport == .device {
            var n = 0
            repeat { n = rng.int(below: deviceSpace) } while usedDevices.contains(n)
            usedDevices.insert(n)
            let digits = String(n)
            let width = deviceSpace > 10_000 ? 6 : 4
            device = "dev-" + String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var r = SimRandom(seed: rng.next())
        let hub = subjects.count % hubs.count
        let adherence = min(1, max(0.3, r.normal(mean: plan.adherence, sd: plan.adherence < 1 ? 0.08 : 0)))
        var withdrawAt: Instant?
        let p = min(plan.dropoutPerMonth, 0.999)
        if p > 0 {
            let days = r.exponential(rate: -log(1 - p) / daysPerMonth)
            if days.isFinite, days < enrolledAt.days(to: followUpEnd) { withdrawAt = wholeSeconds(enrolledAt.adding(days: days)) }
        }
        let style: TimeStyle = r.bernoulli(0.5) ? .local : .utc
        let drain = r.uniform(1.5, 4)
        var states: [IndicatorState] = []
        for ip in plan.indicators {
            let base = min(ip.range.max, max(ip.range.min, r.normal(mean: ip.baselineMean, sd: ip.baselineSD)))
            var st = IndicatorState(baseline: base, slope: r.normal(mean: ip.driftPerMonth, sd: ip.driftSD))
            if case .everyDays = ip.cadence {
                st.nextDue = ip.baselineBeforeDays > 0
                    ? wholeSeconds(enrolledAt.adding(days: -r.uniform(0, ip.baselineBeforeDays)))
                    : wholeSeconds(enrolledAt.adding(days: r.uniform(0.05, 3)))
            }
            states.append(st)
        }
        subjects.append(SubjectSim(pseudonym: pseudonym, device: device, hub: hub, enrolledAt: enrolledAt,
                                   withdrawAt: withdrawAt, reportsEnrolment: reportsEnrolment, adherence: adherence,
                                   drain: drain, style: style, indicators: states, rng: r))
        active.append(subjects.count - 1)
        if reportsEnrolment {
            reported += 1
            hubs[hub].pending.append(Record(subject: pseudonym, indicator: "enrolled", value: rng.bernoulli(0.3) ? "1" : nil,
                                            unit: nil, at: enrolledAt))
        }
    }

    // MARK: a subject's day

    /// Appends the subject's records of day `d` (device readings to `device`, the rest to `hub`);
    /// returns true when the subject withdraws that day.
    static func subjectDay(_ s: inout SubjectSim, plan: PilotPlan, day d: Day, followUpEnd: Instant,
                           device: inout [Record], hub: inout [Record]) -> Bool {
        let dayEnd = d.advanced(by: 1).start
        let from = max(s.enrolledAt, d.start)
        var to = min(dayEnd, followUpEnd)
        var withdrawn = false
        if let w = s.withdrawAt, w < to { to = w; withdrawn = true }
        guard from < to else { return withdrawn }

        var times = [[Instant]](repeating: [], count: plan.indicators.count)
        func add(_ k: Int, _ t: Instant) {
            let ip = plan.indicators[k]
            times[k].append(t)
            let rec = Record(subject: s.pseudonym, indicator: ip.code, value: value(&s, k, ip, at: t), unit: ip.unit, at: t)
            if ip.source == .device, plan.transport == .device { device.append(rec) } else { hub.append(rec) }
        }

        for (k, ip) in plan.indicators.enumerated() {
            if let e = ip.excursion {
                let ongoing = s.indicators[k].excursionStart.map { $0.days(to: d.start) < e.days } ?? false
                if !ongoing, s.rng.bernoulli(e.perYear / 365.25) {
                    s.indicators[k].excursionStart = d.start.adding(days: s.rng.unit())
                }
            }
            switch ip.cadence {
            case .perDay(let x):
                let n = s.rng.count(x)
                for slot in 0..<n where s.rng.bernoulli(s.adherence) {
                    let h = 7 + (Double(slot) + s.rng.uniform(0.1, 0.9)) * 15 / Double(n)
                    let t = wholeSeconds(ParisTime.instant(day: d, localHours: h))
                    if t > from, t < to { add(k, t) }
                }
            case .perWeek(let x):
                if s.rng.bernoulli(x / 7 * s.adherence) {
                    let t = wholeSeconds(ParisTime.instant(day: d, localHours: s.rng.uniform(7.5, 21)))
                    if t > from, t < to { add(k, t) }
                }
            case .everyDays(let every):
                while let due = s.indicators[k].nextDue, due < dayEnd {
                    guard due < to else { s.indicators[k].nextDue = nil; break }
                    if s.rng.bernoulli(0.5 + 0.5 * s.adherence) { add(k, due) }
                    s.indicators[k].nextDue = wholeSeconds(due.adding(days: every * s.rng.uniform(0.85, 1.15)))
                }
            case .with(let other):
                if let j = plan.indicators.firstIndex(where: { $0.code == other }), j < k {
                    for t in times[j] { add(k, t) }
                }
            }
        }

        let share = from.days(to: to)
        for e in plan.events where s.rng.bernoulli(e.rate / 365.25 * share) {
            let t = wholeSeconds(Instant(millis: from.millis + Int64(s.rng.unit() * Double(to.millis - from.millis))))
            if t > from, t < to {
                hub.append(Record(subject: s.pseudonym, indicator: e.code, value: s.rng.bernoulli(0.3) ? "1" : nil, unit: nil, at: t))
            }
        }
        if withdrawn, s.reportsEnrolment, let w = s.withdrawAt {
            hub.append(Record(subject: s.pseudonym, indicator: "withdrawn", value: nil, unit: nil, at: w))
        }
        return withdrawn
    }

    /// The value of indicator `k` at `t`, as sent: drifted, with excursion and noise, kept in range, rounded.
    static func value(_ s: inout SubjectSim, _ k: Int, _ ip: IndicatorPlan, at t: Instant) -> String {
        let st = s.indicators[k]
        let months = max(0, s.enrolledAt.days(to: t) / daysPerMonth)
        var v = st.baseline + st.slope * min(months, ip.driftMonths ?? months)
        if let e = ip.excursion, let start = st.excursionStart {
            let into = start.days(to: t)
            if into >= 0, into < e.days { v += e.size * sin(Double.pi * into / e.days) }
        }
        v += ip.noise > 0 ? ip.noise * s.rng.normal() : 0
        v = min(ip.range.max, max(ip.range.min, v))
        var sent = (v - ip.offset) / ip.factor
        // Keep the rounded value, converted back, inside the range.
        var scale = 1.0
        for _ in 0..<ip.decimals { scale *= 10 }
        let lo = ((ip.range.min - ip.offset) / ip.factor * scale).rounded(.up) / scale
        let hi = ((ip.range.max - ip.offset) / ip.factor * scale).rounded(.down) / scale
        if lo <= hi { sent = min(hi, max(lo, sent)) }
        return formatValue(sent, decimals: ip.decimals)
    }

    // MARK: sending

    func battery(_ i: Int, at t: Instant) -> Int {
        let used = max(0, subjects[i].enrolledAt.days(to: t)) * subjects[i].drain
        return Int((100 - used.truncatingRemainder(dividingBy: 85)).rounded(.down))
    }

    /// Whether messages of this sender belong to the fleet that goes silent.
    func isFleet(hub: Bool) -> Bool { plan.transport == .device ? !hub : hub }

    func emit(_ m: SimMessage, fleet: Bool, into out: inout [SimMessage]) {
        guard m.at <= end else { return }
        if fleet, let silenceStart, m.at >= silenceStart { return }
        out.append(m)
    }

    mutating func msgID(_ device: String) -> String {
        let n = counters[device, default: 0] + 1
        counters[device] = n
        let c = day.civil
        let yyyymmdd = c.year * 10_000 + c.month * 100 + c.day
        return "\(device)-\(tag)-\(yyyymmdd)-\(n)"
    }

    mutating func sendDeviceDay(_ i: Int, records: inout [Record], into out: inout [SimMessage]) {
        records.sort { $0.at < $1.at }
        guard let last = records.last?.at else { return }
        let sentAt = wholeSeconds(last.adding(millis: Int64(subjects[i].rng.uniform(2, 40) * 60_000)))
        if subjects[i].lastStatus.map({ $0.days(to: sentAt) >= plan.statusEveryDays }) ?? true {
            subjects[i].lastStatus = sentAt
            let at = sentAt.adding(millis: -5000)
            sendStatus(device: subjects[i].device, online: true, at: at, battery: battery(i, at: at),
                       style: subjects[i].style, fleet: true, into: &out)
        }
        sendObservations(device: subjects[i].device, hub: false, records: records, sentAt: sentAt,
                         style: subjects[i].style, into: &out)
    }

    func sendStatus(device: String, online: Bool, at: Instant, battery: Int?, style: TimeStyle, fleet: Bool,
                    into out: inout [SimMessage]) {
        let payload = Payload.status(online: online, at: at, battery: battery, firmware: plan.firmware, style: style)
        emit(SimMessage(topic: prefix + device + "/status", payload: payload, at: at, kind: .status, retain: true,
                        pilot: plan.pilot.id, observations: 0), fleet: fleet, into: &out)
    }

    mutating func flush(hub h: Int, at t: Instant, into out: inout [SimMessage]) {
        if hubs[h].lastStatus.map({ $0.days(to: t) >= plan.statusEveryDays - 0.01 }) ?? true {
            hubs[h].lastStatus = t
            sendStatus(device: hubs[h].id, online: true, at: t, battery: nil, style: hubs[h].style,
                       fleet: isFleet(hub: true), into: &out)
        }
        guard !hubs[h].pending.isEmpty else { return }
        var ready: [(Int, Record)] = []
        var rest: [Record] = []
        for (n, r) in hubs[h].pending.enumerated() {
            if r.at <= t { ready.append((n, r)) } else { rest.append(r) }
        }
        hubs[h].pending = rest
        guard !ready.isEmpty else { return }
        ready.sort { $0.1.at != $1.1.at ? $0.1.at < $1.1.at : $0.0 < $1.0 }
        let records = ready.map(\.1)
        var start = 0, chunk = 0
        while start < records.count {
            let stop = min(records.count, start + plan.batchMax)
            sendObservations(device: hubs[h].id, hub: true, records: Array(records[start..<stop]),
                             sentAt: t.adding(millis: Int64(chunk) * 2000), style: hubs[h].style, into: &out)
            start = stop
            chunk += 1
        }
    }

    mutating func pilotCounts(day d: Day) {
        guard !plan.pilotCounts.isEmpty else { return }
        let t = wholeSeconds(ParisTime.instant(day: d, localHours: 6))
        var inFollowUp = 0
        for i in active where subjects[i].reportsEnrolment && subjects[i].enrolledAt < t { inFollowUp += 1 }
        guard inFollowUp > 0 else { return }
        for c in plan.pilotCounts {
            let n = rng.poisson(c.rate * Double(inFollowUp))
            hubs[0].pending.append(Record(subject: nil, indicator: c.code, value: String(n), unit: nil, at: t))
        }
    }

    /// When the fleet goes silent, each of its senders that was online leaves an `offline` status
    /// (the broker publishing its will), spread over the first hour.
    func announceSilence(day d: Day, into out: inout [SimMessage]) {
        guard let ss = silenceStart, ss >= d.start, ss < d.advanced(by: 1).start else { return }
        func jitter(_ id: String) -> Int64 { Int64(stableHash(id) % 3_600) * 1000 }
        if plan.transport == .device {
            for i in active where subjects[i].lastStatus != nil && subjects[i].enrolledAt < ss {
                let at = ss.adding(millis: jitter(subjects[i].device))
                sendStatus(device: subjects[i].device, online: false, at: at, battery: battery(i, at: at),
                           style: subjects[i].style, fleet: false, into: &out)
            }
        } else {
            for hub in hubs where hub.lastStatus != nil {
                sendStatus(device: hub.id, online: false, at: ss.adding(millis: jitter(hub.id)), battery: nil,
                           style: hub.style, fleet: false, into: &out)
            }
        }
    }

    // MARK: observation messages and their misbehaviours

    mutating func sendObservations(device: String, hub: Bool, records: [Record], sentAt: Instant, style: TimeStyle,
                                   into out: inout [SimMessage]) {
        let topic = prefix + device + "/obs"
        let pilotField = hub && plan.pilotField ? plan.pilot.id : nil
        let fleet = isFleet(hub: hub)
        let payload = Payload.observations(msgID: msgID(device), sentAt: sentAt, pilot: pilotField, records: records, style: style)
        func message(_ bytes: [UInt8], _ at: Instant, _ kind: SimMessage.Kind, _ count: Int) -> SimMessage {
            SimMessage(topic: topic, payload: bytes, at: at, kind: kind, retain: false, pilot: plan.pilot.id, observations: count)
        }
        emit(message(payload, sentAt, .obs, records.count), fleet: fleet, into: &out)

        let m = plan.misbehaviour
        if wire.bernoulli(m.duplicatePer1000 / 1000) {
            emit(message(payload, sentAt.adding(millis: Int64(wire.uniform(5, 90)) * 1000), .duplicate, records.count),
                 fleet: fleet, into: &out)
        }
        if wire.bernoulli(m.malformedPer1000 / 1000) {
            let good = Payload.observations(msgID: msgID(device), sentAt: sentAt, pilot: pilotField, records: records, style: style)
            emit(message(malformed(good), later(sentAt), .malformed, 0), fleet: fleet, into: &out)
        }
        if wire.bernoulli(m.identifyingPer1000 / 1000) {
            var recs = records
            var extra: (key: String, value: String)?
            let choice = wire.int(below: 4)
            let first = recs.firstIndex { $0.subject != nil }
            if choice == 0, let first {
                recs[first].subject = fakeEmail()
            } else if choice == 1, let first {
                recs[first].subject = "06" + String(10_000_000 + wire.int(below: 90_000_000))
            } else if choice == 3 {
                extra = ("birth_date", "19\(40 + wire.int(below: 50))-0\(1 + wire.int(below: 9))-1\(wire.int(below: 10))")
            } else {
                extra = ("name", fakeName())
            }
            let bytes = Payload.observations(msgID: msgID(device), sentAt: sentAt, pilot: pilotField, records: recs,
                                             style: style, extra: extra)
            emit(message(bytes, later(sentAt), .identifying, recs.count), fleet: fleet, into: &out)
        }
        if wire.bernoulli(m.invalidPer1000 / 1000) {
            let candidates = records.indices.filter { records[$0].unit != nil && planIndex[records[$0].indicator] != nil }
            if !candidates.isEmpty {
                var recs = records
                let i = candidates[wire.int(below: candidates.count)]
                if let k = planIndex[recs[i].indicator] {
                    let ip = plan.indicators[k]
                    if wire.bernoulli(0.5) {
                        recs[i].unit = Self.unitTypo(ip.unit)
                    } else {
                        recs[i].value = Self.outOfRange(recs[i].value, ip)
                    }
                    let bytes = Payload.observations(msgID: msgID(device), sentAt: sentAt, pilot: pilotField, records: recs, style: style)
                    emit(message(bytes, later(sentAt), .invalid, recs.count), fleet: fleet, into: &out)
                }
            }
        }
    }

    mutating func later(_ t: Instant) -> Instant { t.adding(millis: Int64(wire.uniform(1, 120)) * 1000) }

    static let firstNames = ["camille", "louis", "ines", "hugo", "chloe", "nathan", "manon", "jules", "lea", "gabriel"]
    static let lastNames = ["martin", "bernard", "petit", "durand", "leroy", "moreau", "simon", "laurent", "michel", "garcia"]

    mutating func fakeEmail() -> String {
        "\(Self.firstNames[wire.int(below: Self.firstNames.count)]).\(Self.lastNames[wire.int(below: Self.lastNames.count)])@example.com"
    }

    mutating func fakeName() -> String {
        func cap(_ s: String) -> String { s.prefix(1).uppercased() + s.dropFirst() }
        return cap(Self.firstNames[wire.int(below: Self.firstNames.count)]) + " " + cap(Self.lastNames[wire.int(below: Self.lastNames.count)])
    }

    /// Breaks a valid payload: cut short, a French decimal comma, or single quotes.
    mutating func malformed(_ payload: [UInt8]) -> [UInt8] {
        switch wire.int(below: 3) {
        case 1:
            // "value":7.8 -> "value":7,8
            let marker = Array("\"value\":".utf8)
            var i = 0
            while i + marker.count < payload.count {
                if Array(payload[i..<(i + marker.count)]) == marker {
                    var j = i + marker.count
                    while j < payload.count, (payload[j] >= 48 && payload[j] <= 57) || payload[j] == 45 { j += 1 }
                    if j < payload.count, payload[j] == UInt8(ascii: "."), j > i + marker.count {
                        var bad = payload
                        bad[j] = UInt8(ascii: ",")
                        return bad
                    }
                    i = j
                } else {
                    i += 1
                }
            }
            return truncated(payload)
        case 2:
            return payload.map { $0 == UInt8(ascii: "\"") ? UInt8(ascii: "'") : $0 }
        default:
            return truncated(payload)
        }
    }

    mutating func truncated(_ payload: [UInt8]) -> [UInt8] {
        let cut = payload.count / 3 + wire.int(below: max(1, payload.count - 1 - payload.count / 3))
        return Array(payload.prefix(max(1, cut)))
    }

    static func unitTypo(_ unit: String) -> String {
        let typos = ["mm[Hg]": "mmHg", "%": "percent", "kg": "kgs", "/min": "bpm", "mmol/L": "mmol/l", "mg/dL": "mg/dl",
                     "pg/mL": "pg/ml", "h/d": "h", "L/min": "l/min", "/h": "per hour", "{score}": "points",
                     "{class}": "class", "L": "litres", "mL": "ml", "g": "grams", "mmol/mol": "mmol/mole",
                     "[lb_av]": "lbs"]
        return typos[unit] ?? unit + "s"
    }

    /// A decimal slip (x100), or past the top of the plausible range when the slip would still be plausible.
    static func outOfRange(_ value: String?, _ ip: IndicatorPlan) -> String {
        let v = value.flatMap { Double($0) } ?? ip.baselineMean
        let slip = v * 100
        if !ip.plausible.contains(slip * ip.factor + ip.offset) { return formatValue(slip, decimals: ip.decimals) }
        let beyond = ip.plausible.max + max(1, abs(ip.plausible.max))
        return formatValue((beyond - ip.offset) / ip.factor, decimals: ip.decimals)
    }
}
