import Foundation
import Logging
import Presence
import RestBridge
import Rooms
import Signal
import Store

/// What the store gives a room that opens.
struct RoomLoad: Sendable {
    var opening: CallOpening?
    var history: [ChatMessage]
}

/// A stored call after a change, with its company's recording permission.
struct StoredCallChange: Sendable {
    var call: VideoCall
    var recordingAllowed: Bool

    var policy: CallPolicy {
        CallPolicy(callID: call.id, companyID: call.companyId, hostUserID: call.hostId, guestAccess: call.guestAccess,
                   lobby: call.lobby, maxParticipants: call.maxParticipants, recordingAllowed: recordingAllowed)
    }
}

/// Stored calls on the service thread: opening a call's room from the store, host actions stored then
/// applied, the rooms' effects written in order on the call queue, idle calls ended.
extension Gateway {
    /// Loads what a room needs before it opens: the stored call of a call code (with its bans and its
    /// company's recording permission) and the chat history.
    func loadRoom(_ code: RoomCode) {
        let historyLimit = configuration.limits.chatHistory
        onCallWork { [calls, accounts, store] in
            .roomLoaded(code, Result {
                var opening: CallOpening?
                if code.isCallCode, let call = try calls.call(codeKey: code.key) {
                    let allowed = try accounts.company(id: call.companyId)?.recordingAllowed ?? false
                    let change = StoredCallChange(call: call, recordingAllowed: allowed)
                    opening = CallOpening(call: call.status(participants: 0), policy: change.policy,
                                          bans: try calls.bans(callID: call.id), history: [])
                }
                return RoomLoad(opening: opening, history: try store.recentChat(room: code.key, limit: historyLimit))
            })
        }
    }

    func finishJoins(_ code: RoomCode, _ result: Result<RoomLoad, any Error>) {
        guard let waiting = pendingJoins.removeValue(forKey: code) else { return }
        var load: RoomLoad?
        var failure: ProtocolError?
        switch result {
        case .success(var loaded):
            if loaded.opening == nil, !configuration.openRooms {
                failure = ProtocolError(.notFound, "no call has the code '\(code.display)'")
            }
            loaded.opening?.history = loaded.history
            load = loaded
        case .failure(let error):
            logger.error("room not loaded", metadata: ["room": "\(code.key)", "error": "\(error)"])
            failure = ProtocolError(.internal, "the call could not be loaded; try again")
        }
        for pending in waiting {
            guard let session = sessions[pending.session] else { continue }
            session.joinPending = false
            do throws(ProtocolError) {
                if var failure {
                    failure.ref = pending.ref
                    throw failure
                }
                if let callID = load?.opening?.policy.callID { idleCalls.removeValue(forKey: callID) }
                deliver(try rooms.join(session.id, code: code, name: pending.name, joiner: session.joiner,
                                       ref: pending.ref, opening: rooms.isLive(code) ? nil : load?.opening,
                                       history: load?.history ?? []))
            } catch {
                var error = error
                if error.ref == nil { error.ref = pending.ref }
                refuse(session, error)
            }
        }
        flushEffects()
    }

    /// A host's `call` action came back from the store: the room takes it (everyone gets `call`), then `ack`.
    func finishCallAction(_ sessionID: SessionID, ref: String?, _ result: Result<StoredCallChange, any Error>) {
        switch result {
        case .success(let change):
            metrics.callActions += 1
            deliver(rooms.update(callID: change.call.id, call: change.call.status(participants: 0), policy: change.policy))
            flushEffects()
            if let session = sessions[sessionID] { acknowledge(ref, session) }
        case .failure(let error):
            guard let session = sessions[sessionID] else { return }
            if let refused = error as? CallTransitionError {
                refuse(session, ProtocolError(.conflict, refused.message, ref: ref))
            } else {
                logger.error("call action not stored", metadata: ["error": "\(error)"])
                refuse(session, ProtocolError(.internal, "the change could not be stored", ref: ref))
            }
        }
    }

    /// Runs store work on the call queue; its result comes back through the inbox.
    func onCallWork(_ work: @escaping @Sendable () -> Completion) {
        callWork.addOperation { [inbox, server] in
            inbox.post(work())
            server.wakeUp()
        }
    }

    /// Hands what the rooms did to the store, in order, on the call queue.
    func flushEffects() {
        for effect in rooms.takeEffects() {
            switch effect {
            case .transition(let callID, let action, let at):
                callWork.addOperation { [calls, logger] in
                    do {
                        _ = try calls.transitionCall(id: callID, action, actorID: nil, at: at, now: Timestamp.now())
                    } catch {
                        // The call changed meanwhile (ended over REST): the live room hears of it separately.
                        logger.debug("automatic call step not stored", metadata: ["call": "\(callID)", "error": "\(error)"])
                    }
                }
            case .participantJoined(let callID, let peer, let name, let role, let userID, let at):
                let participant = CallParticipant(callId: callID, userId: userID, peerId: peer.rawValue, displayName: name,
                                                  role: role, joinedAt: at)
                storeQuietly("participant join") { [calls] in try calls.recordJoin(participant) }
            case .participantLeft(let callID, let peer, let reason, let at):
                storeQuietly("participant leave") { [calls] in
                    try calls.recordLeave(callID: callID, peerID: peer.rawValue, reason: reason.rawValue, at: at)
                }
            case .banned(let callID, let credential):
                storeQuietly("kick") { [calls] in try calls.ban(callID: callID, credential: credential, now: Timestamp.now()) }
            case .emptied(let callID, _, let at):
                idleCalls[callID] = (at, Self.monotonicNow() + configuration.callIdleGrace)
            }
        }
    }

    func storeQuietly(_ what: String, _ work: @escaping @Sendable () throws -> Void) {
        callWork.addOperation { [logger] in
            do { try work() } catch { logger.error("\(what) not stored", metadata: ["error": "\(error)"]) }
        }
    }

    /// Ends the stored calls whose rooms stayed empty for the grace period; `ended_at` is when they emptied.
    func endIdleCalls(now: Double) {
        for (callID, idle) in idleCalls where idle.deadline <= now {
            idleCalls.removeValue(forKey: callID)
            guard rooms.snapshot(callID: callID) == nil else { continue }
            callWork.addOperation { [calls, logger] in
                do {
                    _ = try calls.transitionCall(id: callID, .end, actorID: nil, at: idle.emptiedAt, now: Timestamp.now())
                    logger.info("idle call ended", metadata: ["call": "\(callID)"])
                } catch {
                    logger.debug("idle call not ended", metadata: ["call": "\(callID)", "error": "\(error)"])
                }
            }
        }
    }
}
