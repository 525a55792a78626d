import CSys
import Glibc

// MARK: - Clock

/// CLOCK_MONOTONIC in nanoseconds. Sender and receiver run in this one process, so a timestamp taken at
/// send time and compared at receive time measures the whole trip through the server.
@inline(__always)
func monotonicNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
}

/// CPU time (user + system) of this process, in nanoseconds.
func processCPUNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func sleepNs(_ ns: Int64) {
    guard ns > 0 else { return }
    var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rem = timespec()
    while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
}

// MARK: - Output

func printLine(_ s: String) {
    print(s)
    lt_flush_stdout()
}

func warn(_ s: String) {
    lt_write_stderr("loadtest: \(s)\n")
}

func fail(_ s: String) -> Never {
    lt_write_stderr("loadtest: error: \(s)\n")
    exit(1)
}

func fmt(_ v: Double, _ decimals: Int = 2) -> String {
    if v.isNaN || v.isInfinite { return "null" }
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([decimals, v]) { vsnprintf(&buf, 64, "%.*f", $0) }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// A small JSON object writer for the RESULT line (keys in insertion order).
struct JSONObject {
    private var parts: [String] = []
    mutating func add(_ key: String, _ value: Int) { parts.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, _ value: Int64) { parts.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, _ value: Double, _ decimals: Int = 3) {
        parts.append("\"\(key)\":\(fmt(value, decimals))")
    }
    mutating func add(_ key: String, _ value: Double?, _ decimals: Int = 3) {
        if let value { add(key, value, decimals) } else { parts.append("\"\(key)\":null") }
    }
    mutating func add(_ key: String, _ value: Int?) {
        if let value { add(key, value) } else { parts.append("\"\(key)\":null") }
    }
    mutating func add(_ key: String, _ value: String) { parts.append("\"\(key)\":\(jsonString(value))") }
    mutating func add(_ key: String, _ value: Bool) { parts.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, object: JSONObject) { parts.append("\"\(key)\":\(object.text)") }
    var text: String { "{" + parts.joined(separator: ",") + "}" }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

// MARK: - Randomness

/// xorshift64*: cheap per-frame masking keys (RFC 6455 wants them unpredictable to intermediaries; this
/// is a load generator talking to loopback).
struct FastRandom {
    private var state: UInt64
    init() {
        var seed: UInt64 = 0
        withUnsafeMutableBytes(of: &seed) { _ = getrandom($0.baseAddress, 8, 0) }
        state = seed | 1
    }
    @inline(__always)
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }
}

func randomBytes(_ n: Int) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: n)
    b.withUnsafeMutableBytes { _ = getrandom($0.baseAddress, n, 0) }
    return b
}

// MARK: - Base64 and SHA-1 (for Sec-WebSocket-Key / Sec-WebSocket-Accept)

