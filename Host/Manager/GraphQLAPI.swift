import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import Identity
import StateStore

/// The GraphQL API at `POST /admin/gql`, with the snake_case names, JSON-in-string fields and
/// list shapes the official client's console commands read (§8 of the wire notes). Every
/// root checks the caller's role; users see only their own sessions, keys and folders.
struct GQLContext: Sendable {
    let caller: Caller
    let store: StateStore
    let api: ManagerAPI

    var userID: String { caller.identity.keypair.userID }
    var isSuperadmin: Bool { caller.role == .superadmin }

    /// Runs store work for a resolver. On SQLite from a GraphQL executor thread it runs right
    /// there (blocking is allowed on those threads, SQLite answers in microseconds from this
    /// process, and it saves two thread switches per query); PostgreSQL answers over the
    /// network, where the executor thread would sit idle, so its work goes to the store's queue.
    func read<T: Sendable>(_ body: @escaping @Sendable (StateStore) throws -> T) async throws -> T {
        if store.answersInProcess, GraphQLExecutors.shared.isExecutorThread { return try body(store) }
        return try await store.run(body)
    }

    /// Admin roots: domain admins see their domain, superadmins everything.
    func requireAdmin(_ root: String) throws {
        guard caller.isAdmin else { throw GraphQLError(message: "\(root) needs an admin keypair (insufficient privilege)") }
    }
}

/// A 64-bit integer (GraphQL's Int is 32-bit), as Backend.AI's `BigInt` scalar.
struct BigInt: Codable, Sendable {
    let value: Int64
    init(_ value: Int64) { self.value = value }
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int64.self) }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

/// Backend.AI's `UUID` scalar (clients declare `$id: UUID!`), carried as text.
struct UUIDScalar: Codable, Sendable {
    let value: String
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(String.self) }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

// MARK: - Object types

struct GQLKernel: Sendable {
    let id: String
    let cluster_role: String
    let cluster_idx: Int
    let cluster_hostname: String
    let session_id: String
    let image: String
    let registry: String
    let status: String
    let status_info: String
    let status_data: String
    let status_changed: String?
    let agent: String?
    let container_id: String?
    let resource_opts: String
    let occupied_slots: String
    let preopen_ports: [Int]
    let service_ports: String
    let live_stat: String?
    let last_stat: String?
}

struct GQLDependency: Sendable {
    let name: String
    let id: String
}

struct GQLSession: Sendable {
    let id: String
    let session_id: String
    let name: String
    let tag: String?
    let access_key: String
    let domain_name: String
    let group_id: String
    let group_name: String
    let user_uuid: String
    let main_kernel_id: String?
    let image: String
    let architecture: String
    let type: String
    let cluster_size: Int
    let priority: Int
    let status: String
    let status_info: String
    let status_data: String
    let status_changed: String?
    let result: String
    let created_at: String
    let terminated_at: String?
    let scaling_group: String
    let occupying_slots: String
    let occupied_slots: String
    let requested_slots: String
    let idle_checks: String
    let num_queries: BigInt
    /// Backend.AI's JSONString: [{name, protocol, container_ports, host_ports, is_inference}].
    let service_ports: String
    let containers: [GQLKernel]
    let dependencies: [GQLDependency]
}

struct GQLAgent: Sendable {
    let id: String
    let status: String
    let status_changed: String?
    let region: String
    let scaling_group: String
    let schedulable: Bool
    let architecture: String
    let addr: String
    let version: String
    let first_contact: String
    let lost_at: String?
    let cpu_cur_pct: Double
    let mem_cur_bytes: Double
    let available_slots: String
    let occupied_slots: String
    let hardware_metadata: String
    let compute_plugins: String
    /// Per-device live statistics; nil: Hangar's agents do not report them (the client then
    /// shows nothing, as for a Backend.AI agent whose statistics have not arrived).
    let live_stat: String?
    let local_config: String
}

struct GQLGroupRef: Sendable {
    let id: String
    let name: String
}

struct GQLUser: Sendable {
    let id: String
    let uuid: String
    let username: String
    let email: String
    let full_name: String
    let description: String
    let role: String
    let status: String
    let status_info: String?
    let need_password_change: Bool
    let created_at: String
    let domain_name: String
    let resource_policy: String
    let groups: [GQLGroupRef]
    let allowed_client_ip: [String]
    let sudo_session_enabled: Bool
    let main_access_key: String?
}

struct GQLUserInfo: Sendable {
    let email: String
    let full_name: String
}

struct GQLKeypair: Sendable {
    let user_id: String
    let user_info: GQLUserInfo
    let projects: [String]
    let access_key: String
    let secret_key: String
    let is_active: Bool
    let is_admin: Bool
    let created_at: String
    let last_used: String?
    let resource_policy: String
    let rate_limit: Int
    let concurrency_used: Int
    let num_queries: Int
}

struct GQLImage: Sendable {
    let name: String
    let humanized_name: String
    let tag: String
    let registry: String
    let architecture: String
    let digest: String
    let size_bytes: BigInt
    let aliases: [String]
    let labels: String
    let resource_limits: String
    let installed: Bool
}

struct GQLPolicy: Sendable {
    let name: String
    let created_at: String
    let default_for_unspecified: String
    let total_resource_slots: String
    let max_session_lifetime: Int
    let max_concurrent_sessions: Int
    let max_containers_per_session: Int
    let max_concurrent_sftp_sessions: Int
    let max_vfolder_count: Int
    let max_vfolder_size: BigInt
    let idle_timeout: BigInt
    let allowed_vfolder_hosts: String
    let max_session_priority: Int
}

