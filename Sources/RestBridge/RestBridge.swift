import Foundation
import HTTPTypes
import Logging
import Store

/// An HTTP response as the REST bridge produces it.
public struct RestResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: [UInt8]

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
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
    /// Threads that run route handlers (store access, password hashing): never the service thread.
    public var workerCount = 4

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
    let workers: OperationQueue
    private let logger: Logger

    struct StaticFile: Sendable {
        let contentType: String
        let body: [UInt8]
    }

    public init(accounts: any AccountStore, signer: JWTSigner, hasher: PasswordHasher = PasswordHasher(),
                configuration: RestConfiguration = RestConfiguration(), logger: Logger,
                isReady: @escaping @Sendable () -> Bool)
    {
        self.isReady = isReady
        self.logger = logger
        staticFiles = Self.loadStaticFiles()
        authenticator = Authenticator(signer: signer, store: accounts, accessTokenLifetime: configuration.accessTokenLifetime)
        let queue = OperationQueue()
        queue.name = "switchboard.rest"
        queue.maxConcurrentOperationCount = configuration.workerCount
        workers = queue

        AuthRoutes(accounts: accounts, authenticator: authenticator, hasher: hasher,
                   refreshTokenLifetime: configuration.refreshTokenLifetime, logger: logger)
            .register(on: router,
                      authLimit: RateLimiter(limit: configuration.authRateLimit, window: 60),
                      refreshLimit: RateLimiter(limit: configuration.refreshRateLimit, window: 60))
    }

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
        if let response = answerInline(request) {
            respond(response)
            return
        }
        workers.addOperation { [self] in
            // Whole milliseconds: the precision the store keeps, so a response and a later read agree.
            let now = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
            respond(route(request, now: now))
        }
    }

    private func answerInline(_ request: RestRequest) -> RestResponse? {
        guard request.method == .get || request.method == .head else { return nil }
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
            do {
                if let rule = route.rateLimit {
                    let decision = rule.limiter.hit(rule.key(request), now: now.timeIntervalSince1970)
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
                var auth: AuthContext?
                if route.auth == .bearer {
                    guard let token = request.bearerToken else { throw APIError.unauthorized }
                    auth = try authenticator.authenticate(token, now: now)
                }
                var response = try route.handler(request, RouteContext(auth: auth, now: now))
                for field in limitHeaders { response.headerFields.append(field) }
                return response
            } catch let error as APIError {
                var response = RestResponse.error(error)
                for field in limitHeaders { response.headerFields.append(field) }
                return response
            } catch {
                logger.error("route failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
                return .error(.internalError())
            }
        }
    }
}
