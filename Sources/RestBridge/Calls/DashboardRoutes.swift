import Foundation
import Rooms
import Store

/// `/api/dashboard/{overview,calls,users,technical,realtime}/{companyId}`: a company's dashboards, for its
/// owners and agents and for admins (members 403; another company, a deleted or an unknown one 404). Days
/// are days of the company's `timezone` setting; calls belong to the day of their `created_at`.
struct DashboardRoutes: Sendable {
    /// The longest period a dashboard covers, in days (`from` and `to` included).
    static let maxDays = 366
    /// The period when `from` and `to` are both absent: the 30 days that end today.
    static let defaultDays = 30

    let dashboards: any DashboardStore
    let accounts: any AccountStore
    /// The live side, for users online and the realtime dashboard (never the database).
    let live: LiveCallsLink

    func register(on router: Router) {
        router.add(.get, "/api/dashboard/overview/:companyId", auth: .bearer) { request, context in
            try overview(request, context)
        }
        router.add(.get, "/api/dashboard/calls/:companyId", auth: .bearer) { request, context in
            try calls(request, context)
        }
        router.add(.get, "/api/dashboard/users/:companyId", auth: .bearer) { request, context in
            try users(request, context)
        }
        router.add(.get, "/api/dashboard/technical/:companyId", auth: .bearer) { request, context in
            try technical(request, context)
        }
        router.add(.get, "/api/dashboard/realtime/:companyId", auth: .bearer) { request, context in
            try realtime(request, context)
        }
    }

    /// `GET /api/dashboard/overview/{companyId}`.
    func overview(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try readableCompany(request, context)
        let timeZone = Self.timeZone(of: company)
        let stored = try dashboards.overview(companyID: company.id, timeZone: timeZone, now: context.now)
        // The database numbers do not depend on the live side; without it, `users_online` is null.
        let online = (try? live.get())?.usersOnline(companyID: company.id)
        return try .encode(.ok, OverviewView(companyID: company.id, timeZone: company.timezone, overview: stored,
                                             usersOnline: online, generatedAt: context.now))
    }

    /// `GET /api/dashboard/calls/{companyId}?from&to`.
    func calls(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try readableCompany(request, context)
        let range = try Self.range(request.query, timeZone: Self.timeZone(of: company), now: context.now)
        let days = try dashboards.callsByDay(companyID: company.id, range: range)
        return try .encode(.ok, CallsView(company: company, range: range, days: days.map(DayCallsView.init)))
    }

    /// `GET /api/dashboard/users/{companyId}?from&to&page&page_size`: a list envelope.
    func users(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try readableCompany(request, context)
        // The period and the page are checked together, so that one 422 names every bad field.
        var validator = Validator()
        let range = Self.range(request.query, timeZone: Self.timeZone(of: company), now: context.now, &validator)
        var page = PageRequest()
        do {
            page = try PageRequest(query: request.query)
        } catch {
            for (field, messages) in error.fields ?? [:] {
                for message in messages { validator.require(false, field, message) }
            }
        }
        try validator.check()
        guard let range else { throw APIError.internalError() }
        let found = try dashboards.userActivity(companyID: company.id, range: range, now: context.now,
                                                offset: page.offset, limit: page.pageSize)
        return try .encode(.ok, ListEnvelope(found.items.map(UserActivityView.init), total: found.total, page))
    }

    /// `GET /api/dashboard/technical/{companyId}?from&to`.
    func technical(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try readableCompany(request, context)
        let range = try Self.range(request.query, timeZone: Self.timeZone(of: company), now: context.now)
        let stats = try dashboards.technical(companyID: company.id, range: range)
        return try .encode(.ok, TechnicalView(company: company, range: range, stats: stats))
    }

    /// `GET /api/dashboard/realtime/{companyId}`: the company's live rooms now, from the gateway only.
    func realtime(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let company = try readableCompany(request, context)
        let rooms = try live.get().realtime(companyID: company.id).sorted { a, b in
            switch (a.startedAt, b.startedAt) {
            case let (x?, y?) where x != y: return x < y
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.code < b.code
            }
        }
        return try .encode(.ok, RealtimeView(companyID: company.id, rooms: rooms, generatedAt: context.now))
    }

    // MARK: Access and parameters

