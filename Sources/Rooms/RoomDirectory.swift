import Foundation

/// Limits that the rooms enforce; each has a command-line flag.
public struct RoomLimits: Sendable {
    public var maxPeersPerRoom = 50
    public var maxNameLength = 64
    public var maxChatLength = 4000
    /// How many recent chat messages `joined.chat` carries.
    public var chatHistory = 50
    /// At most one quality sample per peer per this many seconds is kept (PROTOCOL.md 3).
    public var qualityInterval = 2.0

    public init() {}
}

/// One message to one or more sessions. A message is encoded once, however many receive it.
public struct Delivery: Sendable {
    public let recipients: [SessionID]
    public let message: ServerMessage

    public init(_ recipients: [SessionID], _ message: ServerMessage) {
        self.recipients = recipients
        self.message = message
    }
}

/// A member of a live room (or a guest in its lobby), as the REST status and dashboards see it.
public struct RoomMemberSnapshot: Sendable {
    public let session: SessionID
    public let info: PeerInfo
    public let userID: String?
    public let guestID: String?
    public let joinedAt: Date
    public let quality: QualityStats?
    public let qualityAt: Date?
}

/// A live room of a stored call now.
public struct RoomSnapshot: Sendable {
    public let call: CallStatus
    public let policy: CallPolicy
    public let members: [RoomMemberSnapshot]
    public let lobby: [RoomMemberSnapshot]
}

/// All live rooms and who is in them: join (with roles, lobby, lock, bans for stored calls), leave, relay
/// routing, chat, typing, host actions, quality and the live call status. Pure state: every operation takes a
/// request and returns what must be sent to whom, and queues what the store must keep (`takeEffects`); no
/// I/O, no clocks other than the injected one. Owned by a single thread (the service thread).
public final class RoomDirectory {
    private final class Member {
        let session: SessionID
        let info: PeerInfo
        let joiner: Joiner
        let joinedAt: Date
        var quality: QualityStats?
        var qualityAt: Date?

        init(session: SessionID, info: PeerInfo, joiner: Joiner, joinedAt: Date) {
            self.session = session
            self.info = info
            self.joiner = joiner
            self.joinedAt = joinedAt
        }

        var userID: String? { if case .user(let id, _, _) = joiner { id } else { nil } }
        var guestID: String? { if case .guest(_, let id) = joiner { id } else { nil } }
    }

    private final class Room {
        let code: RoomCode
        var members: [Member] = []
        /// Guests waiting for a host to admit them (stored calls with a lobby).
        var lobby: [Member] = []
        var call: CallStatus
        /// nil for an open room (no stored call: no hosts, no lobby, nothing stored but chat).
        var policy: CallPolicy?
        var bans: Set<String>
        var recentChat: [ChatMessage]

        init(code: RoomCode, call: CallStatus, policy: CallPolicy?, bans: Set<String>, recentChat: [ChatMessage]) {
            self.code = code
            self.call = call
            self.policy = policy
            self.bans = bans
            self.recentChat = recentChat
        }

        var sessions: [SessionID] { members.map(\.session) }
        var hosts: [SessionID] { members.filter { $0.info.role == .host }.map(\.session) }

        func member(_ session: SessionID) -> Member? { members.first { $0.session == session } }
        func waiting(_ session: SessionID) -> Member? { lobby.first { $0.session == session } }
    }

    public let limits: RoomLimits
    /// With open rooms any well-formed code can be joined; otherwise only stored calls' codes.
    public let openRooms: Bool
    private let clock: @Sendable () -> Date
    private var rooms: [String: Room] = [:]
    private var roomsByCall: [String: Room] = [:]
    private var seats: [SessionID: Room] = [:]
    private var effects: [RoomEffect] = []

    public init(limits: RoomLimits = RoomLimits(), openRooms: Bool, clock: @escaping @Sendable () -> Date = Timestamp.now) {
        self.limits = limits
        self.openRooms = openRooms
        self.clock = clock
    }

    /// Number of live rooms.
    public var roomCount: Int { rooms.count }
    /// Number of sessions in rooms (lobbies included).
    public var memberCount: Int { seats.count }

