import Foundation
import PilotwatchCore
import PilotwatchStore
import TestSupport
import Testing

/// Ingest throughput, measured and printed, never asserted (timing is not a test result).
///
///     BENCH=1 swift test -c release --scratch-path .build-NAME --filter ThroughputBenchmark
///
/// Optional: BENCH_MESSAGES (200000), BENCH_BATCH (256), BENCH_SYNC (full|normal), BENCH_DIR (a temp dir),
/// BENCH_CHECKPOINT (WAL pages between automatic checkpoints).
@Suite struct ThroughputBenchmark {
    static let environment = ProcessInfo.processInfo.environment

    @Test(.enabled(if: environment["BENCH"] == "1"))
    func oneObservationMessages() throws {
        let env = Self.environment
        let messages = env["BENCH_MESSAGES"].flatMap(Int.init) ?? 200_000
        let batchSize = env["BENCH_BATCH"].flatMap(Int.init) ?? 256
        let synchronous = env["BENCH_SYNC"].flatMap { StoreOptions.Synchronous(rawValue: $0.uppercased()) } ?? .full
        var options = StoreOptions(synchronous: synchronous)
        if let pages = env["BENCH_CHECKPOINT"].flatMap(Int.init) { options.walAutocheckpointPages = pages }
        let pilots = 15, devices = 500, subjects = 5_000
        let indicators = ["spo2", "heart_rate", "weight"]

        let dir = try TempDir()
        let path = (env["BENCH_DIR"] ?? dir.path) + "/bench-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }

        // Devices are spread over pilots, subjects over devices (a device serves ~10 subjects of its pilot);
        // messages arrive from random devices over 28 days, each with one observation.
        var rng = SplitMix(seed: 42)
        var counters = [Int](repeating: 0, count: devices)
        let start = day0
        let span = Instant.millisPerDay * 28
        let items: [IngestItem] = (0..<messages).map { i in
            let device = Int(rng.next() % UInt64(devices))
            let pilot = device % pilots
            let subject = device + devices * Int(rng.next() % UInt64(subjects / devices))
            counters[device] += 1
            let received = Instant(millis: start.millis + span * Int64(i) / Int64(messages))
            let observed = received.adding(millis: -Int64(rng.next() % 600_000))
            let topic = Topic(pilot: "pilot-\(pilot)", device: "dev-\(device)", kind: .obs)
            let message = ObservationMessage(
                msgID: "dev-\(device)-\(String(counters[device] + 1_000_000_000))", sentAt: received,
                observations: [Observation(subject: "subj-\(subject)", indicator: indicators[i % indicators.count],
                                           kind: .measurement, value: 90 + Double(rng.next() % 10), at: observed)])
            return IngestItem(topic: "pilots/pilot-\(pilot)/dev-\(device)/obs", receivedAt: received,
                              verdict: .observations(topic, message), payload: [])
        }

        let store = try Store(path: path, options: options)
        var batchTimes: [Duration] = []
        let clock = ContinuousClock()
        let cpuBefore = processCPUSeconds()
        let writtenBefore = bytesWritten()
        let began = clock.now
        for startIndex in stride(from: 0, to: items.count, by: batchSize) {
            let t0 = clock.now
            try store.ingest(Array(items[startIndex..<min(startIndex + batchSize, items.count)]))
            batchTimes.append(clock.now - t0)
        }
        let elapsed = clock.now - began
        let cpu = processCPUSeconds() - cpuBefore
        let written = bytesWritten() - writtenBefore
        let stats = try store.stats()
        #expect(stats.accepted == messages)   // the run stored what it was given

        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let sizes = ["", "-wal"].map { (try? FileManager.default.attributesOfItem(atPath: path + $0)[.size] as? Int) ?? 0 }
        batchTimes.sort()
        func ms(_ d: Duration) -> String {
            String(format: "%.2f", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        print("""
            BENCH store ingest: \(messages) messages, batches of \(batchSize), synchronous=\(synchronous.rawValue), \
            \(pilots) pilots / \(devices) devices / \(subjects) subjects
            BENCH elapsed \(String(format: "%.2f", seconds)) s -> \(Int(Double(messages) / seconds)) messages/s
            BENCH process CPU \(String(format: "%.2f", cpu)) s -> \(Int(Double(messages) / cpu)) messages per CPU-second \
            (the machine's load average was \(loadAverage()) during the run)
            BENCH written by the process: \(written / 1_048_576) MiB (\(written / messages) bytes/message)
            BENCH batch latency p50 \(ms(batchTimes[batchTimes.count / 2])) ms, p99 \(ms(batchTimes[batchTimes.count * 99 / 100])) ms, \
            max \(ms(batchTimes[batchTimes.count - 1])) ms
            BENCH db \(sizes[0] / 1024) KiB + wal \(sizes[1] / 1024) KiB (\(sizes[0] / messages) bytes/message in the db file)
            """)
    }
}

/// User + system CPU time of this process, in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Bytes this process passed to write(2) so far (`wchar` of /proc/self/io; 0 where unavailable).
func bytesWritten() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

/// The 1-minute load average, as text (other work on the machine skews the wall-clock figure).
func loadAverage() -> String {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) > 0 ? String(format: "%.1f", loads[0]) : "unknown"
}

