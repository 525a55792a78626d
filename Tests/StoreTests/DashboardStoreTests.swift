import Foundation
import GRDB
import Rooms
import Testing
@testable import Store

/// The dashboard queries on a temporary database, with rows inserted directly: exact counts, durations,
/// percentiles, per-day buckets in a company's time zone, range bounds, and the search's scoping and order.
@Suite struct DashboardStoreBehaviour {
    /// 2025-06-04T20:00:00Z: a Wednesday in UTC, Thursday 05:00 in Tokyo.
    let now: Date = DashboardStoreBehaviour.utc("2025-06-04T20:00:00.000Z")

    static func utc(_ text: String) -> Date {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return try! style.parse(text)
    }

    func utc(_ text: String) -> Date { Self.utc(text) }

    func day(_ text: String) -> CalendarDay { CalendarDay(text)! }

    func zone(_ name: String) -> TimeZone { TimeZone(identifier: name)! }

    func withStore(_ body: (SQLiteStore) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-dashboards-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(directory: directory)
        try body(store)
        try store.close()
    }

    /// A company with its owner.
    func company(_ store: SQLiteStore, _ name: String, timezone: String = "UTC", owner ownerName: String? = nil) throws
        -> (Company, User)
    {
        let email = "owner-\(UUID().uuidString.prefix(8).lowercased())@example.io"
        var (company, owner) = try store.register(companyName: name, email: email, name: ownerName ?? "\(name) Owner",
                                                  passwordHash: "h", now: now)
        if timezone != "UTC" {
            company = try store.updateCompany(id: company.id, CompanyChanges(timezone: timezone), actorID: nil, now: now)
        }
        return (company, owner)
    }

    func user(_ store: SQLiteStore, _ company: Company, _ name: String, role: UserRole = .member) throws -> User {
        try store.createUser(NewUser(companyID: company.id, email: "\(name.lowercased())-\(UUID().uuidString.prefix(6))@x.io",
                                     name: name, role: role, passwordHash: "h"),
                             invitation: nil, actorID: nil, now: now)
    }

