import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import Identity
import StateStore

// Domains and groups (Hangar: projects) as Backend.AI 23.09's GraphQL serves them to the
// official client's `admin domain` and `admin group` commands.

struct GQLDomain: Sendable {
    let name: String
    let description: String
    let is_active: Bool
    let created_at: String
    let modified_at: String?
    let total_resource_slots: String
    let allowed_vfolder_hosts: String
    let allowed_docker_registries: [String]
    let integration_id: String?
    let scaling_groups: [String]
}

struct GQLGroup: Sendable {
    let id: String
    let name: String
    let description: String
    let is_active: Bool
    let created_at: String
    let modified_at: String?
    let domain_name: String
    let total_resource_slots: String
    let allowed_vfolder_hosts: String
    let integration_id: String?
    let resource_policy: String
    let scaling_groups: [String]
}

struct GQLDomainResult: Sendable {
    let ok: Bool
    let msg: String
    let domain: GQLDomain?
}

struct GQLGroupResult: Sendable {
    let ok: Bool
    let msg: String
    let group: GQLGroup?
}

/// Backend.AI's `DomainInput`.
struct DomainInput: Codable, Sendable {
    let description: String?
    let is_active: Bool?
    let total_resource_slots: String?
    let allowed_vfolder_hosts: String?
    let allowed_docker_registries: [String]?
    let integration_id: String?
}

struct DomainArguments: Codable, Sendable {
    let name: String
    let props: DomainInput
}

/// Backend.AI's `ModifyDomainInput` (a new `name` renames the domain).
struct ModifyDomainInput: Codable, Sendable {
    let name: String?
    let description: String?
    let is_active: Bool?
    let total_resource_slots: String?
    let allowed_vfolder_hosts: String?
    let allowed_docker_registries: [String]?
    let integration_id: String?
}

struct ModifyDomainArguments: Codable, Sendable {
    let name: String
    let props: ModifyDomainInput
}

/// Backend.AI's `GroupInput`.
struct GroupInput: Codable, Sendable {
    let description: String?
    let is_active: Bool?
    let domain_name: String?
    let total_resource_slots: String?
    let allowed_vfolder_hosts: String?
    let integration_id: String?
    let resource_policy: String?
}

/// Backend.AI's `ModifyGroupInput`: settings, and members added or removed by user uuid.
struct ModifyGroupInput: Codable, Sendable {
    let name: String?
    let description: String?
    let is_active: Bool?
    let domain_name: String?
    let total_resource_slots: String?
    let allowed_vfolder_hosts: String?
    let integration_id: String?
    let user_update_mode: String?
    let user_uuids: [String]?
}

struct CreateGroupArguments: Codable, Sendable {
    let name: String
    let props: GroupInput
}

struct ModifyGroupArguments: Codable, Sendable {
    let gid: UUIDScalar
    let props: ModifyGroupInput
}

struct GroupIDArgument: Codable, Sendable {
    let gid: UUIDScalar
}

struct GroupsArguments: Codable, Sendable {
    let domain_name: String?
    let is_active: Bool?
}

struct GroupArguments: Codable, Sendable {
    let id: UUIDScalar
    let domain_name: String?
}

struct GroupsByNameArguments: Codable, Sendable {
    let name: String
    let domain_name: String?
}

extension GQLResolver {
    static func domain(_ d: Domain, resourceGroups: [String]) -> GQLDomain {
        GQLDomain(name: d.name, description: d.description, is_active: d.isActive, created_at: CivilTime.iso8601(micros: d.createdAt),
                  modified_at: iso(d.modifiedAt), total_resource_slots: d.totalResourceSlots, allowed_vfolder_hosts: d.allowedVFolderHosts,
                  allowed_docker_registries: d.allowedDockerRegistries, integration_id: d.integrationID, scaling_groups: resourceGroups)
    }

