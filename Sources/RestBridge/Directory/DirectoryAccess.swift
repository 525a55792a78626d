import Foundation
import Store

/// Who may see and change what in the directory (PROTOCOL.md 2-3): everything is scoped to the caller's
/// company; owners manage it, agents and members see it read-only; admins span companies. What the caller may
/// not see answers 404 (so ids of other companies do not leak); what they see but may not change answers 403.
struct DirectoryAccess {
    let caller: User

    init(_ context: RouteContext) { caller = context.caller.user }

    var isAdmin: Bool { caller.role == .admin }

    /// Whether anything of this company is visible to the caller.
    func canSee(companyID: String?) -> Bool {
        isAdmin || (companyID != nil && companyID == caller.companyId)
    }

    /// Whether the caller may change this company and its users: an admin, or an owner of it.
    func canManage(companyID: String?) -> Bool {
        isAdmin || (caller.role == .owner && canSee(companyID: companyID))
    }

    /// Whether the caller may change this user's data: themselves, an admin, or an owner of their company
    /// when the user is not an admin (only admins change admins).
    func canEdit(_ user: User) -> Bool {
        user.id == caller.id || isAdmin || (user.role != .admin && canManage(companyID: user.companyId))
    }

    /// Whether the caller may manage this user (role, deletion, activity): an admin, or an owner of their
    /// company when the user is not an admin.
    func canManage(_ user: User) -> Bool {
        isAdmin || (user.role != .admin && canManage(companyID: user.companyId))
    }

    /// A live user the caller may see, or 404.
    func visibleUser(_ id: String?, in accounts: any AccountStore) throws -> User {
        guard let id, let user = try accounts.user(id: id), user.deletedAt == nil, canSee(companyID: user.companyId)
        else { throw APIError.notFound("no such user") }
        return user
    }

    /// A live company the caller may see, or 404.
    func visibleCompany(_ id: String?, in accounts: any AccountStore) throws -> Company {
        guard let id, let company = try accounts.company(id: id), company.deletedAt == nil, canSee(companyID: company.id)
        else { throw APIError.notFound("no such company") }
        return company
    }
}

/// An audit-log entry as `GET /api/users/{id}/activity` shows it.
struct ActivityView: Encodable, Sendable {
    let id: Int64
    let action: String
    let actorId: String?
    let companyId: String?
    let targetType: String?
    let targetId: String?
    /// The entry's details as a JSON object (null when it has none).
    let data: JSONObject?
    let createdAt: Date

    init(_ entry: AuditEntry) {
        id = entry.id
        action = entry.action
        actorId = entry.actorId
        companyId = entry.companyId
        targetType = entry.targetType
        targetId = entry.targetId
        data = entry.data.flatMap(JSONObject.init(text:))
        createdAt = entry.createdAt
    }

    private enum CodingKeys: String, CodingKey {
        case id, action, actorId, companyId, targetType, targetId, data, createdAt
    }

    /// Every field, `null` included.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(action, forKey: .action)
        try container.encode(actorId, forKey: .actorId)
        try container.encode(companyId, forKey: .companyId)
        try container.encode(targetType, forKey: .targetType)
        try container.encode(targetId, forKey: .targetId)
        try container.encode(data, forKey: .data)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// A JSON object kept as text and written out again as JSON.
struct JSONObject: Encodable, Sendable {
    private let fields: [String: JSONValue]

    init?(text: String) {
        guard let fields = try? JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) else { return nil }
        self.fields = fields
    }

    func encode(to encoder: any Encoder) throws { try fields.encode(to: encoder) }
}

/// Any JSON value.
private indirect enum JSONValue: Codable, Sendable {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
