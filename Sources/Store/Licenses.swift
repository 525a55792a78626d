import Foundation
import GRDB

/// A license of a company: a number of seats, each held by one user, until it expires (never when
/// `expiresAt` is nil). Soft-deleted licenses keep their row (`deleted_at`) but no assignments.
public struct License: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "licenses"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var companyId: String
    public var name: String
    public var seats: Int
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var deletedAt: Date?

    /// Whether the license has expired at `now` (an expiry at exactly `now` counts as expired).
    public func isExpired(at now: Date) -> Bool {
        expiresAt.map { $0 <= now } ?? false
    }
}

/// A license with the live users who hold its seats, ordered by when they were assigned.
public struct LicenseDetails: Equatable, Sendable {
    public var license: License
    public var assignedUserIDs: [String]

    public var seatsUsed: Int { assignedUserIDs.count }

    public init(license: License, assignedUserIDs: [String]) {
        self.license = license
        self.assignedUserIDs = assignedUserIDs
    }
}

/// Which licenses a listing returns. Deleted licenses are never listed.
public struct LicenseFilter: Sendable {
    /// Only licenses of this company; nil: every company (admins).
    public var companyID: String?
    /// A case-insensitive substring of the name.
    public var search: String?
    /// Only expired (true) or only unexpired (false) licenses, at the listing's `now`; nil: both.
    public var expired: Bool?

    public init(companyID: String? = nil, search: String? = nil, expired: Bool? = nil) {
        self.companyID = companyID
        self.search = search
        self.expired = expired
    }
}

/// A license to create.
public struct NewLicense: Sendable {
    public var companyID: String
    public var name: String
    public var seats: Int
    public var expiresAt: Date?

    public init(companyID: String, name: String, seats: Int, expiresAt: Date?) {
        self.companyID = companyID
        self.name = name
        self.seats = seats
        self.expiresAt = expiresAt
    }
}

/// Changes to a license; nil leaves a field as it is. `expiresAt` is doubly optional: `.some(nil)` removes
/// the expiry.
public struct LicenseChanges: Sendable {
    public var name: String?
    public var seats: Int?
    public var expiresAt: Date??

    public init(name: String? = nil, seats: Int? = nil, expiresAt: Date?? = nil) {
        self.name = name
        self.seats = seats
        self.expiresAt = expiresAt
    }
}

/// Why the license store refused a change, in domain terms.
public enum LicenseError: Error, Equatable {
    /// No such license (or it is deleted, where the operation needs a live one).
    case notFound
    /// The company of a new license does not exist or is deleted.
    case companyNotFound
    /// The user is unknown, deleted, or not of the license's company.
    case userNotFound
    /// Assigning to a deleted license.
    case deleted
    /// Assigning to a license that has expired.
    case expired
    /// Every seat is taken.
    case noFreeSeat(seats: Int)
    /// Fewer seats than users holding the license.
    case seatsInUse(used: Int)
    /// Unassigning a user who does not hold the license.
    case notAssigned
}

/// Licenses of a company, their seats and expiry, and which user holds which (`licenses`,
/// `license_assignments`). Hosting a call needs an assigned, unexpired license. A user holds at most one
/// license. Every change goes to `audit_log`. Synchronous: call from a worker thread.
public protocol LicenseStore: Sendable {
    /// Live licenses matching `filter`, ordered by name, `limit` of them from `offset`.
    func licenses(matching filter: LicenseFilter, now: Date, offset: Int, limit: Int) throws -> Paged<LicenseDetails>
    /// A license by id, deleted ones included (their `deletedAt` is set and they have no assignments).
    func license(id: String) throws -> LicenseDetails?
    /// Creates a license for a live company (else `LicenseError.companyNotFound`).
    func createLicense(_ new: NewLicense, actorID: String?, now: Date) throws -> LicenseDetails
    /// Changes a live license. Fewer seats than it has holders → `LicenseError.seatsInUse`.
    func updateLicense(id: String, _ changes: LicenseChanges, actorID: String?, now: Date) throws -> LicenseDetails
    /// Soft-deletes a live license and removes its assignments.
    func deleteLicense(id: String, actorID: String?, now: Date) throws
    /// Gives a live user of the license's company a seat, moving them off any other license they hold.
    /// Holding it already changes nothing. A deleted license → `.deleted`, an expired one → `.expired`,
    /// no free seat → `.noFreeSeat`, an unknown or foreign user → `.userNotFound`.
    func assignLicense(id: String, userID: String, actorID: String?, now: Date) throws -> LicenseDetails
    /// Takes a user's seat on a license away; a user who does not hold it → `.notAssigned`.
    func unassignLicense(id: String, userID: String, actorID: String?, now: Date) throws -> LicenseDetails
    /// The license a user holds if it is neither deleted nor expired at `now` (what hosting a call needs).
    func activeLicense(userID: String, now: Date) throws -> License?
    /// The license a user holds, whatever its state (nil when none).
    func assignedLicense(userID: String) throws -> License?
}

