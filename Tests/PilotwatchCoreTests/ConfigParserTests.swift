import Foundation
import Testing
@testable import PilotwatchCore

/// The package root, for reading the shipped configuration.
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func shipped(_ path: String) throws -> String {
    try String(contentsOf: packageRoot.appendingPathComponent(path), encoding: .utf8)
}

@Suite("Configuration parsing")
struct ConfigParserTests {
    @Test func shippedConfigurationIsValid() throws {
        let (service, sp) = ConfigParser.service(yaml: try shipped("config/pilotwatch.yaml"), file: "config/pilotwatch.yaml")
        #expect(sp.isEmpty, "\(sp)")
        let s = try #require(service)
        #expect(s.broker.port == 1883)
        #expect(s.broker.clientID == "pilotwatch-cluster")
        #expect(s.topicRoot == "pilots")
        #expect(s.databasePath == "config/../var/pilotwatch.sqlite")
        #expect(s.registryPath == "config/pilots.yaml")

        let (catalogue, cp) = ConfigParser.catalogue(yaml: try shipped("config/indicators.yaml"), file: "indicators.yaml")
        #expect(cp.isEmpty, "\(cp)")
        let c = try #require(catalogue)
        // The LOINC codes the cluster relies on.
        let expected = ["spo2": "59408-5", "fev1": "20150-9", "hba1c": "4548-4", "weight": "29463-7",
                        "heart_rate": "8867-4", "bp_systolic": "8480-6", "bp_diastolic": "8462-4",
                        "nt_probnp": "33762-6", "cgm_tir": "97510-2"]
        for (code, loinc) in expected {
            #expect(c.indicator(code)?.loinc == loinc, "\(code)")
        }
        for event in ["enrolled", "withdrawn", "hospitalisation", "exacerbation", "emergency_visit"] {
            #expect(c.indicator(event)?.kind == .event, "\(event)")
        }
        let glucose = try #require(c.indicator("glucose"))
        #expect(abs((glucose.canonical(180, unit: "mg/dL") ?? 0) - 9.99) < 1e-9)
        #expect(glucose.canonical(5, unit: "mg/dl") == nil)
        #expect(c.indicator("hba1c")?.windows.baselineBeforeDays == 90)
        #expect(c.indicator("spo2")?.windows == .standard)

        let (registry, rp) = ConfigParser.registry(yaml: try shipped("config/pilots.yaml"), file: "pilots.yaml", catalogue: c)
        #expect(rp.isEmpty, "\(rp)")
        let r = try #require(registry)
        let p = try #require(r.pilot("resp-copd-idf-01"))
        #expect(p.enrolmentTarget == 120)
        #expect(p.start == Day(year: 2026, month: 1, day: 5))
        #expect(p.milestones == [Milestone(date: try #require(Day(year: 2026, month: 6, day: 30)), enrolled: 60)])
        #expect(p.funders == ["feder-idf", "horizon-europe"])
    }

    @Test func everyShippedLOINCHasAValidCheckDigit() throws {
        let (catalogue, _) = ConfigParser.catalogue(yaml: try shipped("config/indicators.yaml"), file: "indicators.yaml")
        let c = try #require(catalogue)
        for ind in c.indicators {
            if let loinc = ind.loinc { #expect(loincCheckDigitIsValid(loinc), "\(ind.code) \(loinc)") }
        }
        #expect(!loincCheckDigitIsValid("59408-4"))
    }

    @Test func serviceProblemsCarryLinesAndHints() {
        let yaml = """
        broker:
          host: 127.0.0.1
          port: 99999
          clientid: x
        topic_root: "pilots/#"
        database: db.sqlite
        registry: pilots.yaml
        """
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "/etc/pw/pilotwatch.yaml")
        #expect(config == nil)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("/etc/pw/pilotwatch.yaml:3:") && $0.contains("99999") })
        #expect(text.contains { $0.hasPrefix("/etc/pw/pilotwatch.yaml:4:") && $0.contains("did you mean client_id?") })
        #expect(text.contains { $0.contains("topic_root") && $0.contains("pilots/#") })
        #expect(text.contains { $0.contains("catalogue is missing") })
    }

