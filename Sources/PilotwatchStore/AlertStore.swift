import GRDB
import PilotwatchCore

/// An alert as stored: raised once, cleared once (``Store/recordAlertTransitions(raise:clear:at:publish:command:)``).
public struct AlertRecord: Sendable, Hashable {
    public var id: Int64
    public var key: AlertKey
    public var raisedAt: Instant
    /// The values and message that raised it (values: a JSON object).
    public var raisedValues: JSONObject
    public var raisedMessage: String
    /// Those of the latest evaluation that found it holding (the raise's until then).
    public var updatedAt: Instant
    public var values: JSONObject
    public var message: String
    public var clearedAt: Instant?
    /// Its latest transition is still to be published as a retained MQTT message.
    public var publishPending: Bool
    /// Its latest transition is still to be given to the alert command.
    public var commandPending: Bool

    public var rule: AlertRule { key.rule }
    public var target: String { key.target }

    /// Whether it was raised and not yet cleared at `t`.
    public func isActive(at t: Instant) -> Bool { raisedAt <= t && (clearedAt.map { $0 > t } ?? true) }
}

/// One raise or one clear, for `alerts history`.
public struct AlertTransition: Sendable, Hashable {
    public enum Kind: String, Sendable { case raised, cleared }
    public var kind: Kind
    public var at: Instant
    public var alert: AlertRecord
}

