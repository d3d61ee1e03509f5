import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import Identity
import PluginHost
import StateStore

/// Resolves the GraphQL roots from the state store, applying each role's visibility.
struct GQLResolver: Sendable {
    static func iso(_ micros: Int64?) -> String? { micros.map { CivilTime.iso8601(micros: $0) } }
    static func json(_ object: Any) -> String {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func checkPage(_ args: PageArguments) throws {
        guard (1...100).contains(args.limit), args.offset >= 0 else { throw GraphQLError(message: "limit must be 1-100 and offset >= 0") }
    }

    /// Whether the root was given a filter or an order (then it filters and orders in memory
    /// before paging, instead of letting the database page).
    static func refines(_ args: PageArguments) -> Bool { (args.filter?.isEmpty == false) || (args.order?.isEmpty == false) }

    /// The most rows a filtered or ordered list reads before paging.
    static let refinedRowLimit = 10_000

    /// One page of `all` after the root's filter and order (`type`: the item's schema type).
    static func page<T>(_ all: [T], _ args: PageArguments, type: String) throws -> GQLPage<T> {
        try checkPage(args)
        let refined = try GQLFilter.apply(all, filter: args.filter, order: args.order, type: type)
        return GQLPage(items: Array(refined.dropFirst(args.offset).prefix(args.limit)), total_count: refined.count)
    }

    static func statuses(_ text: String?) -> Set<String>? {
        guard let text, !text.isEmpty else { return nil }
        return Set(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() })
    }

    // MARK: sessions

