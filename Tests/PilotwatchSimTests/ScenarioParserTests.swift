import PilotwatchCore
import Testing
@testable import PilotwatchSim

@Suite struct ScenarioParserTests {
    let catalogue: Catalogue
    let registry: Registry

    init() throws {
        catalogue = try Fixtures.catalogue()
        registry = try Fixtures.registry(catalogue)
    }

    func parse(_ yaml: String) -> (Scenario?, [ConfigProblem]) {
        ScenarioParser.parse(yaml: yaml, file: "test/scenario.yaml", registry: registry, catalogue: catalogue)
    }

    /// A valid one-pilot scenario, with `extra` lines inserted in the indicators block.
    func copd(_ indicators: String = "      spo2: {per_day: 1, baseline: {mean: 93, sd: 2}}") -> String {
        """
        defaults:
          adherence: 0.9
        pilots:
          resp-copd-home-01:
            enrolment: {per_week: 3}
            indicators:
        \(indicators)
        """
    }

    @Test func theSeedScenarioParses() throws {
        let s = try Fixtures.load().scenario
        #expect(s.pilots.count == 15)
        let patch = try #require(s.pilots.first { $0.pilot.id == "card-hf-patch-12" })
        #expect(patch.transport == .backend && patch.batchMax == 50 && patch.pilotField)
        #expect(patch.misbehaviour.malformedPer1000 == 18)
        #expect(patch.misbehaviour.duplicatePer1000 == 2)   // from defaults
        let gest = try #require(s.pilots.first { $0.pilot.id == "diab-gest-08" })
        #expect(gest.misbehaviour.duplicatePer1000 == 15)   // overridden
        let glucose = try #require(gest.indicators.first { $0.code == "glucose" })
        #expect(glucose.unit == "mg/dL" && glucose.factor == 0.0555)
    }

    /// A site instance's registry holds its own pilots: with a selection, the scenario's other
    /// entries are skipped unread; a selected pilot without an entry is a problem.
    @Test func aSelectionSkipsTheOtherPilotsEntries() throws {
        let site = Registry(pilots: registry.pilots.filter { $0.id == "resp-ild-spiro-05" })
        let yaml = try Fixtures.text("seeds/scenario.yaml")
        let (whole, refused) = ScenarioParser.parse(yaml: yaml, file: "seeds/scenario.yaml", registry: site, catalogue: catalogue)
        #expect(whole == nil && refused.count == 14, "every other seed pilot is not in the site's registry")
        let (s, problems) = ScenarioParser.parse(yaml: yaml, file: "seeds/scenario.yaml", registry: site, catalogue: catalogue,
                                                 only: ["resp-ild-spiro-05"])
        #expect(problems.isEmpty, "\(problems)")
        #expect(s?.pilots.map(\.pilot.id) == ["resp-ild-spiro-05"])
        let (none, missing) = ScenarioParser.parse(yaml: copd(), file: "test/scenario.yaml", registry: registry, catalogue: catalogue,
                                                   only: ["resp-copd-home-01", "diab-gest-08"])
        #expect(none == nil)
        #expect(missing.map(\.message) == ["pilots has no entry for diab-gest-08; describe it, or leave it out of the selection"])
    }

    @Test func aMinimalScenarioTakesTheDefaults() throws {
        let (s, problems) = parse(copd())
        #expect(problems.isEmpty)
        let plan = try #require(s?.pilots.first)
        #expect(plan.transport == .device && plan.hubs == 1 && plan.adherence == 0.9)
        #expect(plan.indicators.first?.cadence == .perDay(1))
        #expect(plan.indicators.first?.decimals == 1)
        #expect(plan.misbehaviour == Misbehaviour())
    }

