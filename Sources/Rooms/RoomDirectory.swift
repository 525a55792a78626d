import Foundation

/// Limits that the rooms enforce; each has a command-line flag.
public struct RoomLimits: Sendable {
    public var maxPeersPerRoom = 50
    public var maxNameLength = 64
    public var maxChatLength = 4000
    /// How many recent chat messages `joined.chat` carries.
    public var chatHistory = 50

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

/// All live rooms and who is in them: join, leave, relay routing, chat, typing and the live call status.
/// Pure state: every operation takes a request and returns what must be sent to whom; no I/O, no clocks
/// other than the injected one. Owned by a single thread (the service thread).
public final class RoomDirectory {
    private struct Member {
        let session: SessionID
        let info: PeerInfo
    }

    private final class Room {
        let code: RoomCode
        var members: [Member] = []
        var call: CallStatus
        var recentChat: [ChatMessage]

        init(code: RoomCode, call: CallStatus, recentChat: [ChatMessage]) {
            self.code = code
            self.call = call
            self.recentChat = recentChat
        }

        var sessions: [SessionID] { members.map(\.session) }

        func member(_ session: SessionID) -> Member? { members.first { $0.session == session } }
    }

    public let limits: RoomLimits
    /// With open rooms any well-formed code can be joined; otherwise only codes `knownCall` accepts.
    public let openRooms: Bool
    private let clock: @Sendable () -> Date
    private var rooms: [String: Room] = [:]
    private var seats: [SessionID: Room] = [:]

    public init(limits: RoomLimits = RoomLimits(), openRooms: Bool, clock: @escaping @Sendable () -> Date = Date.init) {
        self.limits = limits
        self.openRooms = openRooms
        self.clock = clock
    }

    /// Number of live rooms.
    public var roomCount: Int { rooms.count }
    /// Number of sessions in rooms.
    public var memberCount: Int { seats.count }

    /// Parses a code from `join` and checks that it may be joined. Throws `bad_request` or `not_found`.
    public func resolve(code text: String) throws(ProtocolError) -> RoomCode {
        guard let code = RoomCode(parsing: text, allowAnyCode: openRooms) else {
            if openRooms {
                throw .badRequest("'room' must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")
            }
            throw .init(.notFound, "no call has the code '\(text.prefix(64))'")
        }
        guard openRooms else {
            // Stored calls arrive with the calls issue; until then only open rooms exist.
            throw .init(.notFound, "no call has the code '\(code.display)'")
        }
        return code
    }

    /// Whether a room with this key is live (in memory) now.
    public func isLive(_ code: RoomCode) -> Bool { rooms[code.key] != nil }

    /// The room a session is in.
    public func room(of session: SessionID) -> RoomCode? { seats[session]?.code }

    /// The peer id of a session in its room.
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

    /// Adds `session` to the room `code` (creating it, with `history` as its recent chat, if it is not live).
    public func join(_ session: SessionID, code: RoomCode, name: String, role: Role = .guest, ref: String?,
                     history: [ChatMessage] = []) throws(ProtocolError) -> [Delivery]
    {
        let name = try validateName(name)
        if let current = seats[session] {
            throw .init(.conflict, "already in room '\(current.code.display)'; leave it first")
        }
        let now = clock()
        let room: Room
        if let live = rooms[code.key] {
            room = live
        } else {
            let call = CallStatus(id: UUID().uuidString.lowercased(), code: code.display, status: .waiting,
                                  startedAt: nil, endedAt: nil, participants: 0, recording: false, locked: false)
            room = Room(code: code, call: call, recentChat: Array(history.suffix(limits.chatHistory)))
        }
        guard room.members.count < limits.maxPeersPerRoom else {
            throw .init(.roomFull, "room '\(code.display)' is full (\(limits.maxPeersPerRoom) peers)")
        }
        rooms[code.key] = room

        let info = PeerInfo(peer: PeerID(RandomID.make(prefix: "p", length: 10)), name: name, role: role)
        let others = room.sessions
        let peersBefore = room.members.map(\.info)
        room.members.append(Member(session: session, info: info))
        seats[session] = room
        room.call.participants = room.members.count

        var becameActive = false
        if room.call.status == .waiting, room.members.count >= 2 {
            room.call.status = .active
            room.call.startedAt = now
            becameActive = true
        }
        var deliveries = [
            Delivery([session], .joined(room: code.display, peer: info.peer, role: info.role, peers: peersBefore,
                                        chat: room.recentChat, call: room.call, ref: ref)),
        ]
        if !others.isEmpty { deliveries.append(Delivery(others, .peerJoined(info))) }
        if becameActive { deliveries.append(Delivery(room.sessions, .call(room.call))) }
        return deliveries
    }

    /// Removes `session` from its room; the others learn why. Returns nothing if it was in no room.
    public func leave(_ session: SessionID, reason: LeaveReason) -> [Delivery] {
        guard let room = seats.removeValue(forKey: session),
              let index = room.members.firstIndex(where: { $0.session == session })
        else { return [] }
        let member = room.members.remove(at: index)
        room.call.participants = room.members.count
        if room.members.isEmpty {
            rooms.removeValue(forKey: room.code.key)
            return []
        }
        return [Delivery(room.sessions, .peerLeft(peer: member.info.peer, reason: reason))]
    }

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
}
