import PilotwatchCore
import Yams

/// Walks the scenario's YAML tree, collecting every problem with its file and line.
/// (The same style as PilotwatchCore's configuration reader, which is internal to that module.)
struct ScenarioReader {
    let file: String
    var problems: [ConfigProblem] = []

    init(file: String) { self.file = file }

    mutating func problem(_ node: Node?, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark?.line, message: message))
    }

    /// Parses `text`; nil (with a problem recorded) when it is not YAML or not a mapping at the top.
    mutating func root(_ text: String) -> Node.Mapping? {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                problem(nil, "the file is empty; see seeds/scenario.yaml for its shape")
                return nil
            }
            guard case .mapping(let m) = node else {
                problem(node, "the top level must be a mapping with defaults: and pilots:")
                return nil
            }
            return m
        } catch let error as YamlError {
            var line: Int?
            var text = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            switch error {
            case .scanner(_, let p, let mark, _), .parser(_, let p, let mark, _):
                line = mark.line; text = p
            default:
                break
            }
            problems.append(ConfigProblem(file: file, line: line, message: "not valid YAML: \(text)"))
            return nil
        } catch {
            problem(nil, "not valid YAML: \(error)")
            return nil
        }
    }

    /// Reports keys of `map` that are not in `allowed`, suggesting the closest known key.
    mutating func checkKeys(_ map: Node.Mapping, allowed: [String], path: String) {
        for (k, _) in map {
            let key = k.string ?? ""
            guard !allowed.contains(key) else { continue }
            let hint = closest(key, in: allowed).map { " (did you mean \($0)?)" } ?? ""
            problem(k, "\(path.isEmpty ? "" : path + ".")\(key): unknown key\(hint); known keys are \(allowed.joined(separator: ", "))")
        }
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

    func quoted(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

extension Node.Mapping {
    var anyNode: Node { .mapping(self) }
}
