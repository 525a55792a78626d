import Foundation
import GRDB
import Rooms

/// A stored video call (`video_calls`). `code` is the room code's key (9 characters, no dashes).
public struct VideoCall: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "video_calls"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var companyId: String
    public var hostId: String
    public var title: String
    public var code: String
    public var guestAccess: Bool
    public var lobby: Bool
    public var maxParticipants: Int
    public var status: CallState
    public var recording: Bool
    public var recordingChangedBy: String?
    public var recordingChangedAt: Date?
    public var locked: Bool
    public var scheduledAt: Date?
    public var createdAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    public var durationS: Int?
    public var updatedAt: Date

    /// The code as people type it: `XXX-XXX-XXX`.
    public var displayCode: String { RoomCode(parsing: code, allowAnyCode: false)?.display ?? code }

    /// The call status object of the wire (PROTOCOL.md 1.2) with `participants` live members.
    public func status(participants: Int) -> CallStatus {
        CallStatus(id: id, code: displayCode, status: status, startedAt: startedAt, endedAt: endedAt,
                   participants: participants, recording: recording, locked: locked)
    }

    /// Takes the status, times and flags of `live` (the result of a `CallLifecycle` step).
    mutating func take(_ live: CallStatus) {
        status = live.status
        startedAt = live.startedAt
        endedAt = live.endedAt
        recording = live.recording
        locked = live.locked
        if status == .ended || status == .cancelled { durationS = CallLifecycle.duration(of: live) }
    }
}

/// A call to create: its settings come from the company's unless given.
public struct NewCall: Sendable {
    public var companyID: String
    public var hostID: String
    public var title: String
    public var guestAccess: Bool
    public var lobby: Bool
    public var maxParticipants: Int
    public var scheduledAt: Date?

    public init(companyID: String, hostID: String, title: String, guestAccess: Bool, lobby: Bool, maxParticipants: Int,
                scheduledAt: Date?)
    {
        self.companyID = companyID
        self.hostID = hostID
        self.title = title
        self.guestAccess = guestAccess
        self.lobby = lobby
        self.maxParticipants = maxParticipants
        self.scheduledAt = scheduledAt
    }
}

/// Which calls a listing returns, newest first.
public struct CallFilter: Sendable {
    /// Only this company's calls; nil: every company (admins).
    public var companyID: String?
    public var status: CallState?
    public var hostID: String?
    /// Created at or after / before.
    public var createdFrom: Date?
    public var createdBefore: Date?
    /// A case-insensitive substring of the title or the code.
    public var search: String?

    public init(companyID: String? = nil, status: CallState? = nil, hostID: String? = nil, createdFrom: Date? = nil,
                createdBefore: Date? = nil, search: String? = nil)
    {
        self.companyID = companyID
        self.status = status
        self.hostID = hostID
        self.createdFrom = createdFrom
        self.createdBefore = createdBefore
        self.search = search
    }
}

/// Changes to a call's details; nil leaves a field as it is. `scheduledAt` `.some(nil)` clears it.
public struct CallChanges: Sendable {
    public var title: String?
    public var hostID: String?
    public var guestAccess: Bool?
    public var lobby: Bool?
    public var maxParticipants: Int?
    public var scheduledAt: Date??

    public init(title: String? = nil, hostID: String? = nil, guestAccess: Bool? = nil, lobby: Bool? = nil,
                maxParticipants: Int? = nil, scheduledAt: Date?? = nil)
    {
        self.title = title
        self.hostID = hostID
        self.guestAccess = guestAccess
        self.lobby = lobby
        self.maxParticipants = maxParticipants
        self.scheduledAt = scheduledAt
    }
}

/// One stay of one peer in a call (`call_participants`).
public struct CallParticipant: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "call_participants"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: String
    public var callId: String
    public var userId: String?
    public var peerId: String
    public var displayName: String
    public var role: String
    public var joinedAt: Date
    public var leftAt: Date?
    public var leaveReason: String?

    public init(callId: String, userId: String?, peerId: String, displayName: String, role: Role, joinedAt: Date) {
        id = UUID().uuidString.lowercased()
        self.callId = callId
        self.userId = userId
        self.peerId = peerId
        self.displayName = displayName
        self.role = role.rawValue
        self.joinedAt = joinedAt
    }
}

