import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

// Feedback (federation.md): the cluster publishes a retained status per site; the site's serve
// reads it on the cluster's broker, and a refusal there shows at the site: a warning in its log
// naming the pilot, the day end and the reason, and in its metrics.

@Suite("Federation feedback: a snapshot refused at the cluster shows at the site", .serialized)
struct FederationFeedbackTests {
    @Test func aRefusalAtTheClusterIsLoggedAndCountedByTheSite() throws {
        let pair = try FederatedPair(days: 3)
        defer { pair.remove() }
        let clusterServe = try pair.startClusterServe()
        defer { clusterServe.terminate() }
        let metricsPort = try freeLoopbackPort()
        let siteServe = try pair.startSiteServe(extra: ["--metrics", "127.0.0.1:\(metricsPort)"])
        defer { siteServe.terminate() }
        let days = pair.days(through: pair.yesterday)
        let stored = try pair.waitForCluster("\(days.count) day ends") { $0.count >= days.count }

        // Accepted: the cluster's status names the latest day end; the site reports no refusal.
        let topic = "pilots/_cluster/sites/\(pair.siteID)/status"
        let yesterdayEnd = pair.yesterday.advanced(by: 1).start.adding(millis: -1)
        _ = try waitForRetained(port: pair.clusterBroker.port, topic: topic) { $0.contains(yesterdayEnd.description) }
        try siteServe.waitForLog("pilots/_cluster/sites/\(pair.siteID)/status")
        _ = try scrape(port: metricsPort, until: "no refusal") {
            $0["pilotwatch_federation_cluster_refusals_total"] == 0 && $0["pilotwatch_federation_cluster_last_refusal_timestamp_seconds"] == 0
        }
        #expect(!siteServe.logText.contains("the cluster refused"), "\(siteServe.logText)")

        // A snapshot computed with another enrolment target, on the site's topic: refused.
        let latest = try #require(stored.first { $0.asOf == yesterdayEnd })
        let wrong = latest.payload.replacingOccurrences(of: "\"enrolment_target\":80", with: "\"enrolment_target\":100")
            .replacingOccurrences(of: "\"revision\":\(latest.revision)", with: "\"revision\":\(latest.revision + 1)")
        #expect(wrong != latest.payload)
        try publish(port: pair.clusterBroker.port, topic: "pilots/\(pair.pilotID)/\(pair.siteID)/agg", message: wrong)
        let status = try waitForRetained(port: pair.clusterBroker.port, topic: topic) { $0.contains("registry_mismatch") }
        #expect(status.contains("\"as_of\":\"\(yesterdayEnd)\",\"reason\":\"registry_mismatch\""), "\(status)")

        // The site logs it, naming the pilot, the day end and the reason, and counts it.
        try siteServe.waitForLog("the cluster refused the snapshot of \(pair.pilotID) as of \(yesterdayEnd): registry_mismatch: registry.enrolment_target: 100 is not the cluster's 80")
        let text = try scrape(port: metricsPort, until: "one refusal") { $0["pilotwatch_federation_cluster_refusals_total"] == 1 }
        let at = try #require(samples(text)["pilotwatch_federation_cluster_last_refusal_timestamp_seconds"])
        #expect(abs(at - Date().timeIntervalSince1970) < 600, "the refusal's time, \(at)")
        #expect(siteServe.logText.components(separatedBy: "the cluster refused").count == 2, "logged once")
        #expect(try pair.clusterSnapshots().first { $0.asOf == yesterdayEnd }?.revision == latest.revision, "nothing replaced")

        // A restart reads the retained status again: the refusal is reported again.
        #expect(siteServe.terminate() == 0)
        let again = try pair.startSiteServe()
        defer { again.terminate() }
        try again.waitForLog("the cluster refused the snapshot of \(pair.pilotID) as of \(yesterdayEnd): registry_mismatch")
    }
}
