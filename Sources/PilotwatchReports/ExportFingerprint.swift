import PilotwatchCore
import PilotwatchStore

/// The database fingerprint printed in an export's provenance: SHA-256 over a canonical text
/// dump of what the figures are computed from, in key order, so that it changes when the data
/// changes and not when SQLite rearranges its pages (a VACUUM, a backup, another page size).
///
/// The dump covers the store-wide and per-pilot message counters, refusals by reason, and per
/// pilot (by code): every subject (pseudonym, first data, enrolment, withdrawal), every UTC day
/// received (message and observation counters), every subject's first and last value and count
/// of each measurement or score, and every subject event. Device health is left out: it does
/// not enter any exported figure. Then, when the store holds any, each day-end snapshot and
/// each ended pilot's archive (pilot, day end, revision, SHA-256 of the payload): the figures of
/// an aggregate or archived pilot come from them.
///
/// ```swift
/// let fp = try store.read { try ExportFingerprint.compute($0) }  // "sha256:3f1c…"
/// ```
public enum ExportFingerprint {
    /// Version of the dump format; part of the hashed text.
    public static let version = 1

    public static func compute(_ reader: StoreReader) throws -> String {
        var dump = Dump()
        dump.line("pilotwatch-fingerprint", version)
        let stats = try reader.stats()
        dump.line("total", stats.accepted, stats.duplicate, stats.refused, stats.statuses, stats.observations,
                  stats.duplicateObservations)
        for (reason, n) in stats.refusedByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            dump.line("refused", reason.rawValue, n)
        }
        let indicators = try reader.indicatorCodes()
        for p in stats.pilots {
            dump.line("pilot", p.pilot, p.observations, p.subjects, p.devices, p.lastObservationAt?.millis,
                      p.accepted, p.duplicate, p.refused, p.statuses)
            for s in try reader.subjects(pilot: p.pilot) {
                dump.line("subject", s.code, s.firstAt.millis, s.firstMeasureAt?.millis, s.enrolledAt?.millis,
                          s.withdrawnAt?.millis)
            }
            for d in try reader.pilotDays(pilot: p.pilot, from: Day(index: -3_000_000), through: Day(index: 3_000_000)) {
                dump.line("day", d.day.index, d.accepted, d.duplicate, d.refused, d.statuses, d.observations,
                          d.duplicateObservations)
            }
            for code in indicators {
                for r in try reader.subjectIndicators(pilot: p.pilot, indicator: code) {
                    dump.line("value", r.subject, code, r.count, r.first.at.millis, r.first.value, r.last.at.millis,
                              r.last.value)
                }
            }
            for e in try reader.events(pilot: p.pilot) {
                dump.line("event", e.subject, e.indicator, e.at.millis, e.value)
            }
        }
        // Absent from a store without snapshots or archives, whose fingerprint stays as it was.
        for d in try reader.snapshotDigests() {
            dump.line(d.kind, d.pilot, d.asOf.millis, d.revision, d.sha256)
        }
        return "sha256:" + SHA256.hex(dump.bytes)
    }

    /// Tab-separated lines; numbers in a fixed notation, nil as `-`.
    private struct Dump {
        var bytes: [UInt8] = []

        mutating func line(_ fields: Any?...) {
            var first = true
            for f in fields {
                if !first { bytes.append(0x09) }
                first = false
                let text: String
                switch f {
                case nil: text = "-"
                case let s as String: text = s
                case let i as Int: text = String(i)
                case let i as Int64: text = String(i)
                // The exact bits, so that no rounding can hide a change.
                case let d as Double: text = String(d.bitPattern, radix: 16)
                case let other?: text = "\(other)"
                }
                bytes += Array(text.utf8)
            }
            bytes.append(0x0A)
        }
    }
}
