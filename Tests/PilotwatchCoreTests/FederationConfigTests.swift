import Testing
@testable import PilotwatchCore

// A pilot entry says how it reports (`reporting: observations`, the default, or `aggregates`
// with its `site`), and a site instance's `pilotwatch.yaml` has a `federation:` section. Every
// wrong entry is a problem with its file and line.

private func entry(_ id: String, _ extra: String) -> String {
    """
      - id: \(id)
        name: n
        programme: cardiac
        lead: l
        call: c
        funders: [f]
        start: 2026-01-01
        end: 2026-12-31
        enrolment_target: 40
    \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    """
}

private func service(_ federation: String) -> String {
    """
    database: db.sqlite
    registry: pilots.yaml
    catalogue: indicators.yaml
    federation:
    \(federation.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    """
}

@Suite("Federation configuration: reporting, site and federation")
struct FederationConfigTests {
    @Test func reportingDefaultsToObservationsAndAggregatesNeedASite() throws {
        let yaml = "pilots:\n" + [entry("hf-a", ""), entry("hf-b", "reporting: observations"),
                                  entry("hf-c", "reporting: aggregates\nsite: chu-lille")].joined(separator: "\n")
        let (registry, problems) = ConfigParser.registry(yaml: yaml, file: "pilots.yaml", catalogue: nil)
        #expect(problems.isEmpty, "\(problems)")
        let r = try #require(registry)
        #expect(r.pilot("hf-a")?.reporting == .observations)
        #expect(r.pilot("hf-b")?.reporting == .observations)
        #expect(r.pilot("hf-c")?.reporting == .aggregates(site: "chu-lille"))
        #expect(r.pilot("hf-c")?.site == "chu-lille" && r.pilot("hf-a")?.site == nil)
    }

    @Test(arguments: [
        ("reporting: aggregates", 11, "pilots[hf-x]: reporting: aggregates needs the site that sends them"),
        ("site: chu-lille", 11, "pilots[hf-x].site: a site reports aggregates; add reporting: aggregates"),
        ("reporting: observations\nsite: chu-lille", 12, "pilots[hf-x].site: a site reports aggregates"),
        ("reporting: aggregates\nsite: chu/lille", 12, "pilots[hf-x].site: \"chu/lille\" must be 1-64 characters"),
        ("reporting: aggregates\nsite: Chu", 12, "pilots[hf-x].site: \"Chu\" must be"),
        ("reporting: summaries", 11, "pilots[hf-x].reporting: \"summaries\" is not observations or aggregates"),
        ("reportng: aggregates", 11, "pilots[0].reportng: unknown key (did you mean reporting?)"),
    ])
    func wrongReportingIsAProblemWithItsLine(extra: String, line: Int, message: String) {
        let yaml = "pilots:\n" + entry("hf-x", extra)
        let (registry, problems) = ConfigParser.registry(yaml: yaml, file: "/etc/pw/pilots.yaml", catalogue: nil)
        #expect(registry == nil)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("/etc/pw/pilots.yaml:\(line): \(message)") }, "\(text)")
    }

    @Test func aSiteFederationSectionIsRead() throws {
        let yaml = service("""
        cluster: {host: cluster.example.org, tls: {ca_file: ca.pem}, password_file: site.pass}
        site_id: chu-lille
        pilots: [hf-a, hf-b]
        grace: 90m
        min_cell: 0
        """)
        let (config, problems) = ConfigParser.service(yaml: yaml, file: "/etc/pw/pilotwatch.yaml")
        #expect(problems.isEmpty, "\(problems)")
        let f = try #require(config?.federation)
        #expect(f.siteID == "chu-lille" && f.pilots == ["hf-a", "hf-b"])
        #expect(f.graceSeconds == 5400 && f.minCell == 0)
        #expect(f.cluster.host == "cluster.example.org" && f.cluster.port == 8883, "TLS: 8883 unless given")
        #expect(f.cluster.username == "chu-lille", "the account is named after the site")
        #expect(f.cluster.tls?.caFile == "/etc/pw/ca.pem" && f.cluster.passwordFile == "/etc/pw/site.pass")

        let (defaults, dp) = ConfigParser.service(yaml: service("cluster: {host: 10.0.0.5}\nsite_id: s1\npilots: [hf-a]"), file: "p.yaml")
        #expect(dp.isEmpty, "\(dp)")
        let d = try #require(defaults?.federation)
        #expect(d.graceSeconds == 7200 && d.minCell == 11 && d.cluster.port == 1883)
        let (seconds, _) = ConfigParser.service(yaml: service("cluster: {host: h}\nsite_id: s1\npilots: [a]\ngrace: 600"), file: "p.yaml")
        #expect(seconds?.federation?.graceSeconds == 600)
        let (none, _) = ConfigParser.service(yaml: "database: d\nregistry: r\ncatalogue: c\n", file: "p.yaml")
        #expect(none?.federation == nil, "a cluster instance has no federation section")
    }

