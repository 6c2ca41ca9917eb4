import Foundation
import PilotwatchCore
import PilotwatchStore
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct AuditTrailTests {
    func record(_ seq: Int, _ prev: String, command: String = "stats") -> AuditRecord {
        AuditRecord(seq: seq, at: Instant(millis: 1_796_000_000_000), user: "u", host: "h", pid: 1, command: command,
                    arguments: [command], outcome: "ok", prev: prev)
    }

    func lines(_ trail: AuditTrail) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try trail.forEachLine { out.append($0); return true }
        return out
    }

    @Test func appendsChainedRecordsAndKeepsTheHead() throws {
        let dir = try TempDir()
        let trail = try AuditTrail.writable(database: dir.file("s.sqlite"))
        #expect(trail.path == dir.file("s.sqlite") + ".audit")
        for _ in 0..<3 { try trail.append { record($0, $1) } }
        let written = try lines(trail)
        #expect(written.count == 3)
        var chain = AuditChain()
        for line in written { #expect(chain.check(line) == nil) }
        let head = try #require(trail.readHead())
        #expect(head.seq == 3 && head.hash == SHA256.hex(written[2]))
        #expect(chain.checkEnd(terminated: true, head: head) == nil)
    }

    @Test func aLongLastLineIsReadFromTheEnd() throws {
        let dir = try TempDir()
        let trail = try AuditTrail.writable(database: dir.file("s.sqlite"))
        try trail.append { seq, prev in
            var r = record(seq, prev)
            r.arguments = [String(repeating: "x", count: 10_000)]
            return r
        }
        try trail.append { record($0, $1) }
        let written = try lines(trail)
        #expect(try AuditRecord(line: written[1]).prev == SHA256.hex(written[0]))
    }

    @Test func aTornLastLineIsClosedAndChainedOn() throws {
        let dir = try TempDir()
        let trail = try AuditTrail.writable(database: dir.file("s.sqlite"))
        try trail.append { record($0, $1) }
        let handle = try #require(FileHandle(forWritingAtPath: trail.path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"seq\":2,\"at".utf8))
        try handle.close()
        let next = try trail.append { record($0, $1) }
        #expect(next.seq == 2, "numbered after the head, the torn line being unreadable")
        let written = try lines(trail)
        #expect(written.count == 3)
        #expect(next.prev == SHA256.hex(written[0]), "chained to the last whole record, the one the head names")
        var chain = AuditChain()
        #expect(chain.check(written[0]) == nil)
        #expect(chain.check(written[1]) == nil, "undecided until the next line")
        #expect(chain.check(written[2]) == nil, "the next record chains past it: a torn write, not an edit")
        #expect(chain.tornLines == [2])
        #expect(chain.checkEnd(terminated: true, head: trail.readHead()) == nil)
        // A whole record replaced by garbage is not taken for a torn one: the next record's prev
        // is the replaced record's hash, not the one before it.
        let other = try TempDir()
        let clean = try AuditTrail.writable(database: other.file("s.sqlite"))
        for _ in 0..<3 { try clean.append { record($0, $1) } }
        let all = try lines(clean)
        var broken = AuditChain()
        #expect(broken.check(all[0]) == nil)
        #expect(broken.check(Array("garbage".utf8)) == nil, "undecided until the next line")
        #expect(broken.check(all[2])?.line == 2, "the replaced line is named")
    }

    @Test func anUnwritableTrailIsRefusedUpFront() throws {
        let dir = try TempDir()
        #expect(throws: AuditTrail.TrailError.self) {
            _ = try AuditTrail.writable(database: dir.file("no-such-folder/s.sqlite"))
        }
    }

    @Test func concurrentAppendsKeepOneChain() throws {
        let dir = try TempDir()
        let trail = try AuditTrail.writable(database: dir.file("s.sqlite"))
        // Each thread opens the trail itself, as separate processes do: flock excludes them.
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for _ in 0..<25 { _ = try? trail.append { record($0, $1, command: "w\(worker)") } }
        }
        let written = try lines(trail)
        #expect(written.count == 200)
        var chain = AuditChain()
        for line in written { #expect(chain.check(line) == nil) }
        #expect(chain.checkEnd(terminated: true, head: trail.readHead()) == nil)
    }

    @Test func aTrailHeldLockedFailsTheAppendInsteadOfWaiting() throws {
        let dir = try TempDir()
        let trail = try AuditTrail.writable(database: dir.file("s.sqlite"))
        let fd = open(trail.path, O_RDWR)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        do {
            try trail.append { record($0, $1) }
            Issue.record("appended while another holder had the lock")
        } catch {
            #expect(error.description.contains("stayed locked"), "\(error)")
        }
        #expect(try lines(trail).isEmpty)
    }
}
