import Foundation
import Logging
import Store

/// `/api/reviews/*` (PROTOCOL.md 2-3): reviews of calls, one per participant per call. The users of a call's
/// company review it with their access token; its guests with their guest token (`.bearerOrGuest`), and a guest
/// sees and changes only their own review of their own call. Users see their company's reviews; authors edit
/// theirs; authors, owners and admins delete. Another company's review or call answers 404. The comment routes
/// are in `CommentRoutes`.
struct ReviewRoutes: Sendable {
    let reviews: any ReviewStore
    let logger: Logger

    /// The longest review text, in Unicode code points.
    static let maxText = 4000

    func register(on router: Router) {
        router.add(.get, "/api/reviews", auth: .bearerOrGuest) { request, context in try list(request, context) }
        router.add(.post, "/api/reviews", auth: .bearerOrGuest) { request, context in try create(request, context) }
        router.add(.get, "/api/reviews/:id", auth: .bearerOrGuest) { request, context in try get(request, context) }
        router.add(.put, "/api/reviews/:id", auth: .bearerOrGuest) { request, context in try update(request, context) }
        router.add(.delete, "/api/reviews/:id", auth: .bearerOrGuest) { request, context in
            try delete(request, context)
        }
    }

    /// The fields of `POST /api/reviews`.
    private struct CreateBody: Decodable {
        let callId: String?
        /// A number, so that 2.5 is refused as a field (422), not as malformed JSON.
        let rating: Double?
        let text: String?
    }

    /// The fields of `PUT /api/reviews/{id}`; null is "unchanged".
    private struct UpdateBody: Decodable {
        let rating: Double?
        let text: String?
    }

    // MARK: Routes

    /// `GET /api/reviews?page&page_size&call_id&rating&q&company_id`: a user's company's reviews (an admin's:
    /// every company's, or `company_id`'s), newest first; a guest's own review only.
    func list(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let page = try PageRequest(query: request.query)
        var validator = Validator()
        let search = request.query["q"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        validator.require((search?.count ?? 0) <= 200, "q", "must have at most 200 characters")
        var rating: Int?
        if let text = request.query["rating"], !text.isEmpty {
            rating = Int(text.trimmingCharacters(in: .whitespaces)).flatMap { (1...5).contains($0) ? $0 : nil }
            validator.require(rating != nil, "rating", "must be a whole number from 1 to 5")
        }
        try validator.check()
        let callID = request.query["call_id"].flatMap { $0.isEmpty ? nil : $0 }
        let requested = request.query["company_id"].flatMap { $0.isEmpty ? nil : $0 }
        var filter = ReviewFilter(callID: callID, rating: rating, search: search)
        let empty = try RestResponse.encode(.ok, ListEnvelope([ReviewView](), total: 0, page))
        switch ReviewCaller(context) {
        case .guest(let pass):
            guard callID == nil || callID == pass.callID else { return empty }
            filter.callID = pass.callID
            filter.participantKey = ReviewAuthor.guest(id: pass.guestID, name: pass.name).participantKey
        case .user(let access):
            if access.isAdmin {
                filter.companyID = requested
            } else {
                guard let own = access.caller.companyId, requested == nil || requested == own else { return empty }
                filter.companyID = own
            }
        }
        let found = try reviews.reviews(matching: filter, offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(ReviewView.init), total: found.total, page))
    }

    /// `POST /api/reviews {call_id, rating, text?}`: by a user of the call's company or a guest of the call; a
    /// second review by the same participant → 409.
    func create(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let caller = ReviewCaller(context)
        let body = try request.decode(CreateBody.self)
        var validator = Validator()
        validator.require(body.callId != nil, "call_id", "is required")
        validator.require(body.callId.map { !$0.isEmpty } ?? true, "call_id", "must not be empty")
        let rating = Self.rating(body.rating, required: true, &validator)
        let text = Self.text(body.text, &validator) ?? ""
        try validator.check()
        guard let callID = body.callId, let rating else { throw APIError.validation(["rating": ["is required"]]) }

        let author: ReviewAuthor
        switch caller {
        case .guest(let pass):
            guard callID == pass.callID else { throw APIError.notFound("no such call") }
            author = .guest(id: pass.guestID, name: pass.name)
        case .user(let access):
            guard let companyID = try reviews.callCompanyID(callID: callID), access.canSee(companyID: companyID) else {
                throw APIError.notFound("no such call")
            }
            guard access.caller.companyId == companyID else {
                throw APIError.forbidden("only the call's participants review it")
            }
            author = .user(id: access.caller.id, name: access.caller.name)
        }
        let review = try change {
            try reviews.createReview(NewReview(callID: callID, author: author, rating: rating, text: text),
                                     actorID: caller.userID, now: context.now)
        }
        logger.info("review created", metadata: ["review": "\(review.id)", "call": "\(callID)"])
        return try .created(ReviewView(review), location: "/api/reviews/\(review.id)")
    }

    /// `GET /api/reviews/{id}`.
    func get(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let review = try visibleReview(request.parameters["id"], ReviewCaller(context))
        return try .encode(.ok, ReviewView(review))
    }

