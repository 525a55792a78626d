import Foundation
import Store

/// Who a WebSocket connection is, once its token was checked.
public struct WebSocketIdentity: Sendable {
    public let user: User
    /// The login session of the access token; nil when the connection authenticated with an API key.
    public let sessionID: String?
    /// The user as REST shows it, as JSON text, for `welcome.user`.
    public let userJSON: [UInt8]
}

extension RestBridge {
    /// Checks a WebSocket's access token (or API key) on a worker thread, as a REST request would be
    /// checked; `completion` runs there too.
    public func authenticateWebSocket(token: String,
                                      completion: @escaping @Sendable (Result<WebSocketIdentity, APIError>) -> Void)
    {
        workers.addOperation { [tokens] in
            do {
                let context = try tokens.authenticate(token, now: Date())
                let json = (try? JSONEncoder.api.encode(UserView(context.user))).map { Array($0) } ?? Array("null".utf8)
                completion(.success(WebSocketIdentity(user: context.user, sessionID: context.session?.id, userJSON: json)))
            } catch let error as APIError {
                completion(.failure(error))
            } catch {
                completion(.failure(.internalError()))
            }
        }
    }
}
