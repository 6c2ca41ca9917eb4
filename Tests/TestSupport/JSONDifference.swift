import Foundation

/// The first difference between two JSON values as `JSONSerialization` reads them, or nil: numbers
/// equal to `|a-b| ≤ 1e-9·max(1,|a|,|b|)` (federation.md's invariant), everything else exactly.
/// `dropping` leaves out object keys of those names at every depth.
///
/// ```swift
/// #expect(jsonDifference(try JSONSerialization.jsonObject(with: a), try JSONSerialization.jsonObject(with: b)) == nil)
/// ```
public func jsonDifference(_ a: Any?, _ b: Any?, dropping: Set<String> = [], path: String = "") -> String? {
    switch (a, b) {
    case let (x as [String: Any], y as [String: Any]):
        for key in Set(x.keys).union(y.keys).subtracting(dropping).sorted() {
            if let d = jsonDifference(x[key], y[key], dropping: dropping, path: path + "." + key) { return d }
        }
        return nil
    case let (x as [Any], y as [Any]):
        guard x.count == y.count else { return "\(path): \(x.count) vs \(y.count) elements" }
        for (i, (p, q)) in zip(x, y).enumerated() {
            if let d = jsonDifference(p, q, dropping: dropping, path: path + "[\(i)]") { return d }
        }
        return nil
    case let (x as String, y as String):
        return x == y ? nil : "\(path): \(x) vs \(y)"
    case let (x as NSNumber, y as NSNumber):
        let (p, q) = (x.doubleValue, y.doubleValue)
        return abs(p - q) <= 1e-9 * max(1, abs(p), abs(q)) ? nil : "\(path): \(x) vs \(y)"
    case (nil, nil), (is NSNull, is NSNull):
        return nil
    default:
        return "\(path): \(a.map { "\($0)" } ?? "absent") vs \(b.map { "\($0)" } ?? "absent")"
    }
}

/// The JSON value of `text`, for ``jsonDifference(_:_:dropping:path:)``.
public func jsonValue(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}
