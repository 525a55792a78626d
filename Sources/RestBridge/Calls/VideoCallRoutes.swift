import Foundation
import HTTPTypes
import Logging
import Rooms
import Store

/// `/api/videocalls/*`: stored video calls of a company — create (with a room code and a join URL), list with
/// filters, read with participants and quality, change, cancel, start, end, quality reports. Every status
/// change goes through `CallLifecycle` inside the store's transaction, then reaches the live room through
/// `LiveCalls`, so WebSocket members see it at once.
struct VideoCallRoutes: Sendable {
    let calls: any CallStore
    let accounts: any AccountStore
    let licenses: any LicenseStore
    let live: LiveCallsLink
    /// Where the call page is served for guests (`--public-url`), e.g. `https://calls.example.com`.
    let publicURL: String?
    let logger: Logger

    func register(on router: Router) {
        router.add(.get, "/api/videocalls", auth: .bearer) { request, context in try list(request, context) }
        router.add(.post, "/api/videocalls", auth: .bearer) { request, context in try create(request, context) }
        router.add(.get, "/api/videocalls/:id", auth: .bearer) { request, context in try get(request, context) }
        router.add(.put, "/api/videocalls/:id", auth: .bearer) { request, context in try update(request, context) }
        router.add(.delete, "/api/videocalls/:id", auth: .bearer) { request, context in
            try transition(request, context, .cancel, answer: .noContent)
        }
        router.add(.put, "/api/videocalls/:id/start", auth: .bearer) { request, context in
            try transition(request, context, .start, answer: .ok)
        }
        router.add(.put, "/api/videocalls/:id/end", auth: .bearer) { request, context in
            try transition(request, context, .end, answer: .ok)
        }
        router.add(.post, "/api/videocalls/:id/quality", auth: .bearerOrGuest) { request, context in
            try reportQuality(request, context)
        }
    }

    // MARK: Access

    /// The call `id` if the caller may see it (their company's, or any for an admin; a guest: only the call
    /// of their token), else 404.
    func visibleCall(_ id: String?, _ context: RouteContext) throws -> VideoCall {
        guard let id, let call = try calls.call(id: id) else { throw APIError.notFound("no such call") }
        if let guest = context.guest {
            guard guest.callID == call.id else { throw APIError.notFound("no such call") }
            return call
        }
        let caller = context.caller.user
        guard caller.role == .admin || caller.companyId == call.companyId else { throw APIError.notFound("no such call") }
        return call
    }

    /// Whether the caller runs this call: its host, an owner of its company, or an admin.
    static func controls(_ call: VideoCall, _ context: RouteContext) -> Bool {
        guard let user = context.auth?.user else { return false }
        return user.id == call.hostId || user.role == .admin || (user.role == .owner && user.companyId == call.companyId)
    }

    /// The origin of join URLs: `--public-url` when set, else `http://` and the request's `Host` (when it
    /// looks like a host name or address with a port; anything else is replaced, never echoed).
    func origin(_ request: RestRequest) -> String {
        if let publicURL { return publicURL }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
        guard let host = request.authority, (1...255).contains(host.count), host.allSatisfy(allowed.contains) else {
            return "http://127.0.0.1"
        }
        return "http://" + host
    }

    /// Refuses a host without an assigned, unexpired license (403).
    func requireLicense(hostID: String, now: Date) throws {
        guard try licenses.activeLicense(userID: hostID, now: now) != nil else {
            throw APIError.forbidden("the host has no assigned, unexpired license")
        }
    }

