import ClusterProtocol
import Foundation

/// Session (and kernel) statuses, as Backend.AI names them.
public enum SessionStatus: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING", scheduled = "SCHEDULED", preparing = "PREPARING", pulling = "PULLING", creating = "CREATING"
    case running = "RUNNING", terminating = "TERMINATING", terminated = "TERMINATED", cancelled = "CANCELLED", error = "ERROR"
    /// A running session whose containers are being restarted in place (back to RUNNING after).
    case restarting = "RESTARTING"

    /// Statuses after which nothing happens to the session any more.
    public var isTerminal: Bool { self == .terminated || self == .cancelled || self == .error }
    /// Statuses in which the session holds slots on an agent.
    public var holdsSlots: Bool { !isTerminal && self != .pending }
}

/// What a user asks for.
public struct SessionSpec: Sendable, Equatable {
    public var name: String
    public var accessKey: String
    public var userID: String
    public var domain: String
    public var projectID: String
    public var resourceGroup: String
    /// "interactive" or "batch".
    public var type: String
    public var image: String
    public var architecture: String
    /// Per kernel.
    public var requested: ResourceSlots
    public var clusterSize: Int
    /// Where the kernels may run: one agent (`single-node`) or spread over several
    /// (`multi-node`, placed as a gang: all or none).
    public var clusterMode: ClusterMode = .singleNode
    /// Environment variables for every kernel (`config.environ`); Hangar's own
    /// `BACKENDAI_*` variables are set over them.
    public var environment: [String: String] = [:]
    public var startupCommand: String?
    public var priority: Int
    /// Virtual folders to bind-mount into every kernel.
    public var mounts: [SessionMount]
    /// Ports to offer as `preopen` services (the user starts what listens there).
    public var preopenPorts: [Int] = []
    /// Ids of sessions that must end successfully before this one is scheduled.
    public var dependsOn: [String] = []
    /// Whether a session of higher priority may end this one where its resource group
    /// enables preemption; nil: batch sessions may, interactive ones may not.
    public var preemptible: Bool?
    /// Seconds the session may run once it has its slots; it is ended after that, and
    /// backfill may start it ahead of a blocked session when it ends in time.
    public var timeLimit: Int64?

    public init(name: String, accessKey: String, userID: String, domain: String = "default", projectID: String, resourceGroup: String = "default",
                type: String = "interactive", image: String, architecture: String = "x86_64", requested: ResourceSlots, clusterSize: Int = 1,
                startupCommand: String? = nil, priority: Int = 0, mounts: [SessionMount] = []) {
        self.name = name
        self.accessKey = accessKey
        self.userID = userID
        self.domain = domain
        self.projectID = projectID
        self.resourceGroup = resourceGroup
        self.type = type
        self.image = image
        self.architecture = architecture
        self.requested = requested
        self.clusterSize = clusterSize
        self.startupCommand = startupCommand
        self.priority = priority
        self.mounts = mounts
    }
}

/// A virtual folder mounted into a session's kernels.
public struct SessionMount: Sendable, Codable, Equatable {
    public var folderID: String
    public var name: String
    /// Where the folder lives on the agents' hosts (the storage proxy's path; shared storage
    /// on multi-host clusters).
    public var hostPath: String
    public var containerPath: String
    public var readOnly: Bool
    public init(folderID: String, name: String, hostPath: String, containerPath: String, readOnly: Bool) {
        self.folderID = folderID
        self.name = name
        self.hostPath = hostPath
        self.containerPath = containerPath
        self.readOnly = readOnly
    }
}

/// A session as stored.
public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var accessKey: String
    public var resourceGroup: String
    public var type: String
    public var status: SessionStatus
    public var statusInfo: String
    public var image: String
    public var architecture: String
    /// Per kernel.
    public var requested: ResourceSlots
    public var clusterSize: Int
    public var priority: Int
    public var attempts: Int
    public var createdAt: Int64
    /// Whether it may be preempted (the stored choice, or its type's default).
    public var preemptible: Bool = false
    /// Declared seconds it may run once it has its slots; nil: none.
    public var timeLimit: Int64?
    /// One agent for all kernels, or several.
    public var clusterMode: ClusterMode = .singleNode
}

/// Backend.AI's cluster modes.
public enum ClusterMode: String, Sendable, Codable, CaseIterable {
    /// Every kernel on one agent.
    case singleNode = "single-node"
    /// Kernels spread over agents as the selector places them, reserved together.
    case multiNode = "multi-node"
}

extension SessionRecord {
    /// A session as a scheduling snapshot needs it (simulations, tests).
    public init(scheduling id: String, name: String, accessKey: String, resourceGroup: String = "default", type: String = "batch", status: SessionStatus = .pending,
                statusInfo: String = "", image: String = "", architecture: String = "", requested: ResourceSlots, clusterSize: Int = 1,
                priority: Int = 10, attempts: Int = 0, createdAt: Int64, preemptible: Bool = false, timeLimit: Int64? = nil,
                clusterMode: ClusterMode = .singleNode) {
        self.timeLimit = timeLimit
        self.clusterMode = clusterMode
        (self.id, self.name, self.accessKey, self.resourceGroup, self.type, self.status) = (id, name, accessKey, resourceGroup, type, status)
        (self.statusInfo, self.image, self.architecture, self.requested, self.clusterSize) = (statusInfo, image, architecture, requested, clusterSize)
        (self.priority, self.attempts, self.createdAt, self.preemptible) = (priority, attempts, createdAt, preemptible)
    }
}

