import Foundation
import Store

/// Who a WebSocket connection is, once its token was checked: a user (access token or API key) or a call's
/// guest (guest token).
public struct WebSocketIdentity: Sendable {
    public let user: User?
    /// The login session of the access token; nil for an API key or a guest.
    public let sessionID: String?
    /// The API key the connection authenticated with, if it did.
    public let apiKeyID: String?
    /// The user as REST shows it, as JSON text, for `welcome.user`; nil for a guest.
    public let userJSON: [UInt8]?
    /// The guest of a guest token.
    public let guest: GuestPass?
    /// Whether the user holds an assigned, unexpired license now (hosting a call needs one).
    public let licensed: Bool
}

extension RestBridge {
    /// Checks a WebSocket's access token, API key or guest token on a worker thread, as a REST request would
    /// be checked; `completion` runs there too.
    public func authenticateWebSocket(token: String,
                                      completion: @escaping @Sendable (Result<WebSocketIdentity, APIError>) -> Void)
    {
        workers.addOperation { [tokens, licenseStore] in
            do {
                let now = Date()
                if Authenticator.looksLikeGuestToken(token) {
                    let guest = try tokens.authenticateGuest(token, now: now)
                    completion(.success(WebSocketIdentity(user: nil, sessionID: nil, apiKeyID: nil, userJSON: nil,
                                                          guest: guest, licensed: false)))
                    return
                }
                let context = try tokens.authenticate(token, now: now)
                let json = (try? JSONEncoder.api.encode(UserView(context.user))).map { Array($0) } ?? Array("null".utf8)
                let licensed = try licenseStore.activeLicense(userID: context.user.id, now: now) != nil
                var apiKeyID: String?
                if case .apiKey(let key) = context.credential { apiKeyID = key.id }
                completion(.success(WebSocketIdentity(user: context.user, sessionID: context.session?.id,
                                                      apiKeyID: apiKeyID, userJSON: json, guest: nil,
                                                      licensed: licensed)))
            } catch let error as APIError {
                completion(.failure(error))
            } catch {
                completion(.failure(.internalError()))
            }
        }
    }
}

/// What a re-check of open WebSockets found still good. Only what was asked is judged: a connection that
/// authenticated while the check ran is not in `asked`.
public struct CredentialCheck: Sendable {
    /// The login sessions, API keys and users that were checked.
    public var asked: (sessions: Set<String>, apiKeys: Set<String>, users: Set<String>)
    /// Login sessions neither revoked nor expired, of users not deleted.
    public var sessions: Set<String>
    /// API keys not revoked, of users not deleted.
    public var apiKeys: Set<String>
    /// Users who hold an assigned, unexpired license now (hosting a call needs one).
    public var licensedUsers: Set<String>
}

extension RestBridge {
    /// Re-checks what open WebSockets stand on: which login sessions and API keys are still good, and which
    /// of their users hold a license now (one assigned or expired since the token was checked counts from
    /// here). Runs on a worker thread; so does `completion`.
    public func checkCredentials(sessionIDs: [String], apiKeyIDs: [String], userIDs: [String],
                                 completion: @escaping @Sendable (Result<CredentialCheck, any Error>) -> Void)
    {
        workers.addOperation { [tokens, licenseStore] in
            completion(Result {
                let now = Date()
                let valid = try tokens.store.validCredentials(sessionIDs: sessionIDs, apiKeyIDs: apiKeyIDs, now: now)
                let licensed = try userIDs.filter { try licenseStore.activeLicense(userID: $0, now: now) != nil }
                return CredentialCheck(asked: (Set(sessionIDs), Set(apiKeyIDs), Set(userIDs)), sessions: valid.sessions,
                                       apiKeys: valid.apiKeys, licensedUsers: Set(licensed))
            })
        }
    }
}
