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

    /// The body length and checksum of the record header `header` (``headerBytes`` bytes) at
    /// `offset` of the segment file `path`; nil for zeros (the end of the segment's records).
    /// Throws when the body would not fit before `limit`.
    static func decodeHeader(_ header: UnsafeRawBufferPointer, path: String, offset: Int64,
                             limit: Int64) throws -> (length: Int, crc: UInt32)? {
        let length = Int(header.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian)
        let crc = header.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
        if length == 0 && crc == 0 { return nil }  // the zeros after the last record
        guard length >= fixedBodyBytes, offset + Int64(headerBytes + length) <= limit else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record length of \(length) bytes does not fit")
        }
        return (length, crc)
    }

    /// The record whose body is `body` (its whole length, as the header gave it), once its
    /// checksum matches the header's `crc`.
    static func decodeBody(_ body: UnsafeRawBufferPointer, crc: UInt32, path: String, offset: Int64) throws -> InboxRecord {
        guard CRC32Sliced.checksum(body) == crc else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a record checksum does not match")
        }
        let millis = Int64(bitPattern: body.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian)
        let topicCount = Int(body.loadUnaligned(fromByteOffset: 8, as: UInt16.self).littleEndian)
        guard fixedBodyBytes + topicCount <= body.count else {
            throw InboxError.corrupt(path: path, offset: offset, reason: "a topic length of \(topicCount) bytes does not fit")
        }
        let topicEnd = fixedBodyBytes + topicCount
        let topic = String(decoding: UnsafeRawBufferPointer(rebasing: body[fixedBodyBytes..<topicEnd]), as: UTF8.self)
        let payload = [UInt8](UnsafeRawBufferPointer(rebasing: body[topicEnd...]))
        return InboxRecord(receivedAt: Instant(millis: millis), topic: topic, payload: payload)
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

/// CRC-32 (IEEE 802.3, as zlib and ``CRC32``), eight bytes at a step ("slicing-by-8").
enum CRC32Sliced {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        t[0] = CRC32.table
        for n in 0..<256 {
            var c = t[0][n]
            for k in 1..<8 {
                c = t[0][Int(c & 0xFF)] ^ (c >> 8)
                t[k][n] = c
            }
        }
        return t
    }()
    /// The eight tables one after the other.
    static let flat: [UInt32] = tables.flatMap { $0 }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        flat.withUnsafeBufferPointer { t in
            var i = 0
            let n = bytes.count
            while i + 8 <= n {
                let lo = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
                let hi = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return c ^ 0xFFFF_FFFF
    }
}
