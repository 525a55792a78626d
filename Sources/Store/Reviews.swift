import Foundation
import GRDB

/// A review of a call by one of its participants: a user of the call's company (`participant_key`
/// `user:<id>`) or one of its guests (`guest:<guest id>`). One per participant per call.
public struct Review: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "reviews"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var companyId: String
    public var callId: String
    /// The user who wrote it; nil for a guest.
    public var authorUserId: String?
    public var authorName: String
    public var participantKey: String
    public var rating: Int
    public var text: String
    public var createdAt: Date
    public var updatedAt: Date

    /// The guest who wrote it; nil for a user.
    public var guestID: String? {
        participantKey.hasPrefix(ReviewAuthor.guestPrefix) ? String(participantKey.dropFirst(ReviewAuthor.guestPrefix.count))
            : nil
    }
}

/// Who writes a review: a user or a call's guest, with the name shown.
public enum ReviewAuthor: Equatable, Sendable {
    case user(id: String, name: String)
    case guest(id: String, name: String)

    static let userPrefix = "user:"
    static let guestPrefix = "guest:"

    /// What makes a review unique within its call.
    public var participantKey: String {
        switch self {
        case .user(let id, _): Self.userPrefix + id
        case .guest(let id, _): Self.guestPrefix + id
        }
    }

    var name: String {
        switch self {
        case .user(_, let name), .guest(_, let name): name
        }
    }

    var userID: String? {
        if case .user(let id, _) = self { id } else { nil }
    }
}

/// A review to create.
public struct NewReview: Sendable {
    public var callID: String
    public var author: ReviewAuthor
    public var rating: Int
    public var text: String

    public init(callID: String, author: ReviewAuthor, rating: Int, text: String) {
        self.callID = callID
        self.author = author
        self.rating = rating
        self.text = text
    }
}

/// Which reviews a listing returns.
public struct ReviewFilter: Sendable {
    /// Only reviews of this company's calls; nil: every company (admins).
    public var companyID: String?
    public var callID: String?
    public var rating: Int?
    /// A case-insensitive substring of the text.
    public var search: String?
    /// Only the review(s) of this participant (a guest sees only their own).
    public var participantKey: String?

    public init(companyID: String? = nil, callID: String? = nil, rating: Int? = nil, search: String? = nil,
                participantKey: String? = nil)
    {
        self.companyID = companyID
        self.callID = callID
        self.rating = rating
        self.search = search
        self.participantKey = participantKey
    }
}

/// A comment by a user of a company on one of its calls or on a review of one.
public struct Comment: Codable, Equatable, Sendable, FetchableRecord {
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase

    public var id: String
    public var companyId: String
    /// The call commented on; nil for a comment on a review.
    public var callId: String?
    /// The review commented on; nil for a comment on a call.
    public var reviewId: String?
    public var authorId: String
    /// The author's name now (from `users`).
    public var authorName: String
    public var text: String
    public var createdAt: Date
    public var updatedAt: Date
}

/// What a comment is about.
public enum CommentTarget: Equatable, Sendable {
    case call(String)
    case review(String)
}

/// Which comments a listing returns (oldest first).
public struct CommentFilter: Sendable {
    /// Only comments in this company; nil: every company (admins).
    public var companyID: String?
    public var callID: String?
    public var reviewID: String?

    public init(companyID: String? = nil, callID: String? = nil, reviewID: String? = nil) {
        self.companyID = companyID
        self.callID = callID
        self.reviewID = reviewID
    }
}

/// Why the review store refused a change, in domain terms.
public enum ReviewError: Error, Equatable {
    /// No such review or comment.
    case notFound
    /// The call (or the review) a new review or comment is about does not exist.
    case targetNotFound
    /// This participant has reviewed this call already.
    case alreadyReviewed
}

/// Reviews of calls (one per participant per call) and comments on calls or reviews. Deleting a review deletes
/// its comments. Every change goes to `audit_log`. Synchronous: call from a worker thread.
public protocol ReviewStore: Sendable {
    /// The company of a stored call, if the call exists.
    func callCompanyID(callID: String) throws -> String?

