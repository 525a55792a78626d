import Foundation
import Testing
import Rooms
@testable import Store

private func temporaryDirectory() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-store-\(UUID().uuidString)")
}

private func wait<T: Sendable>(_ body: (@escaping @Sendable (T) -> Void) -> Void) -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = Box<T>()
    body { value in box.value = value; semaphore.signal() }
    semaphore.wait()
    return box.value!
}

private final class Box<T>: @unchecked Sendable { var value: T? }

@Suite struct SQLiteStoreBehaviour {
    @Test func migratesAnEmptyDatabase() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        #expect(try store.appliedMigrations() == ["v1-room-chat", "v2-product-model", "v3-audit-by-target", "v4-call-bans"])
        #expect(store.ping())
        try store.close()
        // Opening again applies nothing new and keeps working.
        let again = try SQLiteStore(directory: directory)
        #expect(try again.appliedMigrations() == ["v1-room-chat", "v2-product-model", "v3-audit-by-target", "v4-call-bans"])
        try again.close()
    }

    @Test func chatIsDurableAndComesBackNewestLast() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var store: SQLiteStore? = try SQLiteStore(directory: directory)
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        for index in 0..<5 {
            let message = ChatMessage(id: "m\(index)", room: index == 2 ? "OTHER" : "ROOM", from: PeerID("p"),
                                      name: "N", text: "text \(index) ✓", sentAt: base.addingTimeInterval(Double(index)))
            let result: Result<Void, any Error> = wait { done in store!.appendChat(message, completion: done) }
            try result.get()
        }
        try store!.close()
        store = nil

        let reopened = try SQLiteStore(directory: directory)
        let recent: Result<[ChatMessage], any Error> = wait { done in reopened.recentChat(room: "ROOM", limit: 3, completion: done) }
        let messages = try recent.get()
        #expect(messages.map(\.id) == ["m1", "m3", "m4"])
        #expect(messages.last?.text == "text 4 ✓")
        #expect(messages.first?.sentAt == base.addingTimeInterval(1))
        let duplicate: Result<Void, any Error> = wait { done in reopened.appendChat(messages[0], completion: done) }
        #expect(throws: (any Error).self) { try duplicate.get() }
        try reopened.close()
    }
}
