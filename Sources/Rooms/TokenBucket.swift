/// A token bucket: `capacity` tokens, refilled at `ratePerSecond`. Time is passed in (monotonic seconds),
/// so it is deterministic in tests.
public struct TokenBucket: Sendable {
    public let capacity: Double
    public let ratePerSecond: Double
    private var tokens: Double
    private var last: Double

    public init(capacity: Double, ratePerSecond: Double, now: Double) {
        self.capacity = capacity
        self.ratePerSecond = ratePerSecond
        self.tokens = capacity
        self.last = now
    }

    /// Takes one token if there is one.
    public mutating func take(now: Double) -> Bool {
        if now > last {
            tokens = min(capacity, tokens + (now - last) * ratePerSecond)
            last = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
