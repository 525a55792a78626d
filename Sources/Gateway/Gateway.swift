import Foundation
import HTTPTypes
import Logging
import Presence
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
    /// Seconds a stored call's room may stay empty before the call ends (PROTOCOL.md 3: default 60).
    public var callIdleGrace = 60.0
    /// How often (seconds) the login sessions and API keys behind open WebSockets are checked again: a
    /// connection whose session was revoked (logout, password change, deleted user…) is closed.
    public var credentialCheckSeconds = 30.0
    /// Seconds a user stays online with no device connected, so a reconnect is not seen as offline/online.
    public var presenceGrace = 30.0
    /// Most user ids one connection may follow with `subscribe`.
    public var maxPresenceSubscriptions = 2000
    /// Seconds a session whose connection timed out (no heartbeat answered) waits for its client to resume
    /// it (PROTOCOL.md 1.5); 0: no resume, the peer leaves at once.
    public var resumeGrace = 20.0
    /// Messages kept for a session while it is away; more and it ends (its peer leaves with `timeout`).
    public var maxPendingMessages = 512

    public init() {}
}

/// Store work that finished on a store thread, handed back to the service thread.
enum Completion: Sendable {
    /// A room about to open: its stored call (nil: none has this code) and chat history.
    case roomLoaded(RoomCode, Result<RoomLoad, any Error>)
    /// A host's `call` action, stored (or refused by the store).
    case callActionStored(SessionID, ref: String?, Result<StoredCallChange, any Error>)
    /// A store write a request waits for before its `ack`.
    case stored(SessionID, ref: String?, what: String, Result<Void, any Error>)
    /// A `subscribe`, resolved against the directory.
    case presenceScope(SessionID, ref: String?, Result<PresenceScope, APIError>)
    /// Which login sessions and API keys behind open WebSockets are still good.
    case credentialsChecked(Result<CredentialCheck, any Error>)
    /// Work for the service thread from a REST worker (`LiveCalls`).
    case live(@Sendable (Gateway) -> Void)
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
    final class Session {
        let id: SessionID
        /// The connection it is on; nil while it is away (its connection dropped) and may be resumed.
        var connection: ConnectionID?
        let publicID: String
        /// What `hello` presents to resume this session; a new one with every `welcome` after a resume.
        var resumeToken: String
        /// While away: when the session ends (monotonic seconds).
        var awayUntil: Double?
        /// While away: the frames addressed to it, in order.
        var pending: [OutgoingFrame] = []
        var messages: TokenBucket
        var errors: TokenBucket
        var joinPending = false
        /// The authenticated user (from `?token=` or `hello`), or nil for an anonymous connection.
        var user: User?
        var userJSON: [UInt8]?
        /// The guest of a guest token.
        var guest: GuestPass?
        /// The login session or API key the user proved themselves with (checked again now and then).
        var authSessionID: String?
        var apiKeyID: String?
        /// Whether the user holds an assigned, unexpired license (checked when the token was).
        var licensed = false
        /// While a token is being checked: the frames that arrived meanwhile, handled in order afterwards.
        var framesWhileAuthenticating: [[UInt8]]?

        /// Who this connection is when it joins a room.
        var joiner: Joiner {
            if let user { return .user(id: user.id, companyID: user.companyId, licensed: licensed) }
            if let guest { return .guest(callID: guest.callID, guestID: guest.guestID) }
            return .anonymous
        }

        init(id: SessionID, connection: ConnectionID, now: Double, configuration: GatewayConfiguration) {
            self.id = id
            self.connection = connection
            publicID = RandomID.make(prefix: "s", length: 16)
            resumeToken = RandomID.make(prefix: "r", length: 24)
            messages = TokenBucket(capacity: configuration.messagesPerSecond * 2,
                                   ratePerSecond: configuration.messagesPerSecond, now: now)
            errors = TokenBucket(capacity: Double(configuration.errorBudget), ratePerSecond: 1, now: now)
        }
    }

    struct PendingJoin {
        let session: SessionID
        let name: String
        let ref: String?
    }

