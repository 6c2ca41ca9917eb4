import PilotwatchCore

/// A place in the inbox: a segment and a byte offset in it.
public struct InboxPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var segment: Int64
    public var offset: Int64

    public init(segment: Int64, offset: Int64) {
        self.segment = segment
        self.offset = offset
    }

    /// Before every record.
    public static let start = InboxPosition(segment: 1, offset: 0)

    public static func < (a: Self, b: Self) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }

    public var description: String { "segment \(segment) offset \(offset)" }
}

/// Where one record lies in the inbox: its segment, its offset and its length, header included.
public struct InboxSpan: Hashable, Sendable {
    public var segment: Int64
    public var offset: Int64
    public var length: Int64

    public init(segment: Int64, offset: Int64, length: Int64) {
        self.segment = segment
        self.offset = offset
        self.length = length
    }
}

/// One received message as the inbox keeps it: when it arrived, its topic and payload bytes.
public struct InboxRecord: Sendable, Hashable {
    public var receivedAt: Instant
    public var topic: String
    public var payload: [UInt8]

    public init(receivedAt: Instant, topic: String, payload: [UInt8]) {
        self.receivedAt = receivedAt
        self.topic = topic
        self.payload = payload
    }

    /// Overwritten by ``Inbox/scrub(_:)``: no topic (MQTT has no empty topic name) and zeros.
    public var isScrubbed: Bool { topic.isEmpty && payload.allSatisfy { $0 == 0 } }

    /// The record as the store takes it, with the contract's verdict on it (checked against the
    /// time it was received).
    public func item(validatedBy validator: ContractValidator) -> IngestItem {
        IngestItem.received(topic: topic, receivedAt: receivedAt,
                            verdict: validator.validate(topic: topic, payload: payload, receivedAt: receivedAt),
                            payload: payload)
    }
}

public enum InboxError: Error, Equatable, CustomStringConvertible {
    case io(path: String, call: String, reason: String)
    case corrupt(path: String, offset: Int64, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let call, let reason):
            return "inbox \(path): \(call) failed: \(reason)"
        case .corrupt(let path, let offset, let reason):
            return "inbox \(path) is damaged at byte \(offset): \(reason)"
        }
    }
}
