import Foundation
import GRDB

/// Reviews of calls (one per participant per call) and comments on calls or reviews. Synchronous: call from
/// a worker thread.
public protocol ReviewStore: Sendable {}

extension SQLiteStore: ReviewStore {}
