import Foundation
import HTTPTypes
import Logging
import Store
import Rooms

/// An HTTP response as the REST bridge produces it.
public struct RestResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: [UInt8]
    /// The authenticated caller (a user id, or `guest:<id>`), for the request log line (not sent).
    public var userID: String?

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// This response with `fields` added.
    func adding(_ fields: HTTPFields) -> RestResponse {
        var copy = self
        for field in fields { copy.headerFields.append(field) }
        return copy
    }

    /// A JSON response with `text` as its body.
    public static func json(_ status: HTTPResponse.Status, _ text: String) -> RestResponse {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        return RestResponse(status: status, headerFields: fields, body: Array(text.utf8))
    }

    /// `value` encoded as JSON (snake_case keys, RFC 3339 times).
    public static func encode<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) throws -> RestResponse {
        var response = json(status, "")
        response.body = Array(try JSONEncoder.api.encode(value))
        return response
    }

    /// 201 with `value` and `Location: location`: what every create answers (PROTOCOL.md 2).
    public static func created<T: Encodable>(_ value: T, location: String) throws -> RestResponse {
        var response = try encode(.created, value)
        response.headerFields[.location] = location
        return response
    }

    /// The error envelope of PROTOCOL.md 2: `{"error":{"code","message","fields"?}}`.
    public static func error(_ error: APIError) -> RestResponse {
        struct Envelope: Encodable {
            struct Body: Encodable {
                let code: String
                let message: String
                let fields: [String: [String]]?
            }
            let error: Body
        }
        var response = (try? encode(error.status, Envelope(error: .init(code: error.code, message: error.message,
                                                                            fields: error.fields))))
            ?? json(error.status, #"{"error":{"code":"internal","message":"error"}}"#)
        for field in error.headers { response.headerFields.append(field) }
        return response
    }

    public static func error(_ status: HTTPResponse.Status, code: String, message: String) -> RestResponse {
        error(APIError(status, code, message))
    }
}

/// Settings of the REST side.
public struct RestConfiguration: Sendable {
    /// Requests per minute per client IP on the unauthenticated auth routes.
    public var authRateLimit = 5
    /// Refreshes per minute per session.
    public var refreshRateLimit = 60
    public var accessTokenLifetime = 900
    public var refreshTokenLifetime: TimeInterval = 30 * 24 * 3600
    /// How long a mailed password-reset token works.
    public var resetTokenLifetime: TimeInterval = 3600
    /// How long a mailed email-verification token works.
    public var verifyTokenLifetime: TimeInterval = 24 * 3600
    /// Threads that run route handlers (store access, password hashing): never the service thread.
    public var workerCount = 4
    /// Authenticated reads (GET, HEAD) per minute per user, on routes without a limit of their own.
    public var userReadRateLimit = 1200
    /// Authenticated writes per minute per user, on routes without a limit of their own.
    public var userWriteRateLimit = 300
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    public var corsOrigins: [String] = []
    /// Where uploaded avatars and logos are kept (`DATA/uploads`).
    public var uploadsDirectory = URL(fileURLWithPath: "./data/uploads", isDirectory: true)
    /// Largest uploaded image in bytes (413 beyond).
    public var maxUploadBytes = 2 << 20
    /// How long the set-password token of an invitation (`POST /api/users` without a password) works.
    public var invitationLifetime: TimeInterval = 7 * 24 * 3600
    /// The origin of the call page in join URLs (`https://calls.example.com`); nil: `http://` + the request's
    /// `Host`.
    public var publicURL: String?
    /// How long a guest token (`POST /api/calls/{id}/guest`) works, in seconds.
    public var guestTokenLifetime = 2 * 3600
    /// Requests per minute per client IP on the public call routes (join info, guest tokens).
    public var publicCallRateLimit = 60
    /// The largest `data` of `POST /api/calls/{id}/signal`: the WebSocket's message limit.
    public var maxSignalBytes = 64 * 1024
    /// The largest request body the transport must let through: an upload plus room for multipart framing.
    /// JSON bodies stay limited to 1 MiB by `RestRequest.decode`.
    public var maxRequestBodyBytes: Int { maxUploadBytes + 64 * 1024 }

    public init() {}
}

