import Foundation
import Logging
import Store

/// `/api/licenses/*` and `PUT /api/users/{id}/assign-license` (PROTOCOL.md 2-3): a company's licenses, their
/// seats and expiry, and who holds them. Owners manage their company's licenses, admins any company's; agents
/// and members read them. Another company's license (or a deleted or unknown one) answers 404, a role too low
/// 403. Every change is written to the audit log by the store.
struct LicenseRoutes: Sendable {
    let licenses: any LicenseStore
    let accounts: any AccountStore
    let logger: Logger

    /// The largest number of seats a license may have.
    static let maxSeats = 10_000

    func register(on router: Router) {
        router.add(.get, "/api/licenses", auth: .bearer) { request, context in try list(request, context) }
        router.add(.post, "/api/licenses", auth: .bearer) { request, context in try create(request, context) }
        router.add(.get, "/api/licenses/:id", auth: .bearer) { request, context in try get(request, context) }
        router.add(.put, "/api/licenses/:id", auth: .bearer) { request, context in try update(request, context) }
        router.add(.delete, "/api/licenses/:id", auth: .bearer) { request, context in try delete(request, context) }
        router.add(.put, "/api/licenses/:id/assign", auth: .bearer) { request, context in try assign(request, context) }
        router.add(.put, "/api/licenses/:id/unassign", auth: .bearer) { request, context in
            try unassign(request, context)
        }
        router.add(.put, "/api/users/:id/assign-license", auth: .bearer) { request, context in
            try assignToUser(request, context)
        }
    }

    /// The fields of `POST /api/licenses`.
    private struct CreateBody: Decodable {
        let name: String?
        /// A number, so that 2.5 is refused as a field (422), not as malformed JSON.
        let seats: Double?
        let expiresAt: String?
        let companyId: String?
    }

    /// The fields of `PUT /api/licenses/{id}`. Unlike other fields, `expires_at: null` is not "absent": it
    /// removes the expiry, so the decoder tells the two apart.
    private struct UpdateBody: Decodable {
        let name: String?
        let seats: Double?
        /// nil: absent; `.some(nil)`: null (no expiry); `.some(text)`: a new expiry.
        let expiresAt: String??

