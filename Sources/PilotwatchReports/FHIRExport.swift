import PilotwatchCore

/// FHIR R4 (4.0.1) terminology the export uses.
public enum FHIR {
    public static let measurePopulation = "http://terminology.hl7.org/CodeSystem/measure-population"
    public static let improvementNotation = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
    public static let dataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
    public static let ucum = "http://unitsofmeasure.org"
    /// pilotwatch's own code system for the metrics of `metrics.md` (group codes).
    public static let metricSystem = "urn:pilotwatch:metric"
    /// Why a figure is masked: `small_count`, `few_subjects` or `secondary`.
    public static let suppressionExtension = "urn:pilotwatch:fhir:suppression"
    /// Measure canonical of an indicator: `urn:pilotwatch:measure:<code>`.
    public static func measure(_ indicator: String) -> String { "urn:pilotwatch:measure:" + indicator }

    /// A name-based UUID (SHA-256 of `name`, version and variant bits set), so that the same
    /// report always gets the same ids.
    public static func uuid(_ name: String) -> String {
        var b = Array(SHA256.digest(Array(name.utf8)).prefix(16))
        b[6] = (b[6] & 0x0F) | 0x50
        b[8] = (b[8] & 0x3F) | 0x80
        let hex = b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let c = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(c[$0]) }.joined(separator: "-")
    }
}

extension DisclosedReport {
    /// A FHIR R4 `Bundle` (type `collection`) of `MeasureReport`s (`summary`, `complete`): one per
    /// pilot and outcome or event indicator, and one per programme and indicator (pooled).
    ///
    /// A suppressed population count or score carries no value but the `data-absent-reason`
    /// extension `masked` (and pilotwatch's reason); a missing one `not-applicable`; zero is 0.
    public func fhir(pretty: Bool = true) -> String {
        let r = report
        var w = JSONWriter(pretty: pretty)
        let bundleName = "bundle|\(r.provenance.databaseFingerprint)|\(r.asOf)|\(r.periodStart?.description ?? "-")|"
            + "\(r.selection.summary)|\(k)"
        w.object { b in
            b.field("resourceType", "Bundle")
            b.field("id", FHIR.uuid(bundleName))
            b.objectField("identifier") { i in
                i.field("system", "urn:pilotwatch:export")
                i.field("value", "urn:uuid:" + FHIR.uuid(bundleName))
            }
            b.field("type", "collection")
            b.field("timestamp", r.provenance.generatedAt.description)
            b.arrayField("entry") { entries in
                for s in scopesInOrder {
                    for i in s.outcomes + s.events {
                        let id = FHIR.uuid("measure-report|\(bundleName)|\(s.level.rawValue)|\(s.id)|\(i.code)")
                        entries.object { e in
                            e.field("fullUrl", "urn:uuid:" + id)
                            e.objectField("resource") { measureReport(&$0, id: id, scope: s, indicator: i) }
                        }
                    }
                }
            }
        }
        return w.text + "\n"
    }

