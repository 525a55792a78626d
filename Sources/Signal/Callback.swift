import CLibwebsockets
import Foundation
import HTTPTypes

/// The one C callback of the `switchboard` protocol. It finds the server through the context's user
/// pointer and forwards to a method; lws' per-session memory holds only the connection id.
func switchboardCallback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?,
                         _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
    guard let wsi, let context = lws_get_context(wsi), let serverPointer = lws_context_user(context) else {
        return lws_callback_http_dummy(wsi, reason, user, input, length)
    }
    let server = SignalServer.from(serverPointer)
    let session = user?.assumingMemoryBound(to: UInt64.self)
    return server.callback(wsi: wsi, reason: reason, session: session, input: input, length: length)
}

/// Characters left as they are in a query name or value.
private let queryComponentAllowed = CharacterSet.urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+#%"))

extension SignalServer {
    func callback(wsi: OpaquePointer, reason: lws_callback_reasons, session: UnsafeMutablePointer<UInt64>?,
                  input: UnsafeMutableRawPointer?, length: Int) -> Int32
    {
        switch reason {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            // Only /ws upgrades, and none while shutting down: anything else is dropped.
            return !shuttingDown && Self.header(wsi, WSI_TOKEN_GET_URI) == "/ws" ? 0 : 1

        case LWS_CALLBACK_ESTABLISHED:
            guard let session else { return -1 }
            let id = makeConnectionID()
            session.pointee = id.rawValue
            connections[id] = WebSocketConnection(id: id, wsi: wsi, now: Self.monotonicNow())
            let query = Self.queryString(wsi) ?? ""
            handler?.connectionOpened(id, query: query, remoteAddress: Self.peerAddress(wsi))
            return 0

        case LWS_CALLBACK_RECEIVE:
            guard let connection = connection(session) else { return 0 }
            return receive(connection, wsi: wsi, input: input, length: length)

        case LWS_CALLBACK_RECEIVE_PONG:
            connection(session)?.lastHeard = Self.monotonicNow()
            return 0

        case LWS_CALLBACK_SERVER_WRITEABLE:
            guard let connection = connection(session) else { return 0 }
            return writeWebSocket(connection)

        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            connection(session)?.peerInitiatedClose = true
            return 0

        case LWS_CALLBACK_CLOSED:
            guard let session, session.pointee != 0 else { return 0 }
            let id = ConnectionID(session.pointee)
            session.pointee = 0
            guard let connection = connections.removeValue(forKey: id) else { return 0 }
            handler?.connectionClosed(id, cause: connection.closeCause ?? (connection.peerInitiatedClose ? .peer : .lost))
            if connections.isEmpty { connectionsDrained() }
            return 0

        case LWS_CALLBACK_HTTP:
            return beginHTTP(wsi: wsi, session: session)

        case LWS_CALLBACK_HTTP_BODY:
            guard let exchange = exchange(session) else { return 0 }
            if exchange.body.count + length > configuration.maxHTTPBodyBytes {
                exchange.bodyTooLarge = true
                exchange.body.removeAll()
            } else if let input, !exchange.bodyTooLarge {
                exchange.body.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            }
            return 0

        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            guard let session, let exchange = exchange(session) else { return 0 }
            dispatchHTTP(ConnectionID(session.pointee), exchange)
            return 0

        case LWS_CALLBACK_HTTP_WRITEABLE:
            guard let exchange = exchange(session) else { return 0 }
            return writeHTTP(exchange, session: session!)

        case LWS_CALLBACK_CLOSED_HTTP, LWS_CALLBACK_HTTP_DROP_PROTOCOL:
            if let session, session.pointee != 0 {
                httpExchanges.removeValue(forKey: ConnectionID(session.pointee))
                if reason == LWS_CALLBACK_CLOSED_HTTP { session.pointee = 0 }
            }
            return lws_callback_http_dummy(wsi, reason, session, nil, 0)

        default:
            return lws_callback_http_dummy(wsi, reason, session, input, length)
        }
    }

    private func connection(_ session: UnsafeMutablePointer<UInt64>?) -> WebSocketConnection? {
        guard let session, session.pointee != 0 else { return nil }
        return connections[ConnectionID(session.pointee)]
    }

