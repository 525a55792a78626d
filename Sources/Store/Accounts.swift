import Foundation
import GRDB

/// A role inside a company; `admin` spans companies.
public enum UserRole: String, Codable, Sendable, CaseIterable {
    case admin, owner, agent, member
}

/// A customer company: the unit that owns users, calls and licenses.
public struct Company: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "companies"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var name: String
    public var guestAccess: Bool
    public var lobby: Bool
    public var maxParticipants: Int
    public var recordingAllowed: Bool
    public var timezone: String
    public var logoPath: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var deletedAt: Date?
}

/// A person with a login. Soft-deleted users keep their row (`deleted_at`) and cannot log in.
public struct User: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "users"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var companyId: String?
    public var email: String
    public var name: String
    public var role: UserRole
    public var passwordHash: String?
    public var emailVerifiedAt: Date?
    public var avatarPath: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var deletedAt: Date?
}

/// One login: the family of refresh tokens rotated from it. Access tokens name it in `sid`.
public struct AuthSession: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "auth_sessions"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var userId: String
    public var createdAt: Date
    public var expiresAt: Date
    public var lastUsedAt: Date
    public var revokedAt: Date?
    public var revokedReason: String?
    public var userAgent: String?
    public var ip: String?

    public func isActive(at now: Date) -> Bool { revokedAt == nil && expiresAt > now }
}

/// What presenting a refresh token did.
public enum RefreshOutcome: Equatable, Sendable {
    /// The token was current: it is now used, and `session` continues with the new token.
    case rotated(AuthSession, User)
    /// The token had been used before: the whole session was revoked.
    case reused(sessionID: String)
    /// Unknown, expired, revoked, or its user is gone.
    case invalid
}

/// Failures the store reports in domain terms.
public enum StoreError: Error, Equatable {
    /// A unique value (e.g. an email) is taken.
    case conflict(field: String)
}

/// Accounts: companies, users and login sessions, with what users manage themselves (`AccountSecurityStore`)
/// and the mail that account flows send (`OutboxStore`). Synchronous: call from a worker thread, never from
/// the service thread.
public protocol AccountStore: AccountSecurityStore, OutboxStore {
    /// Creates a company and its first user, the owner, in one transaction.
    func register(companyName: String, email: String, name: String, passwordHash: String, now: Date) throws
        -> (Company, User)
    func user(id: String) throws -> User?
    /// A user who is not deleted, by email (case-insensitive).
    func user(email: String) throws -> User?
    func company(id: String) throws -> Company?
    /// Starts a login session with its first refresh token (stored hashed).
    func createSession(userID: String, refreshTokenHash: String, userAgent: String?, ip: String?, now: Date,
                       lifetime: TimeInterval) throws -> AuthSession
    /// Uses a refresh token once and stores its successor; a token used twice revokes its session.
    func rotateRefreshToken(presentedHash: String, newHash: String, now: Date) throws -> RefreshOutcome
    /// Revokes the session a refresh token belongs to. Returns the session, or nil if the token is unknown.
    func revokeSession(refreshTokenHash: String, reason: String, now: Date) throws -> AuthSession?
    /// A session that is neither revoked nor expired.
    func activeSession(id: String, now: Date) throws -> AuthSession?
    /// The session a refresh token belongs to, whatever its state.
    func session(refreshTokenHash: String) throws -> AuthSession?
    /// Of these credentials, the ones still good at `now`: sessions neither revoked nor expired and API keys
    /// not revoked, of users not deleted. (Open WebSockets are re-checked with it.)
    func validCredentials(sessionIDs: [String], apiKeyIDs: [String], now: Date) throws
        -> (sessions: Set<String>, apiKeys: Set<String>)
}

extension SQLiteStore: AccountStore {
    public func register(companyName: String, email: String, name: String, passwordHash: String, now: Date) throws
        -> (Company, User)
    {
        try pool.write { db in
            if try User.filter(Column("email").collating(.nocase) == email).fetchCount(db) > 0 {
                throw StoreError.conflict(field: "email")
            }
            let company = Company(id: UUID().uuidString.lowercased(), name: companyName, guestAccess: true, lobby: false,
                                  maxParticipants: 10, recordingAllowed: false, timezone: "UTC", logoPath: nil,
                                  createdAt: now, updatedAt: now, deletedAt: nil)
            try company.insert(db)
            let user = User(id: UUID().uuidString.lowercased(), companyId: company.id, email: email, name: name,
                            role: .owner, passwordHash: passwordHash, emailVerifiedAt: nil, avatarPath: nil,
                            createdAt: now, updatedAt: now, deletedAt: nil)
            try user.insert(db)
            try Self.audit(db, companyID: company.id, actorID: user.id, action: "register", targetType: "user",
                           targetID: user.id, now: now)
            return (company, user)
        }
    }

