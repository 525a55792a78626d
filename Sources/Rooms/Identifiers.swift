import Foundation

/// A connection's session on the server: the unit that joins rooms. Opaque, unique for the process lifetime.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "s\(rawValue)" }
}

/// A member's id inside a room, as the wire shows it (`peer`, `from`, `to`).
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// Random, URL-safe identifiers and tokens.
public enum RandomID {
    private static let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789".utf8)

    /// `prefix` followed by `length` random characters (5 bits each) from the system's secure generator.
    public static func make(prefix: String, length: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = Array(prefix.utf8)
        bytes.reserveCapacity(bytes.count + length)
        for _ in 0..<length { bytes.append(alphabet[Int(generator.next() & 31)]) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// RFC 3339 timestamps in UTC with milliseconds, as the wire and the store use them.
public enum Timestamp {
    /// Now, in whole milliseconds: the precision the store keeps, so what a room says and a later read agree.
    public static func now() -> Date {
        Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }

    /// Rounded to the nearest millisecond, as the REST encoder and the store do, so every door shows the same
    /// time.
    public static func rfc3339(_ date: Date) -> String {
        let totalMillis = (date.timeIntervalSince1970 * 1000).rounded()
        var seconds = time_t((totalMillis / 1000).rounded(.down))
        let millis = Int(totalMillis - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}