    @Test(arguments: [
        ("cluster: {host: h}\nsite_id: s1\npilots: [a]\nmin_cell: 3", 8, "federation.min_cell: 3 is too small to protect anyone"),
        ("cluster: {host: h}\nsite_id: s1\npilots: [a]\nmin_cell: -1", 8, "federation.min_cell: -1 is outside 0...1000"),
        ("cluster: {host: h}\nsite_id: s1\npilots: [a]\ngrace: soon", 8, "federation.grace: \"soon\" is not a duration"),
        ("cluster: {host: h}\nsite_id: s1\npilots: [a]\ngrace: 30d", 8, "federation.grace: 2592000 s is outside 0...604800"),
        ("cluster: {host: h}\nsite_id: chu/lille\npilots: [a]", 6, "federation.site_id: \"chu/lille\" must be"),
        ("cluster: {host: h}\nsite_id: s1\npilots: [a, a]", 7, "federation.pilots: \"a\" is listed twice"),
        ("cluster: {host: h}\nsite_id: s1\npilots: []", 7, "federation.pilots is empty"),
        ("cluster: {host: h, username: other}\nsite_id: s1\npilots: [a]", 5, "federation.cluster.username: \"other\" must be the site id \"s1\""),
        ("cluster: {host: h, port: 0}\nsite_id: s1\npilots: [a]", 5, "federation.cluster.port: 0 is not a TCP port"),
        ("cluster: {hots: h}\nsite_id: s1\npilots: [a]", 5, "federation.cluster.hots: unknown key (did you mean host?)"),
        ("site_id: s1\npilots: [a]", 5, "federation.cluster is missing"),
        ("cluster: {host: h}\npilots: [a]", 5, "federation.site_id is missing"),
        ("cluster: {host: h}\nsite_id: s1\npilots: [a]\nmincell: 5", 8, "federation.mincell: unknown key (did you mean min_cell?)"),
    ])
    func wrongFederationIsAProblemWithItsLine(federation: String, line: Int, message: String) {
        let (config, problems) = ConfigParser.service(yaml: service(federation), file: "/etc/pw/pilotwatch.yaml")
        #expect(config == nil)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("/etc/pw/pilotwatch.yaml:\(line): \(message)") }, "\(text)")
    }

    @Test func forwardedPilotsAreCheckedAgainstTheSitesRegistry() throws {
        let yaml = "pilots:\n" + [entry("hf-a", ""), entry("hf-c", "reporting: aggregates\nsite: chu-lille")].joined(separator: "\n")
        let registry = try #require(ConfigParser.registry(yaml: yaml, file: "pilots.yaml", catalogue: nil).0)
        let (config, _) = ConfigParser.service(yaml: service("cluster: {host: h}\nsite_id: s1\npilots: [hf-a, hf-b, hf-c]"), file: "pw.yaml")
        let problems = try #require(config?.federation).problems(against: registry, file: "pw.yaml").map(\.description)
        #expect(problems.count == 2)
        #expect(problems.contains { $0.hasPrefix("pw.yaml:7: federation.pilots: \"hf-b\" is not in this instance's pilot registry (did you mean hf-a?)") })
        #expect(problems.contains { $0.hasPrefix("pw.yaml:7: federation.pilots: hf-c has reporting: aggregates") })
    }
}
