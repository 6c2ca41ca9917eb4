import Foundation
import GRDB
import PilotwatchCore

/// A quarantine row being replayed.
struct ReplayedReject {
    var id: Int64
    var receivedAt: Instant
    var pilot: String?
    var device: String?
    var reason: ReasonCode
    /// A snapshot's refusal (topic `.../agg`): counted store-wide, with no device.
    var isSnapshot = false
}

/// One write transaction: stores items one by one, aggregates roll-ups and counters in
/// memory, and writes them once per key in ``finish()``.
struct BatchWriter {
    let db: Database
    let state: WriterState

    private(set) var totals = Counts()
    private(set) var pilotDays = SmallMap<DayKey, Counts>()
    private(set) var refusals: [RefusalKey: Int] = [:]
    private(set) var devices: [Int64: DeviceDelta] = [:]
    /// Each subject's share of the batch (``SubjectAggregate``), and where it is by subject id.
    private(set) var subjectAggregates: [SubjectAggregate] = []
    private var subjectAggregateIndex: [Int64: Int] = [:]
    private(set) var pilotLastObservation = SmallMap<Int64, Int64>()
    private(set) var enrolmentToRecompute: Set<Int64> = []

    private let insertMessage: FastStatement
    private let insertObservation: FastStatement
    private let insertEvent: FastStatement
    private let insertPilotObservation: FastStatement

    /// The ids by slot (taken from `state` for the transaction, put back by ``finish()``) and
    /// the slots of the chunk being applied (``use(_:)``).
    private(set) var slots: SlotIDs
    private var keys: BatchKeys?

