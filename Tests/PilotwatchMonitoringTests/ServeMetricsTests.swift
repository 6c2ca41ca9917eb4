import Foundation
import PilotwatchCore
@testable import PilotwatchMonitoring
import PilotwatchStore
import TestSupport
import Testing

/// The samples of a rendered text, by `name{labels}` as written.
private func samples(_ metrics: ServeMetrics) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in String(decoding: metrics.render(), as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = value
    }
    return out
}

private func at(_ seconds: Double) -> Instant { Instant(seconds: 1_780_000_000 + seconds) }

@Suite("Serve metrics")
struct ServeMetricsTests {
    @Test func outcomesAreCountedByKindAndRefusalsByReason() {
        let metrics = ServeMetrics(version: "9.9.9")
        metrics.applied(outcomes: [.accepted(newObservations: 3, duplicateObservations: 1), .duplicateMessage,
                                   .status, .refused(.schema), .refused(.schema), .refused(.identifyingData)])
        metrics.applied(outcomes: [.accepted(newObservations: 2, duplicateObservations: 0)])
        let s = samples(metrics)
        #expect(s["pilotwatch_messages_accepted_total"] == 2)
        #expect(s["pilotwatch_messages_duplicate_total"] == 1)
        #expect(s["pilotwatch_messages_status_total"] == 1)
        #expect(s["pilotwatch_observations_stored_total"] == 5)
        #expect(s["pilotwatch_messages_refused_total{reason=\"schema\"}"] == 2)
        #expect(s["pilotwatch_messages_refused_total{reason=\"identifying_data\"}"] == 1)
        #expect(s["pilotwatch_messages_refused_total{reason=\"bad_unit\"}"] == 0)
    }

    @Test func everyMetricIsThereFromTheStartWithItsLabels() {
        let s = samples(ServeMetrics(version: "9.9.9"))
        for name in ["pilotwatch_messages_received_total", "pilotwatch_messages_accepted_total",
                     "pilotwatch_messages_duplicate_total", "pilotwatch_messages_status_total",
                     "pilotwatch_observations_stored_total", "pilotwatch_inbox_backlog_bytes", "pilotwatch_apply_lag_seconds",
                     "pilotwatch_sqlite_commit_duration_seconds_count", "pilotwatch_broker_connected",
                     "pilotwatch_last_message_received_timestamp_seconds"] {
            #expect(s[name] == 0, "\(name)")
        }
        for reason in ReasonCode.allCases {
            #expect(s["pilotwatch_messages_refused_total{reason=\"\(reason.rawValue)\"}"] == 0, "\(reason)")
        }
        #expect(s["pilotwatch_build_info{version=\"9.9.9\"}"] == 1)
    }

    @Test func noLabelButReasonPilotVersionAndBucket() {
        let metrics = ServeMetrics(version: "1")
        metrics.setLastMeasurements(["resp-copd-idf-01": at(0)])
        metrics.commitDuration(.milliseconds(3))
        var names = Set<String>()
        for key in samples(metrics).keys {
            guard let open = key.firstIndex(of: "{") else { continue }
            for pair in key[key.index(after: open)..<key.index(before: key.endIndex)].split(separator: ",") {
                names.insert(String(pair.prefix { $0 != "=" }))
            }
        }
        #expect(names == ["reason", "pilot", "version", "le"])
    }

    @Test func receivingCountsAndStampsTheTime() {
        let metrics = ServeMetrics(version: "1")
        metrics.received(3, at: at(1.5), through: InboxPosition(segment: 1, offset: 300))
        metrics.received(0, at: at(9), through: InboxPosition(segment: 1, offset: 300))
        let s = samples(metrics)
        #expect(s["pilotwatch_messages_received_total"] == 3)
        #expect(s["pilotwatch_last_message_received_timestamp_seconds"] == 1_780_000_001.5)
    }

    @Test func theCommitHistogramIsInSeconds() {
        let metrics = ServeMetrics(version: "1")
        metrics.commitDuration(.milliseconds(3))
        metrics.commitDuration(.milliseconds(700))
        let s = samples(metrics)
        #expect(s["pilotwatch_sqlite_commit_duration_seconds_count"] == 2)
        #expect(s["pilotwatch_sqlite_commit_duration_seconds_sum"] == 0.703)
        #expect(s["pilotwatch_sqlite_commit_duration_seconds_bucket{le=\"0.005\"}"] == 1)
        #expect(s["pilotwatch_sqlite_commit_duration_seconds_bucket{le=\"1.0\"}"] == 2)
        #expect(s["pilotwatch_sqlite_commit_duration_seconds_bucket{le=\"+Inf\"}"] == 2)
    }

