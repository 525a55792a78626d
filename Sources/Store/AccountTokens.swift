import Foundation
import GRDB

/// A long-lived credential for scripts and integrations: `Authorization: Bearer sbk_…` authenticates as its
/// user. Only the SHA-256 of the key is stored; `prefix` (its first characters) lets the owner recognise it.
public struct APIKey: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "api_keys"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var userId: String
    public var name: String
    public var prefix: String
    public var keyHash: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?
}

/// What a single-use account token is for.
public enum AccountTokenPurpose: String, Codable, Sendable, CaseIterable {
    case resetPassword = "reset_password"
    case verifyEmail = "verify_email"
    /// A set-password token for a user added without a password; redeemed like a reset token.
    case invitation
}

/// A single-use, expiring token sent by mail (password reset, email verification, invitation). Only its
/// SHA-256 is stored.
public struct AccountToken: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "account_tokens"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var userId: String
    public var purpose: AccountTokenPurpose
    public var tokenHash: String
    public var createdAt: Date
    public var expiresAt: Date
    public var usedAt: Date?

    public func isUsable(at now: Date) -> Bool { usedAt == nil && expiresAt > now }
}

/// One message in the outbox: what would go to a mail server (there is none here).
public struct OutboxMail: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "outbox"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var toEmail: String
    public var subject: String
    public var body: String
    public var createdAt: Date
}

/// One page of a list, with the number of items on all pages.
public struct Paged<Item: Sendable>: Sendable {
    public var items: [Item]
    public var total: Int

    public init(items: [Item], total: Int) {
        self.items = items
        self.total = total
    }
}

/// Outgoing mail, stored durably until something delivers it.
public protocol OutboxStore: Sendable {
    /// Appends a message to the outbox.
    func enqueueMail(to email: String, subject: String, body: String, now: Date) throws -> OutboxMail
}

/// What users manage about their own account: profile, password, login sessions, API keys, and the
/// single-use tokens that reset passwords and verify emails. Synchronous: call from a worker thread.
public protocol AccountSecurityStore: Sendable {
    /// Changes a user's name and/or email (nil: unchanged). A new email clears `email_verified_at` and
    /// voids the user's outstanding reset and verification tokens (they were sent to the old address).
    /// Throws `StoreError.conflict(field: "email")` when the email belongs to someone else; nil when the
    /// user does not exist.
    func updateProfile(userID: String, name: String?, email: String?, now: Date) throws -> User?
    /// Sets a new password hash and revokes every active session of the user except `keepingSession`.
    /// Returns how many sessions were revoked.
    func changePassword(userID: String, passwordHash: String, keepingSession: String?, now: Date) throws -> Int

    /// The user's active (neither revoked nor expired) sessions, most recently used first.
    func activeSessions(userID: String, now: Date, offset: Int, limit: Int) throws -> Paged<AuthSession>
    /// Revokes one active session of this user. False when there is none with that id (unknown, another
    /// user's, or no longer active).
    func revokeSession(id: String, userID: String, reason: String, now: Date) throws -> Bool

    /// Stores a new single-use token; the user's earlier unused tokens of the same purpose are voided, so
    /// only the latest one mailed works.
    func issueAccountToken(userID: String, purpose: AccountTokenPurpose, tokenHash: String, now: Date,
                           lifetime: TimeInterval) throws -> AccountToken
    /// The token with this hash if it has one of `purposes`, is unused, unexpired, and its user exists.
    func usableAccountToken(hash: String, purposes: Set<AccountTokenPurpose>, now: Date) throws -> AccountToken?
    /// Redeems a reset or invitation token in one transaction: uses it up, sets the password, marks the
    /// email verified (the token arrived by mail) and revokes all the user's sessions. Nil when the token is
    /// not usable.
    func resetPassword(tokenHash: String, passwordHash: String, now: Date) throws -> User?
    /// Redeems a verification token: uses it up and sets `email_verified_at`. Nil when not usable.
    func verifyEmail(tokenHash: String, now: Date) throws -> User?

