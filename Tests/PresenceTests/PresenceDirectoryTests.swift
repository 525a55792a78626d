import Foundation
import Testing
@testable import Presence

final class Clock: @unchecked Sendable {
    var now = Date(timeIntervalSince1970: 1_800_000_000)
}

/// Users × devices, states, the grace period and subscriptions, with a fixed clock.
@Suite struct PresenceBehaviour {
    let clock = Clock()

    func directory(grace: TimeInterval = 30) -> PresenceDirectory<Int> {
        let clock = self.clock
        return PresenceDirectory(grace: grace, clock: { clock.now })
    }

    @Test func subscribersSeeConnectsStatesAndDevices() {
        let presence = directory()
        #expect(presence.subscribe(100, users: ["ann", "ann", "bob"])
            == [PresenceInfo(user: "ann", state: .offline, devices: 0, lastSeen: nil),
                PresenceInfo(user: "bob", state: .offline, devices: 0, lastSeen: nil)])
        let first = presence.connected(1, user: "ann", company: "acme")
        #expect(first.count == 1 && first[0].recipients == [100])
        #expect(first[0].info == PresenceInfo(user: "ann", state: .online, devices: 1, lastSeen: clock.now))
        clock.now += 5
        #expect(presence.connected(2, user: "ann", company: "acme").first?.info.devices == 2)
        #expect(presence.setState(of: 2, .busy).first?.info.state == .busy)
        #expect(presence.setState(of: 1, .busy).isEmpty)  // no change, no message
        #expect(presence.setState(of: 1, .offline).isEmpty)  // not a state users set
        #expect(presence.disconnected(2).first?.info == PresenceInfo(user: "ann", state: .busy, devices: 1,
                                                                     lastSeen: clock.now))
        #expect(presence.onlineCount(company: "acme") == 1 && presence.onlineCount(company: "other") == 0)
    }

    @Test func aReconnectWithinTheGraceIsNoFlap() {
        let presence = directory(grace: 30)
        _ = presence.subscribe(100, users: ["ann"])
        _ = presence.connected(1, user: "ann", company: "acme")
        _ = presence.setState(of: 1, .away)
        clock.now += 1
        #expect(presence.disconnected(1).isEmpty)
        clock.now += 10
        #expect(presence.expire().isEmpty)
        #expect(presence.info("ann").state == .away && presence.onlineCount(company: "acme") == 1)
        #expect(presence.connected(2, user: "ann", company: "acme").isEmpty)  // same state, same device count
        #expect(presence.info("ann").state == .away)  // the chosen state survives the blip
    }

    @Test func offlineAfterTheGraceWithTheTimeTheyLeft() {
        let presence = directory(grace: 30)
        _ = presence.connected(1, user: "ann", company: "acme")
        _ = presence.subscribe(100, company: "acme", members: ["ann", "zed"])
        clock.now += 2
        let left = clock.now
        _ = presence.disconnected(1)
        clock.now += 29
        #expect(presence.expire().isEmpty)
        clock.now += 2
        let gone = presence.expire()
        #expect(gone.count == 1 && gone[0].recipients == [100])
        #expect(gone[0].info == PresenceInfo(user: "ann", state: .offline, devices: 0, lastSeen: left))
        #expect(presence.expire().isEmpty)
        // Back later: online again, in the default state.
        _ = presence.connected(3, user: "ann", company: "acme")
        #expect(presence.info("ann").state == .online)
    }

    @Test func companySubscriptionsCoverNewcomersAndEndWithTheConnection() {
        let presence = directory()
        let snapshot = presence.subscribe(100, company: "acme", members: ["zed", "ann"])
        #expect(snapshot.map(\.user) == ["ann", "zed"])
        #expect(presence.connected(1, user: "new-hire", company: "acme").first?.recipients == [100])
        #expect(presence.connected(2, user: "outsider", company: "globex").isEmpty)
        #expect(presence.subscribe(101, company: "acme", members: []).map(\.user) == ["new-hire"])
        presence.unsubscribeAll(100)
        #expect(presence.connected(3, user: "new-hire", company: "acme").first?.recipients == [101])
        _ = presence.disconnected(101)  // a subscriber that is not a device
        #expect(presence.connected(4, user: "new-hire", company: "acme").isEmpty)
    }

    @Test func aConnectionThatSignsInAsSomeoneElseMovesItsDevice() {
        let presence = directory(grace: 0)
        _ = presence.subscribe(100, users: ["ann", "bob"])
        _ = presence.connected(1, user: "ann", company: "acme")
        let switched = presence.connected(1, user: "bob", company: "acme")
        #expect(switched.map(\.info.user) == ["bob"])
        clock.now += 1
        #expect(presence.expire().map(\.info.user) == ["ann"])
    }
}
