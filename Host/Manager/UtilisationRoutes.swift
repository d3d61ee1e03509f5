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