    func createAPIKey(userID: String, name: String, prefix: String, keyHash: String, now: Date) throws -> APIKey
    /// The user's keys that are not revoked, newest first.
    func apiKeys(userID: String, offset: Int, limit: Int) throws -> Paged<APIKey>
    /// One of the user's keys that is not revoked.
    func apiKey(id: String, userID: String) throws -> APIKey?
    /// Revokes one of the user's keys. False when there is none with that id that is not revoked.
    func revokeAPIKey(id: String, userID: String, now: Date) throws -> Bool
    /// The key with this hash, if it is not revoked.
    func activeAPIKey(hash: String) throws -> APIKey?
    /// Records a use of a key (`last_used_at`).
    func touchAPIKey(id: String, now: Date) throws
}

extension SQLiteStore: OutboxStore {
    public func enqueueMail(to email: String, subject: String, body: String, now: Date) throws -> OutboxMail {
        try pool.write { db in
            let mail = OutboxMail(id: UUID().uuidString.lowercased(), toEmail: email, subject: subject, body: body,
                                  createdAt: now)
            try mail.insert(db)
            return mail
        }
    }
}

extension SQLiteStore: AccountSecurityStore {
    public func updateProfile(userID: String, name: String?, email: String?, now: Date) throws -> User? {
        try pool.write { db in
            guard var user = try User.fetchOne(db, key: userID), user.deletedAt == nil else { return nil }
            var changed: [String] = []
            if let name, name != user.name {
                user.name = name
                changed.append("name")
            }
            if let email, email.lowercased() != user.email.lowercased() {
                if try User.filter(Column("email").collating(.nocase) == email).filter(Column("id") != userID)
                    .fetchCount(db) > 0
                {
                    throw StoreError.conflict(field: "email")
                }
                user.email = email
                user.emailVerifiedAt = nil
                try Self.voidAccountTokens(db, userID: userID, purposes: [.resetPassword, .verifyEmail], now: now)
                changed.append("email")
            }
            guard !changed.isEmpty else { return user }
            user.updatedAt = now
            try user.update(db)
            try Self.audit(db, companyID: user.companyId, actorID: userID, action: "profile.update",
                           targetType: "user", targetID: userID, now: now)
            return user
        }
    }

    public func changePassword(userID: String, passwordHash: String, keepingSession: String?, now: Date) throws -> Int {
        try pool.write { db in
            guard var user = try User.fetchOne(db, key: userID) else { return 0 }
            user.passwordHash = passwordHash
            user.updatedAt = now
            try user.update(db)
            let revoked = try Self.revokeSessions(db, userID: userID, except: keepingSession, reason: "password change",
                                                  now: now)
            try Self.audit(db, companyID: user.companyId, actorID: userID, action: "password.change",
                           targetType: "user", targetID: userID, now: now)
            return revoked
        }
    }

