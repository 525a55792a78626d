import Foundation
import Store

/// The user routes of `DirectoryRoutes`.
extension DirectoryRoutes {
    private struct CreateUserBody: Decodable {
        let email: String?
        let name: String?
        let role: String?
        let password: String?
        let companyId: String?
    }

    private struct UpdateUserBody: Decodable {
        let name: String?
        let email: String?
        let role: String?
    }

    private static let roleNames = UserRole.allCases.map(\.rawValue).joined(separator: ", ")

    /// `GET /api/users?page&page_size&q&role&company_id`: live users the caller may see, by name.
    func listUsers(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let page = try PageRequest(query: request.query)
        var validator = Validator()
        let role = request.query["role"].flatMap { $0.isEmpty ? nil : $0 }
        validator.require(role == nil || UserRole(rawValue: role ?? "") != nil, "role", "must be one of \(Self.roleNames)")
        let search = request.query["q"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        validator.require((search?.count ?? 0) <= 200, "q", "must have at most 200 characters")
        try validator.check()

        let requested = request.query["company_id"].flatMap { $0.isEmpty ? nil : $0 }
        var filter = UserFilter(search: search, role: role.flatMap(UserRole.init(rawValue:)))
        if access.isAdmin {
            filter.companyID = requested
        } else {
            // Another company's id filters down to nothing, as an unknown id would.
            guard let own = access.caller.companyId, requested == nil || requested == own else {
                return try .encode(.ok, ListEnvelope([UserView](), total: 0, page))
            }
            filter.companyID = own
        }
        let found = try directory.users(matching: filter, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(UserView.init), total: found.total, page))
    }

    /// `POST /api/users {email, name, role, password?, company_id?}`: owners add people to their company,
    /// admins to any (`company_id`) or other admins. Without a password the user is invited: a single-use
    /// set-password token goes out by mail.
    func createUser(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        guard access.isAdmin || access.caller.role == .owner else {
            throw APIError.forbidden("only owners and admins add users")
        }
        let body = try request.decode(CreateUserBody.self)
        var validator = Validator()
        let email = validator.text(body.email, "email", max: 254).lowercased()
        validator.require(body.email == nil || AuthRoutes.isPlausibleEmail(email), "email", "must be an email address")
        let name = validator.text(body.name, "name", max: 100)
        let role = body.role.flatMap(UserRole.init(rawValue:))
        validator.require(body.role != nil, "role", "is required")
        validator.require(body.role == nil || role != nil, "role", "must be one of \(Self.roleNames)")
        if let password = body.password {
            validator.require((8...128).contains(password.count), "password", "must have 8 to 128 characters")
        }
        var companyID: String?
        if access.isAdmin {
            companyID = body.companyId
            validator.require(companyID != nil || role == .admin || role == nil, "company_id",
                              "is required for a role other than admin")
        } else {
            companyID = access.caller.companyId
            validator.require(body.companyId == nil || body.companyId == companyID, "company_id", "no such company")
        }
        try validator.check()
        guard let role else { throw APIError.validation(["role": ["is required"]]) }
        if role == .admin && !access.isAdmin { throw APIError.forbidden("only an admin may grant the admin role") }
        if let companyID, access.isAdmin,
           try accounts.company(id: companyID).map({ $0.deletedAt == nil }) != true
        {
            throw APIError.validation(["company_id": ["no such company"]])
        }

        let token = body.password == nil ? Crypto.randomToken() : nil
        let invitation = token.map {
            Invitation(tokenHash: Crypto.tokenHash($0), expiresAt: context.now.addingTimeInterval(invitationLifetime))
        }
        let user: User
        do {
            user = try change {
                try directory.createUser(NewUser(companyID: companyID, email: email, name: name, role: role,
                                                 passwordHash: body.password.map(hasher.hash)),
                                         invitation: invitation, actorID: access.caller.id, now: context.now)
            }
        } catch let error as APIError where error.status == .notFound {
            throw APIError.validation(["company_id": ["no such company"]])
        }
        if let token {
            mail.sendQuietly(logger) { try sendInvitation(to: user, token: token, from: access.caller, now: context.now) }
        }
        logger.info("user created", metadata: ["user": "\(user.id)", "by": "\(access.caller.id)"])
        return try .created(UserView(user), location: "/api/users/\(user.id)")
    }

    /// `GET /api/users/{id}`.
    func getUser(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let user = try DirectoryAccess(context).visibleUser(request.parameters["id"], in: accounts)
        return try .encode(.ok, UserView(user))
    }

