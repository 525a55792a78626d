import Foundation
import Logging
import Store

/// `/api/auth/*`: register, login, refresh with rotation, logout, me.
struct AuthRoutes: Sendable {
    let accounts: any AccountStore
    let authenticator: Authenticator
    let hasher: PasswordHasher
    let refreshTokenLifetime: TimeInterval
    /// Registration mails an email-verification token.
    let mail: AccountMail
    let logger: Logger

    private struct RegisterBody: Decodable {
        let email: String?
        let password: String?
        let name: String?
        let companyName: String?
    }

    private struct LoginBody: Decodable {
        let email: String?
        let password: String?
    }

    private struct RefreshBody: Decodable {
        let refreshToken: String?
    }

    /// The answer of register (user, company), login (user) and refresh (tokens only): absent parts are
    /// left out of the JSON.
    private struct TokenResponse: Encodable {
        var user: UserView?
        var company: CompanyView?
        let accessToken: String
        let refreshToken: String
        let tokenType = "bearer"
        let expiresIn: Int
    }

    private struct Me: Encodable {
        let user: UserView
        let company: CompanyView?
    }

    func register(on router: Router, authLimit: RateLimiter, refreshLimit: RateLimiter) {
        let byIP = RateLimitRule(limiter: authLimit) { "ip:" + $0.remoteAddress }
        router.add(.post, "/api/auth/register", auth: .none, rateLimit: byIP) { request, context in
            try registerUser(request, now: context.now)
        }
        router.add(.post, "/api/auth/login", auth: .none, rateLimit: byIP) { request, context in
            try login(request, now: context.now)
        }
        // 60 per minute per session: the presented token is looked up to find its session (rotation gives
        // every refresh a new token, the session stays). An unknown token counts against its client IP.
        let bySession = RateLimitRule(limiter: refreshLimit) { [accounts] request in
            let token = (try? request.decode(RefreshBody.self))?.refreshToken ?? ""
            if let session = try? accounts.session(refreshTokenHash: Crypto.tokenHash(token)) {
                return "session:" + session.id
            }
            return "ip:" + request.remoteAddress
        }
        router.add(.post, "/api/auth/refresh", auth: .none, rateLimit: bySession) { request, context in
            try refresh(request, now: context.now)
        }
        router.add(.post, "/api/auth/logout", auth: .bearer) { request, context in
            try logout(request, context)
        }
        router.add(.get, "/api/auth/me", auth: .bearer) { _, context in
            let user = context.caller.user
            let company = try user.companyId.flatMap { try accounts.company(id: $0) }
            return try .encode(.ok, Me(user: UserView(user), company: company.map(CompanyView.init)))
        }
    }

    private func registerUser(_ request: RestRequest, now: Date) throws -> RestResponse {
        let body = try request.decode(RegisterBody.self)
        var validator = Validator()
        let email = validator.text(body.email, "email", max: 254).lowercased()
        validator.require(body.email == nil || Self.isPlausibleEmail(email), "email", "must be an email address")
        let password = body.password ?? ""
        validator.require(body.password != nil, "password", "is required")
        validator.require(body.password == nil || (8...128).contains(password.count), "password",
                          "must have 8 to 128 characters")
        let name = validator.text(body.name, "name", max: 100)
        let companyName = validator.text(body.companyName, "company_name", max: 100)
        try validator.check()

        let (company, user): (Company, User)
        do {
            (company, user) = try accounts.register(companyName: companyName, email: email, name: name,
                                                    passwordHash: hasher.hash(password), now: now)
        } catch StoreError.conflict {
            throw APIError.conflict("an account with this email exists")
        }
        logger.info("registered", metadata: ["user": "\(user.id)", "company": "\(company.id)"])
        mail.sendQuietly(logger) { try mail.sendVerification(to: user, now: now) }
        let (access, refresh) = try startSession(user, request, now: now)
        var response = try RestResponse.encode(.created, TokenResponse(
            user: UserView(user), company: CompanyView(company), accessToken: access, refreshToken: refresh,
            expiresIn: authenticator.accessTokenLifetime))
        response.headerFields[.location] = "/api/users/\(user.id)"
        return response
    }

    private func login(_ request: RestRequest, now: Date) throws -> RestResponse {
        let body = try request.decode(LoginBody.self)
        var validator = Validator()
        let email = validator.text(body.email, "email", max: 254)
        validator.require(body.password != nil, "password", "is required")
        try validator.check()
        let user = try accounts.user(email: email)
        // Verify against a decoy when the user is unknown, so both failures take as long.
        let verified = hasher.verify(body.password ?? "", against: user?.passwordHash ?? hasher.decoy())
        guard let user, user.passwordHash != nil, verified else {
            throw APIError(.unauthorized, "invalid_credentials", "wrong email or password")
        }
        let (access, refresh) = try startSession(user, request, now: now)
        return try .encode(.ok, TokenResponse(user: UserView(user), accessToken: access, refreshToken: refresh,
                                         expiresIn: authenticator.accessTokenLifetime))
    }

    private func refresh(_ request: RestRequest, now: Date) throws -> RestResponse {
        let body = try request.decode(RefreshBody.self)
        guard let presented = body.refreshToken, !presented.isEmpty else {
            throw APIError.validation(["refresh_token": ["is required"]])
        }
        let next = Crypto.randomToken()
        switch try accounts.rotateRefreshToken(presentedHash: Crypto.tokenHash(presented),
                                               newHash: Crypto.tokenHash(next), now: now) {
        case .rotated(let session, let user):
            return try .encode(.ok, TokenResponse(accessToken: authenticator.issueAccessToken(user: user, session: session, now: now),
                                           refreshToken: next, expiresIn: authenticator.accessTokenLifetime))
        case .reused(let sessionID):
            logger.warning("refresh token reused; session revoked", metadata: ["session": "\(sessionID)"])
            throw APIError.invalidToken("the refresh token was already used; the session has been revoked")
        case .invalid:
            throw APIError.invalidToken("the refresh token is invalid, expired or revoked")
        }
    }

    private func logout(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let body = try request.decode(RefreshBody.self)
        guard let presented = body.refreshToken, !presented.isEmpty else {
            throw APIError.validation(["refresh_token": ["is required"]])
        }
        let hash = Crypto.tokenHash(presented)
        // Only the caller's own sessions: look first, revoke only if it is theirs.
        guard let session = try accounts.session(refreshTokenHash: hash),
              session.userId == context.caller.user.id
        else { throw APIError.invalidToken("the refresh token is not one of yours") }
        _ = try accounts.revokeSession(refreshTokenHash: hash, reason: "logout", now: context.now)
        return RestResponse(status: .noContent)
    }

    private func startSession(_ user: User, _ request: RestRequest, now: Date) throws -> (access: String, refresh: String) {
        let refresh = Crypto.randomToken()
        let session = try accounts.createSession(userID: user.id, refreshTokenHash: Crypto.tokenHash(refresh),
                                                 userAgent: request.headers[.userAgent], ip: request.remoteAddress,
                                                 now: now, lifetime: refreshTokenLifetime)
        return (authenticator.issueAccessToken(user: user, session: session, now: now), refresh)
    }

    static func isPlausibleEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
              !parts[1].hasSuffix("."), !email.contains(where: { $0.isWhitespace })
        else { return false }
        return true
    }
}