    static func group(_ p: Project, store: StateStore) throws -> GQLGroup {
        GQLGroup(id: p.id, name: p.name, description: p.description, is_active: p.isActive, created_at: CivilTime.iso8601(micros: p.createdAt),
                 modified_at: iso(p.modifiedAt), domain_name: p.domainName, total_resource_slots: p.totalResourceSlots,
                 allowed_vfolder_hosts: p.allowedVFolderHosts, integration_id: p.integrationID, resource_policy: p.resourcePolicy,
                 scaling_groups: try store.resourceGroups(ofProject: p.id))
    }

    /// Runs a mutation's store work; a store refusal becomes its message (`ok: false`).
    static func attempt<T: Sendable>(_ body: () async throws -> T) async throws -> Result<T, StoreError> {
        do {
            return .success(try await body())
        } catch let error as StoreError {
            return .failure(error)
        }
    }

    // MARK: domains

    /// Every domain (superadmins only, as in Backend.AI).
    func domains(context: GQLContext, arguments: ActiveArgument) async throws -> [GQLDomain] {
        guard context.isSuperadmin else { throw GraphQLError(message: "domains needs a superadmin keypair (insufficient privilege)") }
        return try await context.read { store in
            try store.domains().filter { arguments.is_active == nil || $0.isActive == arguments.is_active }.map {
                Self.domain($0, resourceGroups: try store.resourceGroups(ofDomain: $0.name))
            }
        }
    }

    /// One domain by name (nil: the caller's); others than superadmins read only their own.
    func domain(context: GQLContext, arguments: OptionalNameArgument) async throws -> GQLDomain? {
        let name = arguments.name ?? context.caller.domain
        guard context.isSuperadmin || name == context.caller.domain else {
            throw GraphQLError(message: "you can read only your own domain ('\(context.caller.domain)')")
        }
        return try await context.read { store in
            try store.domain(name: name).map { Self.domain($0, resourceGroups: try store.resourceGroups(ofDomain: $0.name)) }
        }
    }

