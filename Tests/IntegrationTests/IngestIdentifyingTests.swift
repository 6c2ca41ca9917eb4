import Foundation
import PilotwatchCore
import PilotwatchStore
import Testing

/// `pilotwatch ingest` keeps no identifying bytes, even from a line whose wrapper it refuses:
/// such a line is refused as identifying_data and kept as topic, time, reason and hash only.
@Suite("Ingest: identifying data in refused NDJSON lines is never stored")
struct IngestIdentifyingTests {
    static let topic = "pilots/resp-copd-idf-01/dev-0042/obs"
    static let email = "jean.dupont@example.fr"
    static let phone = "06 12 34 56 78"
    static let e164 = "+33612345678"
    static let nir = "1 85 05 78 006 084 36"
    static let bareNIR = "185057800608436"

    /// Every planted value, and the digits alone, as they must not appear in any stored byte.
    static let planted = [email, "jean.dupont", phone, "0612345678", e164, "33612345678", "612345678",
                          nir, bareNIR, "1850578006084", "85 05 78 006"]

    @Test func refusedWrappersCarryingIdentifiersAreKeptAsHashOnly() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let inputDir = NSTemporaryDirectory() + "pilotwatch-it-input-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: inputDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: inputDir) }

        let at = isoNow(minutesAgo: 30)
        let good = obsMessage("good-1", [obs("p-7f3a9c21", "spo2", 94, unit: "%", at: at)])
        func payload(_ msgID: String, subject: String = "p-7f3a9c21") -> String {
            obsMessage(msgID, [obs(subject, "spo2", 95, unit: "%", at: at)])
        }
        let lines: [(text: String, identifying: Bool)] = [
            // 1: a good line, stored.
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(good)}", false),
            // 2-6: an unknown wrapper key holding each identifier.
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-2")), \"note\": \"patient \(Self.email) \(Self.phone)\"}", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-3")), \"note\": \"rappeler au \(Self.phone)\"}", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-4")), \"callback\": \"\(Self.e164)\"}", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-5")), \"note\": \"NIR \(Self.nir)\"}", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-6")), \"ref\": \(Self.bareNIR)}", true),
            // 7-8: no topic; the identifier in the payload or beside it.
            ("{\"payload\": \(payload("m-7", subject: Self.bareNIR))}", true),
            ("{\"payload\": \(payload("m-8")), \"contact\": \"\(Self.email)\"}", true),
            // 9-11: cut short.
            ("{\"topic\": \"\(Self.topic)\", \"note\": \"\(Self.phone)\", \"payload\": {\"msg_id\": \"m-9\", \"observ", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": {\"msg_id\": \"m-10\", \"observations\": [{\"subject\": \"\(Self.nir)", true),
            ("{\"topic\": \"\(Self.topic)\", \"payload\": {\"msg_id\": \"\(Self.e164)\", \"obs", true),
            // 12: a whole wrapper whose topic is the identifier: the placeholder topic is kept instead.
            ("{\"topic\": \"pilots/resp-copd-idf-01/\(Self.email)/obs\", \"payload\": \(payload("m-12"))}", true),
            // 13: a refused wrapper without identifiers: quarantined as schema, with its bytes.
            ("{\"topic\": \"\(Self.topic)\", \"payload\": \(payload("m-13")), \"source\": \"backend-2\"}", false),
            // 14: no payload, and a topic whose device level is a NIR without its key: the topic
            // gets the topic's own strict check.
            ("{\"topic\": \"pilots/resp-copd-idf-01/1850578006084/obs\"}", true),
        ]
        let file = inputDir + "/upload.ndjson"
        try Data((lines.map(\.text).joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: file))

        let r = try ws.run(["ingest", file, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let counts = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(counts["accepted"] as? Int == 1)
        #expect(counts["observations"] as? Int == 1)
        let identifying = lines.filter(\.identifying).count
        #expect(counts["refused_by_reason"] as? [String: Int] == ["identifying_data": identifying, "schema": 1])

        // No stored byte, in any file the store left, holds a planted value.
        let files = try FileManager.default.subpathsOfDirectory(atPath: ws.dir)
        #expect(files.contains("pilotwatch.sqlite"))
        for name in files {
            let path = ws.dir + "/" + name
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue else { continue }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            for secret in Self.planted {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(name) holds \(secret)")
            }
        }
        for secret in Self.planted {
            #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret), "the output repeats \(secret)")
        }

        let stats = try ws.stats()
        #expect(stats.accepted == 1)
        #expect(stats.observations == 1)

        let rejects = try ws.run(["rejects", "--format", "json", "--limit", "1000"])
        #expect(rejects.status == 0, "\(rejects.stderr)")
        let rows = try #require(JSONSerialization.jsonObject(with: Data(rejects.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == lines.count - 1)
        for (i, line) in lines.enumerated() where i > 0 {
            let number = i + 1
            let mine = rows.filter { ($0["topic"] as? String) == "ingest:\(file):\(number)" }
            #expect(mine.count == 1, "line \(number) is kept under its placeholder topic: \(rows)")
            guard let row = mine.first else { continue }
            let detail = row["detail"] as? String ?? ""
            #expect(row["reason"] as? String == (line.identifying ? "identifying_data" : "schema"), "line \(number): \(detail)")
            if number == 12 {
                // The wrapper was whole: the validator refused the topic, and the hash is the payload's.
                #expect(detail == "topic: level 3 looks like an e-mail address")
                #expect(row["payload_sha256"] as? String == SHA256.hex(Array(payload("m-12").utf8)))
            } else {
                #expect(detail.hasPrefix("line \(number)"), "\(detail)")
                #expect(row["payload_sha256"] as? String == SHA256.hex(Array(line.text.utf8)))
            }
            for secret in Self.planted { #expect(!detail.contains(secret), "line \(number): \(detail)") }
        }
    }
}