    private func measureReport(_ m: inout JSONWriter, id: String, scope s: ExportScope, indicator i: ExportIndicator) {
        let r = report
        m.field("resourceType", "MeasureReport")
        m.field("id", id)
        m.arrayField("identifier") { a in
            a.object { o in
                o.field("system", "urn:pilotwatch:measure-report")
                o.field("value", "\(s.level.rawValue)/\(s.id)/\(i.code)")
            }
        }
        m.field("status", "complete")
        m.field("type", "summary")
        m.field("measure", FHIR.measure(i.code))
        m.field("date", r.provenance.generatedAt.description)
        // A pooled report stands on the pilots that report the indicator; the programme's
        // enrolment is its initial population only when they all do.
        let reporting = s.level == .programme
            ? r.pilots(of: s.id).filter { $0.outcomes.contains(i) || $0.events.contains(i) }.map(\.id) : [s.id]
        let wholeScope = s.level == .pilot || reporting.count == s.pilots.count
        m.objectField("reporter") { rep in
            if let p = s.pilot {
                rep.field("display", "\(p.lead) (pilot \(p.id))")
            } else {
                rep.field("display", "programme \(s.id), pooled over \(reporting.joined(separator: ", "))")
            }
        }
        let starts = s.pilot.map { [$0.start] } ?? r.pilots(of: s.id).compactMap { $0.pilot?.start }
        m.objectField("period") { p in
            if let start = r.periodStart?.description ?? starts.min()?.description { p.field("start", start) }
            p.field("end", r.asOf.description)
        }
        switch i.direction {
        case .higher, .lower:
            m.objectField("improvementNotation") { c in
                c.arrayField("coding") { a in
                    a.object { co in
                        co.field("system", FHIR.improvementNotation)
                        co.field("code", i.direction == .higher ? "increase" : "decrease")
                        co.field("display", i.direction == .higher ? "Increased score indicates improvement"
                                 : "Decreased score indicates improvement")
                    }
                }
            }
        case .stable:
            break
        }
        m.arrayField("group") { groups in
            let c = i.code
            let initial: [(String, Cell)] = wholeScope ? [("initial-population", s[.enrolled])] : []
            if i.kind == .event {
                // The programme's subjects followed and patient-days are those of all its pilots
                // with events; they are the denominators of a pooled rate only when all report it.
                let eventPilots = r.pilots(of: s.id).filter { !$0.events.isEmpty }.map(\.id)
                let sameSubjects = s.level == .pilot || reporting == eventPilots
                let followed: [(String, Cell)] = sameSubjects ? [("denominator", s[.subjectsFollowed])] : []
                group(&groups, metric: .ratePer100PatientMonths, name: "Events per 100 patient-months",
                      populations: initial + followed + [("numerator", s[.events, c])],
                      score: s[.ratePer100PatientMonths, c], unit: ("per 100 patient-months", nil))
                if !followed.isEmpty {
                    group(&groups, metric: .patientDays, name: "Patient-days of follow-up in the period",
                          populations: initial + followed, score: s[.patientDays], unit: ("d", "d"))
                }
                return
            }
            let n = s[.nPaired, c]
            let base: [(String, Cell)] = initial + [("denominator", n)]
            let unit = (i.unit, i.unit as String?)
            group(&groups, metric: .meanBaseline, name: "Mean baseline value", populations: base,
                  score: s[.meanBaseline, c], unit: unit)
            group(&groups, metric: .meanLatest, name: "Mean latest value", populations: base,
                  score: s[.meanLatest, c], unit: unit)
            group(&groups, metric: .meanChange, name: "Mean change from baseline to latest", populations: base,
                  score: s[.meanChange, c], unit: unit)
            group(&groups, metric: .changeCI95Lower, name: "Lower bound of the 95% confidence interval of the mean change",
                  populations: base, score: s[.changeCI95Lower, c], unit: unit)
            group(&groups, metric: .changeCI95Upper, name: "Upper bound of the 95% confidence interval of the mean change",
                  populations: base, score: s[.changeCI95Upper, c], unit: unit)
            if i.target != nil {
                group(&groups, metric: .pctInTarget, name: "Share of paired subjects whose latest value is in the target range",
                      populations: base + [("numerator", s[.inTarget, c])], score: s[.pctInTarget, c], unit: ("%", "%"))
            }
            if i.direction != .stable {
                group(&groups, metric: .improvedPct, name: "Share of paired subjects who improved",
                      populations: base + [("numerator", s[.improved, c])], score: s[.improvedPct, c], unit: ("%", "%"))
            }
        }
    }

    private func group(_ groups: inout JSONWriter, metric: ExportMetric, name: String, populations: [(String, Cell)],
                       score: Cell, unit: (text: String, ucum: String?)) {
        let k = self.k
        groups.object { g in
            g.objectField("code") { c in
                c.arrayField("coding") { a in
                    a.object { co in
                        co.field("system", FHIR.metricSystem)
                        co.field("code", metric.rawValue)
                        co.field("display", name)
                    }
                }
                c.field("text", name)
            }
            g.arrayField("population") { a in
                for (code, cell) in populations {
                    a.object { p in
                        p.objectField("code") { c in
                            c.arrayField("coding") { cs in
                                cs.object { co in
                                    co.field("system", FHIR.measurePopulation)
                                    co.field("code", code)
                                    co.field("display", populationDisplay(code))
                                }
                            }
                        }
                        switch cell.state {
                        case .value(let v): p.field("count", Int(v.rounded()))
                        case .missing: p.objectField("_count") { absent(&$0, "not-applicable", nil, k: k) }
                        case .suppressed(let why): p.objectField("_count") { absent(&$0, "masked", why, k: k) }
                        }
                    }
                }
            }
            g.objectField("measureScore") { q in
                switch score.state {
                case .value(let v):
                    q.field("value", v)
                    q.field("unit", unit.text)
                    if let code = unit.ucum {
                        q.field("system", FHIR.ucum)
                        q.field("code", code)
                    }
                case .missing:
                    absent(&q, "not-applicable", nil, k: k)
                case .suppressed(let why):
                    absent(&q, "masked", why, k: k)
                }
            }
        }
    }

    private func populationDisplay(_ code: String) -> String {
        switch code {
        case "initial-population": return "Initial Population"
        case "numerator": return "Numerator"
        case "denominator": return "Denominator"
        default: return code
        }
    }

    private func absent(_ o: inout JSONWriter, _ reason: String, _ why: Suppression?, k: Int) {
        o.arrayField("extension") { a in
            a.object { e in
                e.field("url", FHIR.dataAbsentReason)
                e.field("valueCode", reason)
            }
            if let why {
                a.object { e in
                    e.field("url", FHIR.suppressionExtension)
                    e.field("valueCode", why.rawValue)
                }
                if why == .smallCount {
                    a.object { e in
                        e.field("url", FHIR.suppressionExtension + ":shown-as")
                        e.field("valueString", "<\(k)")
                    }
                }
            }
        }
    }
}