/// Quality aggregates of one call.
public struct CallQualitySummary: Equatable, Sendable {
    public var samples: Int
    public var average: QualityStats

    public init(samples: Int, average: QualityStats) {
        self.samples = samples
        self.average = average
    }
}

/// Why a call change was refused, in domain terms (besides `CallTransitionError`).
public enum CallStoreError: Error, Equatable {
    /// No such call.
    case notFound
    /// No unused room code was found (practically impossible: 32⁹ codes).
    case noFreeCode
}

/// Stored video calls: create, list, change, the status machine (through `CallLifecycle`, the same function
/// the live rooms use), participants' join and leave times, quality samples, kicks, and the reconciliation
/// after a restart. Synchronous: call from a worker thread.
public protocol CallStore: Sendable {
    /// Creates a `scheduled` call with a fresh, unused room code.
    func createCall(_ new: NewCall, actorID: String?, now: Date) throws -> VideoCall
    func call(id: String) throws -> VideoCall?
    /// The call with this room code key (upper case, no dashes).
    func call(codeKey: String) throws -> VideoCall?
    /// Calls matching `filter`, newest first.
    func calls(matching filter: CallFilter, offset: Int, limit: Int) throws -> Paged<VideoCall>
    /// Changes a call's details. `CallStoreError.notFound` if it does not exist.
    func updateCall(id: String, _ changes: CallChanges, actorID: String?, now: Date) throws -> VideoCall
    /// Applies `action` inside one transaction: reads the row, runs `CallLifecycle.apply` (throws
    /// `CallTransitionError` with the current status) and writes the result. `at` is the time the change
    /// counts from (the end time of an idle call); `now` stamps `updated_at`.
    func transitionCall(id: String, _ action: CallAction, actorID: String?, at: Date, now: Date) throws -> VideoCall
    /// A peer entered the call.
    func recordJoin(_ participant: CallParticipant) throws
    /// A peer left the call (`reason` as `peer-left.reason`).
    func recordLeave(callID: String, peerID: String, reason: String, at: Date) throws
    /// Every stay in a call, in join order.
    func participants(callID: String) throws -> [CallParticipant]
    /// Stores one quality sample of a call (and peer, if known).
    func addQualitySample(callID: String, peerID: String?, _ stats: QualityStats, at: Date) throws
    /// Sample count and averages of a call.
    func qualitySummary(callID: String) throws -> CallQualitySummary
    /// Credentials (`user:<id>`, `guest:<gid>`) kicked from a call: they cannot join it again.
    func bans(callID: String) throws -> Set<String>
    func ban(callID: String, credential: String, now: Date) throws
    /// Ends the calls left `active`, or `waiting` with someone having joined, when nobody can be connected
    /// (at start): `ended_at` is the last activity; open participant stays are closed then. Returns them.
    func reconcileCalls(now: Date) throws -> [VideoCall]
    /// The last activity of a call: its latest join, leave or quality sample, or its start.
    func lastActivity(callID: String) throws -> Date?
}

extension SQLiteStore: CallStore {
    public func createCall(_ new: NewCall, actorID: String?, now: Date) throws -> VideoCall {
        try pool.write { db in
            for _ in 0..<8 {
                let code = RoomCode.random().key
                if try VideoCall.filter(Column("code") == code).fetchCount(db) > 0 { continue }
                let call = VideoCall(id: UUID().uuidString.lowercased(), companyId: new.companyID, hostId: new.hostID,
                                     title: new.title, code: code, guestAccess: new.guestAccess, lobby: new.lobby,
                                     maxParticipants: new.maxParticipants, status: .scheduled, recording: false,
                                     recordingChangedBy: nil, recordingChangedAt: nil, locked: false,
                                     scheduledAt: new.scheduledAt, createdAt: now, startedAt: nil, endedAt: nil,
                                     durationS: nil, updatedAt: now)
                try call.insert(db)
                try Self.record(db, companyID: call.companyId, actorID: actorID, action: "call.create",
                                targetType: "call", targetID: call.id, data: ["code": call.code], now: now)
                return call
            }
            throw CallStoreError.noFreeCode
        }
    }

