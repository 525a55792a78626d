import Foundation
import GRDB
import Rooms

/// A calendar day (`yyyy-MM-dd`), as dashboards take and show it: a day of a company's time zone.
public struct CalendarDay: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The years a dashboard accepts: the stored times compare as text, which needs four-digit years.
    public static let years = 2000...2999

    public let year: Int
    public let month: Int
    public let day: Int

    /// Parses `yyyy-MM-dd`: exactly that shape, a real day of the Gregorian calendar, a year in `years`.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              Self.years.contains(year), (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day)
        else { return nil }
        self.init(year: year, month: month, day: day)
    }

    private init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// The day `date` falls on in `timeZone`.
    public init(containing date: Date, in timeZone: TimeZone) {
        let parts = Self.calendar(timeZone).dateComponents([.year, .month, .day], from: date)
        self.init(year: parts.year!, month: parts.month!, day: parts.day!)
    }

    public var description: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    public static func < (lhs: CalendarDay, rhs: CalendarDay) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// The day `count` days later (earlier when negative).
    public func adding(days count: Int) -> CalendarDay {
        let utc = Self.calendar(TimeZone(identifier: "UTC")!)
        let noon = utc.date(from: DateComponents(year: year, month: month, day: day, hour: 12))!
        return CalendarDay(containing: utc.date(byAdding: .day, value: count, to: noon)!, in: utc.timeZone)
    }

    /// Whole days from `self` to `other` (positive when `other` is later).
    public func days(to other: CalendarDay) -> Int {
        let utc = Self.calendar(TimeZone(identifier: "UTC")!)
        let start = utc.date(from: DateComponents(year: year, month: month, day: day))!
        let end = utc.date(from: DateComponents(year: other.year, month: other.month, day: other.day))!
        return utc.dateComponents([.day], from: start, to: end).day!
    }

    /// The first instant of this day in `timeZone` (local midnight, or the first time that exists when a
    /// clock change skips midnight).
    public func start(in timeZone: TimeZone) -> Date {
        let calendar = Self.calendar(timeZone)
        return calendar.startOfDay(for: calendar.date(from: DateComponents(year: year, month: month, day: day, hour: 12))!)
    }

    /// A Gregorian calendar in `timeZone`, weeks from Monday (ISO 8601).
    static func calendar(_ timeZone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        calendar.firstWeekday = 2
        calendar.minimumDaysInFirstWeek = 4
        return calendar
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

/// The days `from` through `to` (inclusive) of a time zone: the period a dashboard covers. Calls belong to
/// the day of their `created_at` in that zone.
public struct DayRange: Sendable, Equatable {
    public let from: CalendarDay
    public let to: CalendarDay
    public let timeZone: TimeZone

    public init(from: CalendarDay, to: CalendarDay, timeZone: TimeZone) {
        precondition(from <= to, "a day range runs forwards")
        self.from = from
        self.to = to
        self.timeZone = timeZone
    }

    /// How many days the range has (1 for a single day).
    public var count: Int { from.days(to: to) + 1 }

    /// Every day of the range, in order.
    public var days: [CalendarDay] { (0..<count).map { from.adding(days: $0) } }

    /// The first instant of the range.
    public var start: Date { from.start(in: timeZone) }

    /// The first instant after the range (the start of the day after `to`).
    public var end: Date { to.adding(days: 1).start(in: timeZone) }
}

/// Averages of quality samples, in the shape of one sample; each is nil when no sample carried that measure.
public typealias QualityAverages = QualityStats

/// The stored half of the overview dashboard (the live half, users online, comes from the gateway).
public struct DashboardOverview: Equatable, Sendable {
    /// Calls created since local midnight of the company's time zone.
    public var callsToday: Int
    /// Calls created since Monday 00:00 of the current ISO week, local time.
    public var callsThisWeek: Int
    /// Calls whose stored status is `active` / `waiting` now.
    public var activeNow: Int
    public var waitingNow: Int
    /// The mean `duration_s` of ended calls that became active and were created in the last 30 days.
    public var averageDurationS: Double?
    /// Means of the quality samples recorded in the last 7 days.
    public var averageQuality: QualityAverages

    public init(callsToday: Int, callsThisWeek: Int, activeNow: Int, waitingNow: Int, averageDurationS: Double?,
                averageQuality: QualityAverages)
    {
        self.callsToday = callsToday
        self.callsThisWeek = callsThisWeek
        self.activeNow = activeNow
        self.waitingNow = waitingNow
        self.averageDurationS = averageDurationS
        self.averageQuality = averageQuality
    }
}

/// The calls created on one day of a company's time zone.
public struct DayCalls: Equatable, Sendable {
    public var day: CalendarDay
    public var total: Int
    /// Calls by their status now, for every status (zeros included).
    public var byStatus: [CallState: Int]
    /// The sum of `duration_s` of the day's ended calls.
    public var durationS: Int
    /// The mean `duration_s` of the day's ended calls that became active; nil when there are none.
    public var averageDurationS: Double?

    public init(day: CalendarDay, total: Int, byStatus: [CallState: Int], durationS: Int, averageDurationS: Double?) {
        self.day = day
        self.total = total
        self.byStatus = byStatus
        self.durationS = durationS
        self.averageDurationS = averageDurationS
    }
}

/// One user's part in a company's calls over a range of days.
public struct UserCallActivity: Equatable, Sendable {
    public var userID: String
    public var name: String
    /// Calls of the range this user hosts (cancelled ones excluded).
    public var callsHosted: Int
    /// Calls of the range this user was in (as host or member), each counted once.
    public var callsJoined: Int
    /// Time in those calls, from the participants' join and leave times; overlapping stays (two devices)
    /// count once.
    public var seconds: Double

    public init(userID: String, name: String, callsHosted: Int, callsJoined: Int, seconds: Double) {
        self.userID = userID
        self.name = name
        self.callsHosted = callsHosted
        self.callsJoined = callsJoined
        self.seconds = seconds
    }
}

/// The 50th, 95th and 99th percentiles of one measure (nearest rank); nil when there were no values.
public struct Percentiles: Equatable, Sendable {
    public var p50: Double?
    public var p95: Double?
    public var p99: Double?

    public init(p50: Double?, p95: Double?, p99: Double?) {
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
    }

    /// Nearest-rank percentiles of `values`: the value at rank ⌈p/100 · n⌉ of the sorted values.
    public init(of values: [Double]) {
        let sorted = values.sorted()
        func rank(_ p: Double) -> Double? {
            guard !sorted.isEmpty else { return nil }
            let index = Int((p / 100 * Double(sorted.count)).rounded(.up))
            return sorted[min(max(index, 1), sorted.count) - 1]
        }
        self.init(p50: rank(50), p95: rank(95), p99: rank(99))
    }
}

/// The technical dashboard: the quality samples of a company's calls created in a range of days.
public struct TechnicalStats: Equatable, Sendable {
    /// The thresholds above which a call's average makes it a poor-quality call.
    public static let poorLossPct = 5.0
    public static let poorRttMs = 400.0
    public static let poorJitterMs = 50.0

    public var samples: Int
    public var rttMs: Percentiles
    public var jitterMs: Percentiles
    public var lossPct: Percentiles
    public var averageBitrateKbps: Double?
    /// Calls with at least one sample.
    public var callsWithSamples: Int
    /// Calls whose average loss is over 5 %, average RTT over 400 ms or average jitter over 50 ms.
    public var poorQualityCalls: Int

    public init(samples: Int, rttMs: Percentiles, jitterMs: Percentiles, lossPct: Percentiles,
                averageBitrateKbps: Double?, callsWithSamples: Int, poorQualityCalls: Int)
    {
        self.samples = samples
        self.rttMs = rttMs
        self.jitterMs = jitterMs
        self.lossPct = lossPct
        self.averageBitrateKbps = averageBitrateKbps
        self.callsWithSamples = callsWithSamples
        self.poorQualityCalls = poorQualityCalls
    }

    /// `poorQualityCalls / callsWithSamples`; nil without samples.
    public var poorQualityShare: Double? {
        callsWithSamples == 0 ? nil : Double(poorQualityCalls) / Double(callsWithSamples)
    }
}

/// What a search result is; the order of the cases is the order of the results.
public enum SearchKind: String, CaseIterable, Sendable {
    case user, company, call
}

/// A search across users, companies and calls.
public struct SearchQuery: Sendable {
    /// A case-insensitive substring (`%` and `_` literal).
    public var text: String
    public var kinds: Set<SearchKind>
    /// Only this company's users, calls and itself; nil: every company (admins).
    public var companyID: String?

    public init(text: String, kinds: Set<SearchKind> = Set(SearchKind.allCases), companyID: String?) {
        self.text = text
        self.kinds = kinds
        self.companyID = companyID
    }
}

/// One search result: a user (title: name, subtitle: email), a company (name, no subtitle) or a call
/// (title, subtitle: its code as `XXX-XXX-XXX`).
public struct SearchHit: Equatable, Sendable {
    public var kind: SearchKind
    public var id: String
    public var title: String
    public var subtitle: String?

    public init(kind: SearchKind, id: String, title: String, subtitle: String?) {
        self.kind = kind
        self.id = id
        self.title = title
        self.subtitle = subtitle
    }
}

/// The read-only aggregates of a company's dashboards (overview, calls, users, technical) and the search
/// across users, companies and calls. Calls are selected by `created_at` (the `video_calls_by_company_created`
/// index), bounded by the period. Synchronous: call from a worker thread.
public protocol DashboardStore: Sendable {
    /// Today's and this week's calls (in `timeZone`), calls active and waiting now, the average duration of
    /// the last 30 days and the average quality of the last 7.
    func overview(companyID: String, timeZone: TimeZone, now: Date) throws -> DashboardOverview
    /// One entry per day of `range`, zeros included.
    func callsByDay(companyID: String, range: DayRange) throws -> [DayCalls]
    /// Every live user of the company with their part in the calls of `range`, most time first (then by name
    /// and id), `limit` of them from `offset`. A stay without a leave time lasts until the call ended, or
    /// until `now` while it goes on.
    func userActivity(companyID: String, range: DayRange, now: Date, offset: Int, limit: Int) throws
        -> Paged<UserCallActivity>
    /// Quality percentiles and poor-quality calls over the samples of the calls created in `range`.
    func technical(companyID: String, range: DayRange) throws -> TechnicalStats
    /// Live users, live companies and calls of live companies matching `query`, users first, then
    /// companies, then calls, each by title (case-insensitive) and id.
    func search(_ query: SearchQuery, offset: Int, limit: Int) throws -> Paged<SearchHit>
}

extension SQLiteStore: DashboardStore {
    public func overview(companyID: String, timeZone: TimeZone, now: Date) throws -> DashboardOverview {
        let today = CalendarDay(containing: now, in: timeZone)
        let calendar = CalendarDay.calendar(timeZone)
        // Monday of this ISO week: weekday is 1 (Sunday) ... 7 (Saturday).
        let weekday = calendar.component(.weekday, from: now)
        let monday = today.adding(days: -((weekday + 5) % 7))
        let todayStart = today.start(in: timeZone), weekStart = monday.start(in: timeZone)
        let tomorrow = today.adding(days: 1).start(in: timeZone), nextWeek = monday.adding(days: 7).start(in: timeZone)
        return try pool.read { db in
            func count(_ condition: String, _ arguments: StatementArguments) throws -> Int {
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM video_calls WHERE company_id = ? AND \(condition)",
                                 arguments: StatementArguments([companyID]) + arguments) ?? 0
            }
            let duration = try Double.fetchOne(db, sql: """
                SELECT AVG(duration_s) FROM video_calls
                WHERE company_id = ? AND created_at >= ? AND created_at <= ?
                  AND status = 'ended' AND started_at IS NOT NULL AND duration_s IS NOT NULL
                """, arguments: [companyID, now.addingTimeInterval(-30 * 86400), now])
            let quality = try Row.fetchOne(db, sql: """
                SELECT AVG(s.rtt_ms) AS rtt, AVG(s.jitter_ms) AS jitter, AVG(s.loss_pct) AS loss,
                       AVG(s.bitrate_kbps) AS bitrate
                FROM video_calls c JOIN quality_samples s ON s.call_id = c.id
                WHERE c.company_id = ? AND s.recorded_at >= ? AND s.recorded_at <= ?
                """, arguments: [companyID, now.addingTimeInterval(-7 * 86400), now])
            return DashboardOverview(
                callsToday: try count("created_at >= ? AND created_at < ?", [todayStart, tomorrow]),
                callsThisWeek: try count("created_at >= ? AND created_at < ?", [weekStart, nextWeek]),
                activeNow: try count("status = 'active'", []),
                waitingNow: try count("status = 'waiting'", []),
                averageDurationS: duration,
                averageQuality: QualityAverages(rttMs: quality?["rtt"], jitterMs: quality?["jitter"],
                                                lossPct: quality?["loss"], bitrateKbps: quality?["bitrate"]))
        }
    }

    public func callsByDay(companyID: String, range: DayRange) throws -> [DayCalls] {
        let rows = try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT created_at, status, started_at IS NOT NULL AS started, duration_s FROM video_calls
                WHERE company_id = ? AND created_at >= ? AND created_at < ?
                """, arguments: [companyID, range.start, range.end])
        }
        let empty = Dictionary(uniqueKeysWithValues: CallState.allCases.map { ($0, 0) })
        var days = range.days.map { DayCalls(day: $0, total: 0, byStatus: empty, durationS: 0, averageDurationS: nil) }
        var timed = [Int](repeating: 0, count: days.count)
        var timedSeconds = [Int](repeating: 0, count: days.count)
        for row in rows {
            let index = range.from.days(to: CalendarDay(containing: row["created_at"], in: range.timeZone))
            guard days.indices.contains(index), let status = CallState(rawValue: row["status"]) else { continue }
            days[index].total += 1
            days[index].byStatus[status, default: 0] += 1
            guard status == .ended, let duration: Int = row["duration_s"] else { continue }
            days[index].durationS += duration
            if (row["started"] as Bool) {
                timed[index] += 1
                timedSeconds[index] += duration
            }
        }
        for index in days.indices where timed[index] > 0 {
            days[index].averageDurationS = Double(timedSeconds[index]) / Double(timed[index])
        }
        return days
    }

    public func userActivity(companyID: String, range: DayRange, now: Date, offset: Int, limit: Int) throws
        -> Paged<UserCallActivity>
    {
        let (users, hosted, stays) = try pool.read { db in
            let users = try Row.fetchAll(db, sql: """
                SELECT id, name FROM users WHERE company_id = ? AND deleted_at IS NULL
                """, arguments: [companyID])
            let hosted = try Row.fetchAll(db, sql: """
                SELECT host_id, COUNT(*) AS calls FROM video_calls
                WHERE company_id = ? AND created_at >= ? AND created_at < ? AND status != 'cancelled'
                GROUP BY host_id
                """, arguments: [companyID, range.start, range.end])
            let stays = try Row.fetchAll(db, sql: """
                SELECT p.user_id, p.call_id, p.joined_at, COALESCE(p.left_at, c.ended_at) AS left_at
                FROM video_calls c JOIN call_participants p ON p.call_id = c.id
                WHERE c.company_id = ? AND c.created_at >= ? AND c.created_at < ? AND p.user_id IS NOT NULL
                """, arguments: [companyID, range.start, range.end])
            return (users, hosted, stays)
        }
        var hostedBy: [String: Int] = [:]
        for row in hosted { hostedBy[row["host_id"]] = row["calls"] }
        // Per user and call, the stays as intervals; their union is the time in that call.
        var intervals: [String: [String: [(Date, Date)]]] = [:]
        for row in stays {
            let joined: Date = row["joined_at"]
            let left: Date? = row["left_at"]
            let until = left ?? max(now, joined)
            intervals[row["user_id"], default: [:]][row["call_id"], default: []].append((joined, max(until, joined)))
        }
        var items = users.map { row -> UserCallActivity in
            let id: String = row["id"]
            let calls = intervals[id] ?? [:]
            let seconds = calls.values.reduce(0) { $0 + Self.unionLength($1) }
            return UserCallActivity(userID: id, name: row["name"], callsHosted: hostedBy[id] ?? 0,
                                    callsJoined: calls.count, seconds: seconds)
        }
        items.sort { a, b in
            if a.seconds != b.seconds { return a.seconds > b.seconds }
            let order = a.name.localizedLowercase.compare(b.name.localizedLowercase)
            if order != .orderedSame { return order == .orderedAscending }
            return a.userID < b.userID
        }
        let page = offset < items.count ? Array(items[offset..<min(items.count, offset + limit)]) : []
        return Paged(items: page, total: items.count)
    }

    /// The length in seconds of the union of `intervals`.
    static func unionLength(_ intervals: [(Date, Date)]) -> Double {
        var total = 0.0
        var current: (Date, Date)?
        for interval in intervals.sorted(by: { $0.0 < $1.0 }) {
            if let open = current, interval.0 <= open.1 {
                current = (open.0, max(open.1, interval.1))
            } else {
                if let open = current { total += open.1.timeIntervalSince(open.0) }
                current = interval
            }
        }
        if let open = current { total += open.1.timeIntervalSince(open.0) }
        return total
    }

    public func technical(companyID: String, range: DayRange) throws -> TechnicalStats {
        let rows = try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT s.call_id, s.rtt_ms, s.jitter_ms, s.loss_pct, s.bitrate_kbps
                FROM video_calls c JOIN quality_samples s ON s.call_id = c.id
                WHERE c.company_id = ? AND c.created_at >= ? AND c.created_at < ?
                """, arguments: [companyID, range.start, range.end])
        }
        /// Running sums of one call's samples.
        struct CallSums {
            var rtt = 0.0, rttCount = 0, jitter = 0.0, jitterCount = 0, loss = 0.0, lossCount = 0

            var isPoor: Bool {
                (lossCount > 0 && loss / Double(lossCount) > TechnicalStats.poorLossPct)
                    || (rttCount > 0 && rtt / Double(rttCount) > TechnicalStats.poorRttMs)
                    || (jitterCount > 0 && jitter / Double(jitterCount) > TechnicalStats.poorJitterMs)
            }
        }
        var rtt: [Double] = [], jitter: [Double] = [], loss: [Double] = [], bitrate: [Double] = []
        var calls: [String: CallSums] = [:]
        for row in rows {
            var sums = calls[row["call_id"]] ?? CallSums()
            if let value: Double = row["rtt_ms"] {
                rtt.append(value)
                sums.rtt += value
                sums.rttCount += 1
            }
            if let value: Double = row["jitter_ms"] {
                jitter.append(value)
                sums.jitter += value
                sums.jitterCount += 1
            }
            if let value: Double = row["loss_pct"] {
                loss.append(value)
                sums.loss += value
                sums.lossCount += 1
            }
            if let value: Double = row["bitrate_kbps"] { bitrate.append(value) }
            calls[row["call_id"]] = sums
        }
        return TechnicalStats(
            samples: rows.count, rttMs: Percentiles(of: rtt), jitterMs: Percentiles(of: jitter),
            lossPct: Percentiles(of: loss),
            averageBitrateKbps: bitrate.isEmpty ? nil : bitrate.reduce(0, +) / Double(bitrate.count),
            callsWithSamples: calls.count, poorQualityCalls: calls.values.filter(\.isPoor).count)
    }

    public func search(_ query: SearchQuery, offset: Int, limit: Int) throws -> Paged<SearchHit> {
        let pattern = Self.likePattern(query.text)
        // A call code is stored without dashes; `abc-def` finds `ABCDEFGHJ`.
        let codeText = query.text.replacingOccurrences(of: "-", with: "")
        let codePattern = codeText.isEmpty ? nil : Self.likePattern(codeText)
        var parts: [String] = []
        var arguments: StatementArguments = []
        let scoped = query.companyID != nil
        if query.kinds.contains(.user) {
            parts.append("""
                SELECT 0 AS rank, 'user' AS kind, id, name AS title, email AS subtitle FROM users
                WHERE deleted_at IS NULL \(scoped ? "AND company_id = ?" : "")
                  AND (name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\')
                """)
            if let companyID = query.companyID { arguments += [companyID] }
            arguments += [pattern, pattern]
        }
        if query.kinds.contains(.company) {
            parts.append("""
                SELECT 1 AS rank, 'company' AS kind, id, name AS title, NULL AS subtitle FROM companies
                WHERE deleted_at IS NULL \(scoped ? "AND id = ?" : "") AND name LIKE ? ESCAPE '\\'
                """)
            if let companyID = query.companyID { arguments += [companyID] }
            arguments += [pattern]
        }
        if query.kinds.contains(.call) {
            parts.append("""
                SELECT 2 AS rank, 'call' AS kind, v.id, v.title AS title, v.code AS subtitle
                FROM video_calls v JOIN companies co ON co.id = v.company_id AND co.deleted_at IS NULL
                WHERE \(scoped ? "v.company_id = ? AND" : "")
                  (v.title LIKE ? ESCAPE '\\' OR v.code LIKE ? ESCAPE '\\')
                """)
            if let companyID = query.companyID { arguments += [companyID] }
            arguments += [pattern, codePattern ?? pattern]
        }
        guard !parts.isEmpty else { return Paged(items: [], total: 0) }
        let union = parts.joined(separator: "\nUNION ALL\n")
        return try pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (\(union))", arguments: arguments) ?? 0
            let rows = try Row.fetchAll(db, sql: """
                SELECT kind, id, title, subtitle FROM (\(union))
                ORDER BY rank, title COLLATE NOCASE, id LIMIT ? OFFSET ?
                """, arguments: arguments + [limit, offset])
            let items = rows.map { row -> SearchHit in
                let kind = SearchKind(rawValue: row["kind"])!
                var subtitle: String? = row["subtitle"]
                if kind == .call, let code = subtitle {
                    subtitle = RoomCode(parsing: code, allowAnyCode: true)?.display ?? code
                }
                return SearchHit(kind: kind, id: row["id"], title: row["title"], subtitle: subtitle)
            }
            return Paged(items: items, total: total)
        }
    }
}
