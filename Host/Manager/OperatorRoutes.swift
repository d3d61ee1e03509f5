import ClusterProtocol
import Foundation
import Hummingbird
import StateStore

/// Superadmin maintenance calls of Backend.AI's API: re-deriving agents' occupancy from their
/// kernels, a storage volume's performance figures, and where folders' storage lives.
extension ManagerAPI {
    var operatorRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/resource/recalculate-usage",
                      summary: "Re-derive every agent's occupied slots from the kernels that hold them (superadmin)",
                      access: .admin, bodyKeys: nil) { request, _ in
                try await Self.requireSuperadmin(try await auth.authenticateAdmin(request), "recalculate-usage")
                let changed = try await store.run { try $0.recalculateOccupancy() }
                for change in changed {
                    logger.notice("agent occupancy recalculated", metadata: ["agent": .string(change.agent), "before": .string(change.before.json),
                                                                              "after": .string(change.after.json)])
                }
                let agents: [[String: Any]] = changed.map { ["agent": $0.agent, "before": $0.before.json, "after": $0.after.json] }
                return try Self.jsonObject(["recalculated_agents": agents])
            },
            RouteSpec(method: .get, path: "/folders/_/perf-metric",
                      summary: "A vfolder host's performance figures as its storage plugin measures them ({folder_host: PROXY:VOLUME}; superadmin)",
                      access: .admin, bodyKeys: ["folder_host"]) { request, _ in
                try await Self.requireSuperadmin(try await auth.authenticateAdmin(request), "perf-metric")
                let body = try await object(request, allowed: ["folder_host"])
                guard let host = (body["folder_host"] as? String) ?? request.uri.queryParameters.get("folder_host") else {
                    throw APIError.invalidParams("give the vfolder host as {\"folder_host\": \"PROXY:VOLUME\"}")
                }
                let parts = host.split(separator: ":", maxSplits: 1).map(String.init)
                let known = await vfolderHosts().map(\.host)
                guard parts.count == 2, config.storageProxies[parts[0]] != nil, known.contains(host) else {
                    throw APIError.notFound("No such vfolder host.", "no vfolder host '\(host)'; the cluster has: \(known.joined(separator: ", "))")
                }
                let reply = try await storageProxies.call(parts[0], .volumePerformance, VolumeTarget(volume: parts[1]), reply: VolumePerformance.self)
                var metric: [String: Any] = [:]
                for m in reply.metrics { metric[m.key] = m.value }
                return try Self.jsonObject(["metric": metric, "units": Dictionary(uniqueKeysWithValues: reply.metrics.map { ($0.key, $0.unit) })])
            },
            RouteSpec(method: .get, path: "/folders/_/mounts",
                      summary: "Where folders' storage lives: each storage proxy's volumes, and what agents mount (superadmin)",
                      access: .admin, bodyKeys: nil) { request, _ in
                try await Self.requireSuperadmin(try await auth.authenticateAdmin(request), "list-mounts")
                // Hangar's manager mounts no storage itself (Backend.AI's mounts host folders
                // under its vfroot): folders live on the storage proxies' volumes, and agents
                // bind each folder into the kernels that use it, from the path the proxy gives.
                var volumes: [String] = []
                for (host, info) in await vfolderHosts() {
                    volumes.append("\(host) (\(info.backend), \(ResourceSlots.human(Decimal(info.usedBytes), bytes: true)) used of \(ResourceSlots.human(Decimal(info.capacityBytes), bytes: true)))")
                }
                let unreachable = config.storageProxies.keys.sorted().filter { name in !volumes.contains { $0.hasPrefix(name + ":") } }
                let manager: [String: Any] = ["success": unreachable.isEmpty, "mounts": volumes,
                                              "message": unreachable.isEmpty ? "" : "storage proxies not answering: \(unreachable.joined(separator: ", "))"]
                var agents: [String: Any] = [:]
                for agent in try await store.run({ try $0.agents(status: .alive) }) {
                    agents[agent.id] = ["success": true, "mounts": [String](), "message": "folders are bind-mounted per kernel from the storage proxies' volumes"]
                }
                return try Self.jsonObject(["manager": manager, "storage-proxy": manager, "agents": agents])
            },
        ]
    }

    /// Refuses a call to anyone but a superadmin, naming the call.
    static func requireSuperadmin(_ caller: Caller, _ call: String) async throws {
        guard caller.role == .superadmin else { throw APIError.forbidden("\(call) is for superadmins; \(caller.accessKey) is a domain admin") }
    }
}