    /// What the store must keep since the last call, in order.
    public func takeEffects() -> [RoomEffect] {
        defer { effects.removeAll() }
        return effects
    }

    /// Parses a code from `join`: a 9-character call code always; with open rooms any 1–64 characters of
    /// `A-Z a-z 0-9 - _`. Throws `bad_request` or `not_found`.
    public func resolve(code text: String) throws(ProtocolError) -> RoomCode {
        guard let code = RoomCode(parsing: text, allowAnyCode: openRooms) else {
            if openRooms {
                throw .badRequest("'room' must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")
            }
            throw .init(.notFound, "no call has the code '\(text.prefix(64))'")
        }
        return code
    }

    /// Whether a room with this key is live (in memory) now.
    public func isLive(_ code: RoomCode) -> Bool { rooms[code.key] != nil }

    /// The room a session is in (or waits in the lobby of).
    public func room(of session: SessionID) -> RoomCode? { seats[session]?.code }

    /// The peer id of a session in its room (members only).
    public func peer(of session: SessionID) -> PeerID? { seats[session]?.member(session)?.info.peer }

    /// Checks and normalises a display name.
    public func validateName(_ name: String) throws(ProtocolError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .badRequest("'name' must not be empty") }
        guard trimmed.count <= limits.maxNameLength else {
            throw .badRequest("'name' is longer than \(limits.maxNameLength) characters")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badRequest("'name' must not contain control characters")
        }
        return trimmed
    }

    // MARK: - Join and leave

    /// Adds `session` to the open room `code` (creating it, with `history` as its recent chat, if it is not
    /// live). Open rooms have no host: authenticated users join as `member`, others as `guest`.
    public func join(_ session: SessionID, code: RoomCode, name: String, role: Role = .guest, ref: String?,
                     history: [ChatMessage] = []) throws(ProtocolError) -> [Delivery]
    {
        try join(session, code: code, name: name, joiner: .anonymous, openRole: role, ref: ref, opening: nil,
                 history: history)
    }

    /// Adds `session` to the room of a stored call. When the room is not live, `opening` (loaded from the
    /// store) opens it. Refusals: `conflict` (call over, already in a room), `forbidden` (roles, kicked),
    /// `room_locked`, `room_full`. With the lobby on, a guest waits (`lobby`) until a host admits them.
    /// Without `opening`, a room that is not live opens as an open room with `history` as its recent chat.
    public func join(_ session: SessionID, code: RoomCode, name: String, joiner: Joiner, ref: String?,
                     opening: CallOpening?, history: [ChatMessage] = []) throws(ProtocolError) -> [Delivery]
    {
        try join(session, code: code, name: name, joiner: joiner, openRole: nil, ref: ref, opening: opening,
                 history: history)
    }

    private func join(_ session: SessionID, code: RoomCode, name: String, joiner: Joiner, openRole: Role?,
                      ref: String?, opening: CallOpening?, history: [ChatMessage]) throws(ProtocolError) -> [Delivery]
    {
        let name = try validateName(name)
        if let current = seats[session] {
            throw .init(.conflict, "already in room '\(current.code.display)'; leave it first")
        }
        let now = clock()
        let room: Room
        var isNew = false
        if let live = rooms[code.key] {
            room = live
        } else if let opening {
            room = Room(code: code, call: opening.call, policy: opening.policy, bans: opening.bans,
                        recentChat: Array(opening.history.suffix(limits.chatHistory)))
            isNew = true
        } else {
            let call = CallStatus(id: UUID().uuidString.lowercased(), code: code.display, status: .waiting,
                                  startedAt: nil, endedAt: nil, participants: 0, recording: false, locked: false)
            room = Room(code: code, call: call, policy: nil, bans: [], recentChat: Array(history.suffix(limits.chatHistory)))
            isNew = true
        }

        let role: Role
        if let policy = room.policy {
            if room.call.status == .ended || room.call.status == .cancelled {
                throw .init(.conflict, "the call is \(room.call.status.rawValue); it cannot be joined")
            }
            role = try joiner.role(in: policy)
            if let credential = joiner.credential, room.bans.contains(credential) {
                throw .init(.forbidden, "you were removed from this call")
            }
            if room.call.locked, role != .host {
                throw .init(.roomLocked, "the call is locked: nobody new may join")
            }
            if role != .host, room.members.count >= min(policy.maxParticipants, limits.maxPeersPerRoom) {
                throw .init(.roomFull, "the call is full (\(min(policy.maxParticipants, limits.maxPeersPerRoom)) participants)")
            }
        } else if let openRole {
            role = openRole
        } else if case .user = joiner {
            role = .member
        } else {
            role = .guest
        }
        guard room.members.count < limits.maxPeersPerRoom else {
            throw .init(.roomFull, "room '\(code.display)' is full (\(limits.maxPeersPerRoom) peers)")
        }
        if isNew {
            rooms[code.key] = room
            if let policy = room.policy { roomsByCall[policy.callID] = room }
        }

        let member = Member(session: session, info: PeerInfo(peer: PeerID(RandomID.make(prefix: "p", length: 10)),
                                                             name: name, role: role),
                            joiner: joiner, joinedAt: now)
        seats[session] = room
        if let policy = room.policy, policy.lobby, role == .guest {
            room.lobby.append(member)
            var deliveries = [Delivery([session], .lobby(room: code.display, ref: ref))]
            let hosts = room.hosts
            if !hosts.isEmpty {
                deliveries.append(Delivery(hosts, .lobbyWaiting(room: code.display, peer: member.info.peer,
                                                                name: member.info.name)))
            }
            return deliveries
        }
        return enter(member, room, ref: ref, now: now)
    }

    /// Seats a member (a joiner, or an admitted guest) and runs the status machine.
    private func enter(_ member: Member, _ room: Room, ref: String?, now: Date) -> [Delivery] {
        let others = room.sessions
        let peersBefore = room.members.map(\.info)
        room.members.append(member)
        room.call.participants = room.members.count
        let statusBefore = room.call
        if let policy = room.policy {
            effects.append(.participantJoined(callID: policy.callID, peer: member.info.peer, name: member.info.name,
                                              role: member.info.role, userID: member.userID, at: now))
            if room.call.status == .scheduled {
                try? CallLifecycle.apply(.memberJoined, to: &room.call, now: now)
                effects.append(.transition(callID: policy.callID, .memberJoined, at: now))
            }
        }
        if room.call.status == .waiting, room.members.count >= 2 {
            try? CallLifecycle.apply(.becameActive, to: &room.call, now: now)
            if let policy = room.policy { effects.append(.transition(callID: policy.callID, .becameActive, at: now)) }
        }
        var deliveries = [
            Delivery([member.session], .joined(room: room.code.display, peer: member.info.peer, role: member.info.role,
                                               peers: peersBefore, chat: room.recentChat, call: room.call, ref: ref)),
        ]
        if !others.isEmpty { deliveries.append(Delivery(others, .peerJoined(member.info))) }
        if room.call.status != statusBefore.status { deliveries.append(Delivery(room.sessions, .call(room.call))) }
        if member.info.role == .host {
            for waiting in room.lobby {
                deliveries.append(Delivery([member.session], .lobbyWaiting(room: room.code.display, peer: waiting.info.peer,
                                                                           name: waiting.info.name)))
            }
        }
        return deliveries
    }

    /// Removes `session` from its room (or its lobby); the others learn why. Returns nothing if it was in
    /// no room.
    public func leave(_ session: SessionID, reason: LeaveReason) -> [Delivery] {
        guard let room = seats[session] else { return [] }
        let now = clock()
        if let index = room.lobby.firstIndex(where: { $0.session == session }) {
            let waiting = room.lobby.remove(at: index)
            seats.removeValue(forKey: session)
            let hosts = room.hosts
            closeIfEmpty(room, now: now)
            return hosts.isEmpty ? [] : [Delivery(hosts, .peerLeft(peer: waiting.info.peer, reason: reason))]
        }
        guard let index = room.members.firstIndex(where: { $0.session == session }) else { return [] }
        let member = room.members.remove(at: index)
        seats.removeValue(forKey: session)
        room.call.participants = room.members.count
        if let policy = room.policy {
            effects.append(.participantLeft(callID: policy.callID, peer: member.info.peer, reason: reason, at: now))
        }
        closeIfEmpty(room, now: now)
        return room.members.isEmpty ? [] : [Delivery(room.sessions, .peerLeft(peer: member.info.peer, reason: reason))]
    }

    private func closeIfEmpty(_ room: Room, now: Date) {
        guard room.members.isEmpty, room.lobby.isEmpty else { return }
        rooms.removeValue(forKey: room.code.key)
        if let policy = room.policy {
            roomsByCall.removeValue(forKey: policy.callID)
            if room.call.status == .waiting || room.call.status == .active {
                effects.append(.emptied(callID: policy.callID, code: room.code, at: now))
            }
        }
    }

    // MARK: - Host actions

    /// The room and member of a host of a stored call, or why `session` may not act as one.
    private func host(_ session: SessionID, _ what: String) throws(ProtocolError) -> (Room, Member, CallPolicy) {
        guard let room = seats[session], let member = room.member(session) else {
            throw .init(.notInRoom, "join a call before sending '\(what)'")
        }
        guard let policy = room.policy else { throw .init(.forbidden, "open rooms have no host: '\(what)' is for calls") }
        guard member.info.role == .host else { throw .init(.forbidden, "only the call's host may send '\(what)'") }
        return (room, member, policy)
    }

    /// A host lets a guest in from the lobby: the guest gets `joined`, the others `peer-joined`.
    public func admit(_ session: SessionID, peer: String, ref: String?) throws(ProtocolError) -> [Delivery] {
        let (room, _, policy) = try host(session, "admit")
        guard let index = room.lobby.firstIndex(where: { $0.info.peer.rawValue == peer }) else {
            throw .init(.notFound, "no peer '\(peer.prefix(64))' waits in the lobby")
        }
        let capacity = min(policy.maxParticipants, limits.maxPeersPerRoom)
        guard room.members.count < capacity else {
            throw .init(.roomFull, "the call is full (\(capacity) participants); nobody more can be let in")
        }
        let guest = room.lobby.remove(at: index)
        var deliveries = enter(guest, room, ref: nil, now: clock())
        if let ref { deliveries.append(Delivery([session], .ack(ref: ref))) }
        return deliveries
    }

    /// A host removes a peer (a member or a guest in the lobby): it gets `peer-left` naming itself with
    /// reason `kicked` (its socket stays open), the others `peer-left` too, and its credential may not join
    /// this call again. Hosts cannot be kicked.
    public func kick(_ session: SessionID, peer: String, ref: String?) throws(ProtocolError) -> [Delivery] {
        let (room, _, policy) = try host(session, "kick")
        let now = clock()
        let target: Member
        let wasWaiting: Bool
        if let index = room.lobby.firstIndex(where: { $0.info.peer.rawValue == peer }) {
            target = room.lobby.remove(at: index)
            wasWaiting = true
        } else if let member = room.members.first(where: { $0.info.peer.rawValue == peer }) {
            guard member.info.role != .host else { throw .init(.forbidden, "a host cannot be kicked") }
            room.members.removeAll { $0 === member }
            room.call.participants = room.members.count
            target = member
            wasWaiting = false
            effects.append(.participantLeft(callID: policy.callID, peer: member.info.peer, reason: .kicked, at: now))
        } else {
            throw .init(.notFound, "no peer '\(peer.prefix(64))' in this call")
        }
        seats.removeValue(forKey: target.session)
        if let credential = target.joiner.credential {
            room.bans.insert(credential)
            effects.append(.banned(callID: policy.callID, credential: credential))
        }
        let notice = ServerMessage.peerLeft(peer: target.info.peer, reason: .kicked)
        var deliveries = [Delivery([target.session], notice)]
        let others = wasWaiting ? room.hosts : room.sessions
        if !others.isEmpty { deliveries.append(Delivery(others, notice)) }
        if let ref { deliveries.append(Delivery([session], .ack(ref: ref))) }
        return deliveries
    }

    /// Checks a host's `call` action against the live state before it goes to the store: the call id and
    /// the acting user. Refuses non-hosts (`forbidden`), recording where the company does not allow it, and
    /// steps the status machine refuses (`conflict` with the current status).
    public func authorize(_ session: SessionID, action: CallAction) throws(ProtocolError) -> (callID: String, userID: String?) {
        let (room, member, policy) = try host(session, "call")
        if action == .recordStart, !policy.recordingAllowed {
            throw .init(.forbidden, "the company does not allow recording")
        }
        var probe = room.call
        do {
            try CallLifecycle.apply(action, to: &probe, now: clock())
        } catch {
            throw error.protocolError
        }
        return (policy.callID, member.userID)
    }

    /// The stored call changed (by either door): the room takes the new state and every member gets `call`.
    /// A non-final status never moves the room back (its own steps may not be stored yet). When the call is
    /// over, everyone gets `call`, then `peer-left` with reason `ended` for every member (their own last:
    /// "you are out"), and the room closes; sockets stay open.
    public func update(callID: String, call stored: CallStatus, policy: CallPolicy?) -> [Delivery] {
        guard let room = roomsByCall[callID] else { return [] }
        if let policy { room.policy = policy }
        var call = room.call
        call.locked = stored.locked
        call.recording = stored.recording
        if stored.status == .ended || stored.status == .cancelled {
            call.status = stored.status
            call.endedAt = stored.endedAt
            call.startedAt = stored.startedAt ?? call.startedAt
        } else if call.status == .scheduled {
            call.status = stored.status
        }
        guard call != room.call else {
            return room.policy?.lobby == false ? admitEveryone(room) : []
        }
        room.call = call
        let everyone = room.sessions + room.lobby.map(\.session)
        var deliveries = [Delivery(room.sessions, .call(call))]
        guard call.status == .ended || call.status == .cancelled else {
            return deliveries + (room.policy?.lobby == false ? admitEveryone(room) : [])
        }
        if !room.lobby.isEmpty { deliveries.append(Delivery(room.lobby.map(\.session), .call(call))) }
        let now = clock()
        for member in room.members {
            effects.append(.participantLeft(callID: callID, peer: member.info.peer, reason: .ended, at: now))
        }
        deliveries += Self.endNotices(room)
        for waiting in room.lobby {
            deliveries.append(Delivery([waiting.session], .peerLeft(peer: waiting.info.peer, reason: .ended)))
        }
        for session in everyone { seats.removeValue(forKey: session) }
        room.members.removeAll()
        room.lobby.removeAll()
        rooms.removeValue(forKey: room.code.key)
        roomsByCall.removeValue(forKey: callID)
        return deliveries
    }

    /// `peer-left` (ended) for every member, to every member: the others first, one's own last.
    private static func endNotices(_ room: Room) -> [Delivery] {
        var deliveries: [Delivery] = []
        for recipient in room.members {
            for member in room.members where member !== recipient {
                deliveries.append(Delivery([recipient.session], .peerLeft(peer: member.info.peer, reason: .ended)))
            }
            deliveries.append(Delivery([recipient.session], .peerLeft(peer: recipient.info.peer, reason: .ended)))
        }
        return deliveries
    }

    /// With the lobby turned off, everyone waiting comes in.
    private func admitEveryone(_ room: Room) -> [Delivery] {
        var deliveries: [Delivery] = []
        let now = clock()
        while !room.lobby.isEmpty {
            deliveries += enter(room.lobby.removeFirst(), room, ref: nil, now: now)
        }
        return deliveries
    }

    // MARK: - Relay, chat, typing, quality

    /// Finds where a `signal` from `session` to peer `to` goes. The target must be in the sender's room.
    public func route(signalFrom session: SessionID, to: String) throws(ProtocolError) -> (from: PeerID, to: SessionID) {
        guard let room = seats[session], let sender = room.member(session) else {
            throw .init(.notInRoom, "join a room before sending 'signal'")
        }
        guard let target = room.members.first(where: { $0.info.peer.rawValue == to }) else {
            throw .init(.notFound, "no peer '\(to.prefix(64))' in room '\(room.code.display)'")
        }
        guard target.session != session else { throw .badRequest("a peer cannot signal itself") }
        return (sender.info.peer, target.session)
    }

    /// The session of a REST caller in a call's live room: the member with this user or guest id.
    public func session(inCall callID: String, userID: String?, guestID: String?) -> SessionID? {
        guard let room = roomsByCall[callID] else { return nil }
        return room.members.first { member in
            (userID != nil && member.userID == userID) || (guestID != nil && member.guestID == guestID)
        }?.session
    }

    /// Validates a chat message and stamps it; it is published with `publishChat` once stored.
    public func prepareChat(from session: SessionID, text: String) throws(ProtocolError) -> ChatMessage {
        guard let room = seats[session], let sender = room.member(session) else {
            throw .init(.notInRoom, "join a room before sending 'chat'")
        }
        guard !text.allSatisfy(\.isWhitespace) else { throw .badRequest("'text' must not be empty") }
        guard text.count <= limits.maxChatLength else {
            throw .badRequest("'text' is longer than \(limits.maxChatLength) characters")
        }
        return ChatMessage(id: UUID().uuidString.lowercased(), room: room.code.key, from: sender.info.peer,
                           name: sender.info.name, text: text, sentAt: clock())
    }

    /// Sends a stored chat message to everyone in its room (the sender's copy carries `ref`) and keeps it
    /// in the room's recent history. A room that emptied meanwhile gets nothing.
    public func publishChat(_ message: ChatMessage, sender: SessionID, ref: String?) -> [Delivery] {
        guard let room = rooms[message.room] else { return [] }
        room.recentChat.append(message)
        if room.recentChat.count > limits.chatHistory { room.recentChat.removeFirst(room.recentChat.count - limits.chatHistory) }
        guard !room.members.isEmpty else { return [] }
        let senderIsHere = room.member(sender)?.info.peer == message.from
        if senderIsHere, let ref {
            let others = room.sessions.filter { $0 != sender }
            var deliveries = [Delivery([sender], .chat(message, ref: ref))]
            if !others.isEmpty { deliveries.append(Delivery(others, .chat(message, ref: nil))) }
            return deliveries
        }
        return [Delivery(room.sessions, .chat(message, ref: nil))]
    }

    /// Tells the others in the room that `session` is typing (or stopped).
    public func typing(from session: SessionID, on: Bool) throws(ProtocolError) -> [Delivery] {
        guard let room = seats[session], let sender = room.member(session) else {
            throw .init(.notInRoom, "join a room before sending 'typing'")
        }
        let others = room.sessions.filter { $0 != session }
        return others.isEmpty ? [] : [Delivery(others, .typing(from: sender.info.peer, on: on))]
    }

    /// A member's quality sample: at most one per `limits.qualityInterval` per peer is kept (an extra one is
    /// dropped); a kept one becomes the peer's latest and goes to the hosts (not back to its sender).
    public func quality(from session: SessionID, _ stats: QualityStats) throws(ProtocolError) -> QualityOutcome {
        guard let room = seats[session], let member = room.member(session) else {
            throw .init(.notInRoom, "join a call before sending 'quality'")
        }
        let now = clock()
        if let last = member.qualityAt, now.timeIntervalSince(last) < limits.qualityInterval {
            return .dropped(peer: member.info.peer)
        }
        member.quality = stats
        member.qualityAt = now
        let hosts = room.hosts.filter { $0 != session }
        return .accepted(callID: room.policy?.callID, peer: member.info.peer,
                         deliveries: hosts.isEmpty ? [] : [Delivery(hosts, .quality(peer: member.info.peer, stats: stats))])
    }

    // MARK: - Live state for REST

    /// The live room of a stored call.
    public func snapshot(callID: String) -> RoomSnapshot? {
        guard let room = roomsByCall[callID], let policy = room.policy else { return nil }
        func view(_ member: Member) -> RoomMemberSnapshot {
            RoomMemberSnapshot(session: member.session, info: member.info, userID: member.userID, guestID: member.guestID,
                               joinedAt: member.joinedAt, quality: member.quality, qualityAt: member.qualityAt)
        }
        return RoomSnapshot(call: room.call, policy: policy, members: room.members.map(view), lobby: room.lobby.map(view))
    }

    /// The ids of the stored calls with a live room.
    public var liveCallIDs: [String] { Array(roomsByCall.keys) }
}
