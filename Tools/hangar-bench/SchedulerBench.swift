import Foundation
import PluginHost

/// Reads a JSON file, gunzipping `.gz` with the system's gzip (Foundation has no inflater on Linux).
func loadJSON(_ path: String) throws -> [String: Any] {
    var data: Data
    if path.hasSuffix(".gz") {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
    } else {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
    }
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw NSError(domain: "hangar-bench", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path) is not a JSON object"])
    }
    return object
}

func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

/// The shared Backend.AI snapshot (bai-sched-snapshot/1) as our plugins' inputs.
struct BenchSnapshot {
    let slots: SchedulingSlots
    let sessions: [PendingSession]
    let owners: [SchedulingOwner]
    let agents: [AgentCandidate]
    let total: [Int64]
    let free: [Int64]

    init(_ s: [String: Any]) throws {
        let types = s["slot_types"] as? [String: String] ?? [:]
        let names = types.keys.sorted()
        slots = SchedulingSlots(names: names, types: names.map { types[$0] == "bytes" ? .bytes : .count })
        func vector(_ map: Any?) -> [Int64] {
            let m = map as? [String: Any] ?? [:]
            return names.map { name in
                let v = (m[name] as? NSNumber)?.int64Value ?? 0
                return types[name] == "bytes" ? v : v * amountScale
            }
        }
        let agentObjects = s["agents"] as? [[String: Any]] ?? []
        agents = agentObjects.map {
            AgentCandidate(id: $0["id"] as? String ?? "", architecture: $0["architecture"] as? String ?? "",
                           capacity: vector($0["available_slots"]), occupied: vector($0["occupied_slots"]))
        }
        var ownerIndex: [String: Int] = [:]
        var ownerKeys: [String] = []
        func owner(_ key: String) -> Int {
            if let i = ownerIndex[key] { return i }
            ownerIndex[key] = ownerKeys.count
            ownerKeys.append(key)
            return ownerKeys.count - 1
        }
        let pending = s["pending"] as? [[String: Any]] ?? []
        sessions = pending.map {
            PendingSession(id: $0["id"] as? String ?? "", ownerIndex: owner($0["access_key"] as? String ?? ""),
                           createdAtMicros: ($0["created_at_us"] as? NSNumber)?.int64Value ?? 0,
                           kernelCount: UInt32(($0["cluster_size"] as? NSNumber)?.intValue ?? 1), requested: vector($0["requested_slots"]))
        }
        var occupiedByOwner: [Int: [Int64]] = [:]
        for e in s["existing"] as? [[String: Any]] ?? [] {
            let i = owner(e["access_key"] as? String ?? "")
            let v = vector(e["occupying_slots"])
            occupiedByOwner[i] = zip(occupiedByOwner[i] ?? Array(repeating: 0, count: names.count), v).map { $0 + $1 }
        }
        owners = ownerKeys.enumerated().map { SchedulingOwner(accessKey: $1, occupied: occupiedByOwner[$0] ?? Array(repeating: 0, count: names.count)) }
        let all = agents
        total = names.indices.map { k in all.reduce(0) { $0 + $1.capacity[k] } }
        free = names.indices.map { k in all.reduce(0) { $0 + $1.capacity[k] - $1.occupied[k] } }
    }

    func schedulerInput() -> SchedulerInput {
        SchedulerInput(slots: slots, total: total, free: free, sessions: sessions, owners: owners)
    }
}

