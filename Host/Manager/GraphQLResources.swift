import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import Identity
import StateStore

// Keypair resource policies and scaling groups (Hangar: resource groups) as Backend.AI
// 23.09's GraphQL serves them to `admin keypair-resource-policy` and `admin scaling-group`.

/// Backend.AI's `CreateKeyPairResourcePolicyInput` (also, every field optional, its
/// `ModifyKeyPairResourcePolicyInput`: see `ModifyPolicyInput`).
struct PolicyInput: Codable, Sendable {
    let default_for_unspecified: String?
    let total_resource_slots: String?
    let max_session_lifetime: Int?
    let max_concurrent_sessions: Int?
    let max_concurrent_sftp_sessions: Int?
    let max_containers_per_session: Int?
    let max_vfolder_count: Int?
    let max_vfolder_size: BigInt?
    let idle_timeout: BigInt?
    let allowed_vfolder_hosts: String?
    /// Hangar's: the highest session priority (0-100) the keypair may ask for.
    let max_session_priority: Int?
}

struct PolicyArguments: Codable, Sendable {
    let name: String
    let props: PolicyInput
}

/// Backend.AI's `ModifyKeyPairResourcePolicyInput`: the same fields (a distinct GraphQL type).
struct ModifyPolicyInput: Codable, Sendable {
    let default_for_unspecified: String?
    let total_resource_slots: String?
    let max_session_lifetime: Int?
    let max_concurrent_sessions: Int?
    let max_concurrent_sftp_sessions: Int?
    let max_containers_per_session: Int?
    let max_vfolder_count: Int?
    let max_vfolder_size: BigInt?
    let idle_timeout: BigInt?
    let allowed_vfolder_hosts: String?
    /// Hangar's: the highest session priority (0-100) the keypair may ask for.
    let max_session_priority: Int?

    var asCreateInput: PolicyInput {
        PolicyInput(default_for_unspecified: default_for_unspecified, total_resource_slots: total_resource_slots, max_session_lifetime: max_session_lifetime,
                    max_concurrent_sessions: max_concurrent_sessions, max_concurrent_sftp_sessions: max_concurrent_sftp_sessions,
                    max_containers_per_session: max_containers_per_session, max_vfolder_count: max_vfolder_count, max_vfolder_size: max_vfolder_size,
                    idle_timeout: idle_timeout, allowed_vfolder_hosts: allowed_vfolder_hosts, max_session_priority: max_session_priority)
    }
}

struct ModifyPolicyArguments: Codable, Sendable {
    let name: String
    let props: ModifyPolicyInput
}

struct GQLPolicyResult: Sendable {
    let ok: Bool
    let msg: String
    let resource_policy: GQLPolicy?
}

/// Backend.AI's `CreateScalingGroupInput` and `ModifyScalingGroupInput` (see
/// `ModifyScalingGroupInput`); `driver` is always `static` in Hangar (agents register
/// themselves), `driver_opts` and the app-proxy token are accepted and not kept.
struct ScalingGroupInput: Codable, Sendable {
    let description: String?
    let is_active: Bool?
    let is_public: Bool?
    let driver: String?
    let driver_opts: String?
    let scheduler: String?
    let agent_selector: String?
    let scheduler_opts: String?
    let use_host_network: Bool?
    let wsproxy_addr: String?
    let wsproxy_api_token: String?
}

struct ScalingGroupArguments: Codable, Sendable {
    let name: String
    let props: ScalingGroupInput
}

struct ModifyScalingGroupInput: Codable, Sendable {
    let description: String?
    let is_active: Bool?
    let is_public: Bool?
    let driver: String?
    let driver_opts: String?
    let scheduler: String?
    let agent_selector: String?
    let scheduler_opts: String?
    let use_host_network: Bool?
    let wsproxy_addr: String?
    let wsproxy_api_token: String?
}

struct ModifyScalingGroupArguments: Codable, Sendable {
    let name: String
    let props: ModifyScalingGroupInput
}

struct GQLScalingGroupResult: Sendable {
    let ok: Bool
    let msg: String
    let scaling_group: GQLScalingGroup?
}

struct ScalingGroupDomainArguments: Codable, Sendable {
    let scaling_group: String
    let domain: String
}

