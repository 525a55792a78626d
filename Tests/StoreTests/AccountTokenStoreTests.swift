import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct AccountSecurityStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-security-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    func owner(_ store: SQLiteStore, _ email: String = "ann@x.io") throws -> User {
        try store.register(companyName: "Acme", email: email, name: "Ann", passwordHash: "old", now: now).1
    }

    func session(_ store: SQLiteStore, _ user: User, _ refresh: String, at time: Date? = nil,
                 lifetime: TimeInterval = 3600) throws -> AuthSession
    {
        try store.createSession(userID: user.id, refreshTokenHash: refresh, userAgent: "ua", ip: "127.0.0.1",
                                now: time ?? now, lifetime: lifetime)
    }

    @Test func profileChangesNameAndEmailAndRefusesATakenEmail() throws {
        try withStore { store in
            let ann = try owner(store)
            _ = try owner(store, "bob@x.io")
            let later = now.addingTimeInterval(5)
            let renamed = try #require(try store.updateProfile(userID: ann.id, name: "Annie", email: nil, now: later))
            #expect(renamed.name == "Annie" && renamed.email == "ann@x.io" && renamed.updatedAt == later)
            #expect(throws: StoreError.conflict(field: "email")) {
                try store.updateProfile(userID: ann.id, name: nil, email: "BOB@x.io", now: later)
            }
            // Unchanged (same address, another case) is not a conflict with oneself and changes nothing.
            #expect(try store.updateProfile(userID: ann.id, name: nil, email: "ANN@x.io", now: later)?.email == "ann@x.io")
            #expect(try store.updateProfile(userID: "nobody", name: "X", email: nil, now: later) == nil)
        }
    }

    @Test func anEmailChangeUnverifiesAndVoidsTokensMailedToTheOldAddress() throws {
        try withStore { store in
            let ann = try owner(store)
            _ = try store.issueAccountToken(userID: ann.id, purpose: .verifyEmail, tokenHash: "v1", now: now, lifetime: 3600)
            #expect(try store.verifyEmail(tokenHash: "v1", now: now)?.emailVerifiedAt == now)
            _ = try store.issueAccountToken(userID: ann.id, purpose: .resetPassword, tokenHash: "r1", now: now, lifetime: 3600)
            _ = try store.issueAccountToken(userID: ann.id, purpose: .verifyEmail, tokenHash: "v2", now: now, lifetime: 3600)
            let moved = try #require(try store.updateProfile(userID: ann.id, name: nil, email: "ann@new.io", now: now))
            #expect(moved.email == "ann@new.io" && moved.emailVerifiedAt == nil)
            #expect(try store.resetPassword(tokenHash: "r1", passwordHash: "new", now: now) == nil)
            #expect(try store.verifyEmail(tokenHash: "v2", now: now) == nil)
            #expect(try store.user(email: "ann@x.io") == nil)
        }
    }

    @Test func passwordChangeKeepsOneSessionAndRevokesTheOthers() throws {
        try withStore { store in
            let ann = try owner(store)
            let bob = try owner(store, "bob@x.io")
            let kept = try session(store, ann, "a1")
            let other = try session(store, ann, "a2")
            let bobs = try session(store, bob, "b1")
            #expect(try store.changePassword(userID: ann.id, passwordHash: "new", keepingSession: kept.id, now: now) == 1)
            #expect(try store.user(id: ann.id)?.passwordHash == "new")
            #expect(try store.activeSession(id: kept.id, now: now) != nil)
            #expect(try store.activeSession(id: other.id, now: now) == nil)
            #expect(try store.session(refreshTokenHash: "a2")?.revokedReason == "password change")
            #expect(try store.activeSession(id: bobs.id, now: now) != nil)
            // Without a session to keep (an API key caller), every session goes.
            #expect(try store.changePassword(userID: ann.id, passwordHash: "newer", keepingSession: nil, now: now) == 1)
            #expect(try store.activeSession(id: kept.id, now: now) == nil)
        }
    }

    @Test func sessionsListOnlyActiveOnesMostRecentlyUsedFirstAndPage() throws {
        try withStore { store in
            let ann = try owner(store)
            let bob = try owner(store, "bob@x.io")
            let first = try session(store, ann, "a1", at: now)
            let second = try session(store, ann, "a2", at: now.addingTimeInterval(1))
            let third = try session(store, ann, "a3", at: now.addingTimeInterval(2))
            _ = try session(store, ann, "a4", at: now, lifetime: 1)  // expired by `later`
            _ = try session(store, bob, "b1")
            _ = try store.revokeSession(refreshTokenHash: "a3", reason: "logout", now: now)
            let later = now.addingTimeInterval(10)
            let all = try store.activeSessions(userID: ann.id, now: later, offset: 0, limit: 10)
            #expect(all.total == 2 && all.items.map(\.id) == [second.id, first.id])
            let page2 = try store.activeSessions(userID: ann.id, now: later, offset: 1, limit: 1)
            #expect(page2.total == 2 && page2.items.map(\.id) == [first.id])
            #expect(!all.items.contains { $0.id == third.id })
        }
    }

    @Test func aSessionIsRevokedOnlyByItsOwnerAndOnlyOnce() throws {
        try withStore { store in
            let ann = try owner(store)
            let bob = try owner(store, "bob@x.io")
            let annSession = try session(store, ann, "a1")
            #expect(try !store.revokeSession(id: annSession.id, userID: bob.id, reason: "x", now: now))
            #expect(try store.activeSession(id: annSession.id, now: now) != nil)
            #expect(try store.revokeSession(id: annSession.id, userID: ann.id, reason: "revoked by user", now: now))
            #expect(try store.activeSession(id: annSession.id, now: now) == nil)
            #expect(try store.rotateRefreshToken(presentedHash: "a1", newHash: "a1b", now: now) == .invalid)
            #expect(try !store.revokeSession(id: annSession.id, userID: ann.id, reason: "again", now: now))
            #expect(try !store.revokeSession(id: "unknown", userID: ann.id, reason: "x", now: now))
        }
    }

    @Test func resetTokensWorkOnceBeforeTheyExpireAndOnlyTheLatestOne() throws {
        try withStore { store in
            let ann = try owner(store)
            let token = try store.issueAccountToken(userID: ann.id, purpose: .resetPassword, tokenHash: "r1", now: now,
                                                    lifetime: 3600)
            #expect(token.expiresAt == now.addingTimeInterval(3600) && token.usedAt == nil)
            // A second request voids the first mail's token.
            _ = try store.issueAccountToken(userID: ann.id, purpose: .resetPassword, tokenHash: "r2", now: now, lifetime: 3600)
            #expect(try store.usableAccountToken(hash: "r1", purposes: [.resetPassword], now: now) == nil)
            #expect(try store.usableAccountToken(hash: "r2", purposes: [.resetPassword], now: now) != nil)
            // The wrong purpose is not usable: a verification token does not reset a password.
            #expect(try store.usableAccountToken(hash: "r2", purposes: [.verifyEmail], now: now) == nil)
            #expect(try store.verifyEmail(tokenHash: "r2", now: now) == nil)
            // Expiry.
            #expect(try store.resetPassword(tokenHash: "r2", passwordHash: "new", now: now.addingTimeInterval(3600)) == nil)
            let s1 = try session(store, ann, "a1")
            let s2 = try session(store, ann, "a2")
            let reset = try #require(try store.resetPassword(tokenHash: "r2", passwordHash: "new",
                                                             now: now.addingTimeInterval(3599)))
            #expect(reset.passwordHash == "new" && reset.emailVerifiedAt != nil)
            #expect(try store.activeSession(id: s1.id, now: now) == nil && store.activeSession(id: s2.id, now: now) == nil)
            // Single use.
            #expect(try store.resetPassword(tokenHash: "r2", passwordHash: "again", now: now) == nil)
            #expect(try store.user(id: ann.id)?.passwordHash == "new")
        }
    }

    @Test func invitationsAreRedeemedLikeResetsAndVerificationSetsTheDateOnce() throws {
        try withStore { store in
            let ann = try owner(store)
            _ = try store.issueAccountToken(userID: ann.id, purpose: .invitation, tokenHash: "i1", now: now, lifetime: 60)
            #expect(try store.resetPassword(tokenHash: "i1", passwordHash: "set", now: now)?.passwordHash == "set")
            _ = try store.issueAccountToken(userID: ann.id, purpose: .verifyEmail, tokenHash: "v1", now: now, lifetime: 60)
            // Already verified by redeeming the invitation: the date stays.
            #expect(try store.verifyEmail(tokenHash: "v1", now: now.addingTimeInterval(5))?.emailVerifiedAt == now)
            #expect(try store.verifyEmail(tokenHash: "v1", now: now) == nil)
        }
    }

    @Test func apiKeysAreListedWithoutRevokedOnesAndBelongToTheirUser() throws {
        try withStore { store in
            let ann = try owner(store)
            let bob = try owner(store, "bob@x.io")
            let old = try store.createAPIKey(userID: ann.id, name: "ci", prefix: "sbk_aaaa", keyHash: "k1", now: now)
            let new = try store.createAPIKey(userID: ann.id, name: "cron", prefix: "sbk_bbbb", keyHash: "k2",
                                             now: now.addingTimeInterval(1))
            _ = try store.createAPIKey(userID: bob.id, name: "bob", prefix: "sbk_cccc", keyHash: "k3", now: now)
            let listed = try store.apiKeys(userID: ann.id, offset: 0, limit: 10)
            #expect(listed.total == 2 && listed.items.map(\.id) == [new.id, old.id])
            #expect(try store.apiKey(id: old.id, userID: bob.id) == nil)
            #expect(try store.apiKey(id: old.id, userID: ann.id)?.name == "ci")
            #expect(try store.activeAPIKey(hash: "k1")?.id == old.id)

            try store.touchAPIKey(id: old.id, now: now.addingTimeInterval(9))
            #expect(try store.activeAPIKey(hash: "k1")?.lastUsedAt == now.addingTimeInterval(9))

            #expect(try !store.revokeAPIKey(id: old.id, userID: bob.id, now: now))
            #expect(try store.revokeAPIKey(id: old.id, userID: ann.id, now: now))
            #expect(try !store.revokeAPIKey(id: old.id, userID: ann.id, now: now))
            #expect(try store.activeAPIKey(hash: "k1") == nil)
            #expect(try store.apiKey(id: old.id, userID: ann.id) == nil)
            #expect(try store.apiKeys(userID: ann.id, offset: 0, limit: 10).items.map(\.id) == [new.id])
        }
    }

    @Test func mailGoesToTheOutbox() throws {
        try withStore { store in
            let mail = try store.enqueueMail(to: "ann@x.io", subject: "Hi", body: "token", now: now)
            let stored = try store.pool.read { db in try OutboxMail.fetchAll(db) }
            #expect(stored == [mail])
            #expect(mail.toEmail == "ann@x.io" && mail.createdAt == now)
        }
    }
}