func base64(_ data: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out = [UInt8]()
    out.reserveCapacity((data.count + 2) / 3 * 4)
    var i = 0
    while i + 2 < data.count {
        let v = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
        out += [table[Int(v >> 18 & 63)], table[Int(v >> 12 & 63)], table[Int(v >> 6 & 63)], table[Int(v & 63)]]
        i += 3
    }
    let rest = data.count - i
    if rest == 1 {
        let v = UInt32(data[i]) << 16
        out += [table[Int(v >> 18 & 63)], table[Int(v >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
    } else if rest == 2 {
        let v = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
        out += [table[Int(v >> 18 & 63)], table[Int(v >> 12 & 63)], table[Int(v >> 6 & 63)], UInt8(ascii: "=")]
    }
    return String(decoding: out, as: UTF8.self)
}

func sha1(_ message: [UInt8]) -> [UInt8] {
    var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
    var msg = message
    let bitLength = UInt64(message.count) * 8
    msg.append(0x80)
    while msg.count % 64 != 56 { msg.append(0) }
    for i in (0..<8).reversed() { msg.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
    var w = [UInt32](repeating: 0, count: 80)
    for chunk in stride(from: 0, to: msg.count, by: 64) {
        for i in 0..<16 {
            w[i] = UInt32(msg[chunk + 4 * i]) << 24 | UInt32(msg[chunk + 4 * i + 1]) << 16
                | UInt32(msg[chunk + 4 * i + 2]) << 8 | UInt32(msg[chunk + 4 * i + 3])
        }
        for i in 16..<80 {
            let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
            w[i] = x << 1 | x >> 31
        }
        var (a, b, c, d, e) = h
        for i in 0..<80 {
            let f: UInt32, k: UInt32
            switch i {
            case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
            e = d; d = c; c = b << 30 | b >> 2; b = a; a = t
        }
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
    }
    var out = [UInt8]()
    for v in [h.0, h.1, h.2, h.3, h.4] {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }
    return out
}

func websocketAccept(forKey key: String) -> String {
    base64(sha1(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)))
}

// MARK: - Latency histogram

/// Log-linear histogram of nanosecond values: exact below 2,048 ns, then 1,024 sub-buckets per power of
/// two (relative error under 0.1 %). Bounded memory whatever the run length.
struct Histogram {
    private var counts = [UInt64](repeating: 0, count: 64 * 1024)
    private(set) var total: UInt64 = 0
    private(set) var maxValue: Int64 = 0
    private(set) var minValue: Int64 = .max
    private(set) var sum: Double = 0

    @inline(__always)
    private static func index(_ v: UInt64) -> Int {
        if v < 2048 { return Int(v) }
        let shift = 63 - v.leadingZeroBitCount - 10
        return (shift + 1) * 1024 + Int(v >> UInt64(shift)) - 1024
    }

    private static func value(atIndex i: Int) -> Int64 {
        if i < 2048 { return Int64(i) }
        let shift = i / 1024 - 1
        let sub = i - (shift + 1) * 1024 + 1024
        // middle of the bucket
        return (Int64(sub) << Int64(shift)) + (Int64(1) << Int64(shift)) / 2
    }

    @inline(__always)
    mutating func record(_ ns: Int64) {
        let v = ns < 0 ? 0 : ns
        let i = Histogram.index(UInt64(v))
        if i < counts.count { counts[i] &+= 1 } else { counts[counts.count - 1] &+= 1 }
        total &+= 1
        sum += Double(v)
        if v > maxValue { maxValue = v }
        if v < minValue { minValue = v }
    }

    mutating func merge(_ o: Histogram) {
        for i in 0..<counts.count { counts[i] &+= o.counts[i] }
        total &+= o.total
        sum += o.sum
        maxValue = max(maxValue, o.maxValue)
        minValue = min(minValue, o.minValue)
    }

    /// Value at quantile q (0...1), in nanoseconds; nil without samples.
    func quantile(_ q: Double) -> Int64? {
        guard total > 0 else { return nil }
        let rank = UInt64((q * Double(total)).rounded(.up))
        let target = max(1, min(total, rank))
        var seen: UInt64 = 0
        for i in 0..<counts.count where counts[i] > 0 {
            seen += counts[i]
            if seen >= target { return min(Histogram.value(atIndex: i), maxValue) }
        }
        return maxValue
    }

    var mean: Double? { total > 0 ? sum / Double(total) : nil }
}

// MARK: - /proc

struct ProcSample {
    let cpuTicks: Int64 // utime + stime, in clock ticks
    let rssKiB: Int?
    let threads: Int?
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 8192) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

let clockTicksPerSecond: Int64 = Int64(sysconf(Int32(_SC_CLK_TCK)))

func procSample(pid: Int32) -> ProcSample? {
    guard let stat = readFile("/proc/\(pid)/stat"),
          let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
    let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "))
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    guard fields.count > 13,
          let ut = Int64(String(decoding: fields[11], as: UTF8.self)),
          let st = Int64(String(decoding: fields[12], as: UTF8.self)) else { return nil }
    var rss: Int?
    var threads: Int?
    if let status = readFile("/proc/\(pid)/status") {
        for line in status.split(separator: UInt8(ascii: "\n")) {
            let s = String(decoding: line, as: UTF8.self)
            if s.hasPrefix("VmRSS:") {
                rss = Int(s.dropFirst(6).filter { $0.isNumber })
            } else if s.hasPrefix("Threads:") {
                threads = Int(s.dropFirst(8).filter { $0.isNumber })
            }
        }
    }
    return ProcSample(cpuTicks: ut + st, rssKiB: rss, threads: threads)
}

/// CPU time (clock ticks) of every other process on the machine, by pid. /proc/PID/stat's utime + stime
/// follow the scheduler's precise run time; processes that start and exit between two snapshots are
/// missed, so the difference is a lower bound of the neighbours' load.
func otherProcessesCPU(excluding: Set<Int32>) -> [Int32: Int64] {
    var out: [Int32: Int64] = [:]
    guard let dir = opendir("/proc") else { return out }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let pid = Int32(name), !excluding.contains(pid), let sample = procCPUTicks(pid: pid) else { continue }
        out[pid] = sample
    }
    return out
}

func procCPUTicks(pid: Int32) -> Int64? {
    guard let stat = readFile("/proc/\(pid)/stat"),
          let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return nil }
    let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " "))
    guard fields.count > 13,
          let ut = Int64(String(decoding: fields[11], as: UTF8.self)),
          let st = Int64(String(decoding: fields[12], as: UTF8.self)) else { return nil }
    return ut + st
}

/// Time the hypervisor gave this VM's CPUs to someone else (steal, /proc/stat), in clock ticks.
func stealTicks() -> Int64? {
    guard let stat = readFile("/proc/stat"), let nl = stat.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
    let fields = stat[0..<nl].split(separator: UInt8(ascii: " ")).dropFirst()
        .compactMap { Int64(String(decoding: $0, as: UTF8.self)) }
    return fields.count >= 8 ? fields[7] : nil
}

/// Neighbours' CPU between two snapshots, in clock ticks.
func cpuDelta(_ before: [Int32: Int64], _ after: [Int32: Int64]) -> Int64 {
    var total: Int64 = 0
    for (pid, t) in after { total += max(0, t - (before[pid] ?? 0)) }
    return total
}

// MARK: - File descriptors

