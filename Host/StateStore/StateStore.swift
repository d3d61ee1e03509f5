import ClusterProtocol
import Dispatch
import Foundation
import Identity

/// The manager's durable state: one narrow set of operations over `SQLDatabase`, the same
/// SQL on SQLite and PostgreSQL. Every write that must be atomic runs in one transaction.
///
/// Calls block (they are C calls into SQLite or libpq); async callers use `run`, which
/// moves the work off the cooperative thread pool.
public final class StateStore: Sendable {
    public let database: SQLDatabase
    private let queue = DispatchQueue(label: "hangar.state-store", attributes: .concurrent)

    /// Opens the database and brings its schema up to date.
    /// - Throws: `StoreError` (connection, or `.schemaTooNew`).
    public convenience init(location: DatabaseLocation) throws {
        try self.init(database: location.open())
    }

    /// Whether the database answers from inside this process (SQLite: a call takes
    /// microseconds and needs no network), so a caller on a thread where blocking is allowed
    /// may call the store directly instead of going through `run`.
    public var answersInProcess: Bool { database.dialect == .sqlite }

    public init(database: SQLDatabase) throws {
        self.database = database
        try Migrations.migrate(database)
    }

    /// Runs blocking store work on a thread of its own and resumes the caller.
    @discardableResult
    public func run<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body(self) })
            }
        }
    }

    public func close() { database.close() }

    public var schemaVersion: Int {
        get throws { Int(try database.withConnection { try $0.query("SELECT MAX(version) AS v FROM schema_version").first?.int("v") ?? 0 }) }
    }

    // MARK: - Bootstrap

    /// Credentials created by `bootstrap`, shown once.
    public struct BootstrapResult: Sendable, Codable, Equatable {
        public var email: String
        public var password: String
        public var accessKey: String
        public var secretKey: String
    }

    public static let defaultDomain = "default"
    public static let defaultProject = "default"
    public static let defaultPolicy = "default"
    public static let defaultResourceGroup = "default"

    /// Creates the default domain, project, resource policies and resource group, and a
    /// superadmin with a keypair — once. Returns nil when the database was already set up.
    public func bootstrap(adminEmail: String = "admin@hangar.local", password: String? = nil,
                         passwordRounds: Int = PasswordHasher.defaultRounds) throws -> BootstrapResult? {
        let password = password ?? KeyGenerator.password()
        let hash = try PasswordHasher.hash(password, rounds: passwordRounds)
        return try database.transaction { c -> BootstrapResult? in
            guard try c.query("SELECT name FROM domains WHERE name = $1", [.text(Self.defaultDomain)]).isEmpty else { return nil }
            let now = Clock.nowMicros()
            try c.execute("INSERT INTO domains (name, description, created_at) VALUES ($1, $2, $3)",
                          [.text(Self.defaultDomain), "The default domain", .int(now)])
            for scope in PolicyScope.allCases {
                try c.execute("""
                    INSERT INTO resource_policies (scope, name, total_resource_slots, max_concurrent_sessions, max_vfolder_count,
                        max_vfolder_size, idle_timeout, created_at) VALUES ($1, $2, '{}', $3, $4, 0, 0, $5)
                    """, [.text(scope.rawValue), .text(Self.defaultPolicy), .int(scope == .keypair ? 30 : 0), .int(scope == .user ? 100 : 0), .int(now)])
            }
            let projectID = UUID().uuidString.lowercased()
            try c.execute("""
                INSERT INTO projects (id, name, domain_name, description, resource_policy, created_at)
                VALUES ($1, $2, $3, 'The default project', $4, $5)
                """, [.text(projectID), .text(Self.defaultProject), .text(Self.defaultDomain), .text(Self.defaultPolicy), .int(now)])
            try c.execute("""
                INSERT INTO resource_groups (name, description, scheduler, agent_selector, created_at)
                VALUES ($1, 'The default resource group', 'fifo', 'concentrated', $2)
                """, [.text(Self.defaultResourceGroup), .int(now)])
            try c.execute("INSERT INTO project_resource_groups (project_id, resource_group) VALUES ($1, $2)",
                          [.text(projectID), .text(Self.defaultResourceGroup)])
            try c.execute("INSERT INTO domain_resource_groups (domain_name, resource_group) VALUES ($1, $2)",
                          [.text(Self.defaultDomain), .text(Self.defaultResourceGroup)])
            let userID = UUID().uuidString.lowercased()
            try Self.insertUser(c, id: userID, email: adminEmail, username: "admin", passwordHash: hash, fullName: "Administrator",
                                role: .superadmin, domain: Self.defaultDomain, now: now)
            try c.execute("INSERT INTO project_members (project_id, user_id) VALUES ($1, $2)", [.text(projectID), .text(userID)])
            let keypair = try Self.insertKeypair(c, userID: userID, isAdmin: true, resourcePolicy: Self.defaultPolicy, rateLimit: 0, now: now)
            return BootstrapResult(email: adminEmail, password: password, accessKey: keypair.accessKey, secretKey: keypair.secretKey)
        }
    }

    // MARK: - Users and keypairs

    private static func insertUser(_ c: SQLConnection, id: String, email: String, username: String, passwordHash: String,
                                   fullName: String, role: UserRole, domain: String, now: Int64, options: NewUserOptions = NewUserOptions()) throws {
        try c.execute("""
            INSERT INTO users (id, email, username, password_hash, full_name, role, status, domain_name, resource_policy, created_at,
                               description, need_password_change, allowed_client_ip, sudo_session_enabled)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            """, [.text(id), .text(email), .text(username), .text(passwordHash), .text(fullName), .text(role.rawValue), .text(options.status),
                  .text(domain), .text(defaultPolicy), .int(now), .text(options.description), SQLValue(options.needPasswordChange),
                  Self.addressList(options.allowedClientIPs), SQLValue(options.sudoSessionEnabled)])
    }

    private static func insertKeypair(_ c: SQLConnection, userID: String, isAdmin: Bool, resourcePolicy: String,
                                      rateLimit: Int64, now: Int64) throws -> Keypair {
        guard try !c.query("SELECT name FROM resource_policies WHERE scope = 'keypair' AND name = $1", [.text(resourcePolicy)]).isEmpty else {
            throw StoreError(.invalid, "no keypair resource policy named '\(resourcePolicy)'")
        }
        let keypair = Keypair(accessKey: KeyGenerator.accessKey(), secretKey: KeyGenerator.secretKey(), userID: userID,
                              isActive: true, isAdmin: isAdmin, resourcePolicy: resourcePolicy, rateLimit: rateLimit, createdAt: now, lastUsed: nil)
        try c.execute("""
            INSERT INTO keypairs (access_key, secret_key, user_id, is_active, is_admin, resource_policy, rate_limit, created_at)
            VALUES ($1, $2, $3, 1, $4, $5, $6, $7)
            """, [.text(keypair.accessKey), .text(keypair.secretKey), .text(userID), SQLValue(isAdmin), .text(resourcePolicy),
                  .int(rateLimit), .int(now)])
        return keypair
    }

    /// Creates a user in a domain and adds them to projects (by name).
    public func createUser(email: String, username: String? = nil, password: String, role: UserRole = .user,
                           fullName: String = "", domain: String = defaultDomain, projects: [String] = [defaultProject],
                           options: NewUserOptions = NewUserOptions(), passwordRounds: Int = PasswordHasher.defaultRounds) throws -> User {
        guard email.contains("@"), email.count <= 254 else { throw StoreError(.invalid, "'\(email)' is not an email address") }
        guard password.count >= 8 else { throw StoreError(.invalid, "the password must have at least 8 characters") }
        let hash = try PasswordHasher.hash(password, rounds: passwordRounds)
        let name = username ?? String(email.split(separator: "@")[0])
        return try database.transaction { c in
            guard try !c.query("SELECT name FROM domains WHERE name = $1", [.text(domain)]).isEmpty else {
                throw StoreError(.notFound, "no domain named '\(domain)'")
            }
            if try !c.query("SELECT id FROM users WHERE email = $1 OR username = $2", [.text(email), .text(name)]).isEmpty {
                throw StoreError(.constraint, "a user with email '\(email)' or username '\(name)' already exists")
            }
            let id = UUID().uuidString.lowercased()
            let now = Clock.nowMicros()
            try Self.insertUser(c, id: id, email: email, username: name, passwordHash: hash, fullName: fullName, role: role, domain: domain, now: now,
                                options: options)
            if options.withKeypair {
                _ = try Self.insertKeypair(c, userID: id, isAdmin: role != .user, resourcePolicy: Self.defaultPolicy, rateLimit: 0, now: now)
            }
            for project in projects {
                guard let row = try c.query("SELECT id FROM projects WHERE domain_name = $1 AND name = $2", [.text(domain), .text(project)]).first,
                      let projectID = row.string("id") else {
                    throw StoreError(.notFound, "no project named '\(project)' in domain '\(domain)'")
                }
                try c.execute("INSERT INTO project_members (project_id, user_id) VALUES ($1, $2)", [.text(projectID), .text(id)])
            }
            return User(id: id, email: email, username: name, fullName: fullName, role: role, status: options.status,
                        domainName: domain, resourcePolicy: Self.defaultPolicy, createdAt: now, description: options.description,
                        needPasswordChange: options.needPasswordChange, allowedClientIPs: options.allowedClientIPs,
                        sudoSessionEnabled: options.sudoSessionEnabled)
        }
    }

    /// A user from a row holding `userColumnNames`, each named `prefix` + column (joins alias
    /// them, e.g. `u_email`).
    private static func user(from r: SQLRow, prefix: String = "") -> User {
        func text(_ column: String) -> String { r.string(prefix + column) ?? "" }
        return User(id: text("id"), email: text("email"), username: text("username"), fullName: text("full_name"),
                    role: UserRole(rawValue: text("role")) ?? .user, status: text("status"), domainName: text("domain_name"),
                    resourcePolicy: text("resource_policy"), createdAt: r.int(prefix + "created_at") ?? 0, description: text("description"),
                    needPasswordChange: r.bool(prefix + "need_password_change"),
                    allowedClientIPs: (try? JSONDecoder().decode([String].self, from: Data((r.string(prefix + "allowed_client_ip") ?? "[]").utf8))) ?? [],
                    sudoSessionEnabled: r.bool(prefix + "sudo_session_enabled"))
    }

    private static let userColumnNames = ["id", "email", "username", "full_name", "role", "status", "domain_name", "resource_policy", "created_at",
                                          "description", "need_password_change", "allowed_client_ip", "sudo_session_enabled"]
    private static let userColumns = userColumnNames.joined(separator: ", ")
    /// The user columns of a join on `users u`, each aliased `u_<column>`.
    private static let joinedUserColumns = userColumnNames.map { "u.\($0) AS u_\($0)" }.joined(separator: ", ")

    /// The stored form of a user's allowed client addresses (a JSON list).
    private static func addressList(_ addresses: [String]) -> SQLValue {
        .text(String(decoding: (try? JSONEncoder().encode(addresses)) ?? Data("[]".utf8), as: UTF8.self))
    }

    public func users(domain: String? = nil) throws -> [User] {
        try database.withConnection { c in
            let rows = if let domain {
                try c.query("SELECT \(Self.userColumns) FROM users WHERE domain_name = $1 ORDER BY created_at, email", [.text(domain)])
            } else {
                try c.query("SELECT \(Self.userColumns) FROM users ORDER BY created_at, email")
            }
            return rows.map { Self.user(from: $0) }
        }
    }

    public func user(email: String) throws -> User? {
        try database.withConnection { c in
            try c.query("SELECT \(Self.userColumns) FROM users WHERE email = $1", [.text(email)]).first.map { Self.user(from: $0) }
        }
    }

    public func user(id: String) throws -> User? {
        try database.withConnection { c in
            try c.query("SELECT \(Self.userColumns) FROM users WHERE id = $1", [.text(id)]).first.map { Self.user(from: $0) }
        }
    }

    /// The user a login names (email or username, in a domain) if `password` is theirs; nil
    /// for an unknown login or a wrong password alike (a caller must not learn which).
    public func user(login: String, domain: String, password: String) throws -> User? {
        let row = try database.withConnection { c in
            try c.query("SELECT \(Self.userColumns), password_hash FROM users WHERE (email = $1 OR username = $1) AND domain_name = $2",
                        [.text(login), .text(domain)]).first
        }
        guard let row, PasswordHasher.verify(password, against: row.string("password_hash") ?? "") else { return nil }
        return Self.user(from: row)
    }

    /// Creates a keypair for a user.
    public func createKeypair(userID: String, isAdmin: Bool = false, resourcePolicy: String = defaultPolicy, rateLimit: Int64 = 0) throws -> Keypair {
        guard rateLimit >= 0 else { throw StoreError(.invalid, "rate_limit must be 0 (unlimited) or a positive number of requests per minute") }
        return try database.transaction { c in
            guard try !c.query("SELECT id FROM users WHERE id = $1", [.text(userID)]).isEmpty else {
                throw StoreError(.notFound, "no user with id '\(userID)'")
            }
            return try Self.insertKeypair(c, userID: userID, isAdmin: isAdmin, resourcePolicy: resourcePolicy, rateLimit: rateLimit, now: Clock.nowMicros())
        }
    }

    private static let keypairColumns = "k.access_key, k.secret_key, k.user_id, k.is_active, k.is_admin, k.resource_policy, k.rate_limit, k.created_at, k.last_used"

    private static func keypair(from r: SQLRow) -> Keypair {
        Keypair(accessKey: r.string("access_key") ?? "", secretKey: r.string("secret_key") ?? "", userID: r.string("user_id") ?? "",
                isActive: r.bool("is_active"), isAdmin: r.bool("is_admin"), resourcePolicy: r.string("resource_policy") ?? "",
                rateLimit: r.int("rate_limit") ?? 0, createdAt: r.int("created_at") ?? 0, lastUsed: r.int("last_used"))
    }

    public func keypairs(userID: String? = nil) throws -> [Keypair] {
        try database.withConnection { c in
            let rows = if let userID {
                try c.query("SELECT \(Self.keypairColumns) FROM keypairs k WHERE k.user_id = $1 ORDER BY k.created_at, k.access_key", [.text(userID)])
            } else {
                try c.query("SELECT \(Self.keypairColumns) FROM keypairs k ORDER BY k.created_at, k.access_key")
            }
            return rows.map(Self.keypair(from:))
        }
    }

    /// Applies `changes` to a user in one transaction (all or nothing).
    /// - Throws: `StoreError` `.notFound` (no such user, project or policy), `.invalid`
    ///   (a short password or an unknown status), `.constraint` (a taken username).
    public func updateUser(id: String, _ changes: UserChanges, passwordRounds: Int = PasswordHasher.defaultRounds) throws -> User {
        if let password = changes.password, password.count < 8 { throw StoreError(.invalid, "the password must have at least 8 characters") }
        if let status = changes.status, !["active", "inactive"].contains(status) {
            throw StoreError(.invalid, "status must be active or inactive, not '\(status)'")
        }
        let hash = try changes.password.map { try PasswordHasher.hash($0, rounds: passwordRounds) }
        return try database.transaction { c in
            guard let row = try c.query("SELECT \(Self.userColumns) FROM users WHERE id = $1", [.text(id)]).first else {
                throw StoreError(.notFound, "no user with id '\(id)'")
            }
            var updates = ColumnUpdates()
            if let username = changes.username {
                if try !c.query("SELECT id FROM users WHERE username = $1 AND id <> $2", [.text(username), .text(id)]).isEmpty {
                    throw StoreError(.constraint, "the username '\(username)' is taken")
                }
                updates.set("username", .text(username))
            }
            if let hash {
                updates.set("password_hash", .text(hash))
                // A new password ends every web login of the user (an admin's reset included).
                try c.execute("DELETE FROM web_sessions WHERE user_id = $1", [.text(id)])
            }
            if let fullName = changes.fullName { updates.set("full_name", .text(fullName)) }
            if let role = changes.role { updates.set("role", .text(role.rawValue)) }
            if let status = changes.status { updates.set("status", .text(status)) }
            if let description = changes.description { updates.set("description", .text(description)) }
            if let flag = changes.needPasswordChange { updates.set("need_password_change", SQLValue(flag)) }
            if let addresses = changes.allowedClientIPs { updates.set("allowed_client_ip", Self.addressList(addresses)) }
            if let flag = changes.sudoSessionEnabled { updates.set("sudo_session_enabled", SQLValue(flag)) }
            if let policy = changes.resourcePolicy {
                guard try !c.query("SELECT name FROM resource_policies WHERE name = $1", [.text(policy)]).isEmpty else {
                    throw StoreError(.notFound, "no resource policy named '\(policy)'")
                }
                updates.set("resource_policy", .text(policy))
            }
            try updates.apply(c, table: "users", key: "id", value: id)
            if let wanted = changes.projects {
                let domain = row.string("domain_name") ?? ""
                var ids: [String] = []
                for name in wanted {
                    guard let found = try c.query("SELECT id FROM projects WHERE domain_name = $1 AND (id = $2 OR name = $2)", [.text(domain), .text(name)]).first?.string("id") else {
                        throw StoreError(.notFound, "no project '\(name)' in domain '\(domain)'")
                    }
                    ids.append(found)
                }
                try c.execute("DELETE FROM project_members WHERE user_id = $1", [.text(id)])
                for project in Set(ids) { try c.execute("INSERT INTO project_members (project_id, user_id) VALUES ($1, $2)", [.text(project), .text(id)]) }
            }
            guard let updated = try c.query("SELECT \(Self.userColumns) FROM users WHERE id = $1", [.text(id)]).first else {
                throw StoreError(.notFound, "no user with id '\(id)'")
            }
            return Self.user(from: updated)
        }
    }

    /// Backend.AI's `delete_user`: the user is marked deleted and every keypair of theirs
    /// deactivated, in one transaction; their records stay (purge removes them).
    public func deleteUser(id: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT id FROM users WHERE id = $1", [.text(id)]).isEmpty else { throw StoreError(.notFound, "no user with id '\(id)'") }
            try c.execute("UPDATE users SET status = 'deleted' WHERE id = $1", [.text(id)])
            try c.execute("UPDATE keypairs SET is_active = 0 WHERE user_id = $1", [.text(id)])
        }
    }

    /// Removes a user and their keypairs, memberships and folder shares for good. Refused,
    /// with nothing changed, while any session of theirs has not ended or they still own a
    /// folder (destroy or delete those first).
    public func purgeUser(id: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT id FROM users WHERE id = $1", [.text(id)]).isEmpty else { throw StoreError(.notFound, "no user with id '\(id)'") }
            let sessions = try c.query("""
                SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(id)]).first?.int("n") ?? 0
            guard sessions == 0 else { throw StoreError(.constraint, "the user still has \(sessions) session(s) that have not ended; destroy them first") }
            let folders = try c.query("SELECT COUNT(*) AS n FROM vfolders WHERE ownership = 'user' AND user_id = $1", [.text(id)]).first?.int("n") ?? 0
            guard folders == 0 else { throw StoreError(.constraint, "the user still owns \(folders) folder(s); delete them (or their contents elsewhere) first") }
            for statement in ["DELETE FROM vfolder_permissions WHERE user_id = $1", "DELETE FROM project_members WHERE user_id = $1",
                              "DELETE FROM keypairs WHERE user_id = $1", "DELETE FROM users WHERE id = $1"] {
                try c.execute(statement, [.text(id)])
            }
        }
    }

    /// One page of keypairs (oldest first) with their owners, the owners' project names and
    /// running-session counts, and how many keypairs match in all, in one query: a list page costs one database round
    /// trip whatever it holds (PostgreSQL answers over the network).
    /// - Parameters:
    ///   - domain: only keypairs of this domain's users (nil: every domain).
    ///   - isActive: only active (true) or inactive (false) keypairs (nil: both).
    public func keypairPage(domain: String?, isActive: Bool?, limit: Int, offset: Int) throws -> (rows: [KeypairListing], total: Int) {
        try database.withConnection { c in
            var clauses: [String] = []
            var params: [SQLValue] = []
            if let domain { params.append(.text(domain)); clauses.append("u.domain_name = $\(params.count)") }
            if let isActive { params.append(.int(isActive ? 1 : 0)); clauses.append("k.is_active = $\(params.count)") }
            let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            params += [.int(Int64(limit)), .int(Int64(offset))]
            // Project names travel as one text joined by the unit separator (never in a name).
            let joinNames = database.dialect == .postgresql ? "string_agg(p.name, chr(31))" : "group_concat(p.name, char(31))"
            let rows = try c.query("""
                SELECT \(Self.keypairColumns), \(Self.joinedUserColumns),
                       (SELECT COUNT(*) FROM sessions s WHERE s.access_key = k.access_key
                          AND s.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED', 'ERROR')) AS active_sessions,
                       (SELECT \(joinNames) FROM projects p JOIN project_members m ON m.project_id = p.id
                          WHERE m.user_id = k.user_id) AS project_names,
                       COUNT(*) OVER () AS total_rows
                FROM keypairs k JOIN users u ON u.id = k.user_id \(filter)
                ORDER BY k.created_at, k.access_key LIMIT $\(params.count - 1) OFFSET $\(params.count)
                """, params)
            let listed = rows.map { r in
                KeypairListing(keypair: Self.keypair(from: r), owner: Self.user(from: r, prefix: "u_"),
                               projectNames: (r.string("project_names") ?? "").split(separator: "\u{1F}").map(String.init).sorted(),
                               activeSessions: Int(r.int("active_sessions") ?? 0))
            }
            if let first = rows.first { return (listed, Int(first.int("total_rows") ?? 0)) }
            // A page past the end has no row to carry the total.
            let countParams = Array(params.dropLast(2))
            let total = try c.query("SELECT COUNT(*) AS n FROM keypairs k JOIN users u ON u.id = k.user_id \(filter)", countParams).first?.int("n") ?? 0
            return (listed, Int(total))
        }
    }

    /// A keypair with its owner's role and status, for authenticating a request.
    public func identity(accessKey: String) throws -> KeypairIdentity? {
        try database.withConnection { c in
            guard let r = try c.query("""
                SELECT \(Self.keypairColumns), u.email AS email, u.role AS role, u.status AS status, u.domain_name AS domain_name,
                    d.is_active AS domain_active
                FROM keypairs k JOIN users u ON u.id = k.user_id JOIN domains d ON d.name = u.domain_name WHERE k.access_key = $1
                """, [.text(accessKey)]).first else { return nil }
            return KeypairIdentity(keypair: Self.keypair(from: r), userEmail: r.string("email") ?? "",
                                   userRole: UserRole(rawValue: r.string("role") ?? "") ?? .user,
                                   userStatus: r.string("status") ?? "", domainName: r.string("domain_name") ?? "",
                                   domainActive: r.bool("domain_active"))
        }
    }

    /// Activates or deactivates a keypair.
    public func setKeypairActive(_ accessKey: String, _ active: Bool) throws {
        let changed = try database.transaction { c in
            try c.execute("UPDATE keypairs SET is_active = $1 WHERE access_key = $2", [SQLValue(active), .text(accessKey)])
        }
        if changed == 0 { throw StoreError(.notFound, "no keypair with access key '\(accessKey)'") }
    }

    /// Changes a keypair's flags, policy or rate limit (nil leaves a field as it is), in one
    /// transaction.
    /// - Throws: `StoreError` `.notFound` (no such keypair or keypair policy), `.invalid`
    ///   (a negative rate limit).
    public func updateKeypair(_ accessKey: String, isActive: Bool? = nil, isAdmin: Bool? = nil, resourcePolicy: String? = nil, rateLimit: Int64? = nil) throws {
        if let rateLimit, rateLimit < 0 { throw StoreError(.invalid, "rate_limit must be 0 (unlimited) or a positive number of requests per minute") }
        try database.transaction { c in
            guard try !c.query("SELECT access_key FROM keypairs WHERE access_key = $1", [.text(accessKey)]).isEmpty else {
                throw StoreError(.notFound, "no keypair with access key '\(accessKey)'")
            }
            var updates = ColumnUpdates()
            if let isActive { updates.set("is_active", SQLValue(isActive)) }
            if let isAdmin { updates.set("is_admin", SQLValue(isAdmin)) }
            if let resourcePolicy {
                guard try !c.query("SELECT name FROM resource_policies WHERE scope = 'keypair' AND name = $1", [.text(resourcePolicy)]).isEmpty else {
                    throw StoreError(.notFound, "no keypair resource policy named '\(resourcePolicy)'")
                }
                updates.set("resource_policy", .text(resourcePolicy))
            }
            if let rateLimit { updates.set("rate_limit", .int(rateLimit)) }
            try updates.apply(c, table: "keypairs", key: "access_key", value: accessKey)
        }
    }

    /// Deletes a keypair. Refused, with nothing changed, while a session started with it has
    /// not ended.
    public func deleteKeypair(_ accessKey: String) throws {
        try database.transaction { c in
            guard try !c.query("SELECT access_key FROM keypairs WHERE access_key = $1", [.text(accessKey)]).isEmpty else {
                throw StoreError(.notFound, "no keypair with access key '\(accessKey)'")
            }
            let sessions = try c.query("""
                SELECT COUNT(*) AS n FROM sessions WHERE access_key = $1 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(accessKey)]).first?.int("n") ?? 0
            guard sessions == 0 else { throw StoreError(.constraint, "\(sessions) session(s) started with \(accessKey) have not ended; destroy them first") }
            try c.execute("DELETE FROM keypairs WHERE access_key = $1", [.text(accessKey)])
        }
    }

    // MARK: - Policies, groups, projects

    public func resourcePolicies(scope: PolicyScope) throws -> [ResourcePolicy] {
        try database.withConnection { c in
            try c.query("SELECT * FROM resource_policies WHERE scope = $1 ORDER BY name", [.text(scope.rawValue)]).map { r in
                ResourcePolicy(scope: scope, name: r.string("name") ?? "",
                               totalResourceSlots: (try? ResourceSlots(json: r.string("total_resource_slots") ?? "{}")) ?? ResourceSlots(),
                               maxConcurrentSessions: r.int("max_concurrent_sessions") ?? 0, maxVfolderCount: r.int("max_vfolder_count") ?? 0,
                               maxVfolderSize: r.int("max_vfolder_size") ?? 0, idleTimeout: r.int("idle_timeout") ?? 0,
                               createdAt: r.int("created_at") ?? 0, maxSessionLifetime: r.int("max_session_lifetime") ?? 0,
                               maxContainersPerSession: r.int("max_containers_per_session") ?? 1,
                               maxConcurrentSFTPSessions: r.int("max_concurrent_sftp_sessions") ?? 1,
                               allowedVFolderHosts: r.string("allowed_vfolder_hosts") ?? "{}",
                               defaultForUnspecified: r.string("default_for_unspecified") ?? "UNLIMITED",
                               maxSessionPriority: r.int("max_session_priority") ?? 100)
            }
        }
    }

    public func resourceGroups() throws -> [ResourceGroup] {
        try database.withConnection { c in
            try c.query("SELECT * FROM resource_groups ORDER BY name").map { r in
                ResourceGroup(name: r.string("name") ?? "", description: r.string("description") ?? "", isActive: r.bool("is_active"),
                              scheduler: r.string("scheduler") ?? "", agentSelector: r.string("agent_selector") ?? "",
                              schedulerOptions: r.string("scheduler_options") ?? "{}", createdAt: r.int("created_at") ?? 0,
                              sandbox: r.string("sandbox"), sandboxPolicy: r.string("sandbox_policy"), isPublic: r.bool("is_public"),
                              wsproxyAddress: r.string("wsproxy_addr"), useHostNetwork: r.bool("use_host_network"))
            }
        }
    }

    /// Sets a resource group's kernel sandbox; the caller has checked the mode and the policy.
    /// - Throws: `StoreError.notFound` when there is no such group.
    public func setResourceGroupSandbox(_ name: String, mode: String?, policy: String?) throws {
        try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no resource group named '\(name)'")
            }
            try c.execute("UPDATE resource_groups SET sandbox = $1, sandbox_policy = $2 WHERE name = $3",
                          [mode.map { .text($0) } ?? .null, policy.map { .text($0) } ?? .null, .text(name)])
        }
    }

    /// Records events of kernels (each filed under its kernel's session); events of kernels
    /// the store does not know are dropped.
    public func addSessionEvents(_ events: [SessionEvent]) throws {
        guard !events.isEmpty else { return }
        try database.transaction { c in
            for event in events {
                guard let session = try c.query("SELECT session_id FROM kernels WHERE id = $1", [.text(event.kernelID)]).first?.string("session_id") else {
                    continue
                }
                try c.execute("INSERT INTO session_events (id, session_id, kernel_id, kind, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                              [.text(UUID().uuidString.lowercased()), .text(session), .text(event.kernelID), .text(event.kind), .text(event.data),
                               .int(event.createdAt)])
            }
        }
    }

    /// A session's events, oldest first.
    public func sessionEvents(session: String) throws -> [SessionEvent] {
        try database.withConnection { c in
            try c.query("SELECT kernel_id, kind, data, created_at FROM session_events WHERE session_id = $1 ORDER BY created_at, id",
                        [.text(session)]).map { r in
                SessionEvent(kernelID: r.string("kernel_id") ?? "", kind: r.string("kind") ?? "", data: r.string("data") ?? "{}",
                             createdAt: r.int("created_at") ?? 0)
            }
        }
    }

    /// Resource groups a user may use through their projects.
    public func resourceGroups(forUser userID: String) throws -> [String] {
        try database.withConnection { c in
            try c.query("""
                SELECT prg.resource_group AS name FROM project_resource_groups prg
                JOIN project_members pm ON pm.project_id = prg.project_id WHERE pm.user_id = $1
                UNION
                SELECT drg.resource_group AS name FROM domain_resource_groups drg JOIN users u ON u.domain_name = drg.domain_name WHERE u.id = $1
                ORDER BY name
                """, [.text(userID)]).compactMap { $0.string("name") }
        }
    }

    /// The projects a user is a member of, by name.
    public func projects(ofUser userID: String) throws -> [Project] {
        try database.withConnection { c in
            try c.query("SELECT p.* FROM projects p JOIN project_members m ON m.project_id = p.id WHERE m.user_id = $1 ORDER BY p.name",
                        [.text(userID)]).map(Self.project)
        }
    }

    /// Creates or replaces a resource policy.
    public func upsertResourcePolicy(_ p: ResourcePolicy) throws {
        try database.transaction { c in
            try c.execute("DELETE FROM resource_policies WHERE scope = $1 AND name = $2", [.text(p.scope.rawValue), .text(p.name)])
            try c.execute("""
                INSERT INTO resource_policies (scope, name, total_resource_slots, max_concurrent_sessions, max_vfolder_count, max_vfolder_size,
                    idle_timeout, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [.text(p.scope.rawValue), .text(p.name), .text(p.totalResourceSlots.json), .int(p.maxConcurrentSessions), .int(p.maxVfolderCount),
                      .int(p.maxVfolderSize), .int(p.idleTimeout), .int(p.createdAt)])
            try c.execute("""
                UPDATE resource_policies SET max_session_lifetime = $1, max_containers_per_session = $2, max_concurrent_sftp_sessions = $3,
                    allowed_vfolder_hosts = $4, default_for_unspecified = $5, max_session_priority = $6 WHERE scope = $7 AND name = $8
                """, [.int(p.maxSessionLifetime), .int(p.maxContainersPerSession), .int(p.maxConcurrentSFTPSessions), .text(p.allowedVFolderHosts),
                      .text(p.defaultForUnspecified), .int(p.maxSessionPriority), .text(p.scope.rawValue), .text(p.name)])
        }
    }

    /// Creates a resource group (scaling group); the caller has checked the plugin names.
    public func createResourceGroup(name: String, description: String, scheduler: String, agentSelector: String, isActive: Bool = true,
                                    now: Int64 = Clock.nowMicros()) throws {
        guard (1...64).contains(name.count), name.range(of: #"^[A-Za-z0-9_.-]+$"#, options: .regularExpression) != nil else {
            throw StoreError(.invalid, "a resource group name is 1-64 letters, digits, '_', '.' or '-'")
        }
        try database.transaction { c in
            guard try c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(name)]).isEmpty else {
                throw StoreError(.constraint, "a resource group named '\(name)' exists")
            }
            try c.execute("INSERT INTO resource_groups (name, description, scheduler, agent_selector, is_active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                          [.text(name), .text(description), .text(scheduler), .text(agentSelector), .int(isActive ? 1 : 0), .int(now)])
        }
    }

    /// Image aliases: alias → "name:tag".
    public func imageAliases() throws -> [String: String] {
        try database.withConnection { c in
            Dictionary(try c.query("SELECT alias, target FROM image_aliases").map { ($0.string("alias") ?? "", $0.string("target") ?? "") },
                       uniquingKeysWith: { a, _ in a })
        }
    }

    /// Points an alias at an image reference (replacing an earlier target).
    public func setImageAlias(_ alias: String, target: String, now: Int64 = Clock.nowMicros()) throws {
        guard (1...255).contains(alias.count), !alias.contains(where: { $0.isWhitespace }), !target.isEmpty else {
            throw StoreError(.invalid, "an alias is 1-255 characters without spaces, and needs a target image")
        }
        try database.transaction { c in
            try c.execute("DELETE FROM image_aliases WHERE alias = $1", [.text(alias)])
            try c.execute("INSERT INTO image_aliases (alias, target, created_at) VALUES ($1, $2, $3)", [.text(alias), .text(target), .int(now)])
        }
    }

    /// Removes an alias; false if there was none.
    @discardableResult
    public func removeImageAlias(_ alias: String) throws -> Bool {
        try database.transaction { c in try c.execute("DELETE FROM image_aliases WHERE alias = $1", [.text(alias)]) > 0 }
    }
}

/// The columns a partial UPDATE changes, collected as the caller finds them, written in one
/// statement (nothing when none was set).
struct ColumnUpdates {
    private var assignments: [String] = []
    private var parameters: [SQLValue] = []

    mutating func set(_ column: String, _ value: SQLValue) {
        parameters.append(value)
        assignments.append("\(column) = $\(parameters.count)")
    }

    /// `UPDATE table SET ... WHERE key = value` with what was set.
    func apply(_ c: SQLConnection, table: String, key: String, value: String) throws {
        guard !assignments.isEmpty else { return }
        try c.execute("UPDATE \(table) SET \(assignments.joined(separator: ", ")) WHERE \(key) = $\(parameters.count + 1)",
                      parameters + [.text(value)])
    }
}
