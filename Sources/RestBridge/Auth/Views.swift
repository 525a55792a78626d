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
}