/// Raises RLIMIT_NOFILE so that `needed` descriptors fit; returns the soft limit in force afterwards.
@discardableResult
func raiseFileLimit(needed: Int) -> Int {
    var rl = rlimit()
    let resource = Int32(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &rl) == 0 else { return 1024 }
    let want = rlim_t(needed)
    if rl.rlim_cur >= want { return Int(rl.rlim_cur) }
    if rl.rlim_max < want {
        // Only root may raise the hard limit (up to fs.nr_open).
        var raised = rl
        raised.rlim_max = want
        raised.rlim_cur = want
        if setrlimit(resource, &raised) == 0 { return needed }
        rl.rlim_cur = rl.rlim_max
    } else {
        rl.rlim_cur = want
    }
    if setrlimit(resource, &rl) != 0 {
        warn("setrlimit(RLIMIT_NOFILE, \(rl.rlim_cur)) failed: \(String(cString: strerror(errno)))")
    }
    getrlimit(resource, &rl)
    return Int(rl.rlim_cur)
}

// MARK: - Minimal JSON scanning (setup messages only; the hot path uses byte searches)

/// Raw extent of a JSON value inside a buffer.
struct JSONToken {
    let start: Int
    let end: Int // exclusive
}

struct JSONScanner {
    let p: UnsafePointer<UInt8>
    let n: Int

    private func ws(_ i: Int) -> Int {
        var i = i
        while i < n, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0A || p[i] == 0x0D { i += 1 }
        return i
    }

    private func skipString(_ i: Int) -> Int? {
        var i = i + 1
        while i < n {
            if p[i] == UInt8(ascii: "\"") { return i + 1 }
            if p[i] == UInt8(ascii: "\\") { i += 2; continue }
            i += 1
        }
        return nil
    }

    private func skipValue(_ i: Int, depth: Int = 0) -> Int? {
        guard i < n, depth < 64 else { return nil }
        switch p[i] {
        case UInt8(ascii: "\""):
            return skipString(i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = p[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = p[i] == UInt8(ascii: "{")
            var j = ws(i + 1)
            if j < n, p[j] == close { return j + 1 }
            while true {
                if isObject {
                    guard j < n, p[j] == UInt8(ascii: "\""), let k = skipString(j) else { return nil }
                    j = ws(k)
                    guard j < n, p[j] == UInt8(ascii: ":") else { return nil }
                    j = ws(j + 1)
                }
                guard let v = skipValue(j, depth: depth + 1) else { return nil }
                j = ws(v)
                guard j < n else { return nil }
                if p[j] == close { return j + 1 }
                guard p[j] == UInt8(ascii: ",") else { return nil }
                j = ws(j + 1)
            }
        default:
            var j = i
            while j < n {
                let c = p[j]
                if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") || c == 0x20
                    || c == 0x0A || c == 0x0D || c == 0x09 { break }
                j += 1
            }
            return j > i ? j : nil
        }
    }

    /// Members of the object starting at `start` (top level when 0): key -> raw value token.
    func members(from start: Int = 0) -> [String: JSONToken]? {
        var out: [String: JSONToken] = [:]
        var i = ws(start)
        guard i < n, p[i] == UInt8(ascii: "{") else { return nil }
        i = ws(i + 1)
        if i < n, p[i] == UInt8(ascii: "}") { return out }
        while true {
            guard i < n, p[i] == UInt8(ascii: "\""), let k = skipString(i) else { return nil }
            let key = String(decoding: UnsafeBufferPointer(start: p + i + 1, count: k - i - 2), as: UTF8.self)
            i = ws(k)
            guard i < n, p[i] == UInt8(ascii: ":") else { return nil }
            i = ws(i + 1)
            guard let v = skipValue(i) else { return nil }
            out[key] = JSONToken(start: i, end: v)
            i = ws(v)
            guard i < n else { return nil }
            if p[i] == UInt8(ascii: "}") { return out }
            guard p[i] == UInt8(ascii: ",") else { return nil }
            i = ws(i + 1)
        }
    }

    /// Elements of the array token.
    func elements(_ t: JSONToken) -> [JSONToken] {
        var out: [JSONToken] = []
        guard t.start < n, p[t.start] == UInt8(ascii: "[") else { return out }
        var i = ws(t.start + 1)
        if i < n, p[i] == UInt8(ascii: "]") { return out }
        while i < t.end {
            guard let v = skipValue(i) else { return out }
            out.append(JSONToken(start: i, end: v))
            i = ws(v)
            guard i < n, p[i] == UInt8(ascii: ",") else { return out }
            i = ws(i + 1)
        }
        return out
    }

    /// The bytes of a string token without its quotes (escapes left as they are), nil if not a string.
    func stringBytes(_ t: JSONToken) -> [UInt8]? {
        guard t.end - t.start >= 2, p[t.start] == UInt8(ascii: "\"") else { return nil }
        return Array(UnsafeBufferPointer(start: p + t.start + 1, count: t.end - t.start - 2))
    }

    func string(_ t: JSONToken?) -> String? {
        guard let t, let b = stringBytes(t) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }
}
