import Foundation

/// One quality sample of a peer's connection (PROTOCOL.md 1.2 `quality.stats`, 3 for the ranges). Every
/// field is optional, but a sample has at least one.
public struct QualityStats: Equatable, Sendable {
    public var rttMs: Double?
    public var jitterMs: Double?
    public var lossPct: Double?
    public var bitrateKbps: Double?

    public init(rttMs: Double? = nil, jitterMs: Double? = nil, lossPct: Double? = nil, bitrateKbps: Double? = nil) {
        self.rttMs = rttMs
        self.jitterMs = jitterMs
        self.lossPct = lossPct
        self.bitrateKbps = bitrateKbps
    }

    /// The accepted range of each field, by its wire name.
    public static let ranges: [(name: String, range: ClosedRange<Double>)] = [
        ("rtt_ms", 0...60_000), ("jitter_ms", 0...60_000), ("loss_pct", 0...100), ("bitrate_kbps", 0...1_000_000),
    ]

    /// The value of a field by its wire name.
    public subscript(name: String) -> Double? {
        switch name {
        case "rtt_ms": rttMs
        case "jitter_ms": jitterMs
        case "loss_pct": lossPct
        case "bitrate_kbps": bitrateKbps
        default: nil
        }
    }

    /// Problems with this sample, by field: out of range, or no field at all (under `stats`).
    public var problems: [String: String] {
        var found: [String: String] = [:]
        for (name, range) in Self.ranges {
            if let value = self[name], !(value.isFinite && range.contains(value)) {
                found[name] = "must be a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound))"
            }
        }
        if rttMs == nil, jitterMs == nil, lossPct == nil, bitrateKbps == nil {
            found["stats"] = "must have at least one of rtt_ms, jitter_ms, loss_pct, bitrate_kbps"
        }
        return found
    }

    private static func format(_ value: Double) -> String { String(Int(value)) }
}
