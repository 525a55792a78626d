import Foundation
import Testing
@testable import Store

@Suite struct AccountStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-accounts-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    @Test func registrationCreatesCompanyAndOwnerAndRefusesDuplicateEmails() throws {
        try withStore { store in
            let (company, user) = try store.register(companyName: "Acme", email: "Ann@Example.com", name: "Ann",
                                                     passwordHash: "h", now: now)
            #expect(user.role == .owner && user.companyId == company.id)
            #expect(try store.user(email: "ann@example.COM")?.id == user.id)
            #expect(try store.company(id: company.id)?.name == "Acme")
            #expect(throws: StoreError.conflict(field: "email")) {
                try store.register(companyName: "Other", email: "ANN@example.com", name: "A", passwordHash: "h", now: now)
            }
        }
    }

    @Test func refreshTokensRotateOnceAndReuseRevokesTheFamily() throws {
        try withStore { store in
            let (_, user) = try store.register(companyName: "Acme", email: "a@x.io", name: "A", passwordHash: "h", now: now)
            let session = try store.createSession(userID: user.id, refreshTokenHash: "t1", userAgent: "ua", ip: "127.0.0.1",
                                                  now: now, lifetime: 3600)
            guard case .rotated(let rotated, let owner) = try store.rotateRefreshToken(presentedHash: "t1", newHash: "t2", now: now)
            else { Issue.record("t1 did not rotate"); return }
            #expect(rotated.id == session.id && owner.id == user.id)
            #expect(try store.rotateRefreshToken(presentedHash: "nope", newHash: "x", now: now) == .invalid)
            // t1 again: reuse; the session is revoked, so t2 is dead too.
            #expect(try store.rotateRefreshToken(presentedHash: "t1", newHash: "t3", now: now) == .reused(sessionID: session.id))
            #expect(try store.activeSession(id: session.id, now: now) == nil)
            #expect(try store.rotateRefreshToken(presentedHash: "t2", newHash: "t4", now: now) == .invalid)
        }
    }

    @Test func sessionsExpireAndCanBeRevokedByTheirToken() throws {
        try withStore { store in
            let (_, user) = try store.register(companyName: "Acme", email: "a@x.io", name: "A", passwordHash: "h", now: now)
            let session = try store.createSession(userID: user.id, refreshTokenHash: "t1", userAgent: nil, ip: nil,
                                                  now: now, lifetime: 60)
            #expect(try store.activeSession(id: session.id, now: now.addingTimeInterval(59)) != nil)
            #expect(try store.activeSession(id: session.id, now: now.addingTimeInterval(61)) == nil)
            #expect(try store.rotateRefreshToken(presentedHash: "t1", newHash: "t2", now: now.addingTimeInterval(61)) == .invalid)
            #expect(try store.revokeSession(refreshTokenHash: "t1", reason: "logout", now: now)?.id == session.id)
            #expect(try store.activeSession(id: session.id, now: now) == nil)
            #expect(try store.revokeSession(refreshTokenHash: "unknown", reason: "logout", now: now) == nil)
        }
    }
}