    @Test(arguments: [
        // (yaml, line, words the message must contain)
        ("""
         pilots:
           resp-copd-hom-01:
             enrolment: {per_week: 3}
         """, 2, ["pilots.resp-copd-hom-01", "not a pilot of the registry", "did you mean resp-copd-home-01"]),
        ("""
         pilots:
           resp-copd-home-01:
             enrolement: {per_week: 3}
         """, 3, ["unknown key", "did you mean enrolment"]),
        ("""
         pilots:
           resp-copd-home-01:
             enrolment: {per_week: three}
         """, 3, ["per_week", "\"three\" is not a number"]),
        ("""
         pilots:
           resp-copd-home-01: [1, 2]
         """, 2, ["must be a mapping"]),
        ("""
         pilots:
           resp-copd-home-01:
             enrolment: {per_week: 3
         """, 4, ["not valid YAML"]),
    ])
    func pilotLevelProblemsNameFileAndLine(yaml: String, line: Int, words: [String]) throws {
        let (s, problems) = parse(yaml)
        #expect(s == nil)
        let p = try #require(problems.first)
        #expect(p.description.hasPrefix("test/scenario.yaml:\(line): "), "\(p)")
        for w in words { #expect(p.description.contains(w), "\(p) should contain \(w)") }
    }

    @Test(arguments: [
        ("      spo3: {per_day: 1, baseline: {mean: 93}}", ["\"spo3\" is not in the indicator catalogue", "did you mean spo2"]),
        ("      hba1c: {every_days: 90, baseline: {mean: 8}}", ["hba1c is not allowed for programme respiratory"]),
        ("      exacerbation: {per_day: 1, baseline: {mean: 1}}", ["is an event; list it under events:"]),
        ("      alerts_raised: {per_week: 1, baseline: {mean: 1}}", ["pilot-level count; list it under pilot_counts:"]),
        ("      spo2: {per_day: 1, baseline: {mean: 140}}", ["140 is outside the plausible range of spo2 (50..100)"]),
        ("      spo2: {per_day: 1, per_week: 2, baseline: {mean: 93}}", ["exactly one of per_day, per_week"]),
        ("      spo2: {per_week: 9, baseline: {mean: 93}}", ["per_week: 9 is outside"]),
        ("      spo2: {per_day: 1, unit: percent, baseline: {mean: 93}}", ["\"percent\" is not accepted for spo2"]),
        ("      spo2: {per_day: 1}", ["baseline is missing"]),
        ("      heart_rate: {with: spo2, baseline: {mean: 80}}", ["\"spo2\" is not an indicator listed before heart_rate"]),
        ("      spo2: {every_days: 30, baseline_before_days: 10, baseline: {mean: 93}}", ["baseline_before_days needs source: backend"]),
    ])
    func indicatorProblemsNameFileAndLine(indicators: String, words: [String]) throws {
        let (s, problems) = parse(copd(indicators))
        #expect(s == nil)
        let p = try #require(problems.first)
        #expect(p.description.hasPrefix("test/scenario.yaml:7: "), "\(p)")
        for w in words { #expect(p.description.contains(w), "\(p) should contain \(w)") }
    }

    @Test func eventAndCountSectionsCheckTheirKind() throws {
        let yaml = """
        pilots:
          resp-copd-home-01:
            enrolment: {per_week: 3}
            events: {exacerbation: 1.5, spo2: 2, enrolled: 1}
            pilot_counts: {alerts_raised: 0.5, hospitalisation: 1}
            misbehaviour: {silent_last_weeks: 60}
        """
        let (s, problems) = parse(yaml)
        #expect(s == nil)
        let text = problems.map(\.description)
        #expect(text.count == 4, "\(text)")
        #expect(text.contains { $0.hasPrefix("test/scenario.yaml:4: ") && $0.contains("spo2 is not a subject event") })
        #expect(text.contains { $0.hasPrefix("test/scenario.yaml:4: ") && $0.contains("enrolled events come from enrolment") })
        #expect(text.contains { $0.hasPrefix("test/scenario.yaml:5: ") && $0.contains("hospitalisation is not a pilot-level count") })
        #expect(text.contains { $0.hasPrefix("test/scenario.yaml:6: ") && $0.contains("silent_last_weeks: 60 is outside 0...52") })
    }
}
