import PilotwatchReports

/// One device's broker account.
struct DeviceAccount {
    var pilot: String
    var device: String
    var password: String

    /// The broker username: `{pilot_id}/{device_id}`, which the ACL's `%u` patterns expand into
    /// the device's own topic levels.
    var username: String { "\(pilot)/\(device)" }

    static let passwordAlphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")

    /// 24 characters from a 57-symbol alphabet without look-alikes (about 140 bits), drawn from
    /// the system's cryptographic generator (getrandom on Linux).
    static func randomPassword(length: Int = 24) -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in passwordAlphabet[Int.random(in: 0..<passwordAlphabet.count, using: &rng)] })
    }

    static func render(_ accounts: [DeviceAccount], rotated: Set<String>, topicRoot: String, format: OutputFormat) -> String {
        switch format {
        case .json:
            var w = JSONWriter()
            w.object { o in
                o.field("pilot", accounts.first?.pilot)
                o.arrayField("devices") { a in
                    for d in accounts {
                        a.object { e in
                            e.field("device", d.device)
                            e.field("username", d.username)
                            e.field("password", d.password)
                            e.field("topics", strings: ["\(topicRoot)/\(d.username)/obs", "\(topicRoot)/\(d.username)/status"])
                            e.field("rotated", rotated.contains(d.username))
                        }
                    }
                }
            }
            return w.text
        case .csv:
            var lines = [CSV.line(["pilot", "device", "username", "password"])]
            for d in accounts { lines.append(CSV.line([d.pilot, d.device, d.username, d.password])) }
            return lines.joined(separator: "\n")
        case .table:
            var t = TextTable(["device", "username", "password", "publishes to"])
            for d in accounts {
                t.row([d.device, d.username, d.password, "\(topicRoot)/\(d.username)/obs|status"])
            }
            return t.render()
        }
    }
}
