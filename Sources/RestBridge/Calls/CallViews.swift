import Foundation
import Rooms
import Store

/// A video call as the API shows it; every field is present, `null` included.
struct CallView: Encodable, Sendable {
    let call: VideoCall
    /// Where a guest joins: the call page with the code filled in.
    let joinURL: String

    init(_ call: VideoCall, origin: String) {
        self.call = call
        joinURL = origin + "/?room=" + call.displayCode
    }

    enum CodingKeys: String, CodingKey {
        case id, companyId = "company_id", hostId = "host_id", title, code, joinUrl = "join_url", status
        case guestAccess = "guest_access", lobby, maxParticipants = "max_participants", locked, recording
        case recordingChangedBy = "recording_changed_by", recordingChangedAt = "recording_changed_at"
        case scheduledAt = "scheduled_at", createdAt = "created_at", startedAt = "started_at", endedAt = "ended_at"
        case durationS = "duration_s", updatedAt = "updated_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(call.id, forKey: .id)
        try c.encode(call.companyId, forKey: .companyId)
        try c.encode(call.hostId, forKey: .hostId)
        try c.encode(call.title, forKey: .title)
        try c.encode(call.displayCode, forKey: .code)
        try c.encode(joinURL, forKey: .joinUrl)
        try c.encode(call.status.rawValue, forKey: .status)
        try c.encode(call.guestAccess, forKey: .guestAccess)
        try c.encode(call.lobby, forKey: .lobby)
        try c.encode(call.maxParticipants, forKey: .maxParticipants)
        try c.encode(call.locked, forKey: .locked)
        try c.encode(call.recording, forKey: .recording)
        try c.encode(call.recordingChangedBy, forKey: .recordingChangedBy)
        try c.encode(call.recordingChangedAt, forKey: .recordingChangedAt)
        try c.encode(call.scheduledAt, forKey: .scheduledAt)
        try c.encode(call.createdAt, forKey: .createdAt)
        try c.encode(call.startedAt, forKey: .startedAt)
        try c.encode(call.endedAt, forKey: .endedAt)
        try c.encode(call.durationS, forKey: .durationS)
        try c.encode(call.updatedAt, forKey: .updatedAt)
    }
}

/// A call with its participants' stays and quality averages (`GET /api/videocalls/{id}`).
struct CallDetailView: Encodable, Sendable {
    let base: CallView
    let participants: [ParticipantView]
    let quality: QualityView

    func encode(to encoder: any Encoder) throws {
        try base.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(participants, forKey: .participants)
        try c.encode(quality, forKey: .quality)
    }

    private enum Keys: String, CodingKey { case participants, quality }
}

/// One stay of one peer in a call.
struct ParticipantView: Encodable, Sendable {
    let p: CallParticipant

    private enum Keys: String, CodingKey {
        case peer, name, role, userId = "user_id", joinedAt = "joined_at", leftAt = "left_at"
        case leaveReason = "leave_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(p.peerId, forKey: .peer)
        try c.encode(p.displayName, forKey: .name)
        try c.encode(p.role, forKey: .role)
        try c.encode(p.userId, forKey: .userId)
        try c.encode(p.joinedAt, forKey: .joinedAt)
        try c.encode(p.leftAt, forKey: .leftAt)
        try c.encode(p.leaveReason, forKey: .leaveReason)
    }
}

/// Quality numbers: a sample, or the averages of many (`samples` then counts them). Absent fields are null.
struct QualityView: Encodable, Sendable {
    let samples: Int?
    let stats: QualityStats

    private enum Keys: String, CodingKey {
        case samples, rttMs = "rtt_ms", jitterMs = "jitter_ms", lossPct = "loss_pct", bitrateKbps = "bitrate_kbps"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        if let samples { try c.encode(samples, forKey: .samples) }
        try c.encode(stats.rttMs, forKey: .rttMs)
        try c.encode(stats.jitterMs, forKey: .jitterMs)
        try c.encode(stats.lossPct, forKey: .lossPct)
        try c.encode(stats.bitrateKbps, forKey: .bitrateKbps)
    }
}

/// A live participant (`GET /api/calls/{id}/status`, the realtime dashboard).
struct LiveParticipantView: Encodable, Sendable {
    let p: LiveParticipant

    private enum Keys: String, CodingKey {
        case peer, name, role, userId = "user_id", joinedAt = "joined_at", quality, qualityAt = "quality_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(p.peer, forKey: .peer)
        try c.encode(p.name, forKey: .name)
        try c.encode(p.role, forKey: .role)
        try c.encode(p.userID, forKey: .userId)
        try c.encode(p.joinedAt, forKey: .joinedAt)
        try c.encode(p.quality.map { QualityView(samples: nil, stats: $0) }, forKey: .quality)
        try c.encode(p.qualityAt, forKey: .qualityAt)
    }
}

/// `{"stats": {...}}` of a quality report, decoded leniently for numbers so ranges are checked by name.
struct QualityBody: Decodable {
    struct Stats: Decodable {
        let rttMs: Double?
        let jitterMs: Double?
        let lossPct: Double?
        let bitrateKbps: Double?
    }

    let stats: Stats?
    let peer: String?

    /// The validated sample, or 422 with the out-of-range fields under `stats.`.
    func validated() throws(APIError) -> QualityStats {
        guard let stats else { throw APIError.validation(["stats": ["is required"]]) }
        let sample = QualityStats(rttMs: stats.rttMs, jitterMs: stats.jitterMs, lossPct: stats.lossPct,
                                  bitrateKbps: stats.bitrateKbps)
        let problems = sample.problems
        guard problems.isEmpty else {
            throw APIError.validation(Dictionary(uniqueKeysWithValues: problems.map { key, message in
                (key == "stats" ? "stats" : "stats." + key, [message])
            }))
        }
        return sample
    }
}

/// Dates in queries and bodies: RFC 3339 times (`RFC3339Parser`, 1970–9999, rounded to the millisecond the
/// store keeps), or a plain `YYYY-MM-DD` (its midnight UTC).
enum APIDate {
    static func parse(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let date = RFC3339Parser.parse(isDay(trimmed) ? trimmed + "T00:00:00Z" : trimmed),
              date >= Date(timeIntervalSince1970: 0), date < RFC3339Parser.end
        else { return nil }
        return Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    static func isDay(_ text: String) -> Bool { text.trimmingCharacters(in: .whitespaces).utf8.count == 10 }
}