    /// `PUT /api/users/{id} {name?, email?, role?}`: anyone changes their own name and email; owners change
    /// their company's users (not admins); only admins grant or take away admin; nobody changes their own role.
    func updateUser(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let user = try access.visibleUser(request.parameters["id"], in: accounts)
        guard access.canEdit(user) else { throw APIError.forbidden("you may not change this user") }
        let body = try request.decode(UpdateUserBody.self)
        var validator = Validator()
        let name = body.name.map { validator.text($0, "name", max: 100) }
        let email = body.email.map { validator.text($0, "email", max: 254).lowercased() }
        if let email { validator.require(AuthRoutes.isPlausibleEmail(email), "email", "must be an email address") }
        let role = body.role.flatMap(UserRole.init(rawValue:))
        validator.require(body.role == nil || role != nil, "role", "must be one of \(Self.roleNames)")
        try validator.check()

        if let role, role != user.role {
            if user.id == access.caller.id { throw APIError.forbidden("you cannot change your own role") }
            guard access.canManage(user) else { throw APIError.forbidden("you may not change this user's role") }
            if role == .admin && !access.isAdmin { throw APIError.forbidden("only an admin may grant the admin role") }
            if user.companyId == nil {
                throw APIError.validation(["role": ["a user without a company can only be an admin"]])
            }
        }
        let updated = try change {
            try directory.updateUser(id: user.id, UserChanges(name: name, email: email, role: role),
                                     actorID: access.caller.id, now: context.now)
        }
        if updated.email != user.email {
            mail.sendQuietly(logger) {
                try mail.sendEmailChangedNotice(to: user.email, user: updated, now: context.now)
                // An invited user who has not set a password yet gets a new invitation at the new address.
                if updated.passwordHash == nil {
                    let token = Crypto.randomToken()
                    _ = try accounts.issueAccountToken(userID: updated.id, purpose: .invitation,
                                                       tokenHash: Crypto.tokenHash(token), now: context.now,
                                                       lifetime: invitationLifetime)
                    try sendInvitation(to: updated, token: token, from: access.caller, now: context.now)
                }
            }
        }
        return try .encode(.ok, UserView(updated))
    }

    /// `DELETE /api/users/{id}`: soft delete by an owner of the company or an admin; the user's sessions end.
    /// The last owner of a company (or the last admin) stays: 409.
    func deleteUser(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let user = try access.visibleUser(request.parameters["id"], in: accounts)
        guard access.canManage(user) else { throw APIError.forbidden("only owners and admins delete users") }
        try change { try directory.deleteUser(id: user.id, actorID: access.caller.id, now: context.now) }
        logger.info("user deleted", metadata: ["user": "\(user.id)", "by": "\(access.caller.id)"])
        return RestResponse(status: .noContent)
    }

    /// `GET /api/users/{id}/activity`: the audit entries the user made or that concern them, newest first.
    /// Users see their own; owners their company's; admins anyone's.
    func activity(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let user = try access.visibleUser(request.parameters["id"], in: accounts)
        guard user.id == access.caller.id || access.canManage(user) else {
            throw APIError.forbidden("you may not see this user's activity")
        }
        let page = try PageRequest(query: request.query)
        let found = try directory.activity(userID: user.id, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(ActivityView.init), total: found.total, page))
    }

    /// `POST /api/users/{id}/avatar`: an image (PNG, JPEG, WebP; at most 2 MiB) for the user, by themselves,
    /// an owner of their company or an admin. Answers the user with its `avatar_url`.
    func uploadAvatar(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let user = try access.visibleUser(request.parameters["id"], in: accounts)
        guard access.canEdit(user) else { throw APIError.forbidden("you may not change this user's avatar") }
        var updated = user
        try storeImage(request) { name in
            let result = try change {
                try directory.setAvatar(userID: user.id, path: name, actorID: access.caller.id, now: context.now)
            }
            updated = result.user
            return result.replaced
        }
        return try .encode(.ok, UserView(updated))
    }

    /// `GET /api/users/{id}/avatar`: the image bytes with their content type.
    func avatar(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let user = try DirectoryAccess(context).visibleUser(request.parameters["id"], in: accounts)
        guard let name = user.avatarPath, let image = uploads.read(name) else {
            throw APIError.notFound("this user has no avatar")
        }
        return .image(image.type, image.bytes)
    }

    private func sendInvitation(to user: User, token: String, from inviter: User, now: Date) throws {
        let company = try user.companyId.flatMap { try accounts.company(id: $0) }
        try mail.mailer.send(Mail(to: user.email, subject: "You are invited to Switchboard", body: """
            Hello \(user.name),

            \(inviter.name) added you to \(company?.name ?? "Switchboard") as \(user.role.rawValue). To choose your \
            password, send this token with it to POST /api/auth/reset-password within \
            \(AccountMail.describe(invitationLifetime)):

            \(token)

            The token works once. If you did not expect this, ignore this message.
            """), now: now)
    }
}
