import PilotwatchCore
import Testing

// HMAC-SHA256, the tombstone hash and how a payload is found to name a subject.

@Suite("Erasure primitives")
struct ErasurePrimitiveTests {
    @Test func hmacMatchesRFC4231() {
        // RFC 4231, test cases 1 and 2.
        #expect(HMACSHA256.hex(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(HMACSHA256.hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // RFC 4231 test case 6: a key longer than the block is hashed first.
        #expect(HMACSHA256.hex(key: [UInt8](repeating: 0xaa, count: 131),
                               message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func aTombstoneDependsOnKeyPilotAndSubject() {
        let k1 = [UInt8](repeating: 1, count: 32), k2 = [UInt8](repeating: 2, count: 32)
        let h = SubjectTombstone.hash(key: k1, pilot: "resp-01", subject: "p-abcdef")
        #expect(h.count == 64)
        #expect(h != SubjectTombstone.hash(key: k2, pilot: "resp-01", subject: "p-abcdef"))
        #expect(h != SubjectTombstone.hash(key: k1, pilot: "resp-02", subject: "p-abcdef"))
        #expect(h != SubjectTombstone.hash(key: k1, pilot: "resp-0", subject: "1p-abcdef"), "pilot and subject are separated")
    }

    @Test func aPayloadNamesASubjectLiterallyOrEscaped() {
        #expect(PayloadMention.names("p-abcdef", in: Array(#"{"observations":[{"subject":"p-abcdef"}]}"#.utf8)))
        #expect(PayloadMention.names("p-abcdef", in: Array(#"{"observations":[{"subject":"\u0070-abcdef"}]}"#.utf8)))
        #expect(!PayloadMention.names("p-abcdef", in: Array(#"{"observations":[{"subject":"p-abcdefg"}]}"#.utf8)))
        #expect(PayloadMention.names("p-abcdef", in: Array(#"not json "p-abcdef" here"#.utf8)))
        #expect(!PayloadMention.names("p-abcdef", in: Array(#"not json \u0070-abcdef"#.utf8)))
    }
}