    @Test func relativePathsResolveAgainstTheFile() throws {
        let yaml = "database: ../var/x.sqlite\nregistry: pilots.yaml\ncatalogue: /abs/indicators.yaml\n"
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "/etc/pw/pilotwatch.yaml")
        #expect(problems.isEmpty)
        let c = try #require(config)
        #expect(c.databasePath == "/etc/pw/../var/x.sqlite")
        #expect(c.registryPath == "/etc/pw/pilots.yaml")
        #expect(c.cataloguePath == "/abs/indicators.yaml")
    }

    @Test func brokerSettingsFollowTheRulesTheEnvironmentFollows() throws {
        let yaml = """
        broker:
          host: "mqtt://broker:1883"
          port: 0
          client_id: "pilot watch"
        topic_root: "pilots/+"
        database: db.sqlite
        registry: pilots.yaml
        catalogue: indicators.yaml
        """
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "p.yaml")
        #expect(config == nil)
        let text = problems.map(\.description)
        let expected = [
            "p.yaml:2: broker.host: \"mqtt://broker:1883\" \(try #require(SettingRules.hostProblem("mqtt://broker:1883")))",
            "p.yaml:3: broker.port: 0 is not a TCP port; use 1...65535",
            "p.yaml:4: broker.client_id: \"pilot watch\" must be 1-230 printable ASCII characters without spaces",
            "p.yaml:5: topic_root: \"pilots/+\" must be one or more levels of a-z 0-9 . _ - separated by /, without + or #",
        ]
        for line in expected { #expect(text.contains { $0.hasPrefix(line) }, "\(line) in \(text)") }

        let good = yaml.replacingOccurrences(of: "\"mqtt://broker:1883\"", with: "mqtt.example.org")
            .replacingOccurrences(of: "port: 0", with: "port: 8883")
            .replacingOccurrences(of: "\"pilot watch\"", with: "pilotwatch-b")
            .replacingOccurrences(of: "\"pilots/+\"", with: "cluster-a")
        let (parsed, none) = ConfigParser.service(yaml: good, file: "p.yaml")
        #expect(none.isEmpty, "\(none)")
        let c = try #require(parsed)
        #expect(c.broker.host == "mqtt.example.org" && c.broker.port == 8883 && c.broker.clientID == "pilotwatch-b")
        #expect(c.topicRoot == "cluster-a")
    }

    @Test func invalidYAMLIsReportedWithItsLine() {
        let (config, problems) = ConfigParser.service(yaml: "broker:\n  host: [unclosed\n", file: "p.yaml")
        #expect(config == nil)
        #expect(problems.count == 1)
        #expect(problems.first?.description.contains("not valid YAML") == true)
        #expect(problems.first?.line != nil)
    }

    @Test func registryProblems() throws {
        let (catalogue, _) = ConfigParser.catalogue(yaml: try shipped("config/indicators.yaml"), file: "indicators.yaml")
        let yaml = """
        pilots:
          - id: Resp_01
            name: x
            programme: respiratry
            lead: l
            call: c
            funders: [f]
            start: 2026-13-01
            end: 2026-01-01
            enrolment_target: many
            outcomes: [spo3, hba1c]
          - id: ok-pilot
            name: y
            programme: diabetes
            lead: l
            call: c
            funders: [f]
            start: 2026-02-01
            end: 2026-01-01
            enrolment_target: 10
            milestones: [{date: 2026-06-30, enrolled: 60}]
        """
        let (registry, problems) = ConfigParser.registry(yaml: yaml, file: "pilots.yaml", catalogue: catalogue)
        #expect(registry == nil)
        let text = problems.map(\.description).joined(separator: "\n")
        #expect(text.contains("pilots.yaml:2: pilots[Resp_01].id: \"Resp_01\" must be"))
        #expect(text.contains("pilots.yaml:4: pilots[Resp_01].programme: \"respiratry\" is not a programme"))
        #expect(text.contains("pilots.yaml:8: pilots[Resp_01].start: \"2026-13-01\" is not a date"))
        #expect(text.contains("pilots.yaml:10: pilots[Resp_01].enrolment_target: \"many\" is not a whole number"))
        #expect(text.contains("\"spo3\" is not in the indicator catalogue (did you mean spo2?)"))
        #expect(text.contains("pilots[ok-pilot].end: 2026-01-01 is before start 2026-02-01"))
        #expect(text.contains("pilots[ok-pilot].milestones[0].enrolled: 60 is above the enrolment target 10"))
    }

    @Test func catalogueProblems() {
        let yaml = """
        indicators:
          - code: spo2
            name: SpO2
            loinc: 59408
            kind: measurment
            unit: "%"
            programmes: [respiratory]
            direction: higher
          - code: spo2
            name: again
            kind: measurement
            unit: "%"
            range: {min: 100, max: 50}
            programmes: [respiratory]
            direction: up
        """
        let (catalogue, problems) = ConfigParser.catalogue(yaml: yaml, file: "i.yaml")
        #expect(catalogue == nil)
        let text = problems.map(\.description).joined(separator: "\n")
        #expect(text.contains("i.yaml:4: indicators[spo2].loinc: \"59408\" is not a LOINC code"))
        #expect(text.contains("i.yaml:5: indicators[spo2].kind: \"measurment\" is not one of measurement, score, event"))
        #expect(text.contains("code \"spo2\" is defined twice"))
        #expect(text.contains("range: min 100 is above max 50"))
        #expect(text.contains("direction: \"up\" is not one of higher, lower, stable"))
        #expect(text.contains("no event \"enrolled\""))
    }
}