        private enum CodingKeys: String, CodingKey { case name, seats, expiresAt }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            seats = try container.decodeIfPresent(Double.self, forKey: .seats)
            if !container.contains(.expiresAt) {
                expiresAt = nil
            } else if try container.decodeNil(forKey: .expiresAt) {
                expiresAt = .some(nil)
            } else {
                expiresAt = .some(try container.decode(String.self, forKey: .expiresAt))
            }
        }
    }

    /// The fields of `PUT /api/licenses/{id}/assign` and `/unassign`.
    private struct AssignBody: Decodable {
        let userId: String?
    }

    /// The fields of `PUT /api/users/{id}/assign-license`.
    private struct AssignToUserBody: Decodable {
        let licenseId: String?
    }

    // MARK: Routes

    /// `GET /api/licenses?page&page_size&q&expired&company_id`: the live licenses of the caller's company (an
    /// admin: of every company, or of `company_id`), by name.
    func list(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let page = try PageRequest(query: request.query)
        var validator = Validator()
        let search = request.query["q"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        validator.require((search?.count ?? 0) <= 200, "q", "must have at most 200 characters")
        let expired = Self.flag(request.query["expired"], "expired", &validator)
        try validator.check()

        let requested = request.query["company_id"].flatMap { $0.isEmpty ? nil : $0 }
        var filter = LicenseFilter(search: search, expired: expired)
        if access.isAdmin {
            filter.companyID = requested
        } else {
            // Another company's id filters down to nothing, as an unknown id would.
            guard let own = access.caller.companyId, requested == nil || requested == own else {
                return try .encode(.ok, ListEnvelope([LicenseView](), total: 0, page))
            }
            filter.companyID = own
        }
        let found = try licenses.licenses(matching: filter, now: context.now, offset: page.offset, limit: page.pageSize)
        let views = found.items.map { LicenseView($0, now: context.now) }
        return try .encode(.ok, ListEnvelope(views, total: found.total, page))
    }

    /// `POST /api/licenses {name, seats, expires_at?, company_id?}`: owners for their company, admins for any
    /// (`company_id` required).
    func create(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        guard access.isAdmin || access.caller.role == .owner else {
            throw APIError.forbidden("only owners and admins create licenses")
        }
        let body = try request.decode(CreateBody.self)
        var validator = Validator()
        let name = validator.text(body.name, "name", max: 100)
        let seats = Self.seats(body.seats, required: true, &validator)
        let expiresAt = body.expiresAt.flatMap { Self.timestamp($0, "expires_at", &validator) }
        let companyID: String?
        if access.isAdmin {
            companyID = body.companyId
            validator.require(companyID != nil, "company_id", "is required for an admin")
        } else {
            companyID = access.caller.companyId
            validator.require(body.companyId == nil || body.companyId == companyID, "company_id", "no such company")
        }
        try validator.check()
        guard let companyID, let seats else { throw APIError.validation(["company_id": ["is required"]]) }
        let created = try change {
            try licenses.createLicense(NewLicense(companyID: companyID, name: name, seats: seats, expiresAt: expiresAt),
                                       actorID: access.caller.id, now: context.now)
        }
        logger.info("license created", metadata: ["license": "\(created.license.id)", "by": "\(access.caller.id)"])
        return try .created(LicenseView(created, now: context.now),
                            location: "/api/licenses/\(created.license.id)")
    }

    /// `GET /api/licenses/{id}`.
    func get(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let found = try visibleLicense(request.parameters["id"], DirectoryAccess(context))
        return try .encode(.ok, LicenseView(found, now: context.now))
    }

    /// `PUT /api/licenses/{id} {name?, seats?, expires_at?}`: owners of the company and admins. Fewer seats
    /// than holders → 409; `expires_at: null` removes the expiry.
    func update(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let found = try visibleLicense(request.parameters["id"], access)
        try requireManager(access, found.license)
        let body = try request.decode(UpdateBody.self)
        var validator = Validator()
        let name = body.name.map { validator.text($0, "name", max: 100) }
        let seats = Self.seats(body.seats, required: false, &validator)
        let expiresAt: Date?? = body.expiresAt.map { text in text.flatMap { Self.timestamp($0, "expires_at", &validator) } }
        try validator.check()
        let updated = try change {
            try licenses.updateLicense(id: found.license.id, LicenseChanges(name: name, seats: seats, expiresAt: expiresAt),
                                       actorID: access.caller.id, now: context.now)
        }
        return try .encode(.ok, LicenseView(updated, now: context.now))
    }

    /// `DELETE /api/licenses/{id}`: a soft delete by an owner of the company or an admin; its seats are freed.
    func delete(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let found = try visibleLicense(request.parameters["id"], access)
        try requireManager(access, found.license)
        try change { try licenses.deleteLicense(id: found.license.id, actorID: access.caller.id, now: context.now) }
        logger.info("license deleted", metadata: ["license": "\(found.license.id)", "by": "\(access.caller.id)"])
        return RestResponse(status: .noContent)
    }

    /// `PUT /api/licenses/{id}/assign {user_id}`: gives a user of the license's company a seat (moving them off
    /// the license they held). A deleted or expired license, or no free seat → 409.
    func assign(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let found = try visibleLicense(request.parameters["id"], access, includingDeleted: true)
        try requireManager(access, found.license)
        let body = try request.decode(AssignBody.self)
        let userID = try Self.requiredID(body.userId, "user_id")
        let updated = try change {
            try licenses.assignLicense(id: found.license.id, userID: userID, actorID: access.caller.id, now: context.now)
        }
        logger.info("license assigned", metadata: ["license": "\(found.license.id)", "user": "\(userID)"])
        return try .encode(.ok, LicenseView(updated, now: context.now))
    }

    /// `PUT /api/licenses/{id}/unassign {user_id}`: frees a user's seat; a user who does not hold the license
    /// → 409.
    func unassign(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let found = try visibleLicense(request.parameters["id"], access)
        try requireManager(access, found.license)
        let body = try request.decode(AssignBody.self)
        let userID = try Self.requiredID(body.userId, "user_id")
        let updated = try change {
            try licenses.unassignLicense(id: found.license.id, userID: userID, actorID: access.caller.id, now: context.now)
        }
        return try .encode(.ok, LicenseView(updated, now: context.now))
    }

    /// `PUT /api/users/{id}/assign-license {license_id}`: the same as `PUT /api/licenses/{license_id}/assign
    /// {user_id: id}`, from the user's side. Answers the license.
    func assignToUser(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let user = try access.visibleUser(request.parameters["id"], in: accounts)
        guard access.canManage(user) else { throw APIError.forbidden("only owners and admins assign licenses") }
        let body = try request.decode(AssignToUserBody.self)
        let licenseID = try Self.requiredID(body.licenseId, "license_id")
        guard let found = try licenses.license(id: licenseID), found.license.companyId == user.companyId else {
            throw APIError.notFound("no such license in the user's company")
        }
        let updated = try change {
            try licenses.assignLicense(id: found.license.id, userID: user.id, actorID: access.caller.id, now: context.now)
        }
        logger.info("license assigned", metadata: ["license": "\(found.license.id)", "user": "\(user.id)"])
        return try .encode(.ok, LicenseView(updated, now: context.now))
    }

    // MARK: Helpers

    /// A license the caller may see, or 404. Deleted licenses are 404 too, unless `includingDeleted`.
    private func visibleLicense(_ id: String?, _ access: DirectoryAccess, includingDeleted: Bool = false) throws
        -> LicenseDetails
    {
        guard let id, let found = try licenses.license(id: id), access.canSee(companyID: found.license.companyId),
              includingDeleted || found.license.deletedAt == nil
        else { throw APIError.notFound("no such license") }
        return found
    }

    /// 403 unless the caller manages the license's company (an owner of it, or an admin).
    private func requireManager(_ access: DirectoryAccess, _ license: License) throws {
        guard access.canManage(companyID: license.companyId) else {
            throw APIError.forbidden("only the company's owners and admins manage its licenses")
        }
    }

    /// Runs a store change, turning the license store's refusals into API errors.
    private func change<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as LicenseError {
            throw Self.apiError(error)
        }
    }

    /// The one wire answer of each license refusal.
    static func apiError(_ error: LicenseError) -> APIError {
        switch error {
        case .notFound: .notFound("no such license")
        case .companyNotFound: .validation(["company_id": ["no such company"]])
        case .userNotFound: .notFound("no such user in the license's company")
        case .deleted: .conflict("the license has been deleted")
        case .expired: .conflict("the license has expired")
        case .noFreeSeat(let seats):
            .conflict("all \(seats) seats of the license are taken: unassign someone or add seats")
        case .seatsInUse(let used):
            .conflict("\(used) users hold the license: unassign some before reducing its seats below that")
        case .notAssigned: .conflict("the user does not hold this license")
        }
    }

    /// A whole number of seats, 1 to 10,000.
    private static func seats(_ value: Double?, required: Bool, _ validator: inout Validator) -> Int? {
        guard let value else {
            validator.require(!required, "seats", "is required")
            return nil
        }
        guard value == value.rounded(), value >= 1, value <= Double(maxSeats) else {
            validator.require(false, "seats", "must be a whole number from 1 to \(maxSeats)")
            return nil
        }
        return Int(value)
    }

    /// A non-empty id from a body (an id that names nothing is looked up and answers 404).
    private static func requiredID(_ value: String?, _ field: String) throws(APIError) -> String {
        guard let value else { throw .validation([field: ["is required"]]) }
        guard !value.isEmpty else { throw .validation([field: ["must not be empty"]]) }
        return value
    }

    /// `true` or `false` from a query (absent or empty: nil).
    private static func flag(_ value: String?, _ field: String, _ validator: inout Validator) -> Bool? {
        switch value {
        case nil, "": return nil
        case "true": return true
        case "false": return false
        default:
            validator.require(false, field, "must be true or false")
            return nil
        }
    }

    /// An RFC 3339 time from 1970 to 9999 (`2026-01-31T12:00:00Z`, fractions and offsets allowed), rounded to
    /// the millisecond the store keeps.
    static func timestamp(_ text: String, _ field: String, _ validator: inout Validator) -> Date? {
        guard let date = RFC3339Parser.parse(text) else {
            validator.require(false, field, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
            return nil
        }
        guard date >= Date(timeIntervalSince1970: 0), date < RFC3339Parser.end else {
            validator.require(false, field, "must be a time from 1970 to 9999")
            return nil
        }
        return Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }
}

