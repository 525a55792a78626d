import Foundation
import GRDB

/// The read-only aggregates of a company's dashboards (overview, calls, users, technical) and the search
/// across users, companies and calls. Synchronous: call from a worker thread.
public protocol DashboardStore: Sendable {}

extension SQLiteStore: DashboardStore {}