    /// The company of the path if the caller may read its dashboards: 404 when they may not see it, 403 for
    /// a member of it.
    private func readableCompany(_ request: RestRequest, _ context: RouteContext) throws -> Company {
        let access = DirectoryAccess(context)
        let company = try access.visibleCompany(request.parameters["companyId"], in: accounts)
        guard access.isAdmin || access.caller.role == .owner || access.caller.role == .agent else {
            throw APIError.forbidden("only the company's owners and agents, and admins, read its dashboards")
        }
        return company
    }

    /// The company's time zone (UTC if the stored name is unknown, which settings validation prevents).
    static func timeZone(of company: Company) -> TimeZone {
        TimeZone(identifier: company.timezone) ?? TimeZone(identifier: "UTC")!
    }

    /// The period of `from` and `to` (`YYYY-MM-DD`, inclusive, in `timeZone`): both absent, the 30 days
    /// ending today; `to` absent, today; `from` absent, 29 days before `to`. A malformed day → 422 on its
    /// field; `from` after `to`, or more than 366 days → 422 on `to` (on `from` when `to` is absent).
    static func range(_ query: [String: String], timeZone: TimeZone, now: Date) throws(APIError) -> DayRange {
        var validator = Validator()
        let range = range(query, timeZone: timeZone, now: now, &validator)
        try validator.check()
        guard let range else { throw APIError.internalError() }
        return range
    }

    /// The period of `range(_:timeZone:now:)`, or nil with the problems added to `validator`.
    static func range(_ query: [String: String], timeZone: TimeZone, now: Date, _ validator: inout Validator)
        -> DayRange?
    {
        var malformed = false
        func day(_ name: String) -> CalendarDay? {
            guard let text = query[name] else { return nil }
            guard let day = CalendarDay(text) else {
                validator.require(false, name, "must be a date YYYY-MM-DD from 2000-01-01 to 2999-12-31")
                malformed = true
                return nil
            }
            return day
        }
        let from = day("from"), to = day("to")
        guard !malformed else { return nil }
        let end = to ?? CalendarDay(containing: now, in: timeZone)
        let start = from ?? end.adding(days: -(defaultDays - 1))
        // A cross-field problem is named on `to` when it was given, else on `from` (`to` is today).
        let field = to != nil ? "to" : "from"
        guard start <= end else {
            validator.require(false, field, to != nil ? "must not be before from (\(start))"
                              : "must not be after today (\(end)) when to is absent")
            return nil
        }
        guard start.days(to: end) < maxDays else {
            validator.require(false, field, "the period from \(start) to \(end) is longer than \(maxDays) days")
            return nil
        }
        return DayRange(from: start, to: end, timeZone: timeZone)
    }
}

// MARK: Views

/// The overview dashboard.
struct OverviewView: Encodable, Sendable {
    let companyID: String
    let timeZone: String
    let overview: DashboardOverview
    let usersOnline: Int?
    let generatedAt: Date

    private enum CodingKeys: String, CodingKey {
        case companyId, timezone, callsToday, callsThisWeek, activeNow, waitingNow, averageDurationS, averageQuality
        case usersOnline, generatedAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(companyID, forKey: .companyId)
        try c.encode(timeZone, forKey: .timezone)
        try c.encode(overview.callsToday, forKey: .callsToday)
        try c.encode(overview.callsThisWeek, forKey: .callsThisWeek)
        try c.encode(overview.activeNow, forKey: .activeNow)
        try c.encode(overview.waitingNow, forKey: .waitingNow)
        try c.encode(overview.averageDurationS, forKey: .averageDurationS)
        try c.encode(QualityView(samples: nil, stats: overview.averageQuality), forKey: .averageQuality)
        try c.encode(usersOnline, forKey: .usersOnline)
        try c.encode(generatedAt, forKey: .generatedAt)
    }
}

/// One day of the calls dashboard.
struct DayCallsView: Encodable, Sendable {
    let day: DayCalls

    init(_ day: DayCalls) { self.day = day }

    private enum CodingKeys: String, CodingKey { case date, total, byStatus, durationS, averageDurationS }

    /// Every status by name, zeros included.
    private struct ByStatus: Encodable {
        let counts: [CallState: Int]

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: AnyKey.self)
            for state in CallState.allCases { try c.encode(counts[state] ?? 0, forKey: AnyKey(state.rawValue)) }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(day.day.description, forKey: .date)
        try c.encode(day.total, forKey: .total)
        try c.encode(ByStatus(counts: day.byStatus), forKey: .byStatus)
        try c.encode(day.durationS, forKey: .durationS)
        try c.encode(day.averageDurationS, forKey: .averageDurationS)
    }
}

