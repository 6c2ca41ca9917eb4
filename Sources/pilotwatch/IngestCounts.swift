import PilotwatchCore
import PilotwatchStore

/// Running totals for the periodic log line; updated by the network thread, read by the timer.
final class IngestCounts: Sendable {
    private struct State {
        var received = 0, accepted = 0, duplicate = 0, status = 0, observations = 0, snapshots = 0
        var refused: [ReasonCode: Int] = [:]
    }
    private let state = Mutex(State())

    /// Adds a batch's outcomes; returns how many messages have been handled in all.
    @discardableResult
    func add(_ outcomes: [IngestOutcome]) -> Int {
        state.withLock { s in
            for o in outcomes {
                switch o {
                case .accepted(let n, _): s.accepted += 1; s.observations += n
                case .duplicateMessage, .duplicateSnapshot: s.duplicate += 1
                case .status: s.status += 1
                case .snapshot: s.snapshots += 1
                case .refused(let r): s.refused[r, default: 0] += 1
                }
            }
            return s.accepted + s.duplicate + s.status + s.snapshots + s.refused.values.reduce(0, +)
        }
    }

    /// Adds messages written to the inbox; returns how many have been received in all.
    func addReceived(_ n: Int) -> Int {
        state.withLock { s in
            s.received += n
            return s.received
        }
    }

    func line() -> String {
        state.withLock { s in
            let refused = s.refused.values.reduce(0, +)
            let byReason = s.refused.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " ")
            return "counts: received=\(s.received) accepted=\(s.accepted) duplicate=\(s.duplicate) status=\(s.status) snapshots=\(s.snapshots) refused=\(refused)\(byReason.isEmpty ? "" : " (\(byReason))") observations=\(s.observations)"
        }
    }
}
