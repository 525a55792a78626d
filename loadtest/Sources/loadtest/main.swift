import CSys
import Glibc

// loadtest — Switchboard's load generator.
//
//   loadtest relay --url ws://127.0.0.1:PORT/ws --connections N --rate R --size S --duration D
//                  [--warmup W] [--drain S] [--server-pid PID] [--connect-batch B] [--setup-timeout S]
//   loadtest connections --url ws://127.0.0.1:PORT/ws --connections N [--server-pid PID] [--hold S]
//
// Human-readable lines, then one line `RESULT {json}`.

let usage = """
usage:
  loadtest relay --url ws://127.0.0.1:PORT/ws --connections N --rate MSGS_PER_S --size BYTES --duration S
                 [--warmup S (2)] [--drain S (3)] [--server-pid PID] [--connect-batch N (200)]
                 [--setup-timeout S (60)] [--tick-ms MS (1)] [--label TEXT]
  loadtest connections --url ws://127.0.0.1:PORT/ws --connections N [--server-pid PID] [--hold S (2)]
                 [--connect-batch N (200)] [--setup-timeout S (120)] [--label TEXT]

relay:        N connections in rooms of two; open-loop `signal` messages at a fixed total rate, spread
              round-robin over all connections; latency measured by the receiver (CLOCK_MONOTONIC).
connections:  N joined, idle connections; server RSS before and after, KiB per connection.

  loadtest summarize results.jsonl      Markdown tables from RESULT lines
"""

struct Options {
    var scenario = ""
    var url = ""
    var connections = 0
    var rate = 0.0
    var size = 200
    var duration = 10.0
    var warmup = 2.0
    var drain = 3.0
    var hold = 2.0
    var serverPID: Int32?
    var connectBatch = 200
    var setupTimeout: Double?
    var label = ""
    var tickMs = 1.0
}

func parseOptions() -> Options {
    var o = Options()
    var args = Array(CommandLine.arguments.dropFirst())
    guard let scenario = args.first else {
        print(usage)
        exit(2)
    }
    if scenario == "-h" || scenario == "--help" || scenario == "help" {
        print(usage)
        exit(0)
    }
    o.scenario = scenario
    args.removeFirst()
    var i = 0
    func value(_ name: String) -> String {
        guard i + 1 < args.count else { fail("\(name) needs a value") }
        i += 1
        return args[i]
    }
    func number(_ name: String) -> Double {
        let v = value(name)
        guard let d = Double(v), d >= 0 else { fail("\(name): not a number: \(v)") }
        return d
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "--url": o.url = value(a)
        case "--connections": o.connections = Int(number(a))
        case "--rate": o.rate = number(a)
        case "--size": o.size = Int(number(a))
        case "--duration": o.duration = number(a)
        case "--warmup": o.warmup = number(a)
        case "--drain": o.drain = number(a)
        case "--hold": o.hold = number(a)
        case "--server-pid": o.serverPID = Int32(number(a))
        case "--connect-batch": o.connectBatch = Int(number(a))
        case "--setup-timeout": o.setupTimeout = number(a)
        case "--label": o.label = value(a)
        case "--tick-ms": o.tickMs = number(a)
        case "-h", "--help":
            print(usage)
            exit(0)
        default: fail("unknown option \(a)\n\(usage)")
        }
        i += 1
    }
    guard !o.url.isEmpty else { fail("--url is required") }
    guard o.connections > 0 else { fail("--connections must be positive") }
    if o.scenario == "relay" {
        guard o.connections >= 2 else { fail("relay needs at least 2 connections") }
        guard o.rate > 0 else { fail("--rate must be positive") }
        guard o.duration > 0 else { fail("--duration must be positive") }
    }
    return o
}

// MARK: - Shared setup

func ns(_ seconds: Double) -> Int64 { Int64(seconds * 1e9) }
func ms(_ nanos: Int64?) -> Double? { nanos.map { Double($0) / 1e6 } }
func msText(_ nanos: Int64?) -> String { nanos.map { fmt(Double($0) / 1e6, 3) } ?? "-" }