    /// Runs a store call, mapping the call domain's refusals to API errors.
    static func mapping<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CallTransitionError {
            var apiError = APIError.conflict(error.message)
            apiError.fields = nil
            apiError.message = error.message + " (status: \(error.current.rawValue))"
            throw apiError
        } catch CallStoreError.notFound {
            throw APIError.notFound("no such call")
        }
    }

    // MARK: Routes

    /// The fields of `POST` and `PUT /api/videocalls…`; on create only `title` is required.
    private struct CallBody: Decodable {
        let title: String?
        let hostId: String?
        let scheduledAt: String?
        let guestAccess: Bool?
        let lobby: Bool?
        let maxParticipants: Double?
    }

    /// `POST /api/videocalls {title, host_id?, scheduled_at?, guest_access?, lobby?, max_participants?}`:
    /// owners and agents of a company; the host (the caller unless an owner names another user of the
    /// company) needs an assigned, unexpired license. Settings default to the company's.
    func create(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let caller = context.caller.user
        guard let companyID = caller.companyId, caller.role == .owner || caller.role == .agent else {
            throw APIError.forbidden("only owners and agents of a company create calls")
        }
        let body = try request.decode(CallBody.self)
        var validator = Validator()
        let title = validator.text(body.title, "title", max: 200)
        let scheduledAt = Self.date(body.scheduledAt, "scheduled_at", &validator)
        let maxParticipants = Self.participants(body.maxParticipants, &validator)
        try validator.check()
        guard let company = try accounts.company(id: companyID), company.deletedAt == nil else {
            throw APIError.notFound("no such company")
        }
        var hostID = caller.id
        if let named = body.hostId, named != caller.id {
            guard caller.role == .owner else { throw APIError.forbidden("only owners create calls for another host") }
            guard let host = try accounts.user(id: named), host.deletedAt == nil, host.companyId == companyID else {
                throw APIError.validation(["host_id": ["must be a user of your company"]])
            }
            hostID = host.id
        }
        try requireLicense(hostID: hostID, now: context.now)
        let call = try calls.createCall(
            NewCall(companyID: companyID, hostID: hostID, title: title, guestAccess: body.guestAccess ?? company.guestAccess,
                    lobby: body.lobby ?? company.lobby, maxParticipants: maxParticipants ?? company.maxParticipants,
                    scheduledAt: scheduledAt),
            actorID: caller.id, now: context.now)
        logger.info("call created", metadata: ["call": "\(call.id)", "code": "\(call.displayCode)", "by": "\(caller.id)"])
        return try .created(CallView(call, origin: origin(request)), location: "/api/videocalls/\(call.id)")
    }

    /// `GET /api/videocalls?status&host_id&from&to&q&page&page_size` (and `company_id` for admins), newest
    /// first. `from`/`to` are dates (`YYYY-MM-DD`, `to` inclusive) or RFC 3339 times on `created_at`.
    func list(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let caller = context.caller.user
        let page = try PageRequest(query: request.query)
        var validator = Validator()
        var filter = CallFilter()
        if let text = request.query["status"] {
            let status = CallState(rawValue: text)
            validator.require(status != nil, "status", "must be one of scheduled, waiting, active, ended, cancelled")
            filter.status = status
        }
        if let host = request.query["host_id"] { filter.hostID = host }
        if let from = request.query["from"] {
            filter.createdFrom = APIDate.parse(from)
            validator.require(filter.createdFrom != nil, "from", "must be a date (YYYY-MM-DD) or an RFC 3339 time")
        }
        if let to = request.query["to"] {
            let parsed = APIDate.parse(to)
            validator.require(parsed != nil, "to", "must be a date (YYYY-MM-DD) or an RFC 3339 time")
            filter.createdBefore = parsed.map { APIDate.isDay(to) ? $0.addingTimeInterval(86400) : $0 }
        }
        if let from = filter.createdFrom, let before = filter.createdBefore {
            validator.require(from <= before, "to", "must not be before 'from'")
        }
        if let search = request.query["q"]?.trimmingCharacters(in: .whitespacesAndNewlines) {
            validator.require(search.count <= 200, "q", "must have at most 200 characters")
            filter.search = search
        }
        try validator.check()
        if caller.role == .admin {
            filter.companyID = request.query["company_id"]
        } else {
            guard let companyID = caller.companyId else {
                return try .encode(.ok, ListEnvelope([CallView](), total: 0, page))
            }
            filter.companyID = companyID
        }
        let found = try calls.calls(matching: filter, offset: page.offset, limit: page.pageSize)
        let origin = origin(request)
        return try .encode(.ok, ListEnvelope(found.items.map { CallView($0, origin: origin) }, total: found.total, page))
    }

    /// `GET /api/videocalls/{id}`: the call with its participants' stays and quality averages.
    func get(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try visibleCall(request.parameters["id"], context)
        let summary = try calls.qualitySummary(callID: call.id)
        return try .encode(.ok, CallDetailView(base: CallView(call, origin: origin(request)),
                                               participants: try calls.participants(callID: call.id).map(ParticipantView.init),
                                               quality: QualityView(samples: summary.samples, stats: summary.average)))
    }

    /// `PUT /api/videocalls/{id} {title?, host_id?, scheduled_at?, guest_access?, lobby?, max_participants?}`:
    /// the host, owners, admins; not once the call is over (409). A live room takes the new settings.
    func update(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try visibleCall(request.parameters["id"], context)
        guard Self.controls(call, context) else { throw APIError.forbidden("only the call's host and owners change it") }
        let body = try request.decode(CallBody.self)
        var validator = Validator()
        var changes = CallChanges()
        if let title = body.title { changes.title = validator.text(title, "title", max: 200) }
        if let scheduled = body.scheduledAt { changes.scheduledAt = .some(Self.date(scheduled, "scheduled_at", &validator)) }
        changes.maxParticipants = Self.participants(body.maxParticipants, &validator)
        changes.guestAccess = body.guestAccess
        changes.lobby = body.lobby
        try validator.check()
        if let named = body.hostId, named != call.hostId {
            guard let host = try accounts.user(id: named), host.deletedAt == nil, host.companyId == call.companyId else {
                throw APIError.validation(["host_id": ["must be a user of the call's company"]])
            }
            try requireLicense(hostID: host.id, now: context.now)
            changes.hostID = host.id
        }
        guard call.status != .ended, call.status != .cancelled else {
            throw APIError.conflict("the call is \(call.status.rawValue); it cannot be changed (status: \(call.status.rawValue))")
        }
        let updated = try Self.mapping {
            try calls.updateCall(id: call.id, changes, actorID: context.caller.user.id, now: context.now)
        }
        try notifyLive(updated)
        return try .encode(.ok, CallView(updated, origin: origin(request)))
    }

    /// Start (`scheduled` → `waiting`), end (`waiting`/`active` → `ended`) or cancel (`DELETE`: `scheduled` /
    /// `waiting` → `cancelled`): the host, owners, admins. An illegal step → 409 with the current status.
    func transition(_ request: RestRequest, _ context: RouteContext, _ action: CallAction,
                    answer: HTTPResponse.Status) throws -> RestResponse
    {
        let call = try visibleCall(request.parameters["id"], context)
        guard Self.controls(call, context) else {
            throw APIError.forbidden("only the call's host and owners \(action == .cancel ? "cancel" : action.rawValue) it")
        }
        let changed = try Self.mapping {
            try calls.transitionCall(id: call.id, action, actorID: context.caller.user.id, at: context.now,
                                     now: context.now)
        }
        logger.info("call \(action.rawValue)", metadata: ["call": "\(call.id)", "by": "\(context.caller.user.id)"])
        try notifyLive(changed)
        if answer == .noContent { return RestResponse(status: .noContent) }
        return try .encode(.ok, CallView(changed, origin: origin(request)))
    }

    /// `POST /api/videocalls/{id}/quality {stats, peer?}` (and `PUT /api/calls/{id}/quality`): a quality
    /// sample. A caller in the live room reports as their peer (forwarded to the hosts, at most one stored per
    /// 2 s; `stored: false` for one dropped); anyone else of the call stores it as given (`peer` or null).
    func reportQuality(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try visibleCall(request.parameters["id"], context)
        let body = try request.decode(QualityBody.self)
        let stats = try body.validated()
        var validator = Validator()
        if let peer = body.peer { validator.require((1...64).contains(peer.count), "peer", "must have 1 to 64 characters") }
        try validator.check()
        let caller: LiveCaller = context.guest.map { .guest($0.guestID) } ?? .user(context.caller.user.id)
        var peer = body.peer
        var stored = true
        switch try live.get().acceptQuality(callID: call.id, caller: caller, stats: stats) {
        case .notInRoom:
            break
        case .accepted(let own):
            peer = own
        case .dropped(let own):
            peer = own
            stored = false
        }
        if stored { try calls.addQualitySample(callID: call.id, peerID: peer, stats, at: context.now) }
        struct Answer: Encodable {
            let callId: String
            let peer: String?
            let stored: Bool
            let recordedAt: Date
            private enum CodingKeys: String, CodingKey { case callId, peer, stored, recordedAt }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(callId, forKey: .callId)
                try c.encode(peer, forKey: .peer)
                try c.encode(stored, forKey: .stored)
                try c.encode(recordedAt, forKey: .recordedAt)
            }
        }
        return try .encode(.accepted, Answer(callId: call.id, peer: peer, stored: stored, recordedAt: context.now))
    }

    /// Hands a changed call to its live room, with the company's recording permission.
    func notifyLive(_ call: VideoCall) throws {
        let recordingAllowed = (try? accounts.company(id: call.companyId))??.recordingAllowed ?? false
        try live.get().callChanged(call, recordingAllowed: recordingAllowed)
    }

    // MARK: Validation

    static func date(_ text: String?, _ field: String, _ validator: inout Validator) -> Date? {
        guard let text else { return nil }
        let date = APIDate.parse(text)
        validator.require(date != nil, field, "must be an RFC 3339 time")
        return date
    }

    static func participants(_ value: Double?, _ validator: inout Validator) -> Int? {
        guard let value else { return nil }
        let whole = value.rounded() == value && (1...50).contains(value)
        validator.require(whole, "max_participants", "must be a whole number from 1 to 50")
        return whole ? Int(value) : nil
    }
}
