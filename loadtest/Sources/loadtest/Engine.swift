import CSys
import Glibc

// MARK: - Target

struct Target {
    let url: String
    let host: String
    let port: UInt16
    let path: String
    let address: sockaddr_in

    /// ws://HOST:PORT/PATH with a numeric IPv4 host or "localhost" (no DNS: this tool talks to loopback).
    init(url: String) {
        self.url = url
        guard url.hasPrefix("ws://") else { fail("only ws:// URLs are supported: \(url)") }
        let rest = url.dropFirst(5)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[rest.startIndex..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var h = String(hostPort)
        var p: UInt16 = 80
        if let colon = hostPort.lastIndex(of: ":") {
            h = String(hostPort[hostPort.startIndex..<colon])
            guard let pp = UInt16(hostPort[hostPort.index(after: colon)...]) else { fail("bad port in \(url)") }
            p = pp
        }
        host = h
        port = p
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = p.bigEndian
        let numeric = h == "localhost" ? "127.0.0.1" : h
        guard inet_pton(AF_INET, numeric, &addr.sin_addr) == 1 else {
            fail("host must be a numeric IPv4 address or localhost: \(h)")
        }
        address = addr
    }
}

// MARK: - Connection

enum ConnState {
    case idle, connecting, handshaking, open, closed
}

final class Conn {
    let idx: Int
    let room: [UInt8]
    var fd: Int32 = -1
    var state = ConnState.idle
    var epollOut = false
    var dirty = false

    // handshake
    var handshake: [UInt8] = []
    var expectedAccept = ""

    // output buffer: bytes [outStart, outEnd) are waiting for write()
    var out: UnsafeMutablePointer<UInt8>? = nil
    var outCap = 0
    var outStart = 0
    var outEnd = 0

    // input: bytes of an incomplete frame carried over to the next read
    var pend: UnsafeMutablePointer<UInt8>? = nil
    var pendCap = 0
    var pendLen = 0

    // fragmented message reassembly
    var frag: [UInt8] = []
    var fragOpcode: UInt8 = 0

    // protocol
    var welcomed = false
    var joined = false
    var ready = false // joined and knows its partner's peer id
    var failed = false
    var peerID: [UInt8] = []
    var partnerID: [UInt8] = []
    var signalPrefix: [UInt8] = [] // {"type":"signal","to":"<partner>","data":{"t":

    init(idx: Int, room: [UInt8]) {
        self.idx = idx
        self.room = room
    }

    deinit {
        out?.deallocate()
        pend?.deallocate()
    }
}

// MARK: - Engine

/// One thread, one epoll set, non-blocking sockets, a minimal RFC 6455 client.
final class Engine {
    let target: Target
    var conns: [Conn] = []
    let epfd: Int32
    let maxEvents: Int32 = 1024
    let events: UnsafeMutablePointer<epoll_event>
    let scratchCap = 256 * 1024
    let scratch: UnsafeMutablePointer<UInt8>
    var rng = FastRandom()
    var dirtyList: [Int] = []
    let maxBacklogBytes = 8 * 1024 * 1024

    // setup
    var toOpen = 0
    var opened = 0
    var connectBatch = 200
    var inflight = 0 // connections started and not yet joined (or failed)
    var joinedCount = 0
    var readyCount = 0
    var openCount = 0

    // errors
    var connectErrors = 0
    var handshakeErrors = 0
    var disconnects = 0 // connections the server closed or reset outside of our own shutdown
    var serverCloseCodes: [Int: Int] = [:]
    var serverErrors: [String: Int] = [:]
    var protocolErrors = 0
    var sendSkipped = 0
    var backlogDrops = 0
    var peerLeft = 0
    var pingsAnswered = 0
    var foreignSignals = 0
    var shuttingDown = false

    // sending schedule (open loop)
    var sending = false
    var senders: [Int] = []
    var scheduleStart: Int64 = 0
    var intervalNs: Double = 1
    var seq: Int64 = 0
    var nextDue: Int64 = .max
    var sendUntil: Int64 = .max
    var dataSize = 200
    var tickNs: Int64 = 1_000_000
    var lateThresholdNs: Int64 = 2_000_000
    var lateSends = 0
    var maxLagNs: Int64 = 0
    var maxBurst = 1000

