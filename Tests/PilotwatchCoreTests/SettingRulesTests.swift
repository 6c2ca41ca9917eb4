import PilotwatchCore
import Testing

/// The rules shared by the configuration file, the environment and the flags.
@Suite("Setting rules: topic root, client id, host, port")
struct SettingRulesTests {
    @Test(arguments: ["pilots", "cluster-a", "a.b_c-d", "0", "pilots/site-2"])
    func topicRootsAccepted(_ root: String) {
        #expect(SettingRules.topicRootProblem(root) == nil)
    }

    @Test(arguments: ["pilots/#", "pilots/+", "#", "Pilots", "", "/pilots", "pilots/", "pilots//x", "..", "a/./b", "-pilots", "pilots x"])
    func topicRootsRefused(_ root: String) {
        #expect(SettingRules.topicRootProblem(root) == "must be one or more levels of a-z 0-9 . _ - separated by /, without + or #")
    }

    @Test(arguments: ["pilotwatch-cluster", "pw_2", "a", "Pilotwatch:B/1#", String(repeating: "c", count: 230)])
    func clientIDsAccepted(_ id: String) {
        #expect(SettingRules.clientIDProblem(id) == nil)
    }

    @Test(arguments: ["", "pilot watch", "tab\tid", "new\nline", "é", "nul\u{0}", String(repeating: "c", count: 231)])
    func clientIDsRefused(_ id: String) {
        #expect(SettingRules.clientIDProblem(id) == "must be 1-230 printable ASCII characters without spaces")
    }

    @Test(arguments: ["127.0.0.1", "localhost", "mqtt.example.org", "Broker-1.Internal", "mqtt_broker", "::1",
                      "fe80::1%eth0", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1", String(repeating: "a", count: 63)])
    func hostsAccepted(_ host: String) {
        #expect(SettingRules.hostProblem(host) == nil)
    }

    @Test(arguments: ["", "mqtt://broker", "broker:1883", "broker 2", "[::1]", "broker.", ".broker", "a..b", "-broker",
                      "broker/x", "fe80::1%", "héte", String(repeating: "a", count: 64), String(repeating: "a.", count: 127) + "a"])
    func hostsRefused(_ host: String) {
        #expect(SettingRules.hostProblem(host)?.hasPrefix("must be a host name or an IP address") == true)
    }

    @Test func ports() {
        for port in [1, 1883, 8883, 65535] { #expect(SettingRules.portProblem(port) == nil) }
        for port in [0, -1, 65536, 99999] { #expect(SettingRules.portProblem(port) == "is not a TCP port; use 1...65535") }
        #expect(SettingRules.portProblem("8883") == nil)
        for text in ["abc", "", " 1883", "1883.0", "0x50", "70000"] {
            #expect(SettingRules.portProblem(text) == "is not a TCP port; use 1...65535", "\(text)")
        }
    }

    @Test func valuesAreQuotedEscapedAndCut() {
        #expect(SettingRules.quoted("pilots/#") == #""pilots/#""#)
        #expect(SettingRules.quoted("new\nline") == #""new\nline""#)
        #expect(SettingRules.quoted(String(repeating: "c", count: 100)) == "\"" + String(repeating: "c", count: 80) + "…\"")
    }
}