/// A session with its owner, usage and timing, for listings and info.
public struct SessionDetail: Sendable, Equatable {
    public var session: SessionRecord
    public var userID: String
    public var domain: String
    public var projectID: String
    public var occupied: ResourceSlots
    public var startupCommand: String?
    public var exitCode: Int64?
    /// Microseconds since the epoch.
    public var statusChanged: Int64
    public var terminatedAt: Int64?
    public var lastActivity: Int64
    public var queries: Int64
}

/// One kernel's placement in a reservation.
public struct KernelPlacement: Sendable, Equatable {
    public var kernelID: String
    public var agentID: String
    public init(kernelID: String, agentID: String) {
        self.kernelID = kernelID
        self.agentID = agentID
    }
}

extension StateStore {
    static func session(from r: SQLRow) -> SessionRecord {
        SessionRecord(id: r.string("id") ?? "", name: r.string("name") ?? "", accessKey: r.string("access_key") ?? "",
                      resourceGroup: r.string("resource_group") ?? "", type: r.string("session_type") ?? "",
                      status: SessionStatus(rawValue: r.string("status") ?? "") ?? .error, statusInfo: r.string("status_info") ?? "",
                      image: r.string("image") ?? "", architecture: r.string("architecture") ?? "",
                      requested: (try? ResourceSlots(json: r.string("requested_slots") ?? "{}")) ?? ResourceSlots(),
                      clusterSize: Int(r.int("cluster_size") ?? 1), priority: Int(r.int("priority") ?? 0),
                      attempts: Int(r.int("attempts") ?? 0), createdAt: r.int("created_at") ?? 0,
                      preemptible: r.int("preemptible").map { $0 != 0 } ?? (r.string("session_type") == "batch"),
                      timeLimit: r.int("time_limit"), clusterMode: ClusterMode(rawValue: r.string("cluster_mode") ?? "") ?? .singleNode)
    }

    private static func history(_ c: SQLConnection, _ id: String, _ status: SessionStatus, _ now: Int64) throws {
        try c.execute("INSERT INTO session_status_history (session_id, status, at) VALUES ($1, $2, $3)", [.text(id), .text(status.rawValue), .int(now)])
    }

