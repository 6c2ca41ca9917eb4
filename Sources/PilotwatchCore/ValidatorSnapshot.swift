// Snapshot topics (contract 1.1): the verdict on `{root}/{pilot_id}/{site_id}/agg`.

extension ContractValidator {
    /// The verdict on a snapshot topic `{root}/{pilot_id}/{site_id}/agg` (contract 1.1), in
    /// this order: the pilot known (`unknown_pilot`); reporting aggregates, else
    /// `pilot_mismatch`; the topic's site its registered site, else `unknown_site`; `too_large`;
    /// then the payload, read by ``snapshots`` (`malformed_json`, `schema`, `pilot_mismatch`,
    /// `registry_mismatch`). An accepted snapshot is scanned for identifier shapes too: it must
    /// name no one.
    func snapshotVerdict(_ topic: Topic, _ analysis: TopicAnalysis, payload: [UInt8], receivedAt: Instant) -> Verdict {
        if let refusal = analysis.refusal { return .refused(topic, refusal) }
        guard let rule = analysis.pilot else {
            return .refused(topic, Refusal(.unknownPilot, "topic: pilot \(quoteForDetail(topic.pilot)) is not in the pilot registry"))
        }
        let pilot = rule.pilot
        guard let site = pilot.site else {
            return .refused(topic, Refusal(.pilotMismatch,
                "topic: pilot \(pilot.id) reports observations (its registry entry has no reporting: aggregates), so it takes no snapshots"))
        }
        guard topic.device == site else {
            return .refused(topic, Refusal(.unknownSite,
                "topic: site \(quoteForDetail(topic.device)) is not the site of pilot \(pilot.id) (its registered site is \(site))"))
        }
        guard payload.count <= ContractLimits.maxPayloadBytes else {
            return .refused(topic, Refusal(.tooLarge,
                "payload: \(payload.count) bytes is more than the limit of \(ContractLimits.maxPayloadBytes) bytes"))
        }
        guard let snapshots else {
            return .refused(topic, Refusal(.schema, "payload: this instance does not read snapshots"))
        }
        do {
            let receipt = try snapshots.check(payload, pilot: pilot, site: site, catalogue: catalogue)
            if let identifying = identifyingRefusal(rawBytes: payload, receivedAt: receivedAt, knownNames: snapshots.fieldNames,
                                                    fractionsAreStatistics: true) {
                return .refused(topic, identifying)
            }
            return .snapshot(topic, receipt)
        } catch {
            return .refused(topic, error)
        }
    }
}
