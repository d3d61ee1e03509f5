import Foundation
import Graphiti
import GraphQL
import Hummingbird

/// The schema: Backend.AI's names (snake_case), types and roots that the official client and
/// admin tools query, built once.
enum GQLSchema {
    static let shared: Schema<GQLResolver, GQLContext> = {
        do {
            return try build()
        } catch {
            fatalError("the GraphQL schema does not build: \(error)")
        }
    }()

    /// Checked documents by query text (see `GQLDocumentCache`).
    static let documents = GQLDocumentCache()

    static func build() throws -> Schema<GQLResolver, GQLContext> {
        try Schema<GQLResolver, GQLContext> {
            Scalar(BigInt.self, as: "BigInt")
            Scalar(UUIDScalar.self, as: "UUID")
            Type(GQLKernel.self, as: "ComputeContainer") {
                Field("id", at: \.id)
                Field("cluster_role", at: \.cluster_role)
                Field("cluster_idx", at: \.cluster_idx)
                Field("cluster_hostname", at: \.cluster_hostname)
                Field("session_id", at: \.session_id)
                Field("image", at: \.image)
                Field("registry", at: \.registry)
                Field("status", at: \.status)
                Field("status_info", at: \.status_info)
                Field("status_data", at: \.status_data)
                Field("status_changed", at: \.status_changed)
                Field("agent", at: \.agent)
                Field("container_id", at: \.container_id)
                Field("resource_opts", at: \.resource_opts)
                Field("occupied_slots", at: \.occupied_slots)
                Field("preopen_ports", at: \.preopen_ports)
                Field("service_ports", at: \.service_ports)
                Field("live_stat", at: \.live_stat)
                Field("last_stat", at: \.last_stat)
            }
            Type(GQLDependency.self, as: "ComputeSessionDependency") {
                Field("name", at: \.name)
                Field("id", at: \.id)
            }
            Type(GQLSession.self, as: "ComputeSession") {
                Field("id", at: \.id)
                Field("session_id", at: \.session_id)
                Field("name", at: \.name)
                Field("tag", at: \.tag)
                Field("access_key", at: \.access_key)
                Field("domain_name", at: \.domain_name)
                Field("group_id", at: \.group_id)
                Field("group_name", at: \.group_name)
                Field("user_uuid", at: \.user_uuid)
                Field("main_kernel_id", at: \.main_kernel_id)
                Field("image", at: \.image)
                Field("architecture", at: \.architecture)
                Field("type", at: \.type)
                Field("cluster_size", at: \.cluster_size)
                Field("priority", at: \.priority)
                Field("status", at: \.status)
                Field("status_info", at: \.status_info)
                Field("status_data", at: \.status_data)
                Field("status_changed", at: \.status_changed)
                Field("result", at: \.result)
                Field("created_at", at: \.created_at)
                Field("terminated_at", at: \.terminated_at)
                Field("scaling_group", at: \.scaling_group)
                Field("occupying_slots", at: \.occupying_slots)
                Field("occupied_slots", at: \.occupied_slots)
                Field("requested_slots", at: \.requested_slots)
                Field("idle_checks", at: \.idle_checks)
                Field("num_queries", at: \.num_queries)
                Field("service_ports", at: \.service_ports)
                Field("containers", at: \.containers)
                Field("dependencies", at: \.dependencies)
            }
            Type(GQLPage<GQLSession>.self, as: "ComputeSessionList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLAgent.self, as: "Agent") {
                Field("id", at: \.id)
                Field("status", at: \.status)
                Field("status_changed", at: \.status_changed)
                Field("region", at: \.region)
                Field("scaling_group", at: \.scaling_group)
                Field("schedulable", at: \.schedulable)
                Field("architecture", at: \.architecture)
                Field("addr", at: \.addr)
                Field("version", at: \.version)
                Field("first_contact", at: \.first_contact)
                Field("lost_at", at: \.lost_at)
                Field("cpu_cur_pct", at: \.cpu_cur_pct)
                Field("mem_cur_bytes", at: \.mem_cur_bytes)
                Field("available_slots", at: \.available_slots)
                Field("occupied_slots", at: \.occupied_slots)
                Field("hardware_metadata", at: \.hardware_metadata)
                Field("compute_plugins", at: \.compute_plugins)
                Field("live_stat", at: \.live_stat)
                Field("local_config", at: \.local_config)
            }
            Type(GQLPage<GQLAgent>.self, as: "AgentList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLGroupRef.self, as: "UserGroup") {
                Field("id", at: \.id)
                Field("name", at: \.name)
            }
            Type(GQLUser.self, as: "User") {
                Field("id", at: \.id)
                Field("uuid", at: \.uuid)
                Field("username", at: \.username)
                Field("email", at: \.email)
                Field("full_name", at: \.full_name)
                Field("description", at: \.description)
                Field("role", at: \.role)
                Field("status", at: \.status)
                Field("status_info", at: \.status_info)
                Field("need_password_change", at: \.need_password_change)
                Field("created_at", at: \.created_at)
                Field("domain_name", at: \.domain_name)
                Field("resource_policy", at: \.resource_policy)
                Field("groups", at: \.groups)
                Field("allowed_client_ip", at: \.allowed_client_ip)
                Field("sudo_session_enabled", at: \.sudo_session_enabled)
                Field("main_access_key", at: \.main_access_key)
            }
            Type(GQLPage<GQLUser>.self, as: "UserList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLUserInfo.self, as: "UserInfo") {
                Field("email", at: \.email)
                Field("full_name", at: \.full_name)
            }
            Type(GQLKeypair.self, as: "KeyPair") {
                Field("user_id", at: \.user_id)
                Field("user_info", at: \.user_info)
                Field("projects", at: \.projects)
                Field("access_key", at: \.access_key)
                Field("secret_key", at: \.secret_key)
                Field("is_active", at: \.is_active)
                Field("is_admin", at: \.is_admin)
                Field("created_at", at: \.created_at)
                Field("last_used", at: \.last_used)
                Field("resource_policy", at: \.resource_policy)
                Field("rate_limit", at: \.rate_limit)
                Field("concurrency_used", at: \.concurrency_used)
                Field("num_queries", at: \.num_queries)
            }
            Type(GQLPage<GQLKeypair>.self, as: "KeyPairList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLImage.self, as: "Image") {
                Field("name", at: \.name)
                Field("humanized_name", at: \.humanized_name)
                Field("tag", at: \.tag)
                Field("registry", at: \.registry)
                Field("architecture", at: \.architecture)
                Field("digest", at: \.digest)
                Field("size_bytes", at: \.size_bytes)
                Field("aliases", at: \.aliases)
                Field("labels", at: \.labels)
                Field("resource_limits", at: \.resource_limits)
                Field("installed", at: \.installed)
            }
            Type(GQLRegistryConfig.self, as: "ContainerRegistryConfig") {
                Field("url", at: \.url)
                Field("type", at: \.type)
                Field("project", at: \.project)
                Field("username", at: \.username)
                Field("password", at: \.password)
                Field("ssl_verify", at: \.ssl_verify)
                Field("has_password", at: \.has_password)
            }
            Type(GQLContainerRegistry.self, as: "ContainerRegistry") {
                Field("id", at: \.id)
                Field("hostname", at: \.hostname)
                Field("config", at: \.config)
            }
            Type(GQLRegistryResult.self, as: "ContainerRegistryResult") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("container_registry", at: \.container_registry)
            }
            Input(RegistryInput.self, as: "ContainerRegistryInput") {
                InputField("url", at: \.url)
                InputField("type", at: \.type)
                InputField("project", at: \.project)
                InputField("username", at: \.username)
                InputField("password", at: \.password)
                InputField("ssl_verify", at: \.ssl_verify)
            }
            Type(GQLHostPermissions.self, as: "PredefinedAtomicPermission") {
                Field("vfolder_host_permission_list", at: \.vfolder_host_permission_list)
            }
            Type(GQLPolicy.self, as: "KeyPairResourcePolicy") {
                Field("name", at: \.name)
                Field("created_at", at: \.created_at)
                Field("default_for_unspecified", at: \.default_for_unspecified)
                Field("total_resource_slots", at: \.total_resource_slots)
                Field("max_session_lifetime", at: \.max_session_lifetime)
                Field("max_concurrent_sessions", at: \.max_concurrent_sessions)
                Field("max_containers_per_session", at: \.max_containers_per_session)
                Field("max_concurrent_sftp_sessions", at: \.max_concurrent_sftp_sessions)
                Field("max_vfolder_count", at: \.max_vfolder_count)
                Field("max_vfolder_size", at: \.max_vfolder_size)
                Field("idle_timeout", at: \.idle_timeout)
                Field("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                Field("max_session_priority", at: \.max_session_priority)
            }
            Type(GQLScalingGroup.self, as: "ScalingGroup") {
                Field("name", at: \.name)
                Field("description", at: \.description)
                Field("is_active", at: \.is_active)
                Field("is_public", at: \.is_public)
                Field("created_at", at: \.created_at)
                Field("wsproxy_addr", at: \.wsproxy_addr)
                Field("wsproxy_api_token", at: \.wsproxy_api_token)
                Field("driver", at: \.driver)
                Field("driver_opts", at: \.driver_opts)
                Field("scheduler", at: \.scheduler)
                Field("agent_selector", at: \.agent_selector)
                Field("scheduler_opts", at: \.scheduler_opts)
                Field("use_host_network", at: \.use_host_network)
            }
            Type(GQLVFolder.self, as: "VirtualFolder") {
                Field("id", at: \.id)
                Field("host", at: \.host)
                Field("name", at: \.name)
                Field("user", at: \.user)
                Field("group", at: \.group)
                Field("creator", at: \.creator)
                Field("usage_mode", at: \.usage_mode)
                Field("permission", at: \.permission)
                Field("ownership_type", at: \.ownership_type)
                Field("max_size", at: \.max_size)
                Field("created_at", at: \.created_at)
                Field("status", at: \.status)
                Field("cloneable", at: \.cloneable)
                Field("quota_scope_id", at: \.quota_scope_id)
            }
            Type(GQLPage<GQLVFolder>.self, as: "VirtualFolderList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLDomain.self, as: "Domain") {
                Field("name", at: \.name)
                Field("description", at: \.description)
                Field("is_active", at: \.is_active)
                Field("created_at", at: \.created_at)
                Field("modified_at", at: \.modified_at)
                Field("total_resource_slots", at: \.total_resource_slots)
                Field("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                Field("allowed_docker_registries", at: \.allowed_docker_registries)
                Field("integration_id", at: \.integration_id)
                Field("scaling_groups", at: \.scaling_groups)
            }
            Type(GQLGroup.self, as: "Group") {
                Field("id", at: \.id)
                Field("name", at: \.name)
                Field("description", at: \.description)
                Field("is_active", at: \.is_active)
                Field("created_at", at: \.created_at)
                Field("modified_at", at: \.modified_at)
                Field("domain_name", at: \.domain_name)
                Field("total_resource_slots", at: \.total_resource_slots)
                Field("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                Field("integration_id", at: \.integration_id)
                Field("resource_policy", at: \.resource_policy)
                Field("scaling_groups", at: \.scaling_groups)
            }
            Type(GQLDomainResult.self, as: "CreateDomain") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("domain", at: \.domain)
            }
            Type(GQLGroupResult.self, as: "CreateGroup") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("group", at: \.group)
            }
            Input(DomainInput.self, as: "DomainInput") {
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("allowed_docker_registries", at: \.allowed_docker_registries)
                InputField("integration_id", at: \.integration_id)
            }
            Input(ModifyDomainInput.self, as: "ModifyDomainInput") {
                InputField("name", at: \.name)
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("allowed_docker_registries", at: \.allowed_docker_registries)
                InputField("integration_id", at: \.integration_id)
            }
            Input(GroupInput.self, as: "GroupInput") {
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("domain_name", at: \.domain_name)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("integration_id", at: \.integration_id)
                InputField("resource_policy", at: \.resource_policy)
            }
            Input(ModifyGroupInput.self, as: "ModifyGroupInput") {
                InputField("name", at: \.name)
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("domain_name", at: \.domain_name)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("integration_id", at: \.integration_id)
                InputField("user_update_mode", at: \.user_update_mode)
                InputField("user_uuids", at: \.user_uuids)
            }
            Type(GQLRescanResult.self, as: "RescanImages") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("task_id", at: \.task_id)
            }
            Type(GQLStorageVolume.self, as: "StorageVolume") {
                Field("id", at: \.id)
                Field("backend", at: \.backend)
                Field("fsprefix", at: \.fsprefix)
                Field("path", at: \.path)
                Field("capabilities", at: \.capabilities)
                Field("hardware_metadata", at: \.hardware_metadata)
                Field("performance_metric", at: \.performance_metric)
                Field("usage", at: \.usage)
            }
            Type(GQLPage<GQLStorageVolume>.self, as: "StorageVolumeList") {
                Field("items", at: \.items)
                Field("total_count", at: \.total_count)
            }
            Type(GQLMutationResult.self, as: "MutationResult") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
            }
            Type(GQLKeypairResult.self, as: "CreateKeyPair") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("keypair", at: \.keypair)
            }
            Type(GQLUserResult.self, as: "CreateUser") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("user", at: \.user)
            }
            Input(UserInput.self, as: "UserInput") {
                InputField("password", at: \.password)
                InputField("username", at: \.username)
                InputField("full_name", at: \.full_name)
                InputField("role", at: \.role)
                InputField("status", at: \.status)
                InputField("domain_name", at: \.domain_name)
                InputField("need_password_change", at: \.need_password_change)
                InputField("description", at: \.description)
                InputField("group_ids", at: \.group_ids)
                InputField("resource_policy", at: \.resource_policy)
                InputField("allowed_client_ip", at: \.allowed_client_ip)
                InputField("totp_activated", at: \.totp_activated)
                InputField("sudo_session_enabled", at: \.sudo_session_enabled)
            }
            Input(ModifyUserInput.self, as: "ModifyUserInput") {
                InputField("password", at: \.password)
                InputField("username", at: \.username)
                InputField("full_name", at: \.full_name)
                InputField("domain_name", at: \.domain_name)
                InputField("role", at: \.role)
                InputField("status", at: \.status)
                InputField("need_password_change", at: \.need_password_change)
                InputField("description", at: \.description)
                InputField("allowed_client_ip", at: \.allowed_client_ip)
                InputField("totp_activated", at: \.totp_activated)
                InputField("group_ids", at: \.group_ids)
                InputField("sudo_session_enabled", at: \.sudo_session_enabled)
                InputField("main_access_key", at: \.main_access_key)
                InputField("resource_policy", at: \.resource_policy)
            }
            Input(PurgeUserInput.self, as: "PurgeUserInput") {
                InputField("purge_shared_vfolders", at: \.purge_shared_vfolders)
            }
            Input(ModifyKeypairInput.self, as: "ModifyKeyPairInput") {
                InputField("is_active", at: \.is_active)
                InputField("is_admin", at: \.is_admin)
                InputField("resource_policy", at: \.resource_policy)
                InputField("rate_limit", at: \.rate_limit)
            }
            Input(KeypairInput.self, as: "KeyPairInput") {
                InputField("is_active", at: \.is_active)
                InputField("is_admin", at: \.is_admin)
                InputField("resource_policy", at: \.resource_policy)
                InputField("rate_limit", at: \.rate_limit)
            }
            Input(PolicyInput.self, as: "CreateKeyPairResourcePolicyInput") {
                InputField("default_for_unspecified", at: \.default_for_unspecified)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("max_session_lifetime", at: \.max_session_lifetime)
                InputField("max_concurrent_sessions", at: \.max_concurrent_sessions)
                InputField("max_concurrent_sftp_sessions", at: \.max_concurrent_sftp_sessions)
                InputField("max_containers_per_session", at: \.max_containers_per_session)
                InputField("max_vfolder_count", at: \.max_vfolder_count)
                InputField("max_vfolder_size", at: \.max_vfolder_size)
                InputField("idle_timeout", at: \.idle_timeout)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("max_session_priority", at: \.max_session_priority)
            }
            Input(ModifyPolicyInput.self, as: "ModifyKeyPairResourcePolicyInput") {
                InputField("default_for_unspecified", at: \.default_for_unspecified)
                InputField("total_resource_slots", at: \.total_resource_slots)
                InputField("max_session_lifetime", at: \.max_session_lifetime)
                InputField("max_concurrent_sessions", at: \.max_concurrent_sessions)
                InputField("max_concurrent_sftp_sessions", at: \.max_concurrent_sftp_sessions)
                InputField("max_containers_per_session", at: \.max_containers_per_session)
                InputField("max_vfolder_count", at: \.max_vfolder_count)
                InputField("max_vfolder_size", at: \.max_vfolder_size)
                InputField("idle_timeout", at: \.idle_timeout)
                InputField("allowed_vfolder_hosts", at: \.allowed_vfolder_hosts)
                InputField("max_session_priority", at: \.max_session_priority)
            }
            Input(ScalingGroupInput.self, as: "CreateScalingGroupInput") {
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("is_public", at: \.is_public)
                InputField("driver", at: \.driver)
                InputField("driver_opts", at: \.driver_opts)
                InputField("scheduler", at: \.scheduler)
                InputField("agent_selector", at: \.agent_selector)
                InputField("scheduler_opts", at: \.scheduler_opts)
                InputField("use_host_network", at: \.use_host_network)
                InputField("wsproxy_addr", at: \.wsproxy_addr)
                InputField("wsproxy_api_token", at: \.wsproxy_api_token)
            }
            Input(ModifyScalingGroupInput.self, as: "ModifyScalingGroupInput") {
                InputField("description", at: \.description)
                InputField("is_active", at: \.is_active)
                InputField("is_public", at: \.is_public)
                InputField("driver", at: \.driver)
                InputField("driver_opts", at: \.driver_opts)
                InputField("scheduler", at: \.scheduler)
                InputField("agent_selector", at: \.agent_selector)
                InputField("scheduler_opts", at: \.scheduler_opts)
                InputField("use_host_network", at: \.use_host_network)
                InputField("wsproxy_addr", at: \.wsproxy_addr)
                InputField("wsproxy_api_token", at: \.wsproxy_api_token)
            }
            Type(GQLPolicyResult.self, as: "CreateKeyPairResourcePolicy") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("resource_policy", at: \.resource_policy)
            }
            Type(GQLScalingGroupResult.self, as: "CreateScalingGroup") {
                Field("ok", at: \.ok)
                Field("msg", at: \.msg)
                Field("scaling_group", at: \.scaling_group)
            }
            Query {
                Field("compute_session_list", at: GQLResolver.computeSessionList, pageArguments)
                Field("compute_session", at: GQLResolver.computeSession) {
                    Argument("id", at: \.id)
                }
                Field("agent_list", at: GQLResolver.agentList, pageArguments)
                Field("user_list", at: GQLResolver.userList, pageArguments)
                Field("user", at: GQLResolver.user) {
                    Argument("email", at: \.email)
                    Argument("domain_name", at: \.domain_name)
                }
                Field("users", at: GQLResolver.allUsers) {
                    Argument("domain_name", at: \.domain_name)
                    Argument("group_id", at: \.group_id)
                    Argument("is_active", at: \.is_active)
                    Argument("status", at: \.status)
                }
                Field("keypairs", at: GQLResolver.allKeypairs) {
                    Argument("domain_name", at: \.domain_name)
                    Argument("email", at: \.email)
                    Argument("is_active", at: \.is_active)
                }
                Field("keypair_list", at: GQLResolver.keypairList, pageArguments)
                Field("keypair", at: GQLResolver.keypair) {
                    Argument("domain_name", at: \.domain_name)
                    Argument("access_key", at: \.access_key)
                }
                Field("images", at: GQLResolver.images) {
                    Argument("is_installed", at: \.is_installed)
                    Argument("is_operation", at: \.is_operation)
                }
                Field("vfolder_host_permissions", at: GQLResolver.vfolderHostPermissions)
                Field("container_registries", at: GQLResolver.containerRegistries)
                Field("container_registry", at: GQLResolver.containerRegistry) {
                    Argument("hostname", at: \.hostname)
                }
                Field("keypair_resource_policies", at: GQLResolver.keypairResourcePolicies)
                Field("keypair_resource_policy", at: GQLResolver.keypairResourcePolicy) {
                    Argument("name", at: \.name)
                }
                Field("scaling_group", at: GQLResolver.scalingGroup) {
                    Argument("name", at: \.name)
                }
                Field("scaling_groups", at: GQLResolver.scalingGroups) {
                    Argument("is_active", at: \.is_active)
                }
                Field("vfolder_list", at: GQLResolver.vfolderList, pageArguments)
                Field("vfolder_own_list", at: GQLResolver.vfolderOwnList, pageArguments)
                Field("vfolder_invited_list", at: GQLResolver.vfolderInvitedList, pageArguments)
                Field("vfolder_project_list", at: GQLResolver.vfolderProjectList, pageArguments)
                Field("agent", at: GQLResolver.agent) {
                    Argument("agent_id", at: \.agent_id)
                }
                Field("storage_volume_list", at: GQLResolver.storageVolumeList, pageArguments)
                Field("storage_volume", at: GQLResolver.storageVolume) {
                    Argument("id", at: \.id)
                }
                Field("domains", at: GQLResolver.domains) {
                    Argument("is_active", at: \.is_active)
                }
                Field("domain", at: GQLResolver.domain) {
                    Argument("name", at: \.name)
                }
                Field("groups", at: GQLResolver.groups) {
                    Argument("domain_name", at: \.domain_name)
                    Argument("is_active", at: \.is_active)
                }
                Field("group", at: GQLResolver.group) {
                    Argument("id", at: \.id)
                    Argument("domain_name", at: \.domain_name)
                }
                Field("groups_by_name", at: GQLResolver.groupsByName) {
                    Argument("name", at: \.name)
                    Argument("domain_name", at: \.domain_name)
                }
            }
            Mutation {
                Field("create_user", at: GQLResolver.createUser) {
                    Argument("email", at: \.email)
                    Argument("props", at: \.props)
                }
                Field("modify_user", at: GQLResolver.modifyUser) {
                    Argument("email", at: \.email)
                    Argument("props", at: \.props)
                }
                Field("delete_user", at: GQLResolver.deleteUser) {
                    Argument("email", at: \.email)
                }
                Field("purge_user", at: GQLResolver.purgeUser) {
                    Argument("email", at: \.email)
                    Argument("props", at: \.props)
                }
                Field("create_keypair", at: GQLResolver.createKeypair) {
                    Argument("user_id", at: \.user_id)
                    Argument("props", at: \.props)
                }
                Field("delete_keypair", at: GQLResolver.deleteKeypair) {
                    Argument("access_key", at: \.access_key)
                }
                Field("modify_keypair", at: GQLResolver.modifyKeypair) {
                    Argument("access_key", at: \.access_key)
                    Argument("props", at: \.props)
                }
                Field("create_keypair_resource_policy", at: GQLResolver.createPolicy) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("create_scaling_group", at: GQLResolver.createScalingGroup) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("modify_scaling_group", at: GQLResolver.modifyScalingGroup) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("delete_scaling_group", at: GQLResolver.deleteScalingGroup) {
                    Argument("name", at: \.name)
                }
                Field("associate_scaling_group_with_domain", at: GQLResolver.associateWithDomain) {
                    Argument("scaling_group", at: \.scaling_group)
                    Argument("domain", at: \.domain)
                }
                Field("disassociate_scaling_group_with_domain", at: GQLResolver.dissociateFromDomain) {
                    Argument("scaling_group", at: \.scaling_group)
                    Argument("domain", at: \.domain)
                }
                Field("disassociate_all_scaling_groups_with_domain", at: GQLResolver.dissociateAllFromDomain) {
                    Argument("domain", at: \.domain)
                }
                Field("associate_scaling_group_with_user_group", at: GQLResolver.associateWithProject) {
                    Argument("scaling_group", at: \.scaling_group)
                    Argument("user_group", at: \.user_group)
                }
                Field("disassociate_scaling_group_with_user_group", at: GQLResolver.dissociateFromProject) {
                    Argument("scaling_group", at: \.scaling_group)
                    Argument("user_group", at: \.user_group)
                }
                Field("disassociate_all_scaling_groups_with_group", at: GQLResolver.dissociateAllFromProject) {
                    Argument("user_group", at: \.user_group)
                }
                Field("modify_keypair_resource_policy", at: GQLResolver.modifyPolicy) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("delete_keypair_resource_policy", at: GQLResolver.deletePolicy) {
                    Argument("name", at: \.name)
                }
                Field("create_container_registry", at: GQLResolver.createContainerRegistry) {
                    Argument("hostname", at: \.hostname)
                    Argument("props", at: \.props)
                }
                Field("modify_container_registry", at: GQLResolver.modifyContainerRegistry) {
                    Argument("hostname", at: \.hostname)
                    Argument("props", at: \.props)
                }
                Field("delete_container_registry", at: GQLResolver.deleteContainerRegistry) {
                    Argument("hostname", at: \.hostname)
                }
                Field("alias_image", at: GQLResolver.aliasImage) {
                    Argument("alias", at: \.alias)
                    Argument("target", at: \.target)
                }
                Field("dealias_image", at: GQLResolver.dealiasImage) {
                    Argument("alias", at: \.alias)
                }
                Field("rescan_images", at: GQLResolver.rescanImages) {
                    Argument("registry", at: \.registry)
                }
                Field("create_domain", at: GQLResolver.createDomain) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("modify_domain", at: GQLResolver.modifyDomain) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("delete_domain", at: GQLResolver.deleteDomain) {
                    Argument("name", at: \.name)
                }
                Field("purge_domain", at: GQLResolver.purgeDomain) {
                    Argument("name", at: \.name)
                }
                Field("create_group", at: GQLResolver.createGroup) {
                    Argument("name", at: \.name)
                    Argument("props", at: \.props)
                }
                Field("modify_group", at: GQLResolver.modifyGroup) {
                    Argument("gid", at: \.gid)
                    Argument("props", at: \.props)
                }
                Field("delete_group", at: GQLResolver.deleteGroup) {
                    Argument("gid", at: \.gid)
                }
                Field("purge_group", at: GQLResolver.purgeGroup) {
                    Argument("gid", at: \.gid)
                }
            }
        }
    }

    @ArgumentComponentBuilder<PageArguments>
    static func pageArguments() -> [ArgumentComponent<PageArguments>] {
        Argument("limit", at: \.limit)
        Argument("offset", at: \.offset)
        Argument("status", at: \.status)
        Argument("access_key", at: \.access_key)
        Argument("filter", at: \.filter)
        Argument("order", at: \.order)
        Argument("domain_name", at: \.domain_name)
        Argument("group_id", at: \.group_id)
        Argument("scaling_group", at: \.scaling_group)
        Argument("is_active", at: \.is_active)
    }

    // MARK: - Features Hangar does not have

    /// Backend.AI roots of features Hangar does not have, with the client command that uses
    /// each and why: answered with that reason instead of "Cannot query field".
    static let unsupportedRoots: [String: (command: String, why: String)] = {
        let serving = "model serving (inference endpoints) is not part of Hangar"
        return [
            "endpoint_list": ("service list", serving),
            "endpoint": ("service info", serving),
            "routing_list": ("service", serving),
            "inference_session_list": ("session list --type inference", serving),
        ]
    }()

    /// Why a document is refused because it asks for an unsupported root, or nil.
    static func unsupportedRoot(_ document: Document) -> String? {
        for case let operation as OperationDefinition in document.definitions {
            for case let field as GraphQL.Field in operation.selectionSet.selections {
                if let (command, why) = unsupportedRoots[field.name.value] {
                    return "`\(command)` is not supported by Hangar: \(why) (GraphQL root \(field.name.value))"
                }
            }
        }
        return nil
    }

    // MARK: - Limits

    /// Hostile-query limits, checked on the parsed document before execution.
    static let maxQueryBytes = 64 << 10
    static let maxDepth = 8
    static let maxFields = 1000
    static let maxIntrospectionDepth = 24

    /// Why a parsed document is refused (too deep, too many fields), or nil.
    static func refusal(_ document: Document) -> String? {
        var fragments: [String: SelectionSet] = [:]
        for case let f as FragmentDefinition in document.definitions { fragments[f.name.value] = f.selectionSet }
        var fields = 0
        var introspectionDepth = 0
        // Introspection (`__schema`, `__type`) nests deeply by design (ofType chains) but only
        // as deep as the schema's types; it gets its own, larger bound.
        func depth(_ set: SelectionSet, _ level: Int, _ visiting: Set<String>, introspection: Bool) -> Int {
            var deepest = level
            for selection in set.selections {
                switch selection {
                case let field as GraphQL.Field:
                    fields += 1
                    let inside = introspection || field.name.value.hasPrefix("__")
                    if let sub = field.selectionSet {
                        let d = depth(sub, level + 1, visiting, introspection: inside)
                        if inside { introspectionDepth = max(introspectionDepth, d) } else { deepest = max(deepest, d) }
                    }
                case let inline as InlineFragment:
                    deepest = max(deepest, depth(inline.selectionSet, level, visiting, introspection: introspection))
                case let spread as FragmentSpread:
                    let name = spread.name.value
                    guard !visiting.contains(name), let sub = fragments[name] else { continue }
                    deepest = max(deepest, depth(sub, level, visiting.union([name]), introspection: introspection))
                default:
                    continue
                }
                if fields > maxFields { return deepest }
            }
            return introspection ? level : deepest
        }
        for case let operation as OperationDefinition in document.definitions {
            let d = depth(operation.selectionSet, 1, [], introspection: false)
            if d > maxDepth { return "the query nests \(d) levels deep; at most \(maxDepth) are allowed" }
            if introspectionDepth > maxIntrospectionDepth { return "the introspection query nests \(introspectionDepth) levels deep; at most \(maxIntrospectionDepth)" }
            if fields > maxFields { return "the query selects more than \(maxFields) fields" }
        }
        return nil
    }
}

