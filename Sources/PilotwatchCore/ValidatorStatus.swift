// Device status messages: `state`, `at`, `battery_pct`, `firmware`.

extension ContractValidator {
    private static let statusFields = "state, at, battery_pct, firmware"

    func deviceStatus(_ root: JSONObject) throws(Refusal) -> DeviceStatus {
        var state: DeviceStatus.State?
        var atText: String?
        var battery: JSONNumber?
        var firmware: String?
        for m in root.members {
            switch ContractField(m.key) {
            case .state:
                guard case .string(let s) = m.value else { throw schema("state: expected \"online\" or \"offline\", got \(describe(m.value))") }
                guard let parsed = DeviceStatus.State(rawValue: s) else { throw schema("state: \(quoteForDetail(s)) must be online or offline") }
                state = parsed
            case .at:
                guard case .string(let s) = m.value else { throw schema("at: expected an RFC 3339 date-time string, got \(describe(m.value))") }
                atText = s
            case .batteryPct:
                guard case .number(let n) = m.value else { throw schema("battery_pct: expected a number, got \(describe(m.value))") }
                battery = n
            case .firmware:
                guard case .string(let s) = m.value else { throw schema("firmware: expected a string, got \(describe(m.value))") }
                guard isPrintableASCII(s, length: 0...64) else {
                    throw schema("firmware: \(quoteForDetail(s)) must be at most 64 printable ASCII characters")
                }
                firmware = s
            default:
                throw schema("\(fieldPath(nil, m.key)): unknown field (allowed: \(Self.statusFields))")
            }
        }
        guard let state else { throw schema("state: required (online or offline)") }
        var at: Instant?
        if let atText {
            guard let t = RFC3339.parse(atText) else {
                throw Refusal(.badTime, "at: \(quoteForDetail(atText)) is not an RFC 3339 date-time with offset (for example 2026-11-29T09:00:00Z)")
            }
            at = t
        }
        if let battery {
            guard battery.isFinite, battery.double >= 0, battery.double <= 100 else {
                throw Refusal(.outOfRange, "battery_pct: \(shown(battery)) is outside 0..100")
            }
        }
        return DeviceStatus(state: state, at: at, batteryPct: battery?.double, firmware: firmware)
    }
}
