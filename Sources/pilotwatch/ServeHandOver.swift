import Foundation
import Logging
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

extension Serve {
    /// Does what a maintenance command handed over (``ServeChannel``), on the channel's thread;
    /// its writes are serialised with the applier's batches by the store.
    static func handle(_ request: ServeRequest, _ connection: ServeConnection, store: Store,
                       validator: Mutex<ContractValidator>, inbox: Inbox, applier: InboxApplier,
                       reload: () throws -> Context, stored: ([IngestOutcome]) -> Void, logger: Logger) -> ServeReply {
        do {
            switch request.op {
            case .ingest:
                let source = request.source ?? "-"
                logger.notice("ingest handed over: importing \(source)")
                let tally = try StoreWork.ingest(LineReader(fileDescriptor: connection.fd), source: source, store: store,
                                                 validator: validator.withLock { $0 }, batch: max(1, min(request.batch ?? 500, 100_000)),
                                                 terminated: true, stored: stored)
                logger.notice("ingest handed over: \(source) done, \(tally.lines) lines, \(tally.accepted) accepted")
                return tally.reply
            case .replay:
                let filter = RejectFilter(pilot: request.pilot, reason: request.reason.flatMap(ReasonCode.init(rawValue:)),
                                          since: request.sinceMillis.map(Instant.init(millis:)))
                // The registry and catalogue as they are now; the topic root stays the one serve
                // subscribed with.
                let ctx = try reload()
                let current = ContractValidator(registry: ctx.registry, catalogue: ctx.catalogue,
                                                topicRoot: validator.withLock { $0.topicRoot }, snapshots: SnapshotIntake())
                validator.withLock { $0 = current }
                logger.notice("rejects replay handed over: reloaded the registry (\(ctx.registry.pilots.count) pilots) and the catalogue (\(ctx.catalogue.indicators.count) indicators), used from now on")
                let (candidates, summary) = try StoreWork.replay(store: store, validator: current, filter: filter,
                                                                 batch: max(1, min(request.batch ?? 500, 100_000)))
                logger.notice("rejects replay handed over: \(candidates) replayed, \(summary.accepted) imported")
                var reply = summary.reply
                reply.counts?["candidates"] = candidates
                return reply
            case .erase:
                guard let pilot = request.pilot, let subject = request.subject else { return .failure("erase needs a pilot and a subject") }
                let database = store.path
                let federated = (try? reload())?.service.federation?.pilots.contains(pilot) ?? false
                let summary = try applier.perform {
                    try ErasureWork.erase(store: store, inbox: inbox, applied: applier.position, database: database,
                                          pilot: pilot, subject: subject, federated: federated)
                }
                logger.notice("erase handed over: subject \(SubjectTombstone.short(summary.tombstone)) of \(pilot) erased (\(summary.observations) observations, \(summary.events) events, \(summary.messages) messages, \(summary.quarantined) refusals, \(summary.inboxRecords) inbox records)")
                return ServeReply(ok: true, erasure: summary)
            case .removeRawRows:
                guard let pilot = request.pilot else { return .failure("remove_raw_rows needs a pilot") }
                return try SwitchToAggregatesWork.handedOver(pilot: pilot, ctx: try reload(), store: store,
                                                             validator: validator, applier: applier, logger: logger)
            case .resend:
                guard let pilot = request.pilot, let since = request.sinceMillis else { return .failure("resend needs a pilot and a day") }
                let n = try store.requeueFederation(pilot: pilot, from: Instant(millis: since).day)
                logger.notice("federate --resend handed over: \(n) day end(s) of \(pilot) from \(Instant(millis: since).day) to build and send again")
                return ServeReply(ok: true, counts: ["day_ends": n])
            case .purge:
                // The registry as it is now: a pilot's own retention may have just been set.
                let ctx = try reload()
                let at = request.sinceMillis.map(Instant.init(millis:)) ?? .now
                let summary = try RetentionPolicy.apply(ctx, store: store, now: at, dryRun: false)
                logger.notice("db purge handed over: dropped \(summary.refusedPayloads) refused payloads (\(summary.refusedPayloadBytes) bytes) and \(summary.deviceStatuses) old device statuses")
                var counts = ["refused_payloads": summary.refusedPayloads, "refused_payload_bytes": summary.refusedPayloadBytes,
                              "device_statuses": summary.deviceStatuses]
                for e in summary.endedPilots {
                    counts["ended_pilot_rows:" + e.pilot] = e.rows
                    counts["ended_pilot_bytes:" + e.pilot] = e.bytes
                }
                if !summary.endedPilots.isEmpty { logger.notice("db purge handed over: archived and removed the raw rows of ended pilots \(summary.endedPilots.map(\.pilot).joined(separator: ", "))") }
                return ServeReply(ok: true, counts: counts)
            case .sync:
                // Everything acknowledged before the request is in SQLite before the answer.
                let target = inbox.end
                let deadline = Date(timeIntervalSinceNow: 600)
                while applier.position < target {
                    if let error = applier.error { return .failure("the inbox cannot be applied: \(error)") }
                    if Date() > deadline {
                        return .failure("the inbox is not applied up to \(target) after 10 minutes (see serve's log)")
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                return ServeReply(ok: true)
            }
        } catch {
            logger.error("\(request.op.rawValue) handed over failed: \(error)")
            return .failure("\(error)")
        }
    }
}
