import ClusterProtocol
import Foundation
import Hummingbird
import StateStore

/// `POST /resource/check-presets`: what the caller may still start, Backend.AI's way — the
/// keypair's limits, use and remainder, and each resource group's free capacity — plus what
/// the launcher needs to bound its sliders: the most any single agent has free (a session's
/// kernel runs on one agent).
extension ManagerAPI {
    var capacityRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/resource/check-presets", summary: "The caller's limits, use and remaining capacity, and each resource group's free capacity",
                      access: .user, bodyKeys: ["scaling_group", "group"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: ["scaling_group", "group"])
                let wanted = body["scaling_group"] as? String
                let keypair = caller.identity.keypair
                let userID = keypair.userID
                let (policy, using, groups) = try await store.run { store in
                    let policy = try store.resourcePolicy(scope: .keypair, name: keypair.resourcePolicy)
                    let live = SessionStatus.allCases.filter { !$0.isTerminal }
                    let sessions = try store.listSessions(accessKey: keypair.accessKey, domain: nil, statuses: live, limit: 10_000).items
                    var using: [String: Decimal] = [:]
                    for s in sessions {
                        let slots = s.occupied.amounts.isEmpty ? s.session.requested.amounts : s.occupied.amounts
                        for (slot, amount) in slots { using[slot, default: 0] += amount }
                    }
                    var groups: [String: (free: [String: Decimal], using: [String: Decimal], largest: [String: Decimal])] = [:]
                    for name in try store.resourceGroups(forUser: userID) where wanted == nil || wanted == name {
                        var free: [String: Decimal] = [:], used: [String: Decimal] = [:], largest: [String: Decimal] = [:]
                        for agent in try store.agents(resourceGroup: name, status: .alive) where agent.schedulable {
                            for (slot, capacity) in agent.capacity.amounts {
                                let left = max(0, capacity - agent.occupied[slot])
                                free[slot, default: 0] += left
                                used[slot, default: 0] += agent.occupied[slot]
                                largest[slot] = max(largest[slot] ?? 0, left)
                            }
                        }
                        groups[name] = (free, used, largest)
                    }
                    return (policy, using, groups)
                }
                let limits = policy?.totalResourceSlots.amounts ?? [:]
                func text(_ slots: [String: Decimal]) -> [String: String] { slots.mapValues { "\($0)" } }
                var remaining: [String: String] = [:]
                for slot in Set(limits.keys).union(using.keys) {
                    remaining[slot] = limits[slot].map { "\(max(0, $0 - (using[slot] ?? 0)))" } ?? "Infinity"
                }
                var groupTotal: [String: Decimal] = [:]
                var largest: [String: Decimal] = [:]
                for group in groups.values {
                    for (slot, amount) in group.free { groupTotal[slot, default: 0] += amount }
                    for (slot, amount) in group.largest { largest[slot] = max(largest[slot] ?? 0, amount) }
                }
                return try Self.jsonObject([
                    "keypair_limits": limits.isEmpty ? [String: String]() : text(limits).merging(using.keys.filter { limits[$0] == nil }.map { ($0, "Infinity") }) { a, _ in a },
                    "keypair_using": text(using),
                    "keypair_remaining": remaining,
                    "scaling_group_remaining": text(groupTotal),
                    "scaling_groups": groups.mapValues { ["using": text($0.using), "remaining": text($0.free)] },
                    "largest_agent_remaining": text(largest),
                    "presets": [Any](),
                ])
            },
        ]
    }
}

/// `GET /admin/plugins`: the scheduler and agent-selector plugins the manager can load (what a
/// resource group may choose), with versions; the agents' own plugins are in `agent_list`.
extension ManagerAPI {
    var pluginCatalogRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/admin/plugins", summary: "The manager's plugin catalog: schedulers and agent selectors a resource group may use (admin)",
                      access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let entries = lifecycle.scheduler.plugins.catalog.entries
                let plugins: [[String: Any]] = entries.compactMap { entry in
                    guard case .plugin(let library) = entry else { return nil }
                    let d = library.descriptor
                    return ["name": d.name, "kind": d.kind.description, "version": d.version, "vendor": d.vendor, "abi": "\(d.abiMajor).\(d.abiMinor)",
                            "description": d.description, "path": library.path]
                }
                let broken: [[String: Any]] = entries.compactMap { entry in
                    guard case .broken(let path, let error) = entry else { return nil }
                    return ["path": path, "error": error.reason]
                }
                return try Self.jsonObject(["plugins": plugins, "broken": broken])
            },
        ]
    }
}
