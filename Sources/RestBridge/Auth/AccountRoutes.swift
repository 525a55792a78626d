import Foundation
import Logging
import Store

/// `/api/auth/*` beyond logging in: profile, password change, sessions, forgot/reset password, email
/// verification and API keys (PROTOCOL.md 2 and 3; API keys are this server's extension, docs/rest.md).
struct AccountRoutes: Sendable {
    let accounts: any AccountStore
    let hasher: PasswordHasher
    let mail: AccountMail
    /// Where work that must not delay or shape a response runs (the REST worker pool).
    let background: OperationQueue
    let logger: Logger

    private struct ProfileBody: Decodable {
        let name: String?
        let email: String?
    }

    private struct PasswordChangeBody: Decodable {
        let currentPassword: String?
        let newPassword: String?
    }

    private struct EmailBody: Decodable {
        let email: String?
    }

    private struct ResetBody: Decodable {
        let token: String?
        let password: String?
    }

    private struct TokenBody: Decodable {
        let token: String?
    }

    private struct APIKeyBody: Decodable {
        let name: String?
    }

    /// `authLimit` is the per-IP limiter that login and register share: the unauthenticated routes here
    /// count against the same budget.
    func register(on router: Router, authLimit: RateLimiter) {
        let byIP = RateLimitRule(limiter: authLimit) { "ip:" + $0.remoteAddress }
        // Guessing `current_password` with a stolen access token is limited per token, like login per IP.
        let passwordLimit = RateLimiter(limit: authLimit.limit, window: authLimit.window)
        let byToken = RateLimitRule(limiter: passwordLimit) { "password:" + Crypto.tokenHash($0.bearerToken ?? "").prefix(16) }

        router.add(.put, "/api/auth/profile", auth: .bearer) { request, context in
            try updateProfile(request, context)
        }
        router.add(.post, "/api/auth/password/change", auth: .bearer, rateLimit: byToken) { request, context in
            try changePassword(request, context)
        }
        router.add(.get, "/api/auth/sessions", auth: .bearer) { request, context in
            try listSessions(request, context)
        }
        router.add(.delete, "/api/auth/sessions/:id", auth: .bearer) { request, context in
            guard try accounts.revokeSession(id: request.parameters["id"] ?? "", userID: context.caller.user.id,
                                             reason: "revoked by user", now: context.now)
            else { throw APIError.notFound("no active session with this id") }
            return RestResponse(status: .noContent)
        }
        router.add(.post, "/api/auth/forgot-password", auth: .none, rateLimit: byIP) { request, context in
            try forgotPassword(request, now: context.now)
        }
        router.add(.post, "/api/auth/reset-password", auth: .none, rateLimit: byIP) { request, context in
            try resetPassword(request, now: context.now)
        }
        router.add(.post, "/api/auth/verify-email", auth: .none, rateLimit: byIP) { request, context in
            let body = try request.decode(TokenBody.self)
            guard let token = body.token, !token.isEmpty else { throw APIError.validation(["token": ["is required"]]) }
            guard let user = try accounts.verifyEmail(tokenHash: Crypto.tokenHash(token), now: context.now) else {
                throw APIError.invalidToken("the verification token is invalid, used or expired")
            }
            logger.info("email verified", metadata: ["user": "\(user.id)"])
            return RestResponse(status: .noContent)
        }
        router.add(.post, "/api/auth/api-keys", auth: .bearer) { request, context in
            try createAPIKey(request, context)
        }
        router.add(.get, "/api/auth/api-keys", auth: .bearer) { request, context in
            let page = try PageRequest(query: request.query)
            let keys = try accounts.apiKeys(userID: context.caller.user.id, offset: page.offset, limit: page.pageSize)
            return try .encode(.ok, ListEnvelope(keys.items.map(APIKeyView.init), total: keys.total, page))
        }
        router.add(.get, "/api/auth/api-keys/:id", auth: .bearer) { request, context in
            guard let key = try accounts.apiKey(id: request.parameters["id"] ?? "", userID: context.caller.user.id) else {
                throw APIError.notFound("no API key with this id")
            }
            return try .encode(.ok, APIKeyView(key))
        }
        router.add(.delete, "/api/auth/api-keys/:id", auth: .bearer) { request, context in
            guard try accounts.revokeAPIKey(id: request.parameters["id"] ?? "", userID: context.caller.user.id,
                                            now: context.now)
            else { throw APIError.notFound("no API key with this id") }
            return RestResponse(status: .noContent)
        }
    }