/// RFC 3339 `date-time` parsing: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and `Z` in either case.
enum RFC3339Parser {
    /// 10000-01-01T00:00:00Z: times from here on cannot be written back as four-digit years.
    static let end = Date(timeIntervalSince1970: 253_402_300_800)

    static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.count <= 40 else { return nil }
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + digits] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }
        func expect(_ allowed: String) -> Bool {
            guard index < bytes.count, allowed.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              expect("Tt"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
              let second = number(2)
        else { return nil }
        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                fraction += Double(bytes[index] - UInt8(ascii: "0")) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        if expect("Zz") {
            offset = 0
        } else {
            guard index < bytes.count else { return nil }
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard expect("+-"), let hours = number(2), expect(":"), let minutes = number(2), hours <= 23, minutes <= 59
            else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        }
        guard index == bytes.count else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day), hour <= 23, minute <= 59, second <= 59
        else { return nil }
        // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let daysSinceEpoch = era * 146_097 + dayOfEra - 719_468
        let seconds = daysSinceEpoch * 86400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}

/// A license as the API shows it: seats, who holds them, and whether it has expired now.
struct LicenseView: Encodable, Sendable {
    let id: String
    let companyId: String
    let name: String
    let seats: Int
    let expiresAt: Date?
    let seatsUsed: Int
    let assignedUserIds: [String]
    let expired: Bool
    let createdAt: Date
    let updatedAt: Date

    init(_ details: LicenseDetails, now: Date) {
        id = details.license.id
        companyId = details.license.companyId
        name = details.license.name
        seats = details.license.seats
        expiresAt = details.license.expiresAt
        seatsUsed = details.seatsUsed
        assignedUserIds = details.assignedUserIDs
        expired = details.license.isExpired(at: now)
        createdAt = details.license.createdAt
        updatedAt = details.license.updatedAt
    }

    private enum CodingKeys: String, CodingKey {
        case id, companyId, name, seats, expiresAt, seatsUsed, assignedUserIds, expired, createdAt, updatedAt
    }

    /// Every field, `expires_at: null` included.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(companyId, forKey: .companyId)
        try container.encode(name, forKey: .name)
        try container.encode(seats, forKey: .seats)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(seatsUsed, forKey: .seatsUsed)
        try container.encode(assignedUserIds, forKey: .assignedUserIds)
        try container.encode(expired, forKey: .expired)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
