/// A room's code: `key` identifies the room (upper-case, no dashes); `display` is how the wire shows it.
public struct RoomCode: Hashable, Sendable {
    public let key: String
    public let display: String

    /// The alphabet of generated call codes: no 0/O, 1/I.
    public static let alphabet = Array("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")

    /// Parses a code as a client typed it. A 9-character call code (with or without dashes, any case) is
    /// `isCallCode` and displays as `XXX-XXX-XXX`. With `allowAnyCode`, any 1–64 characters of
    /// `A-Z a-z 0-9 - _` are accepted too (open rooms). Returns nil for anything else.
    public init?(parsing text: String, allowAnyCode: Bool) {
        guard (1...64).contains(text.utf8.count) else { return nil }
        var key = ""
        for character in text.uppercased() {
            if character == "-" { continue }
            guard character.isASCII, character.isLetter || character.isNumber || character == "_" else { return nil }
            key.append(character)
        }
        guard !key.isEmpty else { return nil }
        if key.count == 9, key.allSatisfy({ RoomCode.alphabet.contains($0) }) {
            let chars = Array(key)
            self.key = key
            self.display = String(chars[0..<3]) + "-" + String(chars[3..<6]) + "-" + String(chars[6..<9])
            self.isCallCode = true
            return
        }
        guard allowAnyCode else { return nil }
        self.key = key
        self.display = key
        self.isCallCode = false
    }

    /// Whether this is a 9-character call code (the form stored calls use).
    public let isCallCode: Bool

    /// A new random call code.
    public static func random() -> RoomCode {
        var generator = SystemRandomNumberGenerator()
        let text = String((0..<9).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        return RoomCode(parsing: text, allowAnyCode: false)!
    }
}
