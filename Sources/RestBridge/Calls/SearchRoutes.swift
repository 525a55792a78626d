import Foundation
import Store

/// `GET /api/search?q&type&page&page_size`: users, companies and calls whose name, email, title or code
/// contains `q`, scoped like the directory: a non-admin finds their company's live users, their company and
/// its calls; an admin finds every live user and company and the calls of live companies.
struct SearchRoutes: Sendable {
    /// The longest `q`, in characters (code points).
    static let maxQueryLength = 200

    let dashboards: any DashboardStore

    func register(on router: Router) {
        router.add(.get, "/api/search", auth: .bearer) { request, context in try search(request, context) }
    }

    /// `GET /api/search`: a list envelope of `{type, id, title, subtitle, url}`, users first, then companies,
    /// then calls, each by title.
    func search(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        var validator = Validator()
        // Taken as sent (a search for " a" is one), counted in code points as JSON Schema counts them.
        let text = request.query["q"] ?? ""
        if request.query["q"] == nil {
            validator.require(false, "q", "is required")
        } else {
            validator.require(!text.isEmpty, "q", "must not be empty")
            validator.require(text.unicodeScalars.count <= Self.maxQueryLength, "q",
                              "must have at most \(Self.maxQueryLength) characters")
        }
        var kinds = Set(SearchKind.allCases)
        if let type = request.query["type"], type != "all" {
            if let kind = SearchKind(rawValue: type) {
                kinds = [kind]
            } else {
                validator.require(false, "type", "must be one of all, user, company, call")
            }
        }
        var page = PageRequest()
        do {
            page = try PageRequest(query: request.query)
        } catch {
            for (field, messages) in error.fields ?? [:] {
                for message in messages { validator.require(false, field, message) }
            }
        }
        try validator.check()
        let access = DirectoryAccess(context)
        guard access.isAdmin || access.caller.companyId != nil else {
            return try .encode(.ok, ListEnvelope([SearchHitView](), total: 0, page))
        }
        let query = SearchQuery(text: text, kinds: kinds, companyID: access.isAdmin ? nil : access.caller.companyId)
        let found = try dashboards.search(query, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(SearchHitView.init), total: found.total, page))
    }
}

/// One search result; `url` is where the API serves the thing found. Every field, `subtitle: null` included.
struct SearchHitView: Encodable, Sendable {
    let hit: SearchHit

    init(_ hit: SearchHit) { self.hit = hit }

    private enum CodingKeys: String, CodingKey { case type, id, title, subtitle, url }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hit.kind.rawValue, forKey: .type)
        try c.encode(hit.id, forKey: .id)
        try c.encode(hit.title, forKey: .title)
        try c.encode(hit.subtitle, forKey: .subtitle)
        let collection = switch hit.kind {
        case .user: "users"
        case .company: "companies"
        case .call: "videocalls"
        }
        try c.encode("/api/\(collection)/\(hit.id)", forKey: .url)
    }
}
