import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

/// One contract case: a message that must be refused for `reason`, and a neighbour that differs
/// only in what the rule is about and must be accepted.
struct ReasonCase: CustomStringConvertible, Sendable {
    var reason: ReasonCode
    var name: String
    var pilot = "resp-copd-idf-01"
    var refusedTopicPilot: String?
    var refused: String
    var accepted: String
    var description: String { "\(reason.rawValue): \(name)" }
}

private let t = isoNow(minutesAgo: 10)
private let subj = "p-7f3a9c21"

let reasonCases: [ReasonCase] = [
    ReasonCase(reason: .malformedJSON, name: "truncated JSON",
               refused: "{\"msg_id\":\"a\",\"observations\":[", accepted: obsMessage("a", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .schema, name: "observations missing",
               refused: "{\"msg_id\":\"b\"}", accepted: obsMessage("b", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .schema, name: "value as a string",
               refused: "{\"msg_id\":\"b2\",\"observations\":[{\"subject\":\"\(subj)\",\"indicator\":\"spo2\",\"value\":\"94\",\"unit\":\"%\",\"at\":\"\(t)\"}]}",
               accepted: obsMessage("b2", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .tooLarge, name: "over 256 KiB",
               refused: obsMessage("c", Array(repeating: obs(subj, "spo2", 94, unit: "%", at: t), count: 3000)),
               accepted: obsMessage("c", Array(repeating: obs(subj, "spo2", 94, unit: "%", at: t), count: 1))),
    ReasonCase(reason: .unknownPilot, name: "pilot not in the registry", refusedTopicPilot: "resp-unknown-99",
               refused: obsMessage("d", [obs(subj, "spo2", 94, unit: "%", at: t)]),
               accepted: obsMessage("d", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .unknownIndicator, name: "indicator not in the catalogue",
               refused: obsMessage("e", [obs(subj, "spo3", 94, unit: "%", at: t)]),
               accepted: obsMessage("e", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .indicatorNotInProgramme, name: "HbA1c from a respiratory pilot",
               refused: obsMessage("f", [obs(subj, "hba1c", 8.1, unit: "%", at: t)]),
               accepted: obsMessage("f", [obs(subj, "fev1", 1.8, unit: "L", at: t)])),
    ReasonCase(reason: .badUnit, name: "glucose in mg/dl (wrong case)", pilot: "diab-cgm-idf-02",
               refused: obsMessage("g", [obs(subj, "glucose", 162, unit: "mg/dl", at: t)]),
               accepted: obsMessage("g", [obs(subj, "glucose", 162, unit: "mg/dL", at: t)])),
    ReasonCase(reason: .outOfRange, name: "SpO2 140",
               refused: obsMessage("h", [obs(subj, "spo2", 140, unit: "%", at: t)]),
               accepted: obsMessage("h", [obs(subj, "spo2", 100, unit: "%", at: t)])),
    ReasonCase(reason: .badTime, name: "an hour in the future",
               refused: obsMessage("i", [obs(subj, "spo2", 94, unit: "%", at: isoNow(minutesAgo: -60))]),
               accepted: obsMessage("i", [obs(subj, "spo2", 94, unit: "%", at: isoNow(minutesAgo: 1))])),
    ReasonCase(reason: .badTime, name: "no offset",
               refused: obsMessage("i2", [obs(subj, "spo2", 94, unit: "%", at: "2026-06-01T10:00:00")]),
               accepted: obsMessage("i2", [obs(subj, "spo2", 94, unit: "%", at: "2026-06-01T10:00:00+02:00")])),
    ReasonCase(reason: .pilotMismatch, name: "payload names another pilot",
               refused: "{\"msg_id\":\"j\",\"pilot\":\"card-hf-idf-03\",\"observations\":[\(obs(subj, "spo2", 94, unit: "%", at: t))]}",
               accepted: "{\"msg_id\":\"j\",\"pilot\":\"resp-copd-idf-01\",\"observations\":[\(obs(subj, "spo2", 94, unit: "%", at: t))]}"),
    ReasonCase(reason: .identifyingData, name: "e-mail as subject",
               refused: obsMessage("k", [obs("jane.doe@example.org", "spo2", 94, unit: "%", at: t)]),
               accepted: obsMessage("k", [obs("p-janedoe01", "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .identifyingData, name: "a name field",
               refused: "{\"msg_id\":\"l\",\"observations\":[{\"subject\":\"\(subj)\",\"name\":\"Jane Doe\",\"indicator\":\"spo2\",\"value\":94,\"unit\":\"%\",\"at\":\"\(t)\"}]}",
               accepted: obsMessage("l", [obs(subj, "spo2", 94, unit: "%", at: t)])),
    ReasonCase(reason: .identifyingData, name: "a phone number as subject",
               refused: obsMessage("m", [obs("0612345678", "spo2", 94, unit: "%", at: t)]),
               accepted: obsMessage("m", [obs("p-06a12b34", "spo2", 94, unit: "%", at: t)])),
]

@Suite("Contract over a real broker", .serialized)
struct ContractOverBrokerTests {
    /// Every reason code: the refused message is quarantined with that reason; its neighbour is stored.
    @Test func everyReasonHasARefusedCaseAndAnAcceptedNeighbour() throws {
        try withRunningServe { broker, ws, serve in

            for (i, c) in reasonCases.enumerated() {
                let badPilot = c.refusedTopicPilot ?? c.pilot
                try publish(port: broker.port, topic: "pilots/\(badPilot)/case-\(i)-bad/obs", message: c.refused)
                try publish(port: broker.port, topic: "pilots/\(c.pilot)/case-\(i)-ok/obs", message: c.accepted)
            }
            let total = reasonCases.count * 2
            let stats = try ws.waitFor("\(total) messages") { $0.accepted + $0.duplicate + $0.refused >= total }
            #expect(stats.refused == reasonCases.count)
            #expect(stats.accepted == reasonCases.count)
            #expect(stats.duplicate == 0)
            // erased_subject needs an erasure first: ErasureTests refuses it over the broker;
            // aggregate_pilot, unknown_site and registry_mismatch need a pilot that reports
            // aggregates: FederationIntakeTests refuses them over the broker.
            let elsewhere: Set<ReasonCode> = [.storeError, .erasedSubject, .aggregatePilot, .unknownSite, .registryMismatch]
            #expect(ReasonCode.allCases.filter { !elsewhere.contains($0) }.allSatisfy { (stats.refusedByReason[$0] ?? 0) > 0 },
                    "every reason code of the contract seen: \(stats.refusedByReason)")

            let rejects = try ws.run(["rejects", "--format", "json", "--limit", "1000"])
            #expect(rejects.status == 0, "\(rejects.stderr)")
            let rows = try #require(JSONSerialization.jsonObject(with: Data(rejects.stdout.utf8)) as? [[String: Any]])
            for (i, c) in reasonCases.enumerated() {
                let mine = rows.filter { ($0["topic"] as? String)?.contains("/case-\(i)-") == true }
                #expect(mine.count == 1, "\(c): \(mine)")
                #expect(mine.first?["reason"] as? String == c.reason.rawValue, "\(c): \(mine)")
                #expect((mine.first?["topic"] as? String)?.contains("case-\(i)-bad") == true, "\(c)")
                let detail = mine.first?["detail"] as? String ?? ""
                #expect(!detail.isEmpty, "\(c) has a detail")
                if c.reason == .identifyingData {
                    #expect(!detail.contains("jane.doe@example.org") && !detail.contains("0612345678") && !detail.contains("Jane Doe"),
                            "the detail never repeats identifying data: \(detail)")
                }
            }
            #expect(serve.terminate() == 0, "serve exits 0 on SIGTERM:\n\(serve.logText)")
        }
    }

    /// Identifying data is never stored: not the payload, not the value; only topic, time, reason and hash.
    @Test func identifyingPayloadIsNeverStored() throws {
        try withRunningServe { broker, ws, serve in
            let secret = "marie.curie.1867@example.org"
            let payload = obsMessage("id-1", [obs(secret, "spo2", 94, unit: "%", at: t)])
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-1/obs", message: payload)
            try ws.waitFor("the refusal") { $0.refused == 1 }
            serve.terminate()
            for file in [ws.db, ws.db + "-wal"] where FileManager.default.fileExists(atPath: file) {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) must not contain the e-mail")
            }
            let rejects = try ws.run(["rejects", "--format", "json"])
            let rows = try #require(JSONSerialization.jsonObject(with: Data(rejects.stdout.utf8)) as? [[String: Any]])
            #expect(rows.count == 1)
            #expect(rows.first?["reason"] as? String == "identifying_data")
            #expect(rows.first?["payload_sha256"] as? String == SHA256.hex(Array(payload.utf8)))
        }
    }

    /// The same msg_id twice, and the same observation in two messages, count once.
    @Test func duplicatesCountOnce() throws {
        try withRunningServe { broker, ws, serve in
            let o1 = obs(subj, "spo2", 94, unit: "%", at: t)
            let o2 = obs(subj, "spo2", 95, unit: "%", at: isoNow(minutesAgo: 5))
            let topic = "pilots/resp-copd-idf-01/oxi-1/obs"
            try publish(port: broker.port, topic: topic, message: obsMessage("m-1", [o1]))
            try publish(port: broker.port, topic: topic, message: obsMessage("m-1", [o1]))          // retry: same msg_id
            try publish(port: broker.port, topic: topic, message: obsMessage("m-2", [o1, o2]))      // o1 again in another message
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/oxi-2/obs", message: obsMessage("m-1", [o2])) // same msg_id, other device
            let s = try ws.waitFor("4 messages") { $0.accepted + $0.duplicate + $0.refused >= 4 }
            #expect(s.accepted == 3)
            #expect(s.duplicate == 1)
            #expect(s.observations == 2)
            #expect(s.duplicateObservations == 2)
            let pilot = try #require(s.pilots.first { $0.pilot == "resp-copd-idf-01" })
            #expect(pilot.observations == 2)
            #expect(pilot.subjects == 1)
            #expect(pilot.devices == 2)
        }
    }

    /// A hostile corpus: nothing crashes, everything is refused with a reason.
    @Test func hostileCorpusIsRefusedWithReasons() throws {
        try withRunningServe { broker, ws, serve in

            let dir = ws.dir
            var cases: [(topic: String, file: String, reason: ReasonCode)] = []
            func add(_ name: String, _ bytes: [UInt8], _ reason: ReasonCode, topic: String = "pilots/resp-copd-idf-01/dev-h/obs") throws {
                let file = dir + "/hostile-\(name)"
                try Data(bytes).write(to: URL(fileURLWithPath: file))
                cases.append((topic, file, reason))
            }
            let sql = "'; DROP TABLE observation; --"
            try add("invalid-utf8", [0x7B, 0x22, 0x6D, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D], .malformedJSON)
            try add("10mb", Array(repeating: UInt8(ascii: " "), count: 10 * 1024 * 1024) + Array("{}".utf8), .tooLarge)
            try add("deep", Array(String(repeating: "[", count: 100_000).utf8), .malformedJSON)
            try add("nan", Array(obsMessage("n1", ["{\"subject\":\"\(subj)\",\"indicator\":\"spo2\",\"value\":NaN,\"unit\":\"%\",\"at\":\"\(t)\"}"]).utf8), .malformedJSON)
            try add("infinity", Array(obsMessage("n2", ["{\"subject\":\"\(subj)\",\"indicator\":\"spo2\",\"value\":Infinity,\"unit\":\"%\",\"at\":\"\(t)\"}"]).utf8), .malformedJSON)
            try add("huge", Array(obsMessage("n3", ["{\"subject\":\"\(subj)\",\"indicator\":\"spo2\",\"value\":1e999,\"unit\":\"%\",\"at\":\"\(t)\"}"]).utf8), .outOfRange)
            try add("string-number", Array(obsMessage("n4", ["{\"subject\":\"\(subj)\",\"indicator\":\"spo2\",\"value\":\"94\",\"unit\":\"%\",\"at\":\"\(t)\"}"]).utf8), .schema)
            try add("empty-object", Array("{}".utf8), .schema)
            try add("empty-observations", Array("{\"msg_id\":\"e\",\"observations\":[]}".utf8), .schema)
            try add("empty-observation", Array("{\"msg_id\":\"e2\",\"observations\":[{}]}".utf8), .schema)
            try add("sql-subject", Array(obsMessage("s2", [obs(sql, "spo2", 94, unit: "%", at: t)]).utf8), .schema)
            try add("sql-indicator", Array(obsMessage("s3", [obs(subj, sql, 94, unit: "%", at: t)]).utf8), .unknownIndicator)
            try add("sql-unit", Array(obsMessage("s4", [obs(subj, "spo2", 94, unit: sql, at: t)]).utf8), .badUnit)
            try add("sql-at", Array(obsMessage("s5", [obs(subj, "spo2", 94, unit: "%", at: sql)]).utf8), .badTime)
            try add("sql-pilot", Array("{\"msg_id\":\"s6\",\"pilot\":\"\(sql)\",\"observations\":[\(obs(subj, "spo2", 94, unit: "%", at: t))]}".utf8), .pilotMismatch)
            for (name, level) in [("dotdot", ".."), ("long", String(repeating: "d", count: 65)), ("upper", "Dev-1"), ("empty", "")] {
                try add("topic-\(name)", Array(obsMessage("t", [obs(subj, "spo2", 94, unit: "%", at: t)]).utf8), .schema,
                        topic: "pilots/resp-copd-idf-01/\(level)/obs")
            }
            for c in cases { try publish(port: broker.port, topic: c.topic, file: c.file) }
            let s = try ws.waitFor("\(cases.count) refusals", timeout: 90) { $0.refused + $0.accepted >= cases.count }
            #expect(s.accepted == 0)
            #expect(s.refused == cases.count)
            #expect(s.observations == 0)
            var expected: [ReasonCode: Int] = [:]
            for c in cases { expected[c.reason, default: 0] += 1 }
            #expect(s.refusedByReason == expected)
            // The service survived all of it.
            #expect(serve.isRunning)
            let after = obsMessage("after", [obs(subj, "spo2", 94, unit: "%", at: t)])
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-h/obs", message: after)
            try ws.waitFor("a valid message after the corpus") { $0.accepted == 1 }
            // SQL in msg_id is printable ASCII, so the contract allows it: stored as text, harmlessly.
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-h/obs",
                        message: obsMessage(sql, [obs(subj, "spo2", 91, unit: "%", at: isoNow(minutesAgo: 3))]))
            let withSQL = try ws.waitFor("the SQL msg_id") { $0.accepted == 2 }
            #expect(withSQL.observations == 2)
            try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/dev-h/obs",
                        message: obsMessage(sql, [obs(subj, "spo2", 91, unit: "%", at: isoNow(minutesAgo: 3))]))
            #expect(try ws.waitFor("its retry, a duplicate") { $0.duplicate == 1 }.accepted == 2)

            // `+` and `#` cannot be published at all (MQTT forbids wildcards in a publish topic), so
            // they can only reach pilotwatch through `ingest`: refused there with a reason.
            for level in ["dev+1", "dev#1", "+", "#"] {
                #expect(throws: (any Error).self) {
                    try publish(port: broker.port, topic: "pilots/resp-copd-idf-01/\(level)/obs", message: after)
                }
            }
            serve.terminate()
            let lines = ["dev+1", "dev#1", "+", "#"].map {
                "{\"topic\":\"pilots/resp-copd-idf-01/\($0)/obs\",\"payload\":\(after)}"
            }
            let r = try ws.run(["ingest", "-", "--format", "json"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(r.status == 0, "\(r.stderr)")
            let counts = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(counts["refused"] as? Int == 4)
            #expect((counts["refused_by_reason"] as? [String: Int])?["schema"] == 4)
        }
    }
}
