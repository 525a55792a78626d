import Foundation
import HTTPTypes
import Logging
import RestBridge
import Rooms
import Signal
import Store

/// Everything the gateway needs to know at start.
public struct GatewayConfiguration: Sendable {
    public var signal = SignalConfiguration()
    public var limits = RoomLimits()
    public var openRooms = false
    /// Messages per second a connection may send (bursts of twice as many).
    public var messagesPerSecond = 100.0
    /// Error replies a connection may provoke in quick succession before it is closed with 1008.
    public var errorBudget = 30

    public init() {}
}

/// Store work that finished on a store thread, handed back to the service thread.
enum Completion: Sendable {
    case historyLoaded(RoomCode, Result<[ChatMessage], any Error>)
    case chatStored(ChatMessage, sender: SessionID, ref: String?, Result<Void, any Error>)
    case httpResponse(ConnectionID, RestResponse, started: Double, method: String, path: String)
    case authenticated(SessionID, ref: String?, Result<WebSocketIdentity, APIError>)
}

/// A locked queue from store threads to the service thread.
final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Completion] = []

    func post(_ item: Completion) { lock.withLock { items.append(item) } }

    func drain() -> [Completion] {
        lock.withLock {
            defer { items.removeAll() }
            return items
        }
    }
}

/// Connects the transport to the domain: one `Session` per WebSocket, client messages decoded and routed
/// into `RoomDirectory`, its deliveries encoded once and queued to each recipient, store work handed to the
/// store and its results brought back through the inbox. Lives on the service thread.
public final class Gateway: SignalHandler {
    private final class Session {
        let id: SessionID
        let connection: ConnectionID
        let publicID: String
        var messages: TokenBucket
        var errors: TokenBucket
        var joinPending = false
        /// The authenticated user (from `?token=` or `hello`), or nil for an anonymous connection.
        var user: User?
        var userJSON: [UInt8]?
        /// While a token is being checked: the frames that arrived meanwhile, handled in order afterwards.
        var framesWhileAuthenticating: [[UInt8]]?

        /// Authenticated users join open rooms as members; anonymous connections as guests. (Hosts come
        /// with stored calls.)
        var role: Role { user == nil ? .guest : .member }

        init(id: SessionID, connection: ConnectionID, now: Double, configuration: GatewayConfiguration) {
            self.id = id
            self.connection = connection
            publicID = RandomID.make(prefix: "s", length: 16)
            messages = TokenBucket(capacity: configuration.messagesPerSecond * 2,
                                   ratePerSecond: configuration.messagesPerSecond, now: now)
            errors = TokenBucket(capacity: Double(configuration.errorBudget), ratePerSecond: 1, now: now)
        }
    }

    private struct PendingJoin {
        let session: SessionID
        let name: String
        let ref: String?
    }

    public let configuration: GatewayConfiguration
    public let server: SignalServer
    private let rooms: RoomDirectory
    private let store: any ChatStore
    private let rest: RestBridge
    private let logger: Logger
    private let inbox = Inbox()
    private var sessions: [SessionID: Session] = [:]
    private var pendingJoins: [RoomCode: [PendingJoin]] = [:]
    private var shuttingDown = false
    private var now = 0.0
    private var metrics = GatewayMetrics()

    public init(configuration: GatewayConfiguration, store: any ChatStore, rest: RestBridge, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.rest = rest
        server = SignalServer(configuration: configuration.signal, logger: logger)
        rooms = RoomDirectory(limits: configuration.limits, openRooms: configuration.openRooms)
        server.setHandler(self)
    }

    /// Serves until SIGTERM/SIGINT (or `server.requestShutdown()`), then waits for the store's writes.
    public func run() throws {
        try server.run()
        try store.close()
        logger.info("stopped")
    }

    // MARK: - SignalHandler

    public func serverStarted(port: Int) {
        logger.notice("listening on http://\(configuration.signal.host):\(port)",
                      metadata: ["open_rooms": "\(configuration.openRooms)",
                                 "heartbeat": "\(configuration.signal.heartbeatSeconds)"])
    }

