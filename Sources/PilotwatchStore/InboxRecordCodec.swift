import Foundation
import PilotwatchCore

/// The inbox's record format, written and read in one place (``Inbox`` describes it):
/// a header (body length, CRC-32 of the body) and a body (received-at, topic length, topic,
/// payload), little-endian.
extension Inbox {
    static let headerBytes = 8
    static let fixedBodyBytes = 10

    static func encode(_ r: InboxRecord, into out: inout [UInt8]) {
        let topic = Array(r.topic.utf8.prefix(Int(UInt16.max)))
        let bodyCount = fixedBodyBytes + topic.count + r.payload.count
        let start = out.count
        out.reserveCapacity(start + headerBytes + bodyCount)
        append(UInt32(truncatingIfNeeded: bodyCount), to: &out)
        append(UInt32(0), to: &out)  // CRC, filled below
        append(UInt64(bitPattern: r.receivedAt.millis), to: &out)
        append(UInt16(topic.count), to: &out)
        out.append(contentsOf: topic)
        out.append(contentsOf: r.payload)
        let crc = out.withUnsafeBufferPointer { CRC32.checksum(UnsafeBufferPointer(rebasing: $0[(start + headerBytes)...])) }
        for i in 0..<4 { out[start + 4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }
}

/// CRC-32 (IEEE 802.3, as zlib), table-driven.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}