    public func call(id: String) throws -> VideoCall? {
        try pool.read { db in try VideoCall.fetchOne(db, key: id) }
    }

    public func call(codeKey: String) throws -> VideoCall? {
        try pool.read { db in try VideoCall.filter(Column("code") == codeKey).fetchOne(db) }
    }

    public func calls(matching filter: CallFilter, offset: Int, limit: Int) throws -> Paged<VideoCall> {
        try pool.read { db in
            var request = VideoCall.all()
            if let companyID = filter.companyID { request = request.filter(Column("company_id") == companyID) }
            if let status = filter.status { request = request.filter(Column("status") == status.rawValue) }
            if let hostID = filter.hostID { request = request.filter(Column("host_id") == hostID) }
            if let from = filter.createdFrom { request = request.filter(Column("created_at") >= from) }
            if let before = filter.createdBefore { request = request.filter(Column("created_at") < before) }
            if let search = filter.search, !search.isEmpty {
                let pattern = Self.likePattern(search)
                let code = Self.likePattern(search.uppercased().replacingOccurrences(of: "-", with: ""))
                request = request.filter(sql: "(title LIKE ? ESCAPE '\\' OR code LIKE ? ESCAPE '\\')",
                                         arguments: [pattern, code])
            }
            let total = try request.fetchCount(db)
            let items = try request.order(Column("created_at").desc, Column("id")).limit(limit, offset: offset).fetchAll(db)
            return Paged(items: items, total: total)
        }
    }

    public func updateCall(id: String, _ changes: CallChanges, actorID: String?, now: Date) throws -> VideoCall {
        try pool.write { db in
            guard var call = try VideoCall.fetchOne(db, key: id) else { throw CallStoreError.notFound }
            var changed: [String] = []
            func set<T: Equatable>(_ keyPath: WritableKeyPath<VideoCall, T>, _ value: T?, _ name: String) {
                if let value, call[keyPath: keyPath] != value {
                    call[keyPath: keyPath] = value
                    changed.append(name)
                }
            }
            set(\.title, changes.title, "title")
            set(\.hostId, changes.hostID, "host_id")
            set(\.guestAccess, changes.guestAccess, "guest_access")
            set(\.lobby, changes.lobby, "lobby")
            set(\.maxParticipants, changes.maxParticipants, "max_participants")
            if let scheduled = changes.scheduledAt, call.scheduledAt != scheduled {
                call.scheduledAt = scheduled
                changed.append("scheduled_at")
            }
            guard !changed.isEmpty else { return call }
            call.updatedAt = now
            try call.update(db)
            try Self.record(db, companyID: call.companyId, actorID: actorID, action: "call.update", targetType: "call",
                            targetID: call.id, data: ["fields": changed], now: now)
            return call
        }
    }

    public func transitionCall(id: String, _ action: CallAction, actorID: String?, at: Date, now: Date) throws
        -> VideoCall
    {
        try pool.write { db in
            guard var call = try VideoCall.fetchOne(db, key: id) else { throw CallStoreError.notFound }
            var live = call.status(participants: 0)
            try CallLifecycle.apply(action, to: &live, now: at)
            let before = call
            call.take(live)
            if action == .recordStart || action == .recordStop {
                call.recordingChangedBy = actorID
                call.recordingChangedAt = now
            }
            guard call != before else { return call }
            call.updatedAt = now
            try call.update(db)
            if action != .memberJoined, action != .becameActive {
                try Self.record(db, companyID: call.companyId, actorID: actorID, action: "call.\(action.rawValue)",
                                targetType: "call", targetID: call.id, data: ["status": call.status.rawValue], now: now)
            }
            if call.status == .ended || call.status == .cancelled {
                try db.execute(sql: """
                    UPDATE call_participants SET left_at = ?, leave_reason = 'ended'
                    WHERE call_id = ? AND left_at IS NULL
                    """, arguments: [call.endedAt ?? at, call.id])
            }
            return call
        }
    }

