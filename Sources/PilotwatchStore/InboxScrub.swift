import Foundation
import PilotwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Inbox {
    /// Overwrites the records at `spans` (topic and payload become zeros, the time and the
    /// length stay, the checksum is recomputed) and flushes them: for records refused as hash
    /// only, whose bytes must not outlive their validation. A span in a segment already
    /// deleted has nothing left to overwrite. Safe beside `append` (other bytes of the file).
    ///
    /// Why overwrite in place rather than close and delete the segment early: a segment holds up
    /// to 16 MiB of other messages, acknowledged and maybe not yet applied; rewriting one record
    /// keeps every offset (and so the applied position) valid, and costs one `fdatasync` per
    /// batch that had such a record.
    public func scrub(_ spans: [InboxSpan]) throws {
        try Inbox.scrub(spans, directory: directory)
    }

    /// ``scrub(_:)`` on the inbox in `directory`, for a caller without the ``Inbox`` object (the
    /// store removing a pilot's rows, ``Store/removeRawRows(pilot:dryRun:)``): it opens its own
    /// descriptors and rewrites records already applied only, so it is safe beside `append`.
    static func scrub(_ spans: [InboxSpan], directory: String) throws {
        for (segment, group) in Dictionary(grouping: spans, by: \.segment).sorted(by: { $0.key < $1.key }) {
            let path = Inbox.path(directory, segment)
            let file = open(path, O_RDWR | O_CLOEXEC)
            guard file >= 0 else {
                if errno == ENOENT { continue }
                throw InboxError.io(path: path, call: "open", reason: String(cString: strerror(errno)))
            }
            defer { closeDescriptor(file) }
            for span in group {
                let bodyCount = Int(span.length) - Inbox.headerBytes
                guard bodyCount >= Inbox.fixedBodyBytes else { continue }
                var time = [UInt8](repeating: 0, count: 8)
                let got = time.withUnsafeMutableBytes { pread(file, $0.baseAddress!, 8, off_t(span.offset) + off_t(Inbox.headerBytes)) }
                guard got == 8 else { throw InboxError.io(path: path, call: "pread", reason: String(cString: strerror(errno))) }
                var body = [UInt8](repeating: 0, count: bodyCount)
                body.replaceSubrange(0..<8, with: time)  // then topic length 0, and zeros
                let crc = body.withUnsafeBufferPointer { CRC32.checksum($0) }
                var record = [UInt8](repeating: 0, count: 4 + bodyCount)
                for i in 0..<4 { record[i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
                record.replaceSubrange(4..., with: body)
                // From the checksum on: the length field is never rewritten, so the records after
                // this one stay where they are even if a crash tears this write.
                let written = record.withUnsafeBytes { pwrite(file, $0.baseAddress!, $0.count, off_t(span.offset) + 4) }
                guard written == record.count else {
                    throw InboxError.io(path: path, call: "pwrite", reason: String(cString: strerror(errno)))
                }
            }
            guard fdatasync(file) == 0 else {
                throw InboxError.io(path: path, call: "fdatasync", reason: String(cString: strerror(errno)))
            }
        }
    }
}
