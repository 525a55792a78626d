import Foundation
import HTTPTypes

/// An HTTP response as the REST bridge produces it.
public struct RestResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: [UInt8]

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// A JSON response.
    public static func json(_ status: HTTPResponse.Status, _ text: String) -> RestResponse {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        return RestResponse(status: status, headerFields: fields, body: Array(text.utf8))
    }

    /// The error envelope of PROTOCOL.md 2: `{"error":{"code","message"}}`.
    public static func error(_ status: HTTPResponse.Status, code: String, message: String) -> RestResponse {
        let body = try! JSONSerialization.data(withJSONObject: ["error": ["code": code, "message": message]],
                                               options: [.sortedKeys, .withoutEscapingSlashes])
        var response = json(status, "")
        response.body = Array(body)
        return response
    }
}

/// The HTTP side of the server: operations routes and the call page. REST resources are added here by the
/// REST bridge issue; every route answers through `respond`, so routes that wait on the store fit the same shape.
public final class RestBridge: Sendable {
    /// Whether the store answers (for `/readyz`).
    private let isReady: @Sendable () -> Bool
    private let staticFiles: [String: StaticFile]

    struct StaticFile: Sendable {
        let contentType: String
        let body: [UInt8]
    }

    public init(isReady: @escaping @Sendable () -> Bool) {
        self.isReady = isReady
        var files: [String: StaticFile] = [:]
        let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                     "css": "text/css; charset=utf-8", "svg": "image/svg+xml"]
        if let directory = Bundle.module.url(forResource: "Public", withExtension: nil),
           let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        {
            for name in names {
                let ext = (name as NSString).pathExtension
                guard let type = types[ext],
                      let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path)
                else { continue }
                files["/" + name] = StaticFile(contentType: type, body: Array(data))
            }
        }
        if let index = files["/index.html"] { files["/"] = index }
        staticFiles = files
    }

    /// Routes one request.
    public func handle(_ request: HTTPRequest, body: [UInt8], respond: @escaping (RestResponse) -> Void) {
        let path = request.path.map { String($0.prefix { $0 != "?" }) } ?? "/"
        switch (request.method, path) {
        case (.get, "/healthz"), (.head, "/healthz"):
            respond(.json(.ok, #"{"status":"ok"}"#))
        case (.get, "/readyz"), (.head, "/readyz"):
            respond(isReady() ? .json(.ok, #"{"status":"ready"}"#)
                              : .error(.serviceUnavailable, code: "unavailable", message: "the store does not answer"))
        case (.get, _), (.head, _):
            if let file = staticFiles[path] {
                var fields = HTTPFields()
                fields[.contentType] = file.contentType
                fields[.cacheControl] = "no-cache"
                respond(RestResponse(status: .ok, headerFields: fields, body: file.body))
            } else {
                respond(.error(.notFound, code: "not_found", message: "no route for GET \(path)"))
            }
        default:
            respond(.error(.notFound, code: "not_found", message: "no route for \(request.method) \(path)"))
        }
    }
}
