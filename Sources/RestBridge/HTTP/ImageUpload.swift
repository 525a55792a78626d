import Foundation

/// The image formats uploads accept, recognised by their first bytes (never by a declared type or a name).
public enum ImageType: String, CaseIterable, Sendable {
    case png, jpeg, webp

    /// The type of `bytes` by its magic number, or nil for anything else.
    public init?(sniffing bytes: some Collection<UInt8>) {
        let head = Array(bytes.prefix(16))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if head.count >= 16, head.starts(with: Array("RIFF".utf8)), Array(head[8..<15]) == Array("WEBPVP8".utf8) {
            // RIFF, the chunk size, WEBP, then a VP8 / VP8L / VP8X chunk.
            self = .webp
        } else {
            return nil
        }
    }

    public var contentType: String {
        switch self {
        case .png: "image/png"
        case .jpeg: "image/jpeg"
        case .webp: "image/webp"
        }
    }

    public var fileExtension: String {
        switch self {
        case .png: "png"
        case .jpeg: "jpg"
        case .webp: "webp"
        }
    }

    /// The type of a stored file by its extension.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "webp": self = .webp
        default: return nil
        }
    }
}

/// An uploaded image: `multipart/form-data` with a field `file`, or the raw image as the whole body.
public struct ImageUpload: Sendable {
    public let type: ImageType
    public let bytes: [UInt8]

    /// Takes the image out of a request: 400 for malformed multipart, 422 without a file, 413 over `maxBytes`,
    /// 415 when the content is not PNG, JPEG or WebP.
    public init(_ request: RestRequest, maxBytes: Int) throws(APIError) {
        let bytes: [UInt8]
        if let contentType = request.headers[.contentType], contentType.lowercased().hasPrefix("multipart/") {
            guard MultipartFormData.boundary(contentType: contentType) != nil else {
                throw contentType.lowercased().hasPrefix("multipart/form-data")
                    ? .badRequest(MultipartFormData.Failure.missingBoundary.description)
                    : APIError(.unsupportedMediaType, "unsupported_media_type",
                               "send multipart/form-data with a field `file`, or the image itself as the body")
            }
            let parts: [MultipartFormData.Part]
            do {
                parts = try MultipartFormData.parse(request.body, contentType: contentType)
            } catch {
                throw .badRequest(error.description)
            }
            guard let file = parts.first(where: { $0.name == "file" }) else {
                throw .validation(["file": ["is required"]])
            }
            bytes = file.body
        } else {
            bytes = request.body
        }
        guard !bytes.isEmpty else { throw .validation(["file": ["is required"]]) }
        guard bytes.count <= maxBytes else {
            throw .tooLarge("the image has \(bytes.count) bytes; at most \(maxBytes) are allowed")
        }
        guard let type = ImageType(sniffing: bytes) else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the image must be PNG, JPEG or WebP")
        }
        self.type = type
        self.bytes = bytes
    }
}
