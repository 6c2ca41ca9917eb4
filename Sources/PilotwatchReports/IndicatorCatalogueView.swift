import PilotwatchCore
import PilotwatchStore

/// `pilotwatch indicators`: the catalogue as staff need it.
public struct IndicatorCatalogueView: Sendable {
    public var indicators: [Indicator]
    public init(indicators: [Indicator]) { self.indicators = indicators }

    /// An array of indicator objects.
    public func json(pretty: Bool = false) -> String {
        var w = JSONWriter(pretty: pretty)
        w.array { a in
            for i in indicators {
                a.object { o in
                    o.field("code", i.code)
                    o.field("name", i.name)
                    o.field("loinc", i.loinc)
                    o.field("kind", i.kind.rawValue)
                    o.field("level", i.level.rawValue)
                    o.field("unit", i.unit)
                    if let r = i.range {
                        o.objectField("range") { $0.field("min", r.min); $0.field("max", r.max) }
                    } else {
                        o.field("range", nil as String?)
                    }
                    o.field("direction", i.direction.rawValue)
                    if let r = i.target {
                        o.objectField("target") { $0.field("min", r.min); $0.field("max", r.max) }
                    } else {
                        o.field("target", nil as String?)
                    }
                    o.field("programmes", strings: i.programmes)
                    o.objectField("windows") { ww in
                        ww.field("baseline_before_days", i.windows.baselineBeforeDays)
                        ww.field("baseline_after_days", i.windows.baselineAfterDays)
                        ww.field("follow_up_days", i.windows.followUpDays)
                    }
                }
            }
        }
        return w.text
    }

    public func csv() -> String {
        var lines = [CSV.line(["code", "name", "loinc", "kind", "level", "unit", "range_min", "range_max", "direction",
                               "target_min", "target_max", "programmes"])]
        for i in indicators {
            lines.append(CSV.line([i.code, i.name, i.loinc ?? "", i.kind.rawValue, i.level.rawValue, i.unit,
                                   csvNumber(i.range?.min), csvNumber(i.range?.max), i.direction.rawValue,
                                   csvNumber(i.target?.min), csvNumber(i.target?.max),
                                   i.programmes.joined(separator: ";")]))
        }
        return lines.joined(separator: "\n")
    }

    public func table(colour: Bool) -> String {
        let header = ["code", "name", "LOINC", "unit", "range", "better", "target"]
        let rows = indicators.map { i -> [String] in
            let better: String
            switch i.direction {
            case .higher: better = "higher"
            case .lower: better = "lower"
            case .stable: better = "stable"
            }
            return [i.code, i.name, i.loinc ?? "-", i.kind == .event ? "event" : i.unit,
                    i.range?.description ?? "-", better, i.target?.description ?? "-"]
        }
        if indicators.isEmpty { return "no indicators" }
        var others = 2 * (header.count - 1)
        for c in header.indices where c != 1 {
            others += rows.reduce(displayWidth(header[c])) { max($0, displayWidth($1[c])) }
        }
        let nameWidth = Graphics.width - others
        if rows.allSatisfy({ displayWidth($0[1]) <= nameWidth }) {
            var t = TextTable(header)
            for r in rows { t.row(r) }
            return t.render()
        }
        // Names too long for a column: each goes on its own line under its code.
        var t = TextTable(header.enumerated().filter { $0.offset != 1 }.map(\.element))
        for r in rows { t.row(r.enumerated().filter { $0.offset != 1 }.map(\.element)) }
        let lines = t.render().split(separator: "\n").map(String.init)
        var out = Array(lines.prefix(2))
        for (i, line) in lines.dropFirst(2).enumerated() {
            out.append(line)
            out.append(Graphics.Colour.dim.paint("  " + Graphics.truncate(rows[i][1], Graphics.width - 2), colour))
        }
        return out.joined(separator: "\n")
    }
}
