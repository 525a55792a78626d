import Foundation
import Synchronization

/// Fixed-window request counters per key (client IP, session). Thread-safe.
public final class RateLimiter: Sendable {
    public let limit: Int
    public let window: TimeInterval
    private let state = Mutex<[String: (start: TimeInterval, count: Int)]>([:])

    public init(limit: Int, window: TimeInterval) {
        self.limit = limit
        self.window = window
    }

    /// The outcome of one request against a key's window.
    public struct Decision: Sendable {
        public let allowed: Bool
        public let limit: Int
        public let remaining: Int
        /// Unix seconds when the window resets.
        public let reset: Int
        public let retryAfter: Int
    }

    public func hit(_ key: String, now: TimeInterval = Date().timeIntervalSince1970) -> Decision {
        state.withLock { windows in
            if windows.count > 100_000 { windows = windows.filter { now - $0.value.start < window } }
            var entry = windows[key] ?? (start: now, count: 0)
            if now - entry.start >= window { entry = (start: now, count: 0) }
            entry.count += 1
            windows[key] = entry
            let reset = entry.start + window
            return Decision(allowed: entry.count <= limit, limit: limit, remaining: max(0, limit - entry.count),
                            reset: Int(reset.rounded(.up)), retryAfter: max(1, Int((reset - now).rounded(.up))))
        }
    }
}
