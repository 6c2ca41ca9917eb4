import Foundation
import PilotwatchCore
import Testing

@Suite("Audit records and their hash chain")
struct AuditChainTests {
    /// `n` chained lines, as the trail writes them.
    static func lines(_ n: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var prev = AuditRecord.genesis
        for seq in 1...n {
            let r = AuditRecord(seq: seq, at: Instant(millis: 1_796_000_000_000 + Int64(seq)), user: "alice", host: "h",
                                pid: 42, command: "pilot", arguments: ["pilot", "resp-01"], selection: "pilot=resp-01",
                                asOf: Instant(millis: 1_796_000_000_000), output: "stdout", outputSHA256: String(repeating: "a", count: 64),
                                outcome: "ok", prev: prev)
            let line = r.encoded()
            out.append(line)
            prev = SHA256.hex(line)
        }
        return out
    }

    static func firstProblem(_ lines: [[UInt8]]) -> AuditChain.Problem? {
        var chain = AuditChain()
        for line in lines { if let p = chain.check(line) { return p } }
        return nil
    }

    @Test func aRecordReadsBackAsWritten() throws {
        var r = AuditRecord(seq: 7, at: Instant(millis: 1_796_000_000_123), user: "bob \"b\"", host: "h\n2", pid: 1,
                            command: "export", arguments: ["export", "--out", "q3.html"], outcome: "error: x", prev: AuditRecord.genesis)
        #expect(try AuditRecord(line: r.encoded()) == r)
        #expect(!r.encoded().contains(0x0A), "one line, whatever the values hold")
        r.asOf = Instant(millis: 0); r.output = "/tmp/q3.html"; r.outputSHA256 = "ab"; r.database = "/db"; r.selection = "all"
        #expect(try AuditRecord(line: r.encoded()) == r)
    }

    @Test func anIntactChainPasses() {
        let lines = Self.lines(5)
        var chain = AuditChain()
        for line in lines { #expect(chain.check(line) == nil) }
        #expect(chain.count == 5)
        #expect(chain.checkEnd(terminated: true, head: (5, SHA256.hex(lines[4]))) == nil)
    }

    @Test func anEditedMiddleRecordIsNamed() {
        var lines = Self.lines(5)
        let text = String(decoding: lines[2], as: UTF8.self).replacingOccurrences(of: "alice", with: "alicf")
        lines[2] = Array(text.utf8)
        let p = Self.firstProblem(lines)
        #expect(p?.line == 3 && p?.seq == 3, "\(String(describing: p))")
        #expect(p?.reason.contains("edited") == true)
    }

    @Test func aDeletedRecordIsNamed() {
        var lines = Self.lines(5)
        lines.remove(at: 2)
        let p = Self.firstProblem(lines)
        #expect(p?.line == 3 && p?.seq == 4, "\(String(describing: p))")
        #expect(p?.reason.contains("record 3 deleted") == true, "\(String(describing: p))")
    }

    @Test func anUnreadableLineIsNamed() {
        var lines = Self.lines(5)
        lines[1] = Array(lines[1].dropFirst())
        let p = Self.firstProblem(lines)
        #expect(p?.line == 2 && p?.seq == nil && p?.reason.contains("cannot be read") == true, "\(String(describing: p))")
    }

    @Test func theHeadFindsTheTailDeletedOrEdited() {
        let lines = Self.lines(5)
        var chain = AuditChain()
        for line in lines.prefix(4) { _ = chain.check(line) }
        let deleted = chain.checkEnd(terminated: true, head: (5, SHA256.hex(lines[4])))
        #expect(deleted?.line == 5 && deleted?.seq == 5 && deleted?.reason.contains("deleted") == true, "\(String(describing: deleted))")
        let edited = chain.checkEnd(terminated: true, head: (4, String(repeating: "0", count: 64)))
        #expect(edited?.line == 4 && edited?.reason.contains("edited") == true, "\(String(describing: edited))")
        #expect(chain.checkEnd(terminated: false, head: (4, SHA256.hex(lines[3])))?.reason.contains("newline") == true)
        #expect(chain.checkEnd(terminated: true, head: nil)?.reason.contains("head") == true)
        #expect(AuditChain().checkEnd(terminated: true, head: nil) == nil, "an empty trail without a head is intact")
    }
}
