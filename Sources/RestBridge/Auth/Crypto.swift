import COpenSSL
import Foundation

/// The cryptographic primitives the REST bridge needs, from OpenSSL's libcrypto (already linked by
/// libwebsockets, so no second crypto library is built): HMAC-SHA256, SHA-256, scrypt, secure random bytes,
/// constant-time comparison and base64url.
public enum Crypto {
    /// `count` bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&bytes, Int32(count)) == 1, "RAND_bytes failed")
        return bytes
    }

    /// A random token of `byteCount` bytes, base64url-encoded (no padding).
    public static func randomToken(byteCount: Int = 32) -> String { base64URL(randomBytes(byteCount)) }

    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        _ = HMAC(EVP_sha256(), key, Int32(key.count), data, data.count, &output, &length)
        return output
    }

    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        _ = SHA256(data, data.count, &output)
        return output
    }

    /// SHA-256 of a token as hex: how refresh tokens, API keys and one-time tokens are stored.
    public static func tokenHash(_ token: String) -> String { hex(sha256(Array(token.utf8))) }

    /// Compares two byte strings in time that depends only on their length.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    /// scrypt (memory-hard). Returns nil only if OpenSSL refuses the parameters.
    public static func scrypt(password: [UInt8], salt: [UInt8], n: UInt64, r: UInt64, p: UInt64, length: Int) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: length)
        let maxMemory: UInt64 = 256 * 1024 * 1024
        // A trailing NUL keeps the pointer valid for an empty password; the length excludes it.
        let passChars = password.map { CChar(bitPattern: $0) } + [0]
        let ok = EVP_PBE_scrypt(passChars, password.count, salt, salt.count, n, r, p, maxMemory, &output, length)
        return ok == 1 ? output : nil
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map { Array($0) }
    }
}

/// Password hashing with scrypt (N=2^15, r=8, p=1: 32 MiB, ~50–100 ms here) and a per-user 16-byte salt.
/// Stored as `scrypt$N$r$p$salt$hash` so the parameters can be raised later without breaking old hashes.
public struct PasswordHasher: Sendable {
    public let logN: Int
    private let decoyHash: String

    /// `logN` 15 in production (lower only in unit tests).
    public init(logN: Int = 15) {
        self.logN = logN
        decoyHash = Self.hash(Crypto.randomToken(), logN: logN)
    }

    public func hash(_ password: String) -> String { Self.hash(password, logN: logN) }

    private static func hash(_ password: String, logN: Int) -> String {
        let salt = Crypto.randomBytes(16)
        let n = UInt64(1) << UInt64(logN)
        let derived = Crypto.scrypt(password: Array(password.utf8), salt: salt, n: n, r: 8, p: 1, length: 32) ?? []
        return "scrypt$\(logN)$8$1$\(Crypto.base64URL(salt))$\(Crypto.base64URL(derived))"
    }

    public func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 6, parts[0] == "scrypt", let logN = UInt64(parts[1]), logN <= 20,
              let r = UInt64(parts[2]), let p = UInt64(parts[3]),
              let salt = Crypto.base64URLDecode(parts[4]), let expected = Crypto.base64URLDecode(parts[5])
        else { return false }
        guard let derived = Crypto.scrypt(password: Array(password.utf8), salt: salt, n: 1 << logN, r: r, p: p,
                                          length: expected.count)
        else { return false }
        return Crypto.constantTimeEquals(derived, expected)
    }

    /// A hash of a random password, made once: verifying against it costs the same as against a real one,
    /// so a login for an unknown email takes as long as one with a wrong password.
    public func decoy() -> String { decoyHash }
}
