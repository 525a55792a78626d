import Foundation

/// The claims of an access token (PROTOCOL.md 3): user, session, company, role, expiry.
public struct AccessClaims: Codable, Equatable, Sendable {
    public var sub: String
    public var sid: String
    public var cid: String?
    public var role: String
    public var iat: Int
    public var exp: Int
    /// A random id, so two tokens issued in the same second differ.
    public var jti: String?

    public init(sub: String, sid: String, cid: String?, role: String, iat: Int, exp: Int,
                jti: String? = Crypto.randomToken(byteCount: 12)) {
        self.sub = sub
        self.sid = sid
        self.cid = cid
        self.role = role
        self.iat = iat
        self.exp = exp
        self.jti = jti
    }
}

/// HS256 JSON Web Tokens. Only `alg: HS256` is accepted; anything else (including `none`) is refused.
public struct JWTSigner: Sendable {
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count >= 32, "the JWT key must have at least 32 bytes")
        self.key = key
    }

    public func sign(_ claims: AccessClaims) -> String {
        let header = Crypto.base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let payload = Crypto.base64URL(Array((try? encoder.encode(claims)) ?? Data()))
        let signingInput = header + "." + payload
        return signingInput + "." + Crypto.base64URL(Crypto.hmacSHA256(key: key, data: Array(signingInput.utf8)))
    }

    /// Why a token was refused.
    public enum Failure: Error, Equatable { case malformed, algorithm, signature, expired }

    /// Checks the signature, the algorithm and the expiry (at `now`, Unix seconds).
    public func verify(_ token: String, now: Int) throws(Failure) -> AccessClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Crypto.base64URLDecode(parts[0]),
              let payloadBytes = Crypto.base64URLDecode(parts[1]), let signature = Crypto.base64URLDecode(parts[2])
        else { throw .malformed }
        guard let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any] else {
            throw .malformed
        }
        guard header["alg"] as? String == "HS256" else { throw .algorithm }
        let expected = Crypto.hmacSHA256(key: key, data: Array((parts[0] + "." + parts[1]).utf8))
        guard Crypto.constantTimeEquals(signature, expected) else { throw .signature }
        guard let claims = try? JSONDecoder().decode(AccessClaims.self, from: Data(payloadBytes)) else { throw .malformed }
        guard claims.exp > now else { throw .expired }
        return claims
    }
}
