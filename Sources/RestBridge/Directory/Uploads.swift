import Foundation
import HTTPTypes

/// Uploaded images on disk (`DATA/uploads/`), each under a random name with its type's extension. The store
/// keeps only the name; nothing from a request ever becomes part of a path.
struct UploadDirectory: Sendable {
    let url: URL

    /// Writes an image under a fresh random name (atomically) and returns the name.
    func save(_ upload: ImageUpload) throws -> String {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let name = Crypto.hex(Crypto.randomBytes(16)) + "." + upload.type.fileExtension
        try Data(upload.bytes).write(to: url.appendingPathComponent(name), options: .atomic)
        return name
    }

    /// An image by the name `save` gave it, or nil if the name is not one of ours or the file is gone.
    func read(_ name: String) -> (type: ImageType, bytes: [UInt8])? {
        guard let type = Self.type(of: name),
              let data = FileManager.default.contents(atPath: url.appendingPathComponent(name).path)
        else { return nil }
        return (type, Array(data))
    }

    /// Deletes an image (a replaced avatar or logo, or one whose store update failed). Best effort.
    func remove(_ name: String?) {
        guard let name, Self.type(of: name) != nil else { return }
        try? FileManager.default.removeItem(at: url.appendingPathComponent(name))
    }

    /// The type of a name `save` could have made (32 hex digits and a known extension), else nil.
    static func type(of name: String) -> ImageType? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 32, parts[0].allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { return nil }
        return ImageType(fileExtension: String(parts[1]))
    }
}

extension RestResponse {
    /// A stored image with its content type; private to the caller, revalidated on every use.
    static func image(_ type: ImageType, _ bytes: [UInt8]) -> RestResponse {
        var response = RestResponse(status: .ok, body: bytes)
        response.headerFields[.contentType] = type.contentType
        response.headerFields[.cacheControl] = "private, no-cache"
        response.headerFields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return response
    }
}
