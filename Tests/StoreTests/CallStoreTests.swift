import Foundation
import GRDB
import Rooms
import Testing
@testable import Store

/// Stored calls on a temporary database: codes, filters, the status machine in a transaction, stays, quality,
/// kicks and the reconciliation after a crash.
@Suite struct CallStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore, _ companyID: String, _ hostID: String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-calls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        let (company, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                  passwordHash: "h", now: now)
        try body(store, company.id, owner.id)
        try store.close()
    }

    func newCall(_ companyID: String, _ hostID: String, title: String = "Support") -> NewCall {
        NewCall(companyID: companyID, hostID: hostID, title: title, guestAccess: true, lobby: false, maxParticipants: 10,
                scheduledAt: nil)
    }

    @Test func createsScheduledCallsWithUniqueCodesAndFindsThem() throws {
        try withStore { store, company, host in
            var codes = Set<String>()
            for index in 0..<20 {
                let call = try store.createCall(newCall(company, host, title: "Call \(index)"), actorID: host,
                                                now: now + Double(index))
                #expect(call.status == .scheduled && call.code.count == 9)
                #expect(RoomCode(parsing: call.code, allowAnyCode: false)?.display == call.displayCode)
                codes.insert(call.code)
            }
            #expect(codes.count == 20)
            let newest = try store.calls(matching: CallFilter(companyID: company), offset: 0, limit: 5)
            #expect(newest.total == 20 && newest.items.first?.title == "Call 19")
            let code = try #require(codes.first)
            #expect(try store.call(codeKey: code)?.code == code)
            let found = try store.calls(matching: CallFilter(companyID: company, search: "call 1"), offset: 0, limit: 50)
            #expect(found.total == 11)  // "Call 1" and "Call 10" … "Call 19"
            let window = try store.calls(matching: CallFilter(companyID: company, createdFrom: now + 5, createdBefore: now + 8),
                                         offset: 0, limit: 50)
            #expect(window.items.map(\.title) == ["Call 7", "Call 6", "Call 5"])
            #expect(try store.calls(matching: CallFilter(companyID: "other"), offset: 0, limit: 5).total == 0)
        }
    }

    @Test func transitionsRunTheLifecycleInOneTransaction() throws {
        try withStore { store, company, host in
            let call = try store.createCall(newCall(company, host), actorID: host, now: now)
            #expect(throws: CallTransitionError(action: .end, current: .scheduled)) {
                try store.transitionCall(id: call.id, .end, actorID: host, at: now, now: now)
            }
            _ = try store.transitionCall(id: call.id, .memberJoined, actorID: nil, at: now + 1, now: now + 1)
            let active = try store.transitionCall(id: call.id, .becameActive, actorID: nil, at: now + 2, now: now + 2)
            #expect(active.status == .active && active.startedAt == now + 2)
            try store.recordJoin(CallParticipant(callId: call.id, userId: host, peerId: "p1", displayName: "Olga",
                                                 role: .host, joinedAt: now + 1))
            let recording = try store.transitionCall(id: call.id, .recordStart, actorID: host, at: now + 3, now: now + 3)
            #expect(recording.recording && recording.recordingChangedBy == host && recording.recordingChangedAt == now + 3)
            let ended = try store.transitionCall(id: call.id, .end, actorID: host, at: now + 62.4, now: now + 62.4)
            #expect(ended.status == .ended && ended.durationS == 60 && !ended.recording)
            #expect(try store.call(id: call.id) == ended)
            // Open stays close with the end.
            let stays = try store.participants(callID: call.id)
            #expect(stays.count == 1 && stays[0].leftAt == now + 62.4 && stays[0].leaveReason == "ended")
            #expect(throws: CallStoreError.notFound) { try store.transitionCall(id: "nope", .end, actorID: nil, at: now, now: now) }
        }
    }

    @Test func staysQualityAndKicks() throws {
        try withStore { store, company, host in
            let call = try store.createCall(newCall(company, host), actorID: host, now: now)
            try store.recordJoin(CallParticipant(callId: call.id, userId: nil, peerId: "p2", displayName: "Gus",
                                                 role: .guest, joinedAt: now))
            try store.recordLeave(callID: call.id, peerID: "p2", reason: "kicked", at: now + 5)
            try store.recordLeave(callID: call.id, peerID: "p2", reason: "left", at: now + 9)  // already closed
            #expect(try store.participants(callID: call.id).map(\.leaveReason) == ["kicked"])
            try store.addQualitySample(callID: call.id, peerID: "p2", QualityStats(rttMs: 10, lossPct: 1), at: now + 1)
            try store.addQualitySample(callID: call.id, peerID: "p2", QualityStats(rttMs: 30), at: now + 3)
            let summary = try store.qualitySummary(callID: call.id)
            #expect(summary.samples == 2 && summary.average.rttMs == 20 && summary.average.lossPct == 1)
            #expect(summary.average.jitterMs == nil)
            try store.ban(callID: call.id, credential: "guest:g1", now: now)
            try store.ban(callID: call.id, credential: "guest:g1", now: now)
            #expect(try store.bans(callID: call.id) == ["guest:g1"])
            #expect(try store.lastActivity(callID: call.id) == now + 5)
        }
    }

    @Test func reconcilesWhatACrashLeftOpen() throws {
        try withStore { store, company, host in
            let active = try store.createCall(newCall(company, host, title: "active"), actorID: host, now: now)
            _ = try store.transitionCall(id: active.id, .memberJoined, actorID: nil, at: now, now: now)
            _ = try store.transitionCall(id: active.id, .becameActive, actorID: nil, at: now + 1, now: now + 1)
            try store.recordJoin(CallParticipant(callId: active.id, userId: host, peerId: "p1", displayName: "Olga",
                                                 role: .host, joinedAt: now))
            try store.addQualitySample(callID: active.id, peerID: "p1", QualityStats(rttMs: 5), at: now + 30)
            let joinedWaiting = try store.createCall(newCall(company, host, title: "waiting, joined"), actorID: host, now: now)
            _ = try store.transitionCall(id: joinedWaiting.id, .memberJoined, actorID: nil, at: now, now: now)
            try store.recordJoin(CallParticipant(callId: joinedWaiting.id, userId: host, peerId: "p9",
                                                 displayName: "Olga", role: .host, joinedAt: now + 2))
            let startedOnly = try store.createCall(newCall(company, host, title: "started by REST"), actorID: host, now: now)
            _ = try store.transitionCall(id: startedOnly.id, .start, actorID: host, at: now, now: now)
            let scheduled = try store.createCall(newCall(company, host, title: "scheduled"), actorID: host, now: now)

            let ended = try store.reconcileCalls(now: now + 100)
            #expect(Set(ended.map(\.id)) == [active.id, joinedWaiting.id])
            let a = try #require(try store.call(id: active.id))
            #expect(a.status == .ended && a.endedAt == now + 30 && a.durationS == 29)
            let w = try #require(try store.call(id: joinedWaiting.id))
            #expect(w.status == .ended && w.endedAt == now + 2 && w.startedAt == nil && w.durationS == 0)
            #expect(try store.participants(callID: active.id).allSatisfy { $0.leftAt == now + 30 })
            #expect(try store.call(id: startedOnly.id)?.status == .waiting)
            #expect(try store.call(id: scheduled.id)?.status == .scheduled)
            #expect(try store.reconcileCalls(now: now + 200).isEmpty)
        }
    }
}