extension Store {
    /// Records a round of evaluation in one transaction: opens an alert for each condition in
    /// `raise` (one already open is updated instead: an alert is raised once), updates the
    /// open alerts of `holding` with their latest values, and closes the open alerts of `clear`
    /// at `at`. Returns the rows raised or cleared, with delivery pending as asked.
    @discardableResult
    public func recordAlertTransitions(raise: [AlertCondition], holding: [AlertCondition] = [], clear: [AlertKey], at: Instant,
                                       publish: Bool, command: Bool) throws -> [AlertRecord] {
        guard !raise.isEmpty || !clear.isEmpty || !holding.isEmpty else { return [] }
        if options.readOnly { throw StoreError.readOnly(path: path) }
        return try Store.sqlite("recording \(raise.count) raised and \(clear.count) cleared alerts") {
            try pool.write { db in
                var ids: [Int64] = []
                for c in raise {
                    let values = String(decoding: JSON.encode(.object(c.values)), as: UTF8.self)
                    if try Int64.fetchOne(db, sql: "SELECT id FROM alert WHERE rule = ? AND target = ? AND cleared_at IS NULL",
                                          arguments: [c.rule.rawValue, c.target]) != nil {
                        try Self.update(db, c, values: values, at: at)
                        continue
                    }
                    try db.execute(sql: """
                        INSERT INTO alert (rule, target, raised_at, raised_values, raised_message, updated_at, current_values,
                                           message, publish_pending, command_pending)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [c.rule.rawValue, c.target, at.millis, values, c.message, at.millis, values, c.message,
                                         publish ? 1 : 0, command ? 1 : 0])
                    ids.append(db.lastInsertedRowID)
                }
                for c in holding {
                    try Self.update(db, c, values: String(decoding: JSON.encode(.object(c.values)), as: UTF8.self), at: at)
                }
                for k in clear {
                    if let id = try Int64.fetchOne(db, sql: "SELECT id FROM alert WHERE rule = ? AND target = ? AND cleared_at IS NULL",
                                                   arguments: [k.rule.rawValue, k.target]) {
                        try db.execute(sql: """
                            UPDATE alert SET cleared_at = max(?, raised_at), publish_pending = ?, command_pending = ? WHERE id = ?
                            """, arguments: [at.millis, publish ? 1 : 0, command ? 1 : 0, id])
                        ids.append(id)
                    }
                }
                return try Self.alertRows(db, where: "id IN (\(ids.map(String.init).joined(separator: ",")))", arguments: [])
            }
        }
    }

    private static func update(_ db: Database, _ c: AlertCondition, values: String, at: Instant) throws {
        try db.execute(sql: """
            UPDATE alert SET updated_at = ?, current_values = ?, message = ?
            WHERE rule = ? AND target = ? AND cleared_at IS NULL AND (current_values <> ? OR message <> ?)
            """, arguments: [at.millis, values, c.message, c.rule.rawValue, c.target, values, c.message])
    }

    /// The alerts open now (not cleared), by target and rule.
    public func openAlerts() throws -> [AlertRecord] {
        try read { try Self.alertRows($0.db, where: "cleared_at IS NULL", arguments: []) }
    }

    /// The alerts raised at or before `t` and not cleared by then.
    public func alerts(activeAt t: Instant) throws -> [AlertRecord] {
        try read { try Self.alertRows($0.db, where: "raised_at <= ? AND (cleared_at IS NULL OR cleared_at > ?)", arguments: [t.millis, t.millis]) }
    }

    /// Raises and clears at or after `since` (all when nil) and at or before `until`, oldest first.
    public func alertHistory(since: Instant?, until: Instant) throws -> [AlertTransition] {
        let from = since?.millis ?? Int64.min
        let rows = try read { reader in
            try Self.alertRows(reader.db, where: "(raised_at BETWEEN ? AND ?) OR (cleared_at BETWEEN ? AND ?)",
                               arguments: [from, until.millis, from, until.millis])
        }
        var out: [AlertTransition] = []
        for r in rows {
            if r.raisedAt.millis >= from && r.raisedAt <= until { out.append(AlertTransition(kind: .raised, at: r.raisedAt, alert: r)) }
            if let c = r.clearedAt, c.millis >= from, c <= until { out.append(AlertTransition(kind: .cleared, at: c, alert: r)) }
        }
        return out.sorted { ($0.at, $0.alert.id, $0.kind == .cleared ? 1 : 0) < ($1.at, $1.alert.id, $1.kind == .cleared ? 1 : 0) }
    }

    /// Alerts whose latest transition is still to be published or given to the command, oldest first.
    public func pendingAlertDeliveries() throws -> [AlertRecord] {
        try read { try Self.alertRows($0.db, where: "publish_pending = 1 OR command_pending = 1", arguments: []) }
    }

    /// Marks the latest transition of alert `id` as published and/or given to the command.
    public func markAlertDelivered(id: Int64, published: Bool, commandRan: Bool) throws {
        guard published || commandRan else { return }
        if options.readOnly { throw StoreError.readOnly(path: path) }
        try Store.sqlite("marking alert \(id) delivered") {
            try pool.write { db in
                if published { try db.execute(sql: "UPDATE alert SET publish_pending = 0 WHERE id = ?", arguments: [id]) }
                if commandRan { try db.execute(sql: "UPDATE alert SET command_pending = 0 WHERE id = ?", arguments: [id]) }
            }
        }
    }

    /// Messages quarantined (received) at or after `t`, whatever the pilot.
    public func refusedCount(since t: Instant) throws -> Int {
        try read { try Int.fetchOne($0.db, sql: "SELECT count(*) FROM reject WHERE received_at >= ?", arguments: [t.millis]) ?? 0 }
    }

    private static func alertRows(_ db: Database, where condition: String, arguments: StatementArguments) throws -> [AlertRecord] {
        try Row.fetchAll(db, sql: """
            SELECT id, rule, target, raised_at, raised_values, raised_message, updated_at, current_values, message,
                   cleared_at, publish_pending, command_pending
            FROM alert WHERE \(condition) ORDER BY id
            """, arguments: arguments).compactMap { row in
            // A rule this version does not know (written by a later one) is skipped, not fatal.
            guard let rule = AlertRule(rawValue: row[1]) else { return nil }
            func object(_ text: String) -> JSONObject { (try? JSON.parse(Array(text.utf8)))?.object ?? JSONObject() }
            return AlertRecord(id: row[0], key: AlertKey(rule: rule, target: row[2]), raisedAt: Instant(millis: row[3]),
                               raisedValues: object(row[4]), raisedMessage: row[5], updatedAt: Instant(millis: row[6]),
                               values: object(row[7]), message: row[8], clearedAt: (row[9] as Int64?).map(Instant.init(millis:)),
                               publishPending: (row[10] as Int64) == 1, commandPending: (row[11] as Int64) == 1)
        }
    }
}
