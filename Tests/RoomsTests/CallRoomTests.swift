import Foundation
import Testing
@testable import Rooms

/// The status machine alone: every legal step, and every illegal one refused with the current status.
@Suite struct CallLifecycleRules {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func call(_ status: CallState) -> CallStatus {
        CallStatus(id: "c", code: "K7M-2QX-9TB", status: status, startedAt: nil, endedAt: nil, participants: 0,
                   recording: false, locked: false)
    }

    /// The status after `action` from `status`, or nil when refused (then the error names the current status).
    func step(_ status: CallState, _ action: CallAction) -> CallState? {
        var value = call(status)
        do {
            try CallLifecycle.apply(action, to: &value, now: now)
            return value.status
        } catch {
            #expect(error.current == status && error.action == action)
            return nil
        }
    }

    @Test func followsTheContract() {
        let table: [(CallState, CallAction, CallState?)] = [
            (.scheduled, .start, .waiting), (.waiting, .start, nil), (.active, .start, nil), (.ended, .start, nil),
            (.cancelled, .start, nil),
            (.scheduled, .end, nil), (.waiting, .end, .ended), (.active, .end, .ended), (.ended, .end, nil),
            (.cancelled, .end, nil),
            (.scheduled, .cancel, .cancelled), (.waiting, .cancel, .cancelled), (.active, .cancel, nil),
            (.ended, .cancel, nil), (.cancelled, .cancel, nil),
            (.scheduled, .memberJoined, .waiting), (.waiting, .memberJoined, .waiting), (.active, .memberJoined, .active),
            (.ended, .memberJoined, nil), (.cancelled, .memberJoined, nil),
            (.waiting, .becameActive, .active), (.scheduled, .becameActive, nil), (.active, .becameActive, nil),
            (.scheduled, .lock, .scheduled), (.active, .unlock, .active), (.ended, .lock, nil), (.cancelled, .unlock, nil),
            (.waiting, .recordStart, .waiting), (.active, .recordStop, .active), (.scheduled, .recordStart, nil),
            (.ended, .recordStart, nil),
        ]
        for (from, action, expected) in table {
            #expect(step(from, action) == expected, "\(from) + \(action)")
        }
    }

    @Test func stampsTimesAndDuration() throws {
        var value = call(.waiting)
        try CallLifecycle.apply(.becameActive, to: &value, now: now)
        #expect(value.startedAt == now)
        value.recording = true
        try CallLifecycle.apply(.end, to: &value, now: now + 90.4)
        #expect(value.endedAt == now + 90.4 && !value.recording)
        #expect(CallLifecycle.duration(of: value) == 90)
        var never = call(.waiting)
        try CallLifecycle.apply(.end, to: &never, now: now)
        #expect(never.startedAt == nil && CallLifecycle.duration(of: never) == 0)
    }
}

/// Rooms of stored calls: roles, lobby, host actions, lock, kicks, the end, quality, and what goes to the store.
@Suite struct StoredCallRooms {
    let clock = TestClock()
    let host = SessionID(1), agent = SessionID(2), guest = SessionID(3), other = SessionID(4), stranger = SessionID(5)
    let code = RoomCode(parsing: "K7M2QX9TB", allowAnyCode: false)!
    let hostUser = Joiner.user(id: "u-host", companyID: "acme", licensed: true)
    let agentUser = Joiner.user(id: "u-agent", companyID: "acme", licensed: true)
    let guestToken = Joiner.guest(callID: "call-1", guestID: "g1")

    func opening(lobby: Bool = false, guestAccess: Bool = true, max: Int = 10, recording: Bool = true,
                 status: CallState = .scheduled, bans: Set<String> = []) -> CallOpening
    {
        CallOpening(call: CallStatus(id: "call-1", code: code.display, status: status, startedAt: nil, endedAt: nil,
                                     participants: 0, recording: false, locked: false),
                    policy: CallPolicy(callID: "call-1", companyID: "acme", hostUserID: "u-host", guestAccess: guestAccess,
                                       lobby: lobby, maxParticipants: max, recordingAllowed: recording),
                    bans: bans, history: [])
    }

