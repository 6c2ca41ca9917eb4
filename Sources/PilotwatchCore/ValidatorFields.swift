// The contract's field names, and the shapes of its plain string fields.

/// The field names of the contract, recognised with one string comparison at most.
enum ContractField {
    case msgID, sentAt, pilot, observations, subject, indicator, value, unit, at, state, batteryPct, firmware

    init?(_ key: String) {
        let candidate: (String, ContractField)
        switch key.utf8.count {
        case 2: candidate = ("at", .at)
        case 4: candidate = ("unit", .unit)
        case 5:
            if key == "value" { self = .value; return }
            if key == "pilot" { self = .pilot; return }
            candidate = ("state", .state)
        case 6: candidate = ("msg_id", .msgID)
        case 7:
            if key == "subject" { self = .subject; return }
            candidate = ("sent_at", .sentAt)
        case 8: candidate = ("firmware", .firmware)
        case 9: candidate = ("indicator", .indicator)
        case 11: candidate = ("battery_pct", .batteryPct)
        case 12: candidate = ("observations", .observations)
        default: return nil
        }
        guard key == candidate.0 else { return nil }
        self = candidate.1
    }
}

/// The path of field `key` of observation `index` (or of the message when nil).
func fieldPath(_ index: Int?, _ key: String) -> String {
    render((index.map { [PathComponent.key("observations"), .index($0)] } ?? []) + [.key(key)])
}

func isPrintableASCII(_ s: String, length: ClosedRange<Int>) -> Bool {
    var s = s
    return s.withUTF8 { u in
        guard length.contains(u.count) else { return false }
        for b in u where b < 0x20 || b > 0x7E { return false }
        return true
    }
}

func isPseudonym(_ s: String) -> Bool {
    var s = s
    return s.withUTF8 { u in
        guard u.count >= ContractLimits.subjectMinLength && u.count <= ContractLimits.subjectMaxLength else { return false }
        for b in u {
            let ok = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
            if !ok { return false }
        }
        return true
    }
}