extension SQLiteStore: LicenseStore {
    public func licenses(matching filter: LicenseFilter, now: Date, offset: Int, limit: Int) throws
        -> Paged<LicenseDetails>
    {
        try pool.read { db in
            var request = License.filter(Column("deleted_at") == nil)
            if let companyID = filter.companyID { request = request.filter(Column("company_id") == companyID) }
            if let search = filter.search, !search.isEmpty {
                request = request.filter(sql: "name LIKE ? ESCAPE '\\'", arguments: [Self.likePattern(search)])
            }
            switch filter.expired {
            case true?:
                request = request.filter(Column("expires_at") != nil && Column("expires_at") <= now)
            case false?:
                request = request.filter(Column("expires_at") == nil || Column("expires_at") > now)
            case nil:
                break
            }
            let total = try request.fetchCount(db)
            let licenses = try request.order(Column("name").collating(.nocase), Column("id"))
                .limit(limit, offset: offset).fetchAll(db)
            return Paged(items: try licenses.map { try Self.details(db, $0) }, total: total)
        }
    }

    public func license(id: String) throws -> LicenseDetails? {
        try pool.read { db in
            try License.fetchOne(db, key: id).map { try Self.details(db, $0) }
        }
    }

    public func createLicense(_ new: NewLicense, actorID: String?, now: Date) throws -> LicenseDetails {
        try pool.write { db in
            let company = try Company.filter(key: new.companyID).filter(Column("deleted_at") == nil).fetchOne(db)
            guard company != nil else { throw LicenseError.companyNotFound }
            let license = License(id: UUID().uuidString.lowercased(), companyId: new.companyID, name: new.name,
                                  seats: new.seats, expiresAt: new.expiresAt, createdAt: now, updatedAt: now,
                                  deletedAt: nil)
            try license.insert(db)
            try Self.record(db, companyID: license.companyId, actorID: actorID, action: "license.create",
                            targetType: "license", targetID: license.id,
                            data: ["seats": license.seats, "expires": license.expiresAt != nil], now: now)
            return LicenseDetails(license: license, assignedUserIDs: [])
        }
    }

    public func updateLicense(id: String, _ changes: LicenseChanges, actorID: String?, now: Date) throws
        -> LicenseDetails
    {
        try pool.write { db in
            guard var license = try Self.liveLicense(db, id) else { throw LicenseError.notFound }
            let holders = try Self.holders(db, license.id)
            var changed: [String] = []
            if let name = changes.name, name != license.name {
                license.name = name
                changed.append("name")
            }
            if let seats = changes.seats, seats != license.seats {
                if seats < holders.count { throw LicenseError.seatsInUse(used: holders.count) }
                license.seats = seats
                changed.append("seats")
            }
            if let expiresAt = changes.expiresAt, expiresAt != license.expiresAt {
                license.expiresAt = expiresAt
                changed.append("expires_at")
            }
            guard !changed.isEmpty else { return LicenseDetails(license: license, assignedUserIDs: holders) }
            license.updatedAt = now
            try license.update(db)
            try Self.record(db, companyID: license.companyId, actorID: actorID, action: "license.update",
                            targetType: "license", targetID: license.id, data: ["changed": changed], now: now)
            return LicenseDetails(license: license, assignedUserIDs: holders)
        }
    }

