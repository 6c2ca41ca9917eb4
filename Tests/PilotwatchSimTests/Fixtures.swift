import Foundation
import PilotwatchCore
@testable import PilotwatchSim

/// The shipped catalogue, the demo registry and the demo scenario, read from the source tree.
enum Fixtures {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    struct Loaded: Sendable {
        var catalogue: Catalogue
        var registry: Registry
        var scenario: Scenario
    }

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    static func catalogue() throws -> Catalogue {
        let (c, problems) = ConfigParser.catalogue(yaml: try text("config/indicators.yaml"), file: "config/indicators.yaml")
        guard let c else { throw LoadError(description: problems.map(\.description).joined(separator: "\n")) }
        return c
    }

    static func registry(_ catalogue: Catalogue) throws -> Registry {
        let (r, problems) = ConfigParser.registry(yaml: try text("seeds/pilots.yaml"), file: "seeds/pilots.yaml", catalogue: catalogue)
        guard let r else { throw LoadError(description: problems.map(\.description).joined(separator: "\n")) }
        return r
    }

    static func load() throws -> Loaded {
        let c = try catalogue()
        let r = try registry(c)
        let (s, problems) = ScenarioParser.parse(yaml: try text("seeds/scenario.yaml"), file: "seeds/scenario.yaml",
                                                 registry: r, catalogue: c)
        guard let s else { throw LoadError(description: problems.map(\.description).joined(separator: "\n")) }
        return Loaded(catalogue: c, registry: r, scenario: s)
    }

    static func instant(_ text: String) throws -> Instant {
        guard let t = RFC3339.parse(text) else { throw LoadError(description: "bad time \(text)") }
        return t
    }

    /// The demo's fixed end: ten to eleven months after the pilots' starts.
    static let endText = "2026-11-29T00:00:00Z"
}