    public func user(id: String) throws -> User? {
        try pool.read { db in try User.fetchOne(db, key: id) }
    }

    public func user(email: String) throws -> User? {
        try pool.read { db in
            try User.filter(Column("email").collating(.nocase) == email).filter(Column("deleted_at") == nil).fetchOne(db)
        }
    }

    public func company(id: String) throws -> Company? {
        try pool.read { db in try Company.fetchOne(db, key: id) }
    }

    public func createSession(userID: String, refreshTokenHash: String, userAgent: String?, ip: String?, now: Date,
                              lifetime: TimeInterval) throws -> AuthSession
    {
        try pool.write { db in
            let session = AuthSession(id: UUID().uuidString.lowercased(), userId: userID, createdAt: now,
                                      expiresAt: now.addingTimeInterval(lifetime), lastUsedAt: now, revokedAt: nil,
                                      revokedReason: nil, userAgent: userAgent.map { String($0.prefix(256)) },
                                      ip: ip)
            try session.insert(db)
            try db.execute(sql: "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
                           arguments: [refreshTokenHash, session.id, now])
            return session
        }
    }

    public func rotateRefreshToken(presentedHash: String, newHash: String, now: Date) throws -> RefreshOutcome {
        try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = ?",
                                             arguments: [presentedHash]),
                  var session = try AuthSession.fetchOne(db, key: row["session_id"] as String)
            else { return .invalid }
            guard session.isActive(at: now) else { return .invalid }
            if (row["used_at"] as Date?) != nil {
                session.revokedAt = now
                session.revokedReason = "refresh token reuse"
                try session.update(db)
                return .reused(sessionID: session.id)
            }
            guard let user = try User.fetchOne(db, key: session.userId), user.deletedAt == nil else { return .invalid }
            try db.execute(sql: "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", arguments: [now, presentedHash])
            try db.execute(sql: "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
                           arguments: [newHash, session.id, now])
            session.lastUsedAt = now
            try session.update(db)
            return .rotated(session, user)
        }
    }

    public func revokeSession(refreshTokenHash: String, reason: String, now: Date) throws -> AuthSession? {
        try pool.write { db in
            guard let sessionID = try String.fetchOne(db, sql: "SELECT session_id FROM refresh_tokens WHERE token_hash = ?",
                                                      arguments: [refreshTokenHash]),
                  var session = try AuthSession.fetchOne(db, key: sessionID)
            else { return nil }
            if session.revokedAt == nil {
                session.revokedAt = now
                session.revokedReason = reason
                try session.update(db)
            }
            return session
        }
    }

    public func activeSession(id: String, now: Date) throws -> AuthSession? {
        try pool.read { db in try AuthSession.fetchOne(db, key: id) }.flatMap { $0.isActive(at: now) ? $0 : nil }
    }

    public func validCredentials(sessionIDs: [String], apiKeyIDs: [String], now: Date) throws
        -> (sessions: Set<String>, apiKeys: Set<String>)
    {
        try pool.read { db in
            func ids(_ sql: String, _ wanted: [String], _ extra: [any DatabaseValueConvertible]) throws -> Set<String> {
                guard !wanted.isEmpty else { return [] }
                let marks = Array(repeating: "?", count: wanted.count).joined(separator: ",")
                let values: [any DatabaseValueConvertible] = wanted + extra
                return Set(try String.fetchAll(db, sql: sql.replacingOccurrences(of: "$IDS", with: marks),
                                               arguments: StatementArguments(values)))
            }
            let sessions = try ids("""
                SELECT s.id FROM auth_sessions s JOIN users u ON u.id = s.user_id
                WHERE s.id IN ($IDS) AND s.revoked_at IS NULL AND s.expires_at > ? AND u.deleted_at IS NULL
                """, sessionIDs, [now])
            let keys = try ids("""
                SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id
                WHERE k.id IN ($IDS) AND k.revoked_at IS NULL AND u.deleted_at IS NULL
                """, apiKeyIDs, [])
            return (sessions, keys)
        }
    }

    public func session(refreshTokenHash: String) throws -> AuthSession? {
        try pool.read { db in
            try AuthSession.fetchOne(db, sql: """
                SELECT auth_sessions.* FROM auth_sessions JOIN refresh_tokens ON refresh_tokens.session_id = auth_sessions.id
                WHERE refresh_tokens.token_hash = ?
                """, arguments: [refreshTokenHash])
        }
    }

    static func audit(_ db: Database, companyID: String?, actorID: String?, action: String, targetType: String?,
                      targetID: String?, now: Date) throws
    {
        try db.execute(sql: """
            INSERT INTO audit_log (company_id, actor_id, action, target_type, target_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [companyID, actorID, action, targetType, targetID, now])
    }
}
