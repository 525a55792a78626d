import Foundation
import Logging
import Store

/// `/api/users/*` and `/api/companies/*`: the directory of people and companies, scoped by `DirectoryAccess`,
/// with avatar and logo uploads. Every change is written to the audit log by the store.
struct DirectoryRoutes: Sendable {
    let directory: any DirectoryStore
    let accounts: any AccountStore
    let hasher: PasswordHasher
    let mail: AccountMail
    let uploads: UploadDirectory
    let maxUploadBytes: Int
    /// How long an invitation's set-password token works.
    let invitationLifetime: TimeInterval
    let logger: Logger

    func register(on router: Router) {
        router.add(.get, "/api/users", auth: .bearer) { request, context in try listUsers(request, context) }
        router.add(.post, "/api/users", auth: .bearer) { request, context in try createUser(request, context) }
        router.add(.get, "/api/users/:id", auth: .bearer) { request, context in try getUser(request, context) }
        router.add(.put, "/api/users/:id", auth: .bearer) { request, context in try updateUser(request, context) }
        router.add(.delete, "/api/users/:id", auth: .bearer) { request, context in try deleteUser(request, context) }
        router.add(.get, "/api/users/:id/activity", auth: .bearer) { request, context in try activity(request, context) }
        router.add(.post, "/api/users/:id/avatar", auth: .bearer) { request, context in try uploadAvatar(request, context) }
        router.add(.get, "/api/users/:id/avatar", auth: .bearer) { request, context in try avatar(request, context) }

        router.add(.get, "/api/companies", auth: .bearer) { request, context in try listCompanies(request, context) }
        router.add(.post, "/api/companies", auth: .bearer) { request, context in try createCompany(request, context) }
        router.add(.get, "/api/companies/:id", auth: .bearer) { request, context in try getCompany(request, context) }
        router.add(.put, "/api/companies/:id", auth: .bearer) { request, context in try updateCompany(request, context) }
        router.add(.delete, "/api/companies/:id", auth: .bearer) { request, context in
            try deleteCompany(request, context)
        }
        router.add(.put, "/api/companies/:id/settings", auth: .bearer) { request, context in
            try updateSettings(request, context)
        }
        router.add(.post, "/api/companies/:id/logo", auth: .bearer) { request, context in try uploadLogo(request, context) }
        router.add(.get, "/api/companies/:id/logo", auth: .bearer) { request, context in try logo(request, context) }
    }

    /// Runs a store change, turning the directory's domain refusals into API errors.
    func change<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch DirectoryError.notFound {
            throw APIError.notFound("it no longer exists")
        } catch DirectoryError.lastOwner {
            throw APIError.conflict("a company must keep at least one owner")
        } catch DirectoryError.lastAdmin {
            throw APIError.conflict("the last admin cannot be removed or demoted")
        } catch StoreError.conflict(let field) {
            throw APIError.conflict("the \(field) is taken")
        }
    }

    /// Stores an uploaded image, lets `apply` record its name, then deletes the file it replaced (or the new
    /// file, if `apply` failed).
    func storeImage(_ request: RestRequest, apply: (String) throws -> String?) throws {
        let upload = try ImageUpload(request, maxBytes: maxUploadBytes)
        let name = try uploads.save(upload)
        let replaced: String?
        do {
            replaced = try apply(name)
        } catch {
            uploads.remove(name)
            throw error
        }
        uploads.remove(replaced)
    }
}
