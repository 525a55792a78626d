import Foundation
import Rooms
import Store

/// A member of a live call, as `GET /api/calls/{id}/status` and the realtime dashboard show it.
public struct LiveParticipant: Sendable {
    public var peer: String
    public var name: String
    public var role: String
    /// The user behind the peer; nil for a guest.
    public var userID: String?
    public var joinedAt: Date
    /// The latest quality sample this peer sent, if any.
    public var quality: QualityStats?
    public var qualityAt: Date?

    public init(peer: String, name: String, role: String, userID: String?, joinedAt: Date, quality: QualityStats?,
                qualityAt: Date?)
    {
        self.peer = peer
        self.name = name
        self.role = role
        self.userID = userID
        self.joinedAt = joinedAt
        self.quality = quality
        self.qualityAt = qualityAt
    }
}

/// A live call room now: its status and who is in it (and who waits in its lobby).
public struct LiveCallSnapshot: Sendable {
    public var callID: String
    public var code: String
    public var companyID: String
    public var status: CallState
    public var startedAt: Date?
    public var locked: Bool
    public var recording: Bool
    public var participants: [LiveParticipant]
    public var lobby: [LiveParticipant]

    public init(callID: String, code: String, companyID: String, status: CallState, startedAt: Date?, locked: Bool,
                recording: Bool, participants: [LiveParticipant], lobby: [LiveParticipant])
    {
        self.callID = callID
        self.code = code
        self.companyID = companyID
        self.status = status
        self.startedAt = startedAt
        self.locked = locked
        self.recording = recording
        self.participants = participants
        self.lobby = lobby
    }
}

/// Who calls a live-call route: a user (by id) or one of the call's guests (by guest id).
public enum LiveCaller: Sendable, Equatable {
    case user(String)
    case guest(String)
}

/// What the live room made of a quality sample sent over REST.
public enum LiveQualityOutcome: Sendable, Equatable {
    /// The caller is not in the live room (or there is none): store it as given.
    case notInRoom
    /// Forwarded to the hosts as this peer's: store it under `peer`.
    case accepted(peer: String)
    /// Within 2 s of this peer's previous sample: acknowledged and dropped.
    case dropped(peer: String)
}

/// The live side of calls, owned by the service thread (the gateway). REST handlers on worker threads ask
/// it and wait for the answer; it never touches the store itself.
public protocol LiveCalls: AnyObject, Sendable {
    /// A call changed in the store (REST): its live room, if any, takes the new state, and every member gets
    /// `call` (and, when it ended, `peer-left` with reason `ended`). Returns once the room has it.
    func callChanged(_ call: VideoCall, recordingAllowed: Bool)
    /// Delivers `signal` with `from` set to the caller's peer in the call's live room.
    func relaySignal(callID: String, caller: LiveCaller, to: String, data: [UInt8]) throws(ProtocolError)
    /// Passes a sample through the room's rules (rate limit, forwarding to hosts) as the caller's peer's.
    func acceptQuality(callID: String, caller: LiveCaller, stats: QualityStats) -> LiveQualityOutcome
    /// The live room of a call, if anyone is connected to it.
    func snapshot(callID: String) -> LiveCallSnapshot?
    /// Every live room of a company.
    func realtime(companyID: String) -> [LiveCallSnapshot]
    /// How many users of a company are not offline by presence (a device connected, or within the grace).
    func usersOnline(companyID: String) -> Int
}

/// The live side as route handlers reach it: set once by the gateway, which is created after the REST bridge.
final class LiveCallsLink: @unchecked Sendable {
    private let lock = NSLock()
    private var live: (any LiveCalls)?

    func attach(_ live: any LiveCalls) { lock.withLock { self.live = live } }

    /// The live side; 503 while no gateway is attached (only in tests that run the REST bridge alone).
    func get() throws(APIError) -> any LiveCalls {
        guard let live = lock.withLock({ self.live }) else {
            throw APIError(.serviceUnavailable, "unavailable", "the live call service is not running")
        }
        return live
    }
}