@Suite("Time")
struct TimeTests {
    @Test(arguments: [
        ("2026-11-29T08:55:00+01:00", "2026-11-29T07:55:00Z"),
        ("2026-11-29T08:55:00Z", "2026-11-29T08:55:00Z"),
        ("2026-11-29T08:55:00.250-05:30", "2026-11-29T14:25:00.250Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
    ])
    func parsesRFC3339(input: String, utc: String) throws {
        #expect(try #require(RFC3339.parse(input)).description == utc)
    }

    @Test(arguments: ["2026-11-29", "2026-11-29T08:55:00", "2026-11-29 08:55:00Z", "2026-02-30T00:00:00Z",
                      "2026-11-29T24:00:00Z", "2026-11-29T08:55:00+0100", "2026-11-29T08:55:00.Z", "", "garbage"])
    func refusesWhatIsNotRFC3339(input: String) {
        #expect(RFC3339.parse(input) == nil)
    }

    @Test func daysRoundTrip() throws {
        let d = try #require(Day(parsing: "2026-06-30"))
        #expect(d.description == "2026-06-30")
        #expect(d.start.description == "2026-06-30T00:00:00Z")
        #expect(Instant(millis: -1).day.description == "1969-12-31")
        #expect(d.start.adding(days: 1).day == d.advanced(by: 1))
    }

    /// The byte-by-byte formatting against Foundation's over years 1600-9999 (Foundation's
    /// calendar is Julian before 1582), with and without milliseconds, and the fallback outside
    /// 0-9999.
    @Test func formatsLikeFoundation() throws {
        let reference = ISO8601DateFormatter()
        reference.timeZone = TimeZone(identifier: "UTC")
        reference.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var rng = SystemRandomNumberGenerator()
        let lo: Int64 = -11_676_096_000_000  // 1600-01-01T00:00:00Z
        let hi: Int64 = 253_402_300_799_999  // 9999-12-31T23:59:59.999Z
        for i in 0..<5_000 {
            var millis = Int64.random(in: lo...hi, using: &rng)
            if i % 2 == 0 { millis -= millis % 1000 }
            let t = Instant(millis: millis)
            var expected = reference.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
            if millis % 1000 == 0 { expected = expected.replacingOccurrences(of: ".000Z", with: "Z") }
            #expect(t.description == expected, "\(millis)")
            #expect(t.day.description == String(expected.prefix(10)), "\(millis)")
        }
        #expect(Instant(millis: -62_135_596_800_001).description == "0000-12-31T23:59:59.999Z")
        #expect(Instant(millis: hi + 1).description == "10000-01-01T00:00:00Z")
        #expect(Day(year: 12_345, month: 1, day: 2)?.description == "12345-01-02")
    }
}