    public func deleteLicense(id: String, actorID: String?, now: Date) throws {
        try pool.write { db in
            guard var license = try Self.liveLicense(db, id) else { throw LicenseError.notFound }
            let holders = try Self.holders(db, license.id)
            license.deletedAt = now
            license.updatedAt = now
            try license.update(db)
            try db.execute(sql: "DELETE FROM license_assignments WHERE license_id = ?", arguments: [license.id])
            try Self.record(db, companyID: license.companyId, actorID: actorID, action: "license.delete",
                            targetType: "license", targetID: license.id, data: ["unassigned": holders], now: now)
        }
    }

    public func assignLicense(id: String, userID: String, actorID: String?, now: Date) throws -> LicenseDetails {
        try pool.write { db in
            guard let license = try License.fetchOne(db, key: id) else { throw LicenseError.notFound }
            if license.deletedAt != nil { throw LicenseError.deleted }
            guard let user = try User.filter(key: userID).filter(Column("deleted_at") == nil).fetchOne(db),
                  user.companyId == license.companyId
            else { throw LicenseError.userNotFound }
            if license.isExpired(at: now) { throw LicenseError.expired }
            let holders = try Self.holders(db, license.id)
            if holders.contains(user.id) { return LicenseDetails(license: license, assignedUserIDs: holders) }
            if holders.count >= license.seats { throw LicenseError.noFreeSeat(seats: license.seats) }
            // One license per user: a seat elsewhere (or a stale row of a deleted license) is given up.
            let previous = try String.fetchOne(db, sql: "SELECT license_id FROM license_assignments WHERE user_id = ?",
                                               arguments: [user.id])
            try db.execute(sql: "DELETE FROM license_assignments WHERE user_id = ?", arguments: [user.id])
            try db.execute(sql: "INSERT INTO license_assignments (license_id, user_id, assigned_at) VALUES (?, ?, ?)",
                           arguments: [license.id, user.id, now])
            var data: [String: any Sendable] = ["user_id": user.id]
            if let previous { data["moved_from"] = previous }
            try Self.record(db, companyID: license.companyId, actorID: actorID, action: "license.assign",
                            targetType: "license", targetID: license.id, data: data, now: now)
            return LicenseDetails(license: license, assignedUserIDs: try Self.holders(db, license.id))
        }
    }

    public func unassignLicense(id: String, userID: String, actorID: String?, now: Date) throws -> LicenseDetails {
        try pool.write { db in
            guard let license = try Self.liveLicense(db, id) else { throw LicenseError.notFound }
            try db.execute(sql: "DELETE FROM license_assignments WHERE license_id = ? AND user_id = ?",
                           arguments: [license.id, userID])
            guard db.changesCount > 0 else { throw LicenseError.notAssigned }
            try Self.record(db, companyID: license.companyId, actorID: actorID, action: "license.unassign",
                            targetType: "license", targetID: license.id, data: ["user_id": userID], now: now)
            return LicenseDetails(license: license, assignedUserIDs: try Self.holders(db, license.id))
        }
    }

    public func activeLicense(userID: String, now: Date) throws -> License? {
        try assignedLicense(userID: userID).flatMap { $0.deletedAt == nil && !$0.isExpired(at: now) ? $0 : nil }
    }

    public func assignedLicense(userID: String) throws -> License? {
        try pool.read { db in
            try License.fetchOne(db, sql: """
                SELECT licenses.* FROM licenses JOIN license_assignments ON license_assignments.license_id = licenses.id
                WHERE license_assignments.user_id = ?
                """, arguments: [userID])
        }
    }

    // MARK: Helpers

    /// A license that is not deleted.
    private static func liveLicense(_ db: Database, _ id: String) throws -> License? {
        try License.filter(key: id).filter(Column("deleted_at") == nil).fetchOne(db)
    }

    /// The live users holding a license, in the order they got it. A deleted user's seat is free again.
    private static func holders(_ db: Database, _ licenseID: String) throws -> [String] {
        try String.fetchAll(db, sql: """
            SELECT license_assignments.user_id FROM license_assignments
            JOIN users ON users.id = license_assignments.user_id
            WHERE license_assignments.license_id = ? AND users.deleted_at IS NULL
            ORDER BY license_assignments.assigned_at, license_assignments.user_id
            """, arguments: [licenseID])
    }

    /// A license with its holders (none once deleted).
    private static func details(_ db: Database, _ license: License) throws -> LicenseDetails {
        LicenseDetails(license: license, assignedUserIDs: license.deletedAt == nil ? try holders(db, license.id) : [])
    }
}
