import Foundation
import PilotwatchCore
import Testing

@testable import PilotwatchStore

@Suite("Alert state: raised once, cleared once, delivery pending until done")
struct AlertStoreTests {
    func condition(_ rule: AlertRule, _ target: String, _ adherence: Double = 21) -> AlertCondition {
        AlertCondition(rule: rule, target: target, values: JSONObject([("transmission_adherence", .number(JSONNumber(adherence)!))]),
                       message: "adherence \(adherence)%")
    }

    @Test func aConditionStillHoldingIsNotRaisedAgain() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let first = try store.recordAlertTransitions(raise: [condition(.lowAdherence, "card-x")], clear: [], at: at(hour: 1),
                                                     publish: true, command: true)
        #expect(first.count == 1)
        #expect(first.first?.publishPending == true && first.first?.commandPending == true)
        // The next evaluation finds it still holding (with other values): nothing changes.
        let again = try store.recordAlertTransitions(raise: [condition(.lowAdherence, "card-x", 30)], clear: [], at: at(hour: 2),
                                                     publish: true, command: true)
        #expect(again.isEmpty)
        let open = try store.openAlerts()
        #expect(open.count == 1)
        #expect(open.first?.raisedAt == at(hour: 1))
        #expect(open.first?.raisedValues["transmission_adherence"]?.number?.double == 21, "the values that raised it are kept")
        #expect(open.first?.values["transmission_adherence"]?.number?.double == 30, "and the latest evaluation's beside them")
        #expect(open.first?.updatedAt == at(hour: 2))
    }

    @Test func clearedOnceThenRaisedAnewAsAnotherAlert() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let key = AlertKey(rule: .silent, target: "card-x")
        try store.recordAlertTransitions(raise: [condition(.silent, "card-x")], clear: [], at: at(hour: 1), publish: false, command: false)
        let cleared = try store.recordAlertTransitions(raise: [], clear: [key], at: at(hour: 3), publish: true, command: false)
        #expect(cleared.map(\.clearedAt) == [at(hour: 3)])
        #expect(cleared.first?.publishPending == true && cleared.first?.commandPending == false)
        // Clearing what is not open changes nothing.
        #expect(try store.recordAlertTransitions(raise: [], clear: [key], at: at(hour: 4), publish: true, command: true).isEmpty)
        try store.recordAlertTransitions(raise: [condition(.silent, "card-x")], clear: [], at: at(hour: 5), publish: false, command: false)

        #expect(try store.alerts(activeAt: at(hour: 2)).map(\.raisedAt) == [at(hour: 1)])
        #expect(try store.alerts(activeAt: at(hour: 4)).isEmpty)
        #expect(try store.alerts(activeAt: at(hour: 6)).map(\.raisedAt) == [at(hour: 5)])
        let history = try store.alertHistory(since: nil, until: at(hour: 10))
        #expect(history.map(\.kind) == [.raised, .cleared, .raised])
        #expect(history.map(\.at) == [at(hour: 1), at(hour: 3), at(hour: 5)])
        #expect(try store.alertHistory(since: at(hour: 2), until: at(hour: 10)).map(\.kind) == [.cleared, .raised])
    }

    @Test func deliveryStaysPendingUntilMarked() throws {
        let dir = try TempDir()
        let store = try Store(path: dir.file("s.sqlite"))
        let raised = try store.recordAlertTransitions(raise: [condition(.refusals, "card-x"), condition(.backlog, AlertRule.service)],
                                                      clear: [], at: at(hour: 1), publish: true, command: true)
        #expect(try store.pendingAlertDeliveries().count == 2)
        try store.markAlertDelivered(id: raised[0].id, published: true, commandRan: false)
        let pending = try store.pendingAlertDeliveries()
        #expect(pending.count == 2)
        #expect(pending.first { $0.id == raised[0].id }.map { !$0.publishPending && $0.commandPending } == true)
        try store.markAlertDelivered(id: raised[0].id, published: false, commandRan: true)
        #expect(try store.pendingAlertDeliveries().map(\.id) == [raised[1].id])
    }
}