/// The HTTP side of the server. Cheap routes (health, static files) answer inline; every API route runs on a
/// bounded pool of worker threads, because it reads or writes the store or hashes passwords, and answers
/// through `respond` from there.
public final class RestBridge: Sendable {
    private let isReady: @Sendable () -> Bool
    private let staticFiles: [String: StaticFile]
    private let router = Router()
    private let authenticator: Authenticator
    private let idempotency: any IdempotencyStore
    private let userReads: RateLimiter
    private let userWrites: RateLimiter
    private let corsOrigins: Set<String>
    let workers: OperationQueue
    private let logger: Logger
    /// The live side of calls (the gateway), for the routes that read or change live rooms.
    let live = LiveCallsLink()
    /// Licenses, for the WebSocket's host check.
    let licenseStore: any LicenseStore
    /// The directory, for presence subscriptions.
    let directoryStore: any DirectoryStore

    struct StaticFile: Sendable {
        let contentType: String
        let body: [UInt8]
    }

    public init(accounts: any AccountStore, idempotency: any IdempotencyStore, directory: any DirectoryStore,
                calls: any CallStore, licenses: any LicenseStore, reviews: any ReviewStore,
                dashboards: any DashboardStore, signer: JWTSigner,
                hasher: PasswordHasher = PasswordHasher(), configuration: RestConfiguration = RestConfiguration(),
                logger: Logger, isReady: @escaping @Sendable () -> Bool)
    {
        self.isReady = isReady
        self.logger = logger
        licenseStore = licenses
        directoryStore = directory
        self.idempotency = idempotency
        userReads = RateLimiter(limit: configuration.userReadRateLimit, window: 60)
        userWrites = RateLimiter(limit: configuration.userWriteRateLimit, window: 60)
        corsOrigins = Set(configuration.corsOrigins)
        staticFiles = Self.loadStaticFiles()
        authenticator = Authenticator(signer: signer, store: accounts, accessTokenLifetime: configuration.accessTokenLifetime)
        let queue = OperationQueue()
        queue.name = "switchboard.rest"
        queue.maxConcurrentOperationCount = configuration.workerCount
        workers = queue

        // One per-IP budget for every unauthenticated auth route (login, register, forgot/reset, verify).
        let authLimit = RateLimiter(limit: configuration.authRateLimit, window: 60)
        let mail = AccountMail(accounts: accounts, mailer: OutboxMailer(outbox: accounts, logger: logger),
                               resetTokenLifetime: configuration.resetTokenLifetime,
                               verifyTokenLifetime: configuration.verifyTokenLifetime)
        AuthRoutes(accounts: accounts, authenticator: authenticator, hasher: hasher,
                   refreshTokenLifetime: configuration.refreshTokenLifetime, mail: mail, logger: logger)
            .register(on: router, authLimit: authLimit,
                      refreshLimit: RateLimiter(limit: configuration.refreshRateLimit, window: 60))
        AccountRoutes(accounts: accounts, hasher: hasher, mail: mail, background: queue, logger: logger)
            .register(on: router, authLimit: authLimit)
        DirectoryRoutes(directory: directory, accounts: accounts, hasher: hasher, mail: mail,
                        uploads: UploadDirectory(url: configuration.uploadsDirectory),
                        maxUploadBytes: configuration.maxUploadBytes,
                        invitationLifetime: configuration.invitationLifetime, logger: logger)
            .register(on: router)
        DashboardRoutes(dashboards: dashboards, accounts: accounts, live: live).register(on: router)
        SearchRoutes(dashboards: dashboards).register(on: router)
        LicenseRoutes(licenses: licenses, accounts: accounts, logger: logger).register(on: router)
        ReviewRoutes(reviews: reviews, logger: logger).register(on: router)
        CommentRoutes(reviews: reviews, logger: logger).register(on: router)
        let videoCalls = VideoCallRoutes(calls: calls, accounts: accounts, licenses: licenses, live: live,
                                         publicURL: configuration.publicURL, logger: logger)
        videoCalls.register(on: router)
        LiveCallRoutes(videoCalls: videoCalls, accounts: accounts, signer: signer,
                       guestTokenLifetime: configuration.guestTokenLifetime,
                       publicLimit: RateLimiter(limit: configuration.publicCallRateLimit, window: 60),
                       maxSignalBytes: configuration.maxSignalBytes)
            .register(on: router)
    }

    /// Waits for the route handlers and background work (mail) in flight: at shutdown, before the store
    /// closes. A handler waiting for the stopped live side gives up after its timeout.
    public func finishWork() { workers.waitUntilAllOperationsAreFinished() }

