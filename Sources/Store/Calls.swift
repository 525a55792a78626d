import Foundation
import GRDB

/// Stored video calls: create, list, change, the status transitions, participants' join and leave times,
/// quality samples, kicks, and the reconciliation after a restart. Synchronous: call from a worker thread.
public protocol CallStore: Sendable {}

extension SQLiteStore: CallStore {}
