import Foundation
import GRDB
import PilotwatchCore

/// Everything the store holds about one subject of one pilot, for a person's access request.
public struct SubjectReport: Sendable {
    public struct Row: Sendable, Hashable {
        public var indicator: String
        public var at: Instant
        public var value: Double
        public var device: String
    }

    public struct Refusal: Sendable, Hashable {
        public var id: Int64
        public var receivedAt: Instant
        public var topic: String
        public var device: String?
        public var reason: ReasonCode
        public var detail: String
        public var payloadSHA256: String
        /// The refused payload, where it is kept (never for identifying data).
        public var payload: [UInt8]?
    }

    public var pilot: String
    public var subject: String
    /// The subject's row: first data, first measurement, enrolment, withdrawal, last measurement.
    public var firstAt: Instant?
    public var firstMeasureAt: Instant?
    public var enrolledAt: Instant?
    public var withdrawnAt: Instant?
    public var lastMeasureAt: Instant?
    public var observations: [Row] = []
    public var events: [Row] = []
    /// The pilot's refused messages whose kept payload names the subject.
    public var refusals: [Refusal] = []

    /// The devices that carried its data or its refused messages, sorted.
    public var devices: [String] {
        Set(observations.map(\.device) + events.map(\.device) + refusals.compactMap(\.device)).sorted()
    }

    public var isEmpty: Bool { firstAt == nil && refusals.isEmpty }
}

extension Store {
    /// Reads everything held about `subject` of `pilot` in one snapshot.
    public func subjectReport(pilot: String, subject: String) throws -> SubjectReport {
        try read { reader in
            let db = reader.db
            var report = SubjectReport(pilot: pilot, subject: subject)
            if let row = try Row.fetchOne(db, sql: """
                SELECT s.id, s.first_at, s.first_measure_at, s.enrolled_at, s.withdrawn_at, s.last_measure_at
                FROM subject s JOIN pilot p ON p.id = s.pilot_id WHERE p.code = ? AND s.code = ?
                """, arguments: [pilot, subject]) {
                let id: Int64 = row[0]
                func at(_ i: Int) -> Instant? { (row[i] as Int64?).map(Instant.init(millis:)) }
                report.firstAt = at(1); report.firstMeasureAt = at(2); report.enrolledAt = at(3)
                report.withdrawnAt = at(4); report.lastMeasureAt = at(5)
                func rows(_ table: String) throws -> [SubjectReport.Row] {
                    try Row.fetchAll(db, sql: """
                        SELECT i.code, o.at, o.value, d.code FROM \(table) o
                        JOIN indicator i ON i.id = o.indicator_id JOIN device d ON d.id = o.device_id
                        WHERE o.subject_id = ? ORDER BY o.at, i.code
                        """, arguments: [id]).map {
                        SubjectReport.Row(indicator: $0[0], at: Instant(millis: $0[1]), value: $0[2], device: $0[3])
                    }
                }
                report.observations = try rows("observation")
                report.events = try rows("event")
            }
            // A kept payload names the subject when its bytes hold the pseudonym as a JSON string.
            let quoted = Array(("\"" + subject + "\"").utf8)
            report.refusals = try Row.fetchAll(db, sql: """
                SELECT r.id, r.received_at, r.topic, r.device, r.reason, r.detail, r.payload_sha256, p.payload
                FROM reject r JOIN reject_payload p ON p.reject_id = r.id
                WHERE r.pilot = ? AND instr(p.payload, ?) > 0 ORDER BY r.id
                """, arguments: [pilot, Data(quoted)]).compactMap { row in
                guard let reason = ReasonCode(rawValue: row[4]) else { return nil }
                let payload: Data = row[7]
                return SubjectReport.Refusal(id: row[0], receivedAt: Instant(millis: row[1]), topic: row[2], device: row[3],
                                             reason: reason, detail: row[5], payloadSHA256: row[6], payload: Array(payload))
            }
            return report
        }
    }
}
