import Foundation

/// Where the JWT signing key comes from: a configured secret, or a key generated once into the data
/// directory (`jwt.key`, mode 0600) so tokens survive restarts.
public enum SigningKey {
    public enum Failure: Error, CustomStringConvertible {
        case tooShort
        case unreadable(String)

        public var description: String {
            switch self {
            case .tooShort: "the JWT secret must have at least 32 bytes"
            case .unreadable(let path): "cannot read or create the JWT key file \(path)"
            }
        }
    }

    public static func load(secret: String?, dataDirectory: URL) throws -> [UInt8] {
        if let secret {
            guard secret.utf8.count >= 32 else { throw Failure.tooShort }
            return Array(secret.utf8)
        }
        let path = dataDirectory.appendingPathComponent("jwt.key").path
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 {
            return Array(data)
        }
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        let key = Crypto.randomBytes(64)
        guard FileManager.default.createFile(atPath: path, contents: Data(key), attributes: [.posixPermissions: 0o600])
        else { throw Failure.unreadable(path) }
        return key
    }
}