    func directory() -> RoomDirectory {
        let clock = self.clock
        return RoomDirectory(openRooms: false, clock: { clock.now })
    }

    func messages(_ deliveries: [Delivery], to session: SessionID) -> [ServerMessage] {
        deliveries.filter { $0.recipients.contains(session) }.map(\.message)
    }

    func peerOf(_ deliveries: [Delivery]) -> PeerID? {
        for case .joined(_, let peer, _, _, _, _, _) in deliveries.map(\.message) { return peer }
        return nil
    }

    @Test func rolesFollowIdentity() throws {
        let rooms = directory()
        let first = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening())
        guard case .joined(_, _, let role, _, _, let call, _) = first[0].message else { Issue.record("no joined"); return }
        #expect(role == .host && call.status == .waiting)
        // scheduled → waiting is stored, and the join itself.
        let effects = rooms.takeEffects()
        #expect(effects.contains(.transition(callID: "call-1", .memberJoined, at: clock.now)))
        #expect(effects.contains { if case .participantJoined(_, _, "Olga", .host, "u-host", _) = $0 { true } else { false } })

        let second = try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: nil)
        guard case .joined(_, _, .member, _, _, let active, _) = second[0].message else { Issue.record("not a member"); return }
        #expect(active.status == .active && active.startedAt == clock.now)
        #expect(rooms.takeEffects().contains(.transition(callID: "call-1", .becameActive, at: clock.now)))

        #expect(throws: ProtocolError(.forbidden, "this call belongs to another company; join it with a guest token")) {
            try rooms.join(other, code: code, name: "Eve", joiner: .user(id: "u-eve", companyID: "globex", licensed: true),
                           ref: nil, opening: nil)
        }
        #expect(throws: ProtocolError(.forbidden, "this guest token is for another call")) {
            try rooms.join(other, code: code, name: "Gus", joiner: .guest(callID: "call-2", guestID: "g9"), ref: nil,
                           opening: nil)
        }
    }

    @Test func hostingNeedsALicenseAndGuestsNeedGuestAccess() {
        let rooms = directory()
        #expect(throws: ProtocolError(.forbidden, "hosting a call needs an assigned, unexpired license")) {
            try rooms.join(host, code: code, name: "Olga", joiner: .user(id: "u-host", companyID: "acme", licensed: false),
                           ref: nil, opening: opening())
        }
        #expect { try rooms.join(guest, code: code, name: "Gus", joiner: .anonymous, ref: nil,
                                 opening: opening(guestAccess: false)) } throws: { ($0 as? ProtocolError)?.code == .forbidden }
        #expect { try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil,
                                 opening: opening(status: .ended)) } throws: { ($0 as? ProtocolError)?.code == .conflict }
        #expect(rooms.roomCount == 0)
    }

    @Test func lobbyWaitsUntilAHostAdmits() throws {
        let rooms = directory()
        let waiting = try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: "j", opening: opening(lobby: true))
        guard case .lobby(_, "j") = waiting[0].message, waiting.count == 1 else { Issue.record("no lobby: \(waiting)"); return }
        #expect(rooms.peer(of: guest) == nil && rooms.room(of: guest) == code)
        #expect(throws: ProtocolError(.notInRoom, "join a room before sending 'chat'")) {
            try rooms.prepareChat(from: guest, text: "hi")
        }
        // A host who arrives is told who waits; members skip the lobby.
        let hostJoin = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: nil)
        let toHost = messages(hostJoin, to: host)
        guard case .lobbyWaiting(_, let waiter, "Gus") = toHost.last else { Issue.record("no lobby event: \(toHost)"); return }
        // Only hosts admit.
        _ = try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: nil)
        #expect(throws: ProtocolError(.forbidden, "only the call's host may send 'admit'")) {
            try rooms.admit(agent, peer: waiter.rawValue, ref: nil)
        }
        let admitted = try rooms.admit(host, peer: waiter.rawValue, ref: "a")
        #expect(messages(admitted, to: guest).contains { if case .joined = $0 { true } else { false } })
        #expect(messages(admitted, to: agent).contains { if case .peerJoined(let info) = $0 { info.peer == waiter } else { false } })
        guard case .ack("a") = messages(admitted, to: host).last else { Issue.record("no ack"); return }
        #expect(rooms.peer(of: guest) == waiter)
        #expect(throws: ProtocolError(.notFound, "no peer '\(waiter.rawValue)' waits in the lobby")) {
            try rooms.admit(host, peer: waiter.rawValue, ref: nil)
        }
    }

    @Test func kickRemovesAndBans() throws {
        let rooms = directory()
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening())
        let guestPeer = try #require(peerOf(try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil,
                                                           opening: nil)))
        _ = rooms.takeEffects()
        #expect(throws: ProtocolError(.forbidden, "only the call's host may send 'kick'")) {
            try rooms.kick(guest, peer: guestPeer.rawValue, ref: nil)
        }
        let kicked = try rooms.kick(host, peer: guestPeer.rawValue, ref: "k")
        guard case .peerLeft(guestPeer, .kicked) = messages(kicked, to: guest).first else { Issue.record("\(kicked)"); return }
        #expect(messages(kicked, to: host).contains { if case .peerLeft(guestPeer, .kicked) = $0 { true } else { false } })
        #expect(rooms.room(of: guest) == nil)
        let effects = rooms.takeEffects()
        #expect(effects.contains(.banned(callID: "call-1", credential: "guest:g1")))
        #expect(effects.contains(.participantLeft(callID: "call-1", peer: guestPeer, reason: .kicked, at: clock.now)))
        #expect(throws: ProtocolError(.forbidden, "you were removed from this call")) {
            try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil, opening: nil)
        }
        // A new guest token is a new guest.
        _ = try rooms.join(other, code: code, name: "Gus", joiner: .guest(callID: "call-1", guestID: "g2"), ref: nil,
                           opening: nil)
        let hostPeer = try #require(rooms.peer(of: host))
        #expect(throws: ProtocolError(.forbidden, "a host cannot be kicked")) {
            try rooms.kick(host, peer: hostPeer.rawValue, ref: nil)
        }
    }

    @Test func lockedRoomsRefuseNewcomersButNotTheHost() throws {
        let rooms = directory()
        var locked = opening()
        locked.call.locked = true
        #expect(throws: ProtocolError(.roomLocked, "the call is locked: nobody new may join")) {
            try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: locked)
        }
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: locked)
        #expect(throws: ProtocolError(.roomLocked, "the call is locked: nobody new may join")) {
            try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil, opening: nil)
        }
    }

    @Test func hostActionsAreCheckedBeforeTheStore() throws {
        let rooms = directory()
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening(recording: false))
        _ = try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: nil)
        #expect(try rooms.authorize(host, action: .lock) == ("call-1", "u-host"))
        #expect(throws: ProtocolError(.conflict, "cannot start a call that is active")) {
            try rooms.authorize(host, action: .start)
        }
        #expect(throws: ProtocolError(.forbidden, "the company does not allow recording")) {
            try rooms.authorize(host, action: .recordStart)
        }
        #expect(throws: ProtocolError(.forbidden, "only the call's host may send 'call'")) {
            try rooms.authorize(agent, action: .end)
        }
        #expect(throws: ProtocolError(.notInRoom, "join a call before sending 'call'")) {
            try rooms.authorize(stranger, action: .end)
        }
    }

    @Test func theEndReachesEveryoneAndClosesTheRoom() throws {
        let rooms = directory()
        let hostPeer = try #require(peerOf(try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil,
                                                          opening: opening())))
        let guestPeer = try #require(peerOf(try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil,
                                                           opening: nil)))
        _ = rooms.takeEffects()
        var ended = try #require(rooms.snapshot(callID: "call-1")).call
        ended.status = .ended
        ended.endedAt = clock.now
        let deliveries = rooms.update(callID: "call-1", call: ended, policy: nil)
        let toGuest = messages(deliveries, to: guest)
        guard toGuest.count == 3, case .call(let status) = toGuest[0], status.status == .ended,
              case .peerLeft(hostPeer, .ended) = toGuest[1], case .peerLeft(guestPeer, .ended) = toGuest[2]
        else { Issue.record("\(toGuest)"); return }
        #expect(rooms.roomCount == 0 && rooms.room(of: host) == nil && rooms.snapshot(callID: "call-1") == nil)
        let effects = rooms.takeEffects()
        #expect(effects.filter { if case .participantLeft(_, _, .ended, _) = $0 { true } else { false } }.count == 2)
        // An empty room of an ended call is not "emptied" (nothing to end later).
        #expect(!effects.contains { if case .emptied = $0 { true } else { false } })
    }

    @Test func anEmptiedRoomIsReportedForTheGracePeriod() throws {
        let rooms = directory()
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening())
        _ = rooms.takeEffects()
        #expect(rooms.leave(host, reason: .left).isEmpty)
        #expect(rooms.takeEffects().contains(.emptied(callID: "call-1", code: code, at: clock.now)))
    }

    @Test func qualityIsRateLimitedPerPeerAndGoesToHosts() throws {
        let rooms = directory()
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening())
        let guestPeer = try #require(peerOf(try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil,
                                                           opening: nil)))
        let sample = QualityStats(rttMs: 40)
        guard case .accepted("call-1", guestPeer, let deliveries) = try rooms.quality(from: guest, sample) else {
            Issue.record("not accepted"); return
        }
        #expect(deliveries.count == 1 && deliveries[0].recipients == [host] && deliveries[0].message.isDroppable)
        clock.now += 1.9
        guard case .dropped = try rooms.quality(from: guest, sample) else { Issue.record("not dropped"); return }
        clock.now += 0.2
        guard case .accepted = try rooms.quality(from: guest, QualityStats(lossPct: 3)) else { Issue.record("dropped"); return }
        #expect(rooms.snapshot(callID: "call-1")?.members.last?.quality == QualityStats(lossPct: 3))
        // The host's own samples go to no one (it is the only host).
        guard case .accepted(_, _, let none) = try rooms.quality(from: host, sample) else { Issue.record("dropped"); return }
        #expect(none.isEmpty)
    }

    @Test func admittingRespectsCapacity() throws {
        let rooms = directory()
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: opening(lobby: true, max: 2))
        let waiting = try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil, opening: nil)
        guard case .lobbyWaiting(_, let peer, _) = waiting.last?.message else { Issue.record("\(waiting)"); return }
        _ = try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: nil)  // now full
        #expect(throws: ProtocolError(.roomFull, "the call is full (2 participants); nobody more can be let in")) {
            try rooms.admit(host, peer: peer.rawValue, ref: nil)
        }
        _ = rooms.leave(agent, reason: .left)
        _ = try rooms.admit(host, peer: peer.rawValue, ref: nil)
        #expect(rooms.peer(of: guest) == peer)
    }

    @Test func capacityCountsMembersNotTheHost() throws {
        let rooms = directory()
        _ = try rooms.join(agent, code: code, name: "Ann", joiner: agentUser, ref: nil, opening: opening(max: 2))
        _ = try rooms.join(guest, code: code, name: "Gus", joiner: guestToken, ref: nil, opening: nil)
        #expect { try rooms.join(other, code: code, name: "Zed", joiner: .anonymous, ref: nil, opening: nil) } throws: {
            ($0 as? ProtocolError)?.code == .roomFull
        }
        _ = try rooms.join(host, code: code, name: "Olga", joiner: hostUser, ref: nil, opening: nil)
    }
}
