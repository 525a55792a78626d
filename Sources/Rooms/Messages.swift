import Foundation
import Presence

/// A member's role in a call.
public enum Role: String, Sendable {
    case host, member, guest
}

/// Why a peer left a room (`peer-left.reason`).
public enum LeaveReason: String, Sendable {
    case left, timeout, kicked, ended
}

/// A room member as others see it (`peers[]`, `peer-joined`).
public struct PeerInfo: Equatable, Sendable {
    public let peer: PeerID
    public let name: String
    public let role: Role
}

/// One chat message of a room, as stored and as sent.
public struct ChatMessage: Equatable, Sendable {
    public let id: String
    public let room: String
    public let from: PeerID
    public let name: String
    public let text: String
    public let sentAt: Date

    public init(id: String, room: String, from: PeerID, name: String, text: String, sentAt: Date) {
        self.id = id
        self.room = room
        self.from = from
        self.name = name
        self.text = text
        self.sentAt = sentAt
    }
}

/// Life cycle of a call (PROTOCOL.md 3, Calls).
public enum CallState: String, Sendable, Codable, CaseIterable {
    case scheduled, waiting, active, ended, cancelled
}

/// The call status object every member sees in `joined.call` and `call` events.
public struct CallStatus: Equatable, Sendable {
    public init(id: String, code: String, status: CallState, startedAt: Date?, endedAt: Date?, participants: Int,
                recording: Bool, locked: Bool)
    {
        self.id = id
        self.code = code
        self.status = status
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.participants = participants
        self.recording = recording
        self.locked = locked
    }

    public var id: String
    public var code: String
    public var status: CallState
    public var startedAt: Date?
    public var endedAt: Date?
    public var participants: Int
    public var recording: Bool
    public var locked: Bool
}

/// A request from a client, decoded and validated for shape (not yet for room rules).
public enum ClientMessage: Equatable, Sendable {
    case hello(token: String?, resume: String?)
    /// `name` may be omitted by an authenticated connection (the user's name is used).
    case join(room: String, name: String?)
    case leave
    /// `data` is the byte range of the raw JSON value inside the frame; it is never decoded.
    case signal(to: String, data: Range<Int>)
    case chat(text: String)
    case typing(on: Bool)
    /// A quality sample, validated for ranges.
    case quality(QualityStats)
    /// Host actions.
    case admit(peer: String)
    case kick(peer: String)
    case call(action: CallAction)
    /// Sets this user's presence state (never `offline`).
    case presence(state: PresenceState)
    /// Follows the presence of these users, or of a company's users.
    case subscribe(users: [String]?, company: String?)
    /// A message of the contract this server does not implement yet.
    case unsupported(type: String)
}

/// A decoded client frame: the message and its optional `ref`.
public struct ClientRequest: Equatable, Sendable {
    public let message: ClientMessage
    public let ref: String?

    /// Longest `ref` accepted.
    public static let maxRefLength = 256

    /// Decodes one text frame. Every failure is a `bad_request` carrying the `ref` when one was readable.
    public static func decode(_ frame: UnsafeBufferPointer<UInt8>) throws(ProtocolError) -> ClientRequest {
        let envelope: JSONEnvelope
        do {
            envelope = try JSONParser.parseEnvelope(frame, rawKey: "data", maxDepth: 64)
        } catch {
            throw .badRequest("malformed JSON: \(error.message) at byte \(error.offset)")
        }
        var fields = FieldReader(fields: envelope.fields)
        let ref: String?
        do {
            ref = try fields.optionalString("ref")
        } catch {
            throw error
        }
        if let ref, ref.utf8.count > maxRefLength {
            throw .badRequest("'ref' is longer than \(maxRefLength) bytes")
        }
        do {
            let message = try decodeMessage(&fields, rawData: envelope.rawField)
            return ClientRequest(message: message, ref: ref)
        } catch {
            var error = error
            error.ref = ref
            throw error
        }
    }

