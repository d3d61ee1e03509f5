import ClusterProtocol
import Foundation
import Manager
import PluginHost
import StateStore

/// `hangar-bench pass`: the manager's own scheduling pass (SessionScheduler.schedule: state
/// read from the database, scheduler and selector plugins, one reservation transaction per
/// placed session) over 10,000 pending sessions and 1,000 agents.
func runPassBench(_ options: Options) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-pass-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let location: DatabaseLocation = options.database.map { .postgresql(url: $0) } ?? .sqlite(path: dir + "/bench.db")
    let store = try StateStore(location: location)
    defer { store.close() }
    _ = try store.bootstrap(passwordRounds: 1000)
    let project = try store.projects().first!
    // Unlimited concurrent sessions, so placement (not the policy predicate) decides.
    try store.database.withConnection { try $0.execute("UPDATE resource_policies SET max_concurrent_sessions = 0") }
    var owners: [(key: String, user: String)] = []
    for i in 0..<10 {
        let user = try store.createUser(email: "bench\(i)@hangar.local", password: "bench-password", passwordRounds: 1000)
        owners.append((try store.createKeypair(userID: user.id).accessKey, user.id))
    }
    let agentCount = options.agents, sessionCount = options.sessions
    for i in 0..<agentCount {
        _ = try store.recordHeartbeat(AgentHeartbeat(agentID: "bench-\(i)", address: "http://10.\(i / 65536).\(i / 256 % 256).\(i % 256):6001",
                                                     resourceGroup: "default", architecture: "x86_64", version: "bench",
                                                     capacity: ResourceSlots(["cpu": 16, "mem": Decimal(64 << 30)]),
                                                     slotTypes: ["cpu": "count", "mem": "bytes"]))
    }
    for i in 0..<sessionCount {
        let owner = owners[i % owners.count]
        _ = try store.createSession(SessionSpec(name: "bench-\(i)", accessKey: owner.key, userID: owner.user, projectID: project.id,
                                                image: "hangar/python:3.11-bookworm",
                                                requested: ResourceSlots(["cpu": Decimal(1 + i % 4), "mem": Decimal((1 + i % 8) << 30)])))
    }
    let scheduler = SessionScheduler(store: store, plugins: try PluginHost(searchPaths: [options.pluginDir]))
    print("scheduling pass on \(options.database == nil ? "SQLite" : "PostgreSQL"): \(sessionCount) pending sessions, \(agentCount) agents (16 cores, 64 GiB each), fifo + concentrated")
    func timed(_ label: String, _ body: () throws -> Int) rethrows {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = try body()
        print(String(format: "  %-44@ %7.1f ms (%d rows)", label as NSString, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, n))
    }
    for round in 1...3 {
        if round == 2 {
            print("where a pass over the stuck queue spends its time:")
            try timed("load pending sessions") { try store.sessions(resourceGroup: "default", status: .pending).count }
            try timed("load agents") { try store.agents(resourceGroup: "default", status: .alive).count }
            try timed("load pending kernel ids") { try store.pendingKernelIDs(resourceGroup: "default").count }
            try timed("count attempts (one UPDATE)") { try store.notePass(resourceGroup: "default", consideredUpTo: 0, changedReasons: []); return 0 }
        }
        var decisions: [SchedulingDecision] = []
        let start = DispatchTime.now().uptimeNanoseconds
        decisions = try scheduler.schedule(resourceGroup: "default")
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let placed = decisions.filter { if case .scheduled = $0 { true } else { false } }.count
        let waiting = decisions.count - placed
        print(String(format: "pass %d: %9.1f ms  placed %5d, left pending %5d  (%.1f µs per decision)", round, ms, placed, waiting,
                     ms * 1000 / Double(max(decisions.count, 1))))
    }
}
