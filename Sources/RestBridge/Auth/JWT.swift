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

/// The claims of a guest token (PROTOCOL.md 3, `POST /api/calls/{id}/guest`): one call, one display name, a
/// guest id that names this guest in reviews and kicks, and a short expiry. `typ` is always `guest`, so a
/// guest token is never taken for an access token (which has no `typ` and needs `sid`), nor the reverse.
public struct GuestClaims: Codable, Equatable, Sendable {
    public var typ: String
    /// The video call this token admits its holder to.
    public var call: String
    /// The guest's id (`g…`), unique per token.
    public var gid: String
    public var name: String
    public var iat: Int
    public var exp: Int

    public init(call: String, gid: String, name: String, iat: Int, exp: Int) {
        typ = "guest"
        self.call = call
        self.gid = gid
        self.name = name
        self.iat = iat
        self.exp = exp
    }
}

/// HS256 JSON Web Tokens. Only `alg: HS256` is accepted; anything else (including `none`) is refused.
public struct JWTSigner: Sendable {
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count >= 32, "the JWT key must have at least 32 bytes")
        self.key = key
    }

    public func sign<Claims: Encodable>(_ claims: Claims) -> String {
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
        try verify(token, as: AccessClaims.self, now: now, expiry: \.exp)
    }

    /// Checks a guest token like `verify`; a token whose `typ` is not `guest` is `malformed`.
    public func verifyGuest(_ token: String, now: Int) throws(Failure) -> GuestClaims {
        let claims = try verify(token, as: GuestClaims.self, now: now, expiry: \.exp)
        guard claims.typ == "guest" else { throw .malformed }
        return claims
    }

    private func verify<Claims: Decodable>(_ token: String, as type: Claims.Type, now: Int,
                                           expiry: KeyPath<Claims, Int>) throws(Failure) -> Claims {
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
        guard let claims = try? JSONDecoder().decode(Claims.self, from: Data(payloadBytes)) else { throw .malformed }
        guard claims[keyPath: expiry] > now else { throw .expired }
        return claims
    }
}
