import Foundation
import PilotwatchCore
import Testing
@testable import PilotwatchStore

@Suite struct IngestTests {
    @Test func acceptedMessagesAreStoredWithRollUps() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let outcomes = try store.ingest([
            obsItem(device: "dev-1", msgID: "m1", [measurement("p-aaaaaa", 94, at(hour: 8)),
                                                   measurement("p-aaaaaa", 92, at(hour: 20))]),
            obsItem(device: "dev-1", msgID: "m2", [measurement("p-aaaaaa", 96, at(day: 1, hour: 7)),
                                                   measurement("p-bbbbbb", "weight", 81.5, at(hour: 9))]),
            obsItem(device: "dev-2", msgID: "m1", [measurement("p-bbbbbb", 90, at(day: 2, hour: 6))]),
            obsItem(pilot: "diab-sud", device: "gw", msgID: "x", [
                Observation(subject: nil, indicator: "enrolled_total", kind: .measurement, value: 12, at: at(hour: 3)),
            ]),
        ])
        #expect(outcomes == [.accepted(newObservations: 2, duplicateObservations: 0),
                             .accepted(newObservations: 2, duplicateObservations: 0),
                             .accepted(newObservations: 1, duplicateObservations: 0),
                             .accepted(newObservations: 1, duplicateObservations: 0)])

        let stats = try store.stats()
        #expect(stats.accepted == 4)
        #expect(stats.duplicate == 0)
        #expect(stats.refused == 0)
        #expect(stats.observations == 6)
        #expect(stats.pilots.map(\.pilot) == ["diab-sud", "hf-nord"])
        let nord = try #require(stats.pilots.last)
        #expect(nord == PilotStats(pilot: "hf-nord", observations: 5, subjects: 2, devices: 2,
                                   lastObservationAt: at(day: 2, hour: 6), accepted: 3))
        #expect(stats.pilots.first?.subjects == 0)
        #expect(stats.pilots.first?.observations == 1)

        try store.read { r throws in
            let days = try r.subjectDays(pilot: "hf-nord", from: day0.day, through: day0.day.advanced(by: 6))
            #expect(days == [
                SubjectDayRecord(subject: "p-aaaaaa", day: day0.day, firstAt: at(hour: 8), lastAt: at(hour: 20), count: 2),
                SubjectDayRecord(subject: "p-aaaaaa", day: day0.day.advanced(by: 1), firstAt: at(day: 1, hour: 7),
                                 lastAt: at(day: 1, hour: 7), count: 1),
                SubjectDayRecord(subject: "p-bbbbbb", day: day0.day, firstAt: at(hour: 9), lastAt: at(hour: 9), count: 1),
                SubjectDayRecord(subject: "p-bbbbbb", day: day0.day.advanced(by: 2), firstAt: at(day: 2, hour: 6),
                                 lastAt: at(day: 2, hour: 6), count: 1),
            ])
            let spo2 = try r.subjectIndicators(pilot: "hf-nord", indicator: "spo2")
            #expect(spo2 == [
                SubjectIndicatorRecord(subject: "p-aaaaaa", indicator: "spo2", count: 3,
                                       first: TimedValue(at: at(hour: 8), value: 94),
                                       last: TimedValue(at: at(day: 1, hour: 7), value: 96)),
                SubjectIndicatorRecord(subject: "p-bbbbbb", indicator: "spo2", count: 1,
                                       first: TimedValue(at: at(day: 2, hour: 6), value: 90),
                                       last: TimedValue(at: at(day: 2, hour: 6), value: 90)),
            ])
            #expect(try r.firstValue(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "spo2",
                                     from: at(hour: 10), through: at(day: 5, hour: 0))
                    == TimedValue(at: at(hour: 20), value: 92))
            #expect(try r.lastValue(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "spo2",
                                    from: at(hour: 0), through: at(hour: 23))
                    == TimedValue(at: at(hour: 20), value: 92))
            #expect(try r.lastValue(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "spo2",
                                    from: at(day: 3, hour: 0), through: at(day: 9, hour: 0)) == nil)
            #expect(try r.values(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "spo2",
                                 from: at(hour: 0), through: at(day: 9, hour: 0)).map(\.value) == [94, 92, 96])
            #expect(try r.pilotObservations(pilot: "diab-sud", indicator: "enrolled_total", from: day0,
                                            through: at(day: 1, hour: 0)) == [TimedValue(at: at(hour: 3), value: 12)])

            let subjects = try r.subjects(pilot: "hf-nord")
            #expect(subjects.map(\.code) == ["p-aaaaaa", "p-bbbbbb"])
            #expect(subjects.first?.firstMeasureAt == at(hour: 8))
            #expect(subjects.last?.firstAt == at(hour: 9))
            #expect(subjects.allSatisfy { $0.enrolledAt == nil && $0.withdrawnAt == nil })

            let devices = try r.devices(pilot: "hf-nord")
            #expect(devices.map(\.code) == ["dev-1", "dev-2"])
            #expect(devices.map(\.messages) == [2, 1])
            #expect(devices.map(\.observations) == [4, 1])

            let pilotDays = try r.pilotDays(pilot: "hf-nord", from: day0.day, through: day0.day)
            #expect(pilotDays == [PilotDayRecord(day: day0.day, accepted: 3, duplicate: 0, refused: 0, statuses: 0,
                                                 observations: 5, duplicateObservations: 0)])
        }
        #expect(try store.integrityCheck() == [])
    }

    @Test func eachPilotsLastObservationTimeIsTheLatestStored() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        #expect(try store.lastObservationTimes() == [:])
        try store.ingest([
            obsItem(pilot: "hf-nord", msgID: "a", [measurement("p-1", 95, at(hour: 3)), measurement("p-2", 96, at(hour: 5))]),
            obsItem(pilot: "hf-nord", msgID: "b", [measurement("p-1", 94, at(hour: 4))]),
            obsItem(pilot: "copd-sud", msgID: "c", [event("p-9", "enrolment", at(day: 1, hour: 1))]),
            refusedItem(pilot: "no-data", .unknownPilot, "pilot no-data is not registered", payload: "{}"),
        ])
        #expect(try store.lastObservationTimes() == ["hf-nord": at(hour: 5), "copd-sud": at(day: 1, hour: 1)])
    }

    @Test func sameMessageTwiceAcrossBatchesIsADuplicate() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let item = obsItem(msgID: "m-1", [measurement("p-aaaaaa", 94, at(hour: 8))])
        #expect(try store.ingest([item]) == [.accepted(newObservations: 1, duplicateObservations: 0)])
        #expect(try store.ingest([item]) == [.duplicateMessage])
        // Another device may reuse the same msg_id: msg_id is unique per device only.
        let other = obsItem(device: "dev-2", msgID: "m-1", [measurement("p-aaaaaa", 95, at(hour: 9))])
        #expect(try store.ingest([other]) == [.accepted(newObservations: 1, duplicateObservations: 0)])

        let stats = try store.stats()
        #expect(stats.accepted == 2)
        #expect(stats.duplicate == 1)
        #expect(stats.observations == 2)
        #expect(try store.read { try $0.devices(pilot: "hf-nord") }.map(\.duplicates) == [1, 0])
        #expect(try store.integrityCheck() == [])
    }

    @Test func msgIDsAreComparedByAllTheirBytes() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let outcomes = try store.ingest([
            obsItem(msgID: "m\u{0}1", [measurement("p-aaaaaa", 94, at(hour: 8))]),
            obsItem(msgID: "m\u{0}2", [measurement("p-aaaaaa", 95, at(hour: 9))]),
            obsItem(msgID: "m\u{0}1", [measurement("p-aaaaaa", 94, at(hour: 8))]),
            obsItem(msgID: "é-1", [measurement("p-aaaaaa", 96, at(hour: 10))]),
        ])
        #expect(outcomes == [.accepted(newObservations: 1, duplicateObservations: 0),
                             .accepted(newObservations: 1, duplicateObservations: 0),
                             .duplicateMessage,
                             .accepted(newObservations: 1, duplicateObservations: 0)])
    }

    @Test func sameMessageTwiceInOneBatchIsADuplicate() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let item = obsItem(msgID: "m-1", [measurement("p-aaaaaa", 94, at(hour: 8)), measurement("p-aaaaaa", 95, at(hour: 9))])
        let outcomes = try store.ingest([item, item, obsItem(msgID: "m-2", [measurement("p-aaaaaa", 96, at(hour: 10))]), item])
        #expect(outcomes == [.accepted(newObservations: 2, duplicateObservations: 0), .duplicateMessage,
                             .accepted(newObservations: 1, duplicateObservations: 0), .duplicateMessage])
        let stats = try store.stats()
        #expect(stats.accepted == 2)
        #expect(stats.duplicate == 2)
        #expect(stats.observations == 3)
        #expect(stats.pilots.first?.duplicate == 2)
        let days = try store.read { try $0.subjectDays(pilot: "hf-nord", from: day0.day, through: day0.day) }
        #expect(days.map(\.count) == [3])
    }

    @Test func sameObservationInAnotherMessageIsStoredOnce() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let shared = measurement("p-aaaaaa", 94, at(hour: 8))
        let pilotLevel = Observation(subject: nil, indicator: "visits", kind: .measurement, value: 3, at: at(hour: 1))
        let outcomes = try store.ingest([
            obsItem(msgID: "m-1", [shared, pilotLevel]),
            obsItem(device: "dev-2", msgID: "m-9", [shared, measurement("p-aaaaaa", 97, at(hour: 9)), pilotLevel]),
        ])
        #expect(outcomes == [.accepted(newObservations: 2, duplicateObservations: 0),
                             .accepted(newObservations: 1, duplicateObservations: 2)])
        #expect(try store.ingest([obsItem(msgID: "m-3", [shared])]) == [.accepted(newObservations: 0, duplicateObservations: 1)])
        let stats = try store.stats()
        #expect(stats.accepted == 3)
        #expect(stats.observations == 3)
        #expect(stats.duplicateObservations == 3)
        try store.read { r throws in
            #expect(try r.subjectDays(pilot: "hf-nord", from: day0.day, through: day0.day).map(\.count) == [2])
            #expect(try r.subjectIndicators(pilot: "hf-nord", indicator: "spo2").map(\.count) == [2])
            // The first message that brought it keeps it (its value and its device).
            #expect(try r.values(pilot: "hf-nord", subject: "p-aaaaaa", indicator: "spo2", from: day0,
                                 through: at(day: 1, hour: 0)).map(\.value) == [94, 97])
        }
        #expect(try store.integrityCheck() == [])
    }

    @Test func refusalKeepsPayloadExceptForIdentifyingData() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let payload = #"{"msg_id":"m-1","observations":[{"subject":"p-aaaaaa","indicator":"spo2","value":140}]}"#
        let identifying = #"{"msg_id":"m-2","observations":[{"subject":"jean.dupont@example.fr"}]}"#
        let outcomes = try store.ingest([
            refusedItem(.outOfRange, "observations[0].value: 140 is above the plausible range 50..100 for spo2",
                        payload: payload),
            refusedItem(device: "dev-2", received: at(hour: 13), .identifyingData,
                        "observations[0].subject: looks like an e-mail address", payload: identifying),
            refusedItem(pilot: nil, received: at(day: 1, hour: 1), .schema, "topic: not pilots/{pilot}/{device}/obs",
                        payload: "{}"),
        ])
        #expect(outcomes == [.refused(.outOfRange), .refused(.identifyingData), .refused(.schema)])

        let stats = try store.stats()
        #expect(stats.refused == 3)
        #expect(stats.accepted == 0)
        #expect(stats.refusedByReason == [.outOfRange: 1, .identifyingData: 1, .schema: 1])
        #expect(stats.pilots.map(\.refused) == [2])
        #expect(stats.pilots.first?.devices == 2)

        let all = try store.rejects(RejectFilter())
        #expect(all.map(\.reason) == [.schema, .identifyingData, .outOfRange])   // newest first
        #expect(all.allSatisfy { $0.payload == nil })
        let schema = try #require(all.first)
        #expect(schema.pilot == nil && schema.device == nil)
        #expect(schema.topic == "pilots/BAD TOPIC/obs")
        let ident = all[1]
        #expect(ident.pilot == "hf-nord" && ident.device == "dev-2")
        #expect(ident.payloadSHA256 == SHA256.hex(Array(identifying.utf8)))
        #expect(ident.payloadSHA256.count == 64)
        #expect(ident.detail == "observations[0].subject: looks like an e-mail address")
        #expect(ident.receivedAt == at(hour: 13))

        let candidates = try store.replayCandidates(RejectFilter())
        #expect(candidates.map(\.reason) == [.outOfRange, .schema])   // oldest first, identifying data never
        #expect(candidates.first?.payload == Array(payload.utf8))
        #expect(candidates.first?.payloadSHA256 == SHA256.hex(Array(payload.utf8)))

        // The identifying payload is nowhere in the file: not in a row, and SQLite refuses to add it.
        #expect(try store.scalar("SELECT count(*) FROM reject_payload") == 2)
        #expect(try store.scalar("""
            SELECT count(*) FROM reject_payload rp JOIN reject r ON r.id = rp.reject_id WHERE r.reason = 'identifying_data'
            """) == 0)
        #expect(throws: StoreError.self) {
            try store.executeRaw("""
                INSERT INTO reject_payload (reject_id, payload)
                SELECT id, x'00' FROM reject WHERE reason = 'identifying_data'
                """)
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.file("s.sqlite")))
        let walBytes = (try? Data(contentsOf: URL(fileURLWithPath: dir.file("s.sqlite-wal")))) ?? Data()
        #expect(bytes.range(of: Data("jean.dupont".utf8)) == nil)
        #expect(walBytes.range(of: Data("jean.dupont".utf8)) == nil)
        #expect(walBytes.range(of: Data("plausible range".utf8)) != nil || bytes.range(of: Data("plausible range".utf8)) != nil)

        #expect(try store.rejects(RejectFilter(pilot: "hf-nord")).count == 2)
        #expect(try store.rejects(RejectFilter(reason: .schema)).map(\.topic) == ["pilots/BAD TOPIC/obs"])
        #expect(try store.rejects(RejectFilter(since: at(hour: 12.5))).count == 2)
        #expect(try store.rejects(RejectFilter(limit: 1)).map(\.reason) == [.schema])
        try store.read { r throws in
            #expect(try r.refusals(pilot: "hf-nord", from: day0.day, through: day0.day) == [.outOfRange: 1, .identifyingData: 1])
            #expect(try r.refusals(pilot: nil, from: day0.day, through: day0.day.advanced(by: 1)).values.reduce(0, +) == 3)
        }
        #expect(try store.integrityCheck() == [])
    }

    @Test func statusMessagesUpdateTheDevice() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        #expect(try store.ingest([
            statusItem(received: at(hour: 9), DeviceStatus(state: .online, at: at(hour: 9), batteryPct: 81, firmware: "2.3.1")),
        ]) == [.status])
        var device = try #require(try store.read { try $0.devices() }.first)
        #expect(device.statusState == .online && device.batteryPct == 81 && device.firmware == "2.3.1")

        // The last received wins, even when the device's clock says it is older; a status without
        // battery or firmware keeps the last reported ones.
        let outcomes = try store.ingest([
            statusItem(received: at(hour: 11), DeviceStatus(state: .offline, at: nil, batteryPct: nil, firmware: nil)),
            statusItem(received: at(hour: 11.5), DeviceStatus(state: .online, at: at(hour: 7), batteryPct: nil, firmware: "2.4.0")),
        ])
        #expect(outcomes == [.status, .status])
        device = try #require(try store.read { try $0.devices() }.first)
        #expect(device.statusState == .online)
        #expect(device.statusAt == at(hour: 7))
        #expect(device.batteryPct == 81)
        #expect(device.firmware == "2.4.0")
        #expect(device.statuses == 3)
        #expect(device.firstSeen == at(hour: 9))
        #expect(device.lastSeen == at(hour: 11.5))
        #expect(device.messages == 0)

        // A status received earlier than the applied one (a late batch) is counted, not applied.
        try store.ingest([statusItem(received: at(hour: 10), DeviceStatus(state: .offline, at: nil, batteryPct: 5, firmware: nil))])
        device = try #require(try store.read { try $0.devices() }.first)
        #expect(device.statusState == .online && device.batteryPct == 81 && device.statuses == 4)
        #expect(device.lastSeen == at(hour: 11.5))

        let stats = try store.stats()
        #expect(stats.statuses == 4)
        #expect(stats.accepted == 0)
        #expect(stats.pilots.first?.devices == 1)
        #expect(stats.pilots.first?.statuses == 4)
    }

    @Test func deviceSignsByPilotHoldWhatDevicesListsGroupedByPilot() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        // Devices of three pilots, arriving interleaved (storage order is not code order).
        var items: [IngestItem] = []
        for (i, (pilot, device)) in [("resp-est", "d-9"), ("hf-nord", "d-2"), ("resp-est", "d-1"), ("hf-nord", "d-10"),
                                     ("diab-sud", "d-5"), ("hf-nord", "d-1")].enumerated() {
            items.append(obsItem(pilot: pilot, device: device, msgID: "m\(i)", received: at(hour: Double(i)),
                                 [measurement("p-\(i)", "spo2", 95, at(hour: Double(i)))]))
        }
        items.append(statusItem(pilot: "hf-nord", device: "d-2", received: at(hour: 9),
                                DeviceStatus(state: .offline, at: at(hour: 8), batteryPct: 12, firmware: "1.0")))
        try store.ingest(items)
        let (listed, byPilot) = try store.read { try ($0.devices(), $0.deviceSignsByPilot()) }
        #expect(listed.count == 6)
        #expect(listed.map { "\($0.pilot)/\($0.code)" } == ["diab-sud/d-5", "hf-nord/d-1", "hf-nord/d-10", "hf-nord/d-2",
                                                           "resp-est/d-1", "resp-est/d-9"])
        #expect(byPilot.keys.sorted() == ["diab-sud", "hf-nord", "resp-est"])
        for (pilot, signs) in byPilot {
            let expected = listed.filter { $0.pilot == pilot }.map(\.signs)
            #expect(signs.count == expected.count && expected.allSatisfy { e in signs.contains { $0 == e } }, "\(pilot)")
        }
        let offline = try #require(byPilot["hf-nord"]?.first { $0.statusState == .offline })
        #expect(offline.batteryPct == 12 && offline.statusAt == at(hour: 8) && offline.lastSeen == at(hour: 9))
        let empty = try Store(path: dir.file("empty.sqlite"))
        #expect(try empty.read { try $0.deviceSignsByPilot() }.isEmpty)
    }

    /// The events of one subject, each in its own message; enrolment is the first `enrolled`,
    /// withdrawal the first `withdrawn` strictly after it.
    static let enrolmentEvents: [Observation] = [
        event("p-aaaaaa", "withdrawn", at(day: 1, hour: 0)),   // before enrolment: ignored
        event("p-aaaaaa", "enrolled", at(day: 2, hour: 0)),
        event("p-aaaaaa", "enrolled", at(day: 5, hour: 0)),    // second enrolment: kept, ignored
        event("p-aaaaaa", "withdrawn", at(day: 9, hour: 0)),
        event("p-aaaaaa", "withdrawn", at(day: 12, hour: 0)),
    ]

    static let arrivalOrders: [[Int]] = [
        [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [3, 0, 4, 2, 1], [2, 4, 0, 3, 1], [1, 3, 0, 2, 4], [4, 2, 3, 0, 1],
    ]

    @Test(arguments: arrivalOrders, [1, 2, 5])
    func enrolmentIsRecomputedInAnyArrivalOrder(order: [Int], batchSize: Int) throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let items = order.map { obsItem(msgID: "e\($0)", [Self.enrolmentEvents[$0]]) }
        for start in stride(from: 0, to: items.count, by: batchSize) {
            try store.ingest(Array(items[start..<min(start + batchSize, items.count)]))
        }
        let subject = try #require(try store.read { try $0.subjects(pilot: "hf-nord") }.first)
        #expect(subject.enrolledAt == at(day: 2, hour: 0))
        #expect(subject.withdrawnAt == at(day: 9, hour: 0))
        #expect(subject.firstAt == at(day: 1, hour: 0))
        #expect(subject.firstMeasureAt == nil)
        let events = try store.read { try $0.events(pilot: "hf-nord") }
        #expect(events.count == 5)
        #expect(try store.read { try $0.events(pilot: "hf-nord", indicators: ["enrolled"]) }.map(\.at)
                == [at(day: 2, hour: 0), at(day: 5, hour: 0)])
        // Events are not activity.
        #expect(try store.read { try $0.subjectDays(pilot: "hf-nord", from: day0.day, through: day0.day.advanced(by: 20)) } == [])
    }

    @Test func withdrawalAloneDoesNotWithdraw() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest([obsItem(msgID: "w", [event("p-aaaaaa", "withdrawn", at(day: 3, hour: 0))])])
        var subject = try #require(try store.read { try $0.subjects(pilot: "hf-nord") }.first)
        #expect(subject.enrolledAt == nil && subject.withdrawnAt == nil)
        try store.ingest([obsItem(msgID: "e", [event("p-aaaaaa", "enrolled", at(day: 1, hour: 0))])])
        subject = try #require(try store.read { try $0.subjects(pilot: "hf-nord") }.first)
        #expect(subject.enrolledAt == at(day: 1, hour: 0) && subject.withdrawnAt == at(day: 3, hour: 0))
    }

    @Test func aFailingBatchLeavesNothingBehind() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        try store.ingest([obsItem(msgID: "m-0", [measurement("p-zzzzzz", 90, at(hour: 1))])])
        let before = try store.stats()

        // A NaN value is stored as NULL by SQLite, which the schema refuses (NOT NULL): the batch fails.
        #expect(throws: StoreError.self) {
            try store.ingest([
                obsItem(msgID: "m-1", [measurement("p-ssssss", 94, at(hour: 8))]),
                refusedItem(.badUnit, "observations[0].unit: mg is not accepted for spo2", payload: "{}"),
                statusItem(received: at(hour: 9), DeviceStatus(state: .online, at: nil, batteryPct: 50, firmware: nil)),
                obsItem(device: "dev-new", msgID: "m-2", [measurement("p-ssssss", .nan, at(hour: 9))]),
            ])
        }
        #expect(try store.stats() == before)
        #expect(try store.rejects(RejectFilter()).isEmpty)
        #expect(try store.scalar("SELECT count(*) FROM subject") == 1)
        #expect(try store.scalar("SELECT count(*) FROM device") == 1)

        // The ids the failed batch handed out are forgotten: new rows get their own.
        let outcomes = try store.ingest([
            obsItem(msgID: "m-7", [measurement("p-tttttt", 91, at(hour: 10))]),
            obsItem(msgID: "m-1", [measurement("p-ssssss", 94, at(hour: 8)), measurement("p-ssssss", 95, at(hour: 9))]),
        ])
        #expect(outcomes == [.accepted(newObservations: 1, duplicateObservations: 0),
                             .accepted(newObservations: 2, duplicateObservations: 0)])
        let spo2 = try store.read { try $0.subjectIndicators(pilot: "hf-nord", indicator: "spo2") }
        #expect(spo2.map(\.subject) == ["p-ssssss", "p-tttttt", "p-zzzzzz"])
        #expect(spo2.map(\.count) == [2, 1, 1])
        #expect(try store.stats().pilots.first?.subjects == 3)
        #expect(try store.integrityCheck() == [])
    }

    @Test func countersAndDeduplicationSurviveReopening() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        let first = obsItem(msgID: "m-1", [measurement("p-aaaaaa", 94, at(hour: 8))])
        var stats: StoreStats
        do {
            let store = try Store(path: path)
            try store.ingest([first, first, refusedItem(.badTime, "observations[0].at: in the future", payload: "{}")])
            stats = try store.stats()
        }
        let store = try Store(path: path)
        #expect(try store.stats() == stats)
        #expect(stats.accepted == 1 && stats.duplicate == 1 && stats.refused == 1)
        #expect(try store.ingest([first]) == [.duplicateMessage])
        #expect(try store.ingest([obsItem(msgID: "m-2", [measurement("p-aaaaaa", 94, at(hour: 8))])])
                == [.accepted(newObservations: 0, duplicateObservations: 1)])
        let after = try store.stats()
        #expect(after.duplicate == 2 && after.accepted == 2 && after.observations == 1 && after.duplicateObservations == 1)
        #expect(try store.schemaVersion() == Store.latestSchemaVersion)
    }
}
