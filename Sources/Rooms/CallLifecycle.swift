import Foundation

/// What can happen to a call, from either door (a host's WebSocket `call` action, a REST route, or the room
/// itself: the first member, the second member, an empty room after its grace period).
public enum CallAction: String, Sendable, CaseIterable {
    case start, end, cancel, lock, unlock
    case recordStart = "record-start"
    case recordStop = "record-stop"
    /// Someone joined the room: `scheduled` becomes `waiting`.
    case memberJoined = "member-joined"
    /// A second member is in the room: `waiting` becomes `active` and `started_at` is set.
    case becameActive = "became-active"
}

/// A refused action: the call is not in a status that allows it (PROTOCOL.md 3: 409 / `conflict` with the
/// current status).
public struct CallTransitionError: Error, Equatable, Sendable {
    public let action: CallAction
    public let current: CallState

    public init(action: CallAction, current: CallState) {
        self.action = action
        self.current = current
    }

    public var message: String {
        action == .memberJoined ? "the call is \(current.rawValue); it cannot be joined"
            : "cannot \(action.rawValue) a call that is \(current.rawValue)"
    }

    public var protocolError: ProtocolError { ProtocolError(.conflict, message) }
}

/// The status machine of a call (PROTOCOL.md 3): `scheduled` → `waiting` → `active` → `ended`, `cancelled`
/// from `scheduled` or `waiting`. One function, used by the live room and by the store's transactions, so
/// both doors agree.
public enum CallLifecycle {
    /// Applies `action` to `call` at `now`, or throws with the current status. Lock and recording are flags
    /// of a call that is not over; recording needs a call that is `waiting` or `active`.
    public static func apply(_ action: CallAction, to call: inout CallStatus, now: Date) throws(CallTransitionError) {
        let current = call.status
        func refuse() -> CallTransitionError { CallTransitionError(action: action, current: current) }
        switch action {
        case .start:
            guard current == .scheduled else { throw refuse() }
            call.status = .waiting
        case .memberJoined:
            switch current {
            case .scheduled: call.status = .waiting
            case .waiting, .active: break
            case .ended, .cancelled: throw refuse()
            }
        case .becameActive:
            guard current == .waiting else { throw refuse() }
            call.status = .active
            call.startedAt = now
        case .end:
            guard current == .waiting || current == .active else { throw refuse() }
            call.status = .ended
            call.endedAt = now
            call.recording = false
        case .cancel:
            guard current == .scheduled || current == .waiting else { throw refuse() }
            call.status = .cancelled
            call.endedAt = now
            call.recording = false
        case .lock, .unlock:
            guard current != .ended, current != .cancelled else { throw refuse() }
            call.locked = action == .lock
        case .recordStart, .recordStop:
            guard current == .waiting || current == .active else { throw refuse() }
            call.recording = action == .recordStart
        }
    }

    /// Whole seconds between start and end; 0 for a call that never became active.
    public static func duration(of call: CallStatus) -> Int {
        guard let started = call.startedAt, let ended = call.endedAt else { return 0 }
        return max(0, Int(ended.timeIntervalSince(started).rounded()))
    }
}