    /// Inserts a call; `duration` and `started` as the lifecycle would leave them.
    @discardableResult
    func call(_ store: SQLiteStore, _ company: Company, host: User, created: Date, status: CallState = .ended,
              started: Date? = nil, ended: Date? = nil, duration: Int? = nil, title: String = "Call",
              code: String? = nil) throws -> String
    {
        let id = UUID().uuidString.lowercased()
        try store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO video_calls (id, company_id, host_id, title, code, guest_access, lobby, max_participants,
                                         status, created_at, started_at, ended_at, duration_s, updated_at)
                VALUES (?, ?, ?, ?, ?, 1, 0, 10, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, company.id, host.id, title, code ?? RoomCode.random().key, status.rawValue, created,
                                 started, ended, duration, created])
        }
        return id
    }

    func stay(_ store: SQLiteStore, call: String, user: User?, joined: Date, left: Date?, role: String = "member") throws {
        try store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO call_participants (id, call_id, user_id, peer_id, display_name, role, joined_at, left_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [UUID().uuidString, call, user?.id, "p\(UUID().uuidString.prefix(6))",
                                 user?.name ?? "Guest", user == nil ? "guest" : role, joined, left])
        }
    }

    func sample(_ store: SQLiteStore, call: String, at: Date, rtt: Double? = nil, jitter: Double? = nil,
                loss: Double? = nil, bitrate: Double? = nil) throws
    {
        try store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO quality_samples (call_id, peer_id, rtt_ms, jitter_ms, loss_pct, bitrate_kbps, recorded_at)
                VALUES (?, 'p1', ?, ?, ?, ?, ?)
                """, arguments: [call, rtt, jitter, loss, bitrate, at])
        }
    }

    // MARK: Days

    @Test func parsesOnlyRealDaysInTheAcceptedYears() {
        #expect(CalendarDay("2024-02-29")?.description == "2024-02-29")
        #expect(CalendarDay("2000-02-29") != nil)
        for bad in ["2025-02-29", "2100-02-29", "2025-13-01", "2025-04-31", "2025-00-10", "2025-1-01", "25-01-01",
                    "2025-01-01T00:00", "1999-12-31", "3000-01-01", "２０２５-01-01", "2025-01-+1", ""] {
            #expect(CalendarDay(bad) == nil, "\(bad)")
        }
        #expect(day("2024-12-31").adding(days: 1) == day("2025-01-01"))
        #expect(day("2024-03-01").adding(days: -1) == day("2024-02-29"))
        #expect(day("2024-01-01").days(to: day("2025-01-01")) == 366)
        #expect(day("2025-01-02").days(to: day("2025-01-01")) == -1)
        #expect(day("2025-01-01") < day("2025-01-02") && day("2024-12-31") < day("2025-01-01"))
    }

    @Test func rangesStartAtLocalMidnightAcrossClockChanges() {
        // Europe/Berlin moves to summer time on 2025-03-30: that day has 23 hours.
        let range = DayRange(from: day("2025-03-29"), to: day("2025-03-30"), timeZone: zone("Europe/Berlin"))
        #expect(range.start == utc("2025-03-28T23:00:00.000Z"))
        #expect(range.end == utc("2025-03-30T22:00:00.000Z"))
        #expect(range.count == 2 && range.days == [day("2025-03-29"), day("2025-03-30")])
        #expect(CalendarDay(containing: utc("2025-03-30T21:59:59.999Z"), in: zone("Europe/Berlin")) == day("2025-03-30"))
        #expect(CalendarDay(containing: utc("2025-03-30T22:00:00.000Z"), in: zone("Europe/Berlin")) == day("2025-03-31"))
        // Asia/Kolkata is UTC+05:30.
        #expect(day("2025-01-01").start(in: zone("Asia/Kolkata")) == utc("2024-12-31T18:30:00.000Z"))
    }

    @Test func nearestRankPercentiles() {
        #expect(Percentiles(of: []) == Percentiles(p50: nil, p95: nil, p99: nil))
        #expect(Percentiles(of: [7]) == Percentiles(p50: 7, p95: 7, p99: 7))
        #expect(Percentiles(of: [4, 1, 3, 2]) == Percentiles(p50: 2, p95: 4, p99: 4))
        #expect(Percentiles(of: (1...100).map(Double.init).shuffled()) == Percentiles(p50: 50, p95: 95, p99: 99))
        // 201 values: ranks ⌈100.5⌉ = 101, ⌈190.95⌉ = 191, ⌈198.99⌉ = 199.
        #expect(Percentiles(of: (1...201).map(Double.init)) == Percentiles(p50: 101, p95: 191, p99: 199))
    }

    // MARK: Calls per day

    @Test func bucketsCallsByLocalDayWithStatusesAndDurations() throws {
        try withStore { store in
            // New York switches to daylight time on 2025-03-09 (UTC-5 before, UTC-4 after).
            let (acme, owner) = try company(store, "Acme", timezone: "America/New_York")
            let (other, stranger) = try company(store, "Other")
            let range = DayRange(from: day("2025-03-08"), to: day("2025-03-10"), timeZone: zone("America/New_York"))
            #expect(range.start == utc("2025-03-08T05:00:00.000Z") && range.end == utc("2025-03-11T04:00:00.000Z"))
            // Just outside the range on both sides.
            try call(store, acme, host: owner, created: utc("2025-03-08T04:59:59.999Z"), duration: 999)
            try call(store, acme, host: owner, created: utc("2025-03-11T04:00:00.000Z"), duration: 999)
            // 2025-03-08 (local): two ended calls that were active (60 s, 120 s), one that never started (0 s).
            try call(store, acme, host: owner, created: utc("2025-03-08T05:00:00.000Z"), started: now, duration: 60)
            try call(store, acme, host: owner, created: utc("2025-03-08T12:00:00.000Z"), started: now, duration: 120)
            try call(store, acme, host: owner, created: utc("2025-03-09T04:59:59.000Z"), started: nil, duration: 0)
            // 2025-03-09: one of each other status; 23:30 local is 03:30 UTC the next day.
            try call(store, acme, host: owner, created: utc("2025-03-09T15:00:00.000Z"), status: .scheduled)
            try call(store, acme, host: owner, created: utc("2025-03-09T16:00:00.000Z"), status: .waiting)
            try call(store, acme, host: owner, created: utc("2025-03-09T17:00:00.000Z"), status: .active, started: now)
            try call(store, acme, host: owner, created: utc("2025-03-10T03:30:00.000Z"), status: .cancelled)
            // 2025-03-10: the last millisecond of the range.
            try call(store, acme, host: owner, created: utc("2025-03-11T03:59:59.999Z"), started: now, duration: 45)
            // Another company's calls never count.
            try call(store, other, host: stranger, created: utc("2025-03-09T12:00:00.000Z"), started: now, duration: 5)

            let days = try store.callsByDay(companyID: acme.id, range: range)
            #expect(days.map(\.day.description) == ["2025-03-08", "2025-03-09", "2025-03-10"])
            #expect(days.map(\.total) == [3, 4, 1])
            #expect(days[0].byStatus == [.scheduled: 0, .waiting: 0, .active: 0, .ended: 3, .cancelled: 0])
            #expect(days[1].byStatus == [.scheduled: 1, .waiting: 1, .active: 1, .ended: 0, .cancelled: 1])
            #expect(days[2].byStatus == [.scheduled: 0, .waiting: 0, .active: 0, .ended: 1, .cancelled: 0])
            #expect(days.map(\.durationS) == [180, 0, 45])
            #expect(days.map(\.averageDurationS) == [90, nil, 45])

            // The same calls seen from UTC fall on other days.
            let utcDays = try store.callsByDay(companyID: acme.id, range: DayRange(
                from: day("2025-03-08"), to: day("2025-03-11"), timeZone: zone("UTC")))
            #expect(utcDays.map(\.total) == [3, 4, 1, 2])
            // A range without calls still lists every day, with zeros.
            let empty = try store.callsByDay(companyID: acme.id, range: DayRange(
                from: day("2024-12-30"), to: day("2025-01-02"), timeZone: zone("UTC")))
            #expect(empty.count == 4 && empty.allSatisfy { $0.total == 0 && $0.durationS == 0 && $0.averageDurationS == nil })
            #expect(empty.allSatisfy { $0.byStatus.count == 5 && $0.byStatus.values.allSatisfy { $0 == 0 } })
        }
    }

    // MARK: Overview

    @Test func overviewCountsTodayAndThisWeekInTheCompanyTimeZone() throws {
        try withStore { store in
            // In Tokyo (UTC+9) `now` is Thursday 2025-06-05 05:00: today began 2025-06-04T15:00Z, the ISO week
            // on Monday 2025-06-02 00:00 = 2025-06-01T15:00Z.
            let (acme, owner) = try company(store, "Acme", timezone: "Asia/Tokyo")
            let (other, stranger) = try company(store, "Other")
            try call(store, acme, host: owner, created: utc("2025-06-04T15:00:00.000Z"), status: .active, started: now)
            try call(store, acme, host: owner, created: utc("2025-06-04T19:59:00.000Z"), status: .waiting)
            try call(store, acme, host: owner, created: utc("2025-06-04T14:59:59.999Z"), status: .waiting)
            try call(store, acme, host: owner, created: utc("2025-06-01T15:00:00.000Z"), status: .scheduled)
            try call(store, acme, host: owner, created: utc("2025-06-01T14:59:59.999Z"), status: .active, started: now)
            // Durations: ended and active within 30 days (100 s, 300 s); never active (0 s); 31 days old (1000 s).
            try call(store, acme, host: owner, created: utc("2025-05-06T20:00:00.000Z"), started: now, duration: 100)
            try call(store, acme, host: owner, created: utc("2025-05-20T08:00:00.000Z"), started: now, duration: 300)
            try call(store, acme, host: owner, created: utc("2025-05-20T09:00:00.000Z"), started: nil, duration: 0)
            try call(store, acme, host: owner, created: utc("2025-05-04T19:59:59.000Z"), started: now, duration: 1000)
            try call(store, other, host: stranger, created: utc("2025-06-04T19:00:00.000Z"), status: .active,
                     started: now, duration: nil)

            var overview = try store.overview(companyID: acme.id, timeZone: zone("Asia/Tokyo"), now: now)
            #expect(overview.callsToday == 2)
            #expect(overview.callsThisWeek == 4)
            #expect(overview.activeNow == 2 && overview.waitingNow == 2)
            #expect(overview.averageDurationS == 200)
            #expect(overview.averageQuality == QualityAverages())

            // In UTC, today began 2025-06-04T00:00Z and the week on Monday 2025-06-02.
            overview = try store.overview(companyID: acme.id, timeZone: zone("UTC"), now: now)
            #expect(overview.callsToday == 3 && overview.callsThisWeek == 3)
            // Sunday counts to the week that began six days before (ISO weeks start on Monday).
            overview = try store.overview(companyID: acme.id, timeZone: zone("UTC"), now: utc("2025-06-08T23:59:59.000Z"))
            #expect(overview.callsThisWeek == 3 && overview.callsToday == 0)
            overview = try store.overview(companyID: acme.id, timeZone: zone("UTC"), now: utc("2025-06-09T00:00:00.000Z"))
            #expect(overview.callsThisWeek == 0)
        }
    }

    @Test func overviewAveragesTheQualityOfTheLastSevenDays() throws {
        try withStore { store in
            let (acme, owner) = try company(store, "Acme")
            let (other, stranger) = try company(store, "Other")
            let old = try call(store, acme, host: owner, created: utc("2025-04-01T10:00:00.000Z"), started: now, duration: 10)
            let recent = try call(store, acme, host: owner, created: utc("2025-06-03T10:00:00.000Z"), status: .active,
                                  started: now)
            let foreign = try call(store, other, host: stranger, created: utc("2025-06-03T10:00:00.000Z"), status: .active)
            // An old call still sends samples today: samples count by their own time.
            try sample(store, call: old, at: utc("2025-06-04T19:00:00.000Z"), rtt: 100, jitter: 10, loss: 1, bitrate: 500)
            try sample(store, call: recent, at: utc("2025-05-28T20:00:00.000Z"), rtt: 300, loss: 3)
            try sample(store, call: recent, at: utc("2025-06-04T20:00:00.000Z"), rtt: 200)
            // Older than 7 days, and another company's: left out.
            try sample(store, call: recent, at: utc("2025-05-28T19:59:59.999Z"), rtt: 5000, jitter: 900, loss: 90,
                       bitrate: 1)
            try sample(store, call: foreign, at: utc("2025-06-04T19:00:00.000Z"), rtt: 9000, jitter: 900, loss: 90,
                       bitrate: 1)
            let quality = try store.overview(companyID: acme.id, timeZone: zone("UTC"), now: now).averageQuality
            #expect(quality == QualityAverages(rttMs: 200, jitterMs: 10, lossPct: 2, bitrateKbps: 500))
        }
    }

    // MARK: Users

    @Test func usersGetHostedJoinedCallsAndMinutesFromTheirStays() throws {
        try withStore { store in
            let (acme, owner) = try company(store, "Acme")
            let bea = try user(store, acme, "Bea")
            let carl = try user(store, acme, "carl", role: .agent)
            let dora = try user(store, acme, "Dora")
            let gone = try user(store, acme, "Gone")
            let (other, stranger) = try company(store, "Other")
            let range = DayRange(from: day("2025-06-01"), to: day("2025-06-04"), timeZone: zone("UTC"))
            let t = { (minute: Int) in utc("2025-06-02T10:00:00.000Z").addingTimeInterval(Double(minute * 60)) }

            // Call 1 (owner hosts, 10:00-10:40): owner 10:00-10:30; Bea 10:05-10:20, again 10:25-10:40, and
            // from a second device 10:10-10:15 (inside the first stay: counted once) — 30 min of Bea.
            let first = try call(store, acme, host: owner, created: t(-60), started: t(5), ended: t(40), duration: 2100)
            try stay(store, call: first, user: owner, joined: t(0), left: t(30), role: "host")
            try stay(store, call: first, user: bea, joined: t(5), left: t(20))
            try stay(store, call: first, user: bea, joined: t(25), left: t(40))
            try stay(store, call: first, user: bea, joined: t(10), left: t(15))
            try stay(store, call: first, user: nil, joined: t(0), left: t(40))  // a guest: nobody's minutes
            try stay(store, call: first, user: gone, joined: t(0), left: t(40))
            // Call 2 (owner hosts, ended at 11:10): the owner never left in the store: until the end, 10 min.
            let second = try call(store, acme, host: owner, created: t(50), started: t(60), ended: t(70), duration: 600)
            try stay(store, call: second, user: owner, joined: t(60), left: nil, role: "host")
            // Call 3 (Bea hosts, cancelled): not hosted.
            try call(store, acme, host: bea, created: t(80), status: .cancelled)
            // Call 4 (Dora hosts, still active): Carl is in it since 19:30 on 2025-06-04, until `now` (20:00).
            let live = try call(store, acme, host: dora, created: utc("2025-06-04T19:00:00.000Z"), status: .active,
                                started: utc("2025-06-04T19:30:00.000Z"))
            try stay(store, call: live, user: carl, joined: utc("2025-06-04T19:30:00.000Z"), left: nil)
            // Outside the range, and another company's call with an Acme user in it: left out.
            let before = try call(store, acme, host: owner, created: utc("2025-05-31T23:59:59.999Z"), started: now,
                                  duration: 60)
            try stay(store, call: before, user: dora, joined: t(0), left: t(600))
            let foreign = try call(store, other, host: stranger, created: t(0), started: t(0), ended: t(10), duration: 600)
            try stay(store, call: foreign, user: dora, joined: t(0), left: t(10))
            try store.deleteUser(id: gone.id, actorID: nil, now: now)

            let all = try store.userActivity(companyID: acme.id, range: range, now: now, offset: 0, limit: 100)
            #expect(all.total == 4)
            #expect(all.items == [
                UserCallActivity(userID: owner.id, name: "Acme Owner", callsHosted: 2, callsJoined: 2, seconds: 2400),
                UserCallActivity(userID: bea.id, name: "Bea", callsHosted: 0, callsJoined: 1, seconds: 1800),
                UserCallActivity(userID: carl.id, name: "carl", callsHosted: 0, callsJoined: 1, seconds: 1800),
                UserCallActivity(userID: dora.id, name: "Dora", callsHosted: 1, callsJoined: 0, seconds: 0),
            ])
            let page = try store.userActivity(companyID: acme.id, range: range, now: now, offset: 1, limit: 2)
            #expect(page.total == 4 && page.items.map(\.name) == ["Bea", "carl"])
            let beyond = try store.userActivity(companyID: acme.id, range: range, now: now, offset: 10, limit: 2)
            #expect(beyond.total == 4 && beyond.items.isEmpty)
            // A range before any call: every user, with zeros, by name.
            let quiet = try store.userActivity(companyID: acme.id, range: DayRange(
                from: day("2025-01-01"), to: day("2025-01-31"), timeZone: zone("UTC")), now: now, offset: 0, limit: 10)
            #expect(quiet.items.map(\.name) == ["Acme Owner", "Bea", "carl", "Dora"])
            #expect(quiet.items.allSatisfy { $0.callsHosted == 0 && $0.callsJoined == 0 && $0.seconds == 0 })
            let others = try store.userActivity(companyID: other.id, range: range, now: now, offset: 0, limit: 10)
            #expect(others.items == [UserCallActivity(userID: stranger.id, name: "Other Owner", callsHosted: 1,
                                                      callsJoined: 0, seconds: 0)])
        }
    }

    // MARK: Technical

    @Test func technicalPercentilesAndPoorCallsOverTheRangesCalls() throws {
        try withStore { store in
            let (acme, owner) = try company(store, "Acme", timezone: "Europe/Berlin")
            let (other, stranger) = try company(store, "Other")
            let range = DayRange(from: day("2025-06-01"), to: day("2025-06-02"), timeZone: zone("Europe/Berlin"))
            let at = utc("2025-06-01T12:00:00.000Z")
            // A good call: rtt 1...100 ms (p50 50, p95 95, p99 99), jitter 10 ms, loss 0 %, 1000 kbps.
            let good = try call(store, acme, host: owner, created: at, started: at, duration: 600)
            for value in 1...100 {
                try sample(store, call: good, at: at.addingTimeInterval(Double(value * 2)), rtt: Double(value), jitter: 10,
                           loss: 0, bitrate: 1000)
            }
            // Average loss 6 % (> 5): poor.
            let lossy = try call(store, acme, host: owner, created: at, status: .active, started: at)
            try sample(store, call: lossy, at: at, loss: 2, bitrate: 100)
            try sample(store, call: lossy, at: at, loss: 10)
            // Average rtt exactly 400 ms and jitter exactly 50 ms: not poor (the thresholds are exclusive).
            let edge = try call(store, acme, host: owner, created: at, started: at, duration: 60)
            try sample(store, call: edge, at: at, rtt: 300, jitter: 40)
            try sample(store, call: edge, at: at, rtt: 500, jitter: 60)
            // Average jitter 51 ms: poor.
            let jittery = try call(store, acme, host: owner, created: at, started: at, duration: 60)
            try sample(store, call: jittery, at: at, jitter: 51)
            // A call without samples, one created before the range (Berlin midnight is 22:00Z), another company's.
            try call(store, acme, host: owner, created: at, started: at, duration: 60)
            let early = try call(store, acme, host: owner, created: utc("2025-05-31T21:59:59.999Z"), started: at, duration: 1)
            try sample(store, call: early, at: at, rtt: 9000, loss: 100)
            let foreign = try call(store, other, host: stranger, created: at, started: at, duration: 1)
            try sample(store, call: foreign, at: at, rtt: 9000, loss: 100)

            let stats = try store.technical(companyID: acme.id, range: range)
            #expect(stats.samples == 105)
            // rtt: 1...100, 300, 500 (102 values): ranks 51, 97 (⌈96.9⌉), 101 (⌈100.98⌉).
            #expect(stats.rttMs == Percentiles(p50: 51, p95: 97, p99: 300))
            // jitter: 100 × 10, 40, 60, 51 (103 values): ranks 52, 98 (⌈97.85⌉), 102 (⌈101.97⌉).
            #expect(stats.jitterMs == Percentiles(p50: 10, p95: 10, p99: 51))
            // loss: 100 × 0, 2, 10 (102 values): ranks 51, 97, 101.
            #expect(stats.lossPct == Percentiles(p50: 0, p95: 0, p99: 2))
            #expect(stats.averageBitrateKbps == 100_100.0 / 101)
            #expect(stats.callsWithSamples == 4 && stats.poorQualityCalls == 2 && stats.poorQualityShare == 0.5)

            let none = try store.technical(companyID: acme.id, range: DayRange(
                from: day("2025-07-01"), to: day("2025-07-01"), timeZone: zone("UTC")))
            #expect(none == TechnicalStats(samples: 0, rttMs: Percentiles(of: []), jitterMs: Percentiles(of: []),
                                           lossPct: Percentiles(of: []), averageBitrateKbps: nil, callsWithSamples: 0,
                                           poorQualityCalls: 0))
            #expect(none.poorQualityShare == nil)
        }
    }

    // MARK: Search

    @Test func searchIsScopedOrderedAndPaged() throws {
        try withStore { store in
            let (acme, owner) = try company(store, "Acme Rocket", owner: "Olga")
            let (other, stranger) = try company(store, "Rocketry Other", owner: "Otto")
            let gone = try store.createCompany(name: "Rocket Gone", CompanyChanges(), actorID: nil, now: now)
            let goneOwner = try user(store, gone, "Rocket Ghost", role: .owner)
            let rita = try user(store, acme, "rita rocket")
            let deleted = try user(store, acme, "Rocket Deleted", role: .agent)
            try store.deleteUser(id: deleted.id, actorID: nil, now: now)
            let launch = try call(store, acme, host: owner, created: now, title: "Rocket launch", code: "ABCDEFGHJ")
            let plain = try call(store, acme, host: rita, created: now, title: "Weekly", code: "KLMNPQRST")
            let foreignCall = try call(store, other, host: stranger, created: now, title: "rocket review",
                                       code: "UVWXYZ234")
            try call(store, gone, host: goneOwner, created: now, title: "Rocket gone call", code: "UVWXYZ567")
            try store.deleteCompany(id: gone.id, actorID: nil, now: now)

            // A company's view: its users (not deleted), itself, its calls; users, then companies, then calls.
            let scoped = try store.search(SearchQuery(text: "ROCKET", companyID: acme.id), offset: 0, limit: 20)
            #expect(scoped.total == 3)
            #expect(scoped.items == [
                SearchHit(kind: .user, id: rita.id, title: "rita rocket", subtitle: rita.email),
                SearchHit(kind: .company, id: acme.id, title: "Acme Rocket", subtitle: nil),
                SearchHit(kind: .call, id: launch, title: "Rocket launch", subtitle: "ABC-DEF-GHJ"),
            ])
            // Everything (an admin): deleted users, the deleted company and its calls stay out.
            let everything = try store.search(SearchQuery(text: "rocket", companyID: nil), offset: 0, limit: 20)
            #expect(everything.items.map(\.title) == ["rita rocket", "Acme Rocket", "Rocketry Other", "Rocket launch",
                                                      "rocket review"])
            #expect(everything.items.map(\.id).contains(foreignCall))
            // Paging over the union.
            let page = try store.search(SearchQuery(text: "rocket", companyID: nil), offset: 2, limit: 2)
            #expect(page.total == 5 && page.items.map(\.title) == ["Rocketry Other", "Rocket launch"])
            // Kinds; codes with or without dashes, any case; emails.
            #expect(try store.search(SearchQuery(text: "rocket", kinds: [.company], companyID: nil), offset: 0,
                                     limit: 20).items.map(\.title) == ["Acme Rocket", "Rocketry Other"])
            #expect(try store.search(SearchQuery(text: "mnp-q", kinds: [.call], companyID: acme.id), offset: 0,
                                     limit: 20).items.map(\.id) == [plain])
            #expect(try store.search(SearchQuery(text: "weekly", companyID: other.id), offset: 0, limit: 20).total == 0)
            #expect(try store.search(SearchQuery(text: owner.email.uppercased(), companyID: acme.id), offset: 0,
                                     limit: 20).items.map(\.id) == [owner.id])
            // LIKE wildcards are literal.
            #expect(try store.search(SearchQuery(text: "%", companyID: nil), offset: 0, limit: 20).total == 0)
            #expect(try store.search(SearchQuery(text: "_", companyID: nil), offset: 0, limit: 20).total == 0)
            #expect(try store.search(SearchQuery(text: "rocket", kinds: [], companyID: nil), offset: 0, limit: 20).total == 0)
        }
    }
}
