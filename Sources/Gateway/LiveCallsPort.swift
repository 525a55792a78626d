import Dispatch
import Foundation
import RestBridge
import Rooms
import Signal
import Store

/// The gateway's answer to `LiveCalls`: each call from a REST worker runs on the service thread (through the
/// inbox) and the worker waits for it, at most `timeout` seconds (then it answers as if no room were live).
final class LiveCallsPort: LiveCalls, @unchecked Sendable {
    /// Only touched on the service thread, inside the closures this port posts.
    private unowned let gateway: Gateway
    private let inbox: Inbox
    private let server: SignalWaker
    private let timeout: Double

    init(gateway: Gateway, timeout: Double = 5) {
        self.gateway = gateway
        inbox = gateway.inbox
        server = SignalWaker(gateway.server)
        self.timeout = timeout
    }

    /// Runs `body` on the service thread and returns its result; nil if it did not run in time (shutdown).
    private func onServiceThread<T: Sendable>(_ body: @escaping @Sendable (Gateway) -> T) -> T? {
        let slot = ResultSlot<T>()
        let done = DispatchSemaphore(value: 0)
        inbox.post(.live { gateway in
            slot.value = body(gateway)
            done.signal()
        })
        server.wake()
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return slot.value
    }

    func callChanged(_ call: VideoCall, recordingAllowed: Bool) {
        let change = StoredCallChange(call: call, recordingAllowed: recordingAllowed)
        _ = onServiceThread { gateway in
            gateway.deliver(gateway.rooms.update(callID: call.id, call: call.status(participants: 0), policy: change.policy))
            gateway.flushEffects()
            return true
        }
    }

    func relaySignal(callID: String, caller: LiveCaller, to: String, data: [UInt8]) throws(ProtocolError) {
        let outcome: Result<Void, ProtocolError>? = onServiceThread { gateway in
            Result { () throws(ProtocolError) in try gateway.relay(callID: callID, caller: caller, to: to, data: data) }
        }
        guard let outcome else { throw ProtocolError(.internal, "the live call service did not answer") }
        try outcome.get()
    }

    func acceptQuality(callID: String, caller: LiveCaller, stats: QualityStats) -> LiveQualityOutcome {
        onServiceThread { gateway -> LiveQualityOutcome in
            guard let session = gateway.session(inCall: callID, caller),
                  let outcome = try? gateway.rooms.quality(from: session, stats)
            else { return .notInRoom }
            switch outcome {
            case .dropped(let peer):
                return .dropped(peer: peer.rawValue)
            case .accepted(_, let peer, let deliveries):
                gateway.deliver(deliveries)
                return .accepted(peer: peer.rawValue)
            }
        } ?? .notInRoom
    }

    func snapshot(callID: String) -> LiveCallSnapshot? {
        onServiceThread { gateway in gateway.rooms.snapshot(callID: callID).map(Self.view) } ?? nil
    }

    func realtime(companyID: String) -> [LiveCallSnapshot] {
        onServiceThread { gateway in
            gateway.rooms.liveCallIDs.compactMap { gateway.rooms.snapshot(callID: $0) }
                .filter { $0.policy.companyID == companyID }
                .sorted { ($0.call.startedAt ?? .distantFuture, $0.call.id) < ($1.call.startedAt ?? .distantFuture, $1.call.id) }
                .map(Self.view)
        } ?? []
    }

    func usersOnline(companyID: String) -> Int {
        onServiceThread { gateway in gateway.usersOnline(companyID: companyID) } ?? 0
    }

    private static func view(_ room: RoomSnapshot) -> LiveCallSnapshot {
        func participant(_ member: RoomMemberSnapshot) -> LiveParticipant {
            LiveParticipant(peer: member.info.peer.rawValue, name: member.info.name, role: member.info.role.rawValue,
                            userID: member.userID, joinedAt: member.joinedAt, quality: member.quality,
                            qualityAt: member.qualityAt)
        }
        return LiveCallSnapshot(callID: room.policy.callID, code: room.call.code, companyID: room.policy.companyID,
                                status: room.call.status, startedAt: room.call.startedAt, locked: room.call.locked,
                                recording: room.call.recording, participants: room.members.map(participant),
                                lobby: room.lobby.map(participant))
    }
}

/// Carries a result from the service thread to the waiting worker (the semaphore orders the accesses).
private final class ResultSlot<T>: @unchecked Sendable {
    var value: T?
}

/// Wakes the service thread from any thread.
struct SignalWaker: @unchecked Sendable {
    private let server: SignalServer
    init(_ server: SignalServer) { self.server = server }
    func wake() { server.wakeUp() }
}

extension Gateway {
    /// The session of a REST caller in a call's live room.
    func session(inCall callID: String, _ caller: LiveCaller) -> SessionID? {
        switch caller {
        case .user(let id): rooms.session(inCall: callID, userID: id, guestID: nil)
        case .guest(let id): rooms.session(inCall: callID, userID: nil, guestID: id)
        }
    }

    /// `POST /api/calls/{id}/signal`: a signal from the caller's peer to `to`, `data` unchanged.
    func relay(callID: String, caller: LiveCaller, to: String, data: [UInt8]) throws(ProtocolError) {
        guard let session = session(inCall: callID, caller) else {
            throw ProtocolError(.notInRoom, "you are not in this call's live room; join it first")
        }
        let route = try rooms.route(signalFrom: session, to: to)
        let bytes = data.withUnsafeBufferPointer {
            ServerMessage.encodeSignal(from: route.from, data: $0, headroom: OutgoingFrame.headroom)
        }
        guard send(OutgoingFrame(bytesWithHeadroom: bytes), to: route.to) == .queued else {
            throw ProtocolError(.notFound, "peer '\(to.prefix(64))' is gone: it could not keep up and was disconnected")
        }
    }
}