/// A coding key made from any string.
private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ value: String) { stringValue = value }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The calls dashboard: the period and one entry per day.
struct CallsView: Encodable, Sendable {
    let companyId: String
    let from: String
    let to: String
    let timezone: String
    let days: [DayCallsView]

    init(company: Company, range: DayRange, days: [DayCallsView]) {
        companyId = company.id
        from = range.from.description
        to = range.to.description
        timezone = company.timezone
        self.days = days
    }
}

/// One user of the users dashboard; `minutes` to two decimals.
struct UserActivityView: Encodable, Sendable {
    let userId: String
    let name: String
    let callsHosted: Int
    let callsJoined: Int
    let minutes: Double

    init(_ activity: UserCallActivity) {
        userId = activity.userID
        name = activity.name
        callsHosted = activity.callsHosted
        callsJoined = activity.callsJoined
        minutes = (activity.seconds / 60 * 100).rounded() / 100
    }
}

/// The technical dashboard.
struct TechnicalView: Encodable, Sendable {
    let company: Company
    let range: DayRange
    let stats: TechnicalStats

    /// p50, p95 and p99 of one measure, `null` without values.
    private struct PercentilesView: Encodable {
        let p: Percentiles

        private enum CodingKeys: String, CodingKey { case p50, p95, p99 }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(p.p50, forKey: .p50)
            try c.encode(p.p95, forKey: .p95)
            try c.encode(p.p99, forKey: .p99)
        }
    }

    /// `{avg}` of the bitrate, `null` without values.
    private struct AverageView: Encodable {
        let avg: Double?

        private enum CodingKeys: String, CodingKey { case avg }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(avg, forKey: .avg)
        }
    }

    private enum CodingKeys: String, CodingKey {
        case companyId, from, to, timezone, samples, rttMs, jitterMs, lossPct, bitrateKbps, callsWithSamples
        case poorQualityCalls, poorQualityShare
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(company.id, forKey: .companyId)
        try c.encode(range.from.description, forKey: .from)
        try c.encode(range.to.description, forKey: .to)
        try c.encode(company.timezone, forKey: .timezone)
        try c.encode(stats.samples, forKey: .samples)
        try c.encode(PercentilesView(p: stats.rttMs), forKey: .rttMs)
        try c.encode(PercentilesView(p: stats.jitterMs), forKey: .jitterMs)
        try c.encode(PercentilesView(p: stats.lossPct), forKey: .lossPct)
        try c.encode(AverageView(avg: stats.averageBitrateKbps), forKey: .bitrateKbps)
        try c.encode(stats.callsWithSamples, forKey: .callsWithSamples)
        try c.encode(stats.poorQualityCalls, forKey: .poorQualityCalls)
        try c.encode(stats.poorQualityShare, forKey: .poorQualityShare)
    }
}

/// The realtime dashboard: the company's live rooms, their members and lobbies.
struct RealtimeView: Encodable, Sendable {
    let companyID: String
    let rooms: [LiveCallSnapshot]
    let generatedAt: Date

    /// One live room.
    private struct RoomView: Encodable {
        let room: LiveCallSnapshot

        private enum CodingKeys: String, CodingKey {
            case callId, code, status, startedAt, locked, recording, participants, lobby
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(room.callID, forKey: .callId)
            try c.encode(RoomCode(parsing: room.code, allowAnyCode: true)?.display ?? room.code, forKey: .code)
            try c.encode(room.status.rawValue, forKey: .status)
            try c.encode(room.startedAt, forKey: .startedAt)
            try c.encode(room.locked, forKey: .locked)
            try c.encode(room.recording, forKey: .recording)
            try c.encode(room.participants.map(LiveParticipantView.init), forKey: .participants)
            try c.encode(room.lobby.map(LiveParticipantView.init), forKey: .lobby)
        }
    }

    private enum CodingKeys: String, CodingKey { case companyId, rooms, participantsNow, lobbyNow, generatedAt }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(companyID, forKey: .companyId)
        try c.encode(rooms.map(RoomView.init), forKey: .rooms)
        try c.encode(rooms.reduce(0) { $0 + $1.participants.count }, forKey: .participantsNow)
        try c.encode(rooms.reduce(0) { $0 + $1.lobby.count }, forKey: .lobbyNow)
        try c.encode(generatedAt, forKey: .generatedAt)
    }
}
