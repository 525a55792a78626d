import Foundation

/// A user's presence state (PROTOCOL.md 1.3). Users choose `online`, `away` or `busy`; `offline` is what the
/// server says when none of their devices has been connected for the grace period.
public enum PresenceState: String, Sendable, CaseIterable {
    case online, away, busy, offline
}

/// What others see of one user: `{"user","state","devices","last_seen"}`.
public struct PresenceInfo: Equatable, Sendable {
    public var user: String
    public var state: PresenceState
    /// Connected devices (WebSockets) of the user.
    public var devices: Int
    /// When the user was last seen changing: a device connecting or leaving, a state set; nil if never seen
    /// since the server started.
    public var lastSeen: Date?

    public init(user: String, state: PresenceState, devices: Int, lastSeen: Date?) {
        self.user = user
        self.state = state
        self.devices = devices
        self.lastSeen = lastSeen
    }
}

/// One presence change and who must hear of it.
public struct PresenceUpdate<Subscriber: Hashable & Sendable>: Sendable {
    public let recipients: [Subscriber]
    public let info: PresenceInfo
}

/// Users × devices, their states, the grace period before offline, and who subscribed to whom. Pure state:
/// operations return the updates to send; the clock is injected. `Subscriber` is a connection (one device).
/// Owned by a single thread (the service thread).
public final class PresenceDirectory<Subscriber: Hashable & Sendable> {
    private struct Entry {
        var company: String?
        var chosen: PresenceState = .online
        var devices: Set<Subscriber> = []
        /// While no device is connected: when the user goes offline.
        var offlineAt: Date?
        /// What subscribers were last told (or would be told).
        var published: PresenceInfo
    }

    /// Seconds without any device before a user goes offline.
    public let grace: TimeInterval
    private let clock: @Sendable () -> Date
    private var entries: [String: Entry] = [:]
    private var userOf: [Subscriber: String] = [:]
    private var userSubscribers: [String: Set<Subscriber>] = [:]
    private var companySubscribers: [String: Set<Subscriber>] = [:]
    private var subscriptions: [Subscriber: (users: Set<String>, companies: Set<String>)] = [:]

    public init(grace: TimeInterval, clock: @escaping @Sendable () -> Date = Date.init) {
        self.grace = grace
        self.clock = clock
    }

    /// A device of `user` (of `company`) connected. The user is online (in the state they chose before, if
    /// they were still within the grace period).
    public func connected(_ device: Subscriber, user: String, company: String?) -> [PresenceUpdate<Subscriber>] {
        if let previous = userOf[device], previous != user {
            // The connection signed in as someone else (`hello` with another token).
            _ = removeDevice(device)
        }
        userOf[device] = user
        let now = clock()
        var entry = entries[user] ?? Entry(company: company, published: PresenceInfo(user: user, state: .offline,
                                                                                      devices: 0, lastSeen: nil))
        entry.company = company
        if entry.devices.isEmpty, entry.offlineAt == nil { entry.chosen = .online }
        entry.devices.insert(device)
        entry.offlineAt = nil
        return publish(user, entry, now: now)
    }

    /// A device left. Its subscriptions end. When it was its user's last, the user goes offline after the
    /// grace period unless a device connects again (`expire` does it).
    public func disconnected(_ device: Subscriber) -> [PresenceUpdate<Subscriber>] {
        unsubscribeAll(device)
        return removeDevice(device)
    }

    private func removeDevice(_ device: Subscriber) -> [PresenceUpdate<Subscriber>] {
        guard let user = userOf.removeValue(forKey: device), var entry = entries[user] else { return [] }
        entry.devices.remove(device)
        let now = clock()
        if entry.devices.isEmpty {
            // Nothing is published yet: a reconnect within the grace period is not seen as a flap.
            entry.offlineAt = now + grace
            entry.published.lastSeen = now
            entries[user] = entry
            return []
        }
        return publish(user, entry, now: now)
    }