    func createDomain(context: GQLContext, arguments: DomainArguments) async throws -> GQLDomainResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "create_domain needs a superadmin keypair (insufficient privilege)") }
        let p = arguments.props
        let domain = Domain(name: arguments.name, description: p.description ?? "", isActive: p.is_active ?? true, createdAt: Clock.nowMicros(),
                            totalResourceSlots: Self.jsonText(p.total_resource_slots), allowedVFolderHosts: Self.jsonText(p.allowed_vfolder_hosts),
                            allowedDockerRegistries: p.allowed_docker_registries ?? [], integrationID: p.integration_id)
        switch try await Self.attempt({ try await context.read { try $0.createDomain(domain) } }) {
        case .success(let created): return GQLDomainResult(ok: true, msg: "success", domain: Self.domain(created, resourceGroups: []))
        case .failure(let error): return GQLDomainResult(ok: false, msg: error.message, domain: nil)
        }
    }

    func modifyDomain(context: GQLContext, arguments: ModifyDomainArguments) async throws -> GQLDomainResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "modify_domain needs a superadmin keypair (insufficient privilege)") }
        let p = arguments.props
        if arguments.name == context.caller.domain, p.is_active == false {
            return GQLDomainResult(ok: false, msg: "you cannot deactivate the domain your own account is in", domain: nil)
        }
        var changes = DomainChanges()
        (changes.name, changes.description, changes.isActive) = (p.name, p.description, p.is_active)
        (changes.totalResourceSlots, changes.allowedVFolderHosts) = (p.total_resource_slots.map(Self.jsonText), p.allowed_vfolder_hosts.map(Self.jsonText))
        (changes.allowedDockerRegistries, changes.integrationID) = (p.allowed_docker_registries, p.integration_id)
        if changes.name != nil, arguments.name == context.caller.domain, changes.name != arguments.name {
            return GQLDomainResult(ok: false, msg: "you cannot rename the domain your own account is in", domain: nil)
        }
        let planned = changes
        let result = try await Self.attempt {
            try await context.read { store in
                let d = try store.updateDomain(name: arguments.name, planned)
                return Self.domain(d, resourceGroups: try store.resourceGroups(ofDomain: d.name))
            }
        }
        // Activity and the domain name are part of every cached identity of its users.
        context.api.auth.invalidateAll()
        switch result {
        case .success(let d): return GQLDomainResult(ok: true, msg: "success", domain: d)
        case .failure(let error): return GQLDomainResult(ok: false, msg: error.message, domain: nil)
        }
    }

    /// Backend.AI's `delete_domain`: the domain is deactivated, nothing is removed.
    func deleteDomain(context: GQLContext, arguments: NameArgument) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "delete_domain needs a superadmin keypair (insufficient privilege)") }
        guard arguments.name != context.caller.domain else {
            return GQLMutationResult(ok: false, msg: "you cannot delete the domain your own account is in")
        }
        var changes = DomainChanges()
        changes.isActive = false
        let planned = changes
        let result = try await Self.attempt { try await context.read { _ = try $0.updateDomain(name: arguments.name, planned) } }
        context.api.auth.invalidateAll()
        return Self.outcome(result)
    }

    func purgeDomain(context: GQLContext, arguments: NameArgument) async throws -> GQLMutationResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "purge_domain needs a superadmin keypair (insufficient privilege)") }
        guard arguments.name != context.caller.domain else {
            return GQLMutationResult(ok: false, msg: "you cannot purge the domain your own account is in")
        }
        return Self.outcome(try await Self.attempt { try await context.read { try $0.purgeDomain(name: arguments.name) } })
    }

    static func outcome(_ result: Result<Void, StoreError>) -> GQLMutationResult {
        switch result {
        case .success: GQLMutationResult(ok: true, msg: "success")
        case .failure(let error): GQLMutationResult(ok: false, msg: error.message)
        }
    }

    /// JSON text the client sent in a string field (`null` and empty mean `{}`).
    static func jsonText(_ text: String?) -> String {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty, text != "null" else { return "{}" }
        return text
    }

    // MARK: groups

    /// The projects a caller may see: superadmins any domain's, admins their domain's, users
    /// those they are members of.
    private static func visibleGroups(_ context: GQLContext, store: StateStore, domain: String?) throws -> [Project] {
        let caller = context.caller
        if context.isSuperadmin { return try store.projects(domain: domain) }
        if let domain, domain != caller.domain { throw GraphQLError(message: "you can list only your own domain's groups ('\(caller.domain)')") }
        if caller.isAdmin { return try store.projects(domain: caller.domain) }
        return try store.projects(ofUser: context.userID)
    }

    func groups(context: GQLContext, arguments: GroupsArguments) async throws -> [GQLGroup] {
        try await context.read { store in
            try Self.visibleGroups(context, store: store, domain: arguments.domain_name)
                .filter { arguments.is_active == nil || $0.isActive == arguments.is_active }.map { try Self.group($0, store: store) }
        }
    }

    func group(context: GQLContext, arguments: GroupArguments) async throws -> GQLGroup? {
        try await context.read { store in
            try Self.visibleGroups(context, store: store, domain: arguments.domain_name).first { $0.id == arguments.id.value }.map {
                try Self.group($0, store: store)
            }
        }
    }

    func groupsByName(context: GQLContext, arguments: GroupsByNameArguments) async throws -> [GQLGroup] {
        try await context.read { store in
            try Self.visibleGroups(context, store: store, domain: arguments.domain_name).filter { $0.name == arguments.name }.map {
                try Self.group($0, store: store)
            }
        }
    }

    /// A project this admin may change: domain admins only their domain's.
    private static func targetGroup(_ id: String, context: GQLContext, store: StateStore) throws -> Project {
        guard let project = try store.project(id: id), context.isSuperadmin || project.domainName == context.caller.domain else {
            throw StoreError(.notFound, "no group with id '\(id)' in your domain")
        }
        return project
    }

    func createGroup(context: GQLContext, arguments: CreateGroupArguments) async throws -> GQLGroupResult {
        try context.requireAdmin("create_group")
        let p = arguments.props
        let domain = p.domain_name ?? context.caller.domain
        guard context.isSuperadmin || domain == context.caller.domain else {
            return GQLGroupResult(ok: false, msg: "domain admins create groups only in their domain ('\(context.caller.domain)')", group: nil)
        }
        let project = Project(id: UUID().uuidString.lowercased(), name: arguments.name, domainName: domain, description: p.description ?? "",
                              isActive: p.is_active ?? true, resourcePolicy: p.resource_policy ?? StateStore.defaultPolicy,
                              createdAt: Clock.nowMicros(), totalResourceSlots: Self.jsonText(p.total_resource_slots),
                              allowedVFolderHosts: Self.jsonText(p.allowed_vfolder_hosts), integrationID: p.integration_id)
        switch try await Self.attempt({ try await context.read { store in try Self.group(try store.createProject(project), store: store) } }) {
        case .success(let group): return GQLGroupResult(ok: true, msg: "success", group: group)
        case .failure(let error): return GQLGroupResult(ok: false, msg: error.message, group: nil)
        }
    }

    func modifyGroup(context: GQLContext, arguments: ModifyGroupArguments) async throws -> GQLGroupResult {
        try context.requireAdmin("modify_group")
        let p = arguments.props
        var changes = ProjectChanges()
        (changes.name, changes.description, changes.isActive) = (p.name, p.description, p.is_active)
        (changes.totalResourceSlots, changes.allowedVFolderHosts) = (p.total_resource_slots.map(Self.jsonText), p.allowed_vfolder_hosts.map(Self.jsonText))
        changes.integrationID = p.integration_id
        if let users = p.user_uuids, !users.isEmpty {
            guard let mode = MembershipChange(rawValue: (p.user_update_mode ?? "").lowercased()) else {
                return GQLGroupResult(ok: false, msg: "user_update_mode must be add or remove when user_uuids are given", group: nil)
            }
            (changes.members, changes.membersMode) = (users, mode)
        }
        let planned = changes
        let result = try await Self.attempt {
            try await context.read { store in
                let project = try Self.targetGroup(arguments.gid.value, context: context, store: store)
                if let domain = p.domain_name, domain != project.domainName {
                    throw StoreError(.invalid, "domain_name: moving a group to another domain is not supported; create it there")
                }
                return try Self.group(try store.updateProject(id: project.id, planned), store: store)
            }
        }
        switch result {
        case .success(let group): return GQLGroupResult(ok: true, msg: "success", group: group)
        case .failure(let error): return GQLGroupResult(ok: false, msg: error.message, group: nil)
        }
    }

    /// Backend.AI's `delete_group`: the group is deactivated (no new sessions), nothing removed.
    func deleteGroup(context: GQLContext, arguments: GroupIDArgument) async throws -> GQLMutationResult {
        try context.requireAdmin("delete_group")
        var changes = ProjectChanges()
        changes.isActive = false
        let planned = changes
        return Self.outcome(try await Self.attempt {
            try await context.read { store in
                let project = try Self.targetGroup(arguments.gid.value, context: context, store: store)
                _ = try store.updateProject(id: project.id, planned)
            }
        })
    }

    func purgeGroup(context: GQLContext, arguments: GroupIDArgument) async throws -> GQLMutationResult {
        try context.requireAdmin("purge_group")
        return Self.outcome(try await Self.attempt {
            try await context.read { store in
                let project = try Self.targetGroup(arguments.gid.value, context: context, store: store)
                try store.purgeProject(id: project.id)
            }
        })
    }
}
