import CLibwebsockets
import Foundation
import HTTPTypes
import Logging

/// The libwebsockets server: one context, one port, HTTP and WebSocket, on a libev loop that this object
/// owns. All of its methods except `wakeUp()` and `requestShutdown()` must be called on the service thread
/// (the thread inside `run()`), which is also the thread every `SignalHandler` callback arrives on.
public final class SignalServer: @unchecked Sendable {
    /// Bytes reserved in front of every outgoing payload (libwebsockets' `LWS_PRE`).
    public static let headroom = Int(SB_LWS_PRE)

    public let configuration: SignalConfiguration
    let logger: Logger
    weak var handler: (any SignalHandler)?

    // Service-thread state.
    var connections: [ConnectionID: WebSocketConnection] = [:]
    var httpExchanges: [ConnectionID: HTTPExchange] = [:]
    private var nextConnectionID: UInt64 = 0
    private(set) var shuttingDown = false
    private var lastIdleSweep = 0.0

    // libev / libwebsockets handles, valid inside `run()`.
    private var loop: OpaquePointer?
    private var context: OpaquePointer?
    private let asyncWatcher = UnsafeMutablePointer<ev_async>.allocate(capacity: 1)
    private let tickWatcher = UnsafeMutablePointer<ev_timer>.allocate(capacity: 1)
    private let drainWatcher = UnsafeMutablePointer<ev_timer>.allocate(capacity: 1)
    private let signalWatchers = UnsafeMutablePointer<ev_signal>.allocate(capacity: 2)
    private let contextSlot = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 1)
    private let loopStarted = LoopHandle()

    public init(configuration: SignalConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    deinit {
        asyncWatcher.deallocate()
        tickWatcher.deallocate()
        drainWatcher.deallocate()
        signalWatchers.deallocate()
        contextSlot.deallocate()
    }

    /// Sets the receiver of events. Call before `run()`.
    public func setHandler(_ handler: any SignalHandler) { self.handler = handler }

    // MARK: - Running

    /// Creates the loop and the context, serves until a shutdown has completed, then returns.
    public func run() throws {
        raiseOpenFileLimit()
        lws_set_log_level(Int32(LLL_ERR | LLL_WARN), nil)
        guard let loop = sb_ev_loop_new() else { throw SignalError.loopCreationFailed }
        self.loop = loop
        let me = Unmanaged.passUnretained(self).toOpaque()

        sb_ev_async_init(asyncWatcher, { _, watcher, _ in
            SignalServer.from(watcher!.pointee.data).onWake()
        })
        asyncWatcher.pointee.data = me
        ev_async_start(loop, asyncWatcher)

        // lws' libev plugin re-arms its timer on a running watcher (4.1.6), so its own timers (ping, hangup)
        // can fire late on an idle server; poking the service four times a second keeps them on time.
        sb_ev_timer_init(tickWatcher, { _, watcher, _ in
            SignalServer.from(watcher!.pointee.data).onTick()
        }, 0.25, 0.25)
        tickWatcher.pointee.data = me
        ev_timer_start(loop, tickWatcher)

        for (index, signalNumber) in [SIGTERM, SIGINT].enumerated() {
            let watcher = signalWatchers + index
            sb_ev_signal_init(watcher, { _, watcher, _ in
                SignalServer.from(watcher!.pointee.data).beginShutdown()
            }, signalNumber)
            watcher.pointee.data = me
            ev_signal_start(loop, watcher)
        }
        loopStarted.set(loop: loop, async: asyncWatcher)

        try createContext(loop: loop)
        ev_run(loop, 0)

        loopStarted.clear()
        ev_loop_destroy(loop)
        self.loop = nil
    }

    private func createContext(loop: OpaquePointer) throws {
        var info = lws_context_creation_info()
        info.port = Int32(configuration.port)
        info.options = UInt64(LWS_SERVER_OPTION_LIBEV) | UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8)
            | UInt64(LWS_SERVER_OPTION_DISABLE_IPV6)
        info.user = Unmanaged.passUnretained(self).toOpaque()
        contextSlot.pointee = nil
        info.pcontext = contextSlot

        // The heartbeat is ours (`checkHeartbeats`): it pings, closes at two silent heartbeats and names the
        // cause. lws' own validity policy stays on as a backstop well behind it.
        let heartbeat = max(1, configuration.heartbeatSeconds)
        var retry = lws_retry_bo_t()
        retry.secs_since_valid_ping = UInt16(clamping: heartbeat * 3)
        retry.secs_since_valid_hangup = UInt16(clamping: heartbeat * 3 + 10)
        let retryPointer = UnsafeMutablePointer<lws_retry_bo_t>.allocate(capacity: 1)
        retryPointer.initialize(to: retry)
        info.retry_and_idle_policy = UnsafePointer(retryPointer)

        let protocols = UnsafeMutablePointer<lws_protocols>.allocate(capacity: 2)
        protocols.initialize(repeating: lws_protocols(), count: 2)
        protocols[0].name = UnsafePointer(strdup("switchboard"))
        protocols[0].callback = switchboardCallback
        protocols[0].per_session_data_size = MemoryLayout<UInt64>.size
        protocols[0].rx_buffer_size = 4096
        protocols[0].tx_packet_size = 256 * 1024
        info.protocols = UnsafePointer(protocols)

        let foreignLoops = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 1)
        foreignLoops.pointee = UnsafeMutableRawPointer(loop)
        info.foreign_loops = foreignLoops
        let host = strdup(configuration.host)
        info.iface = UnsafePointer(host)

        guard let context = lws_create_context(&info) else {
            throw SignalError.contextCreationFailed(host: configuration.host, port: configuration.port)
        }
        self.context = context
        guard let vhost = lws_get_vhost_by_name(context, "default") else {
            throw SignalError.contextCreationFailed(host: configuration.host, port: configuration.port)
        }
        handler?.serverStarted(port: Int(lws_get_vhost_listen_port(vhost)))
        // protocols, retry policy, host and foreign loop array must outlive the context: they live as long
        // as the process does (one context per run).
    }

    /// Wakes the service thread; the handler's `wake()` runs there. Safe from any thread.
    public func wakeUp() {
        loopStarted.wake()
    }

    /// Starts a graceful shutdown from any thread (as SIGTERM would).
    public func requestShutdown() {
        loopStarted.requestShutdown()
    }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> SignalServer {
        Unmanaged<SignalServer>.fromOpaque(pointer!).takeUnretainedValue()
    }

    fileprivate func onWake() {
        if loopStarted.takeShutdownRequest() { beginShutdown() }
        handler?.wake()
    }

    fileprivate func onTick() {
        if let context { lws_cancel_service(context) }
        let now = Self.monotonicNow()
        if now - lastIdleSweep >= 0.5 {
            lastIdleSweep = now
            checkHeartbeats(now: now)
        }
        handler?.tick(now: now)
    }

    /// Pings connections silent for a heartbeat and closes those silent (not even a pong) for two.
    /// The server sends its own pings, with a payload: lws 4.1.6 reports no pong to an empty ping, and
    /// clients echo the payload, so every pong reaches `LWS_CALLBACK_RECEIVE_PONG`.
    private func checkHeartbeats(now: Double) {
        let heartbeat = Double(max(1, configuration.heartbeatSeconds))
        for connection in connections.values where connection.closeCause == nil {
            let silence = now - connection.lastHeard
            if silence > 2 * heartbeat {
                connection.closeCause = .idle
                connection.removeAllOutgoing()
                lws_set_timeout(connection.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
                handler?.connectionClosing(connection.id, cause: .idle)
            } else if silence >= heartbeat, now - connection.lastPingSent >= heartbeat {
                connection.lastPingSent = now
                connection.pingDue = true
                lws_callback_on_writable(connection.wsi)
            }
        }
    }

    // MARK: - Shutdown

    fileprivate func beginShutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("shutting down", metadata: ["connections": "\(connections.count)"])
        handler?.shutdownRequested()
        for id in Array(connections.keys) {
            close(id, code: .goingAway, reason: "server shutting down", discardQueued: true)
        }
        sb_ev_timer_init(drainWatcher, { _, watcher, _ in
            SignalServer.from(watcher!.pointee.data).finishShutdown()
        }, connections.isEmpty ? 0.01 : configuration.shutdownGraceSeconds, 0)
        drainWatcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        ev_timer_start(loop, drainWatcher)
    }

    /// Called when the last WebSocket closed during a shutdown: finish at once instead of waiting.
    func connectionsDrained() {
        guard shuttingDown, let loop else { return }
        ev_timer_stop(loop, drainWatcher)
        sb_ev_timer_init(drainWatcher, { _, watcher, _ in
            SignalServer.from(watcher!.pointee.data).finishShutdown()
        }, 0.01, 0)
        drainWatcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        ev_timer_start(loop, drainWatcher)
    }

    private func finishShutdown() {
        guard let loop else { return }
        if let context {
            self.context = nil
            lws_context_destroy(context)
        }
        ev_timer_stop(loop, tickWatcher)
        ev_async_stop(loop, asyncWatcher)
        for index in 0..<2 { ev_signal_stop(loop, signalWatchers + index) }
        ev_timer_stop(loop, drainWatcher)
        sb_ev_break_all(loop)
        sb_ev_run_nowait(loop)
    }

    // MARK: - Connections

    func makeConnectionID() -> ConnectionID {
        nextConnectionID += 1
        return ConnectionID(nextConnectionID)
    }

    /// Queues a frame for a WebSocket. Droppable frames are discarded when the queue is full; a full queue
    /// for a frame that may not be dropped closes the connection with 1008 (slow consumer).
    @discardableResult
    public func send(_ frame: OutgoingFrame, to id: ConnectionID) -> SendOutcome {
        guard let connection = connections[id], connection.closeCause == nil else { return .gone }
        let bytes = frame.payloadCount
        if connection.outgoing.count >= configuration.maxQueueMessages
            || connection.queuedBytes + bytes > configuration.maxQueueBytes
        {
            if frame.droppable { return .dropped }
            // Make room by dropping what may be dropped before giving up on the consumer.
            connection.dropDroppable()
            if connection.outgoing.count >= configuration.maxQueueMessages
                || connection.queuedBytes + bytes > configuration.maxQueueBytes
            {
                logger.warning("slow consumer closed", metadata: ["connection": "\(id)",
                                                                  "queued_bytes": "\(connection.queuedBytes)"])
                close(id, code: .policyViolation, reason: "slow consumer: outgoing queue full", discardQueued: true)
                return .overflow
            }
        }
        let wasEmpty = connection.outgoing.isEmpty
        connection.enqueue(frame)
        if wasEmpty { lws_callback_on_writable(connection.wsi) }
        return .queued
    }

    /// Closes a WebSocket with `code`, after its queued frames unless `discardQueued`.
    public func close(_ id: ConnectionID, code: CloseCode, reason: String, discardQueued: Bool = false) {
        guard let connection = connections[id], connection.closeCause == nil else { return }
        connection.closeCause = .server(code)
        connection.closeReason = String(reason.utf8.prefix(120)) ?? "closing"
        if discardQueued { connection.removeAllOutgoing() }
        lws_callback_on_writable(connection.wsi)
        // A client that never becomes writable is cut off after a few seconds.
        lws_set_timeout(connection.wsi, PENDING_TIMEOUT_USER_OK, 3)
        handler?.connectionClosing(id, cause: .server(code))
    }

    /// Number of open WebSockets.
    public var connectionCount: Int { connections.count }

    /// Bytes waiting in all outgoing queues.
    public var queuedBytes: Int { connections.values.reduce(0) { $0 + $1.queuedBytes } }

    // MARK: - HTTP

    /// Answers an HTTP request received through `SignalHandler.httpRequest`.
    public func respond(_ id: ConnectionID, with response: HTTPResponseMessage) {
        guard let exchange = httpExchanges[id], exchange.response == nil else { return }
        exchange.response = response
        lws_callback_on_writable(exchange.wsi)
    }

    static func monotonicNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    private func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = min(limit.rlim_max, 1 << 20)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Failures to start the transport.
public enum SignalError: Error, CustomStringConvertible {
    case loopCreationFailed
    case contextCreationFailed(host: String, port: Int)

    public var description: String {
        switch self {
        case .loopCreationFailed: "could not create the libev loop"
        case .contextCreationFailed(let host, let port):
            "could not listen on \(host):\(port) (in use, or not an address of this machine?)"
        }
    }
}

/// The loop handles other threads may use to wake the service thread, behind a lock.
final class LoopHandle: @unchecked Sendable {
    private let lock = NSLock()
    private var loop: OpaquePointer?
    private var async: UnsafeMutablePointer<ev_async>?
    private var shutdownRequested = false

    func set(loop: OpaquePointer, async: UnsafeMutablePointer<ev_async>) {
        lock.withLock { self.loop = loop; self.async = async }
    }

    func clear() { lock.withLock { loop = nil; async = nil } }

    func wake() {
        lock.withLock {
            if let loop, let async { ev_async_send(loop, async) }
        }
    }

    func requestShutdown() {
        lock.withLock { shutdownRequested = true }
        wake()
    }

    func takeShutdownRequest() -> Bool {
        lock.withLock {
            defer { shutdownRequested = false }
            return shutdownRequested
        }
    }
}