    private static func decodeMessage(_ fields: inout FieldReader, rawData: Range<Int>?) throws(ProtocolError)
        -> ClientMessage
    {
        guard let typeValue = fields.fields["type"] else { throw .badRequest("missing field 'type'") }
        guard case .string(let type) = typeValue else {
            throw .badRequest("field 'type' must be a string, got \(typeValue.typeName)")
        }
        switch type {
        case "hello":
            return .hello(token: try fields.optionalString("token"), resume: try fields.optionalString("resume"))
        case "join":
            return .join(room: try fields.string("room"), name: try fields.optionalString("name"))
        case "leave":
            return .leave
        case "signal":
            let to = try fields.string("to")
            guard let rawData else { throw .badRequest("missing field 'data'") }
            return .signal(to: to, data: rawData)
        case "chat":
            return .chat(text: try fields.string("text"))
        case "typing":
            return .typing(on: try fields.bool("on"))
        case "quality":
            return .quality(try fields.qualityStats("stats"))
        case "admit":
            return .admit(peer: try fields.string("peer"))
        case "kick":
            return .kick(peer: try fields.string("peer"))
        case "call":
            let text = try fields.string("action")
            let allowed: [CallAction] = [.start, .end, .lock, .unlock, .recordStart, .recordStop]
            guard let action = CallAction(rawValue: text), allowed.contains(action) else {
                throw .badRequest("'action' must be one of start, end, lock, unlock, record-start, record-stop")
            }
            return .call(action: action)
        case "presence":
            let text = try fields.string("state")
            guard let state = PresenceState(rawValue: text), state != .offline else {
                throw .badRequest("'state' must be one of online, away, busy")
            }
            return .presence(state: state)
        case "subscribe":
            return try decodeSubscribe(fields)
        default:
            let shown = type.count > 32 ? String(type.prefix(32)) + "…" : type
            throw .badRequest("unknown message type '\(shown)'")
        }
    }
}

extension ClientRequest {
    /// Most user ids one `subscribe` may name.
    public static let maxSubscribeUsers = 1000

    /// `{"type":"subscribe","presence":[ids]}` or `{"type":"subscribe","company":"<id>"}`: exactly one.
    fileprivate static func decodeSubscribe(_ fields: FieldReader) throws(ProtocolError) -> ClientMessage {
        let company = try fields.optionalString("company")
        let users: [String]?
        switch fields.fields["presence"] {
        case nil, .null?:
            users = nil
        case .array(let values)?:
            var ids: [String] = []
            for value in values {
                guard case .string(let id) = value, (1...64).contains(id.utf8.count) else {
                    throw .badRequest("'presence' must be an array of user ids (strings of 1-64 bytes)")
                }
                ids.append(id)
            }
            guard (1...maxSubscribeUsers).contains(ids.count) else {
                throw .badRequest("'presence' must name 1 to \(maxSubscribeUsers) users")
            }
            users = ids
        case let other?:
            throw .badRequest("field 'presence' must be an array, got \(other.typeName)")
        }
        guard (users == nil) != (company == nil) else {
            throw .badRequest("'subscribe' takes either 'presence' (user ids) or 'company'")
        }
        if let company, !(1...64).contains(company.utf8.count) {
            throw .badRequest("'company' must be a company id")
        }
        return .subscribe(users: users, company: company)
    }
}

/// Typed access to decoded fields with precise error messages.
struct FieldReader {
    let fields: [String: JSONValue]

    func string(_ name: String) throws(ProtocolError) -> String {
        guard let value = fields[name] else { throw .badRequest("missing field '\(name)'") }
        guard case .string(let text) = value else {
            throw .badRequest("field '\(name)' must be a string, got \(value.typeName)")
        }
        return text
    }

    func optionalString(_ name: String) throws(ProtocolError) -> String? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .string(let text) = value else {
            throw .badRequest("field '\(name)' must be a string, got \(value.typeName)")
        }
        return text
    }

    /// `stats` of a quality sample: an object of numbers in their ranges (PROTOCOL.md 3); other keys are
    /// ignored.
    func qualityStats(_ name: String) throws(ProtocolError) -> QualityStats {
        guard let value = fields[name] else { throw .badRequest("missing field '\(name)'") }
        guard case .object(let object) = value else {
            throw .badRequest("field '\(name)' must be an object, got \(value.typeName)")
        }
        func number(_ key: String) throws(ProtocolError) -> Double? {
            guard let value = object[key], value != .null else { return nil }
            guard case .number(let number) = value else {
                throw .badRequest("'\(name).\(key)' must be a number, got \(value.typeName)")
            }
            return number
        }
        let stats = QualityStats(rttMs: try number("rtt_ms"), jitterMs: try number("jitter_ms"),
                                 lossPct: try number("loss_pct"), bitrateKbps: try number("bitrate_kbps"))
        if let (key, message) = stats.problems.sorted(by: { $0.key < $1.key }).first {
            throw .badRequest(key == "stats" ? "'\(name)' \(message)" : "'\(name).\(key)' \(message)")
        }
        return stats
    }

    func bool(_ name: String) throws(ProtocolError) -> Bool {
        guard let value = fields[name] else { throw .badRequest("missing field '\(name)'") }
        guard case .bool(let flag) = value else {
            throw .badRequest("field '\(name)' must be a boolean, got \(value.typeName)")
        }
        return flag
    }
}

