import Testing
@testable import PilotwatchCore

@Suite("alerts: in pilotwatch.yaml and in a pilot's registry entry")
struct AlertSettingsTests {
    let base = """
    database: db.sqlite
    registry: pilots.yaml
    catalogue: indicators.yaml

    """

    @Test func serviceThresholdsDeliveryAndOff() throws {
        let yaml = base + """
        alerts:
          every: 30
          command: [bin/notify, --team, ops]
          command_timeout: 5
          low_adherence_pct: 55
          ingest_stale_seconds: 300
          backlog_mib: 64
          off: [unenrolled_subjects, quarantine_growing]
        """
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "/etc/pw/pilotwatch.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let a = try #require(config).alerts
        #expect(a.every == 30)
        #expect(a.command == ["/etc/pw/bin/notify", "--team", "ops"], "the program resolves against the file's folder")
        #expect(a.commandTimeout == 5)
        #expect(a.thresholds.lowAdherencePct == 55)
        #expect(a.thresholds.lowActivityPct == 50, "what is not set keeps its default")
        #expect(a.thresholds.ingestStaleSeconds == 300)
        #expect(a.thresholds.backlogMiB == 64)
        #expect(a.thresholds.off == [.unenrolledSubjects, .quarantineGrowing])
    }

    @Test func problemsNameTheFileLineAndValue() {
        let yaml = base + """
        alerts:
          every: 2
          low_adherence_pct: 160
          silent_hour: 72
          command: [notify]
          off: [silence]
        """
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "pw.yaml")
        #expect(config == nil)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("pw.yaml:5:") && $0.contains("alerts.every") && $0.contains("5...3600") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("pw.yaml:6:") && $0.contains("160") && $0.contains("0...100") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("pw.yaml:7:") && $0.contains("did you mean silent_hours?") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("pw.yaml:8:") && $0.contains("must be a path") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("pw.yaml:9:") && $0.contains("\"silence\" is not a rule") && $0.contains("did you mean silent?") }, "\(text)")
    }

    @Test func aPilotEntryOverridesItsOwnRulesOnly() throws {
        let pilots = """
        pilots:
          - id: card-x
            name: X
            programme: cardiac
            lead: L
            call: c
            funders: [f]
            start: 2026-01-01
            end: 2027-01-01
            enrolment_target: 10
            alerts: {silent_hours: 96, off: [low_battery]}
          - id: card-y
            name: Y
            programme: cardiac
            lead: L
            call: c
            funders: [f]
            start: 2026-01-01
            end: 2027-01-01
            enrolment_target: 10
            alerts: {backlog_mib: 5, off: [ingest_stopped]}
        """
        let (registry, problems) = ConfigParser.registry(yaml: pilots, file: "pilots.yaml", catalogue: nil)
        #expect(registry == nil)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("pilots.yaml:21:") && $0.contains("backlog_mib: unknown key") }, "\(text)")
        #expect(text.contains { $0.hasPrefix("pilots.yaml:21:") && $0.contains("\"ingest_stopped\" is not a rule of a pilot") }, "\(text)")

        let good = pilots.replacingOccurrences(of: "alerts: {backlog_mib: 5, off: [ingest_stopped]}", with: "alerts: {low_activity_pct: 30}")
        let (r, p) = ConfigParser.registry(yaml: good, file: "pilots.yaml", catalogue: nil)
        #expect(p.isEmpty, "\(p)")
        var service = AlertThresholds()
        service.silentHours = 72
        service.lowAdherencePct = 55
        let x = try #require(r?.pilot("card-x")).alertThresholds(service)
        #expect(x.silentHours == 96 && x.lowAdherencePct == 55 && x.off == [.lowBattery])
        let y = try #require(r?.pilot("card-y")).alertThresholds(service)
        #expect(y.silentHours == 72 && y.lowActivityPct == 30 && y.off.isEmpty)
    }
}
