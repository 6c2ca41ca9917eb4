/// SHA-256 (FIPS 180-4), for the fingerprint kept of a refused message instead of its payload.
///
/// ```swift
/// SHA256.hex(Array("abc".utf8))
/// // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// ```
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var state = State()
        if bytes.withContiguousStorageIfAvailable({ state.absorb($0) }) == nil {
            Array(bytes).withUnsafeBufferPointer { state.absorb($0) }
        }
        return state.finish()
    }

    /// The digest as 64 lowercase hexadecimal digits.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        hexDigits(digest(bytes))
    }

    /// The SHA-256 of bytes given piece by piece, such as a file read in chunks.
    ///
    /// ```swift
    /// var hasher = SHA256.Hasher()
    /// hasher.update(Array("ab".utf8)); hasher.update(Array("c".utf8))
    /// hasher.finalizeHex()   // == SHA256.hex(Array("abc".utf8))
    /// ```
    public struct Hasher: Sendable {
        private var state = State()

        public init() {}

        public mutating func update(_ bytes: some Collection<UInt8>) {
            if bytes.withContiguousStorageIfAvailable({ state.absorb($0) }) == nil {
                Array(bytes).withUnsafeBufferPointer { state.absorb($0) }
            }
        }

        /// The digest as 64 lowercase hexadecimal digits; the hasher is spent.
        public mutating func finalizeHex() -> String { SHA256.hexDigits(state.finish()) }

        /// The 32-byte digest; the hasher is spent.
        public mutating func finalize() -> [UInt8] { state.finish() }
    }

    /// Bytes as lowercase hexadecimal digits (a digest, a key).
    public static func hexDigits(_ digest: [UInt8]) -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    private struct State {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var pending: [UInt8] = []
        var length: UInt64 = 0
        var w = [UInt32](repeating: 0, count: 64)

        mutating func absorb(_ data: UnsafeBufferPointer<UInt8>) {
            length &+= UInt64(data.count)
            var offset = 0
            if !pending.isEmpty {
                let take = min(64 - pending.count, data.count)
                pending.append(contentsOf: UnsafeBufferPointer(rebasing: data[0..<take]))
                offset = take
                if pending.count == 64 {
                    let block = pending
                    block.withUnsafeBufferPointer { compress($0, at: 0) }
                    pending.removeAll(keepingCapacity: true)
                }
            }
            while data.count - offset >= 64 {
                compress(data, at: offset)
                offset += 64
            }
            if offset < data.count {
                pending.append(contentsOf: UnsafeBufferPointer(rebasing: data[offset...]))
            }
        }

        mutating func finish() -> [UInt8] {
            let bitLength = length &* 8
            var tail = pending
            tail.append(0x80)
            while tail.count % 64 != 56 { tail.append(0) }
            for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
            tail.withUnsafeBufferPointer { t in
                var offset = 0
                while offset < t.count {
                    compress(t, at: offset)
                    offset += 64
                }
            }
            var out: [UInt8] = []
            out.reserveCapacity(32)
            for word in h {
                out.append(UInt8(truncatingIfNeeded: word >> 24))
                out.append(UInt8(truncatingIfNeeded: word >> 16))
                out.append(UInt8(truncatingIfNeeded: word >> 8))
                out.append(UInt8(truncatingIfNeeded: word))
            }
            return out
        }

        /// One 64-byte block. The schedule, constants and state are reached through unsafe
        /// buffers (no bounds or uniqueness check per word) and the rotations use masking shifts:
        /// about three times faster than through the arrays, which made hashing an audited
        /// view's output (788 KB for `pilot` on 10M observations) a fifteenth of its time.
        mutating func compress(_ data: UnsafeBufferPointer<UInt8>, at offset: Int) {
            precondition(offset >= 0 && offset + 64 <= data.count, "SHA256: a block past the end of the data")
            let block = data.baseAddress! + offset
            w.withUnsafeMutableBufferPointer { wb in
                let w = wb.baseAddress!
                for t in 0..<16 {
                    let p = block + t &* 4
                    w[t] = UInt32(p[0]) &<< 24 | UInt32(p[1]) &<< 16 | UInt32(p[2]) &<< 8 | UInt32(p[3])
                }
                for t in 16..<64 {
                    let s0 = sha256Rotr(w[t &- 15], 7) ^ sha256Rotr(w[t &- 15], 18) ^ (w[t &- 15] &>> 3)
                    let s1 = sha256Rotr(w[t &- 2], 17) ^ sha256Rotr(w[t &- 2], 19) ^ (w[t &- 2] &>> 10)
                    w[t] = w[t &- 16] &+ s0 &+ w[t &- 7] &+ s1
                }
                SHA256.k.withUnsafeBufferPointer { kb in
                    let k = kb.baseAddress!
                    h.withUnsafeMutableBufferPointer { hb in
                        let h = hb.baseAddress!
                        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
                        for t in 0..<64 {
                            let s1 = sha256Rotr(e, 6) ^ sha256Rotr(e, 11) ^ sha256Rotr(e, 25)
                            let ch = (e & f) ^ (~e & g)
                            let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                            let s0 = sha256Rotr(a, 2) ^ sha256Rotr(a, 13) ^ sha256Rotr(a, 22)
                            let maj = (a & b) ^ (a & c) ^ (b & c)
                            let t2 = s0 &+ maj
                            hh = g; g = f; f = e; e = d &+ t1
                            d = c; c = b; b = a; a = t1 &+ t2
                        }
                        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
                        h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
                    }
                }
            }
        }
    }
}

@inline(__always) private func sha256Rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }
