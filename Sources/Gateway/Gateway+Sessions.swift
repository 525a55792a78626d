import Foundation
import Logging
import Presence
import RestBridge
import Rooms
import Signal
import Store

/// Sessions beyond one connection: their end, resume on a new connection (PROTOCOL.md 1.5), the periodic
/// re-check of the credentials behind them, and presence subscriptions.
extension Gateway {
    /// A session is over: it leaves its room (the others learn why) and its user loses a device.
    func end(_ session: Session, reason: LeaveReason) {
        sessions.removeValue(forKey: session.id)
        sessionByResumeToken.removeValue(forKey: session.resumeToken)
        if let connection = session.connection, sessionOnConnection[connection] == session.id {
            sessionOnConnection.removeValue(forKey: connection)
        }
        let deliveries = rooms.leave(session.id, reason: reason)
        let presenceUpdates = presence.disconnected(session.id)
        if !shuttingDown {
            deliver(deliveries)
            deliver(presenceUpdates)
        }
        flushEffects()
    }

    /// Sessions away for longer than the grace period end; their peers leave with `timeout`.
    func endAwaySessions(now: Double) {
        for session in sessions.values {
            if let until = session.awayUntil, until <= now { end(session, reason: .timeout) }
        }
    }

    /// `hello` with a resume token: the session it names moves to this connection (the one `current` is
    /// on), with its peer id, room and user; a fresh `welcome` (a new resume token), then every message it
    /// missed, in order. `current`, a fresh session of this connection, is dropped.
    func resume(_ token: String, on current: Session, ref: String?) throws(ProtocolError) {
        guard let sessionID = sessionByResumeToken[token], let resumed = sessions[sessionID] else {
            throw ProtocolError(.notFound, "unknown or expired resume token")
        }
        guard resumed !== current else {
            sendWelcome(current)
            return
        }
        guard rooms.room(of: current.id) == nil, !current.joinPending, let connection = current.connection else {
            throw ProtocolError(.conflict, "this connection is in a room already; resume on a fresh connection")
        }
        if let old = resumed.connection {
            // The client came back before its old connection was noticed gone: that one is closed quietly.
            sessionOnConnection.removeValue(forKey: old)
            server.close(old, code: .normal, reason: "resumed on another connection", discardQueued: true)
        }
        sessions.removeValue(forKey: current.id)
        sessionByResumeToken.removeValue(forKey: current.resumeToken)
        deliver(presence.disconnected(current.id))
        sessionByResumeToken.removeValue(forKey: resumed.resumeToken)
        resumed.resumeToken = RandomID.make(prefix: "r", length: 24)
        sessionByResumeToken[resumed.resumeToken] = resumed.id
        resumed.connection = connection
        resumed.awayUntil = nil
        sessionOnConnection[connection] = resumed.id
        logger.debug("resumed", metadata: ["connection": "\(connection)", "missed": "\(resumed.pending.count)"])
        sendWelcome(resumed)
        let missed = resumed.pending
        resumed.pending.removeAll()
        for frame in missed { server.send(frame, to: connection) }
        metrics.sessionsResumed += 1
    }

    /// Sends the sessions, API keys and users of authenticated WebSockets for a check, every
    /// `credentialCheckSeconds`.
    func checkCredentials(now: Double) {
        guard !credentialCheckInFlight, now - lastCredentialCheck >= configuration.credentialCheckSeconds else { return }
        lastCredentialCheck = now
        let sessionIDs = Set(sessions.values.compactMap(\.authSessionID))
        let keyIDs = Set(sessions.values.compactMap(\.apiKeyID))
        guard !sessionIDs.isEmpty || !keyIDs.isEmpty else { return }
        let userIDs = Set(sessions.values.compactMap(\.user?.id))
        credentialCheckInFlight = true
        rest.checkCredentials(sessionIDs: Array(sessionIDs), apiKeyIDs: Array(keyIDs), userIDs: Array(userIDs)) {
            [inbox, server] result in
            inbox.post(.credentialsChecked(result))
            server.wakeUp()
        }
    }

    /// Closes (1008) the WebSockets whose login session or API key is no longer good (they leave their
    /// rooms), and updates whether the others' users may host.
    func applyCredentialCheck(_ result: Result<CredentialCheck, any Error>) {
        guard case .success(let valid) = result else {
            if case .failure(let error) = result { logger.error("credentials not checked", metadata: ["error": "\(error)"]) }
            return
        }
        for session in sessions.values {
            if let user = session.user, valid.asked.users.contains(user.id) {
                session.licensed = valid.licensedUsers.contains(user.id)
            }
            let revoked = session.authSessionID.map { valid.asked.sessions.contains($0) && !valid.sessions.contains($0) }
                ?? session.apiKeyID.map { valid.asked.apiKeys.contains($0) && !valid.apiKeys.contains($0) } ?? false
            guard revoked else { continue }
            logger.info("closing a connection whose session was revoked", metadata: ["session": "\(session.id)"])
            send(.error(ProtocolError(.unauthorized, "the session behind this connection ended (logout, revocation or password change); sign in again")),
                 to: session)
            close(session, code: .policyViolation, reason: "session revoked")
        }
    }

    /// A `subscribe` came back from the directory: follow, then the snapshot.
    func finishSubscribe(_ sessionID: SessionID, ref: String?, _ result: Result<PresenceScope, APIError>) {
        guard let session = sessions[sessionID] else { return }
        switch result {
        case .success(.users(let ids)):
            guard presence.subscriptionCount(sessionID) + ids.count <= configuration.maxPresenceSubscriptions else {
                refuse(session, ProtocolError(.badRequest, "a connection may follow at most \(configuration.maxPresenceSubscriptions) users", ref: ref))
                return
            }
            send(.presenceSnapshot(presence.subscribe(sessionID, users: ids), ref: ref), to: session)
        case .success(.company(let companyID, let members)):
            send(.presenceSnapshot(presence.subscribe(sessionID, company: companyID, members: members), ref: ref),
                 to: session)
        case .failure(let error):
            let code: ErrorCode = error.code == "not_found" ? .notFound : .internal
            refuse(session, ProtocolError(code, code == .notFound ? error.message : "the subscription could not be made",
                                          ref: ref))
        }
    }
}
