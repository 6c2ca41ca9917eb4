import PilotwatchCore
import Testing

@Suite("SHA-256")
struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func knownVectors(_ input: String, _ expected: String) {
        #expect(SHA256.hex(Array(input.utf8)) == expected)
        #expect(SHA256.hex(input.utf8) == expected)
    }

    @Test func millionAs() {
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == expected)
        // A collection without contiguous storage takes the other path.
        #expect(SHA256.hex(repeatElement(UInt8(ascii: "a"), count: 1_000_000)) == expected)
    }

    @Test func blockBoundaries() {
        // Lengths around the 55/56/64-byte padding boundaries hash differently and consistently.
        var seen = Set<String>()
        for n in [54, 55, 56, 57, 63, 64, 65, 119, 120, 128] {
            let bytes = [UInt8](repeating: 0x61, count: n)
            let h = SHA256.hex(bytes)
            #expect(h.count == 64)
            #expect(SHA256.hex(bytes[...]) == h)
            seen.insert(h)
        }
        #expect(seen.count == 10)
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 64)) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
        #expect(SHA256.digest(Array("abc".utf8)).count == 32)
    }

    @Test(arguments: [1, 3, 55, 64, 65, 1000])
    func hasherInPiecesMatchesOneShot(_ piece: Int) {
        let bytes = (0..<2_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = SHA256.Hasher()
        var offset = 0
        while offset < bytes.count {
            hasher.update(bytes[offset..<min(offset + piece, bytes.count)])
            offset += piece
        }
        #expect(hasher.finalizeHex() == SHA256.hex(bytes))
    }
}
