import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

/// The cluster's word to each site instance (federation.md, "Feedback"): a retained JSON status
/// on `{root}/_cluster/sites/{site_id}/status`, republished each time serve accepts or refuses a
/// snapshot of that site, so that a site learns that its snapshots are refused without asking.
///
/// ```json
/// {"site": "chu-lille", "updated_at": "2026-12-04T03:00:12.345Z",
///  "pilots": [{"pilot": "hf-nord-02", "as_of": "2026-12-03T23:59:59.999Z", "revision": 1796353200000,
///              "accepted_at": "2026-12-04T02:00:03.120Z"}],
///  "last_refusal": {"at": "2026-12-04T03:00:12.345Z", "pilot": "hf-nord-02", "as_of": "2026-12-03T23:59:59.999Z",
///                   "reason": "registry_mismatch",
///                   "detail": "registry.enrolment_target: 100 is not the cluster's 80 for pilot hf-nord-02; ..."}}
/// ```
///
/// `as_of` is the refused snapshot's day end when its payload gives one (null otherwise: a
/// message that is not JSON, or whose payload is kept as hash only).
///
/// The applier hands each committed batch to ``record(_:_:)`` on its own thread; publishing
/// happens on this object's queue, over its own connection (client id `{client_id}-sites`,
/// connected at the first status and again whenever it is down), so that a broker away never
/// holds up the applier. Only sites named in the registry get a status: a topic's site level is
/// whatever the publisher wrote, and the broker must not fill with retained topics for made-up
/// names. The last refusal is kept in memory: after a restart, a site's status shows it again
/// only once the site sends another snapshot.
final class SiteFeedback: Sendable {
    struct PilotState: Sendable {
        var asOf: Instant
        var revision: Int64
        var acceptedAt: Instant
    }
    struct Refusal: Sendable {
        var at: Instant
        var pilot: String
        var asOf: Instant?
        var reason: ReasonCode
        var detail: String
    }
    struct SiteState: Sendable {
        var pilots: [String: PilotState] = [:]
        var lastRefusal: Refusal?
    }

    private let root: String
    /// Site id → the pilots the registry says it reports.
    private let sites: [String: [String]]
    private let state: Mutex<[String: SiteState]>
    private let publisher: MQTTPublisher?
    private let queue = DispatchQueue(label: "pilotwatch.site-feedback")
    private let logger: Logger

    /// `held`: the snapshots the store holds, so that a status after a restart still names the
    /// latest accepted day end of each pilot.
    init(root: String, registry: Registry, held: [SnapshotSummary], publisher: MQTTPublisher?, logger: Logger) {
        self.root = root
        var sites: [String: [String]] = [:]
        for p in registry.pilots { if let site = p.site { sites[site, default: []].append(p.id) } }
        self.sites = sites
        var initial: [String: SiteState] = [:]
        for h in held where sites[h.site]?.contains(h.pilot) == true {
            initial[h.site, default: SiteState()].pilots[h.pilot] = PilotState(asOf: h.latestAsOf, revision: h.revision, acceptedAt: h.receivedAt)
        }
        state = Mutex(initial)
        self.publisher = publisher
        self.logger = logger
    }

    /// The retained status topic of `site`.
    static func topic(root: String, site: String) -> String { "\(root)/_cluster/sites/\(site)/status" }

    /// Notes what a committed batch did with the snapshots in it and publishes the status of
    /// each site concerned (asynchronously).
    func record(_ items: [IngestItem], _ outcomes: [IngestOutcome]) {
        var touched: Set<String> = []
        for (item, outcome) in zip(items, outcomes) {
            guard let topic = item.verdict.parsedTopic, topic.kind == .agg, sites[topic.device] != nil else { continue }
            let site = topic.device
            state.withLock { all in
                var s = all[site] ?? SiteState()
                switch (outcome, item.verdict) {
                case (.snapshot, .snapshot(_, let receipt)):
                    // The latest day end accepted (a late revision of an older day end leaves it).
                    if s.pilots[topic.pilot].map({ $0.asOf <= receipt.asOf }) ?? true {
                        s.pilots[topic.pilot] = PilotState(asOf: receipt.asOf, revision: receipt.revision, acceptedAt: item.receivedAt)
                    }
                case (.refused(let reason), _):
                    let detail: String
                    if case .refused(_, let refusal) = item.verdict { detail = refusal.detail } else {
                        detail = "the cluster's database refused it; the cluster will replay it"
                    }
                    s.lastRefusal = Refusal(at: item.receivedAt, pilot: topic.pilot, asOf: Self.asOf(item.payload),
                                            reason: reason, detail: detail)
                default:
                    break  // a duplicate changes nothing
                }
                all[site] = s
            }
            touched.insert(site)
        }
        for site in touched.sorted() { publish(site) }
    }

    /// The `as_of` a refused snapshot gives, when its payload is a JSON object with a valid one.
    static func asOf(_ payload: [UInt8]) -> Instant? {
        guard !payload.isEmpty, let text = (try? JSON.parse(payload))?["as_of"]?.string else { return nil }
        return RFC3339.parse(text)
    }

    /// The status of `site` now, as JSON.
    func payload(_ site: String, now: Instant = .now) -> String {
        let s = state.withLock { $0[site] } ?? SiteState()
        var w = JSONWriter()
        w.object { o in
            o.field("site", site)
            o.field("updated_at", now.description)
            o.arrayField("pilots") { a in
                for pilot in sites[site] ?? [] {
                    let p = s.pilots[pilot]
                    a.object { e in
                        e.field("pilot", pilot)
                        e.field("as_of", p?.asOf.description)
                        e.field("revision", p.map { Int($0.revision) })
                        e.field("accepted_at", p?.acceptedAt.description)
                    }
                }
            }
            if let r = s.lastRefusal {
                o.objectField("last_refusal") { e in
                    e.field("at", r.at.description)
                    e.field("pilot", r.pilot)
                    e.field("as_of", r.asOf?.description)
                    e.field("reason", r.reason.rawValue)
                    e.field("detail", r.detail)
                }
            } else {
                o.field("last_refusal", nil as String?)
            }
        }
        return w.text
    }

    private func publish(_ site: String) {
        guard let publisher else { return }
        queue.async { [self] in
            if !publisher.isConnected {
                do { try publisher.connect() } catch {
                    logger.warning("sites: cannot publish the status of site \(site) (no connection to the broker; sent with its next snapshot): \(error)")
                    return
                }
            }
            do {
                try publisher.publish(topic: Self.topic(root: root, site: site), payload: Array(payload(site).utf8), qos: 1, retain: true)
            } catch {
                logger.warning("sites: cannot publish the status of site \(site): \(error)")
            }
        }
    }

    /// Waits for the statuses queued so far, then disconnects.
    func stop() {
        queue.sync {
            try? publisher?.waitForAllAcknowledged(timeout: 5)
            publisher?.disconnect()
        }
    }
}

extension Verdict {
    /// The parsed topic, whatever the verdict.
    var parsedTopic: Topic? {
        switch self {
        case .observations(let topic, _), .status(let topic, _), .snapshot(let topic, _): return topic
        case .refused(let topic, _): return topic
        }
    }
}
