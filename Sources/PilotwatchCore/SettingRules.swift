/// What the service settings that the configuration file, environment variables and flags
/// can all give must look like: one check per setting, whichever way the value arrives.
///
/// Each check returns what is wrong as the end of a sentence, or nil when the value is
/// allowed; the caller names where the value came from:
///
/// ```swift
/// if let rule = SettingRules.topicRootProblem("pilots/#") {
///     // PILOTWATCH_TOPIC_ROOT="pilots/#" must be one or more levels of a-z 0-9 . _ - separated by /, without + or #
///     print("PILOTWATCH_TOPIC_ROOT=\(SettingRules.quoted("pilots/#")) \(rule)")
/// }
/// ```
package enum SettingRules {
    /// MQTT 3.1 allowed client ids of 23 bytes; brokers take more, and ten times that is plenty.
    package static let clientIDMaxLength = 230
    package static let hostMaxLength = 253

    /// `topic_root`: one or more levels of `a-z 0-9 . _ -` (each starting with a letter or digit).
    package static func topicRootProblem(_ s: String) -> String? {
        let levels = s.split(separator: "/", omittingEmptySubsequences: false)
        let ok = !levels.isEmpty && levels.allSatisfy { isValidCode($0) && $0 != ".." && $0 != "." }
        return ok ? nil : "must be one or more levels of a-z 0-9 . _ - separated by /, without + or #"
    }

    /// A site id (`site:` of a pilot entry, `federation.site_id`): 1-64 characters of
    /// `a-z 0-9 . _ -` starting with a letter or digit, no `..`; it is a topic level and the
    /// site's broker account name, so never a slash.
    package static func siteIDProblem(_ s: String) -> String? {
        isValidCode(s) && !s.contains("..") ? nil
            : "must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit (no slash, no ..), such as chu-lille"
    }

    /// `broker.client_id`: printable ASCII without spaces, as the persistent session's fixed id.
    package static func clientIDProblem(_ s: String) -> String? {
        let u = s.utf8
        let ok = (1...clientIDMaxLength).contains(u.count) && u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        return ok ? nil : "must be 1-\(clientIDMaxLength) printable ASCII characters without spaces"
    }

    /// `broker.host`: a host name (labels of letters, digits, `-` and `_` separated by dots)
    /// or an IP address (IPv4, or IPv6 without brackets and with an optional `%zone`), as
    /// libmosquitto takes it: no scheme, no port, no spaces.
    package static func hostProblem(_ s: String) -> String? {
        isHost(s) ? nil
            : "must be a host name or an IP address (letters, digits, . - _, or an IPv6 address without brackets), without a scheme, port or spaces"
    }

    /// `broker.port`: a TCP port.
    package static let portRange = 1...65535

    package static func portProblem(_ port: Int) -> String? {
        portRange.contains(port) ? nil : "is not a TCP port; use \(portRange.lowerBound)...\(portRange.upperBound)"
    }

    /// The same for a port given as text (an environment variable).
    package static func portProblem(_ text: String) -> String? {
        guard let port = Int(text) else { return portProblem(0) }
        return portProblem(port)
    }

    /// A value as a problem quotes it: JSON-escaped, cut to 80 characters.
    package static func quoted(_ s: String) -> String { quoteForDetail(s) }

    private static func isHost(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= hostMaxLength else { return false }
        func isAlnum(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
        }
        if u.contains(UInt8(ascii: ":")) {
            // IPv6: hex digits, colons and dots (an embedded IPv4), then an optional %zone.
            let parts = u.split(separator: UInt8(ascii: "%"), maxSplits: 1, omittingEmptySubsequences: false)
            let address = parts[0]
            let addressOK = !address.isEmpty && address.allSatisfy { b in
                isHexDigit(b) || b == UInt8(ascii: ":") || b == UInt8(ascii: ".")
            }
            let zoneOK = parts.count == 1
                || (!parts[1].isEmpty && parts[1].allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
            return addressOK && zoneOK
        }
        let labels = u.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            guard let first = label.first, let last = label.last, label.count <= 63 else { return false }
            return isAlnum(first) && isAlnum(last)
                && label.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
        }
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
            || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
    }
}