    /// One page of sessions: the database pages, and only that page's kernels are read.
    func sessions(_ context: GQLContext, accessKey: String?, statuses: Set<String>?, domain: String?, limit: Int, offset: Int) throws -> GQLPage<GQLSession> {
        let store = context.store
        let known = statuses.map { $0.compactMap(SessionStatus.init(rawValue:)) } ?? []
        if let statuses, known.isEmpty, !statuses.isEmpty { return GQLPage(items: [], total_count: 0) }
        let (details, total) = try store.listSessions(accessKey: accessKey, domain: domain, statuses: known, limit: limit, offset: offset)
        let projects = Dictionary(try store.projects(domain: context.caller.domain).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return GQLPage(items: try details.map { try session($0, projects: projects, store: store) }, total_count: total)
    }

    func session(_ d: SessionDetail, projects: [String: String], store: StateStore) throws -> GQLSession {
        let s = d.session
        let ports = try store.servicePorts(session: s.id)
        let portsJSON = String(decoding: try JSONSerialization.data(withJSONObject: ManagerAPI.servicePortsJSON(ports), options: [.sortedKeys]), as: UTF8.self)
        let preopen = try store.preopenPorts(session: s.id)
        let containers = try store.kernels(session: s.id).map { k -> GQLKernel in
            // live_stat: the newest sample while it is fresh; last_stat: the newest at all.
            let latest = try store.latestUtilisation(scope: "kernel", owner: k.id)
            let slots = (try? ResourceSlots(json: k.occupiedSlotsJSON)) ?? ResourceSlots()
            let cores = max(1, NSDecimalNumber(decimal: slots["cpu"]).doubleValue)
            let fresh = latest.flatMap { Clock.nowMicros() - $0.at < 60_000_000 ? $0 : nil }
            let live = fresh.map { ManagerAPI.liveStat($0, cpuCapacity: cores * 100) }
            return GQLKernel(id: k.id, cluster_role: k.clusterRole, cluster_idx: k.roleIndex,
                      cluster_hostname: k.clusterHostname, session_id: s.id,
                      image: s.image, registry: "local", status: k.status, status_info: k.statusInfo,
                      status_data: "{}", status_changed: Self.iso(d.statusChanged), agent: k.agentID,
                      container_id: k.containerID, resource_opts: "{}", occupied_slots: k.occupiedSlotsJSON,
                      preopen_ports: preopen, service_ports: k.clusterIndex == 0 ? portsJSON : "[]", live_stat: live, last_stat: latest.map { ManagerAPI.liveStat($0, cpuCapacity: cores * 100) })
        }
        let result: String = switch s.status {
        case .terminated: d.exitCode.map { $0 == 0 ? "SUCCESS" : "FAILURE" } ?? "UNDEFINED"
        case .error, .cancelled: "FAILURE"
        default: "UNDEFINED"
        }
        return GQLSession(id: s.id, session_id: s.id, name: s.name, tag: nil, access_key: s.accessKey, domain_name: d.domain, group_id: d.projectID,
                          group_name: projects[d.projectID] ?? d.projectID, user_uuid: d.userID, main_kernel_id: containers.first?.id,
                          image: s.image, architecture: s.architecture, type: s.type.uppercased(), cluster_size: s.clusterSize, priority: s.priority,
                          status: s.status.rawValue, status_info: s.statusInfo, status_data: "{}", status_changed: Self.iso(d.statusChanged),
                          result: result, created_at: CivilTime.iso8601(micros: s.createdAt), terminated_at: Self.iso(d.terminatedAt),
                          scaling_group: s.resourceGroup, occupying_slots: d.occupied.json, occupied_slots: d.occupied.json,
                          requested_slots: s.requested.json, idle_checks: "{}", num_queries: BigInt(d.queries), service_ports: portsJSON, containers: containers,
                          dependencies: try store.dependencies(of: s.id).map { GQLDependency(name: $0.name, id: $0.id) })
    }

    func computeSessionList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLSession> {
        let caller = context.caller
        // Users see their own; admins may name another access key, or see their domain's.
        var accessKey: String? = caller.accessKey
        var domain: String?
        if caller.isAdmin {
            accessKey = arguments.access_key
            domain = context.isSuperadmin ? arguments.domain_name : caller.domain
        } else if let requested = arguments.access_key, requested != caller.accessKey {
            throw GraphQLError(message: "you can list only your own sessions")
        }
        try Self.checkPage(arguments)
        let wanted = Self.statuses(arguments.status)
        let resolver = self
        let (key, scope) = (accessKey, domain)
        guard Self.refines(arguments) else {
            return try await context.read { _ in
                try resolver.sessions(context, accessKey: key, statuses: wanted, domain: scope, limit: arguments.limit, offset: arguments.offset)
            }
        }
        let all = try await context.read { _ in
            try resolver.sessions(context, accessKey: key, statuses: wanted, domain: scope, limit: Self.refinedRowLimit, offset: 0)
        }
        return try Self.page(all.items, arguments, type: "ComputeSession")
    }

    func computeSession(context: GQLContext, arguments: IDArgument) async throws -> GQLSession? {
        let caller = context.caller
        let resolver = self
        return try await context.read { store in
            guard let found = try store.findSession(arguments.id.value, accessKey: caller.isAdmin ? nil : caller.accessKey,
                                                    domain: caller.isAdmin && caller.role != .superadmin ? caller.domain : nil),
                  let detail = try store.sessionDetail(id: found.id) else { return nil }
            let projects = Dictionary(try store.projects(domain: detail.domain).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            return try resolver.session(detail, projects: projects, store: store)
        }
    }

    // MARK: agents

    func agentList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLAgent> {
        try context.requireAdmin("agent_list")
        let wanted = Self.statuses(arguments.status)
        let group = arguments.scaling_group
        let agents = try await context.read { store in
            try store.agents(resourceGroup: group).filter { wanted == nil || wanted!.contains($0.status.rawValue) }
        }
        if Self.refines(arguments) { return try Self.page(try await Self.agents(agents, context: context), arguments, type: "Agent") }
        // Only the page's rows are decoded (each carries JSON stats and device lists).
        try Self.checkPage(arguments)
        let items = Array(agents.dropFirst(arguments.offset).prefix(arguments.limit))
        return GQLPage(items: try await Self.agents(items, context: context), total_count: agents.count)
    }

    /// Agents as GraphQL shows them, each with its live_stat from the newest fresh sample.
    static func agents(_ agents: [AgentRecord], context: GQLContext) async throws -> [GQLAgent] {
        let samples = try await context.read { store in try agents.map { try store.latestUtilisation(scope: "agent", owner: $0.id) } }
        let now = Clock.nowMicros()
        return zip(agents, samples).map { a, sample in
            let cores = max(1.0, NSDecimalNumber(decimal: a.capacity["cpu"]).doubleValue)
            return agent(a, liveStat: sample.flatMap { now - $0.at < 60_000_000 ? ManagerAPI.agentLiveStat($0, cores: Int(cores)) : nil })
        }
    }

    static func agent(_ a: AgentRecord, liveStat: String? = nil) -> GQLAgent {
        let stats = (try? JSONSerialization.jsonObject(with: Data(a.stats.utf8))) as? [String: Any] ?? [:]
        let kernels = stats["kernels"] as? [[String: Any]] ?? []
        let memory = kernels.reduce(0.0) { $0 + ((($1["memory_bytes"] as? NSNumber)?.doubleValue) ?? 0) }
        let cores = max(1.0, NSDecimalNumber(decimal: a.capacity["cpu"]).doubleValue)
        let cpu = (stats["cpu_pct"] as? NSNumber)?.doubleValue ?? 0
        return GQLAgent(id: a.id, status: a.status.rawValue, status_changed: iso(a.lastHeartbeat), region: "local", scaling_group: a.resourceGroup,
                        schedulable: a.schedulable, architecture: a.architecture, addr: a.address, version: a.version,
                        first_contact: CivilTime.iso8601(micros: a.firstContact), lost_at: iso(a.lostAt), cpu_cur_pct: cpu / cores,
                        mem_cur_bytes: memory, available_slots: a.capacity.json, occupied_slots: a.occupied.json,
                        hardware_metadata: json(["devices": (try? JSONSerialization.jsonObject(with: Data(a.devices.utf8))) ?? []]),
                        compute_plugins: a.plugins, live_stat: liveStat, local_config: "{}")
    }

    // MARK: users and keypairs

    func users(_ context: GQLContext, store: StateStore) throws -> [GQLUser] {
        let domain = context.isSuperadmin ? nil : context.caller.domain
        let keypairs = Dictionary(grouping: try store.keypairs(), by: \.userID)
        return try store.users(domain: domain).map { u in
            let groups = try store.projects(ofUser: u.id).map { GQLGroupRef(id: $0.id, name: $0.name) }
            return Self.user(u, groups: groups, mainKey: keypairs[u.id]?.sorted { $0.createdAt < $1.createdAt }.first?.accessKey)
        }
    }

    static func user(_ u: User, groups: [GQLGroupRef], mainKey: String?) -> GQLUser {
        GQLUser(id: u.id, uuid: u.id, username: u.username, email: u.email, full_name: u.fullName, description: u.description, role: u.role.rawValue,
                status: u.status, status_info: nil, need_password_change: u.needPasswordChange, created_at: CivilTime.iso8601(micros: u.createdAt),
                domain_name: u.domainName, resource_policy: u.resourcePolicy, groups: groups, allowed_client_ip: u.allowedClientIPs,
                sudo_session_enabled: u.sudoSessionEnabled, main_access_key: mainKey)
    }

    /// One user by email (admin user info): users read only themselves, domain admins their
    /// domain's users, superadmins anyone; nil email is the caller.
    func user(context: GQLContext, arguments: UserArguments) async throws -> GQLUser? {
        let caller = context.caller
        let email = arguments.email
        return try await context.read { store in
            let found = try email.map { try store.user(email: $0) ?? store.user(id: $0) } ?? store.user(id: caller.identity.keypair.userID)
            guard let u = found else { return nil }
            if u.id != caller.identity.keypair.userID {
                guard caller.isAdmin else { throw GraphQLError(message: "you can read only your own user (user needs an admin keypair for others)") }
                guard context.isSuperadmin || u.domainName == caller.domain else { return nil }
            }
            let groups = try store.projects(ofUser: u.id).map { GQLGroupRef(id: $0.id, name: $0.name) }
            let mainKey = try store.keypairs(userID: u.id).first?.accessKey
            return Self.user(u, groups: groups, mainKey: mainKey)
        }
    }

    func userList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLUser> {
        try context.requireAdmin("user_list")
        let resolver = self
        var all = try await context.read { store in try resolver.users(context, store: store) }
        if let status = arguments.status, !status.isEmpty { all = all.filter { $0.status == status.lowercased() } }
        if let group = arguments.group_id?.value { all = all.filter { $0.groups.contains { $0.id == group } } }
        return try Self.page(all, arguments, type: "User")
    }

    /// `users` (unpaginated; admins): the users of the caller's domain (any, for superadmins).
    func allUsers(context: GQLContext, arguments: UsersArguments) async throws -> [GQLUser] {
        try context.requireAdmin("users")
        let resolver = self
        var all = try await context.read { store in try resolver.users(context, store: store) }
        if let domain = arguments.domain_name, !domain.isEmpty { all = all.filter { $0.domain_name == domain } }
        if let status = arguments.status, !status.isEmpty { all = all.filter { $0.status == status.lowercased() } }
        if let active = arguments.is_active { all = all.filter { ($0.status == "active") == active } }
        if let group = arguments.group_id?.value { all = all.filter { $0.groups.contains { $0.id == group } } }
        return all
    }

    /// `keypairs` (unpaginated; admins): every keypair the caller may see, or one user's by email.
    func allKeypairs(context: GQLContext, arguments: KeypairsArguments) async throws -> [GQLKeypair] {
        try context.requireAdmin("keypairs")
        let domain = context.isSuperadmin ? arguments.domain_name : context.caller.domain
        return try await context.read { store in
            var keys = try store.keypairs()
            if let email = arguments.email {
                guard let owner = try store.user(email: email) else { return [] }
                keys = keys.filter { $0.userID == owner.id }
            }
            if let active = arguments.is_active { keys = keys.filter { $0.isActive == active } }
            return try keys.compactMap { k -> GQLKeypair? in
                let owner = try store.user(id: k.userID)
                if let domain, owner?.domainName != domain { return nil }
                return try Self.keypair(k, store: store)
            }
        }
    }

    static func keypair(_ k: Keypair, store: StateStore) throws -> GQLKeypair {
        keypair(k, user: try store.user(id: k.userID), projects: try store.projects(ofUser: k.userID).map(\.name),
                activeSessions: try store.activeSessionCount(accessKey: k.accessKey))
    }

    static func keypair(_ k: Keypair, user: User?, projects: [String], activeSessions: Int) -> GQLKeypair {
        GQLKeypair(user_id: user?.email ?? k.userID, user_info: GQLUserInfo(email: user?.email ?? "", full_name: user?.fullName ?? ""),
                          projects: projects, access_key: k.accessKey, secret_key: k.secretKey, is_active: k.isActive, is_admin: k.isAdmin,
                          created_at: CivilTime.iso8601(micros: k.createdAt), last_used: iso(k.lastUsed), resource_policy: k.resourcePolicy,
                          rate_limit: Int(k.rateLimit), concurrency_used: activeSessions, num_queries: 0)
    }

    func keypairList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLKeypair> {
        try context.requireAdmin("keypair_list")
        let domain = context.isSuperadmin ? arguments.domain_name : context.caller.domain
        let active = arguments.is_active
        try Self.checkPage(arguments)
        let refined = Self.refines(arguments)
        let page = try await context.read { store in
            let (rows, total) = try store.keypairPage(domain: domain, isActive: active, limit: refined ? Self.refinedRowLimit : arguments.limit,
                                                      offset: refined ? 0 : arguments.offset)
            return GQLPage(items: rows.map { Self.keypair($0.keypair, user: $0.owner, projects: $0.projectNames, activeSessions: $0.activeSessions) },
                           total_count: total)
        }
        return refined ? try Self.page(page.items, arguments, type: "KeyPair") : page
    }

    func keypair(context: GQLContext, arguments: KeypairArgument) async throws -> GQLKeypair? {
        let caller = context.caller
        let key = arguments.access_key ?? caller.accessKey
        guard key == caller.accessKey || caller.isAdmin else { throw GraphQLError(message: "you can read only your own keypair") }
        return try await context.read { store in
            guard let k = try store.keypairs().first(where: { $0.accessKey == key }) else { return nil }
            if !context.isSuperadmin, key != caller.accessKey, try store.user(id: k.userID)?.domainName != caller.domain { return nil }
            return try Self.keypair(k, store: store)
        }
    }

    // MARK: images, policies, resource groups, vfolders

    func images(context: GQLContext, arguments: ImagesArguments) async throws -> [GQLImage] {
        let (agents, aliases, scanned) = try await context.read { (try $0.agents(status: .alive), try $0.imageAliases(), try $0.registryImages()) }
        var seen: [String: GQLImage] = [:]
        for agent in agents {
            let reports = (try? JSONSerialization.jsonObject(with: Data(agent.images.utf8))) as? [[String: Any]] ?? []
            for r in reports {
                let name = r["name"] as? String ?? "", tag = r["tag"] as? String ?? ""
                guard !name.isEmpty, seen["\(name):\(tag)"] == nil else { continue }
                seen["\(name):\(tag)"] = GQLImage(name: name, humanized_name: name, tag: tag, registry: "local",
                                                  architecture: (r["architecture"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? agent.architecture,
                                                  digest: r["digest"] as? String ?? "", size_bytes: BigInt((r["sizeBytes"] as? NSNumber)?.int64Value ?? 0),
                                                  aliases: aliases.filter { Self.sameImage($0.value, name: name, tag: tag) }.keys.sorted(), labels: "{}",
                                                  resource_limits: "[]", installed: true)
            }
        }
        // What the registries held at their last scan (rescan_images); an image an agent
        // already holds is marked installed.
        for i in scanned {
            let name = "\(i.registry)/\(i.repository)"
            let key = "\(name):\(i.tag)"
            let labels = String(decoding: (try? JSONSerialization.data(withJSONObject: i.labels, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
            let limits = i.labels.filter { $0.key.hasPrefix("ai.backend.resource.min.") }.sorted { $0.key < $1.key }.map {
                ["key": String($0.key.dropFirst("ai.backend.resource.min.".count)), "min": $0.value, "max": NSNull()] as [String: Any]
            }
            let limitsJSON = String(decoding: (try? JSONSerialization.data(withJSONObject: limits, options: [.sortedKeys])) ?? Data("[]".utf8), as: UTF8.self)
            let installed = seen[key] != nil
            seen[key] = GQLImage(name: name, humanized_name: i.repository, tag: i.tag, registry: i.registry, architecture: i.architecture,
                                 digest: i.digest, size_bytes: BigInt(i.sizeBytes),
                                 aliases: aliases.filter { Self.sameImage($0.value, name: name, tag: i.tag) }.keys.sorted(),
                                 labels: labels, resource_limits: limitsJSON, installed: installed)
        }
        return seen.keys.sorted().map { seen[$0]! }
    }

    /// Whether a reference names this image: podman reports locally built images as
    /// `localhost/NAME` and committed or pulled ones as `docker.io/NAME` (`docker.io/library/NAME`),
    /// which users (and the session API) write as `NAME`.
    static func sameImage(_ target: String, name: String, tag: String) -> Bool {
        var short = name
        for prefix in ["localhost/", "docker.io/library/", "docker.io/"] where short.hasPrefix(prefix) {
            short = String(short.dropFirst(prefix.count))
            break
        }
        return target == "\(name):\(tag)" || target == "\(short):\(tag)"
    }

    /// The permission names `allowed_vfolder_hosts` takes (admins; Backend.AI's `admin permission list`).
    func vfolderHostPermissions(context: GQLContext, arguments: NoArguments) async throws -> GQLHostPermissions {
        guard context.caller.isAdmin else { throw APIError.forbidden("vfolder_host_permissions is for admins") }
        return GQLHostPermissions(vfolder_host_permission_list: GQLHostPermissions.all)
    }

    func keypairResourcePolicies(context: GQLContext, arguments: NoArguments) async throws -> [GQLPolicy] {
        let own = context.caller.identity.keypair.resourcePolicy
        let admin = context.caller.isAdmin
        return try await context.read { store in
            try store.resourcePolicies(scope: .keypair).filter { admin || $0.name == own }.map(Self.policy)
        }
    }

    /// One keypair resource policy (`admin keypair-resource-policy info`): by name, or the
    /// caller's own when no name is given; users see only their own.
    func keypairResourcePolicy(context: GQLContext, arguments: OptionalNameArgument) async throws -> GQLPolicy? {
        let wanted = arguments.name ?? context.caller.identity.keypair.resourcePolicy
        return try await keypairResourcePolicies(context: context, arguments: NoArguments()).first { $0.name == wanted }
    }

    /// One resource group (`admin scaling-group info`): admins see any, users those open to them.
    func scalingGroup(context: GQLContext, arguments: OptionalNameArgument) async throws -> GQLScalingGroup? {
        guard let name = arguments.name else { throw GraphQLError(message: "scaling_group needs a name") }
        return try await scalingGroups(context: context, arguments: ActiveArgument(is_active: nil)).first { $0.name == name }
    }

    func scalingGroups(context: GQLContext, arguments: ActiveArgument) async throws -> [GQLScalingGroup] {
        let userID = context.userID
        let admin = context.caller.isAdmin
        return try await context.read { store in
            let allowed = Set(try store.resourceGroups(forUser: userID))
            return try store.resourceGroups().filter { (admin || allowed.contains($0.name)) && (arguments.is_active == nil || $0.isActive == arguments.is_active) }
                .map(Self.scalingGroup)
        }
    }

    /// Users: the folders they see. Admins (`admin vfolder list`): every folder of their
    /// domain's users and projects; superadmins: every folder.
    func vfolderList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLVFolder> {
        guard context.caller.isAdmin else { return try await vfolders(context, arguments) { _ in true } }
        let domain = context.isSuperadmin ? nil : context.caller.domain
        let userID = context.userID
        let folders = try await context.read { store -> [VisibleVFolder] in
            let all = try store.allVFolders().filter { $0.status == "ready" }
            guard let domain else { return all.map { VisibleVFolder(folder: $0, permission: $0.permission, isOwner: $0.userID == userID, via: "admin") } }
            let users = Set(try store.users(domain: domain).map(\.id)), projects = Set(try store.projects(domain: domain).map(\.id))
            return all.filter { f in f.userID.map(users.contains) ?? f.projectID.map(projects.contains) ?? false }
                .map { VisibleVFolder(folder: $0, permission: $0.permission, isOwner: $0.userID == userID, via: "admin") }
        }
        return try Self.page(folders.filter { arguments.group_id == nil || $0.folder.projectID == arguments.group_id?.value }.map(Self.vfolder), arguments,
                             type: "VirtualFolder")
    }

    /// `vfolder list-own`: the caller's own folders.
    func vfolderOwnList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLVFolder> {
        try await vfolders(context, arguments) { $0.isOwner }
    }

    /// `vfolder list-invited`: user folders others shared with the caller.
    func vfolderInvitedList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLVFolder> {
        try await vfolders(context, arguments) { $0.via == "shared" }
    }

    /// `vfolder list-project`: the caller's projects' folders.
    func vfolderProjectList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLVFolder> {
        try await vfolders(context, arguments) { $0.via == "project" }
    }

    /// The folders the caller sees that `include` keeps, one page.
    private func vfolders(_ context: GQLContext, _ arguments: PageArguments,
                          include: @escaping @Sendable (VisibleVFolder) -> Bool) async throws -> GQLPage<GQLVFolder> {
        let userID = context.userID
        let folders = try await context.read { try $0.visibleVFolders(userID: userID) }.filter(include)
        let items = folders.filter { arguments.group_id == nil || $0.folder.projectID == arguments.group_id?.value }.map(Self.vfolder)
        return try Self.page(items, arguments, type: "VirtualFolder")
    }

    static func vfolder(_ v: VisibleVFolder) -> GQLVFolder {
        GQLVFolder(id: v.folder.id, host: v.folder.host, name: v.folder.name, user: v.folder.userID, group: v.folder.projectID,
                   creator: v.folder.userID, usage_mode: v.folder.usageMode, permission: v.permission.rawValue, ownership_type: v.folder.ownership,
                   max_size: BigInt(v.folder.quotaBytes), created_at: CivilTime.iso8601(micros: v.folder.createdAt), status: v.folder.status,
                   cloneable: v.folder.cloneable, quota_scope_id: "\(v.folder.ownership == "user" ? "user" : "project"):\(v.folder.userID ?? v.folder.projectID ?? "")")
    }

    // MARK: mutations (admins)

    func createUser(context: GQLContext, arguments: CreateUserArguments) async throws -> GQLUserResult {
        try context.requireAdmin("create_user")
        let p = arguments.props
        guard let role = UserRole(rawValue: p.role ?? "user") else { return GQLUserResult(ok: false, msg: "role must be user, admin or superadmin", user: nil) }
        guard role != .superadmin || context.isSuperadmin else { return GQLUserResult(ok: false, msg: "only superadmins create superadmins", user: nil) }
        let domain = p.domain_name ?? context.caller.domain
        guard context.isSuperadmin || domain == context.caller.domain else { return GQLUserResult(ok: false, msg: "domain admins create users in their domain", user: nil) }
        if p.totp_activated == true {
            return GQLUserResult(ok: false, msg: "totp_activated: two-factor login (TOTP) is not supported by Hangar; create the user without it", user: nil)
        }
        var options = NewUserOptions()
        options.status = (p.status ?? "active").lowercased()
        guard ["active", "inactive"].contains(options.status) else {
            return GQLUserResult(ok: false, msg: "status must be active or inactive, not '\(p.status ?? "")'", user: nil)
        }
        options.description = p.description ?? ""
        options.needPasswordChange = p.need_password_change ?? false
        options.allowedClientIPs = p.allowed_client_ip ?? []
        options.sudoSessionEnabled = p.sudo_session_enabled ?? false
        options.withKeypair = true  // as Backend.AI: every new user can call the API at once
        let chosen = options
        do {
            let (user, groups, mainKey) = try await context.read { store in
                // Without group_ids a user joins the domain's default project, where it has one.
                let wanted = p.group_ids ?? [StateStore.defaultProject]
                let projects = try store.projects(domain: domain).filter { wanted.contains($0.id) || wanted.contains($0.name) }
                let user = try store.createUser(email: arguments.email, username: p.username, password: p.password, role: role, fullName: p.full_name ?? "",
                                                domain: domain, projects: projects.map(\.name),
                                                options: chosen)
                let groups = try store.projects(ofUser: user.id).map { GQLGroupRef(id: $0.id, name: $0.name) }
                return (user, groups, try store.keypairs(userID: user.id).first?.accessKey)
            }
            return GQLUserResult(ok: true, msg: "success", user: Self.user(user, groups: groups, mainKey: mainKey))
        } catch let error as StoreError {
            return GQLUserResult(ok: false, msg: error.message, user: nil)
        }
    }

    /// The user an admin names by email, if this admin may change them: domain admins only
    /// their domain's users and never a superadmin; nobody their own account through these.
    private static func target(_ email: String, context: GQLContext, store: StateStore, action: String) throws -> User {
        guard let user = try store.user(email: email), context.isSuperadmin || user.domainName == context.caller.domain else {
            throw StoreError(.notFound, "no user '\(email)' in your domain")
        }
        guard user.role != .superadmin || context.isSuperadmin else { throw StoreError(.invalid, "only superadmins \(action) a superadmin") }
        return user
    }

    /// Forgets the cached identities of a user's keys, so a change applies to the next request.
    private static func forget(_ userID: String, context: GQLContext, store: StateStore) throws {
        for key in try store.keypairs(userID: userID) { context.api.auth.invalidate(key.accessKey) }
    }

    func modifyUser(context: GQLContext, arguments: ModifyUserArguments) async throws -> GQLMutationResult {
        try context.requireAdmin("modify_user")
        let p = arguments.props
        if p.totp_activated == true { return GQLMutationResult(ok: false, msg: "totp_activated: two-factor login (TOTP) is not supported by Hangar") }
        if p.main_access_key != nil {
            return GQLMutationResult(ok: false, msg: "main_access_key: Hangar's main key is the user's oldest active keypair; deactivate or delete keys instead")
        }
        var changes = UserChanges()
        if let role = p.role {
            guard let parsed = UserRole(rawValue: role.lowercased()) else { return GQLMutationResult(ok: false, msg: "role must be user, admin or superadmin, not '\(role)'") }
            guard parsed != .superadmin || context.isSuperadmin else { return GQLMutationResult(ok: false, msg: "only superadmins make superadmins") }
            changes.role = parsed
        }
        (changes.password, changes.username, changes.fullName, changes.status) = (p.password, p.username, p.full_name, p.status?.lowercased())
        (changes.description, changes.needPasswordChange, changes.allowedClientIPs) = (p.description, p.need_password_change, p.allowed_client_ip)
        (changes.sudoSessionEnabled, changes.resourcePolicy, changes.projects) = (p.sudo_session_enabled, p.resource_policy, p.group_ids)
        let planned = changes
        do {
            try await context.read { store in
                let user = try Self.target(arguments.email, context: context, store: store, action: "modify")
                if let domain = p.domain_name, domain != user.domainName {
                    throw StoreError(.invalid, "domain_name: moving a user to another domain is not supported; create the user there")
                }
                if user.id == context.userID, planned.status == "inactive" || (planned.role != nil && planned.role != user.role) {
                    throw StoreError(.invalid, "you cannot deactivate yourself or change your own role")
                }
                _ = try store.updateUser(id: user.id, planned)
                try Self.forget(user.id, context: context, store: store)
            }
            return GQLMutationResult(ok: true, msg: "success")
        } catch let error as StoreError {
            return GQLMutationResult(ok: false, msg: error.message)
        }
    }

    func deleteUser(context: GQLContext, arguments: EmailArgument) async throws -> GQLMutationResult {
        try await Self.removeUser(arguments.email, context: context, root: "delete_user", action: "delete") { store, user in
            try store.deleteUser(id: user.id)
        }
    }

    func purgeUser(context: GQLContext, arguments: PurgeUserArguments) async throws -> GQLMutationResult {
        try await Self.removeUser(arguments.email, context: context, root: "purge_user", action: "purge") { store, user in
            try store.purgeUser(id: user.id)
        }
    }

    /// Deleting and purging share their checks: an admin, a user this admin may change, never
    /// the one signing the request; the user's cached identities are dropped first.
    private static func removeUser(_ email: String, context: GQLContext, root: String, action: String,
                                   _ body: @escaping @Sendable (StateStore, User) throws -> Void) async throws -> GQLMutationResult {
        try context.requireAdmin(root)
        do {
            try await context.read { store in
                let user = try target(email, context: context, store: store, action: action)
                guard user.id != context.userID else { throw StoreError(.invalid, "you cannot \(action) the user this request is signed by") }
                try forget(user.id, context: context, store: store)
                try body(store, user)
            }
            return GQLMutationResult(ok: true, msg: "success")
        } catch let error as StoreError {
            return GQLMutationResult(ok: false, msg: error.message)
        }
    }

    func createKeypair(context: GQLContext, arguments: CreateKeypairArguments) async throws -> GQLKeypairResult {
        try context.requireAdmin("create_keypair")
        let p = arguments.props
        do {
            let created = try await context.read { store -> GQLKeypair in
                guard let user = try store.user(email: arguments.user_id) ?? store.user(id: arguments.user_id) else {
                    throw StoreError(.notFound, "no user '\(arguments.user_id)' (give the email or the uuid)")
                }
                let k = try store.createKeypair(userID: user.id, isAdmin: p.is_admin ?? false, resourcePolicy: p.resource_policy ?? StateStore.defaultPolicy,
                                                rateLimit: Int64(p.rate_limit ?? 0))
                if p.is_active == false { try store.setKeypairActive(k.accessKey, false) }
                return try Self.keypair(k, store: store)
            }
            return GQLKeypairResult(ok: true, msg: "success", keypair: created)
        } catch let error as StoreError {
            return GQLKeypairResult(ok: false, msg: error.message, keypair: nil)
        }
    }

    /// A keypair an admin may change: domain admins only their domain's, never a superadmin's.
    private static func targetKeypair(_ accessKey: String, context: GQLContext, store: StateStore) throws -> KeypairIdentity {
        guard let found = try store.identity(accessKey: accessKey), context.isSuperadmin || found.domainName == context.caller.domain else {
            throw StoreError(.notFound, "no keypair '\(accessKey)' in your domain")
        }
        guard found.userRole != .superadmin || context.isSuperadmin else { throw StoreError(.invalid, "only superadmins change a superadmin's keypair") }
        return found
    }

    func modifyKeypair(context: GQLContext, arguments: ModifyKeypairArguments) async throws -> GQLMutationResult {
        try context.requireAdmin("modify_keypair")
        let p = arguments.props
        guard arguments.access_key != context.caller.accessKey || (p.is_active != false && p.is_admin != false) else {
            return GQLMutationResult(ok: false, msg: "you cannot deactivate the keypair this request is signed with, or take its admin rights")
        }
        return try await Self.changeKeypair(arguments.access_key, context: context) { store in
            try store.updateKeypair(arguments.access_key, isActive: p.is_active, isAdmin: p.is_admin, resourcePolicy: p.resource_policy,
                                    rateLimit: p.rate_limit.map(Int64.init))
        }
    }

    func deleteKeypair(context: GQLContext, arguments: AccessKeyArgument) async throws -> GQLMutationResult {
        try context.requireAdmin("delete_keypair")
        guard arguments.access_key != context.caller.accessKey else {
            return GQLMutationResult(ok: false, msg: "you cannot delete the keypair this request is signed with")
        }
        return try await Self.changeKeypair(arguments.access_key, context: context) { store in try store.deleteKeypair(arguments.access_key) }
    }

    /// Changes a keypair this admin may change (`targetKeypair`), then drops its cached identity
    /// so the change applies to the next request; store refusals become `ok: false`.
    private static func changeKeypair(_ accessKey: String, context: GQLContext,
                                      _ body: @escaping @Sendable (StateStore) throws -> Void) async throws -> GQLMutationResult {
        do {
            try await context.read { store in
                _ = try targetKeypair(accessKey, context: context, store: store)
                try body(store)
            }
            context.api.auth.invalidate(accessKey)
            return GQLMutationResult(ok: true, msg: "success")
        } catch let error as StoreError {
            return GQLMutationResult(ok: false, msg: error.message)
        }
    }

    func aliasImage(context: GQLContext, arguments: AliasArguments) async throws -> GQLMutationResult {
        try context.requireAdmin("alias_image")
        do {
            try await context.read { try $0.setImageAlias(arguments.alias, target: arguments.target) }
            return GQLMutationResult(ok: true, msg: "success")
        } catch let error as StoreError {
            return GQLMutationResult(ok: false, msg: error.message)
        }
    }

    func dealiasImage(context: GQLContext, arguments: DealiasArguments) async throws -> GQLMutationResult {
        try context.requireAdmin("dealias_image")
        let removed = try await context.read { try $0.removeImageAlias(arguments.alias) }
        return GQLMutationResult(ok: removed, msg: removed ? "success" : "no alias '\(arguments.alias)'")
    }

    /// Scans the configured registries (or the one named) in the background: their
    /// catalogs, tags and image labels replace what the last scan recorded. Images on the
    /// agents need no scan: agents report them on every heartbeat.
    func rescanImages(context: GQLContext, arguments: RescanArguments) async throws -> GQLRescanResult {
        try context.requireAdmin("rescan_images")
        let registries = try await context.read { try $0.containerRegistries() }.filter { arguments.registry == nil || $0.hostname == arguments.registry }
        if let wanted = arguments.registry, registries.isEmpty {
            return GQLRescanResult(ok: false, msg: "no registry '\(wanted)'; configured: \(try await context.read { try $0.containerRegistries() }.map(\.hostname).joined(separator: ", "))", task_id: nil)
        }
        let api = context.api
        let task = try await context.read { try $0.createBackgroundTask(kind: "rescan_images", owner: context.caller.accessKey) }
        Task.detached { await api.scanRegistries(registries, task: task) }
        return GQLRescanResult(ok: true, msg: "", task_id: task)
    }
}
