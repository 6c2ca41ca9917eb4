package import Yams

/// One problem found in a configuration file, with where it is and what to do.
///
/// ```text
/// config/pilots.yaml:14: pilots[0].enrolment_target: "many" is not a whole number; write a count such as 120
/// ```
public struct ConfigProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String
    public init(file: String, line: Int?, message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Walks a YAML tree, collecting every problem with its line instead of stopping at the first.
///
/// Shared by the configuration parsers and the simulator's scenario parser (hence `package`;
/// Yams types stay out of Core's public API):
/// ```swift
/// var r = YAMLReader(file: "pilots.yaml")
/// guard let root = r.root(text) else { return r.problems }
/// r.checkKeys(root, allowed: ["pilots"], path: "")
/// ```
package struct YAMLReader {
    package let file: String
    package var problems: [ConfigProblem] = []

    package init(file: String) { self.file = file }

    package mutating func problem(_ node: Node?, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark?.line, message: message))
    }

    /// Parses `text`; nil (with a problem recorded) when it is not YAML or not a mapping at the top.
    package mutating func root(_ text: String, shape: String = "see the example in config/ for its shape",
                               topLevel: String = "a mapping of keys to values") -> Node.Mapping? {
        do {
            // The basic resolver: values are read from their text (`Int(s.string)`, ...), and
            // Yams compares mapping keys by resolved tag, which the default resolver works out
            // with regular expressions at every lookup (a sixth of a dashboard command's time).
            guard let node = try Yams.compose(yaml: text, .basic) else {
                problem(nil, "the file is empty; \(shape)")
                return nil
            }
            guard case .mapping(let m) = node else {
                problem(node, "the top level must be \(topLevel)")
                return nil
            }
            return m
        } catch let error as YamlError {
            problems.append(ConfigProblem(file: file, line: Self.line(of: error), message: "not valid YAML: \(Self.problemText(error))"))
            return nil
        } catch {
            problem(nil, "not valid YAML: \(error)")
            return nil
        }
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func problemText(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _): return problem
        default: return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    /// Reports keys of `map` that are not in `allowed`, suggesting the closest known key.
    package mutating func checkKeys(_ map: Node.Mapping, allowed: [String], path: String) {
        for (k, _) in map {
            let key = k.string ?? ""
            guard !allowed.contains(key) else { continue }
            let hint = closest(key, in: allowed).map { " (did you mean \($0)?)" } ?? ""
            problem(k, "\(path.isEmpty ? "" : path + ".")\(key): unknown key\(hint); known keys are \(allowed.joined(separator: ", "))")
        }
    }

    func value(_ map: Node.Mapping, _ key: String) -> Node? { map[key] }

    /// `path.key`, or `key` at the top level (an empty `path`).
    private func label(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The mapping under `key`; nil (with a problem recorded) when it is something else.
    package mutating func mapping(_ map: Node.Mapping, _ key: String, path: String) -> Node.Mapping? {
        guard let node = map[key] else { return nil }
        guard case .mapping(let m) = node else {
            problem(node, "\(label(path, key)) must be a mapping of keys to values")
            return nil
        }
        return m
    }

    package mutating func string(_ map: Node.Mapping, _ key: String, path: String, required: Bool = false) -> String? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(label(path, key)) is missing; add it") }
            return nil
        }
        guard case .scalar(let s) = node, !s.string.isEmpty else {
            problem(node, "\(label(path, key)) must be a non-empty text value")
            return nil
        }
        return s.string
    }

    package mutating func int(_ map: Node.Mapping, _ key: String, path: String, required: Bool = false,
                              range: ClosedRange<Int>? = nil) -> Int? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(label(path, key)) is missing; add it") }
            return nil
        }
        guard case .scalar(let s) = node, let v = Int(s.string) else {
            problem(node, "\(label(path, key)): \(quoted(node)) is not a whole number")
            return nil
        }
        if let range, !range.contains(v) {
            problem(node, "\(label(path, key)): \(v) is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return v
    }

    /// A number under `key` within `range`; `why` replaces `min...max` in the problem when it is outside.
    package mutating func number(_ map: Node.Mapping, _ key: String, path: String, range: ClosedRange<Double>,
                                 required: Bool = false, why: String? = nil) -> Double? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(label(path, key)) is missing; add it") }
            return nil
        }
        guard let v = double(node, path: label(path, key)) else { return nil }
        guard range.contains(v) else {
            let bounds = why ?? "\(formatNumber(range.lowerBound))...\(formatNumber(range.upperBound))"
            problem(node, "\(label(path, key)): \(formatNumber(v)) is outside \(bounds)")
            return nil
        }
        return v
    }

    mutating func double(_ node: Node?, path: String) -> Double? {
        guard let node else { problem(nil, "\(path) is missing; add it"); return nil }
        guard case .scalar(let s) = node, let v = Double(s.string), v.isFinite else {
            problem(node, "\(path): \(quoted(node)) is not a number")
            return nil
        }
        return v
    }

    mutating func day(_ map: Node.Mapping, _ key: String, path: String, required: Bool) -> Day? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(path).\(key) is missing; add a date such as 2026-01-05") }
            return nil
        }
        guard case .scalar(let s) = node, let d = Day(parsing: s.string) else {
            problem(node, "\(path).\(key): \(quoted(node)) is not a date; write YYYY-MM-DD, for example 2026-01-05")
            return nil
        }
        return d
    }

    mutating func strings(_ map: Node.Mapping, _ key: String, path: String, required: Bool) -> [String]? {
        guard let node = map[key] else {
            if required { problem(map.anyNode, "\(path).\(key) is missing; add a list such as [a, b]") }
            return nil
        }
        guard case .sequence(let seq) = node else {
            problem(node, "\(path).\(key) must be a list, such as [a, b]")
            return nil
        }
        var out: [String] = []
        for (i, item) in seq.enumerated() {
            guard case .scalar(let s) = item, !s.string.isEmpty else {
                problem(item, "\(path).\(key)[\(i)] must be a text value")
                continue
            }
            out.append(s.string)
        }
        return out
    }

    package mutating func bool(_ map: Node.Mapping, _ key: String, path: String) -> Bool? {
        guard let node = map[key] else { return nil }
        guard let b = node.bool else {
            problem(node, "\(label(path, key)): \(quoted(node)) is not true or false")
            return nil
        }
        return b
    }

    package func quoted(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "\"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

extension Node.Mapping {
    /// A node that stands for this mapping, for line numbers.
    package var anyNode: Node { .mapping(self) }
}

/// The entry of `choices` closest to `word` by edit distance, when close enough to be a likely typo.
public func closest(_ word: String, in choices: [String]) -> String? {
    var best: (String, Int)?
    for c in choices {
        let d = editDistance(Array(word.utf8), Array(c.utf8))
        if d <= max(2, c.count / 3), d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    return best?.0
}

func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
