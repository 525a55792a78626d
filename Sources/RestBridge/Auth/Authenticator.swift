import Foundation
import Store

/// The authenticated caller of a request or a WebSocket.
public struct AuthContext: Sendable {
    public let user: User
    public let session: AuthSession
    public let claims: AccessClaims
}

/// Issues and checks access tokens; a token is accepted only while its session is active and its user exists.
public struct Authenticator: Sendable {
    public let signer: JWTSigner
    public let store: any AccountStore
    public let accessTokenLifetime: Int

    public init(signer: JWTSigner, store: any AccountStore, accessTokenLifetime: Int = 900) {
        self.signer = signer
        self.store = store
        self.accessTokenLifetime = accessTokenLifetime
    }

    public func issueAccessToken(user: User, session: AuthSession, now: Date) -> String {
        let issued = Int(now.timeIntervalSince1970)
        return signer.sign(AccessClaims(sub: user.id, sid: session.id, cid: user.companyId, role: user.role.rawValue,
                                        iat: issued, exp: issued + accessTokenLifetime))
    }

    /// Checks a bearer token: signature, algorithm, expiry, session, user. Every failure is `invalid_token`.
    public func authenticate(_ token: String, now: Date) throws(APIError) -> AuthContext {
        let claims: AccessClaims
        do {
            claims = try signer.verify(token, now: Int(now.timeIntervalSince1970))
        } catch .expired {
            throw .invalidToken("the access token has expired")
        } catch {
            throw .invalidToken()
        }
        do {
            guard let session = try store.activeSession(id: claims.sid, now: now), session.userId == claims.sub,
                  let user = try store.user(id: claims.sub), user.deletedAt == nil
            else { throw APIError.invalidToken() }
            return AuthContext(user: user, session: session, claims: claims)
        } catch let error as APIError {
            throw error
        } catch {
            throw .internalError()
        }
    }
}
