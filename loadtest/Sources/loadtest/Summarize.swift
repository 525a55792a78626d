import CSys
import Glibc

/// `loadtest summarize results.jsonl`: Markdown tables from RESULT lines (with or without the prefix).
func runSummarize(_ path: String) {
    guard let data = readFile(path) else { fail("cannot read \(path)") }
    var relayRows: [String] = []
    var connRows: [String] = []
    for rawLine in data.split(separator: UInt8(ascii: "\n")) {
        var line = Array(rawLine)
        let prefix = Array("RESULT ".utf8)
        if line.starts(with: prefix) { line.removeFirst(prefix.count) }
        line.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            let s = JSONScanner(p: base, n: b.count)
            guard let m = s.members() else { return }
            func raw(_ t: JSONToken?) -> String {
                guard let t else { return "-" }
                let text = String(decoding: UnsafeBufferPointer(start: base + t.start, count: t.end - t.start), as: UTF8.self)
                return text == "null" ? "-" : text
            }
            func sub(_ key: String) -> [String: JSONToken] {
                guard let t = m[key] else { return [:] }
                return s.members(from: t.start) ?? [:]
            }
            func num(_ t: JSONToken?, _ decimals: Int) -> String {
                guard let v = Double(raw(t)) else { return "-" }
                return fmt(v, decimals)
            }
            let label = s.string(m["label"]) ?? s.string(m["scenario"]) ?? "?"
            let server = sub("server")
            let errors = sub("errors")
            switch s.string(m["scenario"]) {
            case "relay":
                let lat = sub("latency_ms")
                let rss = Double(raw(server["rss_kib"])).map { fmt($0 / 1024, 1) } ?? "-"
                relayRows.append("| \(label) | \(raw(m["connections"])) | \(num(m["size"], 0)) | \(num(m["rate_target"], 0)) "
                    + "| \(num(m["delivered_per_s"], 0)) | \(num(m["delivered_pct"], 2)) | \(num(lat["p50"], 3)) "
                    + "| \(num(lat["p99"], 3)) | \(num(lat["p999"], 3)) | \(num(lat["max"], 2)) "
                    + "| \(num(server["cpu_pct"], 1)) | \(num(server["cpu_us_per_msg"], 2)) | \(rss) "
                    + "| \(num(m["loadtest_cpu_pct"], 1)) | \(num(m["other_cpu_pct"], 1)) | \(num(m["steal_pct"], 1)) | \(raw(m["late_sends"])) | \(raw(errors["total"])) |")
            case "connections":
                connRows.append("| \(label) | \(raw(m["connections"])) | \(raw(m["joined"])) | \(num(m["setup_s"], 2)) "
                    + "| \(raw(server["rss_kib_before"])) | \(raw(server["rss_kib_after"])) "
                    + "| \(num(server["kib_per_connection"], 1)) | \(num(server["idle_cpu_pct"], 2)) | \(raw(errors["total"])) |")
            default:
                break
            }
        }
    }
    if !relayRows.isEmpty {
        print("| case | conns | data B | target msgs/s | delivered msgs/s | delivered % | p50 ms | p99 ms | p99.9 ms | max ms "
            + "| server CPU % | server µs/msg | server RSS MiB | loadtest CPU % | other CPU % | steal % | late sends | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        relayRows.forEach { print($0) }
        print("")
    }
    if !connRows.isEmpty {
        print("| case | conns | joined | setup s | server RSS before KiB | RSS after KiB | KiB per conn | idle server CPU % | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        connRows.forEach { print($0) }
    }
    lt_flush_stdout()
}
