import Foundation
import HTTPTypes
import Testing
@testable import RestBridge

@Suite struct MultipartParsing {
    let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR\r\n--x".utf8)

    func form(_ boundary: String, _ parts: [(headers: String, body: [UInt8])], epilogue: String = "\r\n") -> [UInt8] {
        var bytes: [UInt8] = []
        for part in parts {
            bytes += Array("--\(boundary)\r\n\(part.headers)\r\n\r\n".utf8) + part.body + Array("\r\n".utf8)
        }
        return bytes + Array("--\(boundary)--\(epilogue)".utf8)
    }

    @Test func readsFieldsAndFilesByteForByte() throws {
        let body = form("XyZ", [
            (#"Content-Disposition: form-data; name="title""#, Array("hello".utf8)),
            ("Content-Disposition: form-data; name=\"file\"; filename=\"a;b.png\"\r\nContent-Type: image/png", png),
        ])
        let parts = try MultipartFormData.parse(body, contentType: "multipart/form-data; boundary=XyZ")
        #expect(parts.count == 2)
        #expect(parts[0] == .init(name: "title", filename: nil, contentType: nil, body: Array("hello".utf8)))
        #expect(parts[1].name == "file" && parts[1].filename == "a;b.png" && parts[1].contentType == "image/png")
        // CR LF and a lookalike of the boundary inside the content are content.
        #expect(parts[1].body == png)
    }

    @Test func acceptsQuotedBoundariesAndCaseInsensitiveNames() throws {
        let boundary = "----WebKitFormBoundary7MA4YWxk TrZu0gW"
        let body = form(boundary, [("content-disposition: FORM-DATA; NAME=file", [1, 2, 3])], epilogue: "")
        let parts = try MultipartFormData.parse(body, contentType: "Multipart/Form-Data; charset=utf-8; boundary=\"\(boundary)\"")
        #expect(parts.map(\.body) == [[1, 2, 3]])
        #expect(try MultipartFormData.parse(form("b", []), contentType: "multipart/form-data; boundary=b").isEmpty)
    }

    @Test func refusesWhatIsNotStrictlyWellFormed() {
        let type = "multipart/form-data; boundary=b"
        let good = form("b", [(#"Content-Disposition: form-data; name="file""#, [1])])
        #expect(throws: MultipartFormData.Failure.missingBoundary) { try MultipartFormData.parse(good, contentType: "multipart/form-data") }
        #expect(throws: MultipartFormData.Failure.missingBoundary) {
            try MultipartFormData.parse(good, contentType: "multipart/form-data; boundary=" + String(repeating: "a", count: 71))
        }
        #expect(throws: MultipartFormData.Failure.missingBoundary) { try MultipartFormData.parse(good, contentType: "multipart/mixed; boundary=b") }
        let cases: [[UInt8]] = [
            Array("preamble\r\n".utf8) + good,                                        // must start with the boundary
            Array(good.dropLast(6)),                                                  // no closing boundary
            form("b", [("Content-Type: image/png", [1])]),                            // no Content-Disposition
            form("b", [(#"Content-Disposition: attachment; name="file""#, [1])]),     // not form-data
            form("b", [("Content-Disposition: form-data", [1])]),                     // no name
            form("b", [("Content-Disposition form-data; name=file", [1])]),           // not `Name: value`
            form("b", [("Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b", [1])]),
            good + Array("trailing".utf8),                                            // data after the close
            Array("--bX\r\n".utf8),                                                   // a boundary that is longer
            Array("--b".utf8),                                                        // nothing after the boundary
            Array("--b\r\nContent-Disposition: form-data; name=file".utf8),           // headers never end
        ]
        for (index, body) in cases.enumerated() {
            #expect(throws: MultipartFormData.Failure.self, "case \(index)") { try MultipartFormData.parse(body, contentType: type) }
        }
        let many = form("b", Array(repeating: (#"Content-Disposition: form-data; name="f""#, [UInt8]([1])), count: 17))
        #expect(throws: MultipartFormData.Failure.self) { try MultipartFormData.parse(many, contentType: type) }
    }

    @Test func findLocatesNeedlesWithinBounds() {
        let haystack = Array("abcabcd".utf8)
        #expect(MultipartFormData.find(Array("abcd".utf8), in: haystack, from: 0) == 3)
        #expect(MultipartFormData.find(Array("abcd".utf8), in: haystack, from: 4) == nil)
        #expect(MultipartFormData.find(Array("abcd".utf8), in: haystack, from: 0, within: 6) == nil)
        #expect(MultipartFormData.find(Array("abcd".utf8), in: haystack, from: 0, within: 7) == 3)
        #expect(MultipartFormData.find(Array("zz".utf8), in: [], from: 0) == nil)
    }
}

@Suite struct ImageSniffing {
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]
    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16] + Array("JFIF".utf8)
    static let webp: [UInt8] = Array("RIFF".utf8) + [26, 0, 0, 0] + Array("WEBPVP8L".utf8) + [13, 0, 0, 0]

    @Test func recognisesPNGJPEGAndWebPByTheirFirstBytes() {
        #expect(ImageType(sniffing: Self.png) == .png)
        #expect(ImageType(sniffing: Self.jpeg) == .jpeg)
        #expect(ImageType(sniffing: Self.webp) == .webp)
        #expect(ImageType(sniffing: Self.png)?.contentType == "image/png")
        #expect(ImageType(sniffing: Self.webp)?.fileExtension == "webp")
    }

    @Test func refusesEverythingElse() {
        let others: [[UInt8]] = [
            [], Array("GIF89a......".utf8), Array("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8),
            Array(Self.png.prefix(7)), [0xFF, 0xD8], Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8),
            Array(Self.webp.prefix(14)), Array("%PDF-1.7".utf8), Array(#"{"a":1}"#.utf8),
        ]
        for bytes in others { #expect(ImageType(sniffing: bytes) == nil, "\(bytes.prefix(8))") }
    }

    func request(_ body: [UInt8], contentType: String?) -> RestRequest {
        var fields = HTTPFields()
        if let contentType { fields[.contentType] = contentType }
        return RestRequest(head: HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/u", headerFields: fields),
                           body: body, remoteAddress: "")
    }

    func status(_ body: [UInt8], _ contentType: String?, max: Int = 64) -> (Int, String) {
        do {
            let upload = try ImageUpload(request(body, contentType: contentType), maxBytes: max)
            return (200, upload.type.rawValue)
        } catch {
            return (error.status.code, error.code)
        }
    }

    @Test func uploadsComeRawOrAsTheFileFieldWithTheirLimits() {
        #expect(status(Self.png, "image/png") == (200, "png"))
        #expect(status(Self.jpeg, nil) == (200, "jpeg"))
        #expect(status(Self.webp, "application/octet-stream") == (200, "webp"))
        // The declared type does not matter; the content does.
        #expect(status(Self.png, "image/jpeg") == (200, "png"))
        #expect(status(Array("GIF89a".utf8), "image/gif") == (415, "unsupported_media_type"))
        #expect(status(Self.png + [UInt8](repeating: 0, count: 60), "image/png") == (413, "too_large"))
        #expect(status(Self.png + [UInt8](repeating: 0, count: 52), "image/png") == (200, "png"))  // exactly 64
        #expect(status([], "image/png") == (422, "validation_failed"))

        let multipart = "multipart/form-data; boundary=q"
        func form(_ name: String, _ bytes: [UInt8]) -> [UInt8] {
            Array("--q\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"x\"\r\n\r\n".utf8) + bytes
                + Array("\r\n--q--\r\n".utf8)
        }
        #expect(status(form("file", Self.webp), multipart) == (200, "webp"))
        #expect(status(form("avatar", Self.webp), multipart) == (422, "validation_failed"))
        #expect(status(form("file", Array("text".utf8)), multipart) == (415, "unsupported_media_type"))
        // The limit is on the file, not on the framing around it.
        #expect(status(form("file", Self.png + [UInt8](repeating: 0, count: 52)), multipart) == (200, "png"))
        #expect(status(form("file", Self.png + [UInt8](repeating: 0, count: 53)), multipart) == (413, "too_large"))
        #expect(status(Array("garbage".utf8), multipart) == (400, "bad_request"))
        #expect(status(form("file", Self.png), "multipart/form-data") == (400, "bad_request"))
        #expect(status(Self.png, "multipart/mixed; boundary=q") == (415, "unsupported_media_type"))
    }

    @Test func storedNamesAreOnlyOurs() {
        #expect(UploadDirectory.type(of: String(repeating: "a", count: 32) + ".png") == .png)
        #expect(UploadDirectory.type(of: "0123456789abcdef0123456789abcdef.webp") == .webp)
        #expect(UploadDirectory.type(of: "../../etc/passwd") == nil)
        #expect(UploadDirectory.type(of: String(repeating: "A", count: 32) + ".png") == nil)
        #expect(UploadDirectory.type(of: String(repeating: "a", count: 32) + ".gif") == nil)
        #expect(UploadDirectory.type(of: String(repeating: "a", count: 31) + "/.png") == nil)
    }
}