extension ManagerAPI {
    var graphQLRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/admin/gql", summary: "GraphQL (Backend.AI's schema subset; errors come back with HTTP 200)",
                      access: .user, bodyKeys: ["query", "variables", "operationName"]) { request, _ in
                let caller = try await auth.authenticate(request)
                var request = request
                let buffer = try await request.collectBody(upTo: max(config.maxBodyBytes, GQLSchema.maxQueryBytes + 65536))
                guard let body = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any],
                      let query = body["query"] as? String else {
                    throw APIError.invalidParams("the body must be {\"query\": \"...\", \"variables\": {...}}")
                }
                let document: Document
                switch GQLSchema.documents.verdict(query, schema: GQLSchema.shared.schema) {
                case .ready(let parsed): document = parsed
                case .refused(let errors): return try Self.graphQLResponse(GraphQLResult(errors: errors))
                }
                var variables: [String: Map] = [:]
                if let raw = body["variables"] as? [String: Any], !raw.isEmpty {
                    let data = try JSONSerialization.data(withJSONObject: raw)
                    variables = (try? JSONDecoder().decode([String: Map].self, from: data)) ?? [:]
                }
                let context = GQLContext(caller: caller, store: store, api: self)
                // Execution reports its own errors in the result (HTTP 200, as Backend.AI).
                let operationName = body["operationName"] as? String
                let result = try await withTaskExecutorPreference(GraphQLExecutors.shared.pick()) {
                    try await execute(schema: GQLSchema.shared.schema, documentAST: document, rootValue: GQLResolver(), context: context,
                                      variableValues: variables, operationName: operationName)
                }
                return try Self.graphQLResponse(result)
            },
        ]
    }

    /// The result with the fields in query order (the client's console tables pair fields
    /// with values by position, so a dictionary-ordered encoder would scramble them).
    static func graphQLResponse(_ result: GraphQLResult) throws -> Response {
        var out = "{\"data\": "
        if let data = result.data { OrderedJSON.render(data, into: &out) } else { out += "null" }
        if !result.errors.isEmpty {
            out += ", \"errors\": " + String(decoding: try JSONEncoder().encode(result.errors), as: UTF8.self)
        }
        out += "}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: out)))
    }
}

/// JSON text of a GraphQL `Map`, keeping object keys in the order execution produced them.
enum OrderedJSON {
    static func render(_ map: Map, into out: inout String) {
        switch map {
        case .undefined, .null:
            out += "null"
        case .bool(let b):
            out += b ? "true" : "false"
        case .number(let n):
            switch n.storageType {
            case .bool: out += n.boolValue ? "true" : "false"
            case .int: out += String(n.intValue)
            default:
                let d = n.doubleValue
                out += d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)) : "null"
            }
        case .string(let s):
            string(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += ", " }
                render(item, into: &out)
            }
            out += "]"
        case .dictionary(let entries):
            out += "{"
            for (i, (key, value)) in entries.enumerated() {
                if i > 0 { out += ", " }
                string(key, into: &out)
                out += ": "
                render(value, into: &out)
            }
            out += "}"
        }
    }

    static func string(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
