import Foundation

/// The rules of a stored call that its live room enforces (from the call and its company's settings).
public struct CallPolicy: Sendable, Equatable {
    public var callID: String
    public var companyID: String
    /// The user who hosts the call.
    public var hostUserID: String
    /// Whether guests (by guest token or by name alone) may join.
    public var guestAccess: Bool
    /// Whether guests wait in the lobby until a host admits them.
    public var lobby: Bool
    public var maxParticipants: Int
    /// Whether the company allows `record-start`.
    public var recordingAllowed: Bool

    public init(callID: String, companyID: String, hostUserID: String, guestAccess: Bool, lobby: Bool,
                maxParticipants: Int, recordingAllowed: Bool)
    {
        self.callID = callID
        self.companyID = companyID
        self.hostUserID = hostUserID
        self.guestAccess = guestAccess
        self.lobby = lobby
        self.maxParticipants = maxParticipants
        self.recordingAllowed = recordingAllowed
    }
}

/// Who asks to join a room, as the connection proved it.
public enum Joiner: Sendable, Equatable {
    /// A user with an access token (or API key). `licensed`: holds an assigned, unexpired license (hosting
    /// needs one).
    case user(id: String, companyID: String?, licensed: Bool)
    /// The holder of a guest token for call `callID`.
    case guest(callID: String, guestID: String)
    /// A connection without a token: a guest by name alone.
    case anonymous

    /// What a kick bans from the call: the user, or the guest token. Anonymous guests cannot be banned (a new
    /// connection is a new guest).
    public var credential: String? {
        switch self {
        case .user(let id, _, _): "user:" + id
        case .guest(_, let guestID): "guest:" + guestID
        case .anonymous: nil
        }
    }

    /// The role this joiner has in a stored call, or why they may not join it (PROTOCOL.md 1.1, 1.2): the
    /// call's host user is `host` (with a license), other users of its company `member`, a guest token of
    /// this call or a bare name `guest` when the call admits guests; a user of another company without a
    /// guest token is `forbidden`.
    public func role(in policy: CallPolicy) throws(ProtocolError) -> Role {
        switch self {
        case .user(let id, let companyID, let licensed):
            guard companyID == policy.companyID else {
                throw ProtocolError(.forbidden, "this call belongs to another company; join it with a guest token")
            }
            guard id == policy.hostUserID else { return .member }
            guard licensed else {
                throw ProtocolError(.forbidden, "hosting a call needs an assigned, unexpired license")
            }
            return .host
        case .guest(let callID, _):
            guard callID == policy.callID else { throw ProtocolError(.forbidden, "this guest token is for another call") }
            guard policy.guestAccess else { throw ProtocolError(.forbidden, "this call does not admit guests") }
            return .guest
        case .anonymous:
            guard policy.guestAccess else {
                throw ProtocolError(.forbidden, "this call does not admit guests; sign in or use a guest token")
            }
            return .guest
        }
    }
}

/// A stored call as its live room opens: the room's state starts from it.
public struct CallOpening: Sendable {
    public var call: CallStatus
    public var policy: CallPolicy
    /// Credentials kicked from the call earlier.
    public var bans: Set<String>
    public var history: [ChatMessage]

    public init(call: CallStatus, policy: CallPolicy, bans: Set<String>, history: [ChatMessage]) {
        self.call = call
        self.policy = policy
        self.bans = bans
        self.history = history
    }
}

/// Something a room did that the store must keep (the gateway writes them, in order).
public enum RoomEffect: Sendable, Equatable {
    /// An automatic step of the status machine (`member-joined`, `became-active`).
    case transition(callID: String, CallAction, at: Date)
    case participantJoined(callID: String, peer: PeerID, name: String, role: Role, userID: String?, at: Date)
    case participantLeft(callID: String, peer: PeerID, reason: LeaveReason, at: Date)
    /// A kicked credential: it cannot join this call again.
    case banned(callID: String, credential: String)
    /// The room of a stored call has nobody left (not even in its lobby).
    case emptied(callID: String, code: RoomCode, at: Date)
}

/// What became of a quality sample.
public enum QualityOutcome: Sendable {
    /// Within 2 s of the peer's previous one: acknowledged and dropped.
    case dropped(peer: PeerID)
    /// Kept as the peer's latest and forwarded to the hosts; `callID` is nil for an open room (not stored).
    case accepted(callID: String?, peer: PeerID, deliveries: [Delivery])
}
