// The last checks of an observation message: units and plausible ranges (converting values to
// the catalogue's unit), then times (`sent_at`, and each observation's `at` against reception
// and the pilot's start).

extension ContractValidator {
    /// `sent_at` as an instant; nil when the message has none.
    func parsedSentAt(_ text: String?) throws(Refusal) -> Instant? {
        guard let text else { return nil }
        guard let t = RFC3339.parse(text) else {
            throw Refusal(.badTime, "sent_at: \(quoteForDetail(text)) is not an RFC 3339 date-time with offset (for example 2026-11-29T09:00:00Z)")
        }
        return t
    }

    /// The observations with their values in catalogue units, after the unit, range and time
    /// checks of each in turn. `raws` passed the catalogue checks (``resolveIndicators(_:pilot:)``).
    func checkedObservations(_ raws: [RawObservation], pilot: PilotRule, receivedAt: Instant) throws(Refusal) -> [Observation] {
        let latest = receivedAt.adding(millis: ContractLimits.maxFutureMillis)
        var observations: [Observation] = []
        observations.reserveCapacity(raws.count)
        for (i, raw) in raws.enumerated() {
            guard let rule = raw.rule else { continue }
            let value = try checkedValue(raw, rule, index: i)
            let at = try checkedTime(raw.at, index: i, pilot: pilot, receivedAt: receivedAt, latest: latest)
            observations.append(Observation(subject: raw.subject, indicator: rule.indicator.code, kind: rule.indicator.kind, value: value, at: at))
        }
        return observations
    }

    /// Observation `i`'s `at`: RFC 3339, no later than `latest` (5 minutes after reception), and
    /// no earlier than the pilot accepts.
    private func checkedTime(_ text: String, index i: Int, pilot pilotRule: PilotRule, receivedAt: Instant,
                             latest: Instant) throws(Refusal) -> Instant {
        guard let at = RFC3339.parse(text) else {
            throw Refusal(.badTime, "observations[\(i)].at: \(quoteForDetail(text)) is not an RFC 3339 date-time with offset (for example 2026-11-29T08:55:00+01:00)")
        }
        guard at <= latest else {
            throw Refusal(.badTime, "observations[\(i)].at: \(quoteForDetail(text)) is more than 5 minutes after the message was received (\(receivedAt))")
        }
        guard at >= pilotRule.earliest else {
            throw Refusal(.badTime,
                "observations[\(i)].at: \(quoteForDetail(text)) is more than \(ContractLimits.maxDaysBeforeStart) days before the start of pilot \(pilotRule.pilot.id) (\(pilotRule.pilot.start))")
        }
        return at
    }

    /// The observation's value in the catalogue unit, after the unit and range checks.
    /// Details are built only on refusal: this runs for every observation.
    func checkedValue(_ raw: RawObservation, _ rule: IndicatorRule, index i: Int) throws(Refusal) -> Double {
        func field(_ name: String) -> String { "observations[\(i)].\(name)" }
        if rule.indicator.kind == .event {
            if let unit = raw.unit, unit != rule.indicator.unit {
                throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code) (use \(rule.indicator.unit) or leave it out)")
            }
            guard let number = raw.value else { return 1 }
            guard number.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is not a finite number") }
            guard number.double >= 0 else {
                throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is negative; an event's value counts occurrences")
            }
            if let problem = rangeProblem(number.double, rule) {
                throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) \(problem)")
            }
            return number.double
        }
        guard let unit = raw.unit else {
            throw Refusal(.badUnit, "\(field("unit")): required for \(rule.indicator.code) (use \(unitChoices(rule.indicator)))")
        }
        guard unit == rule.indicator.unit || rule.indicator.convert.contains(where: { $0.unit == unit }) else {
            throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code) (use \(unitChoices(rule.indicator)))")
        }
        // Always present here: the catalogue pass refused a measurement or score without a value.
        guard let number = raw.value else { throw schema("\(field("value")): required for \(rule.indicator.code)") }
        guard number.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shown(number)) is not a finite number") }
        guard let value = rule.indicator.canonical(number.double, unit: unit) else {
            throw Refusal(.badUnit, "\(field("unit")): \(quoteForDetail(unit)) is not accepted for \(rule.indicator.code)")
        }
        func shownValue() -> String {
            unit == rule.indicator.unit
                ? shown(number)
                : "\(shown(number)) \(unit) (\(formatNumber(rounded(value))) \(rule.indicator.unit))"
        }
        guard value.isFinite else { throw Refusal(.outOfRange, "\(field("value")): \(shownValue()) is not a finite number") }
        if let problem = rangeProblem(value, rule) {
            throw Refusal(.outOfRange, "\(field("value")): \(shownValue()) \(problem)")
        }
        return value
    }

    /// `is above the plausible range 50..100 for spo2`, or nil when `value` is in range.
    private func rangeProblem(_ value: Double, _ rule: IndicatorRule) -> String? {
        guard let range = rule.indicator.range, !range.contains(value) else { return nil }
        return "is \(value < range.min ? "below" : "above") the plausible range \(range) for \(rule.indicator.code)"
    }

    private func unitChoices(_ indicator: Indicator) -> String {
        let units = indicator.acceptedUnits
        guard units.count > 1 else { return units.joined() }
        return units.dropLast().joined(separator: ", ") + " or " + (units.last ?? "")
    }
}
