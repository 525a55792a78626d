import ArgumentParser
import Foundation
import Gateway
import Logging
import RestBridge
import Store

/// `switchboard`: the signaling and presence server. `serve` is the default command, so `switchboard --port …`
/// serves; `switchboard admin create …` adds an admin account.
@main
struct Switchboard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Real-time signaling and presence server (WebSocket + REST on one port).",
        subcommands: [Serve.self, AdminCommand.self], defaultSubcommand: Serve.self)
}

/// `switchboard [serve]`: runs the server. Flags win over `SWITCHBOARD_*` environment variables.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve WebSocket and REST on one port (the default command).")

    private static let environment = ProcessInfo.processInfo.environment
    private static func env(_ name: String) -> String? { environment["SWITCHBOARD_" + name] }
    private static func envInt(_ name: String, _ fallback: Int) -> Int { env(name).flatMap { Int($0) } ?? fallback }
    private static func envFlag(_ name: String) -> Bool {
        ["1", "true", "yes", "on"].contains(env(name)?.lowercased() ?? "")
    }

    @Option(help: "Address to listen on (SWITCHBOARD_HOST).")
    var host: String = env("HOST") ?? "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one (SWITCHBOARD_PORT).")
    var port: Int = envInt("PORT", 8080)

    @Option(help: "Data directory for the SQLite store (SWITCHBOARD_DATA).")
    var data: String = env("DATA") ?? "./data"

    @Flag(help: "Let any room code be joined; a room lives while it has members (SWITCHBOARD_OPEN_ROOMS).")
    var openRooms = envFlag("OPEN_ROOMS")

    @Option(help: "Seconds of silence before a ping; two of them close the connection (SWITCHBOARD_HEARTBEAT).")
    var heartbeat: Int = envInt("HEARTBEAT", 10)

    @Option(help: "Seconds a call's room may stay empty before the call ends (SWITCHBOARD_CALL_GRACE).")
    var callGrace: Int = envInt("CALL_GRACE", 60)

    @Option(help: "Origin of the call page in join URLs, e.g. https://calls.example.com (SWITCHBOARD_PUBLIC_URL); default: http:// and the request's Host.")
    var publicURL: String? = env("PUBLIC_URL")

    @Option(help: "Requests per minute per client IP on the public call routes: join info, guest tokens (SWITCHBOARD_PUBLIC_CALL_RATE_LIMIT).")
    var publicCallRateLimit: Int = envInt("PUBLIC_CALL_RATE_LIMIT", 60)

    @Option(help: "Seconds between checks that open WebSockets' login sessions are still active (SWITCHBOARD_SESSION_CHECK).")
    var sessionCheck: Int = envInt("SESSION_CHECK", 30)

    @Option(help: "Seconds a timed-out connection's session waits to be resumed; 0: no resume (SWITCHBOARD_RESUME_GRACE).")
    var resumeGrace: Int = envInt("RESUME_GRACE", 20)

    @Option(help: "Seconds a user stays online with no device connected (SWITCHBOARD_PRESENCE_GRACE).")
    var presenceGrace: Int = envInt("PRESENCE_GRACE", 30)

    @Option(help: "Seconds a guest token works (SWITCHBOARD_GUEST_TOKEN_LIFETIME).")
    var guestTokenLifetime: Int = envInt("GUEST_TOKEN_LIFETIME", 7200)

    @Option(help: "Largest WebSocket message in bytes (SWITCHBOARD_MAX_MESSAGE_BYTES).")
    var maxMessageBytes: Int = envInt("MAX_MESSAGE_BYTES", 64 * 1024)

    @Option(help: "Most peers in one room (SWITCHBOARD_MAX_ROOM_PEERS).")
    var maxRoomPeers: Int = envInt("MAX_ROOM_PEERS", 50)

    @Option(help: "Longest display name in characters (SWITCHBOARD_MAX_NAME_LENGTH).")
    var maxNameLength: Int = envInt("MAX_NAME_LENGTH", 64)

    @Option(help: "Longest chat message in characters (SWITCHBOARD_MAX_CHAT_LENGTH).")
    var maxChatLength: Int = envInt("MAX_CHAT_LENGTH", 4000)

    @Option(help: "Messages per second one connection may send; bursts of twice that (SWITCHBOARD_RATE_LIMIT).")
    var rateLimit: Int = envInt("RATE_LIMIT", 100)

    @Option(help: "Bytes queued for one slow connection before it is closed (SWITCHBOARD_MAX_QUEUE_BYTES).")
    var maxQueueBytes: Int = envInt("MAX_QUEUE_BYTES", 1 << 20)

    @Option(help: "JWT signing secret, at least 32 bytes; default: a key generated into DATA/jwt.key (SWITCHBOARD_JWT_SECRET).")
    var jwtSecret: String? = env("JWT_SECRET")

    @Option(help: "Requests per minute per client IP on the unauthenticated auth routes (SWITCHBOARD_AUTH_RATE_LIMIT).")
    var authRateLimit: Int = envInt("AUTH_RATE_LIMIT", 5)

    @Option(help: "Authenticated REST reads per minute per user (SWITCHBOARD_USER_READ_RATE_LIMIT).")
    var userReadRateLimit: Int = envInt("USER_READ_RATE_LIMIT", 1200)

    @Option(help: "Authenticated REST writes per minute per user (SWITCHBOARD_USER_WRITE_RATE_LIMIT).")
    var userWriteRateLimit: Int = envInt("USER_WRITE_RATE_LIMIT", 300)

    @Option(help: "Comma-separated origins allowed by CORS, or * (SWITCHBOARD_CORS_ORIGINS); default none.")
    var corsOrigins: String = env("CORS_ORIGINS") ?? ""

    @Option(help: "Log level: trace, debug, info, notice, warning, error (SWITCHBOARD_LOG_LEVEL).")
    var logLevel: String = env("LOG_LEVEL") ?? "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard (1...3600).contains(heartbeat) else { throw ValidationError("--heartbeat must be 1-3600 seconds") }
        guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
        guard maxRoomPeers >= 2 else { throw ValidationError("--max-room-peers must be at least 2") }
        guard maxNameLength >= 1, maxChatLength >= 1 else { throw ValidationError("lengths must be positive") }
        guard rateLimit >= 1 else { throw ValidationError("--rate-limit must be at least 1") }
        guard maxQueueBytes >= maxMessageBytes else {
            throw ValidationError("--max-queue-bytes must be at least --max-message-bytes")
        }
        guard userReadRateLimit >= 1, userWriteRateLimit >= 1 else {
            throw ValidationError("--user-read-rate-limit and --user-write-rate-limit must be at least 1")
        }
        guard authRateLimit >= 1 else { throw ValidationError("--auth-rate-limit must be at least 1") }
        if let publicURL, URL(string: publicURL)?.scheme.map({ ["http", "https"].contains($0) }) != true {
            throw ValidationError("--public-url must be an http:// or https:// URL")
        }
        guard publicCallRateLimit >= 1 else { throw ValidationError("--public-call-rate-limit must be at least 1") }
        guard (0...3600).contains(resumeGrace) else { throw ValidationError("--resume-grace must be 0-3600 seconds") }
        guard (0...3600).contains(presenceGrace) else { throw ValidationError("--presence-grace must be 0-3600 seconds") }
        guard (1...3600).contains(sessionCheck) else { throw ValidationError("--session-check must be 1-3600 seconds") }
        guard (1...86400).contains(callGrace) else { throw ValidationError("--call-grace must be 1-86400 seconds") }
        guard (60...86400 * 7).contains(guestTokenLifetime) else {
            throw ValidationError("--guest-token-lifetime must be 60-604800 seconds")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchboard")

        var configuration = GatewayConfiguration()
        configuration.signal.host = host
        configuration.signal.port = port
        configuration.signal.heartbeatSeconds = heartbeat
        configuration.signal.maxMessageBytes = maxMessageBytes
        configuration.signal.maxQueueBytes = maxQueueBytes
        configuration.limits.maxPeersPerRoom = maxRoomPeers
        configuration.limits.maxNameLength = maxNameLength
        configuration.limits.maxChatLength = maxChatLength
        configuration.openRooms = openRooms
        configuration.messagesPerSecond = Double(rateLimit)
        configuration.callIdleGrace = Double(callGrace)
        configuration.credentialCheckSeconds = Double(sessionCheck)
        configuration.presenceGrace = Double(presenceGrace)
        configuration.resumeGrace = Double(resumeGrace)

        logger.info("starting", metadata: [
            "host": "\(host)", "port": "\(port)", "data": "\(data)", "open_rooms": "\(openRooms)",
            "heartbeat": "\(heartbeat)", "call_grace": "\(callGrace)", "max_message_bytes": "\(maxMessageBytes)",
            "max_room_peers": "\(maxRoomPeers)", "rate_limit": "\(rateLimit)", "max_queue_bytes": "\(maxQueueBytes)",
            "auth_rate_limit": "\(authRateLimit)", "jwt_secret": "\(jwtSecret == nil ? "data/jwt.key" : "given")",
        ])
        let dataDirectory = URL(fileURLWithPath: data, isDirectory: true)
        let store = try SQLiteStore(directory: dataDirectory)
        var restConfiguration = RestConfiguration()
        restConfiguration.authRateLimit = authRateLimit
        restConfiguration.guestTokenLifetime = guestTokenLifetime
        restConfiguration.publicCallRateLimit = publicCallRateLimit
        restConfiguration.maxSignalBytes = maxMessageBytes
        restConfiguration.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        restConfiguration.userReadRateLimit = userReadRateLimit
        restConfiguration.userWriteRateLimit = userWriteRateLimit
        restConfiguration.corsOrigins = corsOrigins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        restConfiguration.uploadsDirectory = dataDirectory.appendingPathComponent("uploads", isDirectory: true)
        // Image uploads (up to 2 MiB) are larger than JSON bodies: the REST bridge limits each kind itself.
        configuration.signal.maxHTTPBodyBytes = restConfiguration.maxRequestBodyBytes
        let rest = RestBridge(accounts: store, idempotency: store, directory: store, calls: store,
                              licenses: store, reviews: store, dashboards: store,
                              signer: JWTSigner(key: try SigningKey.load(secret: jwtSecret, dataDirectory: dataDirectory)),
                              configuration: restConfiguration, logger: logger, isReady: { store.ping() })
        let reconciled = try store.reconcileCalls(now: Date())
        if !reconciled.isEmpty {
            logger.notice("calls left open by the last run ended", metadata: ["calls": "\(reconciled.map(\.id))"])
        }
        let gateway = Gateway(configuration: configuration, store: store, calls: store, accounts: store, rest: rest,
                              logger: logger)
        try gateway.run()
    }
}
