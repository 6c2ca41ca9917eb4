import Dispatch
import Foundation
import Logging
import MQTT
import PilotwatchCore
import PilotwatchMonitoring

/// What the cluster says of this site in its retained status (federation.md, "Feedback"; written
/// by ``SiteFeedback`` at the cluster): the latest day end it accepted per pilot, and its last
/// refusal.
struct ClusterSiteStatus: Sendable, Equatable {
    struct Accepted: Sendable, Equatable {
        var pilot: String
        var asOf: Instant?
        var revision: Int64?
    }
    struct Refusal: Sendable, Equatable {
        var at: Instant
        var pilot: String
        /// The refused snapshot's day end, when the cluster could read it.
        var asOf: Instant?
        var reason: String
        var detail: String
    }
    var site: String
    var pilots: [Accepted]
    var lastRefusal: Refusal?

    /// Reads a status; nil when it is not one (the broker is the cluster's, but a status is
    /// still input: nothing in it is trusted beyond its shape).
    static func parse(_ payload: [UInt8]) -> ClusterSiteStatus? {
        guard let v = try? JSON.parse(payload), let site = v["site"]?.string else { return nil }
        let pilots = (v["pilots"]?.array ?? []).compactMap { p -> Accepted? in
            guard let id = p["pilot"]?.string else { return nil }
            return Accepted(pilot: id, asOf: p["as_of"]?.string.flatMap(RFC3339.parse),
                            revision: p["revision"]?.number.flatMap { Int64(exactly: $0.double) })
        }
        var refusal: Refusal?
        if let r = v["last_refusal"], let at = r["at"]?.string.flatMap(RFC3339.parse), let pilot = r["pilot"]?.string,
           let reason = r["reason"]?.string {
            refusal = Refusal(at: at, pilot: pilot, asOf: r["as_of"]?.string.flatMap(RFC3339.parse), reason: reason,
                              detail: r["detail"]?.string ?? "")
        }
        return ClusterSiteStatus(site: site, pilots: pilots, lastRefusal: refusal)
    }
}

/// A site instance's reading of the cluster's status for it: serve subscribes on the cluster's
/// broker (the site's account, client id `{site_id}-status`) to the retained
/// `{root}/_cluster/sites/{site_id}/status`, keeps the latest, logs each refusal it reports as a
/// warning naming the pilot, the day end and the reason, and shows it in serve's metrics
/// (`pilotwatch_federation_cluster_refusals_total`, `..._last_refusal_timestamp_seconds`). The
/// subscription runs on a thread of its own and reconnects by itself; a cluster away delays the
/// news, and never holds up ingest or sending.
///
/// ```swift
/// let watch = try ClusterFeedback(service: ctx.service, federation: federation, metrics: metrics, logger: logger)
/// watch.start()
/// defer { watch.stop() }
/// ```
final class ClusterFeedback: Sendable {
    private let subscriber: MQTTSubscriber
    private let siteID: String
    private let latestStatus = Mutex<ClusterSiteStatus?>(nil)
    private let metrics: ServeMetrics?
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    init(service: ServiceConfig, federation: FederationSettings, metrics: ServeMetrics?, logger: Logger) throws {
        var cluster = service
        cluster.broker = federation.cluster
        cluster.broker.clientID = federation.siteID + "-status"
        var config = try mqttConfiguration(cluster)
        config.subscriptions = [SiteFeedback.topic(root: service.topicRoot, site: federation.siteID)]
        // No session kept between connections: the status is retained, and a subscription made
        // anew on every connect (after a restart too) is what brings the latest one.
        config.sessionExpirySeconds = 0
        subscriber = try MQTTSubscriber(configuration: config, logger: logger)
        siteID = federation.siteID
        self.metrics = metrics
        self.logger = logger
    }

    /// The status last received, if any.
    var latest: ClusterSiteStatus? { latestStatus.withLock { $0 } }

    func start() {
        let thread = Thread { [self] in
            do {
                try subscriber.run { batch in for m in batch { received(m.payload) } }
            } catch {
                logger.warning("federation: no longer reading the cluster's status for site \(siteID): \(error)")
            }
            finished.signal()
        }
        thread.name = "pilotwatch.cluster-status"
        thread.start()
    }

    func stop() {
        subscriber.stop()
        finished.wait()
    }

    /// One status from the cluster: kept; a refusal not seen before is logged and counted.
    func received(_ payload: [UInt8]) {
        guard let status = ClusterSiteStatus.parse(payload), status.site == siteID else {
            logger.warning("federation: the cluster's status for site \(siteID) is not readable (ignored)")
            return
        }
        let previous = latestStatus.withLock { latest in
            defer { latest = status }
            return latest
        }
        guard let r = status.lastRefusal, r != previous?.lastRefusal else { return }
        logger.warning("federation: the cluster refused the snapshot of \(r.pilot) as of \(r.asOf?.description ?? "(a day end it could not read)"): \(r.reason): \(r.detail)",
                       metadata: ["federation.pilot": "\(r.pilot)", "federation.as_of": "\(r.asOf?.description ?? "")",
                                  "federation.reason": "\(r.reason)", "federation.refused_at": "\(r.at)"])
        metrics?.clusterRefusal(at: r.at)
    }
}