    /// Connects the live side of calls; the gateway calls this once, before serving.
    public func attach(live: any LiveCalls) { self.live.attach(live) }

    /// The authenticator, for WebSocket tokens.
    public var tokens: Authenticator { authenticator }

    private static func loadStaticFiles() -> [String: StaticFile] {
        var files: [String: StaticFile] = [:]
        let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                     "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "yaml": "application/yaml"]
        if let directory = Bundle.module.url(forResource: "Public", withExtension: nil),
           let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        {
            for name in names {
                let ext = (name as NSString).pathExtension
                guard let type = types[ext],
                      let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path)
                else { continue }
                files["/" + name] = StaticFile(contentType: type, body: Array(data))
            }
        }
        if let index = files["/index.html"] { files["/"] = index }
        return files
    }

    /// Routes one request. `respond` is called exactly once, on this thread or on a worker thread.
    public func handle(_ head: HTTPRequest, body: [UInt8], remoteAddress: String,
                       respond: @escaping @Sendable (RestResponse) -> Void)
    {
        let request = RestRequest(head: head, body: body, remoteAddress: remoteAddress)
        let cors = corsHeaders(for: request)
        if let response = answerInline(request, cors: cors) {
            respond(response.adding(cors))
            return
        }
        workers.addOperation { [self] in
            // Whole milliseconds: the precision the store keeps, so a response and a later read agree.
            let now = Timestamp.now()
            respond(route(request, now: now).adding(cors))
        }
    }

    /// CORS headers for a request whose `Origin` is allowed (none otherwise).
    private func corsHeaders(for request: RestRequest) -> HTTPFields {
        var fields = HTTPFields()
        guard let origin = request.headers[.origin], corsOrigins.contains("*") || corsOrigins.contains(origin) else {
            return fields
        }
        fields[.accessControlAllowOrigin] = corsOrigins.contains("*") ? "*" : origin
        fields[.vary] = "Origin"
        fields[.accessControlExposeHeaders] = "Location, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
        return fields
    }

    private func answerInline(_ request: RestRequest, cors: HTTPFields) -> RestResponse? {
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            // A CORS preflight: allowed origins get the methods and headers the API uses.
            var fields = HTTPFields()
            if !cors.isEmpty {
                fields[.accessControlAllowMethods] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
                fields[.accessControlAllowHeaders] = "Authorization, Content-Type, Idempotency-Key"
                fields[.accessControlMaxAge] = "600"
            }
            return RestResponse(status: .noContent, headerFields: fields)
        }
        guard request.method == .get || request.method == .head else {
            // The operations routes and static files are read-only.
            guard request.path == "/healthz" || request.path == "/readyz" || staticFiles[request.path] != nil else {
                return nil
            }
            var error = APIError(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed on \(request.path)")
            error.headers[.allow] = "GET, HEAD"
            return .error(error)
        }
        switch request.path {
        case "/healthz":
            return .json(.ok, #"{"status":"ok"}"#)
        case "/readyz":
            return isReady() ? .json(.ok, #"{"status":"ready"}"#)
                : .error(.serviceUnavailable, code: "unavailable", message: "the store does not answer")
        default:
            guard let file = staticFiles[request.path] else { return nil }
            var fields = HTTPFields()
            fields[.contentType] = file.contentType
            fields[.cacheControl] = "no-cache"
            return RestResponse(status: .ok, headerFields: fields, body: file.body)
        }
    }

    /// `Idempotency-Key` on an authenticated POST (PROTOCOL.md 2-3): the same key and request within 24 hours
    /// answers the first response again; the same key with another request answers 409. Other requests run as is.
    private func respondIdempotently(_ request: RestRequest, auth: AuthContext?, now: Date,
                                     _ handle: () throws -> RestResponse) throws -> RestResponse
    {
        guard request.method == .post, let auth, let key = request.headers[HTTPField.Name("Idempotency-Key")!] else {
            return try handle()
        }
        guard (1...255).contains(key.utf8.count) else {
            throw APIError.validation(["Idempotency-Key": ["must have 1 to 255 characters"]])
        }
        let hash = Crypto.hex(Crypto.sha256(Array("\(request.method.rawValue) \(request.path)\n".utf8) + request.body))
        let day: TimeInterval = 24 * 3600
        if let stored = try idempotency.idempotentResponse(userID: auth.user.id, key: key, notBefore: now - day) {
            guard stored.requestHash == hash else {
                throw APIError.conflict("this Idempotency-Key was used for a different request")
            }
            var replay = RestResponse(status: HTTPResponse.Status(code: stored.status), body: stored.body)
            for line in stored.headers.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, let name = HTTPField.Name(String(parts[0])) {
                    replay.headerFields.append(HTTPField(name: name, value: parts[1].trimmingCharacters(in: .whitespaces)))
                }
            }
            replay.headerFields[HTTPField.Name("Idempotent-Replayed")!] = "true"
            return replay
        }
        let response: RestResponse
        do {
            response = try handle()
        } catch let error as APIError {
            response = .error(error)
        }
        if response.status.code < 500 {
            let headers = response.headerFields.map { "\($0.name.canonicalName): \($0.value)" }.joined(separator: "\n")
            try idempotency.saveIdempotentResponse(
                userID: auth.user.id, key: key,
                IdempotentResponse(requestHash: hash, status: response.status.code, headers: headers, body: response.body,
                                   createdAt: now),
                expireBefore: now - day)
        }
        return response
    }

    /// Runs on a worker thread: match, rate-limit, authenticate, handle, and turn every failure into its envelope.
    func route(_ request: RestRequest, now: Date) -> RestResponse {
        switch router.match(request.method, request.path) {
        case .missing:
            return .error(.notFound, code: "not_found", message: "no route for \(request.method) \(request.path)")
        case .wrongMethod(let allowed):
            var error = APIError(.methodNotAllowed, "method_not_allowed",
                                 "\(request.method) is not allowed on \(request.path)")
            error.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            return .error(error)
        case .found(let route, let parameters):
            var request = request
            request.parameters = parameters
            var limitHeaders = HTTPFields()
            // Who called, for the request log line, on every answer once the token was accepted.
            var caller: String?
            do {
                // One check of a limiter: headers on every answer, 429 with Retry-After when over.
                func enforce(_ limiter: RateLimiter, _ key: String) throws {
                    let decision = limiter.hit(key, now: now.timeIntervalSince1970)
                    limitHeaders[HTTPField.Name("X-RateLimit-Limit")!] = String(decision.limit)
                    limitHeaders[HTTPField.Name("X-RateLimit-Remaining")!] = String(decision.remaining)
                    limitHeaders[HTTPField.Name("X-RateLimit-Reset")!] = String(decision.reset)
                    if !decision.allowed {
                        var error = APIError(.tooManyRequests, "rate_limited",
                                             "too many requests; retry in \(decision.retryAfter) s")
                        error.headers[.retryAfter] = String(decision.retryAfter)
                        throw error
                    }
                }
                if let rule = route.rateLimit {
                    try enforce(rule.limiter, rule.key(request))
                }
                var auth: AuthContext?
                var guest: GuestPass?
                switch route.auth {
                case .none:
                    break
                case .bearer:
                    guard let token = request.bearerToken else { throw APIError.unauthorized }
                    auth = try authenticator.authenticate(token, now: now)
                case .bearerOrGuest:
                    guard let token = request.bearerToken else { throw APIError.unauthorized }
                    if Authenticator.looksLikeGuestToken(token) {
                        guest = try authenticator.authenticateGuest(token, now: now)
                    } else {
                        auth = try authenticator.authenticate(token, now: now)
                    }
                }
                caller = auth.map(\.user.id) ?? guest.map { "guest:" + $0.guestID }
                if route.rateLimit == nil, let key = auth.map({ "user:" + $0.user.id }) ?? guest.map({ "guest:" + $0.guestID }) {
                    // Routes without a limit of their own: reads and writes per user or guest (generous,
                    // configurable).
                    let isRead = request.method == .get || request.method == .head
                    try enforce(isRead ? userReads : userWrites, key)
                }
                var response = try respondIdempotently(request, auth: auth, now: now) {
                    try route.handler(request, RouteContext(auth: auth, guest: guest, now: now))
                }
                response.userID = caller
                for field in limitHeaders { response.headerFields.append(field) }
                return response
            } catch let error as APIError {
                var response = RestResponse.error(error)
                response.userID = caller
                for field in limitHeaders { response.headerFields.append(field) }
                return response
            } catch {
                logger.error("route failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
                return .error(.internalError())
            }
        }
    }
}
