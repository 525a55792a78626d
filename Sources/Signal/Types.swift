import HTTPTypes

/// One socket of the server (HTTP or WebSocket), unique for the process lifetime.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "c\(rawValue)" }
}

/// Transport settings: where to listen and the per-connection limits the transport enforces.
public struct SignalConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Seconds of silence before the server pings; two of them without anything heard close the connection.
    public var heartbeatSeconds = 10
    /// Largest WebSocket message accepted; larger ones are dropped and reported.
    public var maxMessageBytes = 64 * 1024
    /// A frame this many times over `maxMessageBytes` closes the connection with 1009.
    public var closeOverFactor = 4
    /// Bounds of each connection's outgoing queue.
    public var maxQueueBytes = 1 << 20
    public var maxQueueMessages = 1024
    /// Largest HTTP request body accepted (413 beyond).
    public var maxHTTPBodyBytes = 1 << 20
    /// Request headers lws does not know by name that are passed on to HTTP handlers (lower case).
    public var customHeaders = ["idempotency-key", "access-control-request-method", "access-control-request-headers"]
    /// How long a graceful shutdown waits for clients to take their close frames.
    public var shutdownGraceSeconds = 2.0

    public init() {}
}

/// A WebSocket close code the server sends.
public enum CloseCode: UInt16, Sendable {
    case normal = 1000
    case goingAway = 1001
    case policyViolation = 1008
    case messageTooLarge = 1009
}

/// Why a WebSocket connection ended, as far as the transport knows.
public enum CloseCause: Sendable, Equatable {
    /// The client closed it with a close frame.
    case peer
    /// The socket ended without a close frame (the network, a crashed client): the client may come back.
    case lost
    /// Nothing was heard from the client for two heartbeats.
    case idle
    /// The server closed it (`close(_:code:reason:)`, a slow consumer, a shutdown).
    case server(CloseCode)
}

/// An inbound WebSocket message that was not delivered, and why.
public enum InboundRejection: Sendable {
    case binary
    case tooLarge(bytes: Int)
}

/// The result of queueing an outgoing frame.
public enum SendOutcome: Sendable, Equatable {
    case queued
    /// A droppable frame did not fit; it was discarded.
    case dropped
    /// A frame that may not be dropped did not fit: the connection is being closed (slow consumer).
    case overflow
    /// The connection is gone or closing.
    case gone
}

/// An outgoing WebSocket text frame. Its buffer has the transport's headroom in front of the payload and is
/// shared by every recipient of a broadcast (the headroom is rewritten per write, on the service thread).
public final class OutgoingFrame {
    /// Bytes reserved in front of the payload for the frame header (libwebsockets' `LWS_PRE`).
    public static let headroom = SignalServer.headroom

    var storage: [UInt8]
    public let droppable: Bool

    /// Wraps a buffer whose first `headroom` bytes are reserved.
    public init(bytesWithHeadroom: [UInt8], droppable: Bool = false) {
        precondition(bytesWithHeadroom.count >= Self.headroom)
        storage = bytesWithHeadroom
        self.droppable = droppable
    }

    public var payloadCount: Int { storage.count - Self.headroom }
}

/// A complete HTTP request: the head and the whole body.
public struct HTTPRequestMessage: Sendable {
    public var head: HTTPRequest
    public var body: [UInt8]
    public var remoteAddress: String
}

/// A complete HTTP response.
public struct HTTPResponseMessage: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: [UInt8]

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }
}

/// What the transport reports. Every method is called on the service thread and must not block.
public protocol SignalHandler: AnyObject {
    /// The server listens on `port` (the real one when 0 was asked for).
    func serverStarted(port: Int)
    /// A WebSocket on `/ws` was opened; `query` is the raw query string (may be empty).
    func connectionOpened(_ id: ConnectionID, query: String, remoteAddress: String)
    /// A complete text message within the size limit.
    func connectionReceived(_ id: ConnectionID, text: UnsafeBufferPointer<UInt8>)
    /// A message that was dropped by the transport.
    func connectionRejected(_ id: ConnectionID, _ rejection: InboundRejection)
    /// The server decided to close the WebSocket (`close`, a slow consumer, a heartbeat timeout). Called at
    /// once, before the socket is gone, so the connection can leave its room without delay; nothing more
    /// can be sent to it. `connectionClosed` follows when the socket is closed.
    func connectionClosing(_ id: ConnectionID, cause: CloseCause)
    /// The WebSocket is gone.
    func connectionClosed(_ id: ConnectionID, cause: CloseCause)
    /// An HTTP request; answer it (now or later) with `SignalServer.respond(_:with:)`.
    func httpRequest(_ id: ConnectionID, _ request: HTTPRequestMessage)
    /// Another thread called `SignalServer.wakeUp()`.
    func wake()
    /// Called about four times a second (monotonic seconds).
    func tick(now: Double)
    /// SIGTERM or SIGINT arrived; the transport closes every WebSocket with 1001 next.
    func shutdownRequested()
}