    /// `PUT /api/reviews/{id} {rating?, text?}`: its author only.
    func update(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let caller = ReviewCaller(context)
        let review = try visibleReview(request.parameters["id"], caller)
        guard caller.participantKey == review.participantKey else {
            throw APIError.forbidden("only the author edits a review")
        }
        let body = try request.decode(UpdateBody.self)
        var validator = Validator()
        let rating = Self.rating(body.rating, required: false, &validator)
        let text = Self.text(body.text, &validator)
        try validator.check()
        let updated = try change {
            try reviews.updateReview(id: review.id, rating: rating, text: text, actorID: caller.userID, now: context.now)
        }
        return try .encode(.ok, ReviewView(updated))
    }

    /// `DELETE /api/reviews/{id}`: its author, an owner of the company or an admin; its comments go with it.
    func delete(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let caller = ReviewCaller(context)
        let review = try visibleReview(request.parameters["id"], caller)
        if caller.participantKey != review.participantKey {
            guard case .user(let access) = caller, access.canManage(companyID: review.companyId) else {
                throw APIError.forbidden("only the author, the company's owners and admins delete a review")
            }
        }
        try change { try reviews.deleteReview(id: review.id, actorID: caller.userID, now: context.now) }
        logger.info("review deleted", metadata: ["review": "\(review.id)"])
        return RestResponse(status: .noContent)
    }

    // MARK: Helpers

    /// A review the caller may see, or 404: a user's company's, or a guest's own.
    private func visibleReview(_ id: String?, _ caller: ReviewCaller) throws -> Review {
        guard let id, let review = try reviews.review(id: id) else { throw APIError.notFound("no such review") }
        switch caller {
        case .guest(let pass):
            guard review.callId == pass.callID, review.participantKey == caller.participantKey else {
                throw APIError.notFound("no such review")
            }
        case .user(let access):
            guard access.canSee(companyID: review.companyId) else { throw APIError.notFound("no such review") }
        }
        return review
    }

    /// Runs a store change, turning the review store's refusals into API errors.
    func change<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ReviewError {
            throw Self.apiError(error)
        }
    }

    /// The one wire answer of each refusal of the review store.
    static func apiError(_ error: ReviewError) -> APIError {
        switch error {
        case .notFound: .notFound("it no longer exists")
        case .targetNotFound: .notFound("no such call or review")
        case .alreadyReviewed: .conflict("you have reviewed this call already: change your review instead")
        }
    }

    /// A whole number from 1 to 5.
    private static func rating(_ value: Double?, required: Bool, _ validator: inout Validator) -> Int? {
        guard let value else {
            validator.require(!required, "rating", "is required")
            return nil
        }
        guard value == value.rounded(), value >= 1, value <= 5 else {
            validator.require(false, "rating", "must be a whole number from 1 to 5")
            return nil
        }
        return Int(value)
    }

    /// Review text as written, at most 4,000 code points (empty allowed).
    private static func text(_ value: String?, _ validator: inout Validator) -> String? {
        guard let value else { return nil }
        validator.require(value.unicodeScalars.count <= maxText, "text", "must have at most \(maxText) characters")
        return value
    }
}

/// Who calls a review route: a user (with their directory scope) or a call's guest.
enum ReviewCaller {
    case user(DirectoryAccess)
    case guest(GuestPass)

    init(_ context: RouteContext) {
        if let guest = context.guest { self = .guest(guest) } else { self = .user(DirectoryAccess(context)) }
    }

    /// The participant key the caller writes reviews under.
    var participantKey: String {
        switch self {
        case .user(let access): ReviewAuthor.user(id: access.caller.id, name: access.caller.name).participantKey
        case .guest(let pass): ReviewAuthor.guest(id: pass.guestID, name: pass.name).participantKey
        }
    }

    /// The user, for the audit log (nil for a guest).
    var userID: String? {
        if case .user(let access) = self { access.caller.id } else { nil }
    }
}

/// A review as the API shows it.
struct ReviewView: Encodable, Sendable {
    /// Who wrote it: a user (`user_id`) or a guest (`guest_id`), and the name they had then.
    struct Author: Encodable, Sendable {
        let userId: String?
        let guestId: String?
        let name: String

        private enum CodingKeys: String, CodingKey { case userId, guestId, name }

        /// Every field, `null` included.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(userId, forKey: .userId)
            try container.encode(guestId, forKey: .guestId)
            try container.encode(name, forKey: .name)
        }
    }

    let id: String
    let callId: String
    let companyId: String
    let author: Author
    let rating: Int
    let text: String
    let createdAt: Date
    let updatedAt: Date

    init(_ review: Review) {
        id = review.id
        callId = review.callId
        companyId = review.companyId
        author = Author(userId: review.guestID == nil ? review.authorUserId : nil, guestId: review.guestID,
                        name: review.authorName)
        rating = review.rating
        text = review.text
        createdAt = review.createdAt
        updatedAt = review.updatedAt
    }
}