    init(db: Database, state: WriterState) throws {
        self.db = db
        self.state = state
        slots = state.slots
        state.slots = SlotIDs()
        insertMessage = try FastStatement(db, """
            INSERT INTO message (device_id, msg_id, received_at, subject_id, observations) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertObservation = try FastStatement(db, """
            INSERT INTO observation (subject_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertEvent = try FastStatement(db, """
            INSERT INTO event (subject_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
        insertPilotObservation = try FastStatement(db, """
            INSERT INTO pilot_observation (pilot_id, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """)
    }

    // MARK: - Items

    /// The slots of the items ``apply(_:replacing:slots:)`` gets next (nil: none).
    mutating func use(_ keys: BatchKeys?) {
        self.keys = keys
        if let keys { slots.use(keys.space) }
    }

    /// Stores one item; with `replacing`, the item is the re-validated verdict of that reject,
    /// whose refusal is un-counted (and whose time is kept) before the new verdict is counted.
    /// `slots`: the item's place in the keys of ``use(_:)``.
    mutating func apply(_ item: IngestItem, replacing old: ReplayedReject? = nil, slots index: Int? = nil) throws
        -> IngestOutcome {
        let receivedAt = old?.receivedAt ?? item.receivedAt
        let day = receivedAt.day.index
        if let old { try uncount(old) }
        let itemKeys = index.flatMap { keys?.items[$0] } ?? ItemKeys()

        switch item.verdict {
        case .observations(let topic, let message):
            // Slots numbered for another verdict (screened since) are not used.
            let keys = itemKeys.observations.count == message.observations.count ? itemKeys : ItemKeys()
            let pilotID = try pilotID(topic.pilot, slot: keys.pilot, seenAt: receivedAt)
            let deviceID = try deviceID(pilot: pilotID, code: topic.device, slot: keys.device, seenAt: receivedAt)
            // The one subject the message is about, so that an erasure can take the message back.
            var only = try onlySubject(of: message, pilot: pilotID, slot: keys.subject)
            insertMessage.bind(1, deviceID)
            insertMessage.bind(2, message.msgID)
            insertMessage.bind(3, receivedAt.millis)
            insertMessage.bind(4, only?.info.id)
            insertMessage.bind(5, message.observations.count)
            if try insertMessage.run() == 0 {
                count(pilot: pilotID, day: day) { $0.duplicate += 1 }
                touch(device: deviceID, at: receivedAt) { $0.duplicates += 1 }
                if let old { try deleteReject(old.id) }
                return .duplicateMessage
            }
            var stored = 0, duplicates = 0, latest = Int64.min
            for (offset, obs) in message.observations.enumerated() {
                let slots = keys.observations.isEmpty ? nil : self.keys?.observations[keys.observations.lowerBound + offset]
                if try store(obs, pilot: pilotID, device: deviceID, slots: slots, only: &only) {
                    stored += 1
                    latest = max(latest, obs.at.millis)
                } else {
                    duplicates += 1
                }
            }
            if stored > 0 { notePilotObservation(pilotID, at: latest) }
            count(pilot: pilotID, day: day) {
                $0.accepted += 1; $0.observations += stored; $0.duplicateObservations += duplicates
            }
            touch(device: deviceID, at: receivedAt) { $0.messages += 1; $0.observations += stored }
            if let old { try deleteReject(old.id) }
            return .accepted(newObservations: stored, duplicateObservations: duplicates)

        case .status(let topic, let status):
            let pilotID = try pilotID(topic.pilot, slot: itemKeys.pilot, seenAt: receivedAt)
            let deviceID = try deviceID(pilot: pilotID, code: topic.device, slot: itemKeys.device, seenAt: receivedAt)
            touch(device: deviceID, at: receivedAt)
            // The last status received wins (a replayed one keeps its original time).
            if let current = devices[deviceID]?.status, current.receivedAt > receivedAt.millis {
                // Received before one already applied in this batch: counted, not applied.
            } else {
                let previous = devices[deviceID]?.status
                devices[deviceID]?.status = (status.state.rawValue, (status.at ?? receivedAt).millis,
                                             status.batteryPct ?? previous?.battery,
                                             status.firmware ?? previous?.firmware, receivedAt.millis)
            }
            devices[deviceID]?.statuses += 1
            count(pilot: pilotID, day: day) { $0.statuses += 1 }
            if let old { try deleteReject(old.id) }
            return .status

        case .snapshot(let topic, let receipt):
            let outcome = try storeSnapshot(topic, receipt, payload: item.payload, receivedAt: receivedAt)
            if let old { try deleteReject(old.id) }
            return outcome

        case .refused(let topic, let refusal):
            // `store_error` is the service's own: counted store-wide (pilot 0), never against
            // the pilot or the device. So is a refused snapshot: its site sent it, not the
            // pilot's devices, and its site is no device (the site's status topic tells it).
            var pilotID: Int64 = 0
            if let topic, topic.kind != .agg {
                let id = try self.pilotID(topic.pilot, seenAt: receivedAt)
                let deviceID = try deviceID(pilot: id, code: topic.device, seenAt: receivedAt)
                touch(device: deviceID, at: receivedAt)
                if refusal.reason.countsAgainstPilot {
                    pilotID = id
                    devices[deviceID]?.refused += 1
                }
            }
            count(pilot: pilotID, day: day) { $0.refused += 1 }
            refusals[RefusalKey(pilot: pilotID, day: day, reason: refusal.reason), default: 0] += 1
            if let old {
                try db.cachedStatement(sql: """
                    UPDATE reject SET pilot = ?, device = ?, reason = ?, detail = ? WHERE id = ?
                    """).execute(arguments: [topic?.pilot, topic?.device, refusal.reason.rawValue, refusal.detail, old.id])
            } else {
                try quarantine(item, topic: topic, refusal: refusal)
            }
            return .refused(refusal.reason)
        }
    }

    /// The subject row of the one subject all of `message`'s observations name; nil when they
    /// name none (pilot-level indicators) or several.
    /// `slot`: the subject's slot when the preparer found one subject (-1: none, or no slots).
    private mutating func onlySubject(of message: ObservationMessage, pilot pilotID: Int64, slot: Int32) throws
        -> OnlySubject? {
        guard let code = message.observations.first?.subject else { return nil }
        if let info = slots.subjects[slot] {
            return OnlySubject(key: SubjectKey(pilot: pilotID, code: code), info: info,
                               aggregate: aggregateIndex(of: info.id), slot: slot)
        }
        var firstAt = Int64.max
        for obs in message.observations {
            guard obs.subject == code else { return nil }
            firstAt = min(firstAt, obs.at.millis)
        }
        let key = SubjectKey(pilot: pilotID, code: code)
        let info = try subject(key, firstAt: firstAt)
        slots.subjects[slot] = info
        return OnlySubject(key: key, info: info, aggregate: aggregateIndex(of: info.id), slot: slot)
    }

    /// The one subject of a message, where its share of the batch is, and its slot (-1: none).
    struct OnlySubject {
        var key: SubjectKey
        var info: SubjectInfo
        var aggregate: Int
        var slot: Int32
    }

    /// Where the subject's share of the batch is in `subjectAggregates` (added when absent).
    private mutating func aggregateIndex(of subjectID: Int64) -> Int {
        if let i = subjectAggregateIndex[subjectID] { return i }
        subjectAggregates.append(SubjectAggregate(id: subjectID))
        subjectAggregateIndex[subjectID] = subjectAggregates.count - 1
        return subjectAggregates.count - 1
    }

    /// Stores one observation; false when `(subject or pilot, indicator, at)` was already stored.
    /// `only` is the message's one subject (``onlySubject(of:pilot:slot:)``), kept up to date here.
    /// The caller notes the pilot's latest observation.
    /// `slots`: the observation's slots, when numbered.
    private mutating func store(_ obs: Observation, pilot pilotID: Int64, device deviceID: Int64,
                                slots obsSlots: ObservationKeys?, only: inout OnlySubject?) throws -> Bool {
        let indicatorID = try indicatorID(obs.indicator, kind: obs.kind, slot: obsSlots?.indicator ?? -1)
        let at = obs.at.millis
        guard let code = obs.subject else {
            return try insertRow(insertPilotObservation, pilotID, indicatorID, at, obs.value, deviceID)
        }
        let subjectKey = only?.key ?? SubjectKey(pilot: pilotID, code: code)
        let subjectSlot = only?.slot ?? obsSlots?.subject ?? -1
        let subject = try only?.info ?? subject(subjectKey, firstAt: at, slot: subjectSlot)
        let aggregate = only?.aggregate ?? aggregateIndex(of: subject.id)
        let updated: SubjectInfo
        switch obs.kind {
        case .event:
            guard try insertRow(insertEvent, subject.id, indicatorID, at, obs.value, deviceID) else { return false }
            if obs.indicator == "enrolled" || obs.indicator == "withdrawn" {
                enrolmentToRecompute.insert(subject.id)
            }
            updated = noteSubject(subjectKey, subject, slot: subjectSlot, aggregate: aggregate, at: at, measure: false)
        case .measurement, .score:
            guard try insertRow(insertObservation, subject.id, indicatorID, at, obs.value, deviceID) else { return false }
            subjectAggregates[aggregate].add(day: obs.at.day.index, indicator: indicatorID, at: at, value: obs.value)
            updated = noteSubject(subjectKey, subject, slot: subjectSlot, aggregate: aggregate, at: at, measure: true)
        }
        if only != nil { only?.info = updated }
        return true
    }

    /// Inserts `(owner, indicator, at, value, device)` unless the key is there; true when inserted.
    private func insertRow(_ statement: FastStatement, _ owner: Int64, _ indicator: Int64, _ at: Int64,
                           _ value: Double, _ device: Int64) throws -> Bool {
        statement.bind(1, owner)
        statement.bind(2, indicator)
        statement.bind(3, at)
        statement.bind(4, value)
        statement.bind(5, device)
        return try statement.run() > 0
    }

    private mutating func quarantine(_ item: IngestItem, topic: Topic?, refusal: Refusal) throws {
        try db.cachedStatement(sql: """
            INSERT INTO reject (received_at, topic, pilot, device, reason, detail, payload_sha256)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [item.receivedAt.millis, item.topic, topic?.pilot, topic?.device,
                                     refusal.reason.rawValue, refusal.detail, SHA256.hex(item.payload)])
        // A message refused for identifying data is never stored, not even in quarantine.
        guard refusal.reason.keepsPayload else { return }
        let id = db.lastInsertedRowID
        try db.cachedStatement(sql: "INSERT INTO reject_payload (reject_id, payload) VALUES (?, ?)")
            .execute(arguments: [id, Data(item.payload)])
    }

    private mutating func deleteReject(_ id: Int64) throws {
        try db.cachedStatement(sql: "DELETE FROM reject WHERE id = ?").execute(arguments: [id])
    }

    /// Takes back the counts of a refusal that replay is about to re-decide.
    private mutating func uncount(_ old: ReplayedReject) throws {
        let day = old.receivedAt.day.index
        var pilotID: Int64 = 0
        if let pilot = old.pilot, old.reason.countsAgainstPilot, !old.isSnapshot {
            pilotID = try self.pilotID(pilot, seenAt: old.receivedAt)
            if let device = old.device {
                let deviceID = try deviceID(pilot: pilotID, code: device, seenAt: old.receivedAt)
                touch(device: deviceID, at: old.receivedAt)
                devices[deviceID]?.refused -= 1
            }
        }
        count(pilot: pilotID, day: day) { $0.refused -= 1 }
        refusals[RefusalKey(pilot: pilotID, day: day, reason: old.reason), default: 0] -= 1
    }

    // MARK: - In-memory aggregation

    private mutating func count(pilot: Int64, day: Int, _ change: (inout Counts) -> Void) {
        change(&totals)
        if pilot != 0 { pilotDays.update(DayKey(pilot: pilot, day: day), default: Counts(), change) }
    }

    /// Notes that `device` was seen at `at`, and makes `change` to its counters.
    private mutating func touch(device: Int64, at: Instant, _ change: (inout DeviceDelta) -> Void = { _ in }) {
        let millis = at.millis
        touchDevice(&devices[device, default: DeviceDelta(firstSeen: millis, lastSeen: millis)], millis, change)
    }

    private func touchDevice(_ d: inout DeviceDelta, _ millis: Int64, _ change: (inout DeviceDelta) -> Void) {
        d.firstSeen = min(d.firstSeen, millis); d.lastSeen = max(d.lastSeen, millis)
        change(&d)
    }

    private mutating func notePilotObservation(_ pilot: Int64, at: Int64) {
        pilotLastObservation.update(pilot, default: at) { $0 = max($0, at) }
    }

    /// Lowers the subject's first times if `at` is earlier than what the row holds, and notes a
    /// measurement or score for its activity roll-up; returns the subject as it now is.
    private mutating func noteSubject(_ key: SubjectKey, _ subject: SubjectInfo, slot: Int32, aggregate: Int, at: Int64,
                                      measure: Bool) -> SubjectInfo {
        var info = subject
        let lowersFirst = at < info.firstAt
        let lowersFirstMeasure = measure && (info.firstMeasureAt.map { at < $0 } ?? true)
        guard lowersFirst || lowersFirstMeasure || measure else { return info }
        if lowersFirst { info.firstAt = at }
        if lowersFirstMeasure { info.firstMeasureAt = at }
        noteChange(&subjectAggregates[aggregate].change, firstAt: lowersFirst ? at : nil,
                   firstMeasureAt: lowersFirstMeasure ? at : nil, measure: measure ? at : nil)
        if lowersFirst || lowersFirstMeasure {
            state.subjects[key] = info
            slots.subjects[slot] = info
        }
        return info
    }

    private func noteChange(_ change: inout SubjectChange?, firstAt: Int64?, firstMeasureAt: Int64?, measure: Int64?) {
        if change == nil { change = SubjectChange() }
        if let firstAt { change?.firstAt = firstAt }
        if let firstMeasureAt { change?.firstMeasureAt = firstMeasureAt }
        if let measure { change?.measures.append(measure) }
    }

    // MARK: - Surrogate ids

    // By slot: the id found for the slot, else by code (and then remembered for the slot).
    // A slot of -1 is no slot.

    private mutating func pilotID(_ code: String, slot: Int32, seenAt: Instant) throws -> Int64 {
        if let id = slots.pilots[slot] { return id }
        let id = try pilotID(code, seenAt: seenAt)
        slots.pilots[slot] = id
        return id
    }

    private mutating func deviceID(pilot: Int64, code: String, slot: Int32, seenAt: Instant) throws -> Int64 {
        if let id = slots.devices[slot] { return id }
        let id = try deviceID(pilot: pilot, code: code, seenAt: seenAt)
        slots.devices[slot] = id
        return id
    }

    private mutating func indicatorID(_ code: String, kind: IndicatorKind, slot: Int32) throws -> Int64 {
        if let id = slots.indicators[slot] { return id }
        let id = try indicatorID(code, kind: kind)
        slots.indicators[slot] = id
        return id
    }

    private mutating func subject(_ key: SubjectKey, firstAt: Int64, slot: Int32) throws -> SubjectInfo {
        if let info = slots.subjects[slot] { return info }
        let info = try subject(key, firstAt: firstAt)
        slots.subjects[slot] = info
        return info
    }

    private func pilotID(_ code: String, seenAt: Instant) throws -> Int64 {
        if let id = state.pilots[code] { return id }
        let id: Int64
        if let found = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM pilot WHERE code = ?"),
                                          arguments: [code]) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO pilot (code, first_seen) VALUES (?, ?)")
                .execute(arguments: [code, seenAt.millis])
            id = db.lastInsertedRowID
        }
        state.pilots[code] = id
        return id
    }

    func existingIndicatorID(_ code: String) throws -> Int64? {
        if let id = state.indicators[code] { return id }
        return try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM indicator WHERE code = ?"), arguments: [code])
    }

    private func indicatorID(_ code: String, kind: IndicatorKind) throws -> Int64 {
        if let id = state.indicators[code] { return id }
        let id: Int64
        if let found = try existingIndicatorID(code) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO indicator (code, kind) VALUES (?, ?)")
                .execute(arguments: [code, kind.rawValue])
            id = db.lastInsertedRowID
        }
        state.indicators[code] = id
        return id
    }

