import Foundation
import GRDB
import Rooms

/// Persistence for the real-time side. Calls return at once; completions run on a store thread, never on
/// the caller's, so the service thread never waits on disk.
public protocol ChatStore: Sendable {
    /// Appends a chat message durably; `completion` runs after the transaction has committed.
    func appendChat(_ message: ChatMessage, completion: @escaping @Sendable (Result<Void, any Error>) -> Void)
    /// The `limit` most recent messages of a room, oldest first.
    func recentChat(room: String, limit: Int, completion: @escaping @Sendable (Result<[ChatMessage], any Error>) -> Void)
    /// The same, synchronously (from a worker thread).
    func recentChat(room: String, limit: Int) throws -> [ChatMessage]
    /// Whether the store answers (for `/readyz`).
    func ping() -> Bool
    /// Waits for queued writes and closes the database.
    func close() throws
}

/// The embedded default store: one SQLite file in WAL mode, migrated on open.
public final class SQLiteStore: ChatStore {
    let pool: DatabasePool

    /// Opens (creating and migrating if needed) `directory/switchboard.sqlite`.
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        configuration.label = "switchboard.store"
        pool = try DatabasePool(path: directory.appendingPathComponent("switchboard.sqlite").path,
                                configuration: configuration)
        try Schema.migrator.migrate(pool)
    }

    /// Names of the migrations applied to the database, in order.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Schema.migrator.appliedMigrations(db) }
    }

    public func appendChat(_ message: ChatMessage, completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        pool.asyncWrite({ db in
            try db.execute(
                sql: "INSERT INTO room_chat (id, room, peer, name, text, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [message.id, message.room, message.from.rawValue, message.name, message.text,
                            message.sentAt.timeIntervalSince1970])
        }, completion: { _, result in completion(result) })
    }

    public func recentChat(room: String, limit: Int,
                           completion: @escaping @Sendable (Result<[ChatMessage], any Error>) -> Void) {
        pool.asyncRead { dbResult in
            completion(Result { try Self.recentChat(try dbResult.get(), room: room, limit: limit) })
        }
    }

    /// The `limit` most recent messages of a room, oldest first; synchronous (a worker thread's).
    public func recentChat(room: String, limit: Int) throws -> [ChatMessage] {
        try pool.read { db in try Self.recentChat(db, room: room, limit: limit) }
    }

    private static func recentChat(_ db: Database, room: String, limit: Int) throws -> [ChatMessage] {
        let rows = try Row.fetchAll(db, sql: """
            SELECT id, room, peer, name, text, sent_at FROM room_chat
            WHERE room = ? ORDER BY sent_at DESC, rowid DESC LIMIT ?
            """, arguments: [room, limit])
        return rows.reversed().map { row in
            ChatMessage(id: row["id"], room: row["room"], from: PeerID(row["peer"]), name: row["name"],
                        text: row["text"], sentAt: Date(timeIntervalSince1970: row["sent_at"]))
        }
    }

    public func ping() -> Bool {
        (try? pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public func close() throws {
        // A barrier write waits for every queued write; then the pool is closed.
        try pool.barrierWriteWithoutTransaction { _ in }
        try pool.close()
    }
}