/// The client declares the project of `associate_…_with_user_group` as `UUID!` and that of
/// `disassociate_…_with_user_group` as `String!`: two argument types.
struct ScalingGroupProjectArguments: Codable, Sendable {
    let scaling_group: String
    let user_group: UUIDScalar
}

struct ScalingGroupProjectNameArguments: Codable, Sendable {
    let scaling_group: String
    let user_group: String
}

struct DomainArgument: Codable, Sendable {
    let domain: String
}

struct UserGroupArgument: Codable, Sendable {
    let user_group: UUIDScalar
}

extension GQLResolver {
    static func policy(_ p: ResourcePolicy) -> GQLPolicy {
        GQLPolicy(name: p.name, created_at: CivilTime.iso8601(micros: p.createdAt), default_for_unspecified: p.defaultForUnspecified,
                  total_resource_slots: p.totalResourceSlots.json, max_session_lifetime: Int(p.maxSessionLifetime),
                  max_concurrent_sessions: Int(p.maxConcurrentSessions), max_containers_per_session: Int(p.maxContainersPerSession),
                  max_concurrent_sftp_sessions: Int(p.maxConcurrentSFTPSessions), max_vfolder_count: Int(p.maxVfolderCount),
                  max_vfolder_size: BigInt(p.maxVfolderSize), idle_timeout: BigInt(p.idleTimeout), allowed_vfolder_hosts: p.allowedVFolderHosts,
                  max_session_priority: Int(p.maxSessionPriority))
    }

    static func scalingGroup(_ g: ResourceGroup) -> GQLScalingGroup {
        GQLScalingGroup(name: g.name, description: g.description, is_active: g.isActive, is_public: g.isPublic,
                        created_at: CivilTime.iso8601(micros: g.createdAt), wsproxy_addr: g.wsproxyAddress, wsproxy_api_token: nil, driver: "static",
                        driver_opts: "{}", scheduler: g.scheduler, agent_selector: g.agentSelector, scheduler_opts: g.schedulerOptions,
                        use_host_network: g.useHostNetwork)
    }

    // MARK: keypair resource policies (superadmins)

    /// A policy with `p`'s fields applied over `base` (Backend.AI's defaults for a new one).
    static func applying(_ p: PolicyInput, to base: ResourcePolicy) throws -> ResourcePolicy {
        var policy = base
        if let text = p.total_resource_slots {
            do {
                policy.totalResourceSlots = try ResourceSlots(json: jsonText(text))
            } catch {
                throw StoreError(.invalid, "total_resource_slots must be a JSON object of slot amounts, e.g. {\"cpu\": \"4\"}: \(error)")
            }
        }
        if let value = p.default_for_unspecified {
            guard ["UNLIMITED", "LIMITED"].contains(value.uppercased()) else {
                throw StoreError(.invalid, "default_for_unspecified must be UNLIMITED or LIMITED, not '\(value)'")
            }
            policy.defaultForUnspecified = value.uppercased()
        }
        for (field, value) in [("max_session_lifetime", p.max_session_lifetime), ("max_concurrent_sessions", p.max_concurrent_sessions),
                               ("max_concurrent_sftp_sessions", p.max_concurrent_sftp_sessions), ("max_containers_per_session", p.max_containers_per_session),
                               ("max_vfolder_count", p.max_vfolder_count)] {
            if let value, value < 0 { throw StoreError(.invalid, "\(field) cannot be negative") }
        }
        if let value = p.max_containers_per_session, value < 1 { throw StoreError(.invalid, "max_containers_per_session must be at least 1") }
        if let value = p.max_session_priority {
            guard (0...100).contains(value) else { throw StoreError(.invalid, "max_session_priority must be 0-100, not \(value)") }
            policy.maxSessionPriority = Int64(value)
        }
        if let value = p.max_session_lifetime { policy.maxSessionLifetime = Int64(value) }
        if let value = p.max_concurrent_sessions { policy.maxConcurrentSessions = Int64(value) }
        if let value = p.max_concurrent_sftp_sessions { policy.maxConcurrentSFTPSessions = Int64(value) }
        if let value = p.max_containers_per_session { policy.maxContainersPerSession = Int64(value) }
        if let value = p.max_vfolder_count { policy.maxVfolderCount = Int64(value) }
        if let value = p.max_vfolder_size { policy.maxVfolderSize = value.value }
        if let value = p.idle_timeout {
            guard value.value >= 0 else { throw StoreError(.invalid, "idle_timeout cannot be negative") }
            policy.idleTimeout = value.value
        }
        if let hosts = p.allowed_vfolder_hosts {
            let text = jsonText(hosts)
            try StateStore.checkJSONObject(text, "allowed_vfolder_hosts")
            policy.allowedVFolderHosts = text
        }
        return policy
    }