    public func activeSessions(userID: String, now: Date, offset: Int, limit: Int) throws -> Paged<AuthSession> {
        try pool.read { db in
            let active = AuthSession.filter(Column("user_id") == userID && Column("revoked_at") == nil
                                            && Column("expires_at") > now)
            let items = try active.order(Column("last_used_at").desc, Column("created_at").desc, Column("id"))
                .limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: try active.fetchCount(db))
        }
    }

    public func revokeSession(id: String, userID: String, reason: String, now: Date) throws -> Bool {
        try pool.write { db in
            guard var session = try AuthSession.fetchOne(db, key: id), session.userId == userID,
                  session.isActive(at: now)
            else { return false }
            session.revokedAt = now
            session.revokedReason = reason
            try session.update(db)
            try Self.audit(db, companyID: nil, actorID: userID, action: "session.revoke", targetType: "session",
                           targetID: id, now: now)
            return true
        }
    }

    public func issueAccountToken(userID: String, purpose: AccountTokenPurpose, tokenHash: String, now: Date,
                                  lifetime: TimeInterval) throws -> AccountToken
    {
        try pool.write { db in
            try Self.voidAccountTokens(db, userID: userID, purposes: [purpose], now: now)
            let token = AccountToken(id: UUID().uuidString.lowercased(), userId: userID, purpose: purpose,
                                     tokenHash: tokenHash, createdAt: now, expiresAt: now.addingTimeInterval(lifetime),
                                     usedAt: nil)
            try token.insert(db)
            return token
        }
    }

    public func usableAccountToken(hash: String, purposes: Set<AccountTokenPurpose>, now: Date) throws -> AccountToken? {
        try pool.read { db in try Self.usableToken(db, hash: hash, purposes: purposes, now: now)?.token }
    }

    public func resetPassword(tokenHash: String, passwordHash: String, now: Date) throws -> User? {
        try pool.write { db in
            guard var (token, user) = try Self.usableToken(db, hash: tokenHash, purposes: [.resetPassword, .invitation],
                                                           now: now)
            else { return nil }
            token.usedAt = now
            try token.update(db)
            user.passwordHash = passwordHash
            user.emailVerifiedAt = user.emailVerifiedAt ?? now
            user.updatedAt = now
            try user.update(db)
            _ = try Self.revokeSessions(db, userID: user.id, except: nil, reason: "password reset", now: now)
            try Self.audit(db, companyID: user.companyId, actorID: user.id, action: "password.reset",
                           targetType: "user", targetID: user.id, now: now)
            return user
        }
    }

    public func verifyEmail(tokenHash: String, now: Date) throws -> User? {
        try pool.write { db in
            guard var (token, user) = try Self.usableToken(db, hash: tokenHash, purposes: [.verifyEmail], now: now)
            else { return nil }
            token.usedAt = now
            try token.update(db)
            if user.emailVerifiedAt == nil {
                user.emailVerifiedAt = now
                user.updatedAt = now
                try user.update(db)
            }
            return user
        }
    }

    public func createAPIKey(userID: String, name: String, prefix: String, keyHash: String, now: Date) throws -> APIKey {
        try pool.write { db in
            let key = APIKey(id: UUID().uuidString.lowercased(), userId: userID, name: name, prefix: prefix,
                             keyHash: keyHash, createdAt: now, lastUsedAt: nil, revokedAt: nil)
            try key.insert(db)
            try Self.audit(db, companyID: nil, actorID: userID, action: "api_key.create", targetType: "api_key",
                           targetID: key.id, now: now)
            return key
        }
    }

    public func apiKeys(userID: String, offset: Int, limit: Int) throws -> Paged<APIKey> {
        try pool.read { db in
            let active = APIKey.filter(Column("user_id") == userID && Column("revoked_at") == nil)
            let items = try active.order(Column("created_at").desc, Column("id")).limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: try active.fetchCount(db))
        }
    }

    public func apiKey(id: String, userID: String) throws -> APIKey? {
        try pool.read { db in try APIKey.fetchOne(db, key: id) }
            .flatMap { $0.userId == userID && $0.revokedAt == nil ? $0 : nil }
    }

    public func revokeAPIKey(id: String, userID: String, now: Date) throws -> Bool {
        try pool.write { db in
            guard var key = try APIKey.fetchOne(db, key: id), key.userId == userID, key.revokedAt == nil else {
                return false
            }
            key.revokedAt = now
            try key.update(db)
            try Self.audit(db, companyID: nil, actorID: userID, action: "api_key.revoke", targetType: "api_key",
                           targetID: id, now: now)
            return true
        }
    }

    public func activeAPIKey(hash: String) throws -> APIKey? {
        try pool.read { db in
            try APIKey.filter(Column("key_hash") == hash && Column("revoked_at") == nil).fetchOne(db)
        }
    }

    public func touchAPIKey(id: String, now: Date) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE api_keys SET last_used_at = ? WHERE id = ?", arguments: [now, id])
        }
    }

    /// Revokes the user's active sessions but one; returns how many.
    private static func revokeSessions(_ db: Database, userID: String, except kept: String?, reason: String,
                                       now: Date) throws -> Int
    {
        try db.execute(sql: """
            UPDATE auth_sessions SET revoked_at = ?, revoked_reason = ?
            WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?
            """, arguments: [now, reason, userID, kept])
        return db.changesCount
    }

    /// Marks the user's unused tokens of these purposes as used.
    private static func voidAccountTokens(_ db: Database, userID: String, purposes: Set<AccountTokenPurpose>,
                                          now: Date) throws
    {
        try AccountToken.filter(Column("user_id") == userID && purposes.map(\.rawValue).contains(Column("purpose"))
                                && Column("used_at") == nil)
            .updateAll(db, Column("used_at").set(to: now))
    }

    private static func usableToken(_ db: Database, hash: String, purposes: Set<AccountTokenPurpose>,
                                    now: Date) throws -> (token: AccountToken, user: User)?
    {
        guard let token = try AccountToken.filter(Column("token_hash") == hash).fetchOne(db),
              purposes.contains(token.purpose), token.isUsable(at: now),
              let user = try User.fetchOne(db, key: token.userId), user.deletedAt == nil
        else { return nil }
        return (token, user)
    }
}
