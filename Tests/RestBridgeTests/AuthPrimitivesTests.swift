import Foundation
import Testing
@testable import RestBridge

@Suite struct AuthPrimitives {
    @Test func hmacMatchesRFC4231() {
        // RFC 4231 test case 2.
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(Crypto.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func scryptMatchesRFC7914() throws {
        // RFC 7914 section 12, second vector (N=1024, r=8, p=16), first 16 bytes.
        let key = try #require(Crypto.scrypt(password: Array("password".utf8), salt: Array("NaCl".utf8),
                                             n: 1024, r: 8, p: 16, length: 64))
        #expect(Crypto.hex(Array(key.prefix(16))) == "fdbabe1c9d3472007856e7190d01e9fe")
    }

    @Test func passwordsVerifyOnlyThemselves() {
        let hasher = PasswordHasher(logN: 10)
        let stored = hasher.hash("correct horse")
        #expect(stored.hasPrefix("scrypt$10$8$1$"))
        #expect(hasher.verify("correct horse", against: stored))
        #expect(!hasher.verify("correct horsE", against: stored))
        #expect(!hasher.verify("correct horse", against: "garbage"))
        #expect(hasher.hash("same") != hasher.hash("same"))  // per-user salt
    }

    @Test func jwtRoundTripsAndRefusesTampering() throws {
        let signer = JWTSigner(key: Array(repeating: 7, count: 32))
        let claims = AccessClaims(sub: "u1", sid: "s1", cid: "c1", role: "owner", iat: 100, exp: 1_000)
        let token = signer.sign(claims)
        #expect(try signer.verify(token, now: 500) == claims)
        #expect(throws: JWTSigner.Failure.expired) { try signer.verify(token, now: 1_000) }
        let other = JWTSigner(key: Array(repeating: 8, count: 32))
        #expect(throws: JWTSigner.Failure.signature) { try other.verify(token, now: 500) }
        let parts = token.split(separator: ".")
        let none = Crypto.base64URL(Array(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."
        #expect(throws: JWTSigner.Failure.self) { try signer.verify(none, now: 500) }
        let hs512 = Crypto.base64URL(Array(#"{"alg":"HS512","typ":"JWT"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        #expect(throws: JWTSigner.Failure.algorithm) { try signer.verify(hs512, now: 500) }
        #expect(throws: JWTSigner.Failure.malformed) { try signer.verify("a.b", now: 500) }
    }
}
