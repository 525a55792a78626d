import Foundation
import Store

/// A user as the API shows it.
struct UserView: Encodable, Sendable {
    let id: String
    let email: String
    let name: String
    let role: String
    let companyId: String?
    let emailVerified: Bool
    let avatarUrl: String?
    let createdAt: Date
    let updatedAt: Date

    init(_ user: User) {
        id = user.id
        email = user.email
        name = user.name
        role = user.role.rawValue
        companyId = user.companyId
        emailVerified = user.emailVerifiedAt != nil
        avatarUrl = user.avatarPath.map { _ in "/api/users/\(user.id)/avatar" }
        createdAt = user.createdAt
        updatedAt = user.updatedAt
    }

    private enum CodingKeys: String, CodingKey {
        case id, email, name, role, companyId, emailVerified, avatarUrl, createdAt, updatedAt
    }

    /// Every field, `null` included (synthesized encoding would leave out `company_id` and `avatar_url`).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(email, forKey: .email)
        try container.encode(name, forKey: .name)
        try container.encode(role, forKey: .role)
        try container.encode(companyId, forKey: .companyId)
        try container.encode(emailVerified, forKey: .emailVerified)
        try container.encode(avatarUrl, forKey: .avatarUrl)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

/// A company as the API shows it.
struct CompanyView: Encodable, Sendable {
    struct Settings: Encodable, Sendable {
        let guestAccess: Bool
        let lobby: Bool
        let maxParticipants: Int
        let recordingAllowed: Bool
        let timezone: String
    }

    let id: String
    let name: String
    let settings: Settings
    let logoUrl: String?
    let createdAt: Date
    let updatedAt: Date

    init(_ company: Company) {
        id = company.id
        name = company.name
        settings = Settings(guestAccess: company.guestAccess, lobby: company.lobby,
                            maxParticipants: company.maxParticipants, recordingAllowed: company.recordingAllowed,
                            timezone: company.timezone)
        logoUrl = company.logoPath.map { _ in "/api/companies/\(company.id)/logo" }
        createdAt = company.createdAt
        updatedAt = company.updatedAt
    }

    private enum CodingKeys: String, CodingKey { case id, name, settings, logoUrl, createdAt, updatedAt }

    /// Every field, `logo_url: null` included.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(settings, forKey: .settings)
        try container.encode(logoUrl, forKey: .logoUrl)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
