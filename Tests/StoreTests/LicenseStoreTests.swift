import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct LicenseStoreBehaviour {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-licenses-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    /// A company with its owner and `count` members.
    private func company(_ store: SQLiteStore, _ name: String, members count: Int = 2) throws -> (Company, User, [User]) {
        let (company, owner) = try store.register(companyName: name, email: "owner@\(name).io", name: "Owner",
                                                  passwordHash: "h", now: now)
        let members = try (0..<count).map { index in
            try store.createUser(NewUser(companyID: company.id, email: "m\(index)@\(name).io", name: "M\(index)",
                                         role: .member, passwordHash: "h"), invitation: nil, actorID: owner.id, now: now)
        }
        return (company, owner, members)
    }

    private func actions(_ store: SQLiteStore, target: String) throws -> [String] {
        try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT action FROM audit_log WHERE target_id = ? ORDER BY id", arguments: [target])
        }
    }

    @Test func createsListsAndFiltersByExpiry() throws {
        try withStore { store in
            let (acme, owner, _) = try company(store, "acme")
            let (other, _, _) = try company(store, "other")
            let live = try store.createLicense(NewLicense(companyID: acme.id, name: "Pro", seats: 3,
                                                          expiresAt: now + 3600), actorID: owner.id, now: now)
            #expect(live.seatsUsed == 0 && live.license.seats == 3 && live.license.createdAt == now)
            let old = try store.createLicense(NewLicense(companyID: acme.id, name: "basic_old", seats: 1, expiresAt: now),
                                              actorID: owner.id, now: now)
            _ = try store.createLicense(NewLicense(companyID: other.id, name: "Theirs", seats: 1, expiresAt: nil),
                                        actorID: nil, now: now)
            #expect(old.license.isExpired(at: now) && !live.license.isExpired(at: now))
            let mine = try store.licenses(matching: LicenseFilter(companyID: acme.id), now: now, offset: 0, limit: 10)
            #expect(mine.total == 2 && mine.items.map(\.license.name) == ["basic_old", "Pro"])
            #expect(try store.licenses(matching: LicenseFilter(companyID: acme.id, expired: true), now: now, offset: 0,
                                       limit: 10).items.map(\.license.id) == [old.license.id])
            #expect(try store.licenses(matching: LicenseFilter(expired: false), now: now, offset: 0, limit: 10)
                .items.map(\.license.name) == ["Pro", "Theirs"])
            #expect(try store.licenses(matching: LicenseFilter(search: "_"), now: now, offset: 0, limit: 10).total == 1)
            #expect(try store.licenses(matching: LicenseFilter(), now: now, offset: 1, limit: 1).items.map(\.license.name)
                == ["Pro"])
            #expect(throws: LicenseError.companyNotFound) {
                try store.createLicense(NewLicense(companyID: "nope", name: "X", seats: 1, expiresAt: nil), actorID: nil,
                                        now: now)
            }
            #expect(try actions(store, target: live.license.id) == ["license.create"])
        }
    }

    @Test func seatsLimitHoldersAndAUserIsMovedBetweenLicenses() throws {
        try withStore { store in
            let (acme, owner, members) = try company(store, "acme", members: 3)
            let pro = try store.createLicense(NewLicense(companyID: acme.id, name: "Pro", seats: 2, expiresAt: nil),
                                              actorID: owner.id, now: now)
            let basic = try store.createLicense(NewLicense(companyID: acme.id, name: "Basic", seats: 5, expiresAt: nil),
                                                actorID: owner.id, now: now)
            _ = try store.assignLicense(id: pro.license.id, userID: members[0].id, actorID: owner.id, now: now)
            let full = try store.assignLicense(id: pro.license.id, userID: members[1].id, actorID: owner.id, now: now + 1)
            #expect(full.assignedUserIDs == [members[0].id, members[1].id])
            // Holding it already changes nothing, even when full.
            #expect(try store.assignLicense(id: pro.license.id, userID: members[1].id, actorID: owner.id, now: now) == full)
            #expect(throws: LicenseError.noFreeSeat(seats: 2)) {
                try store.assignLicense(id: pro.license.id, userID: members[2].id, actorID: owner.id, now: now)
            }
            #expect(throws: LicenseError.seatsInUse(used: 2)) {
                try store.updateLicense(id: pro.license.id, LicenseChanges(seats: 1), actorID: owner.id, now: now)
            }
            // Moving: one license per user.
            let moved = try store.assignLicense(id: basic.license.id, userID: members[0].id, actorID: owner.id, now: now)
            #expect(moved.assignedUserIDs == [members[0].id])
            #expect(try store.license(id: pro.license.id)?.assignedUserIDs == [members[1].id])
            #expect(try store.assignedLicense(userID: members[0].id)?.id == basic.license.id)
            #expect(throws: LicenseError.notAssigned) {
                try store.unassignLicense(id: pro.license.id, userID: members[0].id, actorID: owner.id, now: now)
            }
            let freed = try store.unassignLicense(id: pro.license.id, userID: members[1].id, actorID: owner.id, now: now)
            #expect(freed.assignedUserIDs.isEmpty)
            #expect(try actions(store, target: pro.license.id)
                == ["license.create", "license.assign", "license.assign", "license.unassign"])
            let data = try store.pool.read { db in
                try String.fetchOne(db, sql: "SELECT data FROM audit_log WHERE action = 'license.assign' AND target_id = ?",
                                    arguments: [basic.license.id])
            }
            #expect(data == #"{"moved_from":"\#(pro.license.id)","user_id":"\#(members[0].id)"}"#)
        }
    }

    @Test func onlyLiveUsersOfTheCompanyHoldSeats() throws {
        try withStore { store in
            let (acme, owner, members) = try company(store, "acme")
            let (_, stranger, _) = try company(store, "other", members: 0)
            let license = try store.createLicense(NewLicense(companyID: acme.id, name: "Pro", seats: 1, expiresAt: nil),
                                                  actorID: owner.id, now: now)
            #expect(throws: LicenseError.userNotFound) {
                try store.assignLicense(id: license.license.id, userID: stranger.id, actorID: owner.id, now: now)
            }
            #expect(throws: LicenseError.userNotFound) {
                try store.assignLicense(id: license.license.id, userID: "nobody", actorID: owner.id, now: now)
            }
            #expect(throws: LicenseError.notFound) {
                try store.assignLicense(id: "nope", userID: members[0].id, actorID: owner.id, now: now)
            }
            _ = try store.assignLicense(id: license.license.id, userID: members[0].id, actorID: owner.id, now: now)
            // A deleted user's seat is free again.
            try store.deleteUser(id: members[0].id, actorID: owner.id, now: now)
            #expect(try store.license(id: license.license.id)?.seatsUsed == 0)
            let taken = try store.assignLicense(id: license.license.id, userID: members[1].id, actorID: owner.id, now: now)
            #expect(taken.assignedUserIDs == [members[1].id])
        }
    }

    @Test func activeLicenseNeedsOneThatIsNeitherExpiredNorDeleted() throws {
        try withStore { store in
            let (acme, owner, members) = try company(store, "acme")
            let user = members[0].id
            #expect(try store.activeLicense(userID: user, now: now) == nil)
            let license = try store.createLicense(NewLicense(companyID: acme.id, name: "Pro", seats: 2,
                                                             expiresAt: now + 60), actorID: owner.id, now: now)
            _ = try store.assignLicense(id: license.license.id, userID: user, actorID: owner.id, now: now)
            #expect(try store.activeLicense(userID: user, now: now)?.id == license.license.id)
            #expect(try store.activeLicense(userID: user, now: now + 59.999)?.id == license.license.id)
            #expect(try store.activeLicense(userID: user, now: now + 60) == nil)
            #expect(try store.activeLicense(userID: members[1].id, now: now) == nil)
            // An expired license takes no new holders; removing the expiry revives it.
            #expect(throws: LicenseError.expired) {
                try store.assignLicense(id: license.license.id, userID: members[1].id, actorID: owner.id, now: now + 60)
            }
            let renewed = try store.updateLicense(id: license.license.id, LicenseChanges(expiresAt: .some(nil)),
                                                  actorID: owner.id, now: now + 61)
            #expect(renewed.license.expiresAt == nil && renewed.license.updatedAt == now + 61)
            #expect(try store.activeLicense(userID: user, now: now + 3600)?.id == license.license.id)
            // Unchanged values write nothing.
            _ = try store.updateLicense(id: license.license.id, LicenseChanges(name: "Pro", expiresAt: nil),
                                        actorID: owner.id, now: now + 62)
            #expect(try store.license(id: license.license.id)?.license.updatedAt == now + 61)
            // Deleted: no active license, no assignments, no new holders.
            try store.deleteLicense(id: license.license.id, actorID: owner.id, now: now + 70)
            #expect(try store.activeLicense(userID: user, now: now + 70) == nil)
            #expect(try store.assignedLicense(userID: user) == nil)
            let gone = try store.license(id: license.license.id)
            #expect(gone?.license.deletedAt == now + 70 && gone?.assignedUserIDs == [])
            #expect(throws: LicenseError.deleted) {
                try store.assignLicense(id: license.license.id, userID: user, actorID: owner.id, now: now + 71)
            }
            #expect(throws: LicenseError.notFound) {
                try store.deleteLicense(id: license.license.id, actorID: owner.id, now: now + 72)
            }
            #expect(throws: LicenseError.notFound) {
                try store.updateLicense(id: license.license.id, LicenseChanges(name: "X"), actorID: owner.id, now: now)
            }
            #expect(try store.licenses(matching: LicenseFilter(companyID: acme.id), now: now, offset: 0, limit: 10).total == 0)
            #expect(try actions(store, target: license.license.id)
                == ["license.create", "license.assign", "license.update", "license.delete"])
        }
    }
}
