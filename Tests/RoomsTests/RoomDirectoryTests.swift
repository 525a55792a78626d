import Foundation
import Testing
@testable import Rooms

/// A fixed clock for deterministic timestamps.
final class TestClock: @unchecked Sendable {
    var now = Date(timeIntervalSince1970: 1_800_000_000)
}

private func code(_ text: String) -> RoomCode { RoomCode(parsing: text, allowAnyCode: true)! }

private func joined(_ deliveries: [Delivery]) -> (peer: PeerID, peers: [PeerInfo], chat: [ChatMessage], call: CallStatus, ref: String?)? {
    for delivery in deliveries {
        if case .joined(_, let peer, _, let peers, let chat, let call, let ref) = delivery.message {
            return (peer, peers, chat, call, ref)
        }
    }
    return nil
}

@Suite struct RoomDirectoryBehaviour {
    let clock = TestClock()
    let s1 = SessionID(1), s2 = SessionID(2), s3 = SessionID(3)

    func directory(maxPeers: Int = 50, open: Bool = true) -> RoomDirectory {
        var limits = RoomLimits()
        limits.maxPeersPerRoom = maxPeers
        limits.maxChatLength = 10
        limits.chatHistory = 3
        let clock = self.clock
        return RoomDirectory(limits: limits, openRooms: open, clock: { clock.now })
    }

    @Test func joinTellsTheJoinerAndTheOthers() throws {
        let rooms = directory()
        let first = try rooms.join(s1, code: code("room"), name: "  Ann ", ref: nil)
        let ann = try #require(joined(first))
        #expect(ann.peers.isEmpty)
        #expect(ann.call.status == .waiting && ann.call.participants == 1 && ann.call.startedAt == nil)
        #expect(first.count == 1)

        let second = try rooms.join(s2, code: code("ROOM"), name: "Bob", ref: "r")
        let bob = try #require(joined(second))
        #expect(bob.peers == [PeerInfo(peer: ann.peer, name: "Ann", role: .guest)])
        #expect(bob.ref == "r")
        #expect(bob.call.status == .active && bob.call.startedAt == clock.now && bob.call.participants == 2)
        // joined to Bob, peer-joined to Ann, then `call` (now active) to both.
        #expect(second.count == 3)
        #expect(second[1].recipients == [s1])
        guard case .peerJoined(let info) = second[1].message else { Issue.record("no peer-joined"); return }
        #expect(info.name == "Bob" && info.peer == bob.peer)
        #expect(Set(second[2].recipients) == [s1, s2])
        guard case .call(let status) = second[2].message else { Issue.record("no call"); return }
        #expect(status.status == .active)
    }