/// Opens the connections, lets each join its room; returns the setup time in seconds.
func setUp(_ engine: Engine, _ o: Options, needPartners: Bool) -> Double {
    let limit = raiseFileLimit(needed: o.connections + 64)
    if limit < o.connections + 16 {
        warn("file descriptor limit \(limit) is below \(o.connections) connections: expect connect errors")
    }
    engine.prepare(count: o.connections, batch: o.connectBatch)
    let start = monotonicNs()
    let expectedReady = o.connections / 2 * 2
    let timeout = o.setupTimeout ?? (o.scenario == "relay" ? 60 : 120)
    engine.run(until: start + ns(timeout)) { engine.opened == engine.toOpen && engine.inflight == 0 }
    // every connection has joined (or failed); peer-joined messages for the last joins may still be on the way
    if needPartners && engine.readyCount < expectedReady {
        engine.run(until: monotonicNs() + 500_000_000) { engine.readyCount >= expectedReady }
    }
    let secs = Double(monotonicNs() - start) / 1e9
    printLine("setup: \(engine.joinedCount)/\(o.connections) joined" + (needPartners ? ", \(engine.readyCount) paired" : "")
        + ", in \(fmt(secs, 2)) s"
        + (engine.connectErrors + engine.handshakeErrors > 0
            ? " (connect errors \(engine.connectErrors), handshake errors \(engine.handshakeErrors))" : ""))
    return secs
}

func errorsObject(_ engine: Engine) -> (JSONObject, Int) {
    var e = JSONObject()
    e.add("connect", engine.connectErrors)
    e.add("handshake", engine.handshakeErrors)
    e.add("disconnects", engine.disconnects)
    e.add("protocol", engine.protocolErrors)
    e.add("send_skipped", engine.sendSkipped)
    e.add("backlog_drops", engine.backlogDrops)
    var se = JSONObject()
    var serverTotal = 0
    for (code, count) in engine.serverErrors.sorted(by: { $0.key < $1.key }) {
        se.add(code, count)
        serverTotal += count
    }
    e.add("server_errors", object: se)
    var cc = JSONObject()
    for (code, count) in engine.serverCloseCodes.sorted(by: { $0.key < $1.key }) { cc.add(String(code), count) }
    e.add("server_close_codes", object: cc)
    let total = engine.connectErrors + engine.handshakeErrors + engine.disconnects + engine.protocolErrors
        + engine.sendSkipped + engine.backlogDrops + serverTotal
    e.add("total", total)
    return (e, total)
}

func errorsLine(_ engine: Engine, total: Int) -> String {
    var parts: [String] = []
    if engine.connectErrors > 0 { parts.append("connect \(engine.connectErrors)") }
    if engine.handshakeErrors > 0 { parts.append("handshake \(engine.handshakeErrors)") }
    if engine.disconnects > 0 { parts.append("disconnects \(engine.disconnects)") }
    if engine.protocolErrors > 0 { parts.append("protocol \(engine.protocolErrors)") }
    if engine.sendSkipped > 0 { parts.append("send skipped \(engine.sendSkipped)") }
    if engine.backlogDrops > 0 { parts.append("backlog drops \(engine.backlogDrops)") }
    for (code, count) in engine.serverErrors.sorted(by: { $0.key < $1.key }) { parts.append("server \(code) \(count)") }
    for (code, count) in engine.serverCloseCodes.sorted(by: { $0.key < $1.key }) { parts.append("server close \(code) ×\(count)") }
    return "errors: \(total)" + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
}

// MARK: - relay

