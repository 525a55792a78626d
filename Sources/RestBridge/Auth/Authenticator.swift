import Foundation
import Store

/// The authenticated caller of a request or a WebSocket.
public struct AuthContext: Sendable {
    /// How the caller proved who they are.
    public enum Credential: Sendable {
        /// An access token of a login session.
        case session(AuthSession, AccessClaims)
        /// An API key (`sbk_…`).
        case apiKey(APIKey)
    }

    public let user: User
    public let credential: Credential

    /// The login session of an access token; nil for an API key.
    public var session: AuthSession? {
        if case .session(let session, _) = credential { session } else { nil }
    }
}

/// Issues and checks access tokens; a token is accepted only while its session is active and its user exists.
/// API keys (`sbk_…`) are accepted wherever an access token is, while they are not revoked.
public struct Authenticator: Sendable {
    /// How every API key starts; access tokens (JWTs) never do.
    public static let apiKeyPrefix = "sbk_"
    /// `last_used_at` of an API key is written at most this often (seconds), not on every request.
    static let apiKeyTouchInterval: TimeInterval = 60

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
        if token.hasPrefix(Self.apiKeyPrefix) { return try authenticate(apiKey: token, now: now) }
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
            return AuthContext(user: user, credential: .session(session, claims))
        } catch let error as APIError {
            throw error
        } catch {
            throw .internalError()
        }
    }

    /// Checks a guest token: signature, algorithm, expiry. Every failure is `invalid_token`.
    public func authenticateGuest(_ token: String, now: Date) throws(APIError) -> GuestPass {
        do {
            let claims = try signer.verifyGuest(token, now: Int(now.timeIntervalSince1970))
            return GuestPass(callID: claims.call, guestID: claims.gid, name: claims.name)
        } catch .expired {
            throw .invalidToken("the guest token has expired")
        } catch {
            throw .invalidToken()
        }
    }

    /// Whether `token` has the shape of a guest token (a JWT whose payload says `"typ":"guest"`); it is not
    /// checked here.
    public static func looksLikeGuestToken(_ token: String) -> Bool {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Crypto.base64URLDecode(parts[1]),
              let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
        else { return false }
        return object["typ"] as? String == "guest"
    }

    private func authenticate(apiKey: String, now: Date) throws(APIError) -> AuthContext {
        do {
            guard let key = try store.activeAPIKey(hash: Crypto.tokenHash(apiKey)),
                  let user = try store.user(id: key.userId), user.deletedAt == nil
            else { throw APIError.invalidToken("the API key is invalid or revoked") }
            if key.lastUsedAt.map({ now.timeIntervalSince($0) >= Self.apiKeyTouchInterval }) ?? true {
                try store.touchAPIKey(id: key.id, now: now)
            }
            return AuthContext(user: user, credential: .apiKey(key))
        } catch let error as APIError {
            throw error
        } catch {
            throw .internalError()
        }
    }
}
