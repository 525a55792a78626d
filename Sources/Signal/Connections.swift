import CLibwebsockets
import HTTPTypes

/// Transport state of one WebSocket: the outgoing queue, the message being assembled, close state.
final class WebSocketConnection {
    let id: ConnectionID
    let wsi: OpaquePointer
    /// Outgoing frames; `head` indexes the next one to write (a ring would save little at these sizes).
    private(set) var outgoing: [OutgoingFrame] = []
    private var head = 0
    private(set) var queuedBytes = 0
    var lastHeard: Double
    var lastPingSent = 0.0
    var pingDue = false
    var closeCause: CloseCause?
    var closeReason = ""
    var peerInitiatedClose = false

    // Inbound message assembly.
    var inbound: [UInt8] = []
    var inboundBytes = 0
    var inboundIsBinary = false
    var inboundOversized = false

    init(id: ConnectionID, wsi: OpaquePointer, now: Double) {
        self.id = id
        self.wsi = wsi
        self.lastHeard = now
    }

    var hasOutgoing: Bool { head < outgoing.count }

    func enqueue(_ frame: OutgoingFrame) {
        outgoing.append(frame)
        queuedBytes += frame.payloadCount
    }

    func dequeue() -> OutgoingFrame? {
        guard head < outgoing.count else { return nil }
        let frame = outgoing[head]
        head += 1
        queuedBytes -= frame.payloadCount
        if head == outgoing.count {
            outgoing.removeAll(keepingCapacity: outgoing.capacity <= 64)
            head = 0
        } else if head >= 256 {
            outgoing.removeFirst(head)
            head = 0
        }
        return frame
    }

    /// Drops every droppable frame still queued.
    func dropDroppable() {
        let kept = outgoing[head...].filter { !$0.droppable }
        outgoing = Array(kept)
        head = 0
        queuedBytes = kept.reduce(0) { $0 + $1.payloadCount }
    }

    func removeAllOutgoing() {
        outgoing.removeAll()
        head = 0
        queuedBytes = 0
    }
}

/// One HTTP request being received or answered on a connection.
final class HTTPExchange {
    let wsi: OpaquePointer
    var head: HTTPRequest?
    var body: [UInt8] = []
    var bodyTooLarge = false
    var response: HTTPResponseMessage?
    var headersSent = false
    var bodyOffset = 0

    init(wsi: OpaquePointer) { self.wsi = wsi }
}
