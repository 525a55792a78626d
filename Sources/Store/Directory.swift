import Foundation
import GRDB

/// Which users a listing returns. Deleted users are never listed.
public struct UserFilter: Sendable {
    /// Only users of this company; nil: every company (admins).
    public var companyID: String?
    /// A case-insensitive substring of the name or the email.
    public var search: String?
    public var role: UserRole?

    public init(companyID: String? = nil, search: String? = nil, role: UserRole? = nil) {
        self.companyID = companyID
        self.search = search
        self.role = role
    }
}

/// Which companies a listing returns. Deleted companies are never listed.
public struct CompanyFilter: Sendable {
    /// Only this company (what a non-admin may see); nil: every company.
    public var id: String?
    /// A case-insensitive substring of the name.
    public var search: String?

    public init(id: String? = nil, search: String? = nil) {
        self.id = id
        self.search = search
    }
}

/// A user to create.
public struct NewUser: Sendable {
    public var companyID: String?
    public var email: String
    public var name: String
    public var role: UserRole
    /// nil: the user cannot log in until they set a password (an invitation).
    public var passwordHash: String?
    /// Whether the address counts as verified from the start (an operator-created admin).
    public var emailVerified: Bool

    public init(companyID: String?, email: String, name: String, role: UserRole, passwordHash: String?,
                emailVerified: Bool = false)
    {
        self.companyID = companyID
        self.email = email
        self.name = name
        self.role = role
        self.passwordHash = passwordHash
        self.emailVerified = emailVerified
    }
}

/// A single-use set-password token created together with an invited user (`account_tokens`, purpose
/// `invitation`, redeemed like a password-reset token); only its hash is stored.
public struct Invitation: Sendable {
    public var tokenHash: String
    public var expiresAt: Date

    public init(tokenHash: String, expiresAt: Date) {
        self.tokenHash = tokenHash
        self.expiresAt = expiresAt
    }
}

/// Changes to a user; nil leaves a field as it is.
public struct UserChanges: Sendable {
    public var name: String?
    public var email: String?
    public var role: UserRole?

    public init(name: String? = nil, email: String? = nil, role: UserRole? = nil) {
        self.name = name
        self.email = email
        self.role = role
    }
}

/// Changes to a company and its settings; nil leaves a field as it is.
public struct CompanyChanges: Sendable {
    public var name: String?
    public var guestAccess: Bool?
    public var lobby: Bool?
    public var maxParticipants: Int?
    public var recordingAllowed: Bool?
    public var timezone: String?

    public init(name: String? = nil, guestAccess: Bool? = nil, lobby: Bool? = nil, maxParticipants: Int? = nil,
                recordingAllowed: Bool? = nil, timezone: String? = nil)
    {
        self.name = name
        self.guestAccess = guestAccess
        self.lobby = lobby
        self.maxParticipants = maxParticipants
        self.recordingAllowed = recordingAllowed
        self.timezone = timezone
    }
}

/// One row of the audit log.
public struct AuditEntry: Codable, Equatable, Sendable, FetchableRecord {
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase

    public var id: Int64
    public var companyId: String?
    public var actorId: String?
    public var action: String
    public var targetType: String?
    public var targetId: String?
    /// A JSON object with details, if any.
    public var data: String?
    public var createdAt: Date
}

/// Why the directory refused a change, in domain terms.
public enum DirectoryError: Error, Equatable {
    /// No such user or company, or it is deleted.
    case notFound
    /// The change would leave a company without an owner.
    case lastOwner
    /// The change would leave the installation without an admin.
    case lastAdmin
}