    private func updateProfile(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let body = try request.decode(ProfileBody.self)
        var validator = Validator()
        let name = body.name.map { validator.text($0, "name", max: 100) }
        let email = body.email.map { validator.text($0, "email", max: 254).lowercased() }
        if let email { validator.require(AuthRoutes.isPlausibleEmail(email), "email", "must be an email address") }
        try validator.check()

        let before = context.caller.user
        let user: User?
        do {
            user = try accounts.updateProfile(userID: before.id, name: name, email: email, now: context.now)
        } catch StoreError.conflict {
            throw APIError.conflict("an account with this email exists")
        }
        guard let user else { throw APIError.invalidToken() }
        if user.email != before.email {
            logger.info("email changed", metadata: ["user": "\(user.id)"])
            mail.sendQuietly(logger) {
                try mail.sendEmailChangedNotice(to: before.email, user: user, now: context.now)
                try mail.sendVerification(to: user, now: context.now)
            }
        }
        return try .encode(.ok, UserView(user))
    }

    private func changePassword(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let body = try request.decode(PasswordChangeBody.self)
        var validator = Validator()
        validator.require(body.currentPassword != nil, "current_password", "is required")
        let newPassword = body.newPassword ?? ""
        validator.require(body.newPassword != nil, "new_password", "is required")
        validator.require(body.newPassword == nil || (8...128).contains(newPassword.count), "new_password",
                          "must have 8 to 128 characters")
        try validator.check()

        let user = context.caller.user
        // A wrong current password is a credential failure, answered like login's: 401 `invalid_credentials`
        // (distinct from `unauthorized`/`invalid_token`: the caller's token itself is fine).
        guard hasher.verify(body.currentPassword ?? "", against: user.passwordHash ?? hasher.decoy()),
              user.passwordHash != nil
        else { throw APIError(.unauthorized, "invalid_credentials", "the current password is wrong") }
        let revoked = try accounts.changePassword(userID: user.id, passwordHash: hasher.hash(newPassword),
                                                  keepingSession: context.caller.session?.id, now: context.now)
        logger.info("password changed", metadata: ["user": "\(user.id)", "sessions_revoked": "\(revoked)"])
        return RestResponse(status: .noContent)
    }

    private func listSessions(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let page = try PageRequest(query: request.query)
        let current = context.caller.session?.id
        let sessions = try accounts.activeSessions(userID: context.caller.user.id, now: context.now,
                                                   offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(sessions.items.map { SessionView($0, current: $0.id == current) },
                                             total: sessions.total, page))
    }

    /// Always 202, whatever the email: whether an account exists is not revealed, neither by the answer nor
    /// by its timing (the lookup and the mail happen after the answer, on the worker pool).
    private func forgotPassword(_ request: RestRequest, now: Date) throws -> RestResponse {
        let body = try request.decode(EmailBody.self)
        var validator = Validator()
        let email = validator.text(body.email, "email", max: 254).lowercased()
        validator.require(body.email == nil || AuthRoutes.isPlausibleEmail(email), "email", "must be an email address")
        try validator.check()
        background.addOperation { [accounts, mail, logger] in
            mail.sendQuietly(logger) {
                guard let user = try accounts.user(email: email) else { return }
                try mail.sendPasswordReset(to: user, now: now)
            }
        }
        return .json(.accepted, #"{"status":"accepted"}"#)
    }

    private func resetPassword(_ request: RestRequest, now: Date) throws -> RestResponse {
        let body = try request.decode(ResetBody.self)
        var validator = Validator()
        let token = body.token ?? ""
        validator.require(!token.isEmpty, "token", "is required")
        let password = body.password ?? ""
        validator.require(body.password != nil, "password", "is required")
        validator.require(body.password == nil || (8...128).contains(password.count), "password",
                          "must have 8 to 128 characters")
        try validator.check()

        let refused = APIError.invalidToken("the reset token is invalid, used or expired")
        let hash = Crypto.tokenHash(token)
        // Check before hashing the password (scrypt is the expensive part); the reset re-checks atomically.
        guard try accounts.usableAccountToken(hash: hash, purposes: [.resetPassword, .invitation], now: now) != nil,
              let user = try accounts.resetPassword(tokenHash: hash, passwordHash: hasher.hash(password), now: now)
        else { throw refused }
        logger.info("password reset", metadata: ["user": "\(user.id)"])
        return RestResponse(status: .noContent)
    }

    private func createAPIKey(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let body = try request.decode(APIKeyBody.self)
        var validator = Validator()
        let name = validator.text(body.name, "name", max: 100)
        try validator.check()
        let secret = Authenticator.apiKeyPrefix + Crypto.randomToken()
        let key = try accounts.createAPIKey(userID: context.caller.user.id, name: name,
                                            prefix: String(secret.prefix(Authenticator.apiKeyPrefix.count + 8)),
                                            keyHash: Crypto.tokenHash(secret), now: context.now)
        logger.info("api key created", metadata: ["user": "\(key.userId)", "api_key": "\(key.id)"])
        return try .created(CreatedAPIKey(key: APIKeyView(key), secret: secret),
                            location: "/api/auth/api-keys/\(key.id)")
    }
}

/// The mail that account flows send: each one carries a fresh single-use token, stored hashed.
struct AccountMail: Sendable {
    let accounts: any AccountStore
    let mailer: any Mailer
    let resetTokenLifetime: TimeInterval
    let verifyTokenLifetime: TimeInterval

