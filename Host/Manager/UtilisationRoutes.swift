import ClusterProtocol
import Foundation
import Hummingbird
import StateStore

/// Utilisation history (the last hour, one sample per 10 s, from heartbeats) of a session and
/// of an agent, and Backend.AI's `live_stat`/`last_stat` JSON built from it.
extension ManagerAPI {
    var utilisationRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/session/:sessionName/utilisation", summary: "The main kernel's CPU, memory, I/O and accelerator history, last hour",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let samples = try await store.run { store -> [UtilisationSample] in
                    guard let main = try store.kernels(session: session.id).min(by: { $0.clusterIndex < $1.clusterIndex }) else { return [] }
                    return try store.utilisation(scope: "kernel", owner: main.id)
                }
                return try Self.jsonObject(["session": session.name, "interval": StateStore.utilisationSampleInterval, "samples": Self.samplesJSON(samples)])
            },
            RouteSpec(method: .get, path: "/admin/agents/:agentId/utilisation", summary: "An agent's CPU, memory, I/O and accelerator history, last hour (admin)",
                      access: .admin, bodyKeys: nil) { request, context in
                _ = try await auth.authenticateAdmin(request)
                let id = try context.parameters.require("agentId")
                guard let samples = try await store.run({ store -> [UtilisationSample]? in
                    guard try store.agent(id: id) != nil else { return nil }
                    return try store.utilisation(scope: "agent", owner: id)
                }) else { throw APIError.notFound("No such agent.", "no agent '\(id)'") }
                return try Self.jsonObject(["agent": id, "interval": StateStore.utilisationSampleInterval, "samples": Self.samplesJSON(samples)])
            },
        ]
    }

    static func samplesJSON(_ samples: [UtilisationSample]) -> [[String: Any]] {
        samples.map { s in
            ["at": Double(s.at) / 1_000_000, "cpu_pct": s.cpuPercent, "mem_bytes": s.memoryBytes, "mem_capacity_bytes": s.memoryCapacityBytes,
             "io_read_bytes": s.ioReadBytes, "io_write_bytes": s.ioWriteBytes, "net_rx_bytes": s.networkRxBytes, "net_tx_bytes": s.networkTxBytes,
             "accelerators": s.accelerators.mapValues { ["current": $0.first ?? 0, "capacity": $0.count > 1 ? $0[1] : 0] }]
        }
    }

    /// Backend.AI's live_stat: each metric as `{current, capacity, pct, unit_hint}` (numbers as
    /// decimal strings, as the reference manager writes them). `cpuCapacity` is in percent
    /// (100 per core the kernel or agent has).
    static func liveStat(_ sample: UtilisationSample, cpuCapacity: Double) -> String {
        func metric(_ current: Double, _ capacity: Double?, _ unit: String) -> [String: Any] {
            var m: [String: Any] = ["current": format(current), "unit_hint": unit]
            if let capacity, capacity > 0 {
                m["capacity"] = format(capacity)
                m["pct"] = format(current / capacity * 100)
            } else {
                m["capacity"] = NSNull()
                m["pct"] = NSNull()
            }
            return m
        }
        var object: [String: Any] = [
            "cpu_util": metric(sample.cpuPercent, cpuCapacity, "percent"),
            "cpu_used": metric(Double(sample.cpuUsedNanoseconds) / 1_000_000, nil, "msec"),
            "mem": metric(Double(sample.memoryBytes), Double(sample.memoryCapacityBytes), "bytes"),
            "io_read": metric(Double(sample.ioReadBytes), nil, "bytes"),
            "io_write": metric(Double(sample.ioWriteBytes), nil, "bytes"),
            "net_rx": metric(Double(sample.networkRxBytes), nil, "bytes"),
            "net_tx": metric(Double(sample.networkTxBytes), nil, "bytes"),
        ]
        for (key, value) in sample.accelerators where value.count == 2 {
            object[key] = metric(value[0], value[1], "")
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// An agent's live_stat in Backend.AI's shape: `{"node": {metric: ...}, "devices": {metric:
    /// {device: ...}}}` (the official client reads both). Heartbeats carry the node's total CPU
    /// use, not each core's: every core shows the node's average, marked so.
    static func agentLiveStat(_ sample: UtilisationSample, cores: Int) -> String {
        let count = max(1, cores)
        let average = sample.cpuPercent / Double(count)
        func metric(_ current: Double, _ capacity: Double, _ unit: String) -> [String: Any] {
            ["current": format(current), "capacity": format(capacity), "pct": format(capacity > 0 ? current / capacity * 100 : 0), "unit_hint": unit]
        }
        // Unit hints the official client formats ("bytes", "pct", "bps", "Celsius"); with any
        // other, 23.9.10's `admin agent info` fails in its own formatter.
        var perCore: [String: Any] = [:]
        for core in 0..<count {
            var m = metric(average, 100, "pct")
            m["source"] = "node average"
            perCore[String(core)] = m
        }
        var node: [String: Any] = [
            "cpu_util": metric(sample.cpuPercent, Double(count * 100), "percent"),
            "mem": metric(Double(sample.memoryBytes), Double(sample.memoryCapacityBytes), "bytes"),
        ]
        var devices: [String: Any] = ["cpu_util": perCore, "mem": ["root": metric(Double(sample.memoryBytes), Double(sample.memoryCapacityBytes), "bytes")]]
        for (key, value) in sample.accelerators where value.count == 2 {
            node[key] = metric(value[0], value[1], "pct")
            devices[key] = ["all": metric(value[0], value[1], "pct")]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["node": node, "devices": devices], options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.3f", value)
    }
}

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
                    let live: [SessionStatus] = [.pending, .scheduled, .preparing, .pulling, .running]
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