/// Users and companies as the directory routes manage them: listings, creates, changes, soft deletes,
/// uploads' paths, activity. Every write also goes to `audit_log`. Synchronous: call from a worker thread.
public protocol DirectoryStore: Sendable {
    /// Users matching `filter`, ordered by name, `limit` of them from `offset`.
    func users(matching filter: UserFilter, offset: Int, limit: Int) throws -> Paged<User>
    /// Creates a user (and their invitation, if any). A taken email → `StoreError.conflict(field: "email")`.
    func createUser(_ user: NewUser, invitation: Invitation?, actorID: String?, now: Date) throws -> User
    /// Changes a live user. A taken email → `StoreError.conflict`; a new email is unverified again and the
    /// user's pending account tokens (sent to the old address) are void; demoting
    /// the last owner of a company or the last admin → `DirectoryError.lastOwner` / `.lastAdmin`.
    func updateUser(id: String, _ changes: UserChanges, actorID: String?, now: Date) throws -> User
    /// Soft-deletes a live user and revokes their sessions, API keys and unused account tokens. The last owner
    /// of a company or the last admin → `DirectoryError.lastOwner` / `.lastAdmin`.
    func deleteUser(id: String, actorID: String?, now: Date) throws
    /// Sets (or clears) a live user's avatar file; returns the user and the file it replaced.
    func setAvatar(userID: String, path: String?, actorID: String?, now: Date) throws -> (user: User, replaced: String?)
    /// The audit entries a user made or that were made on them, newest first.
    func activity(userID: String, offset: Int, limit: Int) throws -> Paged<AuditEntry>
    /// Companies matching `filter`, ordered by name.
    func companies(matching filter: CompanyFilter, offset: Int, limit: Int) throws -> Paged<Company>
    /// Creates a company with default settings overridden by `changes` (whose `name` is ignored).
    func createCompany(name: String, _ settings: CompanyChanges, actorID: String?, now: Date) throws -> Company
    /// Changes a live company's name and settings.
    func updateCompany(id: String, _ changes: CompanyChanges, actorID: String?, now: Date) throws -> Company
    /// Soft-deletes a live company and its (non-admin) users, revoking their sessions.
    func deleteCompany(id: String, actorID: String?, now: Date) throws
    /// Sets (or clears) a live company's logo file; returns the company and the file it replaced.
    func setLogo(companyID: String, path: String?, actorID: String?, now: Date) throws
        -> (company: Company, replaced: String?)
}

extension SQLiteStore: DirectoryStore {
    // MARK: Users

