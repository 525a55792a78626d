import Foundation
import HTTPTypes
import Logging
import Rooms
import Store

/// `/api/calls/*`: the live side of a call over REST — what a guest sees before joining, guest tokens, the
/// live status, quality reports, recording state, and a REST fallback for `signal`.
struct LiveCallRoutes: Sendable {
    let videoCalls: VideoCallRoutes
    let accounts: any AccountStore
    let signer: JWTSigner
    /// How long a guest token works (seconds).
    let guestTokenLifetime: Int
    /// Per client IP: the public routes (join info, guest tokens).
    let publicLimit: RateLimiter
    /// The largest `data` of a REST signal: the WebSocket's message limit.
    let maxSignalBytes: Int

    var calls: any CallStore { videoCalls.calls }
    var live: LiveCallsLink { videoCalls.live }

    func register(on router: Router) {
        let byIP = RateLimitRule(limiter: publicLimit) { "ip:" + $0.remoteAddress }
        router.add(.get, "/api/calls/join/:code", auth: .none, rateLimit: byIP) { request, context in
            try joinInfo(request, context)
        }
        router.add(.post, "/api/calls/:id/guest", auth: .none, rateLimit: byIP) { request, context in
            try guestToken(request, context)
        }
        router.add(.get, "/api/calls/:id/status", auth: .bearerOrGuest) { request, context in try status(request, context) }
        router.add(.put, "/api/calls/:id/quality", auth: .bearerOrGuest) { request, context in
            try videoCalls.reportQuality(request, context)
        }
        router.add(.post, "/api/calls/:id/recording", auth: .bearer) { request, context in
            try recording(request, context)
        }
        router.add(.post, "/api/calls/:id/signal", auth: .bearerOrGuest) { request, context in
            try signal(request, context)
        }
    }