    func sendVerification(to user: User, now: Date) throws {
        let token = try issue(.verifyEmail, for: user, lifetime: verifyTokenLifetime, now: now)
        try mailer.send(Mail(to: user.email, subject: "Confirm your email address", body: """
            Hello \(user.name),

            Please confirm that \(user.email) is your email address by sending this token to
            POST /api/auth/verify-email within \(Self.describe(verifyTokenLifetime)):

            \(token)

            If you did not create a Switchboard account, ignore this message.
            """), now: now)
    }

    func sendPasswordReset(to user: User, now: Date) throws {
        let token = try issue(.resetPassword, for: user, lifetime: resetTokenLifetime, now: now)
        try mailer.send(Mail(to: user.email, subject: "Reset your password", body: """
            Hello \(user.name),

            Someone asked to reset the password of your Switchboard account. To choose a new one, send this
            token with your new password to POST /api/auth/reset-password within \(Self.describe(resetTokenLifetime)):

            \(token)

            The token works once. If you did not ask for it, ignore this message; your password stays as it is.
            """), now: now)
    }

    /// Tells the old address that the account's email changed, so a takeover does not go unnoticed.
    func sendEmailChangedNotice(to oldEmail: String, user: User, now: Date) throws {
        try mailer.send(Mail(to: oldEmail, subject: "Your email address was changed", body: """
            Hello \(user.name),

            The email address of your Switchboard account was changed from \(oldEmail) to \(user.email).
            If you did not do this, reset your password and contact your administrator.
            """), now: now)
    }

    /// Runs `body`, logging instead of throwing: mail is a side effect that must not fail the request that
    /// caused it.
    func sendQuietly(_ logger: Logger, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            logger.error("account mail failed", metadata: ["error": "\(error)"])
        }
    }

    private func issue(_ purpose: AccountTokenPurpose, for user: User, lifetime: TimeInterval, now: Date) throws -> String {
        let token = Crypto.randomToken()
        _ = try accounts.issueAccountToken(userID: user.id, purpose: purpose, tokenHash: Crypto.tokenHash(token),
                                           now: now, lifetime: lifetime)
        return token
    }

    static func describe(_ lifetime: TimeInterval) -> String {
        let minutes = Int(lifetime / 60)
        if minutes % 60 == 0 { return minutes == 60 ? "1 hour" : "\(minutes / 60) hours" }
        return minutes == 1 ? "1 minute" : "\(minutes) minutes"
    }
}

/// A login session as `GET /api/auth/sessions` shows it (`null` for what is unknown).
struct SessionView: Encodable, Sendable {
    let id: String
    let createdAt: Date
    let lastUsedAt: Date
    let expiresAt: Date
    let userAgent: String?
    let ip: String?
    let current: Bool

    init(_ session: AuthSession, current: Bool) {
        id = session.id
        createdAt = session.createdAt
        lastUsedAt = session.lastUsedAt
        expiresAt = session.expiresAt
        userAgent = session.userAgent
        ip = session.ip
        self.current = current
    }

    private enum CodingKeys: String, CodingKey { case id, createdAt, lastUsedAt, expiresAt, userAgent, ip, current }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(userAgent, forKey: .userAgent)
        try container.encode(ip, forKey: .ip)
        try container.encode(current, forKey: .current)
    }
}

/// An API key as listed: never the secret.
struct APIKeyView: Encodable, Sendable {
    let id: String
    let name: String
    let prefix: String
    let createdAt: Date
    let lastUsedAt: Date?

    init(_ key: APIKey) {
        id = key.id
        name = key.name
        prefix = key.prefix
        createdAt = key.createdAt
        lastUsedAt = key.lastUsedAt
    }

    fileprivate enum CodingKeys: String, CodingKey { case id, name, prefix, createdAt, lastUsedAt, key }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(prefix, forKey: .prefix)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
    }
}

/// The answer to creating an API key: the listed fields plus `key`, the secret, shown this once.
private struct CreatedAPIKey: Encodable {
    let key: APIKeyView
    let secret: String

    func encode(to encoder: any Encoder) throws {
        try key.encode(to: encoder)
        var container = encoder.container(keyedBy: APIKeyView.CodingKeys.self)
        try container.encode(secret, forKey: .key)
    }
}