func runRelay(_ o: Options) {
    let engine = Engine(target: Target(url: o.url))
    let perConn = o.rate / Double(o.connections)
    printLine("relay: \(o.url), \(o.connections) connections (\(o.connections / 2) rooms of two), "
        + "\(fmt(o.rate, 0)) msgs/s total (\(fmt(perConn, 1)) per connection), \(o.size)-byte data, "
        + "warmup \(fmt(o.warmup, 1)) s, measured \(fmt(o.duration, 1)) s")
    if perConn > 90 {
        warn("\(fmt(perConn, 1)) msgs/s per connection: a server limiting each connection to 100 msgs/s will refuse some")
    }
    let rssBefore = o.serverPID.flatMap { procSample(pid: $0) }?.rssKiB
    let setupSecs = setUp(engine, o, needPartners: true)
    guard engine.readyCount >= 2 else { fail("no connected pair: nothing to measure") }

    let start = monotonicNs() + 50_000_000
    engine.windowStart = start + ns(o.warmup)
    engine.windowEnd = engine.windowStart + ns(o.duration)
    engine.tickNs = max(1, ns(o.tickMs / 1000))
    engine.lateThresholdNs = engine.tickNs + 1_000_000
    engine.startSending(rate: o.rate, start: start, until: engine.windowEnd)
    engine.run(until: engine.windowStart)

    let s0 = o.serverPID.flatMap { procSample(pid: $0) }
    let c0 = processCPUNs()
    let exclude = Set([getpid()] + (o.serverPID.map { [$0] } ?? []))
    let others0 = otherProcessesCPU(excluding: exclude)
    let steal0 = stealTicks()
    engine.maxBusyNs = 0
    engine.maxOversleepNs = 0
    engine.lastWake = monotonicNs()
    let w0 = monotonicNs()
    engine.run(until: engine.windowEnd)
    let w1 = monotonicNs()
    let c1 = processCPUNs()
    let others1 = otherProcessesCPU(excluding: exclude)
    let steal1 = stealTicks()
    let s1 = o.serverPID.flatMap { procSample(pid: $0) }
    engine.sending = false

    // drain: wait for what was sent in the window, up to --drain seconds
    engine.run(until: w1 + ns(o.drain)) { engine.deliveredInWindow >= engine.sentInWindow }
    let window = Double(w1 - w0) / 1e9

    let h = engine.histogram
    let sent = engine.sentInWindow
    let delivered = engine.deliveredInWindow
    let deliveredRate = Double(engine.receivedDuringWindow) / window
    let loadCPU = Double(c1 - c0) / 1e9 / window * 100

    printLine("sent: \(sent) in \(fmt(window, 2)) s (\(fmt(Double(sent) / window, 0)) msgs/s), late sends \(engine.lateSends) "
        + "(> \(fmt(Double(engine.lateThresholdNs) / 1e6, 1)) ms behind schedule; max lag \(msText(engine.maxLagNs)) ms)")
    printLine("delivered: \(delivered) (\(fmt(sent > 0 ? Double(delivered) * 100 / Double(sent) : 0, 2)) %), "
        + "lost \(max(0, sent - delivered)), received \(fmt(deliveredRate, 0)) msgs/s during the window")
    printLine("latency ms: p50 \(msText(h.quantile(0.5))) p90 \(msText(h.quantile(0.9))) p99 \(msText(h.quantile(0.99))) "
        + "p999 \(msText(h.quantile(0.999))) max \(msText(h.total > 0 ? h.maxValue : nil)) "
        + "mean \(h.mean.map { fmt($0 / 1e6, 3) } ?? "-")")

    var server = JSONObject()
    if let pid = o.serverPID {
        server.add("pid", Int(pid))
        if let s0, let s1 {
            let cpuSecs = Double(s1.cpuTicks - s0.cpuTicks) / Double(clockTicksPerSecond)
            let cpuPct = cpuSecs / window * 100
            let received = engine.receivedDuringWindow
            let usPerMsg = received > 0 ? cpuSecs * 1e6 / Double(received) : nil
            server.add("cpu_pct", cpuPct, 1)
            server.add("cpu_us_per_msg", usPerMsg, 2)
            server.add("rss_kib_before", rssBefore)
            server.add("rss_kib", s1.rssKiB)
            server.add("threads", s1.threads)
            printLine("server: cpu \(fmt(cpuPct, 1)) % of one core, \(usPerMsg.map { fmt($0, 2) } ?? "-") µs cpu per relayed message, "
                + "rss \(s1.rssKiB.map(String.init) ?? "-") KiB (before connecting: \(rssBefore.map(String.init) ?? "-") KiB)")
        } else {
            warn("cannot read /proc/\(pid)/stat")
        }
    }
    printLine("loadtest: cpu \(fmt(loadCPU, 1)) % of one core")
    // Everything else on the machine during the window: a busy neighbour spoils latency figures.
    let otherCPU = Double(cpuDelta(others0, others1)) / Double(clockTicksPerSecond) / window * 100
    printLine("other processes: cpu \(fmt(otherCPU, 1)) % of one core"
        + (o.serverPID == nil ? " (the server included: no --server-pid)" : "")
        + (otherCPU > 10 ? " — the machine was not quiet: latency figures are disturbed" : ""))
    var stealPct: Double?
    if let steal0, let steal1 {
        stealPct = Double(steal1 - steal0) / Double(clockTicksPerSecond) / window * 100
        printLine("steal: \(fmt(stealPct!, 1)) % of one core taken by the hypervisor"
            + (stealPct! > 5 ? " — the VM's CPUs were not its own: expect latency spikes" : ""))
    }
    printLine("generator loop: longest busy stretch \(msText(engine.maxBusyNs)) ms, "
        + "worst wake-up \(msText(engine.maxOversleepNs)) ms late")
    let (errors, errorTotal) = errorsObject(engine)
    printLine(errorsLine(engine, total: errorTotal))

    var r = JSONObject()
    r.add("scenario", "relay")
    if !o.label.isEmpty { r.add("label", o.label) }
    r.add("url", o.url)
    r.add("connections", o.connections)
    r.add("paired", engine.senders.count)
    r.add("rate_target", o.rate, 1)
    r.add("size", o.size)
    r.add("warmup_s", o.warmup, 1)
    r.add("duration_s", window, 3)
    r.add("setup_s", setupSecs, 3)
    r.add("sent", sent)
    r.add("sent_per_s", Double(sent) / window, 1)
    r.add("tick_ms", o.tickMs, 3)
    r.add("max_loop_busy_ms", ms(engine.maxBusyNs), 3)
    r.add("max_oversleep_ms", ms(engine.maxOversleepNs), 3)
    r.add("late_sends", engine.lateSends)
    r.add("max_send_lag_ms", ms(engine.maxLagNs), 3)
    r.add("delivered", delivered)
    r.add("delivered_pct", sent > 0 ? Double(delivered) * 100 / Double(sent) : 0, 3)
    r.add("lost", max(0, sent - delivered))
    r.add("delivered_per_s", deliveredRate, 1)
    var lat = JSONObject()
    lat.add("p50", ms(h.quantile(0.5)), 3)
    lat.add("p90", ms(h.quantile(0.9)), 3)
    lat.add("p99", ms(h.quantile(0.99)), 3)
    lat.add("p999", ms(h.quantile(0.999)), 3)
    lat.add("max", ms(h.total > 0 ? h.maxValue : nil), 3)
    lat.add("mean", h.mean.map { $0 / 1e6 }, 3)
    r.add("latency_ms", object: lat)
    if o.serverPID != nil { r.add("server", object: server) }
    r.add("loadtest_cpu_pct", loadCPU, 1)
    r.add("other_cpu_pct", otherCPU, 1)
    r.add("steal_pct", stealPct, 1)
    r.add("pings_answered", engine.pingsAnswered)
    r.add("errors", object: errors)
    engine.closeAll()
    printLine("RESULT " + r.text)
}

