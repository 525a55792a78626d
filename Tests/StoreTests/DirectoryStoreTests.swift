import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct DirectoryStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-directory-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    private func auditActions(_ store: SQLiteStore) throws -> [String] {
        try store.pool.read { db in try String.fetchAll(db, sql: "SELECT action FROM audit_log ORDER BY id") }
    }

    @Test func createsUsersWithInvitationsAndRefusesTakenEmails() throws {
        try withStore { store in
            let (company, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                      passwordHash: "h", now: now)
            let invited = try store.createUser(
                NewUser(companyID: company.id, email: "m@acme.io", name: "Max", role: .member, passwordHash: nil),
                invitation: Invitation(tokenHash: "inv-hash", expiresAt: now.addingTimeInterval(3600)),
                actorID: owner.id, now: now)
            #expect(invited.companyId == company.id && invited.role == .member && invited.passwordHash == nil)
            #expect(invited.emailVerifiedAt == nil)
            let token = try store.usableAccountToken(hash: "inv-hash", purposes: [.invitation], now: now)
            #expect(token?.userId == invited.id)
            #expect(throws: StoreError.conflict(field: "email")) {
                try store.createUser(NewUser(companyID: company.id, email: "M@ACME.io", name: "X", role: .agent,
                                             passwordHash: "h"), invitation: nil, actorID: owner.id, now: now)
            }
            #expect(throws: DirectoryError.notFound) {
                try store.createUser(NewUser(companyID: "nope", email: "z@acme.io", name: "Z", role: .agent,
                                             passwordHash: "h"), invitation: nil, actorID: owner.id, now: now)
            }
            let admin = try store.createUser(NewUser(companyID: nil, email: "root@x.io", name: "Root", role: .admin,
                                                     passwordHash: "h", emailVerified: true),
                                             invitation: nil, actorID: nil, now: now)
            #expect(admin.companyId == nil && admin.emailVerifiedAt == now)
            #expect(try auditActions(store) == ["register", "user.create", "admin.create"])
        }
    }

    @Test func listsUsersByCompanyRoleAndSearchWithPages() throws {
        try withStore { store in
            let (acme, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                   passwordHash: "h", now: now)
            let (other, _) = try store.register(companyName: "Other", email: "o@other.io", name: "Otto",
                                                passwordHash: "h", now: now)
            for (index, name) in ["Anna", "Bert", "Carl_x", "Dora"].enumerated() {
                _ = try store.createUser(NewUser(companyID: acme.id, email: "u\(index)@acme.io", name: name,
                                                 role: index % 2 == 0 ? .agent : .member, passwordHash: "h"),
                                         invitation: nil, actorID: owner.id, now: now)
            }
            let all = try store.users(matching: UserFilter(companyID: acme.id), offset: 0, limit: 100)
            #expect(all.total == 5)
            #expect(all.items.map(\.name) == ["Anna", "Bert", "Carl_x", "Dora", "Olga"])
            let page = try store.users(matching: UserFilter(companyID: acme.id), offset: 2, limit: 2)
            #expect(page.total == 5 && page.items.map(\.name) == ["Carl_x", "Dora"])
            #expect(try store.users(matching: UserFilter(companyID: acme.id, role: .agent), offset: 0, limit: 10)
                .items.map(\.name) == ["Anna", "Carl_x"])
            // Case-insensitive over name and email; LIKE wildcards in the query are literal.
            #expect(try store.users(matching: UserFilter(companyID: acme.id, search: "ANN"), offset: 0, limit: 10)
                .items.map(\.name) == ["Anna"])
            #expect(try store.users(matching: UserFilter(companyID: acme.id, search: "u3@"), offset: 0, limit: 10)
                .items.map(\.name) == ["Dora"])
            #expect(try store.users(matching: UserFilter(companyID: acme.id, search: "_"), offset: 0, limit: 10)
                .items.map(\.name) == ["Carl_x"])
            #expect(try store.users(matching: UserFilter(companyID: other.id), offset: 0, limit: 10).total == 1)
            #expect(try store.users(matching: UserFilter(), offset: 0, limit: 10).total == 6)
        }
    }

    @Test func updatesUsersAndKeepsTheLastOwner() throws {
        try withStore { store in
            let (company, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                      passwordHash: "h", now: now)
            let member = try store.createUser(NewUser(companyID: company.id, email: "m@acme.io", name: "Max",
                                                      role: .member, passwordHash: nil),
                                              invitation: Invitation(tokenHash: "inv", expiresAt: now + 3600),
                                              actorID: owner.id, now: now)
            let later = now + 10
            let renamed = try store.updateUser(id: member.id, UserChanges(name: "Maxi", email: "maxi@acme.io", role: .agent),
                                               actorID: owner.id, now: later)
            #expect(renamed.name == "Maxi" && renamed.email == "maxi@acme.io" && renamed.role == .agent)
            #expect(renamed.updatedAt == later)
            // The invitation went to the old address: it no longer works.
            #expect(try store.usableAccountToken(hash: "inv", purposes: [.invitation], now: later) == nil)
            #expect(throws: StoreError.conflict(field: "email")) {
                try store.updateUser(id: member.id, UserChanges(email: "O@acme.io"), actorID: owner.id, now: later)
            }
            #expect(throws: DirectoryError.lastOwner) {
                try store.updateUser(id: owner.id, UserChanges(role: .member), actorID: owner.id, now: later)
            }
            _ = try store.updateUser(id: member.id, UserChanges(role: .owner), actorID: owner.id, now: later)
            #expect(try store.updateUser(id: owner.id, UserChanges(role: .member), actorID: member.id, now: later).role == .member)
            #expect(throws: DirectoryError.notFound) {
                try store.updateUser(id: "missing", UserChanges(name: "X"), actorID: owner.id, now: later)
            }
            let entry = try store.activity(userID: member.id, offset: 0, limit: 1).items.first
            #expect(entry?.action == "user.update" && entry?.actorId == member.id && entry?.targetId == owner.id)
            #expect(entry?.data?.contains(#""role_to":"member""#) == true)
        }
    }

    @Test func deletingAUserRevokesAccessAndHidesThem() throws {
        try withStore { store in
            let (company, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                      passwordHash: "h", now: now)
            let agent = try store.createUser(NewUser(companyID: company.id, email: "a@acme.io", name: "Ada",
                                                     role: .agent, passwordHash: "h"),
                                             invitation: nil, actorID: owner.id, now: now)
            let session = try store.createSession(userID: agent.id, refreshTokenHash: "r1", userAgent: nil, ip: nil,
                                                  now: now, lifetime: 3600)
            #expect(throws: DirectoryError.lastOwner) { try store.deleteUser(id: owner.id, actorID: owner.id, now: now) }
            try store.deleteUser(id: agent.id, actorID: owner.id, now: now)
            #expect(try store.activeSession(id: session.id, now: now) == nil)
            #expect(try store.user(id: agent.id)?.deletedAt == now)
            #expect(try store.user(email: "a@acme.io") == nil)
            #expect(try store.users(matching: UserFilter(companyID: company.id), offset: 0, limit: 10).total == 1)
            #expect(throws: DirectoryError.notFound) { try store.deleteUser(id: agent.id, actorID: owner.id, now: now) }
            #expect(throws: DirectoryError.notFound) {
                try store.setAvatar(userID: agent.id, path: "x.png", actorID: owner.id, now: now)
            }
            // Admins: the last one stays.
            let root = try store.createUser(NewUser(companyID: nil, email: "r@x.io", name: "R", role: .admin,
                                                    passwordHash: "h"), invitation: nil, actorID: nil, now: now)
            #expect(throws: DirectoryError.lastAdmin) { try store.deleteUser(id: root.id, actorID: root.id, now: now) }
        }
    }

    @Test func avatarsAndLogosReportTheFileTheyReplace() throws {
        try withStore { store in
            let (company, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                      passwordHash: "h", now: now)
            let first = try store.setAvatar(userID: owner.id, path: "a.png", actorID: owner.id, now: now)
            #expect(first.user.avatarPath == "a.png" && first.replaced == nil)
            #expect(try store.setAvatar(userID: owner.id, path: "b.png", actorID: owner.id, now: now).replaced == "a.png")
            let logo = try store.setLogo(companyID: company.id, path: "l.webp", actorID: owner.id, now: now)
            #expect(logo.company.logoPath == "l.webp" && logo.replaced == nil)
            #expect(try store.activity(userID: owner.id, offset: 0, limit: 10).items.map(\.action)
                == ["company.logo", "user.avatar", "user.avatar", "register"])
        }
    }

    @Test func companiesAreListedChangedAndSoftDeletedWithTheirUsers() throws {
        try withStore { store in
            let (acme, owner) = try store.register(companyName: "Acme", email: "o@acme.io", name: "Olga",
                                                   passwordHash: "h", now: now)
            let created = try store.createCompany(name: "Beta", CompanyChanges(lobby: true, maxParticipants: 5),
                                                  actorID: nil, now: now)
            #expect(created.lobby && created.maxParticipants == 5 && created.guestAccess && created.timezone == "UTC")
            #expect(try store.companies(matching: CompanyFilter(), offset: 0, limit: 10).items.map(\.name) == ["Acme", "Beta"])
            #expect(try store.companies(matching: CompanyFilter(search: "bet"), offset: 0, limit: 10).total == 1)
            #expect(try store.companies(matching: CompanyFilter(id: acme.id), offset: 0, limit: 10).items.map(\.id) == [acme.id])

            let changed = try store.updateCompany(id: acme.id, CompanyChanges(name: "Acme Inc", recordingAllowed: true,
                                                                             timezone: "Europe/Berlin"),
                                                  actorID: owner.id, now: now + 5)
            #expect(changed.name == "Acme Inc" && changed.recordingAllowed && changed.timezone == "Europe/Berlin")
            #expect(changed.updatedAt == now + 5)

            let session = try store.createSession(userID: owner.id, refreshTokenHash: "r", userAgent: nil, ip: nil,
                                                  now: now, lifetime: 3600)
            try store.deleteCompany(id: acme.id, actorID: nil, now: now + 6)
            #expect(try store.company(id: acme.id)?.deletedAt == now + 6)
            #expect(try store.user(id: owner.id)?.deletedAt == now + 6)
            #expect(try store.activeSession(id: session.id, now: now + 6) == nil)
            #expect(try store.companies(matching: CompanyFilter(), offset: 0, limit: 10).items.map(\.name) == ["Beta"])
            #expect(throws: DirectoryError.notFound) {
                try store.updateCompany(id: acme.id, CompanyChanges(name: "X"), actorID: nil, now: now)
            }
            #expect(try auditActions(store).suffix(3) == ["company.create", "company.update", "company.delete"])
        }
    }
}