    /// `GET /api/calls/join/{code}` (no auth): `{call_id, code, title, company, host, status, lobby,
    /// guest_access}` — what a guest may see before joining. The code is accepted with or without dashes, in
    /// any case.
    func joinInfo(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        guard let text = request.parameters["code"], let code = RoomCode(parsing: text, allowAnyCode: false),
              let call = try calls.call(codeKey: code.key)
        else { throw APIError.notFound("no call has this code") }
        let company = try accounts.company(id: call.companyId)
        let host = try accounts.user(id: call.hostId)
        struct Company: Encodable {
            let id: String
            let name: String
            let logoUrl: String?
            private enum CodingKeys: String, CodingKey { case id, name, logoUrl }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(id, forKey: .id)
                try c.encode(name, forKey: .name)
                try c.encode(logoUrl, forKey: .logoUrl)
            }
        }
        struct Host: Encodable {
            let id: String
            let name: String
        }
        struct Info: Encodable {
            let callId: String
            let code: String
            let title: String
            let company: Company
            let host: Host
            let status: String
            let lobby: Bool
            let guestAccess: Bool
        }
        return try .encode(.ok, Info(
            callId: call.id, code: call.displayCode, title: call.title,
            company: Company(id: call.companyId, name: company?.name ?? "",
                             logoUrl: company?.logoPath.map { _ in "/api/companies/\(call.companyId)/logo" }),
            host: Host(id: call.hostId, name: host?.name ?? ""),
            status: call.status.rawValue, lobby: call.lobby, guestAccess: call.guestAccess))
    }

    private struct GuestBody: Decodable {
        let name: String?
    }

    /// `POST /api/calls/{id}/guest {name}` (no auth, when the call admits guests and is not over): a guest
    /// token for this one call, carrying the display name.
    func guestToken(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        guard let id = request.parameters["id"], let call = try calls.call(id: id) else {
            throw APIError.notFound("no such call")
        }
        let body = try request.decode(GuestBody.self)
        var validator = Validator()
        let name = validator.text(body.name, "name", max: 64)
        validator.require(!name.unicodeScalars.contains { $0.properties.generalCategory == .control }, "name",
                          "must not contain control characters")
        try validator.check()
        guard call.guestAccess else { throw APIError.forbidden("this call does not admit guests") }
        guard call.status != .ended, call.status != .cancelled else {
            throw APIError.conflict("the call is \(call.status.rawValue) (status: \(call.status.rawValue))")
        }
        let issued = Int(context.now.timeIntervalSince1970)
        let token = signer.sign(GuestClaims(call: call.id, gid: RandomID.make(prefix: "g", length: 16), name: name,
                                            iat: issued, exp: issued + guestTokenLifetime))
        struct Answer: Encodable {
            let guestToken: String
            let expiresIn: Int
            let callId: String
            let code: String
        }
        return try .encode(.created, Answer(guestToken: token, expiresIn: guestTokenLifetime, callId: call.id,
                                            code: call.displayCode))
    }

    /// `GET /api/calls/{id}/status`: the call status object and, while the room is live, who is in it (since
    /// when, their latest quality) and who waits in its lobby. Users of the company and the call's guests.
    func status(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try videoCalls.visibleCall(request.parameters["id"], context)
        let snapshot = try live.get().snapshot(callID: call.id)
        struct Answer: Encodable {
            let call: CallWire
            let live: Bool
            let participants: [LiveParticipantView]
            let lobby: [LiveParticipantView]
        }
        var status = call.status(participants: snapshot?.participants.count ?? 0)
        if let snapshot {
            status.status = snapshot.status
            status.startedAt = snapshot.startedAt
            status.locked = snapshot.locked
            status.recording = snapshot.recording
        }
        return try .encode(.ok, Answer(call: CallWire(status), live: snapshot != nil,
                                       participants: (snapshot?.participants ?? []).map(LiveParticipantView.init),
                                       lobby: (snapshot?.lobby ?? []).map(LiveParticipantView.init)))
    }

    private struct RecordingBody: Decodable {
        let action: String?
    }

    /// `POST /api/calls/{id}/recording {action: "start"|"stop"}`: the host, owners, admins, when the company
    /// allows recording. Only the state and who changed it: recording media is a media server's job.
    func recording(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try videoCalls.visibleCall(request.parameters["id"], context)
        let body = try request.decode(RecordingBody.self)
        var validator = Validator()
        let action: CallAction? = switch body.action {
        case "start": .recordStart
        case "stop": .recordStop
        default: nil
        }
        validator.require(action != nil, "action", body.action == nil ? "is required" : "must be start or stop")
        try validator.check()
        guard VideoCallRoutes.controls(call, context) else {
            throw APIError.forbidden("only the call's host and owners start or stop recording")
        }
        let company = try accounts.company(id: call.companyId)
        if action == .recordStart, !(company?.recordingAllowed ?? false) {
            throw APIError.forbidden("the company does not allow recording (settings.recording_allowed)")
        }
        let changed = try VideoCallRoutes.mapping {
            try calls.transitionCall(id: call.id, action!, actorID: context.caller.user.id, at: context.now,
                                     now: context.now)
        }
        try videoCalls.notifyLive(changed)
        struct Answer: Encodable {
            let callId: String
            let recording: Bool
            let changedBy: String?
            let changedAt: Date?
        }
        return try .encode(.ok, Answer(callId: changed.id, recording: changed.recording,
                                       changedBy: changed.recordingChangedBy, changedAt: changed.recordingChangedAt))
    }

    /// `POST /api/calls/{id}/signal {to, data}`: delivers `signal` to peer `to` of the live room, `from` the
    /// caller's own peer there (409 `not_in_room` when the caller has none). `data` is passed on unchanged.
    func signal(_ request: RestRequest, _ context: RouteContext) throws -> RestResponse {
        let call = try videoCalls.visibleCall(request.parameters["id"], context)
        if !request.body.isEmpty, !(request.headers[.contentType]?.lowercased().hasPrefix("application/json") ?? false) {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json")
        }
        guard request.body.count <= RestRequest.maxJSONBytes else { throw APIError.tooLarge("a JSON body may have at most 1 MiB") }
        // As `RestRequest.decode`: too deep is 413, and `data` goes out in a WebSocket text frame, so UTF-8 only.
        guard JSONShape.depth(of: request.body) <= 32 else { throw APIError.tooLarge("JSON is nested deeper than 32 levels") }
        guard String(bytes: request.body, encoding: .utf8) != nil else { throw APIError.badRequest("the body is not valid UTF-8") }
        let envelope: JSONEnvelope
        do {
            envelope = try request.body.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
                try JSONParser.parseEnvelope(buffer, rawKey: "data", maxDepth: 32)
            }
        } catch {
            throw APIError.badRequest(request.body.isEmpty ? "a JSON body is required" : "malformed JSON: \(error.message)")
        }
        var validator = Validator()
        var to = ""
        switch envelope.fields["to"] {
        case .string(let text)?: to = text
        case nil: validator.require(false, "to", "is required")
        default: validator.require(false, "to", "must be a string")
        }
        validator.require(envelope.rawField != nil, "data", "is required")
        try validator.check()
        let data = Array(request.body[envelope.rawField!])
        guard data.count <= maxSignalBytes else {
            throw APIError.tooLarge("'data' may have at most \(maxSignalBytes) bytes, as over the WebSocket")
        }
        let caller: LiveCaller = context.guest.map { .guest($0.guestID) } ?? .user(context.caller.user.id)
        do {
            try live.get().relaySignal(callID: call.id, caller: caller, to: to, data: data)
        } catch let error as ProtocolError {
            switch error.code {
            case .notInRoom: throw APIError(.conflict, "not_in_room", error.message)
            case .notFound: throw APIError.notFound(error.message)
            case .badRequest: throw APIError.badRequest(error.message)
            default: throw APIError(.serviceUnavailable, "unavailable", error.message)
            }
        }
        return .json(.accepted, #"{"delivered":true}"#)
    }
}

/// The call status object of PROTOCOL.md 1.2, as REST shows it.
struct CallWire: Encodable, Sendable {
    let status: CallStatus

    init(_ status: CallStatus) { self.status = status }

    private enum Keys: String, CodingKey {
        case id, code, status, startedAt = "started_at", endedAt = "ended_at", participants, recording, locked
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(status.id, forKey: .id)
        try c.encode(status.code, forKey: .code)
        try c.encode(status.status.rawValue, forKey: .status)
        try c.encode(status.startedAt, forKey: .startedAt)
        try c.encode(status.endedAt, forKey: .endedAt)
        try c.encode(status.participants, forKey: .participants)
        try c.encode(status.recording, forKey: .recording)
        try c.encode(status.locked, forKey: .locked)
    }
}