func runSchedulerBench(_ options: Options) throws {
    guard let snapshotPath = options.snapshot else {
        FileHandle.standardError.write(Data("hangar-bench scheduler needs --snapshot FILE (e.g. ../shared/bench/scheduler/snapshot.json.gz)\n".utf8))
        exit(2)
    }
    var snapshot: BenchSnapshot!
    let loadTime = try milliseconds { snapshot = try BenchSnapshot(loadJSON(snapshotPath)) }
    let expected = try options.expected.map(loadJSON)
    print("snapshot: \(snapshot.agents.count) agents, \(snapshot.sessions.count) pending sessions, \(snapshot.owners.count) access keys, slots \(snapshot.slots.names) (loaded in \(String(format: "%.0f", loadTime)) ms)")
    func library(_ product: String) throws -> PluginLibrary { try PluginLoader.open(path: "\(options.pluginDir)/lib\(product).so") }
    let schedulers = ["fifo", "lifo", "drf"]
    let selectors = ["concentrated", "dispersed"]
    let expectedPick = expected?["pick"] as? [String: String] ?? [:]
    let expectedAssign = expected?["assign"] as? [String: [String: String]] ?? [:]
    let expectedPass = expected?["pass"] as? [String: [String: Any]] ?? [:]
    var agreements: [String] = []

    for name in schedulers {
        let scheduler = try SchedulerPlugin(library: library("hangar-scheduler-\(name)"))
        defer { scheduler.instance.destroy() }
        let input = snapshot.schedulerInput()
        var picked: Int?
        // Median of 21 picks over the full queue.
        var times: [Double] = []
        for _ in 0..<21 { times.append(try milliseconds { picked = try scheduler.pickNext(input) }) }
        times.sort()
        let id = picked.map { input.sessions[$0].id } ?? "-"
        let agree = expectedPick[name].map { $0 == id ? "same as Backend.AI" : "Backend.AI picked \($0)" } ?? ""
        print(String(format: "pick  %-4@ over %5d sessions: %8.3f ms  -> %@ %@", name, input.sessions.count, times[10], id, agree))
        if let e = expectedPick[name] { agreements.append("pick \(name): \(e == id ? "agree" : "differ")") }

        for selectorName in selectors {
            let selector = try AgentSelectorPlugin(library: library("hangar-selector-\(selectorName)"))
            defer { selector.instance.destroy() }
            let prepared = SelectionInput(slots: snapshot.slots, candidates: snapshot.agents)
            guard let p = picked else { continue }
            let session = input.sessions[p]
            let request = PlacementRequest(sessionID: session.id, architecture: "x86_64", kernelRequests: [session.requested], singleNode: true)
            var placement: Placement = .noAgent("")
            var ptimes: [Double] = []
            for _ in 0..<21 { ptimes.append(try milliseconds { placement = try selector.selectAgents(prepared, request: request) }) }
            ptimes.sort()
            var agent = "-"
            if case .placed(let a) = placement { agent = snapshot.agents[a[0]].id }
            let key = "\(name)/\(selectorName)"
            let e = expectedAssign[key]?["agent"]
            print(String(format: "  place with %-12@ over %4d agents: %7.3f ms -> %@ %@", selectorName, snapshot.agents.count, ptimes[10], agent,
                         e.map { $0 == agent ? "same as Backend.AI" : "Backend.AI chose \($0)" } ?? ""))
            if let e { agreements.append("assign \(key): \(e == agent ? "agree" : "differ")") }

            // A pass: place 1,000 sessions one after another, charging occupancy after each.
            let passInput = snapshot.schedulerInput()
            let passAgents = SelectionInput(slots: snapshot.slots, candidates: snapshot.agents)
            var placed: [(String, String)] = []
            var failed = 0
            let passTime = try milliseconds {
                while placed.count + failed < 1000, let i = try scheduler.pickNext(passInput) {
                    let s = passInput.sessions[i]
                    let r = PlacementRequest(sessionID: s.id, architecture: "x86_64", kernelRequests: [s.requested], singleNode: true)
                    switch try selector.selectAgents(passAgents, request: r) {
                    case .placed(let a):
                        passAgents.charge(agent: a[0], amounts: s.requested)
                        passInput.charge(ownerIndex: s.ownerIndex, amounts: s.requested)
                        placed.append((s.id, snapshot.agents[a[0]].id))
                    case .noAgent:
                        failed += 1
                    }
                    passInput.removeSession(at: i)
                }
            }
            var agreement = ""
            if let e = expectedPass[key]?["placed"] as? [[String]] {
                let same = zip(e, placed).filter { $0[0] == $1.0 && $0[1] == $1.1 }.count
                agreement = "\(same)/\(e.count) decisions identical to Backend.AI"
                agreements.append("pass \(key): \(same)/\(e.count)")
            }
            print(String(format: "  pass  %@/%@: %d placed, %d failed in %.1f ms (%.3f ms per placed session) %@", name, selectorName,
                         placed.count, failed, passTime, passTime / Double(max(placed.count, 1)), agreement))
        }
    }
    if !agreements.isEmpty { print("agreement with Backend.AI 23.9.10: " + agreements.joined(separator: "; ")) }
}