    /// The device's user sets their state (`online`, `away`, `busy`).
    public func setState(of device: Subscriber, _ state: PresenceState) -> [PresenceUpdate<Subscriber>] {
        guard state != .offline, let user = userOf[device], var entry = entries[user] else { return [] }
        entry.chosen = state
        return publish(user, entry, now: clock())
    }

    /// Users whose grace period ended go offline.
    public func expire() -> [PresenceUpdate<Subscriber>] {
        let now = clock()
        var updates: [PresenceUpdate<Subscriber>] = []
        for (user, entry) in entries {
            guard let offlineAt = entry.offlineAt, offlineAt <= now, entry.devices.isEmpty else { continue }
            var gone = entry
            gone.offlineAt = nil
            updates += publish(user, gone, now: offlineAt - grace)
        }
        return updates
    }

    /// Computes what subscribers see now; tells them if it changed.
    private func publish(_ user: String, _ entry: Entry, now: Date) -> [PresenceUpdate<Subscriber>] {
        var entry = entry
        let visible = entry.devices.isEmpty && entry.offlineAt == nil
            ? PresenceInfo(user: user, state: .offline, devices: 0, lastSeen: now)
            : PresenceInfo(user: user, state: entry.chosen, devices: entry.devices.count, lastSeen: now)
        let changed = visible.state != entry.published.state || visible.devices != entry.published.devices
        if changed { entry.published = visible }
        entries[user] = entry
        guard changed else { return [] }
        let recipients = recipients(of: user, company: entry.company)
        return recipients.isEmpty ? [] : [PresenceUpdate(recipients: recipients, info: visible)]
    }

    private func recipients(of user: String, company: String?) -> [Subscriber] {
        var all = userSubscribers[user] ?? []
        if let company, let more = companySubscribers[company] { all.formUnion(more) }
        return Array(all)
    }

    /// What is known of a user now (offline with no `last_seen` if never seen).
    public func info(_ user: String) -> PresenceInfo {
        entries[user]?.published ?? PresenceInfo(user: user, state: .offline, devices: 0, lastSeen: nil)
    }

    /// `subscriber` hears of every change of these users from now on; returns their presence now.
    public func subscribe(_ subscriber: Subscriber, users: [String]) -> [PresenceInfo] {
        var seen = Set<String>()
        var snapshot: [PresenceInfo] = []
        for user in users where seen.insert(user).inserted {
            userSubscribers[user, default: []].insert(subscriber)
            subscriptions[subscriber, default: ([], [])].users.insert(user)
            snapshot.append(info(user))
        }
        return snapshot
    }

    /// `subscriber` hears of every change of the company's users (present and future); returns the presence
    /// of `members` (the company's users now) and of any other user of the company known here.
    public func subscribe(_ subscriber: Subscriber, company: String, members: [String]) -> [PresenceInfo] {
        companySubscribers[company, default: []].insert(subscriber)
        subscriptions[subscriber, default: ([], [])].companies.insert(company)
        var users = Set(members)
        for (user, entry) in entries where entry.company == company { users.insert(user) }
        return users.sorted().map(info)
    }

    /// Ends every subscription of `subscriber`.
    public func unsubscribeAll(_ subscriber: Subscriber) {
        guard let subscribed = subscriptions.removeValue(forKey: subscriber) else { return }
        for user in subscribed.users {
            userSubscribers[user]?.remove(subscriber)
            if userSubscribers[user]?.isEmpty == true { userSubscribers.removeValue(forKey: user) }
        }
        for company in subscribed.companies {
            companySubscribers[company]?.remove(subscriber)
            if companySubscribers[company]?.isEmpty == true { companySubscribers.removeValue(forKey: company) }
        }
    }

    /// How many user ids `subscriber` follows (for its limit).
    public func subscriptionCount(_ subscriber: Subscriber) -> Int { subscriptions[subscriber]?.users.count ?? 0 }

    /// Users of a company who are not offline (connected, or within the grace period).
    public func onlineCount(company: String) -> Int {
        entries.values.filter { $0.company == company && $0.published.state != .offline }.count
    }
}
