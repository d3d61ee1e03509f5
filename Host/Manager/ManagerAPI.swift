import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import Logging
import PluginHost
import Sandbox
import StateStore

/// Hangar's own version.
public enum HangarVersion {
    public static let current = "0.1.0"
    /// The Backend.AI API version we speak (what the official 23.09 client negotiates).
    public static let backendAPI = "v7.20230615"
}

/// Who may call a route.
public enum RouteAccess: String, Sendable {
    case `public`, user, admin, agent
}

/// One route: the single source for both the router and the OpenAPI document, so the
/// document cannot drift from what is served.
public struct RouteSpec: Sendable {
    public let method: HTTPRequest.Method
    /// Hummingbird path syntax (`:name` parameters).
    public let path: String
    public let summary: String
    public let access: RouteAccess
    /// JSON keys the request body accepts (nil: no body).
    public let bodyKeys: [String]?
    let handler: @Sendable (Request, ManagerRequestContext) async throws -> Response

    /// The path in OpenAPI syntax (`{name}`).
    public var openAPIPath: String {
        path.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }
}

/// JSON in and out, with the manager's conventions: snake_case keys, unknown request keys
/// refused by name, bodies limited in size.
struct JSONIO: Sendable {
    let maxBodyBytes: Int

    /// - Parameter snakeCase: false for the agent protocol, which keeps ClusterProtocol's
    ///   Swift property names on the wire.
    func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, snakeCase: Bool = true) throws -> Response {
        let encoder = JSONEncoder()
        if snakeCase { encoder.keyEncodingStrategy = .convertToSnakeCase }
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Reads and decodes a JSON body, refusing keys outside `allowed`.
    /// - Parameter snakeCase: false for bodies whose keys are camelCase on the wire (the
    ///   session API mixes styles, as Backend.AI's does).
    func decode<T: Decodable>(_ type: T.Type, from request: Request, allowed: [String], snakeCase: Bool = true) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            throw APIError.tooLarge(maxBodyBytes)
        }
        let data = Data(buffer.readableBytesView)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data.isEmpty ? Data("{}".utf8) : data)
        } catch {
            throw APIError.invalidParams("the request body is not valid JSON: \(error.localizedDescription)")
        }
        guard let dict = object as? [String: Any] else { throw APIError.invalidParams("the request body must be a JSON object") }
        let unknown = dict.keys.filter { !allowed.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw APIError.invalidParams("unknown key\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")); accepted keys: \(allowed.joined(separator: ", "))")
        }
        let decoder = JSONDecoder()
        if snakeCase { decoder.keyDecodingStrategy = .convertFromSnakeCase }
        return try decoder.decode(T.self, from: data.isEmpty ? Data("{}".utf8) : data)
    }
}

/// A resource group's sandbox as a superadmin sets it (null fields: the agents' own).
struct SandboxSetting: Decodable {
    let sandbox: String?
    let sandboxPolicy: String?
}

/// The manager's HTTP API: Backend.AI-compatible probes, identity administration, and the
/// agent registry.
public struct ManagerAPI: Sendable {
    let store: StateStore
    let auth: Authenticator
    let io: JSONIO
    let config: ManagerConfig
    let clusterSecret: String
    let logger: Logger
    /// Scheduling, kernel creation and session endings.
    public let lifecycle: SessionLifecycle

    /// Routes over services the server assembled; the API makes none of its own.
    public init(store: StateStore, lifecycle: SessionLifecycle, config: ManagerConfig, clusterSecret: String, logger: Logger) {
        self.store = store
        self.config = config
        self.clusterSecret = clusterSecret
        self.logger = logger
        self.lifecycle = lifecycle
        auth = Authenticator(store: store, maxClockSkew: config.maxClockSkew, cacheTTL: config.keypairCacheTTL)
        io = JSONIO(maxBodyBytes: config.maxBodyBytes)
    }

    // MARK: request and response shapes

    struct VersionInfo: Encodable { let version: String; let manager: String }
    struct Announcement: Encodable { let enabled: Bool; let message: String }