struct GQLScalingGroup: Sendable {
    let name: String
    let description: String
    let is_active: Bool
    let is_public: Bool
    let created_at: String
    let wsproxy_addr: String?
    let wsproxy_api_token: String?
    let driver: String
    let driver_opts: String
    let scheduler: String
    let agent_selector: String
    let scheduler_opts: String
    let use_host_network: Bool
}

struct GQLVFolder: Sendable {
    let id: String
    let host: String
    let name: String
    let user: String?
    let group: String?
    let creator: String?
    let usage_mode: String
    let permission: String
    let ownership_type: String
    let max_size: BigInt
    let created_at: String
    let status: String
    let cloneable: Bool
    let quota_scope_id: String
}

struct GQLPage<Item: Sendable>: Sendable {
    let items: [Item]
    let total_count: Int
}

/// Mutation results: Backend.AI's `{ok, msg, <object>}`.
struct GQLMutationResult: Sendable {
    let ok: Bool
    let msg: String
}

struct GQLKeypairResult: Sendable {
    let ok: Bool
    let msg: String
    let keypair: GQLKeypair?
}

struct GQLUserResult: Sendable {
    let ok: Bool
    let msg: String
    let user: GQLUser?
}

// MARK: - Arguments

struct PageArguments: Codable, Sendable {
    let limit: Int
    let offset: Int
    let status: String?
    let access_key: String?
    let filter: String?
    let order: String?
    let domain_name: String?
    let group_id: UUIDScalar?
    let scaling_group: String?
    let is_active: Bool?
}

struct IDArgument: Codable, Sendable {
    let id: UUIDScalar
}

/// Backend.AI's `users` root (the SDK's User.list): every user the caller may see.
struct UsersArguments: Codable, Sendable {
    let domain_name: String?
    let group_id: UUIDScalar?
    let is_active: Bool?
    let status: String?
}

/// Backend.AI's `keypairs` root (the SDK's KeyPair.list): keypairs, of one user by email.
struct KeypairsArguments: Codable, Sendable {
    let domain_name: String?
    let email: String?
    let is_active: Bool?
}

struct KeypairArgument: Codable, Sendable {
    let domain_name: String?
    let access_key: String?
}

struct ImagesArguments: Codable, Sendable {
    let is_installed: Bool?
    let is_operation: Bool?
}

struct ActiveArgument: Codable, Sendable {
    let is_active: Bool?
}

struct UserInput: Codable, Sendable {
    let password: String
    let username: String?
    let full_name: String?
    let role: String?
    let status: String?
    let domain_name: String?
    let need_password_change: Bool?
    let description: String?
    let group_ids: [String]?
    let resource_policy: String?
    let allowed_client_ip: [String]?
    let totp_activated: Bool?
    let sudo_session_enabled: Bool?
}

/// Backend.AI's `ModifyUserInput` (every field optional).
struct ModifyUserInput: Codable, Sendable {
    let password: String?
    let username: String?
    let full_name: String?
    let domain_name: String?
    let role: String?
    let status: String?
    let need_password_change: Bool?
    let description: String?
    let allowed_client_ip: [String]?
    let totp_activated: Bool?
    let group_ids: [String]?
    let sudo_session_enabled: Bool?
    let main_access_key: String?
    let resource_policy: String?
}

struct ModifyUserArguments: Codable, Sendable {
    let email: String
    let props: ModifyUserInput
}

/// Backend.AI's `PurgeUserInput`.
struct PurgeUserInput: Codable, Sendable {
    let purge_shared_vfolders: Bool?
}

struct PurgeUserArguments: Codable, Sendable {
    let email: String
    let props: PurgeUserInput?
}

/// A root that finds one object by an optional name (the client declares `$name: String`).
struct OptionalNameArgument: Codable, Sendable {
    let name: String?
}

struct EmailArgument: Codable, Sendable {
    let email: String
}

/// The `user` root's arguments: a user by email (nil: the caller).
struct UserArguments: Codable, Sendable {
    let email: String?
    let domain_name: String?
}

struct CreateUserArguments: Codable, Sendable {
    let email: String
    let props: UserInput
}

struct KeypairInput: Codable, Sendable {
    let is_active: Bool?
    let is_admin: Bool?
    let resource_policy: String?
    let rate_limit: Int?
}

struct CreateKeypairArguments: Codable, Sendable {
    let user_id: String
    let props: KeypairInput
}

/// Backend.AI's `ModifyKeyPairInput` (the same fields as `KeyPairInput`, all optional).
struct ModifyKeypairInput: Codable, Sendable {
    let is_active: Bool?
    let is_admin: Bool?
    let resource_policy: String?
    let rate_limit: Int?
}

struct ModifyKeypairArguments: Codable, Sendable {
    let access_key: String
    let props: ModifyKeypairInput
}

struct AccessKeyArgument: Codable, Sendable {
    let access_key: String
}


struct NameArgument: Codable, Sendable {
    let name: String
}

struct AliasArguments: Codable, Sendable {
    let alias: String
    let target: String
}

struct DealiasArguments: Codable, Sendable {
    let alias: String
}

/// `vfolder_host_permissions`: the permissions a vfolder host can grant in
/// `allowed_vfolder_hosts` (Backend.AI's names).
struct GQLHostPermissions: Sendable {
    let vfolder_host_permission_list: [String]
    static let all = ["create-vfolder", "modify-vfolder", "delete-vfolder", "mount-in-session", "upload-file", "download-file",
                      "invite-others", "set-user-specific-permission"]
}