    public func recordJoin(_ participant: CallParticipant) throws {
        try pool.write { db in try participant.insert(db) }
    }

    public func recordLeave(callID: String, peerID: String, reason: String, at: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE call_participants SET left_at = ?, leave_reason = ?
                WHERE call_id = ? AND peer_id = ? AND left_at IS NULL
                """, arguments: [at, reason, callID, peerID])
        }
    }

    public func participants(callID: String) throws -> [CallParticipant] {
        try pool.read { db in
            try CallParticipant.filter(Column("call_id") == callID).order(Column("joined_at"), Column("id")).fetchAll(db)
        }
    }

    public func addQualitySample(callID: String, peerID: String?, _ stats: QualityStats, at: Date) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO quality_samples (call_id, peer_id, rtt_ms, jitter_ms, loss_pct, bitrate_kbps, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [callID, peerID, stats.rttMs, stats.jitterMs, stats.lossPct, stats.bitrateKbps, at])
        }
    }

    public func qualitySummary(callID: String) throws -> CallQualitySummary {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, AVG(rtt_ms) AS rtt, AVG(jitter_ms) AS jitter, AVG(loss_pct) AS loss,
                       AVG(bitrate_kbps) AS bitrate
                FROM quality_samples WHERE call_id = ?
                """, arguments: [callID])
            return CallQualitySummary(samples: row?["n"] ?? 0,
                                      average: QualityStats(rttMs: row?["rtt"], jitterMs: row?["jitter"],
                                                            lossPct: row?["loss"], bitrateKbps: row?["bitrate"]))
        }
    }

    public func bans(callID: String) throws -> Set<String> {
        try pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT credential FROM call_bans WHERE call_id = ?", arguments: [callID]))
        }
    }

    public func ban(callID: String, credential: String, now: Date) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO call_bans (call_id, credential, created_at) VALUES (?, ?, ?)",
                           arguments: [callID, credential, now])
        }
    }

    public func lastActivity(callID: String) throws -> Date? {
        try pool.read { db in try Self.lastActivity(db, callID) }
    }

    private static func lastActivity(_ db: Database, _ callID: String) throws -> Date? {
        try Date.fetchOne(db, sql: """
            SELECT MAX(t) FROM (
                SELECT MAX(joined_at) AS t FROM call_participants WHERE call_id = ?1
                UNION ALL SELECT MAX(left_at) FROM call_participants WHERE call_id = ?1
                UNION ALL SELECT MAX(recorded_at) FROM quality_samples WHERE call_id = ?1
                UNION ALL SELECT started_at FROM video_calls WHERE id = ?1
            )
            """, arguments: [callID])
    }

    public func reconcileCalls(now: Date) throws -> [VideoCall] {
        try pool.write { db in
            let stale = try VideoCall.filter(sql: """
                status = 'active' OR (status = 'waiting'
                    AND EXISTS (SELECT 1 FROM call_participants p WHERE p.call_id = video_calls.id))
                """).fetchAll(db)
            var ended: [VideoCall] = []
            for var call in stale {
                let at = min(try Self.lastActivity(db, call.id) ?? call.updatedAt, now)
                var live = call.status(participants: 0)
                try CallLifecycle.apply(.end, to: &live, now: max(at, call.startedAt ?? at))
                call.take(live)
                call.updatedAt = now
                try call.update(db)
                try db.execute(sql: """
                    UPDATE call_participants SET left_at = ?, leave_reason = 'ended'
                    WHERE call_id = ? AND left_at IS NULL
                    """, arguments: [call.endedAt, call.id])
                try Self.record(db, companyID: call.companyId, actorID: nil, action: "call.reconcile", targetType: "call",
                                targetID: call.id, data: ["ended_at": Timestamp.rfc3339(call.endedAt ?? now)], now: now)
                ended.append(call)
            }
            return ended
        }
    }
}