    struct KeypairView: Encodable {
        let accessKey: String
        let userId: String
        let userEmail: String?
        let isActive: Bool
        let isAdmin: Bool
        let resourcePolicy: String
        let rateLimit: Int64
        let createdAt: String
        let lastUsed: String?
        let secretKey: String?
    }

    static func iso(_ micros: Int64) -> String { CivilTime.iso8601(micros: micros) }

    static func view(_ k: Keypair, email: String?, showSecret: Bool) -> KeypairView {
        KeypairView(accessKey: k.accessKey, userId: k.userID, userEmail: email, isActive: k.isActive, isAdmin: k.isAdmin,
                    resourcePolicy: k.resourcePolicy, rateLimit: k.rateLimit, createdAt: iso(k.createdAt),
                    lastUsed: k.lastUsed.map(iso), secretKey: showSecret ? k.secretKey : nil)
    }

    struct UserView: Encodable {
        let id: String, email: String, username: String, fullName: String, role: String, status: String, domainName: String, createdAt: String
        init(_ u: User) {
            id = u.id; email = u.email; username = u.username; fullName = u.fullName; role = u.role.rawValue
            status = u.status; domainName = u.domainName; createdAt = ManagerAPI.iso(u.createdAt)
        }
    }

    struct CreateKeypair: Decodable {
        let userEmail: String?
        let userId: String?
        let isAdmin: Bool?
        let resourcePolicy: String?
        let rateLimit: Int64?
    }

    struct CreateUser: Decodable {
        let email: String
        let username: String?
        let password: String
        let role: String?
        let fullName: String?
        let projects: [String]?
    }

    struct SetSchedulable: Decodable { let schedulable: Bool }

    struct AgentView: Encodable {
        let id: String, status: String, schedulable: Bool, address: String, resourceGroup: String, architecture: String, version: String
        let capacity: ResourceSlots, occupied: ResourceSlots, firstContact: String, lastHeartbeat: String, lostAt: String?
        let devices: [DeviceReport], plugins: [PluginReport], runningKernels: [String]
        let stats: AgentStats?
        init(_ a: AgentRecord) {
            id = a.id; status = a.status.rawValue; schedulable = a.schedulable; address = a.address; resourceGroup = a.resourceGroup
            architecture = a.architecture; version = a.version; capacity = a.capacity; occupied = a.occupied
            firstContact = ManagerAPI.iso(a.firstContact); lastHeartbeat = ManagerAPI.iso(a.lastHeartbeat); lostAt = a.lostAt.map(ManagerAPI.iso)
            devices = (try? JSONDecoder().decode([DeviceReport].self, from: Data(a.devices.utf8))) ?? []
            plugins = (try? JSONDecoder().decode([PluginReport].self, from: Data(a.plugins.utf8))) ?? []
            runningKernels = (try? JSONDecoder().decode([String].self, from: Data(a.runningKernels.utf8))) ?? []
            stats = try? JSONDecoder().decode(AgentStats.self, from: Data(a.stats.utf8))
        }
    }

    // MARK: routes

    /// Every route the manager serves.
    public var routes: [RouteSpec] { coreRoutes + sessionRoutes + executionRoutes + vfolderRoutes + graphQLRoutes + managerAdminRoutes + templateRoutes + dotfileRoutes + errorLogRoutes + usageRoutes + appStreamRoutes + webSessionRoutes + utilisationRoutes + capacityRoutes + schedulingRoutes + pluginCatalogRoutes + operatorRoutes + registryRoutes + backgroundTaskRoutes + unsupportedRoutes }