    private func exchange(_ session: UnsafeMutablePointer<UInt64>?) -> HTTPExchange? {
        guard let session, session.pointee != 0 else { return nil }
        return httpExchanges[ConnectionID(session.pointee)]
    }

    // MARK: - WebSocket

    private func receive(_ connection: WebSocketConnection, wsi: OpaquePointer, input: UnsafeMutableRawPointer?,
                         length: Int) -> Int32
    {
        connection.lastHeard = Self.monotonicNow()
        guard connection.closeCause == nil else { return 0 }
        let first = lws_is_first_fragment(wsi) != 0
        let final = lws_is_final_fragment(wsi) != 0
        if first {
            connection.inbound.removeAll(keepingCapacity: connection.inbound.capacity <= 8192)
            connection.inboundBytes = 0
            connection.inboundOversized = false
            connection.inboundIsBinary = lws_frame_is_binary(wsi) != 0
        }
        let remaining = Int(lws_remaining_packet_payload(wsi))
        let limit = configuration.maxMessageBytes
        if connection.inboundBytes + length + remaining > limit * configuration.closeOverFactor {
            connection.closeCause = .server(.messageTooLarge)
            let reason = Array("message too large".utf8)
            reason.withUnsafeBufferPointer { buffer in
                lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, UnsafeMutablePointer(mutating: buffer.baseAddress),
                                 buffer.count)
            }
            return -1
        }
        let chunk = UnsafeBufferPointer(start: input?.assumingMemoryBound(to: UInt8.self), count: length)
        if first && final && !connection.inboundIsBinary && length <= limit {
            // The common case: a whole message in one piece, delivered without a copy.
            handler?.connectionReceived(connection.id, text: chunk)
            return 0
        }
        if connection.inboundBytes + length > limit || connection.inboundIsBinary {
            connection.inboundOversized = connection.inboundOversized || !connection.inboundIsBinary
            connection.inbound.removeAll()
        } else {
            connection.inbound.append(contentsOf: chunk)
        }
        connection.inboundBytes += length
        guard final else { return 0 }
        if connection.inboundIsBinary {
            handler?.connectionRejected(connection.id, .binary)
        } else if connection.inboundOversized {
            handler?.connectionRejected(connection.id, .tooLarge(bytes: connection.inboundBytes))
        } else {
            connection.inbound.withUnsafeBufferPointer { handler?.connectionReceived(connection.id, text: $0) }
        }
        connection.inbound.removeAll(keepingCapacity: connection.inbound.capacity <= 8192)
        connection.inboundBytes = 0
        return 0
    }

    private func writeWebSocket(_ connection: WebSocketConnection) -> Int32 {
        var writes = 0
        if connection.pingDue && connection.closeCause == nil {
            connection.pingDue = false
            var ping = [UInt8](repeating: 0, count: Self.headroom + 8)
            // ASCII payload: lws validates pong payloads as UTF-8 (LWS_SERVER_OPTION_VALIDATE_UTF8).
            let stamp = String(UInt32(truncatingIfNeeded: UInt64(connection.lastPingSent * 1000)), radix: 16)
            let payload = Array(String(repeating: "0", count: 8 - stamp.utf8.count).utf8) + Array(stamp.utf8)
            ping.replaceSubrange(Self.headroom..., with: payload)
            let written = ping.withUnsafeMutableBufferPointer { buffer in
                lws_write(connection.wsi, buffer.baseAddress! + Self.headroom, 8, LWS_WRITE_PING)
            }
            if written < 0 { return -1 }
            writes += 1
        }
        while connection.hasOutgoing {
            if writes > 0 && (writes >= 16 || lws_send_pipe_choked(connection.wsi) != 0) { break }
            guard let frame = connection.dequeue() else { break }
            let written = frame.storage.withUnsafeMutableBytes { buffer in
                lws_write(connection.wsi, buffer.baseAddress!.advanced(by: Self.headroom).assumingMemoryBound(to: UInt8.self),
                          buffer.count - Self.headroom, LWS_WRITE_TEXT)
            }
            if written < 0 { return -1 }
            writes += 1
        }
        if connection.hasOutgoing {
            lws_callback_on_writable(connection.wsi)
        } else if case .server(let code) = connection.closeCause {
            if writes > 0 {
                lws_callback_on_writable(connection.wsi)  // the close frame goes in a writable of its own
                return 0
            }
            var reason = Array(connection.closeReason.utf8)
            reason.withUnsafeMutableBufferPointer { buffer in
                lws_close_reason(connection.wsi, lws_close_status(UInt32(code.rawValue)), buffer.baseAddress, buffer.count)
            }
            return -1
        }
        return 0
    }

    // MARK: - HTTP

    private func beginHTTP(wsi: OpaquePointer, session: UnsafeMutablePointer<UInt64>?) -> Int32 {
        guard let session else { return -1 }
        if session.pointee == 0 { session.pointee = makeConnectionID().rawValue }
        let id = ConnectionID(session.pointee)
        let exchange = HTTPExchange(wsi: wsi)
        httpExchanges[id] = exchange

        var uriPointer: UnsafeMutablePointer<CChar>?
        var uriLength: Int32 = 0
        let methodIndex = lws_http_get_uri_and_method(wsi, &uriPointer, &uriLength)
        let methods: [HTTPRequest.Method] = [.get, .post, .options, .put, .patch, .delete, .connect, .head]
        guard methodIndex >= 0, Int(methodIndex) < methods.count, let uriPointer else {
            exchange.response = HTTPResponseMessage(status: .badRequest)
            lws_callback_on_writable(wsi)
            return 0
        }
        let path = String(decoding: UnsafeRawBufferPointer(start: uriPointer, count: Int(uriLength)), as: UTF8.self)
        let query = Self.queryString(wsi)
        var fields = HTTPFields()
        let copied: [(HTTPField.Name, lws_token_indexes)] = [
            (.contentType, WSI_TOKEN_HTTP_CONTENT_TYPE), (.contentLength, WSI_TOKEN_HTTP_CONTENT_LENGTH),
            (.authorization, WSI_TOKEN_HTTP_AUTHORIZATION), (.origin, WSI_TOKEN_ORIGIN),
            (.accept, WSI_TOKEN_HTTP_ACCEPT), (.userAgent, WSI_TOKEN_HTTP_USER_AGENT),
        ]
        for (name, token) in copied {
            if let value = Self.header(wsi, token) { fields[name] = value }
        }
        for name in configuration.customHeaders {
            if let value = Self.customHeader(wsi, name), let fieldName = HTTPField.Name(name) { fields[fieldName] = value }
        }
        let host = Self.header(wsi, WSI_TOKEN_HOST)
        exchange.head = HTTPRequest(method: methods[Int(methodIndex)], scheme: "http", authority: host,
                                    path: query.map { path + "?" + $0 } ?? path, headerFields: fields)
        let declaredLength = Int(fields[.contentLength] ?? "0") ?? 0
        if declaredLength > configuration.maxHTTPBodyBytes {
            exchange.bodyTooLarge = true
        }
        if declaredLength > 0 && !exchange.bodyTooLarge {
            return 0  // the body follows in HTTP_BODY callbacks
        }
        dispatchHTTP(id, exchange)
        return 0
    }

    private func dispatchHTTP(_ id: ConnectionID, _ exchange: HTTPExchange) {
        guard let head = exchange.head else { return }
        if exchange.bodyTooLarge {
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[.connection] = "close"
            respond(id, with: HTTPResponseMessage(
                status: .contentTooLarge, headerFields: fields,
                body: Array(#"{"error":{"code":"too_large","message":"request body is too large"}}"#.utf8)))
            return
        }
        handler?.httpRequest(id, HTTPRequestMessage(head: head, body: exchange.body,
                                                    remoteAddress: Self.peerAddress(exchange.wsi)))
    }

    private func writeHTTP(_ exchange: HTTPExchange, session: UnsafeMutablePointer<UInt64>) -> Int32 {
        guard let response = exchange.response else { return 0 }
        let wsi = exchange.wsi
        let isHead = exchange.head?.method == .head
        let body = isHead ? [] : response.body
        if !exchange.headersSent {
            exchange.headersSent = true
            var buffer = [UInt8](repeating: 0, count: Self.headroom + 8192)
            let failed = buffer.withUnsafeMutableBufferPointer { raw -> Bool in
                let start = raw.baseAddress! + Self.headroom
                let end = raw.baseAddress! + raw.count - 1
                var cursor: UnsafeMutablePointer<UInt8>? = start
                let contentType = response.headerFields[.contentType]
                let status = UInt32(response.status.code)
                let added: Int32 = contentType.map { type in
                    type.withCString { lws_add_http_common_headers(wsi, status, $0, UInt64(body.count), &cursor, end) }
                } ?? lws_add_http_common_headers(wsi, status, nil, UInt64(body.count), &cursor, end)
                if added != 0 { return true }
                for field in response.headerFields where field.name != .contentType && field.name != .contentLength {
                    let name = Array((field.name.canonicalName + ":").utf8) + [0]
                    let value = Array(field.value.utf8)
                    if lws_add_http_header_by_name(wsi, name, value, Int32(value.count), &cursor, end) != 0 { return true }
                }
                return lws_finalize_write_http_header(wsi, start, &cursor, end) != 0
            }
            if failed { return -1 }
            if !body.isEmpty {
                lws_callback_on_writable(wsi)
                return 0
            }
        } else {
            let chunk = min(body.count - exchange.bodyOffset, 32 * 1024)
            let final = exchange.bodyOffset + chunk >= body.count
            var buffer = [UInt8](repeating: 0, count: Self.headroom + chunk)
            buffer.replaceSubrange(Self.headroom..., with: body[exchange.bodyOffset..<exchange.bodyOffset + chunk])
            let written = buffer.withUnsafeMutableBufferPointer { raw in
                lws_write(wsi, raw.baseAddress! + Self.headroom, chunk, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP)
            }
            if written < 0 { return -1 }
            exchange.bodyOffset += chunk
            if !final {
                lws_callback_on_writable(wsi)
                return 0
            }
        }
        // The response is complete.
        httpExchanges.removeValue(forKey: ConnectionID(session.pointee))
        if response.headerFields[.connection] == "close" || shuttingDown { return -1 }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }

    // MARK: - Helpers

    static func header(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String? {
        let length = Int(lws_hdr_total_length(wsi, token))
        guard length > 0, length < 16 * 1024 else { return nil }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_copy(wsi, &buffer, Int32(buffer.count), token) >= 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A header lws keeps by its name (`name` in lower case, without the colon).
    static func customHeader(_ wsi: OpaquePointer, _ name: String) -> String? {
        let key = Array((name + ":").utf8CString)
        let keyLength = Int32(key.count - 1)
        let length = Int(lws_hdr_custom_length(wsi, key, keyLength))
        guard length >= 0, length < 8 * 1024 else { return nil }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_custom_copy(wsi, &buffer, Int32(buffer.count), key, keyLength) >= 0 else { return nil }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The query string as `a=1&b=2`, percent-encoded again. lws keeps each argument as a URL-decoded
    /// fragment (and `lws_hdr_copy` would join them with ','), so each name and value is re-encoded to keep
    /// a decoded '&' or '=' from splitting it.
    static func queryString(_ wsi: OpaquePointer) -> String? {
        var parts: [String] = []
        var buffer = [CChar](repeating: 0, count: 4096)
        var index: Int32 = 0
        while true {
            let length = lws_hdr_copy_fragment(wsi, &buffer, Int32(buffer.count), WSI_TOKEN_HTTP_URI_ARGS, index)
            guard length >= 0 else { break }
            let argument = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let pair = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let encoded = pair.map { $0.addingPercentEncoding(withAllowedCharacters: queryComponentAllowed) ?? "" }
            parts.append(encoded.joined(separator: "="))
            index += 1
        }
        return parts.isEmpty ? nil : parts.joined(separator: "&")
    }

    static func peerAddress(_ wsi: OpaquePointer) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        guard lws_get_peer_simple(wsi, &buffer, buffer.count) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
