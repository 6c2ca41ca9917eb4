import PilotwatchMonitoring
import Testing

@Suite("Metrics listen address")
struct ListenAddressTests {
    @Test(arguments: [
        ("9464", "127.0.0.1", 9464),
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("10.1.2.3:65535", "10.1.2.3", 65535),
        ("[::1]:9464", "::1", 9464),
        ("[::]:9464", "::", 9464),
    ])
    func accepted(text: String, host: String, port: Int) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address.host == host)
        #expect(address.port == port)
    }

    @Test(arguments: [
        ("", "the port \"\" is not a number from 1 to 65535"),
        ("0", "the port \"0\" is not a number from 1 to 65535"),
        ("65536", "the port \"65536\" is not a number from 1 to 65535"),
        ("127.0.0.1:", "the port \"\" is not a number from 1 to 65535"),
        ("127.0.0.1:http", "the port \"http\" is not a number from 1 to 65535"),
        ("127.0.0.1:-1", "the port \"-1\" is not a number from 1 to 65535"),
        (":9464", "the host \"\" is not an IP address"),
        ("localhost:9464", "the host \"localhost\" is not an IP address"),
        ("256.0.0.1:9464", "the host \"256.0.0.1\" is not an IP address"),
        ("::1:9464", "the host \"::1\" is not an IP address"),
        ("[::1]", "the port \"\" is not a number from 1 to 65535"),
        ("[::1]9464", "the port \"9464\" is not a number from 1 to 65535"),
        ("[localhost]:9464", "the host \"localhost\" is not an IP address"),
    ])
    func refused(text: String, message: String) {
        #expect {
            _ = try ListenAddress(parsing: text)
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    @Test func describesIPv6InBrackets() throws {
        #expect(try ListenAddress(parsing: "[::1]:80").description == "[::1]:80")
        #expect(try ListenAddress(parsing: "80").description == "127.0.0.1:80")
    }
}
