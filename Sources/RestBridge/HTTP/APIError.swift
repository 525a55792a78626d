import HTTPTypes

/// A refused REST request: it decides its own status and wire code (PROTOCOL.md 2 and 3).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var fields: [String: [String]]?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, fields: [String: [String]]? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
    }

    public static func badRequest(_ message: String) -> APIError { .init(.badRequest, "bad_request", message) }
    public static let unauthorized = APIError(.unauthorized, "unauthorized", "an Authorization: Bearer token is required")
    public static func invalidToken(_ message: String = "the token is invalid, expired or revoked") -> APIError {
        .init(.unauthorized, "invalid_token", message)
    }
    public static func forbidden(_ message: String) -> APIError { .init(.forbidden, "forbidden", message) }
    public static func notFound(_ message: String) -> APIError { .init(.notFound, "not_found", message) }
    public static func conflict(_ message: String) -> APIError { .init(.conflict, "conflict", message) }
    public static func tooLarge(_ message: String) -> APIError { .init(.contentTooLarge, "too_large", message) }
    public static func validation(_ fields: [String: [String]]) -> APIError {
        .init(.unprocessableContent, "validation_failed", "the request has invalid fields", fields: fields)
    }
    public static func internalError() -> APIError {
        .init(.internalServerError, "internal", "the server failed to answer; it has been logged")
    }
}

/// Collects per-field validation messages; `check()` throws 422 when any were found.
public struct Validator {
    public private(set) var fields: [String: [String]] = [:]

    public init() {}

    public mutating func require(_ condition: Bool, _ field: String, _ message: String) {
        if !condition { fields[field, default: []].append(message) }
    }

    /// Trims `value` and checks its length in characters.
    public mutating func text(_ value: String?, _ field: String, min: Int = 1, max: Int) -> String {
        guard let value else {
            fields[field, default: []].append("is required")
            return ""
        }
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.count < min { fields[field, default: []].append(min <= 1 ? "must not be empty" : "must have at least \(min) characters") }
        if trimmed.count > max { fields[field, default: []].append("must have at most \(max) characters") }
        return trimmed
    }

    public func check() throws(APIError) {
        if !fields.isEmpty { throw .validation(fields) }
    }
}

import Foundation