    public let configuration: GatewayConfiguration
    public let server: SignalServer
    let rooms: RoomDirectory
    /// Who is online, on how many devices, and who follows whom.
    let presence: PresenceDirectory<SessionID>
    let store: any ChatStore
    let calls: any CallStore
    let accounts: any AccountStore
    let rest: RestBridge
    /// Store work of the live calls, one at a time and in order: room loads, host actions, participants'
    /// joins and leaves, automatic status steps, kicks, ends of idle calls.
    let callWork: OperationQueue
    /// Stored calls whose rooms emptied: when their grace period ends (monotonic seconds), they end.
    var idleCalls: [String: (emptiedAt: Date, deadline: Double)] = [:]
    /// When the credentials behind open WebSockets were last sent for a check (monotonic), and whether
    /// one is in flight.
    var lastCredentialCheck = 0.0
    var credentialCheckInFlight = false
    let logger: Logger
    let inbox = Inbox()
    var sessions: [SessionID: Session] = [:]
    /// Which session each open WebSocket carries (a resumed session moves to a new connection).
    var sessionOnConnection: [ConnectionID: SessionID] = [:]
    var sessionByResumeToken: [String: SessionID] = [:]
    var pendingJoins: [RoomCode: [PendingJoin]] = [:]
    var shuttingDown = false
    var now = 0.0
    var metrics = GatewayMetrics()

    public init(configuration: GatewayConfiguration, store: any ChatStore, calls: any CallStore,
                accounts: any AccountStore, rest: RestBridge, logger: Logger)
    {
        self.configuration = configuration
        self.store = store
        self.calls = calls
        self.accounts = accounts
        self.logger = logger
        self.rest = rest
        server = SignalServer(configuration: configuration.signal, logger: logger)
        rooms = RoomDirectory(limits: configuration.limits, openRooms: configuration.openRooms)
        presence = PresenceDirectory(grace: configuration.presenceGrace, clock: Timestamp.now)
        let queue = OperationQueue()
        queue.name = "switchboard.calls"
        queue.maxConcurrentOperationCount = 1
        callWork = queue
        server.setHandler(self)
        rest.attach(live: LiveCallsPort(gateway: self))
    }

