import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct ReviewStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-reviews-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    /// A stored call of `company`, hosted by `host` (the call routes are not under test here).
    private func call(_ store: SQLiteStore, _ company: Company, _ host: User) throws -> String {
        let id = UUID().uuidString.lowercased()
        try store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO video_calls (id, company_id, host_id, title, code, guest_access, lobby, max_participants,
                                         status, created_at, updated_at)
                VALUES (?, ?, ?, 'Call', ?, 1, 0, 10, 'ended', ?, ?)
                """, arguments: [id, company.id, host.id, String(id.prefix(9)).uppercased(), now, now])
        }
        return id
    }

    private func actions(_ store: SQLiteStore) throws -> [String] {
        try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT action FROM audit_log WHERE action LIKE 'review.%' OR action LIKE 'comment.%' ORDER BY id")
        }
    }

    @Test func oneReviewPerParticipantPerCall() throws {
        try withStore { store in
            let (acme, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                   passwordHash: "h", now: now)
            let callID = try call(store, acme, owner)
            let other = try call(store, acme, owner)
            #expect(try store.callCompanyID(callID: callID) == acme.id)
            #expect(try store.callCompanyID(callID: "nope") == nil)
            let mine = try store.createReview(NewReview(callID: callID, author: .user(id: owner.id, name: "Olga"),
                                                        rating: 4, text: "Good"), actorID: owner.id, now: now)
            #expect(mine.companyId == acme.id && mine.participantKey == "user:\(owner.id)" && mine.guestID == nil)
            #expect(mine.authorUserId == owner.id && mine.authorName == "Olga" && mine.createdAt == now)
            #expect(throws: ReviewError.alreadyReviewed) {
                try store.createReview(NewReview(callID: callID, author: .user(id: owner.id, name: "Olga"), rating: 1,
                                                 text: ""), actorID: owner.id, now: now)
            }
            // Another call, or a guest of the same call, is another participant.
            _ = try store.createReview(NewReview(callID: other, author: .user(id: owner.id, name: "Olga"), rating: 2,
                                                 text: ""), actorID: owner.id, now: now + 1)
            let guest = try store.createReview(NewReview(callID: callID, author: .guest(id: "g1", name: "Gus"), rating: 5,
                                                         text: "Great 100%"), actorID: nil, now: now + 2)
            #expect(guest.guestID == "g1" && guest.authorUserId == nil && guest.participantKey == "guest:g1")
            #expect(throws: ReviewError.alreadyReviewed) {
                try store.createReview(NewReview(callID: callID, author: .guest(id: "g1", name: "Gus"), rating: 5,
                                                 text: ""), actorID: nil, now: now)
            }
            #expect(throws: ReviewError.targetNotFound) {
                try store.createReview(NewReview(callID: "nope", author: .guest(id: "g1", name: "Gus"), rating: 5,
                                                 text: ""), actorID: nil, now: now)
            }
            #expect(try store.reviews(matching: ReviewFilter(companyID: acme.id), offset: 0, limit: 10).items.map(\.rating)
                == [5, 2, 4])
            #expect(try store.reviews(matching: ReviewFilter(callID: callID), offset: 0, limit: 10).total == 2)
            #expect(try store.reviews(matching: ReviewFilter(rating: 2), offset: 0, limit: 10).total == 1)
            #expect(try store.reviews(matching: ReviewFilter(search: "%"), offset: 0, limit: 10).items == [guest])
            #expect(try store.reviews(matching: ReviewFilter(participantKey: "guest:g1"), offset: 0, limit: 10).items
                == [guest])
            #expect(try store.reviews(matching: ReviewFilter(companyID: "other"), offset: 0, limit: 10).total == 0)
            #expect(try store.reviews(matching: ReviewFilter(), offset: 1, limit: 1).items.map(\.rating) == [2])
        }
    }

    @Test func updatesAndDeletesReviewsWithTheirComments() throws {
        try withStore { store in
            let (acme, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                   passwordHash: "h", now: now)
            let callID = try call(store, acme, owner)
            let review = try store.createReview(NewReview(callID: callID, author: .guest(id: "g1", name: "Gus"),
                                                          rating: 3, text: "ok"), actorID: nil, now: now)
            let same = try store.updateReview(id: review.id, rating: 3, text: nil, actorID: nil, now: now + 5)
            #expect(same == review)
            let changed = try store.updateReview(id: review.id, rating: 5, text: "better", actorID: nil, now: now + 6)
            #expect(changed.rating == 5 && changed.text == "better" && changed.updatedAt == now + 6)
            #expect(try store.review(id: review.id) == changed)
            let onReview = try store.createComment(on: .review(review.id), authorID: owner.id, text: "Thanks", now: now)
            let onCall = try store.createComment(on: .call(callID), authorID: owner.id, text: "Notes", now: now + 1)
            #expect(onReview.reviewId == review.id && onReview.callId == nil && onReview.companyId == acme.id)
            #expect(onReview.authorName == "Olga")
            try store.deleteReview(id: review.id, actorID: owner.id, now: now + 7)
            #expect(try store.review(id: review.id) == nil)
            #expect(try store.comment(id: onReview.id) == nil)
            #expect(try store.comment(id: onCall.id) == onCall)
            #expect(throws: ReviewError.notFound) { try store.deleteReview(id: review.id, actorID: nil, now: now) }
            #expect(throws: ReviewError.notFound) {
                try store.updateReview(id: review.id, rating: 1, text: nil, actorID: nil, now: now)
            }
            // The participant may review again once their review is gone.
            _ = try store.createReview(NewReview(callID: callID, author: .guest(id: "g1", name: "Gus"), rating: 1,
                                                 text: ""), actorID: nil, now: now + 8)
            #expect(try actions(store) == ["review.create", "review.update", "comment.create", "comment.create",
                                           "review.delete", "review.create"])
        }
    }

    @Test func commentsOnCallsAndReviews() throws {
        try withStore { store in
            let (acme, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                   passwordHash: "h", now: now)
            let (other, stranger) = try store.register(companyName: "Other", email: "o@other.io", name: "Otto",
                                                       passwordHash: "h", now: now)
            let callID = try call(store, acme, owner)
            let theirCall = try call(store, other, stranger)
            let review = try store.createReview(NewReview(callID: callID, author: .user(id: owner.id, name: "Olga"),
                                                          rating: 3, text: ""), actorID: owner.id, now: now)
            let first = try store.createComment(on: .call(callID), authorID: owner.id, text: "first", now: now + 2)
            let second = try store.createComment(on: .call(callID), authorID: owner.id, text: "second", now: now + 3)
            _ = try store.createComment(on: .review(review.id), authorID: owner.id, text: "on review", now: now + 1)
            _ = try store.createComment(on: .call(theirCall), authorID: stranger.id, text: "theirs", now: now)
            #expect(throws: ReviewError.targetNotFound) {
                try store.createComment(on: .call("nope"), authorID: owner.id, text: "x", now: now)
            }
            #expect(throws: ReviewError.targetNotFound) {
                try store.createComment(on: .review("nope"), authorID: owner.id, text: "x", now: now)
            }
            let onCall = try store.comments(matching: CommentFilter(companyID: acme.id, callID: callID), offset: 0,
                                            limit: 10)
            #expect(onCall.total == 2 && onCall.items.map(\.text) == ["first", "second"])
            #expect(try store.comments(matching: CommentFilter(reviewID: review.id), offset: 0, limit: 10).items
                .map(\.text) == ["on review"])
            #expect(try store.comments(matching: CommentFilter(companyID: acme.id), offset: 0, limit: 10).items
                .map(\.text) == ["on review", "first", "second"])
            #expect(try store.comments(matching: CommentFilter(), offset: 1, limit: 2).total == 4)
            let edited = try store.updateComment(id: first.id, text: "first!", actorID: owner.id, now: now + 9)
            #expect(edited.text == "first!" && edited.updatedAt == now + 9 && edited.createdAt == first.createdAt)
            #expect(try store.updateComment(id: first.id, text: "first!", actorID: owner.id, now: now + 10) == edited)
            try store.deleteComment(id: second.id, actorID: owner.id, now: now)
            #expect(try store.comment(id: second.id) == nil)
            #expect(throws: ReviewError.notFound) { try store.deleteComment(id: second.id, actorID: nil, now: now) }
            #expect(throws: ReviewError.notFound) {
                try store.updateComment(id: second.id, text: "x", actorID: nil, now: now)
            }
        }
    }
}
