import Foundation
import Store

/// The company routes of `DirectoryRoutes`.
extension DirectoryRoutes {
    /// The settings fields of `PUT /api/companies/{id}/settings` (and of `settings` on create).
    private struct SettingsBody: Decodable {
        let guestAccess: Bool?
        let lobby: Bool?
        /// A number, so that 2.5 is refused as a field (422), not as malformed JSON.
        let maxParticipants: Double?
        let recordingAllowed: Bool?
        let timezone: String?
    }

    private struct CreateCompanyBody: Decodable {
        let name: String?
        let settings: SettingsBody?
    }

    private struct UpdateCompanyBody: Decodable {
        let name: String?
    }

    /// `GET /api/companies?page&page_size&q`: admins list every live company, everyone else their own.
    func listCompanies(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let page = try PageRequest(query: request.query)
        let search = request.query["q"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        var validator = Validator()
        validator.require((search?.count ?? 0) <= 200, "q", "must have at most 200 characters")
        try validator.check()
        guard access.isAdmin || access.caller.companyId != nil else {
            return try .encode(.ok, ListEnvelope([CompanyView](), total: 0, page))
        }
        let filter = CompanyFilter(id: access.isAdmin ? nil : access.caller.companyId, search: search)
        let found = try directory.companies(matching: filter, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(CompanyView.init), total: found.total, page))
    }

    /// `POST /api/companies {name, settings?}`: admins only.
    func createCompany(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        guard access.isAdmin else { throw APIError.forbidden("only admins create companies") }
        let body = try request.decode(CreateCompanyBody.self)
        var validator = Validator()
        let name = validator.text(body.name, "name", max: 100)
        let settings = body.settings.map { Self.settings($0, &validator, prefix: "settings.") } ?? CompanyChanges()
        try validator.check()
        let company = try change {
            try directory.createCompany(name: name, settings, actorID: access.caller.id, now: context.now)
        }
        logger.info("company created", metadata: ["company": "\(company.id)", "by": "\(access.caller.id)"])
        return try .created(CompanyView(company), location: "/api/companies/\(company.id)")
    }

    /// `GET /api/companies/{id}`, with its `settings`.
    func getCompany(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try DirectoryAccess(context).visibleCompany(request.parameters["id"], in: accounts)
        return try .encode(.ok, CompanyView(company))
    }

    /// `PUT /api/companies/{id} {name?}`: an owner of the company or an admin.
    func updateCompany(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let company = try access.visibleCompany(request.parameters["id"], in: accounts)
        guard access.canManage(companyID: company.id) else {
            throw APIError.forbidden("only the company's owners and admins change it")
        }
        let body = try request.decode(UpdateCompanyBody.self)
        var validator = Validator()
        let name = body.name.map { validator.text($0, "name", max: 100) }
        try validator.check()
        let updated = try change {
            try directory.updateCompany(id: company.id, CompanyChanges(name: name), actorID: access.caller.id,
                                        now: context.now)
        }
        return try .encode(.ok, CompanyView(updated))
    }

    /// `DELETE /api/companies/{id}`: admins only; a soft delete that also removes the company's users.
    func deleteCompany(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let company = try access.visibleCompany(request.parameters["id"], in: accounts)
        guard access.isAdmin else { throw APIError.forbidden("only admins delete companies") }
        try change { try directory.deleteCompany(id: company.id, actorID: access.caller.id, now: context.now) }
        logger.info("company deleted", metadata: ["company": "\(company.id)", "by": "\(access.caller.id)"])
        return RestResponse(status: .noContent)
    }

    /// `PUT /api/companies/{id}/settings {guest_access?, lobby?, max_participants?, recording_allowed?,
    /// timezone?}`: an owner of the company or an admin. Answers the whole company.
    func updateSettings(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let company = try access.visibleCompany(request.parameters["id"], in: accounts)
        guard access.canManage(companyID: company.id) else {
            throw APIError.forbidden("only the company's owners and admins change its settings")
        }
        let body = try request.decode(SettingsBody.self)
        var validator = Validator()
        let changes = Self.settings(body, &validator, prefix: "")
        try validator.check()
        let updated = try change {
            try directory.updateCompany(id: company.id, changes, actorID: access.caller.id, now: context.now)
        }
        return try .encode(.ok, CompanyView(updated))
    }

    /// `POST /api/companies/{id}/logo`: an image (PNG, JPEG, WebP; at most 2 MiB), by an owner of the company
    /// or an admin. Answers the company with its `logo_url`.
    func uploadLogo(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let company = try access.visibleCompany(request.parameters["id"], in: accounts)
        guard access.canManage(companyID: company.id) else {
            throw APIError.forbidden("only the company's owners and admins change its logo")
        }
        var updated = company
        try storeImage(request) { name in
            let result = try change {
                try directory.setLogo(companyID: company.id, path: name, actorID: access.caller.id, now: context.now)
            }
            updated = result.company
            return result.replaced
        }
        return try .encode(.ok, CompanyView(updated))
    }

    /// `GET /api/companies/{id}/logo`: the image bytes with their content type.
    func logo(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try DirectoryAccess(context).visibleCompany(request.parameters["id"], in: accounts)
        guard let name = company.logoPath, let image = uploads.read(name) else {
            throw APIError.notFound("this company has no logo")
        }
        return .image(image.type, image.bytes)
    }

    /// Validates settings fields: `max_participants` a whole number 1–50, `timezone` an IANA name.
    private static func settings(_ body: SettingsBody, _ validator: inout Validator, prefix: String) -> CompanyChanges {
        var changes = CompanyChanges(guestAccess: body.guestAccess, lobby: body.lobby,
                                     recordingAllowed: body.recordingAllowed)
        if let value = body.maxParticipants {
            let whole = value.rounded() == value && (1...50).contains(value)
            validator.require(whole, prefix + "max_participants", "must be a whole number from 1 to 50")
            if whole { changes.maxParticipants = Int(value) }
        }
        if let timezone = body.timezone {
            let valid = !timezone.isEmpty && timezone.count <= 64 && TimeZone(identifier: timezone) != nil
            validator.require(valid, prefix + "timezone", "must be an IANA time zone name such as Europe/Berlin")
            if valid { changes.timezone = timezone }
        }
        return changes
    }
}