/// A message from the server. `encode` writes its exact wire JSON.
public enum ServerMessage: Sendable {
    /// `user` is the authenticated user as raw JSON (the REST user object), or nil for `null`.
    case welcome(session: String, resume: String, heartbeat: Int, user: [UInt8]?)
    case joined(room: String, peer: PeerID, role: Role, peers: [PeerInfo], chat: [ChatMessage], call: CallStatus,
                ref: String?)
    case peerJoined(PeerInfo)
    case peerLeft(peer: PeerID, reason: LeaveReason)
    case chat(ChatMessage, ref: String?)
    case typing(from: PeerID, on: Bool)
    case call(CallStatus)
    /// To a guest who waits in the lobby.
    case lobby(room: String, ref: String?)
    /// To the hosts: someone waits in the lobby.
    case lobbyWaiting(room: String, peer: PeerID, name: String)
    /// To the hosts: a member's quality sample.
    case quality(peer: PeerID, stats: QualityStats)
    /// The answer to `subscribe`: the presence of everyone it names now.
    case presenceSnapshot([PresenceInfo], ref: String?)
    /// One user's presence changed.
    case presence(PresenceInfo)
    case ack(ref: String)
    case error(ProtocolError)

    /// Messages that a slow consumer may lose first (never `signal` or `chat`).
    public var isDroppable: Bool {
        switch self {
        case .typing, .quality: true
        default: false
        }
    }

    /// The JSON text, after `headroom` reserved bytes.
    public func encode(headroom: Int = 0) -> [UInt8] {
        var out = JSONWriter(headroom: headroom)
        switch self {
        case .welcome(let session, let resume, let heartbeat, let user):
            out.raw("{\"type\":\"welcome\",\"session\":")
            out.string(session)
            out.raw(",\"resume\":")
            out.string(resume)
            out.raw(",\"heartbeat\":")
            out.int(heartbeat)
            out.raw(",\"user\":")
            if let user { out.raw(bytes: user) } else { out.raw("null") }
            out.raw("}")
        case .joined(let room, let peer, let role, let peers, let chat, let call, let ref):
            out.raw("{\"type\":\"joined\",\"room\":")
            out.string(room)
            out.raw(",\"peer\":")
            out.string(peer.rawValue)
            out.raw(",\"role\":")
            out.string(role.rawValue)
            out.raw(",\"peers\":[")
            for (index, info) in peers.enumerated() {
                if index > 0 { out.raw(",") }
                Self.writePeer(info, into: &out)
            }
            out.raw("],\"chat\":[")
            for (index, message) in chat.enumerated() {
                if index > 0 { out.raw(",") }
                Self.writeChat(message, ref: nil, into: &out)
            }
            out.raw("],\"call\":")
            Self.writeCall(call, into: &out)
            if let ref {
                out.raw(",\"ref\":")
                out.string(ref)
            }
            out.raw("}")
        case .peerJoined(let info):
            out.raw("{\"type\":\"peer-joined\",")
            Self.writePeerFields(info, into: &out)
            out.raw("}")
        case .peerLeft(let peer, let reason):
            out.raw("{\"type\":\"peer-left\",\"peer\":")
            out.string(peer.rawValue)
            out.raw(",\"reason\":")
            out.string(reason.rawValue)
            out.raw("}")
        case .chat(let message, let ref):
            Self.writeChat(message, ref: ref, into: &out)
        case .typing(let from, let on):
            out.raw("{\"type\":\"typing\",\"from\":")
            out.string(from.rawValue)
            out.raw(",\"on\":")
            out.bool(on)
            out.raw("}")
        case .call(let status):
            out.raw("{\"type\":\"call\",\"call\":")
            Self.writeCall(status, into: &out)
            out.raw("}")
        case .lobby(let room, let ref):
            out.raw("{\"type\":\"lobby\",\"room\":")
            out.string(room)
            if let ref {
                out.raw(",\"ref\":")
                out.string(ref)
            }
            out.raw("}")
        case .lobbyWaiting(let room, let peer, let name):
            out.raw("{\"type\":\"lobby\",\"room\":")
            out.string(room)
            out.raw(",\"peer\":")
            out.string(peer.rawValue)
            out.raw(",\"name\":")
            out.string(name)
            out.raw("}")
        case .quality(let peer, let stats):
            out.raw("{\"type\":\"quality\",\"peer\":")
            out.string(peer.rawValue)
            out.raw(",\"stats\":{")
            var first = true
            for (name, _) in QualityStats.ranges {
                guard let value = stats[name] else { continue }
                if !first { out.raw(",") }
                first = false
                out.string(name)
                out.raw(":")
                out.number(value)
            }
            out.raw("}}")
        case .presenceSnapshot(let users, let ref):
            out.raw("{\"type\":\"presence-snapshot\",\"users\":[")
            for (index, info) in users.enumerated() {
                if index > 0 { out.raw(",") }
                out.raw("{")
                Self.writePresenceFields(info, into: &out)
                out.raw("}")
            }
            out.raw("]")
            if let ref {
                out.raw(",\"ref\":")
                out.string(ref)
            }
            out.raw("}")
        case .presence(let info):
            out.raw("{\"type\":\"presence\",")
            Self.writePresenceFields(info, into: &out)
            out.raw("}")
        case .ack(let ref):
            out.raw("{\"type\":\"ack\",\"ref\":")
            out.string(ref)
            out.raw("}")
        case .error(let error):
            out.raw("{\"type\":\"error\",\"code\":")
            out.string(error.code.rawValue)
            out.raw(",\"message\":")
            out.string(error.message)
            if let ref = error.ref {
                out.raw(",\"ref\":")
                out.string(ref)
            }
            out.raw("}")
        }
        return out.bytes
    }

