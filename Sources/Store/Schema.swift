import GRDB

/// Versioned schema. A migration never changes once it has shipped; later changes are new migrations.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-room-chat") { db in
            try db.create(table: "room_chat") { table in
                table.column("id", .text).primaryKey()
                table.column("room", .text).notNull()
                table.column("peer", .text).notNull()
                table.column("name", .text).notNull()
                table.column("text", .text).notNull()
                table.column("sent_at", .double).notNull()
            }
            try db.create(index: "room_chat_by_room_time", on: "room_chat", columns: ["room", "sent_at"])
        }
        migrator.registerMigration("v2-product-model", migrate: createProductModel)
        // A user's activity is what they did and what was done to them: the second half needs this index.
        migrator.registerMigration("v3-audit-by-target") { db in
            try db.create(index: "audit_log_by_target", on: "audit_log", columns: ["target_type", "target_id", "created_at"])
        }
        // Video calls (issue 4): who was kicked from a call, when the recording state last changed, and
        // indexes for comment lists and quality by time.
        migrator.registerMigration("v4-call-bans") { db in
            try db.create(table: "call_bans") { t in
                t.column("call_id", .text).notNull().references("video_calls", onDelete: .cascade)
                t.column("credential", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.primaryKey(["call_id", "credential"])
            }
            try db.alter(table: "video_calls") { t in t.add(column: "recording_changed_at", .datetime) }
            // The default comment list: a company's comments by time.
            try db.create(index: "comments_by_company", on: "comments", columns: ["company_id", "created_at"])
            // Dashboards bound quality by time (the last 7 days, a period).
            try db.create(index: "quality_samples_by_time", on: "quality_samples", columns: ["recorded_at"])
        }
        return migrator
    }

    /// The whole persistent model of the product: accounts, calls, licenses, reviews, chat, notifications,
    /// idempotency and the audit log. Times are stored as text (GRDB's UTC `yyyy-MM-dd HH:mm:ss.SSS`).
    private static func createProductModel(_ db: Database) throws {
        try db.create(table: "companies") { t in
            t.column("id", .text).primaryKey()
            t.column("name", .text).notNull()
            t.column("guest_access", .boolean).notNull().defaults(to: true)
            t.column("lobby", .boolean).notNull().defaults(to: false)
            t.column("max_participants", .integer).notNull().defaults(to: 10)
            t.column("recording_allowed", .boolean).notNull().defaults(to: false)
            t.column("timezone", .text).notNull().defaults(to: "UTC")
            t.column("logo_path", .text)
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.column("deleted_at", .datetime)
        }
        try db.create(index: "companies_by_name", on: "companies", columns: ["name"])

        try db.create(table: "users") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).references("companies", onDelete: .restrict)
            t.column("email", .text).notNull().collate(.nocase).unique()
            t.column("name", .text).notNull()
            t.column("role", .text).notNull().check(sql: "role IN ('admin','owner','agent','member')")
            t.column("password_hash", .text)
            t.column("email_verified_at", .datetime)
            t.column("avatar_path", .text)
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.column("deleted_at", .datetime)
        }
        try db.create(index: "users_by_company_role", on: "users", columns: ["company_id", "role"])
        try db.create(index: "users_by_company_name", on: "users", columns: ["company_id", "name"])

        // A login session: the family of refresh tokens that rotate from one login.
        try db.create(table: "auth_sessions") { t in
            t.column("id", .text).primaryKey()
            t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("created_at", .datetime).notNull()
            t.column("expires_at", .datetime).notNull()
            t.column("last_used_at", .datetime).notNull()
            t.column("revoked_at", .datetime)
            t.column("revoked_reason", .text)
            t.column("user_agent", .text)
            t.column("ip", .text)
        }
        try db.create(index: "auth_sessions_by_user", on: "auth_sessions", columns: ["user_id", "revoked_at"])

        // Every refresh token ever issued, hashed; a used one presented again revokes its session.
        try db.create(table: "refresh_tokens") { t in
            t.column("token_hash", .text).primaryKey()
            t.column("session_id", .text).notNull().references("auth_sessions", onDelete: .cascade)
            t.column("created_at", .datetime).notNull()
            t.column("used_at", .datetime)
        }
        try db.create(index: "refresh_tokens_by_session", on: "refresh_tokens", columns: ["session_id"])

        try db.create(table: "api_keys") { t in
            t.column("id", .text).primaryKey()
            t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("name", .text).notNull()
            t.column("prefix", .text).notNull()
            t.column("key_hash", .text).notNull().unique()
            t.column("created_at", .datetime).notNull()
            t.column("last_used_at", .datetime)
            t.column("revoked_at", .datetime)
        }
        try db.create(index: "api_keys_by_user", on: "api_keys", columns: ["user_id"])

        // Single-use, expiring tokens: password reset, email verification, invitations.
        try db.create(table: "account_tokens") { t in
            t.column("id", .text).primaryKey()
            t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("purpose", .text).notNull()
                .check(sql: "purpose IN ('reset_password','verify_email','invitation')")
            t.column("token_hash", .text).notNull().unique()
            t.column("created_at", .datetime).notNull()
            t.column("expires_at", .datetime).notNull()
            t.column("used_at", .datetime)
        }
        try db.create(index: "account_tokens_by_user", on: "account_tokens", columns: ["user_id", "purpose"])

        // Outgoing mail (no mail server here): the Mailer writes here and to the log.
        try db.create(table: "outbox") { t in
            t.column("id", .text).primaryKey()
            t.column("to_email", .text).notNull()
            t.column("subject", .text).notNull()
            t.column("body", .text).notNull()
            t.column("created_at", .datetime).notNull()
        }

        try db.create(table: "licenses") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).notNull().references("companies", onDelete: .cascade)
            t.column("name", .text).notNull()
            t.column("seats", .integer).notNull().check(sql: "seats >= 1")
            t.column("expires_at", .datetime)
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.column("deleted_at", .datetime)
        }
        try db.create(index: "licenses_by_company", on: "licenses", columns: ["company_id"])
        try db.create(table: "license_assignments") { t in
            t.column("license_id", .text).notNull().references("licenses", onDelete: .cascade)
            t.column("user_id", .text).notNull().unique().references("users", onDelete: .cascade)
            t.column("assigned_at", .datetime).notNull()
            t.primaryKey(["license_id", "user_id"])
        }

        try db.create(table: "video_calls") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).notNull().references("companies", onDelete: .cascade)
            t.column("host_id", .text).notNull().references("users", onDelete: .restrict)
            t.column("title", .text).notNull()
            t.column("code", .text).notNull().unique()
            t.column("guest_access", .boolean).notNull()
            t.column("lobby", .boolean).notNull()
            t.column("max_participants", .integer).notNull()
            t.column("status", .text).notNull()
                .check(sql: "status IN ('scheduled','waiting','active','ended','cancelled')")
            t.column("recording", .boolean).notNull().defaults(to: false)
            t.column("recording_changed_by", .text)
            t.column("locked", .boolean).notNull().defaults(to: false)
            t.column("scheduled_at", .datetime)
            t.column("created_at", .datetime).notNull()
            t.column("started_at", .datetime)
            t.column("ended_at", .datetime)
            t.column("duration_s", .integer)
            t.column("updated_at", .datetime).notNull()
        }
        try db.create(index: "video_calls_by_company_status", on: "video_calls", columns: ["company_id", "status", "created_at"])
        try db.create(index: "video_calls_by_company_created", on: "video_calls", columns: ["company_id", "created_at"])
        try db.create(index: "video_calls_by_host", on: "video_calls", columns: ["host_id", "created_at"])

        try db.create(table: "call_participants") { t in
            t.column("id", .text).primaryKey()
            t.column("call_id", .text).notNull().references("video_calls", onDelete: .cascade)
            t.column("user_id", .text).references("users", onDelete: .setNull)
            t.column("peer_id", .text).notNull()
            t.column("display_name", .text).notNull()
            t.column("role", .text).notNull().check(sql: "role IN ('host','member','guest')")
            t.column("joined_at", .datetime).notNull()
            t.column("left_at", .datetime)
            t.column("leave_reason", .text)
        }
        try db.create(index: "call_participants_by_call", on: "call_participants", columns: ["call_id", "joined_at"])
        try db.create(index: "call_participants_by_user", on: "call_participants", columns: ["user_id"])

        try db.create(table: "quality_samples") { t in
            t.autoIncrementedPrimaryKey("id")
            t.column("call_id", .text).notNull().references("video_calls", onDelete: .cascade)
            t.column("peer_id", .text)
            t.column("rtt_ms", .double)
            t.column("jitter_ms", .double)
            t.column("loss_pct", .double)
            t.column("bitrate_kbps", .double)
            t.column("recorded_at", .datetime).notNull()
        }
        try db.create(index: "quality_samples_by_call", on: "quality_samples", columns: ["call_id", "recorded_at"])

        try db.create(table: "reviews") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).notNull().references("companies", onDelete: .cascade)
            t.column("call_id", .text).notNull().references("video_calls", onDelete: .cascade)
            t.column("author_user_id", .text).references("users", onDelete: .setNull)
            t.column("author_name", .text).notNull()
            t.column("participant_key", .text).notNull()
            t.column("rating", .integer).notNull().check(sql: "rating BETWEEN 1 AND 5")
            t.column("text", .text).notNull().defaults(to: "")
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.uniqueKey(["call_id", "participant_key"])
        }
        try db.create(index: "reviews_by_company", on: "reviews", columns: ["company_id", "created_at"])

        try db.create(table: "comments") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).notNull().references("companies", onDelete: .cascade)
            t.column("call_id", .text).references("video_calls", onDelete: .cascade)
            t.column("review_id", .text).references("reviews", onDelete: .cascade)
            t.column("author_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("text", .text).notNull()
            t.column("created_at", .datetime).notNull()
            t.column("updated_at", .datetime).notNull()
            t.check(sql: "call_id IS NOT NULL OR review_id IS NOT NULL")
        }
        try db.create(index: "comments_by_call", on: "comments", columns: ["call_id", "created_at"])
        try db.create(index: "comments_by_review", on: "comments", columns: ["review_id", "created_at"])

        try db.create(table: "conversations") { t in
            t.column("id", .text).primaryKey()
            t.column("company_id", .text).notNull().references("companies", onDelete: .cascade)
            t.column("title", .text).notNull()
            t.column("created_at", .datetime).notNull()
            t.column("last_message_at", .datetime)
        }
        try db.create(index: "conversations_by_company", on: "conversations", columns: ["company_id", "last_message_at"])
        try db.create(table: "conversation_members") { t in
            t.column("conversation_id", .text).notNull().references("conversations", onDelete: .cascade)
            t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("last_read_at", .datetime)
            t.primaryKey(["conversation_id", "user_id"])
        }
        try db.create(index: "conversation_members_by_user", on: "conversation_members", columns: ["user_id"])
        try db.create(table: "messages") { t in
            t.column("id", .text).primaryKey()
            t.column("conversation_id", .text).notNull().references("conversations", onDelete: .cascade)
            t.column("sender_id", .text).references("users", onDelete: .setNull)
            t.column("body", .text).notNull()
            t.column("created_at", .datetime).notNull()
        }
        try db.create(index: "messages_by_conversation", on: "messages", columns: ["conversation_id", "created_at"])

        try db.create(table: "notifications") { t in
            t.column("id", .text).primaryKey()
            t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
            t.column("kind", .text).notNull()
            t.column("title", .text).notNull()
            t.column("body", .text).notNull().defaults(to: "")
            t.column("data", .text)
            t.column("read_at", .datetime)
            t.column("created_at", .datetime).notNull()
        }
        try db.create(index: "notifications_by_user", on: "notifications", columns: ["user_id", "read_at", "created_at"])

        try db.create(table: "idempotency_records") { t in
            t.column("user_id", .text).notNull()
            t.column("key", .text).notNull()
            t.column("request_hash", .text).notNull()
            t.column("status", .integer).notNull()
            t.column("headers", .text).notNull()
            t.column("body", .blob).notNull()
            t.column("created_at", .datetime).notNull()
            t.primaryKey(["user_id", "key"])
        }
        try db.create(index: "idempotency_by_time", on: "idempotency_records", columns: ["created_at"])

        try db.create(table: "audit_log") { t in
            t.autoIncrementedPrimaryKey("id")
            t.column("company_id", .text)
            t.column("actor_id", .text)
            t.column("action", .text).notNull()
            t.column("target_type", .text)
            t.column("target_id", .text)
            t.column("data", .text)
            t.column("created_at", .datetime).notNull()
        }
        try db.create(index: "audit_log_by_company", on: "audit_log", columns: ["company_id", "created_at"])
        try db.create(index: "audit_log_by_actor", on: "audit_log", columns: ["actor_id", "created_at"])
    }
}
