import Foundation
import Logging
import Store

/// An email to one recipient.
public struct Mail: Sendable, Equatable {
    public var to: String
    public var subject: String
    public var body: String

    public init(to: String, subject: String, body: String) {
        self.to = to
        self.subject = subject
        self.body = body
    }
}

/// Sends account mail (password resets, email verification, invitations). Synchronous: call from a worker
/// thread.
public protocol Mailer: Sendable {
    func send(_ mail: Mail, now: Date) throws
}

/// The mailer of a server without a mail server: each message goes into the store's `outbox` table (where
/// a delivery process, or a test, picks it up) and one log line says so. The body is not logged: it
/// carries single-use tokens.
public struct OutboxMailer: Mailer {
    let outbox: any OutboxStore
    let logger: Logger

    public init(outbox: any OutboxStore, logger: Logger) {
        self.outbox = outbox
        self.logger = logger
    }

    public func send(_ mail: Mail, now: Date) throws {
        let stored = try outbox.enqueueMail(to: mail.to, subject: mail.subject, body: mail.body, now: now)
        logger.info("mail queued", metadata: ["outbox": "\(stored.id)", "to": "\(mail.to)", "subject": "\(mail.subject)"])
    }
}