    /// Serves until SIGTERM/SIGINT (or `server.requestShutdown()`), then waits for the store's writes.
    public func run() throws {
        try server.run()
        // What was accepted is finished before the store closes: REST work in flight (a queued password-reset
        // mail, a write), then the live calls' store work.
        rest.finishWork()
        callWork.waitUntilAllOperationsAreFinished()
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
        sessionOnConnection[id] = session.id
        sessionByResumeToken[session.resumeToken] = session.id
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
            session.guest = identity.guest
            session.licensed = identity.licensed
            session.authSessionID = identity.sessionID
            session.apiKeyID = identity.apiKeyID
            if let user = identity.user {
                deliver(presence.connected(session.id, user: user.id, company: user.companyId))
            } else {
                deliver(presence.disconnected(session.id))  // a guest token replaced a user's
            }
            logger.debug("authenticated", metadata: [
                "session": "\(session.id)",
                "user": "\(identity.user?.id ?? identity.guest.map { "guest " + $0.guestID } ?? "-")",
            ])
            sendWelcome(session)
            for frame in waiting {
                guard sessions[sessionID] != nil, let connection = session.connection else { break }
                frame.withUnsafeBufferPointer { connectionReceived(connection, text: $0) }
            }
        case .failure(let error):
            // PROTOCOL.md 3: an invalid token answers `unauthorized` (no welcome), then close 1008.
            let message = error.code == "internal" ? "the token could not be checked" : error.message
            send(.error(ProtocolError(.unauthorized, message, ref: ref)), to: session)
            close(session, code: .policyViolation, reason: "unauthorized")
        }
    }

    func sendWelcome(_ session: Session) {
        send(.welcome(session: session.publicID, resume: session.resumeToken,
                      heartbeat: configuration.signal.heartbeatSeconds, user: session.userJSON), to: session)
    }

    public func connectionReceived(_ id: ConnectionID, text: UnsafeBufferPointer<UInt8>) {
        now = Self.monotonicNow()
        guard let session = sessionOnConnection[id].flatMap({ sessions[$0] }) else { return }
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
        guard let session = sessionOnConnection[id].flatMap({ sessions[$0] }) else { return }
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
        // A session that moved to another connection (resumed there) is not this connection's any more.
        guard let sessionID = sessionOnConnection.removeValue(forKey: id), let session = sessions[sessionID],
              session.connection == id
        else { return }
        logger.debug("disconnected", metadata: ["connection": "\(id)", "cause": "\(cause)"])
        if cause == .idle, configuration.resumeGrace > 0, !shuttingDown {
            // A heartbeat timeout (the network went away, most likely): the rooms and presence keep the
            // session for the grace period and messages for it wait (PROTOCOL.md 1.5). A socket closed by
            // the client, or dropped with a protocol error (lws closes those itself, and they look the
            // same as a lost socket here), ends at once.
            session.connection = nil
            session.awayUntil = Self.monotonicNow() + configuration.resumeGrace
            return
        }
        end(session, reason: cause == .idle ? .timeout : .left)
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
            let callRooms = rooms.liveCallIDs.compactMap { rooms.snapshot(callID: $0) }
            let text = metrics.render(.init(connections: server.connectionCount, rooms: rooms.roomCount,
                                            roomMembers: rooms.memberCount, callRooms: callRooms.count,
                                            lobbyWaiting: callRooms.reduce(0) { $0 + $1.lobby.count },
                                            queuedBytes: server.queuedBytes))
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
            case .roomLoaded(let code, let result):
                finishJoins(code, result)
            case .callActionStored(let sessionID, let ref, let result):
                finishCallAction(sessionID, ref: ref, result)
            case .stored(let sessionID, let ref, let what, let result):
                guard let session = sessions[sessionID] else { continue }
                switch result {
                case .success: acknowledge(ref, session)
                case .failure(let error):
                    logger.error("\(what) not stored", metadata: ["error": "\(error)"])
                    refuse(session, ProtocolError(.internal, "the \(what) could not be stored", ref: ref))
                }
            case .live(let work):
                work(self)
            case .presenceScope(let sessionID, let ref, let result):
                finishSubscribe(sessionID, ref: ref, result)
            case .credentialsChecked(let result):
                credentialCheckInFlight = false
                applyCredentialCheck(result)
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
        flushEffects()
    }

    public func tick(now: Double) {
        endIdleCalls(now: now)
        endAwaySessions(now: now)
        deliver(presence.expire())
        checkCredentials(now: now)
    }

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
            case .hello(let token, let resumeToken):
                if let resumeToken {
                    try resume(resumeToken, on: session, ref: ref)
                } else if let token {
                    authenticate(session, token: token, ref: ref)
                } else {
                    sendWelcome(session)
                }

            case .join(let text, let name):
                let code = try rooms.resolve(code: text)
                // A guest token carries the guest's name; users default to their own.
                guard let given = session.guest?.name ?? name ?? session.user?.name else {
                    throw ProtocolError.badRequest("missing field 'name'")
                }
                let name = try rooms.validateName(given)
                if session.joinPending || rooms.room(of: session.id) != nil {
                    throw ProtocolError(.conflict, "already in a room; leave it first")
                }
                if rooms.isLive(code) {
                    deliver(try rooms.join(session.id, code: code, name: name, joiner: session.joiner, ref: ref,
                                           opening: nil))
                    flushEffects()
                } else {
                    // The room's stored call and chat history come from the store before the room opens.
                    session.joinPending = true
                    let first = pendingJoins[code] == nil
                    pendingJoins[code, default: []].append(PendingJoin(session: session.id, name: name, ref: ref))
                    if first { loadRoom(code) }
                }

            case .leave:
                guard rooms.room(of: session.id) != nil else {
                    throw ProtocolError(.notInRoom, "not in a room")
                }
                deliver(rooms.leave(session.id, reason: .left))
                flushEffects()
                acknowledge(ref, session)

            case .signal(let to, let dataRange):
                let route = try rooms.route(signalFrom: session.id, to: to)
                let data = UnsafeBufferPointer(rebasing: frame[dataRange])
                let bytes = ServerMessage.encodeSignal(from: route.from, data: data, headroom: OutgoingFrame.headroom)
                switch send(OutgoingFrame(bytesWithHeadroom: bytes), to: route.to) {
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

            case .quality(let stats):
                switch try rooms.quality(from: session.id, stats) {
                case .dropped:
                    acknowledge(ref, session)
                case .accepted(let callID, let peer, let deliveries):
                    metrics.qualitySamplesKept += 1
                    deliver(deliveries)
                    guard let callID else {
                        acknowledge(ref, session)
                        break
                    }
                    let sessionID = session.id, at = Timestamp.now()
                    onCallWork { [calls] in
                        .stored(sessionID, ref: ref, what: "quality sample",
                                Result { try calls.addQualitySample(callID: callID, peerID: peer.rawValue, stats, at: at) })
                    }
                }

            case .admit(let peer):
                deliver(try rooms.admit(session.id, peer: peer, ref: ref))
                flushEffects()

            case .kick(let peer):
                deliver(try rooms.kick(session.id, peer: peer, ref: ref))
                flushEffects()

            case .call(let action):
                let (callID, userID) = try rooms.authorize(session.id, action: action)
                let sessionID = session.id
                onCallWork { [calls, accounts] in
                    .callActionStored(sessionID, ref: ref, Result {
                        let now = Timestamp.now()
                        let call = try calls.transitionCall(id: callID, action, actorID: userID, at: now, now: now)
                        let allowed = try accounts.company(id: call.companyId)?.recordingAllowed ?? false
                        return StoredCallChange(call: call, recordingAllowed: allowed)
                    })
                }

            case .presence(let state):
                guard session.user != nil else {
                    throw ProtocolError(.unauthorized, "presence is for signed-in users; send 'hello' with a token")
                }
                deliver(presence.setState(of: session.id, state))
                acknowledge(ref, session)

            case .subscribe(let users, let company):
                guard let user = session.user else {
                    throw ProtocolError(.unauthorized, "presence is for signed-in users; send 'hello' with a token")
                }
                let sessionID = session.id
                rest.presenceScope(caller: user, userIDs: users, companyID: company) { [inbox, server] result in
                    inbox.post(.presenceScope(sessionID, ref: ref, result))
                    server.wakeUp()
                }

            case .unsupported(let type):
                throw ProtocolError.badRequest("'\(type)' is not supported by this server yet")
            }
        } catch {
            var error = error
            if error.ref == nil { error.ref = ref }
            throw error
        }
    }

    // MARK: - Output

    func acknowledge(_ ref: String?, _ session: Session) {
        if let ref { send(.ack(ref: ref), to: session) }
    }

    /// Closes a session's connection (the session then ends, never waits for a resume); a session that is
    /// away ends at once.
    func close(_ session: Session, code: CloseCode, reason: String) {
        guard let connection = session.connection else {
            end(session, reason: .left)
            return
        }
        server.close(connection, code: code, reason: reason)
    }

    /// Sends an error; a connection that provokes too many in quick succession is closed with 1008.
    func refuse(_ session: Session, _ error: ProtocolError) {
        metrics.errorsSent[error.code, default: 0] += 1
        send(.error(error), to: session)
        if !session.errors.take(now: now) {
            logger.info("closing misbehaving connection", metadata: ["session": "\(session.id)"])
            close(session, code: .policyViolation, reason: "too many invalid messages")
        }
    }

    func send(_ message: ServerMessage, to session: Session) {
        send(OutgoingFrame(bytesWithHeadroom: message.encode(headroom: OutgoingFrame.headroom),
                           droppable: message.isDroppable), to: session.id)
    }

    /// Queues a frame to a session's connection or, while the session is away, keeps it for its resume
    /// (droppable frames are dropped; too many kept, and the session ends).
    @discardableResult
    func send(_ frame: OutgoingFrame, to sessionID: SessionID) -> SendOutcome {
        guard let session = sessions[sessionID] else { return .gone }
        if let connection = session.connection { return server.send(frame, to: connection) }
        if frame.droppable { return .dropped }
        guard session.pending.count < configuration.maxPendingMessages else {
            end(session, reason: .timeout)
            return .gone
        }
        session.pending.append(frame)
        return .queued
    }

    func deliver(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            let frame = OutgoingFrame(bytesWithHeadroom: delivery.message.encode(headroom: OutgoingFrame.headroom),
                                      droppable: delivery.message.isDroppable)
            for recipient in delivery.recipients {
                send(frame, to: recipient)
            }
        }
    }

    // MARK: - Helpers

    /// Users of a company who are online (a device connected, or within the presence grace period).
    func usersOnline(companyID: String) -> Int { presence.onlineCount(company: companyID) }

    /// Sends presence changes to their subscribers. Not droppable under backpressure: a lost change would
    /// leave a stale state on the other side.
    func deliver(_ updates: [PresenceUpdate<SessionID>]) {
        for update in updates {
            let frame = OutgoingFrame(bytesWithHeadroom: ServerMessage.presence(update.info).encode(headroom: OutgoingFrame.headroom))
            for recipient in update.recipients { send(frame, to: recipient) }
        }
    }

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
