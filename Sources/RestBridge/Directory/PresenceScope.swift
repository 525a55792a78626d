import Foundation
import Store

/// Whose presence a WebSocket may follow (PROTOCOL.md 1.3), under the scoping of the directory: users of
/// one's own company (an admin: anyone), one's own company (an admin: any company).
public enum PresenceScope: Sendable {
    /// The user ids the caller may see, of those asked for, in the order asked; the others are left out.
    case users([String])
    /// A company and its live users now.
    case company(String, members: [String])
}

extension RestBridge {
    /// Most users a company subscription reports in its snapshot.
    static let maxCompanyMembers = 5000

    /// Resolves a `subscribe` of `caller` on a worker thread: `userIDs` are filtered to the users the caller
    /// may see; a company must be the caller's own (an admin: any live one), else `not_found`.
    public func presenceScope(caller: User, userIDs: [String]?, companyID: String?,
                              completion: @escaping @Sendable (Result<PresenceScope, APIError>) -> Void)
    {
        workers.addOperation { [tokens, directoryStore] in
            do {
                let accounts = tokens.store
                if let companyID {
                    guard caller.role == .admin || caller.companyId == companyID,
                          let company = try accounts.company(id: companyID), company.deletedAt == nil
                    else { throw APIError.notFound("no such company") }
                    let members = try directoryStore.users(matching: UserFilter(companyID: company.id), offset: 0,
                                                           limit: Self.maxCompanyMembers)
                    completion(.success(.company(company.id, members: members.items.map(\.id))))
                    return
                }
                var visible: [String] = []
                for id in userIDs ?? [] {
                    guard let user = try accounts.user(id: id), user.deletedAt == nil,
                          caller.role == .admin || (user.companyId != nil && user.companyId == caller.companyId)
                    else { continue }
                    visible.append(user.id)
                }
                completion(.success(.users(visible)))
            } catch let error as APIError {
                completion(.failure(error))
            } catch {
                completion(.failure(.internalError()))
            }
        }
    }
}
