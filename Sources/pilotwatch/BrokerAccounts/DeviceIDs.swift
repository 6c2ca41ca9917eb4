import Foundation
import PilotwatchCore

/// Device ids from `--count` or from a CSV file.
enum DeviceIDs {
    /// `dev-001`, `dev-002`, ...: zero-padded to three digits, or more when the numbers need it.
    static func numbered(prefix: String, start: Int, count: Int) -> [String] {
        let last = start + count - 1
        let width = max(3, String(last).count)
        return (start...last).map { n in
            let digits = String(n)
            return prefix + "-" + String(repeating: "0", count: width - digits.count) + digits
        }
    }

    /// One more than the highest `{prefix}-N` already provisioned for `pilot`.
    static func nextNumber(prefix: String, pilot: String, existing: Set<String>) -> Int {
        let head = "\(pilot)/\(prefix)-"
        let numbers = existing.compactMap { name -> Int? in
            guard name.hasPrefix(head) else { return nil }
            return Int(name.dropFirst(head.count))
        }
        return (numbers.max() ?? 0) + 1
    }

    /// Reads device ids: one per line, or the column headed `device_id` (or `device`).
    /// Blank lines and lines starting with `#` are skipped; every id must be a contract id.
    static func read(csv path: String, limit: Int) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read --from-csv \(path); check the path and its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError("--from-csv \(path) is not UTF-8 text")
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated().map { (number: $0.offset + 1, cells: CSVLine.cells(String($0.element))) }
            .filter { !$0.cells.allSatisfy(\.isEmpty) && !($0.cells.first?.hasPrefix("#") ?? false) }
        // A header names the column: device_id, or device beside other columns (a lone
        // "device" on the first line is taken as a device id).
        var column = 0
        if let header = lines.first?.cells.map({ $0.lowercased() }),
           let i = header.firstIndex(of: "device_id") ?? (header.count > 1 ? header.firstIndex(of: "device") : nil) {
            column = i
            lines.removeFirst()
        }
        var ids: [String] = []
        var seen: [String: Int] = [:]
        var problems: [String] = []
        for line in lines {
            let id = line.cells.count > column ? line.cells[column] : ""
            if !isValidCode(id) {
                problems.append("\(path):\(line.number): \"\(id)\" is not a device id (1-64 characters of a-z 0-9 . _ -, starting with a letter or digit)")
            } else if let first = seen[id] {
                problems.append("\(path):\(line.number): device \(id) is listed twice (first on line \(first))")
            } else {
                seen[id] = line.number
                ids.append(id)
            }
        }
        if !problems.isEmpty {
            let shown = problems.prefix(20).joined(separator: "\n  ")
            throw CLIError("--from-csv \(path) has \(problems.count) problem\(problems.count == 1 ? "" : "s"); nothing was changed:\n  \(shown)\(problems.count > 20 ? "\n  ..." : "")")
        }
        if ids.isEmpty { throw CLIError("--from-csv \(path) lists no device ids") }
        if ids.count > limit { throw CLIError("--from-csv \(path) lists \(ids.count) devices; provision at most \(limit) at a time") }
        return ids
    }
}