// MARK: - connections

func runConnections(_ o: Options) {
    let engine = Engine(target: Target(url: o.url))
    printLine("connections: \(o.url), \(o.connections) connections in rooms of two, hold \(fmt(o.hold, 1)) s")
    if let pid = o.serverPID, procSample(pid: pid) == nil { fail("no such process: \(pid)") }
    let before = o.serverPID.flatMap { procSample(pid: $0) }
    let setupSecs = setUp(engine, o, needPartners: false)
    let joined = engine.joinedCount

    // idle: connections only answer pings
    let h0 = monotonicNs()
    let s0 = o.serverPID.flatMap { procSample(pid: $0) }
    engine.run(until: h0 + ns(o.hold))
    let s1 = o.serverPID.flatMap { procSample(pid: $0) }
    let holdSecs = Double(monotonicNs() - h0) / 1e9
    let stillOpen = engine.openCount

    var r = JSONObject()
    r.add("scenario", "connections")
    if !o.label.isEmpty { r.add("label", o.label) }
    r.add("url", o.url)
    r.add("connections", o.connections)
    r.add("joined", joined)
    r.add("open_after_hold", stillOpen)
    r.add("setup_s", setupSecs, 3)
    r.add("connect_rate_per_s", setupSecs > 0 ? Double(joined) / setupSecs : 0, 0)
    r.add("hold_s", holdSecs, 2)
    printLine("joined: \(joined) in \(fmt(setupSecs, 2)) s (\(fmt(setupSecs > 0 ? Double(joined) / setupSecs : 0, 0)) joins/s), "
        + "open after hold: \(stillOpen)")
    if let pid = o.serverPID {
        var server = JSONObject()
        server.add("pid", Int(pid))
        if let before, let after = s1, let b = before.rssKiB, let a = after.rssKiB {
            let per = joined > 0 ? Double(a - b) / Double(joined) : nil
            server.add("rss_kib_before", b)
            server.add("rss_kib_after", a)
            server.add("kib_per_connection", per, 2)
            server.add("threads", after.threads)
            printLine("server rss: \(b) KiB before, \(a) KiB with \(joined) connections: "
                + "\(per.map { fmt($0, 2) } ?? "-") KiB per connection")
        }
        if let s0, let s1, holdSecs > 0 {
            let idle = Double(s1.cpuTicks - s0.cpuTicks) / Double(clockTicksPerSecond) / holdSecs * 100
            server.add("idle_cpu_pct", idle, 2)
            printLine("server cpu while holding: \(fmt(idle, 2)) % of one core")
        }
        r.add("server", object: server)
    }
    let (errors, errorTotal) = errorsObject(engine)
    printLine(errorsLine(engine, total: errorTotal))
    r.add("pings_answered", engine.pingsAnswered)
    r.add("errors", object: errors)
    engine.closeAll()
    printLine("RESULT " + r.text)
}

// MARK: - main

signal(SIGPIPE, SIG_IGN)
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "summarize" {
    runSummarize(CommandLine.arguments[2])
    exit(0)
}
let options = parseOptions()
switch options.scenario {
case "relay": runRelay(options)
case "connections": runConnections(options)
default: fail("unknown scenario \(options.scenario)\n\(usage)")
}