    var coreRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/", summary: "Version probe (signed or not), as the official client expects", access: .public, bodyKeys: nil) { _, _ in
                try io.response(VersionInfo(version: HangarVersion.backendAPI, manager: "hangar-\(HangarVersion.current)"))
            },
            RouteSpec(method: .get, path: "/auth/keypair", summary: "The calling keypair", access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                return try io.response(Self.view(caller.identity.keypair, email: caller.identity.userEmail, showSecret: false))
            },
            RouteSpec(method: .get, path: "/auth/role", summary: "The caller's global and domain role", access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                struct Role: Encodable { let globalRole: String; let domainRole: String }
                return try io.response(Role(globalRole: caller.role == .superadmin ? "superadmin" : "user",
                                            domainRole: caller.role >= .admin ? "admin" : "user"))
            },
            RouteSpec(method: .get, path: "/scaling-groups", summary: "Resource groups the caller may use", access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let userID = caller.identity.keypair.userID
                let names = try await store.run { try $0.resourceGroups(forUser: userID) }
                struct Group: Encodable { let name: String }
                struct Groups: Encodable { let scalingGroups: [Group] }
                return try io.response(Groups(scalingGroups: names.map(Group.init)))
            },
            RouteSpec(method: .get, path: "/admin/keypairs", summary: "List keypairs (admin)", access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let email = request.uri.queryParameters.get("user_email")
                let keypairs: [KeypairView] = try await store.run { store in
                    let users = Dictionary(uniqueKeysWithValues: try store.users().map { ($0.id, $0.email) })
                    let userID = try email.map { e throws -> String in
                        guard let user = try store.user(email: e) else { throw StoreError(.notFound, "no user with email '\(e)'") }
                        return user.id
                    }
                    return try store.keypairs(userID: userID).map { Self.view($0, email: users[$0.userID], showSecret: false) }
                }
                struct List: Encodable { let keypairs: [KeypairView] }
                return try io.response(List(keypairs: keypairs))
            },
            RouteSpec(method: .post, path: "/admin/keypairs", summary: "Create a keypair for a user (admin); the secret is shown once",
                      access: .admin, bodyKeys: ["user_email", "user_id", "is_admin", "resource_policy", "rate_limit"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await io.decode(CreateKeypair.self, from: request, allowed: ["user_email", "user_id", "is_admin", "resource_policy", "rate_limit"])
                if body.isAdmin == true, caller.role != .superadmin { throw APIError.forbidden("only a superadmin can create admin keypairs") }
                let (keypair, email) = try await store.run { store -> (Keypair, String) in
                    let user: User? = if let id = body.userId { try store.user(id: id) } else if let e = body.userEmail { try store.user(email: e) } else { nil }
                    guard let user else { throw StoreError(.invalid, "give user_email or user_id of an existing user") }
                    let keypair = try store.createKeypair(userID: user.id, isAdmin: body.isAdmin ?? false,
                                                          resourcePolicy: body.resourcePolicy ?? StateStore.defaultPolicy, rateLimit: body.rateLimit ?? 0)
                    return (keypair, user.email)
                }
                return try io.response(Self.view(keypair, email: email, showSecret: true), status: .created)
            },
            RouteSpec(method: .post, path: "/admin/keypairs/:accessKey/deactivate", summary: "Deactivate a keypair (admin)", access: .admin, bodyKeys: nil) { request, context in
                try await setActive(request, context, false)
            },
            RouteSpec(method: .post, path: "/admin/keypairs/:accessKey/activate", summary: "Activate a keypair (admin)", access: .admin, bodyKeys: nil) { request, context in
                try await setActive(request, context, true)
            },
            RouteSpec(method: .get, path: "/admin/users", summary: "List users (admin)", access: .admin, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let domain: String? = caller.role == .superadmin ? nil : caller.domain
                let users = try await store.run { try $0.users(domain: domain) }
                struct List: Encodable { let users: [UserView] }
                return try io.response(List(users: users.map(UserView.init)))
            },
            RouteSpec(method: .post, path: "/admin/users", summary: "Create a user (admin)", access: .admin,
                      bodyKeys: ["email", "username", "password", "role", "full_name", "projects"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await io.decode(CreateUser.self, from: request, allowed: ["email", "username", "password", "role", "full_name", "projects"])
                guard let role = UserRole(rawValue: body.role ?? "user") else {
                    throw APIError.invalidParams("role must be one of user, admin, superadmin")
                }
                guard role <= caller.role else { throw APIError.forbidden("a \(caller.role.rawValue) cannot create a \(role.rawValue)") }
                let domain = caller.domain
                let user = try await store.run {
                    try $0.createUser(email: body.email, username: body.username, password: body.password, role: role,
                                      fullName: body.fullName ?? "", domain: domain, projects: body.projects ?? [StateStore.defaultProject])
                }
                return try io.response(UserView(user), status: .created)
            },
            RouteSpec(method: .get, path: "/admin/resource-policies", summary: "List resource policies of a scope (?scope=keypair|user|project; admin)", access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let scopeText = request.uri.queryParameters.get("scope") ?? "keypair"
                guard let scope = PolicyScope(rawValue: scopeText) else { throw APIError.invalidParams("scope must be keypair, user or project") }
                let policies = try await store.run { try $0.resourcePolicies(scope: scope) }
                struct List: Encodable { let resourcePolicies: [ResourcePolicy] }
                return try io.response(List(resourcePolicies: policies))
            },
            RouteSpec(method: .get, path: "/admin/resource-groups", summary: "List resource groups (admin)", access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let groups = try await store.run { try $0.resourceGroups() }
                struct List: Encodable { let resourceGroups: [ResourceGroup] }
                return try io.response(List(resourceGroups: groups))
            },
            RouteSpec(method: .patch, path: "/admin/resource-groups/:name", summary: "Set a resource group's kernel sandbox (superadmin)",
                      access: .admin, bodyKeys: ["sandbox", "sandboxPolicy"]) { request, context in
                let caller = try await auth.authenticateAdmin(request)
                guard caller.role == .superadmin else {
                    throw APIError.forbidden("only a superadmin sets a resource group's sandbox; \(caller.accessKey) belongs to a \(caller.role.rawValue)")
                }
                let name = try context.parameters.require("name")
                let body = try await io.decode(SandboxSetting.self, from: request, allowed: ["sandbox", "sandboxPolicy"], snakeCase: false)
                if let mode = body.sandbox, SandboxMode(rawValue: mode) == nil {
                    throw APIError.invalidParams("sandbox must be \"enforce\", \"watch\" or \"none\" (null: the agents' own), not \"\(mode)\"")
                }
                if let policy = body.sandboxPolicy {
                    do {
                        _ = try SandboxLayer(toml: policy, source: "sandboxPolicy")
                    } catch {
                        throw APIError.invalidParams("\(error)")
                    }
                }
                try await store.run { try $0.setResourceGroupSandbox(name, mode: body.sandbox, policy: body.sandboxPolicy) }
                guard let group = try await store.run({ try $0.resourceGroups().first { $0.name == name } }) else {
                    throw APIError.notFound("No such resource group.", name)
                }
                logger.notice("resource group sandbox set", metadata: ["group": .string(name), "sandbox": .string(body.sandbox ?? "agents' own"),
                                                                       "by": .string(caller.accessKey)])
                return try io.response(group)
            },
            RouteSpec(method: .get, path: "/admin/agents", summary: "List agents (?resource_group=; admin)", access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let group = request.uri.queryParameters.get("resource_group")
                let agents = try await store.run { try $0.agents(resourceGroup: group) }
                struct List: Encodable { let agents: [AgentView] }
                return try io.response(List(agents: agents.map(AgentView.init)))
            },
            RouteSpec(method: .post, path: "/admin/agents/:agentId/schedulable", summary: "Allow or stop scheduling on an agent (admin)",
                      access: .admin, bodyKeys: ["schedulable"]) { request, context in
                _ = try await auth.authenticateAdmin(request)
                let id = try context.parameters.require("agentId")
                let body = try await io.decode(SetSchedulable.self, from: request, allowed: ["schedulable"])
                try await store.run { try $0.setAgentSchedulable(id, body.schedulable) }
                guard let agent = try await store.run({ try $0.agent(id: id) }) else { throw APIError.notFound("No such agent.", id) }
                return try io.response(AgentView(agent))
            },
            RouteSpec(method: .post, path: AgentAPI.heartbeatPath, summary: "Agent registration and heartbeat (cluster secret)", access: .agent,
                      bodyKeys: ["agentID", "address", "resourceGroup", "architecture", "version", "capacity", "slotTypes", "devices",
                                 "plugins", "runningKernels", "images", "kernelStats", "measures", "terminatedKernels", "protocolVersion",
                                 "sandboxReports"]) { request, _ in
                try authenticateAgent(request)
                let heartbeat = try await decodeHeartbeat(request)
                let problems = heartbeat.validationErrors()
                guard problems.isEmpty else { throw APIError.invalidParams(problems.joined(separator: "; ")) }
                let outcome = try await store.run { try $0.recordHeartbeat(heartbeat) }
                // History for charts and live_stat; a failure here never fails the heartbeat.
                let memory = UInt64(truncating: NSDecimalNumber(decimal: heartbeat.capacity["mem"]))
                do {
                    try await store.run { try $0.recordUtilisation(agent: heartbeat.agentID, capacityMemory: memory, kernels: heartbeat.kernelStats ?? [],
                                                                   measures: heartbeat.measures ?? []) }
                } catch {
                    logger.warning("utilisation history not recorded", metadata: ["agent": .string(heartbeat.agentID), "error": "\(error)"])
                }
                if outcome.registered {
                    logger.info("agent registered", metadata: ["agent": .string(heartbeat.agentID), "address": .string(heartbeat.address)])
                }
                if let reports = heartbeat.sandboxReports, !reports.isEmpty {
                    let now = Clock.nowMicros()
                    let events = reports.prefix(1000).enumerated().map { index, report in
                        SessionEvent(kernelID: report.kernelID, kind: "sandbox_watch", data: Self.watchData(report), createdAt: now + Int64(index))
                    }
                    try await store.run { try $0.addSessionEvents(Array(events)) }
                }
                if !(heartbeat.terminatedKernels ?? []).isEmpty {
                    // Off the agent's request: ending a session calls the agent back.
                    Task { [lifecycle] in await lifecycle.handle(heartbeat) }
                }
                return try io.response(HeartbeatReply(status: outcome.agent.status.rawValue, schedulable: outcome.agent.schedulable,
                                                      registered: outcome.registered, heartbeatInterval: config.agentHeartbeatInterval),
                                       snakeCase: false)
            },
        ]
    }

    private func setActive(_ request: Request, _ context: ManagerRequestContext, _ active: Bool) async throws -> Response {
        let caller = try await auth.authenticateAdmin(request)
        let accessKey = try context.parameters.require("accessKey")
        // Deactivating the key that signs this request would lock the caller out.
        guard active || accessKey != caller.accessKey else {
            throw APIError.invalidParams("you cannot deactivate the keypair this request is signed with; use another admin keypair")
        }
        try await store.run { try $0.setKeypairActive(accessKey, active) }
        auth.invalidate(accessKey)
        struct Result: Encodable { let accessKey: String; let isActive: Bool }
        return try io.response(Result(accessKey: accessKey, isActive: active))
    }

    func authenticateAgent(_ request: Request) throws {
        guard let header = request.headers[.authorization], header.hasPrefix(AgentAPI.authorizationScheme + " ") else {
            throw APIError.authFailed("agents authenticate with 'Authorization: Bearer <cluster secret>'")
        }
        let given = Array(header.dropFirst(AgentAPI.authorizationScheme.count + 1).utf8)
        guard constantTimeEqual(given, Array(clusterSecret.utf8)) else {
            throw APIError.authFailed("the cluster secret does not match the manager's (manager.cluster_secret)")
        }
    }

    /// A watch report as the session's events carry it.
    static func watchData(_ report: SandboxReport) -> String {
        let object: [String: Any] = ["kernelId": report.kernelID, "syscall": report.syscall, "pid": report.pid, "time": report.time]
        return String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
    }

    private func decodeHeartbeat(_ request: Request) async throws -> AgentHeartbeat {
        // The agent protocol uses the Swift property names (camelCase) on the wire, shared
        // through ClusterProtocol, so both sides encode with plain JSONEncoder.
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: max(config.maxBodyBytes, 8 << 20))
        } catch {
            throw APIError.tooLarge(max(config.maxBodyBytes, 8 << 20))
        }
        return try JSONDecoder().decode(AgentHeartbeat.self, from: Data(buffer.readableBytesView))
    }
}