    @Test func theBrokerConnectionIsOneOrZero() {
        let metrics = ServeMetrics(version: "1")
        metrics.setConnected(true)
        #expect(samples(metrics)["pilotwatch_broker_connected"] == 1)
        metrics.setConnected(false)
        #expect(samples(metrics)["pilotwatch_broker_connected"] == 0)
    }

    @Test func applyLagIsTheAgeOfTheOldestRecordNotApplied() {
        let metrics = ServeMetrics(version: "1")
        let first = InboxPosition(segment: 1, offset: 100), second = InboxPosition(segment: 1, offset: 200)
        metrics.received(1, at: at(0), through: first)
        metrics.received(1, at: at(5), through: second)
        metrics.refresh(backlogBytes: 200, appliedThrough: .start, now: at(12))
        #expect(samples(metrics)["pilotwatch_apply_lag_seconds"] == 12)
        #expect(samples(metrics)["pilotwatch_inbox_backlog_bytes"] == 200)
        metrics.refresh(backlogBytes: 100, appliedThrough: first, now: at(12))
        #expect(samples(metrics)["pilotwatch_apply_lag_seconds"] == 7)
        metrics.refresh(backlogBytes: 0, appliedThrough: second, now: at(12))
        #expect(samples(metrics)["pilotwatch_apply_lag_seconds"] == 0)
        #expect(samples(metrics)["pilotwatch_inbox_backlog_bytes"] == 0)
    }

    @Test func applyLagCountsWhatTheInboxHeldAtStart() throws {
        let dir = temporaryDirectory(prefix: "pilotwatch-monitoring")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inbox = try Inbox(directory: dir + "/inbox")
        let end = try inbox.append([InboxRecord(receivedAt: at(0), topic: "t", payload: [1]),
                                    InboxRecord(receivedAt: at(4), topic: "t", payload: [2])])
        let metrics = ServeMetrics(version: "1")
        metrics.inboxHeldAtStart(inbox, from: .start)
        metrics.refresh(backlogBytes: inbox.backlogBytes(after: .start), appliedThrough: .start, now: at(30))
        #expect(samples(metrics)["pilotwatch_apply_lag_seconds"] == 30)
        metrics.refresh(backlogBytes: 0, appliedThrough: end, now: at(30))
        #expect(samples(metrics)["pilotwatch_apply_lag_seconds"] == 0)
    }

    @Test func eachPilotHasItsLastMeasurementTime() {
        let metrics = ServeMetrics(version: "1")
        metrics.setLastMeasurements(["resp-copd-idf-01": at(10), "diab-cgm-idf-02": at(20)])
        metrics.setLastMeasurements(["resp-copd-idf-01": at(30)])
        let s = samples(metrics)
        #expect(s["pilotwatch_pilot_last_measurement_timestamp_seconds{pilot=\"resp-copd-idf-01\"}"] == 1_780_000_030)
        #expect(s["pilotwatch_pilot_last_measurement_timestamp_seconds{pilot=\"diab-cgm-idf-02\"}"] == 1_780_000_020)
    }
}

@Suite("Pending receipts")
struct PendingReceiptsTests {
    @Test func aSecondOfReceivingIsOneMark() {
        var pending = PendingReceipts()
        for i in 0..<100 { pending.received(at: at(Double(i) / 1000), through: InboxPosition(segment: 1, offset: Int64(i + 1))) }
        #expect(pending.count == 1)
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: 50)) == at(0))
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: 100)) == nil)
    }

    @Test func marksPassedAreForgotten() {
        var pending = PendingReceipts()
        for i in 0..<10_000 {
            pending.received(at: at(Double(i)), through: InboxPosition(segment: 1, offset: Int64(i + 1)))
            if i % 100 == 99 { _ = pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: Int64(i - 10))) }
        }
        #expect(pending.count <= 12)
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: 9_995)) == at(9_995))
    }

    @Test func unaskedForHoursTheMarksAreMergedAndTheOldestTimeKept() {
        var pending = PendingReceipts()
        let n = PendingReceipts.maxMarks * 3
        for i in 0..<n { pending.received(at: at(Double(i)), through: InboxPosition(segment: 1, offset: Int64(i + 1))) }
        #expect(pending.count <= PendingReceipts.maxMarks)
        #expect(pending.oldest(appliedThrough: .start) == at(0))
        let late = pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: Int64(n - 10)))
        #expect(late.map { $0 <= at(Double(n - 10)) } == true, "never younger than the true oldest")
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: Int64(n))) == nil)
    }

    @Test func aReceiptAfterEverythingWasAppliedStartsANewMark() {
        var pending = PendingReceipts()
        pending.received(at: at(0), through: InboxPosition(segment: 1, offset: 10))
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: 10)) == nil)
        pending.received(at: at(0.5), through: InboxPosition(segment: 1, offset: 20))
        #expect(pending.oldest(appliedThrough: InboxPosition(segment: 1, offset: 10)) == at(0.5))
    }
}
