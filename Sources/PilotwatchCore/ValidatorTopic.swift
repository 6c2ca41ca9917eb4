// Topics: parsing `{root}/{pilot_id}/{device_id}/{obs|status|agg}` in one pass over its bytes,
// with the id checks and the identifier shapes a topic level must not have.

extension ContractValidator {
    /// What a topic says: the topic when its shape is right (even if the pilot is unknown),
    /// the registered pilot, and the refusal if any.
    struct TopicAnalysis {
        var topic: Topic?
        var pilot: PilotRule?
        var refusal: Refusal?
    }

    func analyseTopic(_ topic: String) -> TopicAnalysis {
        var text = topic
        return text.withUTF8 { analyseTopic(bytes: $0, text: topic) }
    }

    private func analyseTopic(bytes u: UnsafeBufferPointer<UInt8>, text: String) -> TopicAnalysis {
        func refuse(_ reason: ReasonCode, _ detail: String) -> TopicAnalysis {
            TopicAnalysis(topic: nil, pilot: nil, refusal: Refusal(reason, detail))
        }
        func slice(_ r: Range<Int>) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: u[r]) }
        func string(_ r: Range<Int>) -> String { String(decoding: slice(r), as: UTF8.self) }
        func equals(_ r: Range<Int>, _ literal: [UInt8]) -> Bool {
            guard r.count == literal.count else { return false }
            for (k, b) in literal.enumerated() where u[r.lowerBound + k] != b { return false }
            return true
        }

        // One pass: level boundaries, wildcards, and identifier shapes in any level. The root may
        // have several levels (`region/pilots`): they count as one, `levels.0`, and the pilot,
        // device and kind follow it.
        var levels: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
        var levelCount = 0
        var wildcard = false
        var pilot: PilotRule?
        var start = 0
        let rootEnd = rootBytes.count
        let rootMatches = u.count > rootEnd && u[rootEnd] == UInt8(ascii: "/") && equals(0..<rootEnd, rootBytes)
        for i in 0...u.count {
            if i < u.count && u[i] != UInt8(ascii: "/") {
                if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "#") { wildcard = true }
                continue
            }
            let r = start..<i
            levelCount += 1
            start = i + 1
            // The level's place after the root: 0 for the root's levels, then 1, 2, 3.
            let k = max(0, levelCount - rootLevels)
            switch k {
            case 0: levels.0 = 0..<i
            case 1: levels.1 = r
            case 2: levels.2 = r
            case 3: levels.3 = r
            default: break
            }
            if r.isEmpty || (k == 0 && rootMatches) { continue }
            if k == 3 && (equals(r, obsBytes) || equals(r, statusBytes) || equals(r, aggBytes)) { continue }
            if k == 1, let known = pilotRule(slice(r)) {
                pilot = known
                continue
            }
            if let kind = IdentifierGuard.kind(utf8: slice(r), policy: .strict) {
                return refuse(.identifyingData, "topic: level \(levelCount) looks like \(withArticle(kind))")
            }
        }
        if wildcard {
            return refuse(.schema, "topic: \(quoteForDetail(text)) contains a wildcard (+ or #), which a published topic cannot")
        }
        guard levelCount == rootLevels + 3 else {
            return refuse(.schema,
                "topic: \(quoteForDetail(text)) has \(levelCount) level\(levelCount == 1 ? "" : "s"); expected \(topicRoot)/{pilot_id}/{device_id}/obs or .../status (or \(topicRoot)/{pilot_id}/{site_id}/agg)")
        }
        guard equals(levels.0, rootBytes) else {
            return refuse(.schema, "topic: root \(quoteForDetail(string(levels.0))) is not \(quoteForDetail(topicRoot))")
        }
        let kind: TopicKind
        if equals(levels.3, obsBytes) {
            kind = .obs
        } else if equals(levels.3, statusBytes) {
            kind = .status
        } else if equals(levels.3, aggBytes) {
            kind = .agg
        } else {
            return refuse(.schema, "topic: last level \(quoteForDetail(string(levels.3))) must be obs, status or agg")
        }
        if let problem = idProblem(slice(levels.1), what: "pilot id") { return refuse(.schema, "topic: " + problem) }
        if let problem = idProblem(slice(levels.2), what: kind == .agg ? "site id" : "device id") { return refuse(.schema, "topic: " + problem) }
        let parsed = Topic(pilot: pilot?.pilot.id ?? string(levels.1), device: string(levels.2), kind: kind)
        guard pilot != nil else {
            return TopicAnalysis(topic: parsed, pilot: nil,
                                 refusal: Refusal(.unknownPilot, "topic: pilot \(quoteForDetail(parsed.pilot)) is not in the pilot registry"))
        }
        return TopicAnalysis(topic: parsed, pilot: pilot, refusal: nil)
    }

    /// The registered pilot whose id is `bytes`.
    private func pilotRule(_ bytes: UnsafeBufferPointer<UInt8>) -> PilotRule? {
        guard pilotList.count <= 64 else { return pilotRules[String(decoding: bytes, as: UTF8.self)] }
        for entry in pilotList where entry.id.count == bytes.count {
            if entry.id.withUnsafeBufferPointer({ $0.elementsEqual(bytes) }) { return entry.rule }
        }
        return nil
    }

    /// Why `id` is not a pilot or device id (1–64 of `a-z 0-9 . _ -`, starting with a letter or digit, no `..`), or nil.
    private func idProblem(_ u: UnsafeBufferPointer<UInt8>, what: String) -> String? {
        var ok = !u.isEmpty && u.count <= ContractLimits.idMaxLength
        var doubleDot = false
        var previous: UInt8 = 0
        for (k, b) in u.enumerated() where ok {
            let alnum = (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            ok = alnum || (k > 0 && (b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")))
            if b == UInt8(ascii: ".") && previous == UInt8(ascii: ".") { doubleDot = true }
            previous = b
        }
        if ok && !doubleDot { return nil }
        let id = quoteForDetail(String(decoding: u, as: UTF8.self))
        if !ok {
            return "\(what) \(id) must be 1-\(ContractLimits.idMaxLength) characters of a-z 0-9 . _ - starting with a letter or digit"
        }
        return "\(what) \(id) must not contain \"..\""
    }}

private let obsBytes = Array("obs".utf8)
private let statusBytes = Array("status".utf8)
private let aggBytes = Array("agg".utf8)