    func createPolicy(context: GQLContext, arguments: PolicyArguments) async throws -> GQLPolicyResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "create_keypair_resource_policy needs a superadmin keypair (insufficient privilege)") }
        let result = try await Self.attempt {
            try await context.read { store -> GQLPolicy in
                guard try store.resourcePolicy(scope: .keypair, name: arguments.name) == nil else {
                    throw StoreError(.constraint, "a keypair resource policy named '\(arguments.name)' exists")
                }
                guard (1...64).contains(arguments.name.count), !arguments.name.contains(where: { $0.isWhitespace || $0 == "/" }) else {
                    throw StoreError(.invalid, "a policy name is 1-64 characters without spaces or '/'")
                }
                let base = ResourcePolicy(scope: .keypair, name: arguments.name, totalResourceSlots: ResourceSlots(), maxConcurrentSessions: 0,
                                          maxVfolderCount: 0, maxVfolderSize: 0, idleTimeout: 0, createdAt: Clock.nowMicros())
                let policy = try Self.applying(arguments.props, to: base)
                try store.upsertResourcePolicy(policy)
                return Self.policy(policy)
            }
        }
        switch result {
        case .success(let policy): return GQLPolicyResult(ok: true, msg: "success", resource_policy: policy)
        case .failure(let error): return GQLPolicyResult(ok: false, msg: error.message, resource_policy: nil)
        }
    }

    func modifyPolicy(context: GQLContext, arguments: ModifyPolicyArguments) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "modify_keypair_resource_policy needs a superadmin keypair (insufficient privilege)") }
        return Self.outcome(try await Self.attempt {
            try await context.read { store in
                guard let current = try store.resourcePolicy(scope: .keypair, name: arguments.name) else {
                    throw StoreError(.notFound, "no keypair resource policy named '\(arguments.name)'")
                }
                try store.upsertResourcePolicy(try Self.applying(arguments.props.asCreateInput, to: current))
            }
        })
    }

    func deletePolicy(context: GQLContext, arguments: NameArgument) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "delete_keypair_resource_policy needs a superadmin keypair (insufficient privilege)") }
        return Self.outcome(try await Self.attempt { try await context.read { try $0.deleteResourcePolicy(scope: .keypair, name: arguments.name) } })
    }

    // MARK: scaling groups (superadmins)

    /// Refuses scheduler or agent-selector names no loaded plugin provides, before anything
    /// is stored (not at the first scheduling pass).
    private static func checkPlugins(_ names: [(String, String?)], context: GQLContext) throws {
        let catalog = context.api.lifecycle.scheduler.plugins.catalog
        for case let (kind, name?) in names {
            do {
                _ = try catalog.resolve(name)
            } catch {
                throw StoreError(.invalid, "\(kind) '\(name)': \(error.reason)")
            }
        }
    }

    private static func checkDriver(_ driver: String?) throws {
        if let driver, driver != "static" {
            throw StoreError(.invalid, "driver '\(driver)': Hangar's resource groups are static (agents register themselves into them); use driver static")
        }
    }

    func createScalingGroup(context: GQLContext, arguments: ScalingGroupArguments) async throws -> GQLScalingGroupResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "create_scaling_group needs a superadmin keypair (insufficient privilege)") }
        let p = arguments.props
        let scheduler = p.scheduler ?? "fifo", selector = p.agent_selector ?? "concentrated"
        let result = try await Self.attempt {
            try Self.checkDriver(p.driver)
            try Self.checkPlugins([("scheduler", scheduler), ("agent selector", selector)], context: context)
            return try await context.read { store -> GQLScalingGroup in
                try store.createResourceGroup(name: arguments.name, description: p.description ?? "", scheduler: scheduler, agentSelector: selector,
                                              isActive: p.is_active ?? true)
                var changes = ResourceGroupChanges()
                (changes.isPublic, changes.useHostNetwork, changes.wsproxyAddress) = (p.is_public, p.use_host_network, p.wsproxy_addr)
                changes.schedulerOptions = p.scheduler_opts.map(Self.jsonText)
                try store.updateResourceGroup(name: arguments.name, changes)
                guard let group = try store.resourceGroups().first(where: { $0.name == arguments.name }) else {
                    throw StoreError(.notFound, "no resource group named '\(arguments.name)'")
                }
                return Self.scalingGroup(group)
            }
        }
        switch result {
        case .success(let group): return GQLScalingGroupResult(ok: true, msg: "success", scaling_group: group)
        case .failure(let error): return GQLScalingGroupResult(ok: false, msg: error.message, scaling_group: nil)
        }
    }

    func modifyScalingGroup(context: GQLContext, arguments: ModifyScalingGroupArguments) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "modify_scaling_group needs a superadmin keypair (insufficient privilege)") }
        let p = arguments.props
        var changes = ResourceGroupChanges()
        (changes.description, changes.isActive, changes.isPublic) = (p.description, p.is_active, p.is_public)
        (changes.scheduler, changes.agentSelector, changes.schedulerOptions) = (p.scheduler, p.agent_selector, p.scheduler_opts.map(Self.jsonText))
        (changes.useHostNetwork, changes.wsproxyAddress) = (p.use_host_network, p.wsproxy_addr)
        let planned = changes
        return Self.outcome(try await Self.attempt {
            try Self.checkDriver(p.driver)
            try Self.checkPlugins([("scheduler", p.scheduler), ("agent selector", p.agent_selector)], context: context)
            try await context.read { try $0.updateResourceGroup(name: arguments.name, planned) }
        })
    }

    func deleteScalingGroup(context: GQLContext, arguments: NameArgument) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "delete_scaling_group needs a superadmin keypair (insufficient privilege)") }
        return Self.outcome(try await Self.attempt { try await context.read { try $0.deleteResourceGroup(name: arguments.name) } })
    }

    /// Associations are superadmin work in Backend.AI (they open capacity to whole tenants).
    private static func link(_ context: GQLContext, _ root: String, _ body: @escaping @Sendable (StateStore) throws -> Void) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "\(root) needs a superadmin keypair (insufficient privilege)") }
        return outcome(try await attempt { try await context.read(body) })
    }

    func associateWithDomain(context: GQLContext, arguments: ScalingGroupDomainArguments) async throws -> GQLMutationResult {
        try await Self.link(context, "associate_scaling_group_with_domain") {
            try $0.setResourceGroupLink(arguments.scaling_group, domain: arguments.domain, linked: true)
        }
    }

    func dissociateFromDomain(context: GQLContext, arguments: ScalingGroupDomainArguments) async throws -> GQLMutationResult {
        try await Self.link(context, "disassociate_scaling_group_with_domain") {
            try $0.setResourceGroupLink(arguments.scaling_group, domain: arguments.domain, linked: false)
        }
    }

    func dissociateAllFromDomain(context: GQLContext, arguments: DomainArgument) async throws -> GQLMutationResult {
        try await Self.link(context, "disassociate_all_scaling_groups_with_domain") { store in
            for group in try store.resourceGroups(ofDomain: arguments.domain) {
                try store.setResourceGroupLink(group, domain: arguments.domain, linked: false)
            }
        }
    }

    func associateWithProject(context: GQLContext, arguments: ScalingGroupProjectArguments) async throws -> GQLMutationResult {
        try await Self.link(context, "associate_scaling_group_with_user_group") {
            try $0.setResourceGroupLink(arguments.scaling_group, project: arguments.user_group.value, linked: true)
        }
    }

    func dissociateFromProject(context: GQLContext, arguments: ScalingGroupProjectNameArguments) async throws -> GQLMutationResult {
        try await Self.link(context, "disassociate_scaling_group_with_user_group") {
            try $0.setResourceGroupLink(arguments.scaling_group, project: arguments.user_group, linked: false)
        }
    }

    func dissociateAllFromProject(context: GQLContext, arguments: UserGroupArgument) async throws -> GQLMutationResult {
        try await Self.link(context, "disassociate_all_scaling_groups_with_group") { store in
            for group in try store.resourceGroups(ofProject: arguments.user_group.value) {
                try store.setResourceGroupLink(group, project: arguments.user_group.value, linked: false)
            }
        }
    }
}