    /// `{"type":"signal","from":…,"data":<raw>}` built around the sender's raw `data` bytes.
    public static func encodeSignal(from: PeerID, data: UnsafeBufferPointer<UInt8>, headroom: Int = 0) -> [UInt8] {
        var out = JSONWriter(headroom: headroom, capacity: data.count + from.rawValue.utf8.count + 40)
        out.raw("{\"type\":\"signal\",\"from\":")
        out.string(from.rawValue)
        out.raw(",\"data\":")
        out.raw(bytes: data)
        out.raw("}")
        return out.bytes
    }

    private static func writePresenceFields(_ info: PresenceInfo, into out: inout JSONWriter) {
        out.raw("\"user\":")
        out.string(info.user)
        out.raw(",\"state\":")
        out.string(info.state.rawValue)
        out.raw(",\"devices\":")
        out.int(info.devices)
        out.raw(",\"last_seen\":")
        out.optionalString(info.lastSeen.map(Timestamp.rfc3339))
    }

    private static func writePeerFields(_ info: PeerInfo, into out: inout JSONWriter) {
        out.raw("\"peer\":")
        out.string(info.peer.rawValue)
        out.raw(",\"name\":")
        out.string(info.name)
        out.raw(",\"role\":")
        out.string(info.role.rawValue)
    }

    private static func writePeer(_ info: PeerInfo, into out: inout JSONWriter) {
        out.raw("{")
        writePeerFields(info, into: &out)
        out.raw("}")
    }

    private static func writeChat(_ message: ChatMessage, ref: String?, into out: inout JSONWriter) {
        out.raw("{\"type\":\"chat\",\"id\":")
        out.string(message.id)
        out.raw(",\"from\":")
        out.string(message.from.rawValue)
        out.raw(",\"name\":")
        out.string(message.name)
        out.raw(",\"text\":")
        out.string(message.text)
        out.raw(",\"ts\":")
        out.string(Timestamp.rfc3339(message.sentAt))
        if let ref {
            out.raw(",\"ref\":")
            out.string(ref)
        }
        out.raw("}")
    }

    private static func writeCall(_ call: CallStatus, into out: inout JSONWriter) {
        out.raw("{\"id\":")
        out.string(call.id)
        out.raw(",\"code\":")
        out.string(call.code)
        out.raw(",\"status\":")
        out.string(call.status.rawValue)
        out.raw(",\"started_at\":")
        out.optionalString(call.startedAt.map(Timestamp.rfc3339))
        out.raw(",\"ended_at\":")
        out.optionalString(call.endedAt.map(Timestamp.rfc3339))
        out.raw(",\"participants\":")
        out.int(call.participants)
        out.raw(",\"recording\":")
        out.bool(call.recording)
        out.raw(",\"locked\":")
        out.bool(call.locked)
        out.raw("}")
    }
}
