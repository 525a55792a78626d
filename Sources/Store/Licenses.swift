import Foundation
import GRDB

/// Licenses of a company, their seats and expiry, and which user holds which (`licenses`,
/// `license_assignments`). Hosting a call needs an assigned, unexpired license. Synchronous: call from a
/// worker thread.
public protocol LicenseStore: Sendable {}

extension SQLiteStore: LicenseStore {}
