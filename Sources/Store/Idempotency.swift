import Foundation
import GRDB

/// A stored answer to a POST with an `Idempotency-Key`.
public struct IdempotentResponse: Equatable, Sendable {
    public let requestHash: String
    public let status: Int
    /// Header lines as `name: value`, one per line.
    public let headers: String
    public let body: [UInt8]
    public let createdAt: Date

    public init(requestHash: String, status: Int, headers: String, body: [UInt8], createdAt: Date) {
        self.requestHash = requestHash
        self.status = status
        self.headers = headers
        self.body = body
        self.createdAt = createdAt
    }
}

/// Remembers answers to `Idempotency-Key` requests per user for 24 hours.
public protocol IdempotencyStore: Sendable {
    /// The answer stored for this user and key since `notBefore`, if any.
    func idempotentResponse(userID: String, key: String, notBefore: Date) throws -> IdempotentResponse?
    /// Stores (or replaces an expired) answer; also drops records older than `expireBefore`.
    func saveIdempotentResponse(userID: String, key: String, _ response: IdempotentResponse, expireBefore: Date) throws
}

extension SQLiteStore: IdempotencyStore {
    public func idempotentResponse(userID: String, key: String, notBefore: Date) throws -> IdempotentResponse? {
        try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT request_hash, status, headers, body, created_at FROM idempotency_records
                WHERE user_id = ? AND key = ? AND created_at >= ?
                """, arguments: [userID, key, notBefore])
        }.map { row in
            IdempotentResponse(requestHash: row["request_hash"], status: row["status"], headers: row["headers"],
                               body: Array(row["body"] as Data), createdAt: row["created_at"])
        }
    }

    public func saveIdempotentResponse(userID: String, key: String, _ response: IdempotentResponse, expireBefore: Date) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM idempotency_records WHERE created_at < ?", arguments: [expireBefore])
            try db.execute(sql: """
                INSERT OR REPLACE INTO idempotency_records (user_id, key, request_hash, status, headers, body, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [userID, key, response.requestHash, response.status, response.headers,
                                 Data(response.body), response.createdAt])
        }
    }
}