    public func connectionOpened(_ id: ConnectionID, query: String, remoteAddress: String) {
        now = Self.monotonicNow()
        let session = Session(id: SessionID(id.rawValue), connection: id, now: now, configuration: configuration)
        sessions[session.id] = session
        metrics.connectionsOpened += 1
        logger.debug("connected", metadata: ["connection": "\(id)", "remote": "\(remoteAddress)"])
        if let token = Self.queryValue("token", in: query) {
            authenticate(session, token: token, ref: nil)
        } else {
            sendWelcome(session)
        }
    }

    /// Checks a token off the service thread; frames that arrive meanwhile wait, then run in order.
    private func authenticate(_ session: Session, token: String, ref: String?) {
        session.framesWhileAuthenticating = session.framesWhileAuthenticating ?? []
        let sessionID = session.id
        rest.authenticateWebSocket(token: token) { [inbox, server] result in
            inbox.post(.authenticated(sessionID, ref: ref, result))
            server.wakeUp()
        }
    }

    private func finishAuthentication(_ sessionID: SessionID, ref: String?, _ result: Result<WebSocketIdentity, APIError>) {
        guard let session = sessions[sessionID] else { return }
        let waiting = session.framesWhileAuthenticating ?? []
        session.framesWhileAuthenticating = nil
        switch result {
        case .success(let identity):
            session.user = identity.user
            session.userJSON = identity.userJSON
            logger.debug("authenticated", metadata: ["connection": "\(session.connection)", "user": "\(identity.user.id)"])
            sendWelcome(session)
            for frame in waiting {
                guard sessions[sessionID] != nil else { break }
                frame.withUnsafeBufferPointer { connectionReceived(session.connection, text: $0) }
            }
        case .failure(let error):
            // PROTOCOL.md 3: an invalid token answers `unauthorized` (no welcome), then close 1008.
            let message = error.code == "internal" ? "the token could not be checked" : error.message
            send(.error(ProtocolError(.unauthorized, message, ref: ref)), to: session.connection)
            server.close(session.connection, code: .policyViolation, reason: "unauthorized")
        }
    }

    private func sendWelcome(_ session: Session) {
        send(.welcome(session: session.publicID, resume: RandomID.make(prefix: "r", length: 24),
                      heartbeat: configuration.signal.heartbeatSeconds, user: session.userJSON), to: session.connection)
    }

    public func connectionReceived(_ id: ConnectionID, text: UnsafeBufferPointer<UInt8>) {
        now = Self.monotonicNow()
        guard let session = sessions[SessionID(id.rawValue)] else { return }
        if session.framesWhileAuthenticating != nil {
            if session.framesWhileAuthenticating!.count < 64 {
                session.framesWhileAuthenticating!.append(Array(text))
            } else {
                refuse(session, ProtocolError(.rateLimited, "wait for 'welcome' before sending more"))
            }
            return
        }
        metrics.messagesReceived += 1
        guard session.messages.take(now: now) else {
            refuse(session, ProtocolError(.rateLimited, "more than \(Int(configuration.messagesPerSecond)) messages per second"))
            return
        }
        do {
            let request = try ClientRequest.decode(text)
            try handle(request, from: session, frame: text)
        } catch {
            refuse(session, error)
        }
    }

    public func connectionRejected(_ id: ConnectionID, _ rejection: InboundRejection) {
        now = Self.monotonicNow()
        guard let session = sessions[SessionID(id.rawValue)] else { return }
        switch rejection {
        case .binary:
            refuse(session, .badRequest("binary frames are not accepted; send JSON text"))
        case .tooLarge(let bytes):
            refuse(session, ProtocolError(.tooLarge, "message of \(bytes) bytes is over the limit of \(configuration.signal.maxMessageBytes)"))
        }
    }

    public func connectionClosing(_ id: ConnectionID, cause: CloseCause) {
        connectionClosed(id, cause: cause)
    }

    public func connectionClosed(_ id: ConnectionID, cause: CloseCause) {
        guard let session = sessions.removeValue(forKey: SessionID(id.rawValue)) else { return }
        logger.debug("disconnected", metadata: ["connection": "\(id)", "cause": "\(cause)"])
        let deliveries = rooms.leave(session.id, reason: cause == .idle ? .timeout : .left)
        if !shuttingDown { deliver(deliveries) }
    }

