import Foundation

/// A strict `multipart/form-data` reader (RFC 7578 on RFC 2046): the body must start with the first
/// delimiter and end with the close delimiter; every part needs `Content-Disposition: form-data; name=…`.
/// Enough for file uploads from browsers, curl and HTTP libraries; no nested multiparts, no encodings.
public enum MultipartFormData {
    /// One field of a form.
    public struct Part: Equatable, Sendable {
        public let name: String
        public let filename: String?
        public let contentType: String?
        public let body: [UInt8]
    }

    /// Why a body is not acceptable multipart/form-data.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missingBoundary
        case malformed(String)

        public var description: String {
            switch self {
            case .missingBoundary: "the multipart/form-data content type has no valid boundary"
            case .malformed(let why): "malformed multipart/form-data: \(why)"
            }
        }
    }

    static let maxParts = 16
    static let maxHeaderBytes = 8 * 1024

    /// The boundary of a `multipart/form-data` content type, or nil if it has none or another type.
    public static func boundary(contentType: String) -> String? {
        let parameters = HeaderParameters(contentType)
        guard parameters.value.lowercased() == "multipart/form-data", let boundary = parameters["boundary"],
              (1...70).contains(boundary.utf8.count), !boundary.hasSuffix(" "),
              boundary.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F })
        else { return nil }
        return boundary
    }

    /// Splits a body into its parts.
    public static func parse(_ body: [UInt8], contentType: String) throws(Failure) -> [Part] {
        guard let boundary = boundary(contentType: contentType) else { throw .missingBoundary }
        let dash = Array("--".utf8), crlf: [UInt8] = [13, 10]
        let delimiter = dash + Array(boundary.utf8)
        let separator = crlf + delimiter
        guard body.starts(with: delimiter) else { throw .malformed("the body does not start with the boundary") }
        var cursor = delimiter.count
        var parts: [Part] = []
        while true {
            // After a delimiter: `--` closes the body; otherwise optional blanks and a line break open a part.
            if body[cursor...].starts(with: dash) {
                cursor += 2
                let rest = body[cursor...]
                // Only blanks and line breaks (the epilogue of well-behaved clients) may follow.
                guard rest.allSatisfy({ $0 == 13 || $0 == 10 || $0 == 32 || $0 == 9 }) else {
                    throw .malformed("data after the closing boundary")
                }
                break
            }
            while cursor < body.count, body[cursor] == 32 || body[cursor] == 9 { cursor += 1 }
            guard body[cursor...].starts(with: crlf) else { throw .malformed("a boundary is not followed by a line break") }
            cursor += 2
            guard parts.count < maxParts else { throw .malformed("more than \(maxParts) parts") }

            guard let headerEnd = find([13, 10, 13, 10], in: body, from: cursor, within: maxHeaderBytes + 4) else {
                throw .malformed("a part's headers do not end")
            }
            let headers = try parseHeaders(body[cursor..<headerEnd])
            cursor = headerEnd + 4
            guard let end = find(separator, in: body, from: cursor) else {
                throw .malformed("the closing boundary is missing")
            }
            guard let disposition = headers["content-disposition"] else {
                throw .malformed("a part has no Content-Disposition")
            }
            let parameters = HeaderParameters(disposition)
            guard parameters.value.lowercased() == "form-data", let name = parameters["name"] else {
                throw .malformed("a part's Content-Disposition is not form-data with a name")
            }
            parts.append(Part(name: name, filename: parameters["filename"], contentType: headers["content-type"],
                              body: Array(body[cursor..<end])))
            cursor = end + separator.count
        }
        return parts
    }

    /// `Name: value` lines (names lower-cased); no folding, no duplicates.
    private static func parseHeaders(_ bytes: ArraySlice<UInt8>) throws(Failure) -> [String: String] {
        var headers: [String: String] = [:]
        guard !bytes.isEmpty else { return headers }
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw .malformed("part headers are not UTF-8") }
        for line in text.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  !line.hasPrefix(" "), !line.hasPrefix("\t")
            else { throw .malformed("a part header line is not `Name: value`") }
            let name = line[..<colon].lowercased()
            guard !name.contains(where: { $0.isWhitespace }), headers[name] == nil else {
                throw .malformed("a bad or repeated part header")
            }
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return headers
    }

    /// The first index of `needle` in `haystack` at or after `start` (and, if given, starting before
    /// `start + within`).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int, within: Int? = nil) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        let last = haystack.count - needle.count
        let limit = within.map { min(last, start + $0 - needle.count) } ?? last
        guard start <= limit else { return nil }
        return haystack.withUnsafeBufferPointer { buffer -> Int? in
            var index = start
            while index <= limit {
                if buffer[index] == first {
                    var offset = 1
                    while offset < needle.count, buffer[index + offset] == needle[offset] { offset += 1 }
                    if offset == needle.count { return index }
                }
                index += 1
            }
            return nil
        }
    }
}

/// A header value with `; name=value` parameters (`multipart/form-data; boundary=x`,
/// `form-data; name="file"; filename="a.png"`). Quoted values may hold `;` and backslash escapes;
/// parameter names are case-insensitive.
struct HeaderParameters {
    let value: String
    private var parameters: [String: String] = [:]

    init(_ header: String) {
        var fields: [String] = []
        var current = "", quoted = false, escaped = false
        for character in header {
            if escaped {
                current.append(character)
                escaped = false
            } else if quoted && character == "\\" {
                current.append(character)
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
                current.append(character)
            } else if character == ";" && !quoted {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        value = fields[0].trimmingCharacters(in: .whitespaces)
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: "=") else { continue }
            let name = field[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var raw = field[field.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if raw.count >= 2, raw.hasPrefix("\""), raw.hasSuffix("\"") {
                raw = String(raw.dropFirst().dropLast())
                var unescaped = "", pending = false
                for character in raw {
                    if pending || character != "\\" {
                        unescaped.append(character)
                        pending = false
                    } else {
                        pending = true
                    }
                }
                raw = unescaped
            }
            if !name.isEmpty, parameters[name] == nil { parameters[name] = raw }
        }
    }

    subscript(name: String) -> String? { parameters[name.lowercased()] }
}