    // diagnostics: the longest stretch between two waits, and the worst wake-up beyond the timeout asked for
    var lastWake: Int64 = monotonicNs()
    var maxBusyNs: Int64 = 0
    var maxOversleepNs: Int64 = 0

    // measurement window (by send timestamp for latency/delivery, by receive time for throughput)
    var windowStart: Int64 = .max
    var windowEnd: Int64 = .max
    var sentTotal = 0
    var sentInWindow = 0
    var deliveredInWindow = 0
    var receivedDuringWindow = 0
    var receivedTotal = 0
    var histogram = Histogram()

    init(target: Target) {
        self.target = target
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { fail("epoll_create1: \(String(cString: strerror(errno)))") }
        events = .allocate(capacity: Int(maxEvents))
        scratch = .allocate(capacity: scratchCap)
    }

    // MARK: Event loop

    /// Services sockets (and the send schedule) until `deadline` or until `stop` returns true.
    func run(until deadline: Int64, stop: () -> Bool = { false }) {
        var ts = timespec()
        while true {
            let now = monotonicNs()
            if now >= deadline || stop() { return }
            if sending { pumpSends(now) }
            if opened < toOpen { openMore() }
            flushDirty()
            var wait = min(deadline - now, 50_000_000)
            if sending, nextDue != .max {
                // wake at the first tick boundary at or after the next due send: messages due within one
                // tick go out together (fewer wake-ups for the generator and the server)
                var wake = nextDue
                if tickNs > 1 {
                    let offset = nextDue - scheduleStart
                    wake = scheduleStart + (offset + tickNs - 1) / tickNs * tickNs
                }
                wait = min(wait, max(0, wake - monotonicNs()))
            }
            ts.tv_sec = Int(wait / 1_000_000_000)
            ts.tv_nsec = Int(wait % 1_000_000_000)
            let before = monotonicNs()
            if before - lastWake > maxBusyNs { maxBusyNs = before - lastWake }
            let n = epoll_pwait2(epfd, events, maxEvents, &ts, nil)
            lastWake = monotonicNs()
            let over = lastWake - before - wait
            if over > maxOversleepNs { maxOversleepNs = over }
            if n < 0 {
                if errno == EINTR { continue }
                fail("epoll_pwait2: \(String(cString: strerror(errno)))")
            }
            for i in 0..<Int(n) {
                let ev = events[i]
                let c = conns[Int(ev.data.u64)]
                handleEvent(c, ev.events)
            }
        }
    }

    private func handleEvent(_ c: Conn, _ ev: UInt32) {
        switch c.state {
        case .connecting:
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 || ev & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                connectErrors += 1
                closeConn(c, expected: true)
                return
            }
            startHandshake(c)
        case .handshaking, .open:
            if ev & EPOLLOUT.rawValue != 0 { flush(c) }
            if c.state == .closed { return }
            if ev & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { readable(c) }
        case .idle, .closed:
            break
        }
    }

