import Foundation
import Logging
import Store

/// `/api/comments/*` (PROTOCOL.md 2-3): comments by a company's users on its calls or on reviews of them.
/// Everyone in the company reads them; authors edit theirs; authors, owners and admins delete. Another
/// company's comment, call or review answers 404.
struct CommentRoutes: Sendable {
    let reviews: any ReviewStore
    let logger: Logger

    /// The longest comment, in Unicode code points.
    static let maxText = 4000

    func register(on router: Router) {
        router.add(.get, "/api/comments", auth: .bearer) { request, context in try list(request, context) }
        router.add(.post, "/api/comments", auth: .bearer) { request, context in try create(request, context) }
        router.add(.get, "/api/comments/:id", auth: .bearer) { request, context in try get(request, context) }
        router.add(.put, "/api/comments/:id", auth: .bearer) { request, context in try update(request, context) }
        router.add(.delete, "/api/comments/:id", auth: .bearer) { request, context in try delete(request, context) }
    }

    /// The fields of `POST /api/comments`.
    private struct CreateBody: Decodable {
        let callId: String?
        let reviewId: String?
        let text: String?
    }

    /// The fields of `PUT /api/comments/{id}`; null is "unchanged".
    private struct UpdateBody: Decodable {
        let text: String?
    }

    // MARK: Routes

    /// `GET /api/comments?page&page_size&call_id&review_id&company_id`: the company's comments (an admin's:
    /// every company's, or `company_id`'s), oldest first.
    func list(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let page = try PageRequest(query: request.query)
        let requested = request.query["company_id"].flatMap { $0.isEmpty ? nil : $0 }
        var filter = CommentFilter(callID: request.query["call_id"].flatMap { $0.isEmpty ? nil : $0 },
                                   reviewID: request.query["review_id"].flatMap { $0.isEmpty ? nil : $0 })
        if access.isAdmin {
            filter.companyID = requested
        } else {
            guard let own = access.caller.companyId, requested == nil || requested == own else {
                return try .encode(.ok, ListEnvelope([CommentView](), total: 0, page))
            }
            filter.companyID = own
        }
        let found = try reviews.comments(matching: filter, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(CommentView.init), total: found.total, page))
    }

    /// `POST /api/comments {call_id | review_id, text}`: exactly one target, of the caller's company.
    func create(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let body = try request.decode(CreateBody.self)
        var validator = Validator()
        let exactlyOne = (body.callId == nil) != (body.reviewId == nil)
        for (field, value) in [("call_id", body.callId), ("review_id", body.reviewId)] {
            validator.require(exactlyOne, field, "give exactly one of call_id and review_id")
            validator.require(value.map { !$0.isEmpty } ?? true, field, "must not be empty")
        }
        let text = Self.text(body.text, &validator)
        try validator.check()

        let target: CommentTarget
        let companyID: String?
        if let callID = body.callId {
            target = .call(callID)
            companyID = try reviews.callCompanyID(callID: callID)
        } else {
            let reviewID = body.reviewId ?? ""
            target = .review(reviewID)
            companyID = try reviews.review(id: reviewID)?.companyId
        }
        guard let companyID, access.canSee(companyID: companyID) else {
            throw APIError.notFound(body.callId != nil ? "no such call" : "no such review")
        }
        guard access.caller.companyId == companyID else {
            throw APIError.forbidden("only users of the company comment on its calls and reviews")
        }
        let comment = try change {
            try reviews.createComment(on: target, authorID: access.caller.id, text: text ?? "", now: context.now)
        }
        logger.info("comment created", metadata: ["comment": "\(comment.id)", "by": "\(access.caller.id)"])
        return try .created(CommentView(comment), location: "/api/comments/\(comment.id)")
    }

    /// `GET /api/comments/{id}`.
    func get(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let comment = try visibleComment(request.parameters["id"], DirectoryAccess(context))
        return try .encode(.ok, CommentView(comment))
    }

    /// `PUT /api/comments/{id} {text?}`: its author only.
    func update(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let comment = try visibleComment(request.parameters["id"], access)
        guard comment.authorId == access.caller.id else { throw APIError.forbidden("only the author edits a comment") }
        let body = try request.decode(UpdateBody.self)
        var validator = Validator()
        let text = body.text.flatMap { Self.text($0, &validator) }
        try validator.check()
        guard let text else { return try .encode(.ok, CommentView(comment)) }
        let updated = try change {
            try reviews.updateComment(id: comment.id, text: text, actorID: access.caller.id, now: context.now)
        }
        return try .encode(.ok, CommentView(updated))
    }

    /// `DELETE /api/comments/{id}`: its author, an owner of the company or an admin.
    func delete(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let access = DirectoryAccess(context)
        let comment = try visibleComment(request.parameters["id"], access)
        guard comment.authorId == access.caller.id || access.canManage(companyID: comment.companyId) else {
            throw APIError.forbidden("only the author, the company's owners and admins delete a comment")
        }
        try change { try reviews.deleteComment(id: comment.id, actorID: access.caller.id, now: context.now) }
        return RestResponse(status: .noContent)
    }

    // MARK: Helpers

    /// A comment of a company the caller may see, or 404.
    private func visibleComment(_ id: String?, _ access: DirectoryAccess) throws -> Comment {
        guard let id, let comment = try reviews.comment(id: id), access.canSee(companyID: comment.companyId) else {
            throw APIError.notFound("no such comment")
        }
        return comment
    }

    /// Runs a store change, turning the review store's refusals into API errors.
    private func change<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ReviewError {
            throw ReviewRoutes.apiError(error)
        }
    }

    /// Comment text as written: 1 to 4,000 code points, not only white space.
    private static func text(_ value: String?, _ validator: inout Validator) -> String? {
        guard let value else {
            validator.require(false, "text", "is required")
            return nil
        }
        validator.require(value.unicodeScalars.contains { !ASCIIWhitespace.contains($0) }, "text",
                          "must not be empty or only white space")
        validator.require(value.unicodeScalars.count <= maxText, "text", "must have at most \(maxText) characters")
        return value
    }
}

/// What makes a text blank: tab, line feed, vertical tab, form feed, carriage return and space. Spelled out
/// (not Unicode white space) so that the server and `openapi.yaml`'s `pattern: "[^\\t\\n\\v\\f\\r ]"` agree
/// whatever regex engine reads the document.
enum ASCIIWhitespace {
    static func contains(_ scalar: Unicode.Scalar) -> Bool {
        (0x09...0x0D).contains(scalar.value) || scalar.value == 0x20
    }
}

/// A comment as the API shows it.
struct CommentView: Encodable, Sendable {
    /// The user who wrote it, with their name now.
    struct Author: Encodable, Sendable {
        let userId: String
        let name: String
    }

    let id: String
    let companyId: String
    let callId: String?
    let reviewId: String?
    let author: Author
    let text: String
    let createdAt: Date
    let updatedAt: Date

    init(_ comment: Comment) {
        id = comment.id
        companyId = comment.companyId
        callId = comment.callId
        reviewId = comment.reviewId
        author = Author(userId: comment.authorId, name: comment.authorName)
        text = comment.text
        createdAt = comment.createdAt
        updatedAt = comment.updatedAt
    }

    private enum CodingKeys: String, CodingKey { case id, companyId, callId, reviewId, author, text, createdAt, updatedAt }

    /// Every field, `null` included.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(companyId, forKey: .companyId)
        try container.encode(callId, forKey: .callId)
        try container.encode(reviewId, forKey: .reviewId)
        try container.encode(author, forKey: .author)
        try container.encode(text, forKey: .text)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
