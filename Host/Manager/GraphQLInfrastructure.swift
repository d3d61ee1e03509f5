import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import StateStore

// Agents and storage volumes one at a time, as `admin agent info`, `admin storage list` and
// `admin storage info` ask for them.

struct GQLStorageVolume: Sendable {
    let id: String
    let backend: String
    let fsprefix: String
    let path: String
    let capabilities: [String]
    let hardware_metadata: String
    let performance_metric: String
    let usage: String
}

struct AgentIDArgument: Codable, Sendable {
    let agent_id: String
}

struct StorageVolumeArgument: Codable, Sendable {
    let id: String
}

/// `rescan_images(registry:)`'s argument.
struct RescanArguments: Codable, Sendable {
    let registry: String?
}

/// `rescan_images`: the background task that scans the registries (follow it through
/// `/events/background-task?task_id=`).
struct GQLRescanResult: Sendable {
    let ok: Bool
    let msg: String
    let task_id: String?
}

extension GQLResolver {
    func agent(context: GQLContext, arguments: AgentIDArgument) async throws -> GQLAgent? {
        try context.requireAdmin("agent")
        guard let found = try await context.read({ try $0.agent(id: arguments.agent_id) }) else { return nil }
        return try await Self.agents([found], context: context).first
    }

    /// Every volume of every configured storage proxy (`proxy:volume`), as Backend.AI lists
    /// its storage volumes; a proxy that does not answer is left out.
    func storageVolumes(_ context: GQLContext) async throws -> [GQLStorageVolume] {
        try context.requireAdmin("storage_volume_list")
        return await context.api.vfolderHosts().map { host, info in
            GQLStorageVolume(id: host, backend: info.backend, fsprefix: ".", path: host, capabilities: ["vfolder"] + (info.capabilities.quota ? ["quota"] : [])
                                + (info.capabilities.fastClone ? ["fast-clone"] : []),
                             hardware_metadata: "{}", performance_metric: "{}",
                             usage: Self.json(["capacity_bytes": info.capacityBytes, "used_bytes": info.usedBytes]))
        }
    }

    func storageVolumeList(context: GQLContext, arguments: PageArguments) async throws -> GQLPage<GQLStorageVolume> {
        try Self.page(try await storageVolumes(context), arguments, type: "StorageVolume")
    }

    func storageVolume(context: GQLContext, arguments: StorageVolumeArgument) async throws -> GQLStorageVolume? {
        try await storageVolumes(context).first { $0.id == arguments.id }
    }
}
