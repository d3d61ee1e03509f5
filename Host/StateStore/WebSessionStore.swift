import Foundation

/// A webserver login session as the proxy needs it: whose keypair signs the user's requests.
public struct WebSession: Sendable, Equatable {
    public var userID: String
    public var email: String
    public var domainName: String
    public var role: UserRole
    public var userStatus: String
    public var accessKey: String
    public var secretKey: String
    /// Microseconds since the epoch.
    public var expiresAt: Int64
}

/// Failed-login counting shared by every webserver (and manager) on one database: a key (a
/// user's login, a client's address) is blocked once it has `limit` consecutive failures, the
/// last of them less than `window` seconds ago (Backend.AI's webserver: 10 failures, 20 min).
public struct LoginThrottle: Sendable, Equatable {
    public var limit: Int64
    public var window: Double
    public init(limit: Int64, window: Double) {
        self.limit = limit
        self.window = window
    }
}

/// The webserver's login sessions and failed logins. Session ids are never stored, only their
/// SHA-256 (the caller hashes), so the database alone opens no browser session.
extension StateStore {
    /// Seconds until `key` may try again, or nil when it is not blocked.
    public func loginBlocked(key: String, throttle: LoginThrottle, now: Int64 = Clock.nowMicros()) throws -> Double? {
        guard throttle.limit > 0 else { return nil }
        let row = try database.withConnection { c in
            try c.query("SELECT failures, last_failure FROM login_failures WHERE key = $1", [.text(key)]).first
        }
        guard let row, let failures = row.int("failures"), let last = row.int("last_failure") else { return nil }
        let elapsed = Double(now - last) / 1_000_000
        guard failures >= throttle.limit, elapsed < throttle.window else { return nil }
        return throttle.window - elapsed
    }

    /// Counts one failed login against `key`; a failure after a quiet `window` starts a new count.
    public func recordLoginFailure(key: String, window: Double, now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            let row = try c.query("SELECT failures, last_failure FROM login_failures WHERE key = $1", [.text(key)]).first
            if let row, let failures = row.int("failures"), let last = row.int("last_failure") {
                let fresh = Double(now - last) / 1_000_000 >= window
                try c.execute("UPDATE login_failures SET failures = $1, last_failure = $2 WHERE key = $3",
                              [.int(fresh ? 1 : failures + 1), .int(now), .text(key)])
            } else {
                try c.execute("INSERT INTO login_failures (key, failures, last_failure) VALUES ($1, 1, $2)", [.text(key), .int(now)])
            }
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    public func clearLoginFailures(key: String) throws {
        try database.transaction { c in _ = try c.execute("DELETE FROM login_failures WHERE key = $1", [.text(key)]) }
    }

    /// Records a new login session of a user, signing with `accessKey`, valid for `ttl` seconds
    /// (extended while it is used).
    public func createWebSession(idHash: String, userID: String, accessKey: String, ttl: Double, clientAddress: String,
                                 now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            // Expired sessions go when new ones come, so the table does not grow without bound.
            try c.execute("DELETE FROM web_sessions WHERE expires_at <= $1", [.int(now)])
            try c.execute("""
                INSERT INTO web_sessions (id_hash, user_id, access_key, created_at, expires_at, last_seen, client_address)
                VALUES ($1, $2, $3, $4, $5, $4, $6)
                """, [.text(idHash), .text(userID), .text(accessKey), .int(now), .int(now + Int64(ttl * 1_000_000)), .text(clientAddress)])
        }
    }

    /// The live session `idHash` names: not expired, its user active and its keypair active.
    /// A session last seen more than a minute ago is extended to `ttl` seconds from now.
    public func webSession(idHash: String, ttl: Double, now: Int64 = Clock.nowMicros()) throws -> WebSession? {
        let row = try database.withConnection { c in
            try c.query("""
                SELECT w.expires_at, w.last_seen, u.id AS user_id, u.email, u.domain_name, u.role, u.status, k.access_key, k.secret_key
                FROM web_sessions w JOIN users u ON u.id = w.user_id JOIN keypairs k ON k.access_key = w.access_key
                WHERE w.id_hash = $1 AND w.expires_at > $2 AND k.is_active = 1
                """, [.text(idHash), .int(now)]).first
        }
        guard let row, let status = row.string("status"), status == "active" else { return nil }
        var expires = row.int("expires_at") ?? 0
        if now - (row.int("last_seen") ?? 0) > 60_000_000 {
            expires = now + Int64(ttl * 1_000_000)
            try database.transaction { c in
                _ = try c.execute("UPDATE web_sessions SET last_seen = $1, expires_at = $2 WHERE id_hash = $3", [.int(now), .int(expires), .text(idHash)])
            }
        }
        return WebSession(userID: row.string("user_id") ?? "", email: row.string("email") ?? "", domainName: row.string("domain_name") ?? "",
                          role: UserRole(rawValue: row.string("role") ?? "") ?? .user, userStatus: status,
                          accessKey: row.string("access_key") ?? "", secretKey: row.string("secret_key") ?? "", expiresAt: expires)
    }

    /// Ends a login session; true when there was one.
    @discardableResult
    public func deleteWebSession(idHash: String) throws -> Bool {
        try database.transaction { c in try c.execute("DELETE FROM web_sessions WHERE id_hash = $1", [.text(idHash)]) > 0 }
    }

    /// Ends every login session of a user (deactivated, or the password changed).
    public func deleteWebSessions(userID: String) throws {
        try database.transaction { c in _ = try c.execute("DELETE FROM web_sessions WHERE user_id = $1", [.text(userID)]) }
    }

    /// The keypair a login session signs with: the user's oldest active keypair.
    public func loginKeypair(userID: String) throws -> Keypair? {
        try keypairs(userID: userID).first { $0.isActive }
    }
}
