import ArgumentParser
import Foundation
import RestBridge
import Store

/// `switchboard admin …`: operator commands for admin accounts, which the API cannot register.
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Manage admin accounts (admins span every company).",
        subcommands: [CreateAdmin.self])
}

/// `switchboard admin create --email E --password P [--name N] [--data DIR]`: adds an admin (no company,
/// email counted as verified) to the store in DIR, creating and migrating it if needed.
struct CreateAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an admin account.")

    private static let environment = ProcessInfo.processInfo.environment

    @Option(help: "The admin's email address (their login).")
    var email: String

    @Option(help: "The admin's password, 8-128 characters; default SWITCHBOARD_ADMIN_PASSWORD (kept out of `ps`).")
    var password: String = environment["SWITCHBOARD_ADMIN_PASSWORD"] ?? ""

    @Option(help: "The admin's display name.")
    var name: String = "Administrator"

    @Option(help: "Data directory of the SQLite store (SWITCHBOARD_DATA).")
    var data: String = environment["SWITCHBOARD_DATA"] ?? "./data"

    /// A failure to report on stderr with exit code 1.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private var normalizedEmail: String { email.trimmingCharacters(in: .whitespaces).lowercased() }

    func validate() throws {
        let parts = normalizedEmail.split(separator: "@", omittingEmptySubsequences: false)
        guard normalizedEmail.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !normalizedEmail.contains(where: \.isWhitespace)
        else { throw ValidationError("--email must be an email address") }
        guard (8...128).contains(password.count) else {
            throw ValidationError("--password (or SWITCHBOARD_ADMIN_PASSWORD) must have 8 to 128 characters")
        }
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(trimmed.count) else { throw ValidationError("--name must have 1 to 100 characters") }
    }

    func run() throws {
        let store = try SQLiteStore(directory: URL(fileURLWithPath: data, isDirectory: true))
        defer { try? store.close() }
        let now = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        let user: User
        do {
            user = try store.createUser(
                NewUser(companyID: nil, email: normalizedEmail, name: name.trimmingCharacters(in: .whitespacesAndNewlines),
                        role: .admin, passwordHash: PasswordHasher().hash(password), emailVerified: true),
                invitation: nil, actorID: nil, now: now)
        } catch StoreError.conflict {
            throw Failure(description: "an account with the email \(normalizedEmail) exists")
        }
        print("created admin \(user.id) <\(user.email)>")
    }
}