    public func httpRequest(_ id: ConnectionID, _ request: HTTPRequestMessage) {
        let started = Self.monotonicNow()
        if request.head.path?.prefix(while: { $0 != "?" }) == "/metrics" {
            // The live counters belong to this thread: answered here, not by the REST workers.
            var fields = HTTPFields()
            guard request.head.method == .get || request.head.method == .head else {
                fields[.contentType] = "application/json"
                fields[.allow] = "GET, HEAD"
                metrics.httpResponses[4, default: 0] += 1
                let body = #"{"error":{"code":"method_not_allowed","message":"only GET and HEAD on /metrics"}}"#
                server.respond(id, with: HTTPResponseMessage(status: .methodNotAllowed, headerFields: fields,
                                                             body: Array(body.utf8)))
                return
            }
            fields[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = metrics.render(.init(connections: server.connectionCount, rooms: rooms.roomCount,
                                            roomMembers: rooms.memberCount, queuedBytes: server.queuedBytes))
            metrics.httpResponses[2, default: 0] += 1
            server.respond(id, with: HTTPResponseMessage(status: .ok, headerFields: fields, body: Array(text.utf8)))
            return
        }
        let method = request.head.method.rawValue, path = request.head.path ?? ""
        rest.handle(request.head, body: request.body, remoteAddress: request.remoteAddress) { [inbox, server] response in
            // Route handlers answer on worker threads; the response is written on the service thread.
            inbox.post(.httpResponse(id, response, started: started, method: method, path: path))
            server.wakeUp()
        }
    }

    public func wake() {
        for completion in inbox.drain() {
            switch completion {
            case .historyLoaded(let code, let result):
                finishJoins(code, result)
            case .authenticated(let sessionID, let ref, let result):
                finishAuthentication(sessionID, ref: ref, result)
            case .httpResponse(let id, let response, let started, let method, let path):
                metrics.httpResponses[response.status.code / 100, default: 0] += 1
                logger.info("http", metadata: [
                    "method": "\(method)", "path": "\(path.prefix { $0 != "?" })", "status": "\(response.status.code)",
                    "ms": "\(String(format: "%.2f", (Self.monotonicNow() - started) * 1000))",
                    "user": "\(response.userID ?? "-")",
                ])
                server.respond(id, with: HTTPResponseMessage(status: response.status, headerFields: response.headerFields,
                                                             body: response.body))
            case .chatStored(let message, let sender, let ref, let result):
                switch result {
                case .success:
                    metrics.chatMessagesStored += 1
                    deliver(rooms.publishChat(message, sender: sender, ref: ref))
                case .failure(let error):
                    logger.error("chat not stored", metadata: ["room": "\(message.room)", "error": "\(error)"])
                    if let session = sessions[sender] {
                        refuse(session, ProtocolError(.internal, "the message could not be stored; it was not sent",
                                                      ref: ref))
                    }
                }
            }
        }
    }

    public func tick(now: Double) {}

    public func shutdownRequested() {
        shuttingDown = true
    }

    // MARK: - Requests

    private func handle(_ request: ClientRequest, from session: Session, frame: UnsafeBufferPointer<UInt8>)
        throws(ProtocolError)
    {
        let ref = request.ref
        do throws(ProtocolError) {
            switch request.message {
            case .hello(let token, let resume):
                if let token {
                    authenticate(session, token: token, ref: ref)
                } else if resume != nil {
                    throw ProtocolError(.notFound, "unknown resume token")
                } else {
                    sendWelcome(session)
                }

            case .join(let text, let name):
                let code = try rooms.resolve(code: text)
                guard let given = name ?? session.user?.name else { throw ProtocolError.badRequest("missing field 'name'") }
                let name = try rooms.validateName(given)
                if session.joinPending || rooms.room(of: session.id) != nil {
                    throw ProtocolError(.conflict, "already in a room; leave it first")
                }
                if rooms.isLive(code) {
                    deliver(try rooms.join(session.id, code: code, name: name, role: session.role, ref: ref))
                } else {
                    // The room's chat history comes from the store before the room opens.
                    session.joinPending = true
                    let first = pendingJoins[code] == nil
                    pendingJoins[code, default: []].append(PendingJoin(session: session.id, name: name, ref: ref))
                    if first {
                        store.recentChat(room: code.key, limit: configuration.limits.chatHistory) { [inbox, server] result in
                            inbox.post(.historyLoaded(code, result))
                            server.wakeUp()
                        }
                    }
                }

            case .leave:
                guard rooms.room(of: session.id) != nil else {
                    throw ProtocolError(.notInRoom, "not in a room")
                }
                deliver(rooms.leave(session.id, reason: .left))
                acknowledge(ref, session)

            case .signal(let to, let dataRange):
                let route = try rooms.route(signalFrom: session.id, to: to)
                let data = UnsafeBufferPointer(rebasing: frame[dataRange])
                let bytes = ServerMessage.encodeSignal(from: route.from, data: data, headroom: OutgoingFrame.headroom)
                switch server.send(OutgoingFrame(bytesWithHeadroom: bytes), to: ConnectionID(route.to.rawValue)) {
                case .queued:
                    metrics.signalsRelayed += 1
                    acknowledge(ref, session)
                case .overflow, .gone, .dropped:
                    // The target could not keep up and is being disconnected (it has left the room).
                    throw ProtocolError(.notFound, "peer '\(to.prefix(64))' is gone: it could not keep up and was disconnected")
                }

            case .chat(let text):
                let message = try rooms.prepareChat(from: session.id, text: text)
                let sender = session.id
                store.appendChat(message) { [inbox, server] result in
                    inbox.post(.chatStored(message, sender: sender, ref: ref, result))
                    server.wakeUp()
                }

            case .typing(let on):
                deliver(try rooms.typing(from: session.id, on: on))
                acknowledge(ref, session)

            case .unsupported(let type):
                throw ProtocolError.badRequest("'\(type)' is not supported by this server yet")
            }
        } catch {
            var error = error
            if error.ref == nil { error.ref = ref }
            throw error
        }
    }

    private func finishJoins(_ code: RoomCode, _ result: Result<[ChatMessage], any Error>) {
        guard let waiting = pendingJoins.removeValue(forKey: code) else { return }
        let history: [ChatMessage]
        switch result {
        case .success(let messages):
            history = messages
        case .failure(let error):
            logger.error("chat history not loaded", metadata: ["room": "\(code.key)", "error": "\(error)"])
            history = []
        }
        for pending in waiting {
            guard let session = sessions[pending.session] else { continue }
            session.joinPending = false
            do {
                deliver(try rooms.join(session.id, code: code, name: pending.name, role: session.role, ref: pending.ref,
                                       history: history))
            } catch {
                refuse(session, error)
            }
        }
    }

    // MARK: - Output

    private func acknowledge(_ ref: String?, _ session: Session) {
        if let ref { send(.ack(ref: ref), to: session.connection) }
    }

    /// Sends an error; a connection that provokes too many in quick succession is closed with 1008.
    private func refuse(_ session: Session, _ error: ProtocolError) {
        metrics.errorsSent[error.code, default: 0] += 1
        send(.error(error), to: session.connection)
        if !session.errors.take(now: now) {
            logger.info("closing misbehaving connection", metadata: ["connection": "\(session.connection)"])
            server.close(session.connection, code: .policyViolation, reason: "too many invalid messages")
        }
    }

    private func send(_ message: ServerMessage, to connection: ConnectionID) {
        let frame = OutgoingFrame(bytesWithHeadroom: message.encode(headroom: OutgoingFrame.headroom),
                                  droppable: message.isDroppable)
        server.send(frame, to: connection)
    }

    private func deliver(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            let frame = OutgoingFrame(bytesWithHeadroom: delivery.message.encode(headroom: OutgoingFrame.headroom),
                                      droppable: delivery.message.isDroppable)
            for recipient in delivery.recipients {
                server.send(frame, to: ConnectionID(recipient.rawValue))
            }
        }
    }

    // MARK: - Helpers

    static func queryValue(_ name: String, in query: String) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.first == Substring(name) {
                return parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            }
        }
        return nil
    }

    static func monotonicNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
