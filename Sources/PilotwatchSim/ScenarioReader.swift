import PilotwatchCore
import Yams

/// Walks the scenario's YAML tree, collecting every problem with its file and line: Core's
/// `YAMLReader` plus the value readers the scenario needs.
struct ScenarioReader {
    private var base: YAMLReader
    var file: String { base.file }
    var problems: [ConfigProblem] { base.problems }

    init(file: String) { base = YAMLReader(file: file) }

    mutating func problem(_ node: Node?, _ message: String) { base.problem(node, message) }

    /// Parses `text`; nil (with a problem recorded) when it is not YAML or not a mapping at the top.
    mutating func root(_ text: String) -> Node.Mapping? {
        base.root(text, shape: "see seeds/scenario.yaml for its shape", topLevel: "a mapping with defaults: and pilots:")
    }

    /// Reports keys of `map` that are not in `allowed`, suggesting the closest known key.
    mutating func checkKeys(_ map: Node.Mapping, allowed: [String], path: String) {
        base.checkKeys(map, allowed: allowed, path: path)
    }

    private func label(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func mapping(_ map: Node.Mapping, _ key: String, path: String) -> Node.Mapping? {
        guard let node = map[key] else { return nil }
        guard case .mapping(let m) = node else {
            problem(node, "\(label(path, key)) must be a mapping of keys to values")
            return nil
        }
        return m
    }

    mutating func number(_ map: Node.Mapping, _ key: String, path: String, range: ClosedRange<Double>,
                         required: Bool = false, why: String? = nil) -> Double? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(label(path, key)) is missing; add it") }
            return nil
        }
        guard case .scalar(let s) = node, let v = Double(s.string), v.isFinite else {
            problem(node, "\(label(path, key)): \(quoted(node)) is not a number")
            return nil
        }
        guard range.contains(v) else {
            let bounds = why ?? "\(formatNumber(range.lowerBound))...\(formatNumber(range.upperBound))"
            problem(node, "\(label(path, key)): \(formatNumber(v)) is outside \(bounds)")
            return nil
        }
        return v
    }

    mutating func int(_ map: Node.Mapping, _ key: String, path: String, range: ClosedRange<Int>) -> Int? {
        guard let node = map[key] else { return nil }
        guard case .scalar(let s) = node, let v = Int(s.string) else {
            problem(node, "\(label(path, key)): \(quoted(node)) is not a whole number")
            return nil
        }
        guard range.contains(v) else {
            problem(node, "\(label(path, key)): \(v) is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return v
    }

    mutating func text(_ map: Node.Mapping, _ key: String, path: String) -> String? {
        guard let node = map[key] else { return nil }
        guard case .scalar(let s) = node, !s.string.isEmpty else {
            problem(node, "\(label(path, key)) must be a non-empty text value")
            return nil
        }
        return s.string
    }

    mutating func bool(_ map: Node.Mapping, _ key: String, path: String) -> Bool? {
        guard let node = map[key] else { return nil }
        guard let b = node.bool else {
            problem(node, "\(label(path, key)): \(quoted(node)) is not true or false")
            return nil
        }
        return b
    }

    func quoted(_ node: Node) -> String { base.quoted(node) }
}

extension Node.Mapping {
    var anyNode: Node { .mapping(self) }
}
