import Foundation
import Testing
@testable import PluginHost

/// Our fifo/lifo schedulers and concentrated/dispersed selectors make the same decisions as
/// Backend.AI 23.9.10 on the shared benchmark snapshot (a copy of shared/bench/scheduler is
/// kept in Tests/Fixtures/SchedulerBench so the test needs nothing outside the repository).
@Suite struct BackendAIParityTests {
    static let benchDir = PluginPaths.repoRoot + "/Tests/Fixtures/SchedulerBench"

    static func gunzipJSON(_ path: String) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test(arguments: [("fifo", "concentrated"), ("fifo", "dispersed"), ("lifo", "dispersed")])
    func aThousandPlacementsMatchBackendAI(scheduler schedulerName: String, selector selectorName: String) throws {
        let snapshotPath = Self.benchDir + "/snapshot.json.gz", expectedPath = Self.benchDir + "/expected.json.gz"
        try #require(FileManager.default.fileExists(atPath: snapshotPath), "the shared scheduler snapshot is missing at \(snapshotPath)")
        let snapshot = try Self.gunzipJSON(snapshotPath)
        let expected = try #require(((try Self.gunzipJSON(expectedPath))["pass"] as? [String: [String: Any]])?["\(schedulerName)/\(selectorName)"]?["placed"] as? [[String]])
        let types = snapshot["slot_types"] as? [String: String] ?? [:]
        let names = types.keys.sorted()
        let slots = SchedulingSlots(names: names, types: names.map { types[$0] == "bytes" ? .bytes : .count })
        func vector(_ map: Any?) -> [Int64] {
            let m = map as? [String: Any] ?? [:]
            return names.map { let v = (m[$0] as? NSNumber)?.int64Value ?? 0; return types[$0] == "bytes" ? v : v * amountScale }
        }
        let agents = (snapshot["agents"] as? [[String: Any]] ?? []).map {
            AgentCandidate(id: $0["id"] as! String, architecture: $0["architecture"] as! String, capacity: vector($0["available_slots"]), occupied: vector($0["occupied_slots"]))
        }
        let sessions = (snapshot["pending"] as? [[String: Any]] ?? []).map {
            PendingSession(id: $0["id"] as! String, ownerIndex: 0, createdAtMicros: ($0["created_at_us"] as! NSNumber).int64Value, requested: vector($0["requested_slots"]))
        }
        let zero = [Int64](repeating: 0, count: names.count)
        let queue = SchedulerInput(slots: slots, total: zero, free: zero, sessions: sessions, owners: [SchedulingOwner(accessKey: "any", occupied: zero)])
        let candidates = SelectionInput(slots: slots, candidates: agents)
        let scheduler = try SchedulerPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-\(schedulerName)")))
        let selector = try AgentSelectorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-selector-\(selectorName)")))
        defer { scheduler.instance.destroy(); selector.instance.destroy() }
        var placed: [[String]] = []
        while placed.count < expected.count, let i = try scheduler.pickNext(queue) {
            let s = queue.sessions[i]
            guard case .placed(let a) = try selector.selectAgents(candidates, request: PlacementRequest(sessionID: s.id, architecture: "x86_64", kernelRequests: [s.requested], singleNode: true)) else {
                Issue.record("session \(s.id) could not be placed")
                return
            }
            candidates.charge(agent: a[0], amounts: s.requested)
            placed.append([s.id, agents[a[0]].id])
            queue.removeSession(at: i)
        }
        let firstDifference = zip(placed, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(firstDifference == nil, "decision \(firstDifference?.offset ?? -1): ours \(firstDifference?.element.0 ?? []) vs Backend.AI \(firstDifference?.element.1 ?? [])")
        #expect(placed.count == expected.count)
    }
}