    /// Creates a PENDING session with `clusterSize` PENDING kernels, in one transaction.
    public func createSession(_ spec: SessionSpec, now: Int64 = Clock.nowMicros()) throws -> SessionRecord {
        guard (1...64).contains(spec.clusterSize) else { throw StoreError(.invalid, "clusterSize must be between 1 and 64, got \(spec.clusterSize)") }
        guard !spec.name.isEmpty, spec.name.count <= 64 else { throw StoreError(.invalid, "the session name must have 1-64 characters") }
        return try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(spec.resourceGroup)]).isEmpty else {
                throw StoreError(.notFound, "no resource group named '\(spec.resourceGroup)'")
            }
            let id = UUID().uuidString.lowercased()
            try c.execute("""
                INSERT INTO sessions (id, name, access_key, user_id, domain_name, project_id, resource_group, session_type, status,
                    status_changed, image, architecture, requested_slots, cluster_size, startup_command, priority, created_at, mounts,
                    preopen_ports, preemptible, time_limit, cluster_mode, environ)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10, $11, $12, $13, $14, $15, $9, $16, $17, $18, $19, $20, $21)
                """, [.text(id), .text(spec.name), .text(spec.accessKey), .text(spec.userID), .text(spec.domain), .text(spec.projectID),
                      .text(spec.resourceGroup), .text(spec.type), .int(now), .text(spec.image), .text(spec.architecture),
                      .text(spec.requested.json), .int(Int64(spec.clusterSize)), SQLValue(spec.startupCommand), .int(Int64(spec.priority)),
                      .text(String(decoding: try JSONEncoder().encode(spec.mounts), as: UTF8.self)),
                      .text(String(decoding: try JSONEncoder().encode(spec.preopenPorts), as: UTF8.self)),
                      spec.preemptible.map { SQLValue($0) } ?? .null, spec.timeLimit.map { SQLValue.int($0) } ?? .null,
                      .text(spec.clusterMode.rawValue), .text(String(decoding: try JSONEncoder().encode(spec.environment), as: UTF8.self))])
            for index in 0..<spec.clusterSize {
                try c.execute("""
                    INSERT INTO kernels (id, session_id, cluster_role, cluster_idx, status, requested_slots, created_at)
                    VALUES ($1, $2, $3, $4, 'PENDING', $5, $6)
                    """, [.text(UUID().uuidString.lowercased()), .text(id), .text(index == 0 ? "main" : "sub"), .int(Int64(index)),
                          .text(spec.requested.json), .int(now)])
            }
            for target in Set(spec.dependsOn).sorted() {
                guard try !c.query("SELECT id FROM sessions WHERE id = $1", [.text(target)]).isEmpty else {
                    throw StoreError(.notFound, "no session with id '\(target)' to depend on")
                }
                try c.execute("INSERT INTO session_dependencies (session_id, depends_on) VALUES ($1, $2)", [.text(id), .text(target)])
            }
            try Self.history(c, id, .pending, now)
            try Self.wakeScheduler(c, dialect: database.dialect)
            return SessionRecord(id: id, name: spec.name, accessKey: spec.accessKey, resourceGroup: spec.resourceGroup, type: spec.type,
                                 status: .pending, statusInfo: "", image: spec.image, architecture: spec.architecture, requested: spec.requested,
                                 clusterSize: spec.clusterSize, priority: spec.priority, attempts: 0, createdAt: now,
                                 preemptible: spec.preemptible ?? (spec.type == "batch"), timeLimit: spec.timeLimit, clusterMode: spec.clusterMode)
        }
    }

    /// A session another one depends on, as far as scheduling and the dependency graph need.
    public struct DependencyState: Sendable, Equatable {
        public var id: String
        public var name: String
        public var status: SessionStatus
        public var exitCode: Int64?
        /// When it entered its current status.
        public var statusChanged: Int64
        /// Ended successfully: TERMINATED without a failing exit status.
        public var succeeded: Bool { status == .terminated && (exitCode ?? 0) == 0 }
        /// Ended in a way that can never satisfy a dependency.
        public var failed: Bool { status.isTerminal && !succeeded }

        public init(id: String, name: String, status: SessionStatus, exitCode: Int64?, statusChanged: Int64) {
            self.id = id
            self.name = name
            self.status = status
            self.exitCode = exitCode
            self.statusChanged = statusChanged
        }
    }

    /// What the pending sessions of a resource group depend on (those without are absent).
    public func pendingDependencies(resourceGroup: String) throws -> [String: [DependencyState]] {
        try dependencies(where: "p.resource_group = $1 AND p.status = 'PENDING'", [.text(resourceGroup)])
    }

    /// What one session depends on, directly.
    public func dependencies(of session: String) throws -> [DependencyState] {
        try dependencies(where: "p.id = $1", [.text(session)])[session] ?? []
    }

    /// Ids of the sessions that depend on `session`, directly or through others (its
    /// dependents first, breadth-first), for a recursive destroy.
    public func dependents(of session: String) throws -> [String] {
        try database.withConnection { c in
            var found: [String] = []
            var frontier = [session]
            while let next = frontier.first, found.count < 1000 {
                frontier.removeFirst()
                for r in try c.query("SELECT session_id FROM session_dependencies WHERE depends_on = $1 ORDER BY session_id", [.text(next)]) {
                    guard let id = r.string("session_id"), id != session, !found.contains(id) else { continue }
                    found.append(id)
                    frontier.append(id)
                }
            }
            return found
        }
    }

    private func dependencies(where condition: String, _ values: [SQLValue]) throws -> [String: [DependencyState]] {
        try database.withConnection { c in
            var result: [String: [DependencyState]] = [:]
            for r in try c.query("""
                SELECT d.session_id AS owner, s.id AS id, s.name AS name, s.status AS status, s.exit_code AS exit_code, s.status_changed AS changed
                FROM session_dependencies d JOIN sessions p ON p.id = d.session_id JOIN sessions s ON s.id = d.depends_on
                WHERE \(condition) ORDER BY s.created_at, s.id
                """, values) {
                result[r.string("owner") ?? "", default: []].append(DependencyState(
                    id: r.string("id") ?? "", name: r.string("name") ?? "", status: SessionStatus(rawValue: r.string("status") ?? "") ?? .error,
                    exitCode: r.int("exit_code"), statusChanged: r.int("changed") ?? 0))
            }
            return result
        }
    }

    public func session(id: String) throws -> SessionRecord? {
        try database.withConnection { c in try c.query("SELECT * FROM sessions WHERE id = $1", [.text(id)]).first.map(Self.session(from:)) }
    }

    public func sessions(resourceGroup: String, status: SessionStatus) throws -> [SessionRecord] {
        try database.withConnection { c in
            try c.query("SELECT * FROM sessions WHERE resource_group = $1 AND status = $2 ORDER BY created_at, id",
                        [.text(resourceGroup), .text(status.rawValue)]).map(Self.session(from:))
        }
    }

    /// A session by id, or by name (the newest, live ones first), optionally of one access key
    /// or one domain (what a domain admin may see).
    public func findSession(_ nameOrID: String, accessKey: String?, domain: String? = nil) throws -> SessionRecord? {
        try database.withConnection { c in
            var sql = "SELECT * FROM sessions WHERE (id = $1 OR name = $1)"
            var params: [SQLValue] = [.text(nameOrID)]
            if let accessKey { params.append(.text(accessKey)); sql += " AND access_key = $\(params.count)" }
            if let domain { params.append(.text(domain)); sql += " AND domain_name = $\(params.count)" }
            sql += " ORDER BY CASE WHEN status IN ('TERMINATED', 'CANCELLED', 'ERROR') THEN 1 ELSE 0 END, created_at DESC LIMIT 1"
            return try c.query(sql, params).first.map(Self.session(from:))
        }
    }

    /// Sessions visible to a caller, newest first: one access key's, one domain's, or all.
    /// - Parameter statuses: only these (empty: all).
    public func listSessions(accessKey: String?, domain: String?, statuses: [SessionStatus] = [], limit: Int = 100, offset: Int = 0) throws -> (items: [SessionDetail], total: Int) {
        try database.withConnection { c in
            var conditions: [String] = []
            var params: [SQLValue] = []
            if let accessKey { params.append(.text(accessKey)); conditions.append("s.access_key = $\(params.count)") }
            if let domain { params.append(.text(domain)); conditions.append("s.domain_name = $\(params.count)") }
            if !statuses.isEmpty {
                let marks = statuses.map { status -> String in params.append(.text(status.rawValue)); return "$\(params.count)" }
                conditions.append("s.status IN (\(marks.joined(separator: ", ")))")
            }
            let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            let total = Int(try c.query("SELECT COUNT(*) AS n FROM sessions s" + filter, params).first?.int("n") ?? 0)
            let rows = try c.query("SELECT s.* FROM sessions s\(filter) ORDER BY s.created_at DESC, s.id LIMIT \(max(0, min(limit, 10_000))) OFFSET \(max(0, offset))", params)
            return (rows.map(Self.detail(from:)), total)
        }
    }

    /// One session with everything the info endpoints show.
    public func sessionDetail(id: String) throws -> SessionDetail? {
        try database.withConnection { c in try c.query("SELECT * FROM sessions WHERE id = $1", [.text(id)]).first.map(Self.detail(from:)) }
    }

    static func detail(from r: SQLRow) -> SessionDetail {
        SessionDetail(session: session(from: r), userID: r.string("user_id") ?? "", domain: r.string("domain_name") ?? "",
                      projectID: r.string("project_id") ?? "", occupied: (try? ResourceSlots(json: r.string("occupied_slots") ?? "{}")) ?? ResourceSlots(),
                      startupCommand: r.string("startup_command"), exitCode: r.int("exit_code"), statusChanged: r.int("status_changed") ?? 0,
                      terminatedAt: r.int("terminated_at"), lastActivity: r.int("last_activity") ?? 0, queries: r.int("num_queries") ?? 0)
    }

    /// The folders a session mounts.
    public func sessionMounts(_ id: String) throws -> [SessionMount] {
        try database.withConnection { c in
            let text = try c.query("SELECT mounts FROM sessions WHERE id = $1", [.text(id)]).first?.string("mounts") ?? "[]"
            return (try? JSONDecoder().decode([SessionMount].self, from: Data(text.utf8))) ?? []
        }
    }

    /// Notes code execution in a session: resets its idle clock and counts queries.
    public func noteActivity(session id: String, query: Bool, now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            try c.execute("UPDATE sessions SET last_activity = $1, num_queries = num_queries + $2 WHERE id = $3",
                          [.int(now), .int(query ? 1 : 0), .text(id)])
        }
    }

    /// Running interactive sessions idle for longer than their keypair's resource policy allows.
    public func idleSessions(now: Int64 = Clock.nowMicros()) throws -> [(id: String, idleSeconds: Int64, limit: Int64)] {
        try database.withConnection { c in
            try c.query("""
                SELECT s.id AS id, s.last_activity AS last_activity, s.status_changed AS status_changed, p.idle_timeout AS idle_timeout
                FROM sessions s JOIN keypairs k ON k.access_key = s.access_key
                JOIN resource_policies p ON p.scope = 'keypair' AND p.name = k.resource_policy
                WHERE s.status = 'RUNNING' AND s.session_type = 'interactive' AND p.idle_timeout > 0
                """).compactMap { r in
                let since = max(r.int("last_activity") ?? 0, r.int("status_changed") ?? 0)
                let limit = r.int("idle_timeout") ?? 0
                let idle = (now - since) / 1_000_000
                return idle >= limit ? (r.string("id") ?? "", idle, limit) : nil
            }
        }
    }

    /// Live sessions older than their keypair policy's `max_session_lifetime` (seconds; 0: no
    /// limit), with their age and the limit.
    public func expiredSessions(now: Int64 = Clock.nowMicros()) throws -> [(id: String, ageSeconds: Int64, limit: Int64)] {
        try database.withConnection { c in
            try c.query("""
                SELECT s.id AS id, s.created_at AS created_at, p.max_session_lifetime AS lifetime
                FROM sessions s JOIN keypairs k ON k.access_key = s.access_key
                JOIN resource_policies p ON p.scope = 'keypair' AND p.name = k.resource_policy
                WHERE s.status IN ('SCHEDULED', 'PREPARING', 'PULLING', 'CREATING', 'RUNNING') AND p.max_session_lifetime > 0
                """).compactMap { r in
                let limit = r.int("lifetime") ?? 0
                let age = (now - (r.int("created_at") ?? now)) / 1_000_000
                return age >= limit ? (r.string("id") ?? "", age, limit) : nil
            }
        }
    }

    /// Sessions that have held their slots longer than their declared time limit.
    public func sessionsPastTimeLimit(now: Int64 = Clock.nowMicros()) throws -> [(id: String, ranSeconds: Int64, limit: Int64)] {
        try database.withConnection { c in
            try c.query("""
                SELECT id, scheduled_at, time_limit FROM sessions
                WHERE status IN ('SCHEDULED', 'PREPARING', 'PULLING', 'CREATING', 'RUNNING') AND time_limit IS NOT NULL
                  AND scheduled_at IS NOT NULL AND scheduled_at + time_limit * 1000000 <= $1
                """, [.int(now)]).map { r in
                (r.string("id") ?? "", (now - (r.int("scheduled_at") ?? now)) / 1_000_000, r.int("time_limit") ?? 0)
            }
        }
    }

    /// One kernel as listings show it.
    public struct KernelSummary: Sendable, Equatable {
        public var id: String
        public var clusterRole: String
        /// 0-based.
        public var clusterIndex: Int
        public var status: String
        public var statusInfo: String
        public var agentID: String?
        public var containerID: String?
        /// The occupied slots as stored (a JSON object).
        public var occupiedSlotsJSON: String
        /// Backend.AI's 1-based index within the role: the main kernel is 1, the sub kernels
        /// 1, 2, ... (stored indices are the 0-based position in the cluster).
        public var roleIndex: Int { clusterRole == "main" ? 1 : max(clusterIndex, 1) }
        /// The kernel's name in its cluster: `main1`, `sub1`, `sub2`, ...
        public var clusterHostname: String { "\(clusterRole)\(roleIndex)" }
    }

    /// The kernels of a session, in cluster order.
    public func kernels(session: String) throws -> [KernelSummary] {
        try database.withConnection { c in
            try c.query("SELECT id, cluster_role, cluster_idx, status, status_info, agent_id, container_id, occupied_slots FROM kernels WHERE session_id = $1 ORDER BY cluster_idx",
                        [.text(session)]).map { k in
                KernelSummary(id: k.string("id") ?? "", clusterRole: k.string("cluster_role") ?? "main", clusterIndex: Int(k.int("cluster_idx") ?? 0),
                              status: k.string("status") ?? "", statusInfo: k.string("status_info") ?? "", agentID: k.string("agent_id"),
                              containerID: k.string("container_id"), occupiedSlotsJSON: k.string("occupied_slots") ?? "{}")
            }
        }
    }

    /// Gives a cluster session the lowest network number no other live session holds (it
    /// names the session's network on the agents) and answers it; a session that has one keeps
    /// it. The unique index on live sessions' numbers makes two managers choosing at once
    /// safe: the second fails and chooses again.
    /// - Throws: `StoreError(.invalid)` when all `count` numbers are taken.
    public func assignNetworkIndex(session: String, count: Int) throws -> Int {
        for attempt in 0..<3 {
            do {
                return try database.transaction { c -> Int in
                    if let held = try c.query("SELECT network_index FROM sessions WHERE id = $1", [.text(session)]).first?.int("network_index") {
                        return Int(held)
                    }
                    let taken = Set(try c.query("""
                        SELECT network_index FROM sessions
                        WHERE network_index IS NOT NULL AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                        """).compactMap { $0.int("network_index") })
                    guard let free = (0..<Int64(count)).first(where: { !taken.contains($0) }) else {
                        throw StoreError(.invalid, "all \(count) session networks are in use by live cluster sessions; end one, or give the manager a larger session_network_pool")
                    }
                    try c.execute("UPDATE sessions SET network_index = $1 WHERE id = $2", [.int(free), .text(session)])
                    return Int(free)
                }
            } catch let error as StoreError where error.code == .constraint && attempt < 2 {
                // Another manager took the same number in the meantime: choose again.
                continue
            }
        }
        throw StoreError(.invalid, "no session network number could be assigned to session \(session)")
    }

    /// The session a kernel belongs to.
    public func sessionID(ofKernel kernel: String) throws -> String? {
        try database.withConnection { try $0.query("SELECT session_id FROM kernels WHERE id = $1", [.text(kernel)]).first?.string("session_id") }
    }

    /// A session's startup command (nil for none).
    /// The environment variables a session's creator asked for.
    public func sessionEnvironment(_ session: String) throws -> [String: String] {
        let text = try database.withConnection { try $0.query("SELECT environ FROM sessions WHERE id = $1", [.text(session)]).first?.string("environ") }
        return (try? JSONDecoder().decode([String: String].self, from: Data((text ?? "{}").utf8))) ?? [:]
    }

    public func startupCommand(session: String) throws -> String? {
        try database.withConnection { try $0.query("SELECT startup_command FROM sessions WHERE id = $1", [.text(session)]).first?.string("startup_command") }
    }

    /// A session's exit code, once it has one.
    public func exitCode(session: String) throws -> Int64? {
        try database.withConnection { try $0.query("SELECT exit_code FROM sessions WHERE id = $1", [.text(session)]).first?.int("exit_code") }
    }

    /// Sessions still holding kernels on an agent (not ended, not pending).
    public func activeSessions(onAgent agent: String) throws -> [String] {
        try database.withConnection {
            try $0.query("""
                SELECT DISTINCT s.id AS id FROM sessions s JOIN kernels k ON k.session_id = s.id
                WHERE k.agent_id = $1 AND s.status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR', 'PENDING')
                ORDER BY s.id
                """, [.text(agent)]).compactMap { $0.string("id") }
        }
    }

    /// Kernels of a session with their agents: (kernel id, agent id or nil).
    public func kernelAgents(session: String) throws -> [(String, String?)] {
        try database.withConnection { c in
            try c.query("SELECT id, agent_id FROM kernels WHERE session_id = $1 ORDER BY cluster_idx", [.text(session)])
                .map { ($0.string("id") ?? "", $0.string("agent_id")) }
        }
    }

    /// Keeps a kernel's console output (its container is about to be removed).
    public func saveLogs(kernel id: String, _ logs: String) throws {
        try database.transaction { try $0.execute("UPDATE kernels SET logs = $1 WHERE id = $2", [.text(logs), .text(id)]) }
    }

    /// The kept console output of a kernel, if any.
    public func savedLogs(kernel id: String) throws -> String? {
        try database.withConnection { try $0.query("SELECT logs FROM kernels WHERE id = $1", [.text(id)]).first?.string("logs") }
    }

    /// Kernel ids of a session, in cluster order.
    public func kernelIDs(session: String) throws -> [String] {
        try database.withConnection { c in
            try c.query("SELECT id FROM kernels WHERE session_id = $1 ORDER BY cluster_idx", [.text(session)]).compactMap { $0.string("id") }
        }
    }

    /// Renames a session; names are unique among an owner's sessions that have not ended.
    /// - Throws: `StoreError` `.notFound`, `.invalid` (the session has ended), `.constraint`
    ///   (another live session of the owner has the name).
    public func renameSession(_ id: String, to name: String) throws {
        try database.transaction { c in
            guard let row = try c.query("SELECT access_key, status FROM sessions WHERE id = $1", [.text(id)]).first else {
                throw StoreError(.notFound, "no session with id '\(id)'")
            }
            guard let status = SessionStatus(rawValue: row.string("status") ?? ""), !status.isTerminal else {
                throw StoreError(.invalid, "the session has ended; only live sessions are renamed")
            }
            guard try c.query("""
                SELECT id FROM sessions WHERE access_key = $1 AND name = $2 AND id <> $3 AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(row.string("access_key") ?? ""), .text(name), .text(id)]).isEmpty else {
                throw StoreError(.constraint, "you already have a session named '\(name)'")
            }
            try c.execute("UPDATE sessions SET name = $1 WHERE id = $2", [.text(name), .text(id)])
        }
    }

    /// Status transitions of a session with their times.
    public func statusHistory(session: String) throws -> [(SessionStatus, Int64)] {
        try database.withConnection { c in
            try c.query("SELECT status, at FROM session_status_history WHERE session_id = $1 ORDER BY at, status", [.text(session)])
                .compactMap { r in SessionStatus(rawValue: r.string("status") ?? "").map { ($0, r.int("at") ?? 0) } }
        }
    }

    /// What holds the slots of a resource group's agents: each live session's kernels with
    /// their agent, owner and occupied slots (for saying why a session waits).
    public func slotHolders(resourceGroup: String) throws -> [SlotHolder] {
        try database.withConnection { c in
            try c.query("""
                SELECT s.id AS session_id, s.name AS name, s.access_key AS access_key, k.agent_id AS agent_id, k.occupied_slots AS occupied,
                       s.priority AS priority, s.status AS status, s.session_type AS session_type, s.preemptible AS preemptible,
                       s.scheduled_at AS scheduled_at, s.time_limit AS time_limit
                FROM kernels k JOIN sessions s ON s.id = k.session_id
                WHERE s.resource_group = $1 AND k.agent_id IS NOT NULL AND s.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED', 'ERROR')
                ORDER BY s.created_at, s.name
                """, [.text(resourceGroup)]).map { r in
                var holder = SlotHolder(sessionName: r.string("name") ?? "", accessKey: r.string("access_key") ?? "", agentID: r.string("agent_id") ?? "",
                                        occupied: (try? ResourceSlots(json: r.string("occupied") ?? "{}")) ?? ResourceSlots())
                holder.sessionID = r.string("session_id") ?? ""
                holder.priority = Int(r.int("priority") ?? 0)
                holder.status = SessionStatus(rawValue: r.string("status") ?? "") ?? .running
                holder.preemptible = r.int("preemptible").map { $0 != 0 } ?? (r.string("session_type") == "batch")
                // The API bounds limits to ten years; the clamp keeps a hand-edited row from overflowing.
                if let start = r.int("scheduled_at"), let limit = r.int("time_limit") { holder.expectedEnd = start + min(max(limit, 0), 315_360_000) * 1_000_000 }
                return holder
            }
        }
    }

    /// Sessions of an access key that hold slots (for max_concurrent_sessions).
    public func activeSessionCount(accessKey: String) throws -> Int {
        try database.withConnection { c in
            Int(try c.query("""
                SELECT COUNT(*) AS n FROM sessions WHERE access_key = $1 AND status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED', 'ERROR')
                """, [.text(accessKey)]).first?.int("n") ?? 0)
        }
    }

    /// Reserves slots for a PENDING session's kernels on the chosen agents, in one
    /// transaction that re-reads each agent's occupancy: if another scheduler got there first
    /// and the slots no longer fit, nothing changes and false is returned. Agents are never
    /// over-committed, however many scheduling passes race.
    public func reserve(session id: String, placements: [KernelPlacement], now: Int64 = Clock.nowMicros()) throws -> Bool {
        try database.transaction { c in
            let lock = database.dialect == .postgresql ? " FOR UPDATE" : ""
            guard let row = try c.query("SELECT status, requested_slots FROM sessions WHERE id = $1" + lock, [.text(id)]).first,
                  row.string("status") == SessionStatus.pending.rawValue else { return false }
            let request = try ResourceSlots(json: row.string("requested_slots") ?? "{}")
            var added: [String: ResourceSlots] = [:]
            for p in placements { added[p.agentID] = (added[p.agentID] ?? ResourceSlots()) + request }
            // Lock agents in a fixed order so two reservations never deadlock.
            for agentID in added.keys.sorted() {
                guard let a = try c.query("SELECT capacity_slots, occupied_slots, status, schedulable FROM agents WHERE id = $1" + lock,
                                          [.text(agentID)]).first,
                      a.string("status") == AgentStatus.alive.rawValue, a.bool("schedulable") else { return false }
                let capacity = try ResourceSlots(json: a.string("capacity_slots") ?? "{}")
                let occupied = try ResourceSlots(json: a.string("occupied_slots") ?? "{}") + added[agentID]!
                for (slot, amount) in occupied.amounts where amount > capacity[slot] { return false }
                try c.execute("UPDATE agents SET occupied_slots = $1 WHERE id = $2", [.text(occupied.json), .text(agentID)])
            }
            for p in placements {
                try c.execute("UPDATE kernels SET agent_id = $1, status = 'SCHEDULED', occupied_slots = $2, usage_accounted_at = $5 WHERE id = $3 AND session_id = $4",
                              [.text(p.agentID), .text(request.json), .text(p.kernelID), .text(id), .int(now)])
            }
            try c.execute("UPDATE sessions SET status = 'SCHEDULED', status_info = '', status_changed = $1, scheduled_at = $1, occupied_slots = $2 WHERE id = $3",
                          [.int(now), .text(placements.reduce(ResourceSlots()) { total, _ in total + request }.json), .text(id)])
            try Self.history(c, id, .scheduled, now)
            return true
        }
    }

    /// A pass could not place the session: it stays PENDING with a reason users can read.
    public func notePending(session id: String, reason: String) throws {
        try notePending([(id, reason)])
    }

    /// The same for every session a pass could not place, in one transaction.
    public func notePending(_ notes: [(session: String, reason: String)]) throws {
        guard !notes.isEmpty else { return }
        try database.transaction { c in
            for note in notes {
                try c.execute("UPDATE sessions SET attempts = attempts + 1, status_info = $1 WHERE id = $2 AND status = 'PENDING'",
                              [.text(note.reason), .text(note.session)])
            }
        }
    }

    /// The end of a pass over a resource group: every session it considered and left
    /// PENDING counts one more attempt (one statement), and only reasons that changed are
    /// rewritten, so a pass over a long, stuck queue writes little.
    /// - Parameters:
    ///   - consideredUpTo: the newest `created_at` the pass loaded; later sessions are untouched.
    ///   - placed: sessions the pass reserved (no longer PENDING anyway).
    ///   - changedReasons: sessions whose reason differs from the stored one.
    public func notePass(resourceGroup: String, consideredUpTo: Int64, changedReasons: [(session: String, reason: String)]) throws {
        try database.transaction { c in try Self.notePass(c, resourceGroup: resourceGroup, consideredUpTo: consideredUpTo, changedReasons: changedReasons) }
    }

    private static func notePass(_ c: SQLConnection, resourceGroup: String, consideredUpTo: Int64, changedReasons: [(session: String, reason: String)]) throws {
        try c.execute("UPDATE sessions SET attempts = attempts + 1 WHERE resource_group = $1 AND status = 'PENDING' AND created_at <= $2",
                      [.text(resourceGroup), .int(consideredUpTo)])
        for note in changedReasons {
            try c.execute("UPDATE sessions SET status_info = $1 WHERE id = $2 AND status = 'PENDING'", [.text(note.reason), .text(note.session)])
        }
    }

    /// Applies a scheduling pass's plan in one transaction: the cancellations (releasing
    /// nothing, since pending sessions hold nothing), the reservations (each re-checked as in
    /// `reserve(_:)`), and the pass's notes, whose reasons may depend on which reservations
    /// were made. Either all of it is written or none of it.
    /// - Parameters:
    ///   - epoch: the scheduling leader's epoch the pass was planned under; the whole pass is
    ///     refused (`StoreError.Code.leadershipLost`) when another manager leads now. nil: unfenced.
    ///   - reasons: given whether each reservation was made, the pending sessions' reasons that
    ///     differ from the stored ones.
    /// - Returns: per reservation, whether it was made.
    public func applyPass(resourceGroup: String, cancellations: [(session: String, reason: String)],
                          reservations: [(session: String, placements: [KernelPlacement])], consideredUpTo: Int64, epoch: Int64? = nil,
                          reasons: ([Bool]) throws -> [(session: String, reason: String)], now: Int64 = Clock.nowMicros()) throws -> [Bool] {
        try database.transaction { c in
            try Self.fence(c, dialect: database.dialect, epoch: epoch)
            for (session, reason) in cancellations {
                _ = try Self.transition(c, dialect: database.dialect, session: session, to: .cancelled, reason: reason, exitCode: nil, now: now)
            }
            let made = reservations.isEmpty ? [] : try Self.reserve(c, dialect: database.dialect, reservations, now: now)
            try Self.notePass(c, resourceGroup: resourceGroup, consideredUpTo: consideredUpTo, changedReasons: reasons(made))
            return made
        }
    }

    /// Reserves several sessions in one transaction, each all-or-nothing and re-checked
    /// against the agents as they are now (another pass or manager may have taken capacity).
    /// The agents involved are locked up front in one fixed order, so concurrent batches
    /// never deadlock.
    /// - Returns: per reservation, whether it was made.
    public func reserve(_ batch: [(session: String, placements: [KernelPlacement])], now: Int64 = Clock.nowMicros()) throws -> [Bool] {
        guard !batch.isEmpty else { return [] }
        return try database.transaction { c in try Self.reserve(c, dialect: database.dialect, batch, now: now) }
    }

    private static func reserve(_ c: SQLConnection, dialect: SQLDialect, _ batch: [(session: String, placements: [KernelPlacement])], now: Int64) throws -> [Bool] {
        do {
            let lock = dialect == .postgresql ? " FOR UPDATE" : ""
            var agents: [String: (capacity: ResourceSlots, occupied: ResourceSlots, usable: Bool)] = [:]
            for agentID in Set(batch.flatMap { $0.placements.map(\.agentID) }).sorted() {
                guard let a = try c.query("SELECT capacity_slots, occupied_slots, status, schedulable FROM agents WHERE id = $1" + lock,
                                          [.text(agentID)]).first else { continue }
                agents[agentID] = (try ResourceSlots(json: a.string("capacity_slots") ?? "{}"), try ResourceSlots(json: a.string("occupied_slots") ?? "{}"),
                                   a.string("status") == AgentStatus.alive.rawValue && a.bool("schedulable"))
            }
            var touched = Set<String>()
            var results: [Bool] = []
            for (id, placements) in batch {
                guard let row = try c.query("SELECT status, requested_slots FROM sessions WHERE id = $1" + lock, [.text(id)]).first,
                      row.string("status") == SessionStatus.pending.rawValue else { results.append(false); continue }
                let request = try ResourceSlots(json: row.string("requested_slots") ?? "{}")
                var added: [String: ResourceSlots] = [:]
                for p in placements { added[p.agentID] = (added[p.agentID] ?? ResourceSlots()) + request }
                let fits = added.allSatisfy { agentID, extra in
                    guard let a = agents[agentID], a.usable else { return false }
                    let occupied = a.occupied + extra
                    return occupied.amounts.allSatisfy { $0.value <= a.capacity[$0.key] }
                }
                guard fits else { results.append(false); continue }
                for (agentID, extra) in added {
                    agents[agentID]!.occupied = agents[agentID]!.occupied + extra
                    touched.insert(agentID)
                }
                for p in placements {
                    try c.execute("UPDATE kernels SET agent_id = $1, status = 'SCHEDULED', occupied_slots = $2, usage_accounted_at = $5 WHERE id = $3 AND session_id = $4",
                                  [.text(p.agentID), .text(request.json), .text(p.kernelID), .text(id), .int(now)])
                }
                try c.execute("UPDATE sessions SET status = 'SCHEDULED', status_info = '', status_changed = $1, scheduled_at = $1, occupied_slots = $2 WHERE id = $3",
                              [.int(now), .text(placements.reduce(ResourceSlots()) { total, _ in total + request }.json), .text(id)])
                try Self.history(c, id, .scheduled, now)
                results.append(true)
            }
            for agentID in touched.sorted() {
                try c.execute("UPDATE agents SET occupied_slots = $1 WHERE id = $2", [.text(agents[agentID]!.occupied.json), .text(agentID)])
            }
            return results
        }
    }

    /// Kernel ids (in cluster order) of a resource group's pending sessions, by session.
    public func pendingKernelIDs(resourceGroup: String) throws -> [String: [String]] {
        try database.withConnection { c in
            var out: [String: [String]] = [:]
            for r in try c.query("""
                SELECT k.id AS id, k.session_id AS session_id FROM kernels k JOIN sessions s ON s.id = k.session_id
                WHERE s.resource_group = $1 AND s.status = 'PENDING' ORDER BY k.session_id, k.cluster_idx
                """, [.text(resourceGroup)]) {
                out[r.string("session_id") ?? "", default: []].append(r.string("id") ?? "")
            }
            return out
        }
    }

    /// Moves a session (and its kernels) to a new status, recording the transition. Reaching a
    /// terminal status releases every kernel's slots, exactly once, whatever the path.
    /// - Returns: false if the session was already terminal (nothing changed).
    @discardableResult
    public func transition(session id: String, to status: SessionStatus, reason: String = "", exitCode: Int? = nil,
                           now: Int64 = Clock.nowMicros()) throws -> Bool {
        try database.transaction { c in try Self.transition(c, dialect: database.dialect, session: id, to: status, reason: reason, exitCode: exitCode, now: now) }
    }

    /// A transition the scheduler makes (preempting a session), refused unless `epoch` is
    /// still the scheduling leader's (see `SchedulerLeadership`).
    public func transition(session id: String, to status: SessionStatus, reason: String, fencedBy epoch: Int64?, now: Int64 = Clock.nowMicros()) throws -> Bool {
        try database.transaction { c in
            try Self.fence(c, dialect: database.dialect, epoch: epoch)
            return try Self.transition(c, dialect: database.dialect, session: id, to: status, reason: reason, exitCode: nil, now: now)
        }
    }

    private static func transition(_ c: SQLConnection, dialect: SQLDialect, session id: String, to status: SessionStatus, reason: String,
                                   exitCode: Int?, now: Int64) throws -> Bool {
        do {
            let lock = dialect == .postgresql ? " FOR UPDATE" : ""
            guard let row = try c.query("SELECT status FROM sessions WHERE id = $1" + lock, [.text(id)]).first,
                  let current = SessionStatus(rawValue: row.string("status") ?? ""), !current.isTerminal else { return false }
            try c.execute("UPDATE sessions SET status = $1, status_info = $2, status_changed = $3, exit_code = COALESCE($4, exit_code), terminated_at = $5 WHERE id = $6",
                          [.text(status.rawValue), .text(reason), .int(now), exitCode.map { .int(Int64($0)) } ?? .null,
                           status.isTerminal ? .int(now) : .null, .text(id)])
            try Self.history(c, id, status, now)
            guard status.isTerminal else {
                try c.execute("UPDATE kernels SET status = $1 WHERE session_id = $2", [.text(status.rawValue), .text(id)])
                return true
            }
            // Release: subtract each kernel's slots from its agent, then clear them so a
            // second release finds nothing to give back.
            for k in try c.query("SELECT id, agent_id, occupied_slots FROM kernels WHERE session_id = $1 ORDER BY agent_id", [.text(id)]) {
                let slots = try ResourceSlots(json: k.string("occupied_slots") ?? "{}")
                if let agentID = k.string("agent_id"), !slots.amounts.isEmpty,
                   let a = try c.query("SELECT occupied_slots FROM agents WHERE id = $1" + lock, [.text(agentID)]).first {
                    var occupied = try ResourceSlots(json: a.string("occupied_slots") ?? "{}") - slots
                    for (slot, amount) in occupied.amounts where amount <= 0 { occupied.amounts[slot] = nil }
                    try c.execute("UPDATE agents SET occupied_slots = $1 WHERE id = $2", [.text(occupied.json), .text(agentID)])
                }
                try c.execute("UPDATE kernels SET status = $1, occupied_slots = '{}', terminated_at = $2, exit_code = COALESCE($3, exit_code) WHERE id = $4",
                              [.text(status.rawValue), .int(now), exitCode.map { .int(Int64($0)) } ?? .null, .text(k.string("id") ?? "")])
            }
            try c.execute("UPDATE sessions SET occupied_slots = '{}' WHERE id = $1", [.text(id)])
            // Capacity came free: a pending session may fit now.
            try wakeScheduler(c, dialect: dialect)
            return true
        }
    }
}
