import Rooms

/// Counters of the real-time side, owned by the service thread (no locks), rendered in the Prometheus text
/// format at `GET /metrics`.
struct GatewayMetrics {
    var messagesReceived = 0
    var signalsRelayed = 0
    var chatMessagesStored = 0
    var qualitySamplesKept = 0
    var callActions = 0
    var sessionsResumed = 0
    var errorsSent: [ErrorCode: Int] = [:]
    var connectionsOpened = 0
    var httpResponses: [Int: Int] = [:]  // by status class (2, 3, 4, 5)

    /// Samples of gauges taken when rendering.
    struct Gauges {
        let connections: Int
        let rooms: Int
        let roomMembers: Int
        let callRooms: Int
        let lobbyWaiting: Int
        let queuedBytes: Int
    }

    func render(_ gauges: Gauges) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples { out += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        metric("switchboard_websocket_connections", "gauge", "Open WebSocket connections.", [("", gauges.connections)])
        metric("switchboard_websocket_connections_opened_total", "counter", "WebSocket connections accepted.",
               [("", connectionsOpened)])
        metric("switchboard_rooms", "gauge", "Live rooms.", [("", gauges.rooms)])
        metric("switchboard_room_members", "gauge", "Sessions in rooms.", [("", gauges.roomMembers)])
        metric("switchboard_call_rooms", "gauge", "Live rooms of stored video calls.", [("", gauges.callRooms)])
        metric("switchboard_lobby_waiting", "gauge", "Guests waiting in call lobbies.", [("", gauges.lobbyWaiting)])
        metric("switchboard_quality_samples_total", "counter", "Quality samples kept (WebSocket).",
               [("", qualitySamplesKept)])
        metric("switchboard_call_actions_total", "counter", "Host call actions stored (WebSocket).",
               [("", callActions)])
        metric("switchboard_sessions_resumed_total", "counter", "Sessions resumed on a new connection.",
               [("", sessionsResumed)])
        metric("switchboard_outgoing_queue_bytes", "gauge", "Bytes waiting in all outgoing queues.",
               [("", gauges.queuedBytes)])
        metric("switchboard_ws_messages_received_total", "counter", "WebSocket messages received.",
               [("", messagesReceived)])
        metric("switchboard_signals_relayed_total", "counter", "signal messages relayed.", [("", signalsRelayed)])
        metric("switchboard_chat_messages_total", "counter", "Chat messages stored and broadcast.",
               [("", chatMessagesStored)])
        metric("switchboard_ws_errors_total", "counter", "error replies sent, by code.",
               ErrorCode.allCases.map { ("{code=\"\($0.rawValue)\"}", errorsSent[$0] ?? 0) })
        metric("switchboard_http_responses_total", "counter", "HTTP responses, by status class.",
               [2, 3, 4, 5].map { ("{status=\"\($0)xx\"}", httpResponses[$0] ?? 0) })
        return out
    }
}
