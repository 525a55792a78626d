import Foundation
import HTTPTypes

/// One REST request as routes see it.
public struct RestRequest: Sendable {
    public let method: HTTPRequest.Method
    public let path: String
    public let query: [String: String]
    public let headers: HTTPFields
    public let body: [UInt8]
    public let remoteAddress: String
    /// Values of the route's `:name` path parameters.
    public internal(set) var parameters: [String: String] = [:]

    public init(head: HTTPRequest, body: [UInt8], remoteAddress: String) {
        method = head.method
        let target = head.path ?? "/"
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts.first ?? "/")
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
                query[name] = value
            }
        }
        self.query = query
        headers = head.headerFields
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// The bearer token of `Authorization`, if any.
    public var bearerToken: String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// Decodes the JSON body into `T`: 415 for another content type, 413 for nesting deeper than 32, 400 for
    /// malformed JSON or a non-object, 422 for a missing or mistyped field. Unknown fields are ignored.
    public func decode<T: Decodable>(_ type: T.Type) throws(APIError) -> T {
        if let contentType = headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json")
        }
        guard JSONShape.depth(of: body) <= 32 else { throw .tooLarge("JSON is nested deeper than 32 levels") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw .badRequest(body.isEmpty ? "a JSON body is required" : "malformed JSON")
        }
        guard object is [String: Any] else { throw .badRequest("the body must be a JSON object") }
        do {
            return try JSONDecoder.api.decode(T.self, from: Data(body))
        } catch let DecodingError.typeMismatch(expected, context) {
            throw .validation([Self.fieldName(context.codingPath): ["must be \(Self.describe(expected))"]])
        } catch let DecodingError.valueNotFound(expected, context) {
            throw .validation([Self.fieldName(context.codingPath): ["must be \(Self.describe(expected))"]])
        } catch let DecodingError.keyNotFound(key, context) {
            throw .validation([Self.fieldName(context.codingPath + [key]): ["is required"]])
        } catch {
            throw .badRequest("the body could not be read: \(error)")
        }
    }

    private static func fieldName(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is String?.Type: "a string"
        case is Bool.Type, is Bool?.Type: "a boolean"
        case is Int.Type, is Int?.Type, is Double.Type, is Double?.Type: "a number"
        default: "a valid value"
        }
    }
}

/// Cheap structural checks on JSON text before it is parsed.
enum JSONShape {
    /// The deepest nesting of arrays and objects (strings are skipped).
    static func depth(of bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}

extension JSONDecoder {
    /// snake_case keys, as the API uses them.
    static var api: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

extension JSONEncoder {
    /// snake_case keys, RFC 3339 times with milliseconds.
    static var api: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        return encoder
    }
}