    @Test func refusesDoubleJoinFullRoomsAndBadNames() throws {
        let rooms = directory(maxPeers: 2)
        _ = try rooms.join(s1, code: code("r"), name: "A", ref: nil)
        #expect(throws: ProtocolError(.conflict, "already in room 'R'; leave it first")) {
            try rooms.join(s1, code: code("other"), name: "A", ref: nil)
        }
        _ = try rooms.join(s2, code: code("r"), name: "B", ref: nil)
        #expect { try rooms.join(s3, code: code("r"), name: "C", ref: nil) } throws: {
            ($0 as? ProtocolError)?.code == .roomFull
        }
        for bad in ["", "   ", String(repeating: "x", count: 65), "a\u{07}b"] {
            #expect { try rooms.join(s3, code: code("z"), name: bad, ref: nil) } throws: {
                ($0 as? ProtocolError)?.code == .badRequest
            }
        }
        #expect(rooms.room(of: s3) == nil)
    }

    @Test func closedModeTakesOnlyCallCodes() throws {
        let rooms = directory(open: false)
        #expect(try rooms.resolve(code: "k7m-2qx-9tb").display == "K7M-2QX-9TB")
        #expect { try rooms.resolve(code: "anything") } throws: { ($0 as? ProtocolError)?.code == .notFound }
    }

    @Test func leaveTellsTheOthersAndEmptyRoomsVanish() throws {
        let rooms = directory()
        _ = try rooms.join(s1, code: code("r"), name: "A", ref: nil)
        _ = try rooms.join(s2, code: code("r"), name: "B", ref: nil)
        let peer1 = try #require(rooms.peer(of: s1))
        let left = rooms.leave(s1, reason: .timeout)
        #expect(left.count == 1 && left[0].recipients == [s2])
        guard case .peerLeft(let peer, let reason) = left[0].message else { Issue.record("no peer-left"); return }
        #expect(peer == peer1 && reason == .timeout)
        #expect(rooms.leave(s1, reason: .left).isEmpty)
        #expect(rooms.leave(s2, reason: .left).isEmpty)
        #expect(rooms.roomCount == 0 && rooms.memberCount == 0)
        #expect(!rooms.isLive(code("r")))
    }

    @Test func routesSignalsOnlyInsideTheRoom() throws {
        let rooms = directory()
        _ = try rooms.join(s1, code: code("r1"), name: "A", ref: nil)
        _ = try rooms.join(s2, code: code("r1"), name: "B", ref: nil)
        _ = try rooms.join(s3, code: code("r2"), name: "C", ref: nil)
        let p1 = try #require(rooms.peer(of: s1)), p2 = try #require(rooms.peer(of: s2))
        let p3 = try #require(rooms.peer(of: s3))
        let route = try rooms.route(signalFrom: s1, to: p2.rawValue)
        #expect(route.from == p1 && route.to == s2)
        #expect { try rooms.route(signalFrom: s1, to: p3.rawValue) } throws: { ($0 as? ProtocolError)?.code == .notFound }
        #expect { try rooms.route(signalFrom: s1, to: "nobody") } throws: { ($0 as? ProtocolError)?.code == .notFound }
        #expect { try rooms.route(signalFrom: s1, to: p1.rawValue) } throws: { ($0 as? ProtocolError)?.code == .badRequest }
        #expect { try rooms.route(signalFrom: SessionID(9), to: p1.rawValue) } throws: {
            ($0 as? ProtocolError)?.code == .notInRoom
        }
    }

    @Test func chatIsValidatedPublishedAndRemembered() throws {
        let rooms = directory()
        #expect { try rooms.prepareChat(from: s1, text: "hi") } throws: { ($0 as? ProtocolError)?.code == .notInRoom }
        _ = try rooms.join(s1, code: code("r"), name: "A", ref: nil)
        _ = try rooms.join(s2, code: code("r"), name: "B", ref: nil)
        #expect { try rooms.prepareChat(from: s1, text: " \n ") } throws: { ($0 as? ProtocolError)?.code == .badRequest }
        #expect { try rooms.prepareChat(from: s1, text: "12345678901") } throws: {
            ($0 as? ProtocolError)?.code == .badRequest
        }
        let message = try rooms.prepareChat(from: s1, text: "hello")
        #expect(message.room == "R" && message.name == "A" && message.sentAt == clock.now)
        let deliveries = rooms.publishChat(message, sender: s1, ref: "c1")
        #expect(deliveries.count == 2)
        guard case .chat(_, let ref) = deliveries[0].message else { Issue.record("no chat"); return }
        #expect(deliveries[0].recipients == [s1] && ref == "c1")
        guard case .chat(_, let otherRef) = deliveries[1].message else { Issue.record("no chat"); return }
        #expect(deliveries[1].recipients == [s2] && otherRef == nil)

        for index in 0..<4 { _ = rooms.publishChat(try rooms.prepareChat(from: s2, text: "m\(index)"), sender: s2, ref: nil) }
        _ = rooms.leave(s1, reason: .left)
        let rejoin = try #require(joined(try rooms.join(s1, code: code("r"), name: "A", ref: nil)))
        #expect(rejoin.chat.map(\.text) == ["m1", "m2", "m3"])  // the 3 most recent, oldest first
    }

    @Test func newRoomStartsWithStoredHistory() throws {
        let rooms = directory()
        let old = ChatMessage(id: "1", room: "R", from: PeerID("px"), name: "X", text: "earlier", sentAt: clock.now)
        let first = try #require(joined(try rooms.join(s1, code: code("r"), name: "A", ref: nil, history: [old])))
        #expect(first.chat == [old])
    }

    @Test func typingGoesToTheOthersOnly() throws {
        let rooms = directory()
        #expect { try rooms.typing(from: s1, on: true) } throws: { ($0 as? ProtocolError)?.code == .notInRoom }
        _ = try rooms.join(s1, code: code("r"), name: "A", ref: nil)
        #expect(try rooms.typing(from: s1, on: true).isEmpty)
        _ = try rooms.join(s2, code: code("r"), name: "B", ref: nil)
        let deliveries = try rooms.typing(from: s1, on: true)
        #expect(deliveries.count == 1 && deliveries[0].recipients == [s2])
        #expect(deliveries[0].message.isDroppable)
    }
}
