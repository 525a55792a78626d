import Foundation
import HTTPTypes
import Rooms

/// One REST request as routes see it.
public struct RestRequest: Sendable {
    public let method: HTTPRequest.Method
    public let path: String
    public let query: [String: String]
    public let headers: HTTPFields
    public let body: [UInt8]
    public let remoteAddress: String
    /// The `Host` the client asked for, if it sent one.
    public let authority: String?
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
        authority = head.authority
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

    /// The largest JSON body (PROTOCOL.md 3); the transport lets larger bodies through for uploads.
    public static let maxJSONBytes = 1 << 20

    /// Decodes the JSON body into `T`: 415 for another content type, 413 for a body over 1 MiB or nesting
    /// deeper than 32, 400 for malformed JSON or a non-object, 422 for a missing or mistyped field. Unknown
    /// fields are ignored.
    public func decode<T: Decodable>(_ type: T.Type) throws(APIError) -> T {
        if !body.isEmpty, !(headers[.contentType]?.lowercased().hasPrefix("application/json") ?? false) {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json")
        }
        guard body.count <= Self.maxJSONBytes else { throw .tooLarge("a JSON body may have at most 1 MiB") }
        guard JSONShape.depth(of: body) <= 32 else { throw .tooLarge("JSON is nested deeper than 32 levels") }
        guard String(bytes: body, encoding: .utf8) != nil else { throw .badRequest("the body is not valid UTF-8") }
        // The strict RFC 8259 parser of the WebSocket side: Foundation's accepts trailing commas on Linux.
        let value: JSONValue
        do {
            value = try body.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
                try JSONParser.parse(buffer, maxDepth: 33)
            }
        } catch {
            throw .badRequest(body.isEmpty ? "a JSON body is required" : "malformed JSON: \(error.message)")
        }
        guard case .object = value else { throw .badRequest("the body must be a JSON object") }
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

    /// The wire name of a field: coding paths carry the camelCase names the decoder converted to.
    static func fieldName(_ path: [any CodingKey]) -> String {
        path.map { key in
            key.intValue.map(String.init) ?? key.stringValue.reduce(into: "") { name, character in
                if character.isUppercase {
                    if !name.isEmpty { name.append("_") }
                    name += character.lowercased()
                } else {
                    name.append(character)
                }
            }
        }.joined(separator: ".")
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

/// A decoding key produced by the API's key strategy.
private struct APIKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ value: String) { stringValue = value }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension JSONDecoder {
    /// snake_case keys, as the API uses them.
    static var api: JSONDecoder {
        let decoder = JSONDecoder()
        // snake_case → camelCase, but only for keys in snake_case: `companyName` must stay an unknown field
        // (ignored), not match `company_name` as `.convertFromSnakeCase` would.
        decoder.keyDecodingStrategy = .custom { path in
            let key = path.last!.stringValue
            guard !key.contains(where: \.isUppercase) else { return APIKey("\u{0}" + key) }
            var result = ""
            var upperNext = false
            for character in key {
                if character == "_", !result.isEmpty { upperNext = true; continue }
                // `uppercased()` may give several characters ("ß" → "SS"): append the string, never a Character.
                if upperNext { result += character.uppercased() } else { result.append(character) }
                upperNext = false
            }
            return APIKey(result)
        }
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
            try container.encode(rfc3339Milliseconds(date))
        }
        return encoder
    }

    /// `2026-01-02T03:04:05.678Z`, rounded to the nearest millisecond as the store rounds (formatting styles
    /// truncate, so 0.7379999… would read .737 here but .738 from the store).
    static func rfc3339Milliseconds(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        let seconds = (milliseconds / 1000).rounded(.down)
        let fraction = Int(milliseconds - seconds * 1000)
        let whole = Date(timeIntervalSince1970: seconds).formatted(Date.ISO8601FormatStyle())
        return whole.dropLast() + "." + String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0)
            + String(fraction) + "Z"
    }
}