    /// Reviews matching `filter`, newest first.
    func reviews(matching filter: ReviewFilter, offset: Int, limit: Int) throws -> Paged<Review>
    /// A review by id.
    func review(id: String) throws -> Review?
    /// Creates a review of a stored call (else `.targetNotFound`); a second one by the same participant →
    /// `.alreadyReviewed`.
    func createReview(_ new: NewReview, actorID: String?, now: Date) throws -> Review
    /// Changes a review's rating and text; nil leaves a field as it is.
    func updateReview(id: String, rating: Int?, text: String?, actorID: String?, now: Date) throws -> Review
    /// Deletes a review and the comments on it.
    func deleteReview(id: String, actorID: String?, now: Date) throws

    /// Comments matching `filter`, oldest first.
    func comments(matching filter: CommentFilter, offset: Int, limit: Int) throws -> Paged<Comment>
    /// A comment by id, with its author's name.
    func comment(id: String) throws -> Comment?
    /// Creates a comment on a stored call or review (else `.targetNotFound`), in the target's company.
    func createComment(on target: CommentTarget, authorID: String, text: String, now: Date) throws -> Comment
    /// Changes a comment's text (the same text changes nothing).
    func updateComment(id: String, text: String, actorID: String?, now: Date) throws -> Comment
    /// Deletes a comment.
    func deleteComment(id: String, actorID: String?, now: Date) throws
}

extension SQLiteStore: ReviewStore {
    public func callCompanyID(callID: String) throws -> String? {
        try pool.read { db in try Self.companyOfCall(db, callID) }
    }

    // MARK: Reviews