    private func deviceID(pilot: Int64, code: String, seenAt: Instant) throws -> Int64 {
        let key = DeviceKey(pilot: pilot, code: code)
        if let id = state.devices[key] { return id }
        let id: Int64
        if let found = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM device WHERE pilot_id = ? AND code = ?"), arguments: [pilot, code]) {
            id = found
        } else {
            try db.cachedStatement(sql: "INSERT INTO device (pilot_id, code, first_seen, last_seen) VALUES (?, ?, ?, ?)")
                .execute(arguments: [pilot, code, seenAt.millis, seenAt.millis])
            id = db.lastInsertedRowID
        }
        state.devices[key] = id
        return id
    }

    private func subject(_ key: SubjectKey, firstAt: Int64) throws -> SubjectInfo {
        if let info = state.subjects[key] { return info }
        let info: SubjectInfo
        if let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, first_at, first_measure_at FROM subject WHERE pilot_id = ? AND code = ?"),
            arguments: [key.pilot, key.code]) {
            info = SubjectInfo(id: row[0], firstAt: row[1], firstMeasureAt: row[2])
        } else {
            try db.cachedStatement(sql: "INSERT INTO subject (pilot_id, code, first_at) VALUES (?, ?, ?)")
                .execute(arguments: [key.pilot, key.code, firstAt])
            info = SubjectInfo(id: db.lastInsertedRowID, firstAt: firstAt, firstMeasureAt: nil)
        }
        state.subjects[key] = info
        return info
    }
}
