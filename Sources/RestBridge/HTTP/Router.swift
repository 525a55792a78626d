import Foundation
import HTTPTypes
import RoutingKit

/// Who may call a route.
public enum AuthRequirement: Sendable {
    case none
    case bearer
    /// An access token, an API key or a guest token (`RouteContext.guest`): routes a call's guests may use.
    case bearerOrGuest
}

/// The holder of a guest token: admitted to one call under one display name.
public struct GuestPass: Sendable, Equatable {
    public let callID: String
    /// `g…`: names this guest as a call participant (reviews, kicks).
    public let guestID: String
    public let name: String

    public init(callID: String, guestID: String, name: String) {
        self.callID = callID
        self.guestID = guestID
        self.name = name
    }
}

/// What a route handler gets besides the request: the caller (for `.bearer` routes) and the time.
public struct RouteContext: Sendable {
    public let auth: AuthContext?
    /// The guest of a `.bearerOrGuest` route called with a guest token (then `auth` is nil).
    public var guest: GuestPass? = nil
    public let now: Date

    /// The caller of a `.bearer` route.
    public var caller: AuthContext {
        guard let auth else { preconditionFailure("caller read on a route without authentication") }
        return auth
    }
}

public typealias RouteHandler = @Sendable (RestRequest, RouteContext) throws -> RestResponse

/// One method of one path.
struct Route: Sendable {
    let auth: AuthRequirement
    let rateLimit: RateLimitRule?
    let handler: RouteHandler
}

/// How a route is rate limited: which limiter, keyed by what.
struct RateLimitRule: Sendable {
    let limiter: RateLimiter
    let key: @Sendable (RestRequest) -> String
}

/// Paths to routes, on RoutingKit's trie. Built once at start, read from many worker threads.
final class Router: @unchecked Sendable {
    private final class MethodTable {
        var routes: [HTTPRequest.Method: Route] = [:]
    }

    private let trie = TrieRouter(MethodTable.self)
    private var tables: [String: MethodTable] = [:]

    /// Registers `handler` for `method` on `path` (`/api/users/:id`). Only before serving.
    func add(_ method: HTTPRequest.Method, _ path: String, auth: AuthRequirement, rateLimit: RateLimitRule? = nil,
             _ handler: @escaping RouteHandler)
    {
        let table: MethodTable
        if let existing = tables[path] {
            table = existing
        } else {
            table = MethodTable()
            tables[path] = table
            trie.register(table, at: path.pathComponents)
        }
        table.routes[method] = Route(auth: auth, rateLimit: rateLimit, handler: handler)
    }

    enum Match {
        case found(Route, parameters: [String: String])
        case wrongMethod(allowed: [HTTPRequest.Method])
        case missing
    }

    func match(_ method: HTTPRequest.Method, _ path: String) -> Match {
        var parameters = Parameters()
        let segments = path.split(separator: "/").map(String.init)
        guard let table = trie.route(path: segments, parameters: &parameters) else { return .missing }
        guard let route = table.routes[method] ?? (method == .head ? table.routes[.get] : nil) else {
            return .wrongMethod(allowed: table.routes.keys.sorted { $0.rawValue < $1.rawValue })
        }
        var values: [String: String] = [:]
        for name in parameters.allNames { values[name] = parameters.get(name) }
        return .found(route, parameters: values)
    }
}
