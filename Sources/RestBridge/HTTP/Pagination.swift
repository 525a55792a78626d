import Foundation

/// `page` (from 1) and `page_size` (default 20, capped at 100) of a list request (PROTOCOL.md 2).
public struct PageRequest: Equatable, Sendable {
    public static let defaultSize = 20
    public static let maxSize = 100

    public let page: Int
    public let pageSize: Int

    public var offset: Int { (page - 1) * pageSize }

    public init(page: Int = 1, pageSize: Int = PageRequest.defaultSize) {
        self.page = page
        self.pageSize = pageSize
    }

    /// Reads `page` and `page_size` from a query: a value that is not a positive integer → 422; a page size
    /// above 100 is capped, not refused.
    public init(query: [String: String]) throws(APIError) {
        var validator = Validator()
        func positive(_ name: String, _ fallback: Int) -> Int {
            guard let text = query[name] else { return fallback }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 1 else {
                validator.require(false, name, "must be a positive integer")
                return fallback
            }
            return value
        }
        let page = positive("page", 1)
        let size = positive("page_size", Self.defaultSize)
        try validator.check()
        // A page far beyond any data must not overflow the offset.
        self.init(page: min(page, 10_000_000), pageSize: min(size, Self.maxSize))
    }
}

/// The list envelope of PROTOCOL.md 2: `{"items":[...],"total":N,"page":P,"page_size":S}`.
struct ListEnvelope<Item: Encodable>: Encodable {
    let items: [Item]
    let total: Int
    let page: Int
    let pageSize: Int

    init(_ items: [Item], total: Int, _ request: PageRequest) {
        self.items = items
        self.total = total
        page = request.page
        pageSize = request.pageSize
    }
}