    private func epollSet(_ c: Conn, op: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = UInt64(c.idx)
        if epoll_ctl(epfd, op, c.fd, &ev) != 0 {
            warn("epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Connecting

    /// Prepares `count` connections in rooms of two (connections 2k and 2k+1 share room k).
    func prepare(count: Int, batch: Int) {
        connectBatch = max(1, batch)
        let alphabet = Array("23456789ABCDEFGHJKLMNPQRSTUVWXYZ".utf8)
        var room: [UInt8] = []
        for i in 0..<count {
            if i % 2 == 0 {
                room = []
                for j in 0..<9 {
                    if j == 3 || j == 6 { room.append(UInt8(ascii: "-")) }
                    room.append(alphabet[Int(rng.next() % UInt64(alphabet.count))])
                }
            }
            conns.append(Conn(idx: i, room: room))
        }
        toOpen = count
    }

    private func openMore() {
        while opened < toOpen && inflight < connectBatch {
            let c = conns[opened]
            opened += 1
            openConn(c)
        }
    }

    private func openConn(_ c: Conn) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            connectErrors += 1
            c.state = .closed
            c.failed = true
            if errno == EMFILE || errno == ENFILE { warn("out of file descriptors at connection \(c.idx)") }
            return
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        c.fd = fd
        inflight += 1
        var addr = target.address
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if r == 0 {
            c.state = .connecting
            epollSet(c, op: EPOLL_CTL_ADD, events: EPOLLIN.rawValue)
            startHandshake(c)
        } else if errno == EINPROGRESS {
            c.state = .connecting
            c.epollOut = true
            epollSet(c, op: EPOLL_CTL_ADD, events: EPOLLOUT.rawValue)
        } else {
            connectErrors += 1
            if connectErrors <= 3 { warn("connect: \(String(cString: strerror(errno)))") }
            close(fd)
            c.fd = -1
            c.state = .closed
            c.failed = true
            inflight -= 1
        }
    }

    private func startHandshake(_ c: Conn) {
        c.state = .handshaking
        var keyBytes = [UInt8](repeating: 0, count: 16)
        for i in stride(from: 0, to: 16, by: 8) {
            var r = rng.next()
            for j in 0..<8 { keyBytes[i + j] = UInt8(truncatingIfNeeded: r); r >>= 8 }
        }
        let key = base64(keyBytes)
        c.expectedAccept = websocketAccept(forKey: key)
        let request = "GET \(target.path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
            + "User-Agent: switchboard-loadtest\r\n\r\n"
        var bytes = Array(request.utf8)
        bytes.withUnsafeMutableBufferPointer { b in
            let p = reserveOut(c, b.count)
            p.update(from: b.baseAddress!, count: b.count)
            c.outEnd += b.count
        }
        flush(c)
        if c.state != .closed && !c.epollOut {
            epollSet(c, op: EPOLL_CTL_MOD, events: EPOLLIN.rawValue)
        }
    }

    // MARK: Output

    /// Room for `n` more bytes at the end of the output buffer.
    @inline(__always)
    private func reserveOut(_ c: Conn, _ n: Int) -> UnsafeMutablePointer<UInt8> {
        if c.outEnd + n > c.outCap {
            let live = c.outEnd - c.outStart
            if c.outStart > 0 && live + n <= c.outCap, let out = c.out {
                out.update(from: out + c.outStart, count: live)
            } else {
                var cap = max(c.outCap, 1024)
                while cap < live + n { cap *= 2 }
                let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
                if let out = c.out {
                    nb.update(from: out + c.outStart, count: live)
                    out.deallocate()
                }
                c.out = nb
                c.outCap = cap
            }
            c.outStart = 0
            c.outEnd = live
        }
        return c.out! + c.outEnd
    }

    @inline(__always)
    private func markDirty(_ c: Conn) {
        if !c.dirty && !c.epollOut {
            c.dirty = true
            dirtyList.append(c.idx)
        }
    }

    private func flushDirty() {
        if dirtyList.isEmpty { return }
        for i in dirtyList {
            let c = conns[i]
            c.dirty = false
            if c.state != .closed { flush(c) }
        }
        dirtyList.removeAll(keepingCapacity: true)
    }

    private func flush(_ c: Conn) {
        while c.outStart < c.outEnd {
            let n = write(c.fd, c.out! + c.outStart, c.outEnd - c.outStart)
            if n > 0 {
                c.outStart += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if !c.epollOut {
                    c.epollOut = true
                    epollSet(c, op: EPOLL_CTL_MOD, events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
                }
                return
            }
            closeConn(c, expected: false)
            return
        }
        c.outStart = 0
        c.outEnd = 0
        if c.epollOut {
            c.epollOut = false
            epollSet(c, op: EPOLL_CTL_MOD, events: EPOLLIN.rawValue)
        }
    }

    /// Writes a client frame header (FIN set, masked) for `length` payload bytes; returns the mask key.
    @inline(__always)
    private func writeHeader(_ c: Conn, opcode: UInt8, length: Int) -> UInt32 {
        let hlen = length < 126 ? 6 : (length < 65536 ? 8 : 14)
        let p = reserveOut(c, hlen + length)
        p[0] = 0x80 | opcode
        var i = 2
        if length < 126 {
            p[1] = 0x80 | UInt8(length)
        } else if length < 65536 {
            p[1] = 0x80 | 126
            p[2] = UInt8(length >> 8)
            p[3] = UInt8(length & 0xFF)
            i = 4
        } else {
            p[1] = 0x80 | 127
            for j in 0..<8 { p[2 + j] = UInt8(truncatingIfNeeded: UInt64(length) >> UInt64(56 - 8 * j)) }
            i = 10
        }
        let mask = UInt32(truncatingIfNeeded: rng.next())
        UnsafeMutableRawPointer(p + i).storeBytes(of: mask, as: UInt32.self)
        c.outEnd += hlen
        return mask
    }

    /// XORs `n` bytes at `p` with the 4-byte key (as stored in the frame).
    @inline(__always)
    private func applyMask(_ p: UnsafeMutablePointer<UInt8>, _ n: Int, _ key: UInt32) {
        let k64 = UInt64(key) | UInt64(key) << 32
        let raw = UnsafeMutableRawPointer(p)
        var i = 0
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            raw.storeBytes(of: v ^ k64, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        let kb = withUnsafeBytes(of: key) { [$0[0], $0[1], $0[2], $0[3]] }
        while i < n {
            p[i] ^= kb[i & 3]
            i += 1
        }
    }

    func sendFrame(_ c: Conn, opcode: UInt8, payload: UnsafeRawBufferPointer) {
        guard c.state == .open || c.state == .handshaking else { return }
        let n = payload.count
        let mask = writeHeader(c, opcode: opcode, length: n)
        let p = c.out! + c.outEnd
        if n > 0 { UnsafeMutableRawPointer(p).copyMemory(from: payload.baseAddress!, byteCount: n) }
        applyMask(p, n, mask)
        c.outEnd += n
        markDirty(c)
    }

    func sendText(_ c: Conn, _ text: String) {
        var s = text
        s.withUTF8 { sendFrame(c, opcode: 0x1, payload: UnsafeRawBufferPointer($0)) }
    }

    // MARK: The signal hot path

    /// `{"type":"signal","to":"<partner>","data":{"t":<ns>,"p":"xxxx"}}`: data is about `dataSize`
    /// bytes; <ns> is CLOCK_MONOTONIC when the frame is built.
    @inline(__always)
    private func sendSignal(_ c: Conn) {
        guard c.ready, c.state == .open else {
            sendSkipped += 1
            return
        }
        if c.outEnd - c.outStart > maxBacklogBytes {
            backlogDrops += 1 // the server does not read: do not grow without bound
            return
        }
        let t = monotonicNs()
        var digits = 1
        var v = t / 10
        while v > 0 { digits += 1; v /= 10 }
        let pad = max(0, dataSize - 13 - digits) // {"t":D,"p":"P"}
        let prefixCount = c.signalPrefix.count
        let length = prefixCount + digits + 6 + pad + 3
        let mask = writeHeader(c, opcode: 0x1, length: length)
        let p = c.out! + c.outEnd
        c.signalPrefix.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: prefixCount) }
        var q = p + prefixCount
        var x = t
        var d = digits - 1
        while d >= 0 {
            q[d] = UInt8(truncatingIfNeeded: 48 + x % 10)
            x /= 10
            d -= 1
        }
        q += digits
        q[0] = UInt8(ascii: ","); q[1] = UInt8(ascii: "\""); q[2] = UInt8(ascii: "p"); q[3] = UInt8(ascii: "\"")
        q[4] = UInt8(ascii: ":"); q[5] = UInt8(ascii: "\"")
        q += 6
        q.initialize(repeating: UInt8(ascii: "x"), count: pad)
        q += pad
        q[0] = UInt8(ascii: "\""); q[1] = UInt8(ascii: "}"); q[2] = UInt8(ascii: "}")
        applyMask(p, length, mask)
        c.outEnd += length
        markDirty(c)
        sentTotal += 1
        if t >= windowStart && t < windowEnd { sentInWindow += 1 }
    }

    private func pumpSends(_ now: Int64) {
        var budget = maxBurst
        let count = senders.count
        guard count > 0 else { return }
        while nextDue <= now && budget > 0 {
            if nextDue >= sendUntil {
                nextDue = .max
                sending = false
                return
            }
            if nextDue >= windowStart {
                let lag = now - nextDue
                if lag > lateThresholdNs { lateSends += 1 }
                if lag > maxLagNs { maxLagNs = lag }
            }
            sendSignal(conns[senders[Int(seq % Int64(count))]])
            seq += 1
            nextDue = scheduleStart + Int64(Double(seq) * intervalNs)
            budget -= 1
        }
    }

    /// Starts the open-loop schedule: `rate` messages per second in total, round-robin over `senders`.
    func startSending(rate: Double, start: Int64, until: Int64) {
        senders = conns.filter { $0.ready && $0.state == .open }.map { $0.idx }
        intervalNs = 1e9 / rate
        scheduleStart = start
        seq = 0
        nextDue = start
        sendUntil = until
        maxBurst = max(100, Int(rate / 100)) // at most 10 ms worth per turn, so reads are not starved
        sending = true
    }

    // MARK: Input

    private func readable(_ c: Conn) {
        var rounds = 0
        while rounds < 4 {
            rounds += 1
            let n = read(c.fd, scratch, scratchCap)
            if n > 0 {
                ingest(c, scratch, n)
                if c.state == .closed || n < scratchCap { return }
                continue
            }
            if n == 0 {
                closeConn(c, expected: shuttingDown)
                return
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return }
            closeConn(c, expected: shuttingDown)
            return
        }
    }

    private func appendPend(_ c: Conn, _ p: UnsafePointer<UInt8>, _ n: Int) {
        if c.pendLen + n > c.pendCap {
            var cap = max(c.pendCap, 4096)
            while cap < c.pendLen + n { cap *= 2 }
            let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
            if let old = c.pend {
                nb.update(from: old, count: c.pendLen)
                old.deallocate()
            }
            c.pend = nb
            c.pendCap = cap
        }
        (c.pend! + c.pendLen).update(from: p, count: n)
        c.pendLen += n
    }

    private func ingest(_ c: Conn, _ p: UnsafeMutablePointer<UInt8>, _ n: Int) {
        if c.state == .handshaking {
            c.handshake.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            guard let end = headerEnd(c.handshake) else {
                if c.handshake.count > 16384 { handshakeFailed(c, "response header too long") }
                return
            }
            let header = String(decoding: c.handshake[0..<end], as: UTF8.self)
            let rest = Array(c.handshake[(end + 4)...])
            c.handshake = []
            guard checkHandshake(c, header) else { return }
            c.state = .open
            openCount += 1
            if !rest.isEmpty {
                rest.withUnsafeBufferPointer { appendPend(c, $0.baseAddress!, $0.count) }
                let used = parseFrames(c, c.pend!, c.pendLen)
                compactPend(c, used)
            }
            return
        }
        if c.pendLen > 0 {
            appendPend(c, p, n)
            let used = parseFrames(c, c.pend!, c.pendLen)
            compactPend(c, used)
        } else {
            let used = parseFrames(c, p, n)
            if used < n && c.state != .closed { appendPend(c, p + used, n - used) }
        }
    }

    private func compactPend(_ c: Conn, _ used: Int) {
        guard c.state != .closed, let pend = c.pend else { return }
        let left = c.pendLen - used
        if left > 0 && used > 0 { pend.update(from: pend + used, count: left) }
        c.pendLen = left
    }

    private func headerEnd(_ b: [UInt8]) -> Int? {
        if b.count < 4 { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func checkHandshake(_ c: Conn, _ header: String) -> Bool {
        let lines = header.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let status = lines.first, status.hasPrefix("HTTP/1.1 101") else {
            handshakeFailed(c, "unexpected status: \(lines.first ?? "")")
            return false
        }
        var accept: Substring?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[line.startIndex..<colon].lowercased() == "sec-websocket-accept" {
                accept = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            }
        }
        guard let accept, accept.trimmingSuffix() == c.expectedAccept else {
            handshakeFailed(c, "missing or wrong Sec-WebSocket-Accept")
            return false
        }
        return true
    }

    private func handshakeFailed(_ c: Conn, _ why: String) {
        handshakeErrors += 1
        if handshakeErrors <= 3 { warn("handshake failed: \(why)") }
        closeConn(c, expected: true)
    }

    /// Parses complete frames; returns the number of bytes consumed.
    private func parseFrames(_ c: Conn, _ base: UnsafeMutablePointer<UInt8>, _ len: Int) -> Int {
        var i = 0
        while len - i >= 2 {
            let b0 = base[i], b1 = base[i + 1]
            let fin = b0 & 0x80 != 0
            let opcode = b0 & 0x0F
            let masked = b1 & 0x80 != 0
            var plen = Int(b1 & 0x7F)
            var h = 2
            if plen == 126 {
                if len - i < 4 { break }
                plen = Int(base[i + 2]) << 8 | Int(base[i + 3])
                h = 4
            } else if plen == 127 {
                if len - i < 10 { break }
                var v: UInt64 = 0
                for j in 0..<8 { v = v << 8 | UInt64(base[i + 2 + j]) }
                if v > 256 * 1024 * 1024 {
                    protocolErrors += 1
                    closeConn(c, expected: false)
                    return i
                }
                plen = Int(v)
                h = 10
            }
            var key: UInt32 = 0
            if masked {
                if len - i < h + 4 { break }
                key = UnsafeRawPointer(base + i + h).loadUnaligned(as: UInt32.self)
                h += 4
            }
            if len - i < h + plen { break }
            let payload = base + i + h
            if masked { applyMask(payload, plen, key) }
            handleFrame(c, fin: fin, opcode: opcode, payload, plen)
            i += h + plen
            if c.state == .closed { return i }
        }
        return i
    }

    private func handleFrame(_ c: Conn, fin: Bool, opcode: UInt8, _ p: UnsafeMutablePointer<UInt8>, _ n: Int) {
        switch opcode {
        case 0x1, 0x2:
            if fin {
                if opcode == 0x1 { handleText(c, p, n) }
            } else {
                c.frag = Array(UnsafeBufferPointer(start: p, count: n))
                c.fragOpcode = opcode
            }
        case 0x0:
            c.frag.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            if fin {
                var m = c.frag
                c.frag = []
                if c.fragOpcode == 0x1 {
                    m.withUnsafeMutableBufferPointer { handleText(c, $0.baseAddress!, $0.count) }
                }
            }
        case 0x8: // close: answer with the same code, then close the socket
            let code = n >= 2 ? Int(p[0]) << 8 | Int(p[1]) : 1005
            serverCloseCodes[code, default: 0] += 1
            sendFrame(c, opcode: 0x8, payload: UnsafeRawBufferPointer(start: p, count: min(n, 2)))
            flush(c)
            closeConn(c, expected: shuttingDown)
        case 0x9: // ping -> pong with the same payload
            pingsAnswered += 1
            sendFrame(c, opcode: 0xA, payload: UnsafeRawBufferPointer(start: p, count: n))
        case 0xA:
            break
        default:
            protocolErrors += 1
        }
    }

    // MARK: Messages

    private static let signalHead: [UInt8] = Array(#"{"type":"signal""#.utf8)
    private static let stampHead: [UInt8] = Array(#"{"t":"#.utf8)

    private func handleText(_ c: Conn, _ p: UnsafeMutablePointer<UInt8>, _ n: Int) {
        let head = Engine.signalHead
        if n > head.count, head.withUnsafeBufferPointer({ memcmp(p, $0.baseAddress!, $0.count) }) == 0 {
            handleSignal(p, n)
            return
        }
        let scanner = JSONScanner(p: UnsafePointer(p), n: n)
        guard let m = scanner.members(), let type = scanner.string(m["type"]) else {
            protocolErrors += 1
            return
        }
        switch type {
        case "signal":
            handleSignal(p, n)
        case "welcome":
            if !c.welcomed {
                c.welcomed = true
                let room = String(decoding: c.room, as: UTF8.self)
                sendText(c, #"{"type":"join","room":"\#(room)","name":"lt-\#(c.idx)"}"#)
            }
        case "joined":
            guard let peer = m["peer"].flatMap({ scanner.stringBytes($0) }) else {
                protocolErrors += 1
                return
            }
            c.peerID = peer
            if !c.joined {
                c.joined = true
                joinedCount += 1
                inflight -= 1
            }
            if let peers = m["peers"] {
                for e in scanner.elements(peers) {
                    if let pm = scanner.members(from: e.start), let other = pm["peer"].flatMap({ scanner.stringBytes($0) }) {
                        c.partnerID = other
                    }
                }
            }
            checkReady(c)
        case "peer-joined":
            if let peer = m["peer"].flatMap({ scanner.stringBytes($0) }) {
                c.partnerID = peer
                checkReady(c)
            }
        case "peer-left":
            peerLeft += 1
            if c.ready {
                c.ready = false
                readyCount -= 1
            }
        case "error":
            let code = scanner.string(m["code"]) ?? "?"
            serverErrors[code, default: 0] += 1
            if !c.joined && !c.failed && c.welcomed {
                // the join was refused: this connection will not take part
                c.failed = true
                inflight -= 1
                if serverErrors[code] == 1 {
                    warn("join refused: \(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))")
                }
            }
        default:
            break // call, ack, typing, chat, ...
        }
    }

    private func checkReady(_ c: Conn) {
        guard c.joined, !c.partnerID.isEmpty, !c.ready else { return }
        c.signalPrefix = Array(#"{"type":"signal","to":""#.utf8) + c.partnerID + Array(#"","data":{"t":"#.utf8)
        c.ready = true
        readyCount += 1
    }

    @inline(__always)
    private func handleSignal(_ p: UnsafeMutablePointer<UInt8>, _ n: Int) {
        let now = monotonicNs()
        receivedTotal += 1
        if now >= windowStart && now < windowEnd { receivedDuringWindow += 1 }
        let stamp = Engine.stampHead
        guard let hit = stamp.withUnsafeBufferPointer({ lt_memmem(p, n, $0.baseAddress!, $0.count) }) else {
            foreignSignals += 1
            return
        }
        var q = hit.assumingMemoryBound(to: UInt8.self) + stamp.count
        let end = p + n
        var t: Int64 = 0
        while q < end, q[0] >= 48, q[0] <= 57 {
            t = t &* 10 &+ Int64(q[0] - 48)
            q += 1
        }
        if t >= windowStart && t < windowEnd {
            deliveredInWindow += 1
            histogram.record(now - t)
        }
    }

    // MARK: Closing

    func closeConn(_ c: Conn, expected: Bool) {
        guard c.state != .closed else { return }
        let wasJoined = c.joined
        if c.fd >= 0 {
            close(c.fd) // also removes it from the epoll set
            c.fd = -1
        }
        if c.state == .open { openCount -= 1 }
        c.state = .closed
        if !expected { disconnects += 1 }
        if !wasJoined && !c.failed {
            c.failed = true
            inflight -= 1
        }
        if c.ready {
            c.ready = false
            readyCount -= 1
        }
        c.pendLen = 0
        c.outStart = 0
        c.outEnd = 0
    }

    /// Closes every connection (close frame 1000, then the socket), without counting disconnects.
    func closeAll() {
        shuttingDown = true
        sending = false
        let normal: [UInt8] = [0x03, 0xE8]
        for c in conns where c.state == .open {
            normal.withUnsafeBytes { sendFrame(c, opcode: 0x8, payload: $0) }
            flush(c)
        }
        for c in conns where c.state != .closed && c.state != .idle {
            closeConn(c, expected: true)
        }
    }
}

extension Substring {
    func trimmingSuffix() -> Substring {
        var s = self
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s = s.dropLast() }
        return s
    }
}