    public func reviews(matching filter: ReviewFilter, offset: Int, limit: Int) throws -> Paged<Review> {
        try pool.read { db in
            var request = Review.all()
            if let companyID = filter.companyID { request = request.filter(Column("company_id") == companyID) }
            if let callID = filter.callID { request = request.filter(Column("call_id") == callID) }
            if let rating = filter.rating { request = request.filter(Column("rating") == rating) }
            if let key = filter.participantKey { request = request.filter(Column("participant_key") == key) }
            if let search = filter.search, !search.isEmpty {
                request = request.filter(sql: "text LIKE ? ESCAPE '\\'", arguments: [Self.likePattern(search)])
            }
            let total = try request.fetchCount(db)
            let items = try request.order(Column("created_at").desc, Column("id")).limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: total)
        }
    }

    public func review(id: String) throws -> Review? {
        try pool.read { db in try Review.fetchOne(db, key: id) }
    }

    public func createReview(_ new: NewReview, actorID: String?, now: Date) throws -> Review {
        do {
            return try pool.write { db in
                guard let companyID = try Self.companyOfCall(db, new.callID) else { throw ReviewError.targetNotFound }
                let key = new.author.participantKey
                if try Review.filter(Column("call_id") == new.callID && Column("participant_key") == key).fetchCount(db) > 0 {
                    throw ReviewError.alreadyReviewed
                }
                let review = Review(id: UUID().uuidString.lowercased(), companyId: companyID, callId: new.callID,
                                    authorUserId: new.author.userID, authorName: new.author.name, participantKey: key,
                                    rating: new.rating, text: new.text, createdAt: now, updatedAt: now)
                try review.insert(db)
                try Self.record(db, companyID: companyID, actorID: actorID, action: "review.create", targetType: "review",
                                targetID: review.id, data: ["call_id": review.callId, "rating": review.rating,
                                                            "participant": key], now: now)
                return review
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            // Two first reviews at once: the second insert loses.
            throw ReviewError.alreadyReviewed
        }
    }

    public func updateReview(id: String, rating: Int?, text: String?, actorID: String?, now: Date) throws -> Review {
        try pool.write { db in
            guard var review = try Review.fetchOne(db, key: id) else { throw ReviewError.notFound }
            var changed: [String] = []
            if let rating, rating != review.rating {
                review.rating = rating
                changed.append("rating")
            }
            if let text, text != review.text {
                review.text = text
                changed.append("text")
            }
            guard !changed.isEmpty else { return review }
            review.updatedAt = now
            try review.update(db)
            try Self.record(db, companyID: review.companyId, actorID: actorID, action: "review.update",
                            targetType: "review", targetID: review.id, data: ["changed": changed], now: now)
            return review
        }
    }

    public func deleteReview(id: String, actorID: String?, now: Date) throws {
        try pool.write { db in
            guard let review = try Review.fetchOne(db, key: id) else { throw ReviewError.notFound }
            let comments = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM comments WHERE review_id = ?",
                                            arguments: [review.id]) ?? 0
            try db.execute(sql: "DELETE FROM comments WHERE review_id = ?", arguments: [review.id])
            try review.delete(db)
            try Self.record(db, companyID: review.companyId, actorID: actorID, action: "review.delete",
                            targetType: "review", targetID: review.id,
                            data: ["call_id": review.callId, "participant": review.participantKey,
                                   "comments_deleted": comments], now: now)
        }
    }

    // MARK: Comments

    public func comments(matching filter: CommentFilter, offset: Int, limit: Int) throws -> Paged<Comment> {
        try pool.read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let companyID = filter.companyID {
                conditions.append("comments.company_id = ?")
                arguments += [companyID]
            }
            if let callID = filter.callID {
                conditions.append("comments.call_id = ?")
                arguments += [callID]
            }
            if let reviewID = filter.reviewID {
                conditions.append("comments.review_id = ?")
                arguments += [reviewID]
            }
            let clause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM comments \(clause)", arguments: arguments) ?? 0
            let items = try Comment.fetchAll(db, sql: """
                \(Self.commentSelect) \(clause) ORDER BY comments.created_at, comments.id LIMIT ? OFFSET ?
                """, arguments: arguments + [limit, offset])
            return Paged(items: items, total: total)
        }
    }

    public func comment(id: String) throws -> Comment? {
        try pool.read { db in try Self.comment(db, id) }
    }

    public func createComment(on target: CommentTarget, authorID: String, text: String, now: Date) throws -> Comment {
        try pool.write { db in
            let companyID: String?
            var callID: String?
            var reviewID: String?
            switch target {
            case .call(let id):
                companyID = try Self.companyOfCall(db, id)
                callID = id
            case .review(let id):
                companyID = try String.fetchOne(db, sql: "SELECT company_id FROM reviews WHERE id = ?", arguments: [id])
                reviewID = id
            }
            guard let companyID else { throw ReviewError.targetNotFound }
            let id = UUID().uuidString.lowercased()
            try db.execute(sql: """
                INSERT INTO comments (id, company_id, call_id, review_id, author_id, text, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, companyID, callID, reviewID, authorID, text, now, now])
            try Self.record(db, companyID: companyID, actorID: authorID, action: "comment.create",
                            targetType: "comment", targetID: id,
                            data: callID.map { ["call_id": $0] } ?? ["review_id": reviewID ?? ""], now: now)
            guard let comment = try Self.comment(db, id) else { throw ReviewError.notFound }
            return comment
        }
    }

    public func updateComment(id: String, text: String, actorID: String?, now: Date) throws -> Comment {
        try pool.write { db in
            guard let comment = try Self.comment(db, id) else { throw ReviewError.notFound }
            guard text != comment.text else { return comment }
            try db.execute(sql: "UPDATE comments SET text = ?, updated_at = ? WHERE id = ?", arguments: [text, now, id])
            try Self.record(db, companyID: comment.companyId, actorID: actorID, action: "comment.update",
                            targetType: "comment", targetID: id, data: nil, now: now)
            guard let updated = try Self.comment(db, id) else { throw ReviewError.notFound }
            return updated
        }
    }

    public func deleteComment(id: String, actorID: String?, now: Date) throws {
        try pool.write { db in
            guard let comment = try Self.comment(db, id) else { throw ReviewError.notFound }
            try db.execute(sql: "DELETE FROM comments WHERE id = ?", arguments: [id])
            try Self.record(db, companyID: comment.companyId, actorID: actorID, action: "comment.delete",
                            targetType: "comment", targetID: id, data: ["author_id": comment.authorId], now: now)
        }
    }

    // MARK: Helpers

    /// The company of a stored call, if it exists.
    private static func companyOfCall(_ db: Database, _ callID: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT company_id FROM video_calls WHERE id = ?", arguments: [callID])
    }

    private static let commentSelect = """
        SELECT comments.*, users.name AS author_name FROM comments JOIN users ON users.id = comments.author_id
        """

    /// A comment with its author's name.
    private static func comment(_ db: Database, _ id: String) throws -> Comment? {
        try Comment.fetchOne(db, sql: "\(commentSelect) WHERE comments.id = ?", arguments: [id])
    }
}