    public func users(matching filter: UserFilter, offset: Int, limit: Int) throws -> Paged<User> {
        try pool.read { db in
            var request = User.filter(Column("deleted_at") == nil)
            if let companyID = filter.companyID { request = request.filter(Column("company_id") == companyID) }
            if let role = filter.role { request = request.filter(Column("role") == role.rawValue) }
            if let search = filter.search, !search.isEmpty {
                let pattern = Self.likePattern(search)
                request = request.filter(sql: "(name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')",
                                         arguments: [pattern, pattern])
            }
            let total = try request.fetchCount(db)
            let items = try request.order(Column("name").collating(.nocase), Column("id"))
                .limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: total)
        }
    }

    public func createUser(_ new: NewUser, invitation: Invitation?, actorID: String?, now: Date) throws -> User {
        try writeMappingConflicts { db in
            if try User.filter(Column("email").collating(.nocase) == new.email).fetchCount(db) > 0 {
                throw StoreError.conflict(field: "email")
            }
            if let companyID = new.companyID, try Self.liveCompany(db, companyID) == nil {
                throw DirectoryError.notFound
            }
            let user = User(id: UUID().uuidString.lowercased(), companyId: new.companyID, email: new.email,
                            name: new.name, role: new.role, passwordHash: new.passwordHash,
                            emailVerifiedAt: new.emailVerified ? now : nil, avatarPath: nil, createdAt: now,
                            updatedAt: now, deletedAt: nil)
            try user.insert(db)
            if let invitation {
                try db.execute(sql: """
                    INSERT INTO account_tokens (id, user_id, purpose, token_hash, created_at, expires_at)
                    VALUES (?, ?, 'invitation', ?, ?, ?)
                    """, arguments: [UUID().uuidString.lowercased(), user.id, invitation.tokenHash, now,
                                     invitation.expiresAt])
            }
            try Self.record(db, companyID: user.companyId, actorID: actorID,
                            action: new.role == .admin && actorID == nil ? "admin.create" : "user.create",
                            targetType: "user", targetID: user.id,
                            data: ["role": user.role.rawValue, "invited": invitation != nil], now: now)
            return user
        }
    }

    public func updateUser(id: String, _ changes: UserChanges, actorID: String?, now: Date) throws -> User {
        try writeMappingConflicts { db in
            guard var user = try Self.liveUser(db, id) else { throw DirectoryError.notFound }
            var changed: [String] = []
            var data: [String: any Sendable] = [:]
            if let name = changes.name, name != user.name {
                user.name = name
                changed.append("name")
            }
            if let email = changes.email, email != user.email {
                if email.lowercased() != user.email.lowercased() {
                    let taken = try User.filter(Column("email").collating(.nocase) == email)
                        .filter(Column("id") != user.id).fetchCount(db) > 0
                    if taken { throw StoreError.conflict(field: "email") }
                    // Tokens mailed to the old address stop working; the address is unverified again.
                    user.emailVerifiedAt = nil
                    try db.execute(sql: "UPDATE account_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
                                   arguments: [now, user.id])
                }
                user.email = email
                changed.append("email")
            }
            if let role = changes.role, role != user.role {
                try Self.checkNotLast(db, user)
                data["role_from"] = user.role.rawValue
                data["role_to"] = role.rawValue
                user.role = role
                changed.append("role")
            }
            guard !changed.isEmpty else { return user }
            user.updatedAt = now
            try user.update(db)
            data["changed"] = changed
            try Self.record(db, companyID: user.companyId, actorID: actorID, action: "user.update", targetType: "user",
                            targetID: user.id, data: data, now: now)
            return user
        }
    }

    public func deleteUser(id: String, actorID: String?, now: Date) throws {
        try pool.write { db in
            guard var user = try Self.liveUser(db, id) else { throw DirectoryError.notFound }
            try Self.checkNotLast(db, user)
            user.deletedAt = now
            user.updatedAt = now
            try user.update(db)
            try Self.revokeAccess(db, userIDs: "?", arguments: [user.id], now: now)
            try Self.record(db, companyID: user.companyId, actorID: actorID, action: "user.delete", targetType: "user",
                            targetID: user.id, data: nil, now: now)
        }
    }

    public func setAvatar(userID: String, path: String?, actorID: String?, now: Date) throws
        -> (user: User, replaced: String?)
    {
        try pool.write { db in
            guard var user = try Self.liveUser(db, userID) else { throw DirectoryError.notFound }
            let replaced = user.avatarPath
            user.avatarPath = path
            user.updatedAt = now
            try user.update(db)
            try Self.record(db, companyID: user.companyId, actorID: actorID,
                            action: path == nil ? "user.avatar.remove" : "user.avatar", targetType: "user",
                            targetID: user.id, data: nil, now: now)
            return (user, replaced)
        }
    }

    public func activity(userID: String, offset: Int, limit: Int) throws -> Paged<AuditEntry> {
        try pool.read { db in
            let condition = "actor_id = ? OR (target_type = 'user' AND target_id = ?)"
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log WHERE \(condition)",
                                         arguments: [userID, userID]) ?? 0
            let items = try AuditEntry.fetchAll(db, sql: """
                SELECT * FROM audit_log WHERE \(condition) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?
                """, arguments: [userID, userID, limit, offset])
            return Paged(items: items, total: total)
        }
    }

    // MARK: Companies

    public func companies(matching filter: CompanyFilter, offset: Int, limit: Int) throws -> Paged<Company> {
        try pool.read { db in
            var request = Company.filter(Column("deleted_at") == nil)
            if let id = filter.id { request = request.filter(Column("id") == id) }
            if let search = filter.search, !search.isEmpty {
                request = request.filter(sql: "name LIKE ? ESCAPE '\\'", arguments: [Self.likePattern(search)])
            }
            let total = try request.fetchCount(db)
            let items = try request.order(Column("name").collating(.nocase), Column("id"))
                .limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: total)
        }
    }

    public func createCompany(name: String, _ settings: CompanyChanges, actorID: String?, now: Date) throws -> Company {
        try pool.write { db in
            var company = Company(id: UUID().uuidString.lowercased(), name: name, guestAccess: true, lobby: false,
                                  maxParticipants: 10, recordingAllowed: false, timezone: "UTC", logoPath: nil,
                                  createdAt: now, updatedAt: now, deletedAt: nil)
            _ = Self.apply(settings, to: &company)
            try company.insert(db)
            try Self.record(db, companyID: company.id, actorID: actorID, action: "company.create",
                            targetType: "company", targetID: company.id, data: nil, now: now)
            return company
        }
    }

    public func updateCompany(id: String, _ changes: CompanyChanges, actorID: String?, now: Date) throws -> Company {
        try pool.write { db in
            guard var company = try Self.liveCompany(db, id) else { throw DirectoryError.notFound }
            var changed = Self.apply(changes, to: &company)
            if let name = changes.name, name != company.name {
                company.name = name
                changed.insert("name", at: 0)
            }
            guard !changed.isEmpty else { return company }
            company.updatedAt = now
            try company.update(db)
            try Self.record(db, companyID: company.id, actorID: actorID, action: "company.update",
                            targetType: "company", targetID: company.id, data: ["changed": changed], now: now)
            return company
        }
    }

    public func deleteCompany(id: String, actorID: String?, now: Date) throws {
        try pool.write { db in
            guard var company = try Self.liveCompany(db, id) else { throw DirectoryError.notFound }
            company.deletedAt = now
            company.updatedAt = now
            try company.update(db)
            let members = "SELECT id FROM users WHERE company_id = ? AND deleted_at IS NULL AND role != 'admin'"
            try Self.revokeAccess(db, userIDs: members, arguments: [company.id], now: now)
            try db.execute(sql: "UPDATE users SET deleted_at = ?, updated_at = ? WHERE id IN (\(members))",
                           arguments: [now, now, company.id])
            try Self.record(db, companyID: company.id, actorID: actorID, action: "company.delete",
                            targetType: "company", targetID: company.id, data: nil, now: now)
        }
    }

    public func setLogo(companyID: String, path: String?, actorID: String?, now: Date) throws
        -> (company: Company, replaced: String?)
    {
        try pool.write { db in
            guard var company = try Self.liveCompany(db, companyID) else { throw DirectoryError.notFound }
            let replaced = company.logoPath
            company.logoPath = path
            company.updatedAt = now
            try company.update(db)
            try Self.record(db, companyID: company.id, actorID: actorID,
                            action: path == nil ? "company.logo.remove" : "company.logo", targetType: "company",
                            targetID: company.id, data: nil, now: now)
            return (company, replaced)
        }
    }

    // MARK: Helpers

    /// A write whose unique-constraint failures (a race on an email) become `StoreError.conflict`.
    private func writeMappingConflicts<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StoreError.conflict(field: "email")
        }
    }

    private static func liveUser(_ db: Database, _ id: String) throws -> User? {
        try User.filter(key: id).filter(Column("deleted_at") == nil).fetchOne(db)
    }

    private static func liveCompany(_ db: Database, _ id: String) throws -> Company? {
        try Company.filter(key: id).filter(Column("deleted_at") == nil).fetchOne(db)
    }

    /// Refuses to remove or demote the last live owner of a company, or the last live admin.
    private static func checkNotLast(_ db: Database, _ user: User) throws {
        switch user.role {
        case .owner:
            let others = try User.filter(Column("company_id") == user.companyId).filter(Column("role") == "owner")
                .filter(Column("deleted_at") == nil).filter(Column("id") != user.id).fetchCount(db)
            if others == 0 { throw DirectoryError.lastOwner }
        case .admin:
            let others = try User.filter(Column("role") == "admin").filter(Column("deleted_at") == nil)
                .filter(Column("id") != user.id).fetchCount(db)
            if others == 0 { throw DirectoryError.lastAdmin }
        case .agent, .member:
            break
        }
    }

    /// Revokes the sessions and API keys of the users `userIDs` (a `?` or a sub-select) names, and uses up
    /// their pending account tokens.
    private static func revokeAccess(_ db: Database, userIDs: String, arguments: StatementArguments, now: Date) throws {
        try db.execute(sql: """
            UPDATE auth_sessions SET revoked_at = ?, revoked_reason = 'user deleted'
            WHERE revoked_at IS NULL AND user_id IN (\(userIDs))
            """, arguments: [now] + arguments)
        try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND user_id IN (\(userIDs))",
                       arguments: [now] + arguments)
        try db.execute(sql: "UPDATE account_tokens SET used_at = ? WHERE used_at IS NULL AND user_id IN (\(userIDs))",
                       arguments: [now] + arguments)
    }

    /// Applies the settings of `changes` (not the name); returns the names of the fields that changed.
    private static func apply(_ changes: CompanyChanges, to company: inout Company) -> [String] {
        var changed: [String] = []
        func set<T: Equatable>(_ value: T?, _ keyPath: WritableKeyPath<Company, T>, _ name: String) {
            guard let value, company[keyPath: keyPath] != value else { return }
            company[keyPath: keyPath] = value
            changed.append(name)
        }
        set(changes.guestAccess, \.guestAccess, "guest_access")
        set(changes.lobby, \.lobby, "lobby")
        set(changes.maxParticipants, \.maxParticipants, "max_participants")
        set(changes.recordingAllowed, \.recordingAllowed, "recording_allowed")
        set(changes.timezone, \.timezone, "timezone")
        return changed
    }

    /// `%text%` for LIKE, with `%`, `_` and `\` in `text` matched literally.
    static func likePattern(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return "%" + escaped + "%"
    }

    /// An audit entry with an optional JSON object of details.
    static func record(_ db: Database, companyID: String?, actorID: String?, action: String,
                               targetType: String?, targetID: String?, data: [String: any Sendable]?, now: Date) throws
    {
        let json = data.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
            .map { String(decoding: $0, as: UTF8.self) }
        try db.execute(sql: """
            INSERT INTO audit_log (company_id, actor_id, action, target_type, target_id, data, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [companyID, actorID, action, targetType, targetID, json, now])
    }
}
