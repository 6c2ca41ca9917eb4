import Foundation
import Logging
import PilotwatchMonitoring
import PilotwatchStore

/// What `serve` counts: the log's counts line, the delays before messages are visible, and the
/// Prometheus metrics when `--metrics` asks for them.
struct ServeTallies: Sendable {
    let counts = IngestCounts()
    let visibility = VisibilityDelays()
    /// Where `--metrics` serves them (nil: not served, and `metrics` is nil).
    let metricsAddress: ListenAddress?
    let metrics: ServeMetrics?

    init(metrics: String?) throws {
        metricsAddress = try metrics.map { try ListenAddress(parsing: $0) }
        self.metrics = metricsAddress.map { _ in ServeMetrics(version: PilotwatchVersion.current) }
    }

    /// Records what was stored, from the inbox or handed over, in the log's counts and the metrics.
    var recordOutcomes: @Sendable ([IngestOutcome]) -> Void {
        let counts = counts, metrics = metrics
        return { counts.add($0); metrics?.applied(outcomes: $0) }
    }

    /// The metrics endpoint, bound but not started; nil without `--metrics`.
    func makeMetricsServer(_ storage: ServeStorage, applier: InboxApplier, logger: Logger) throws -> MetricsHTTPServer? {
        guard let metricsAddress, let metrics else { return nil }
        return try MetricsEndpoint.make(at: metricsAddress, metrics: metrics, inbox: storage.inbox, applier: applier,
                                        store: storage.store, logger: logger)
    }

    /// The last lines of a run: the counts, the visibility delays and the applier's work.
    func logSummary(_ work: ApplyWork, logger: Logger) {
        logger.info("\(counts.line())")
        logger.info("\(visibility.summary())")
        let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        logger.info("apply path: \(work.records) messages, \(work.bytes) bytes in \(String(format: "%.3f", seconds(work.busy))) s of applying (\(String(format: "%.3f", seconds(work.waitingForValidation))) s of it waiting for validation)")
    }
}
