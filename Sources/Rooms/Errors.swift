/// The error codes of the wire contract (PROTOCOL.md 1.6). Each failure maps to exactly one.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case unauthorized
    case forbidden
    case notFound = "not_found"
    case notInRoom = "not_in_room"
    case roomFull = "room_full"
    case roomLocked = "room_locked"
    case rateLimited = "rate_limited"
    case tooLarge = "too_large"
    case conflict
    case `internal`
}

/// A refused request: the code, a human message, and the request's `ref` when it had one.
public struct ProtocolError: Error, Equatable, Sendable {
    public var code: ErrorCode
    public var message: String
    public var ref: String?

    public init(_ code: ErrorCode, _ message: String, ref: String? = nil) {
        self.code = code
        self.message = message
        self.ref = ref
    }

    public static func badRequest(_ message: String) -> ProtocolError { .init(.badRequest, message) }
}
