import Logging
import PilotwatchCore
import PilotwatchMonitoring
import PilotwatchStore

/// `serve --metrics`: the endpoint that shows ``ServeMetrics`` to Prometheus.
enum MetricsEndpoint {
    /// Binds `address` (a port in use is an error here, before serve starts its work); each
    /// scrape first refreshes what is read rather than counted: the inbox backlog, the apply
    /// lag and each pilot's last measurement time. Call `start()` on the result.
    static func make(at address: ListenAddress, metrics: ServeMetrics, inbox: Inbox, applier: InboxApplier, store: Store,
                     logger: Logger) throws -> MetricsHTTPServer {
        do {
            return try MetricsHTTPServer(address: address) {
                let applied = applier.position
                metrics.refresh(backlogBytes: inbox.backlogBytes(after: applied), appliedThrough: applied)
                do {
                    metrics.setLastMeasurements(try store.lastObservationTimes())
                } catch {
                    logger.warning("metrics: cannot read the pilots' last measurement times (kept as they were): \(error)")
                }
                return metrics.render()
            }
        } catch {
            throw CLIError("--metrics: \(error)")
        }
    }
}
