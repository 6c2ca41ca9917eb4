/// Reading one line of a CSV file (RFC 4180 quoting), as `--from-csv` needs it.
enum CSVLine {
    /// The cells of one CSV line (RFC 4180 quoting), trimmed.
    static func cells(_ line: String) -> [String] {
        var out: [String] = []
        var cell = ""
        var quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    if let n = chars.next() {
                        if n == "\"" { cell.append("\"") } else { quoted = false; if n == "," { out.append(cell); cell = "" } else { cell.append(n) } }
                    } else {
                        quoted = false
                    }
                } else {
                    cell.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                out.append(cell); cell = ""
            } else {
                cell.append(c)
            }
        }
        out.append(cell)
        return out.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
