import Foundation
import PluginAPI
import PluginConformance
import Testing
@testable import PluginHost

/// The conformance suite over every bundled plugin, the vendor template, and the
/// non-accelerator kinds through their wrappers.
@Suite struct ConformanceTests {
    /// Every bundled plugin with no config: on this machine the vendor plugins find no hardware
    /// and must say why; VendorPluginTests verifies them again on their fake machines.
    @Test(arguments: ["hangar-accel-mock", "hangar-accel-cuda", "hangar-storage-vfs", "hangar-scheduler-fifo", "hangar-scheduler-lifo",
                      "hangar-scheduler-drf", "hangar-scheduler-fairshare", "hangar-selector-concentrated", "hangar-selector-dispersed", "hangar-selector-roundrobin",
                      "hangar-accel-rocm", "hangar-accel-gaudi", "hangar-accel-tpu", "hangar-accel-warboy", "hangar-accel-rngd",
                      "hangar-accel-tenstorrent", "hangar-accel-ipu", "hangar-accel-atom", "hangar-accel-hyperaccel-lpu"])
    func bundledPluginConforms(product: String) throws {
        let library = try PluginLoader.open(path: PluginPaths.bundled(product))
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config: ConfigValue = library.descriptor.kind == .storage ? .table([("root", .string(dir.path))]) : .emptyTable
        let report = ConformanceSuite.run(library: library, config: config)
        let failures = report.checks.filter { $0.outcome == .fail }
        #expect(failures.isEmpty, "\(failures.map { "\($0.id): \($0.detail)" })")
        #expect(report.checks.filter { $0.outcome == .pass }.count >= 10)
    }

    @Test func conformanceCatchesAPluginThatIgnoresBadAllocations() throws {
        // The fixture accepts any slot name and amount: the suite must say so.
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let report = ConformanceSuite.run(library: try PluginLoader.open(path: FixtureCompiler.fixture("lax", in: dir.path)))
        let failed = Set(report.checks.filter { $0.outcome == .fail }.map(\.id))
        #expect(failed.contains("accelerator.container_edits.unknown_slot"))
        #expect(failed.contains("accelerator.container_edits.zero_amount"))
        #expect(!report.passed)
    }
}

@Suite struct SchedulingPluginTests {
    let slots = SchedulingSlots(names: ["cpu", "mem", "cuda.device"], types: [.count, .bytes, .count])

    @Test func fifoPicksHighestPriorityThenOldest() throws {
        let plugin = try SchedulerPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-fifo")))
        defer { plugin.instance.destroy() }
        let sessions = [
            PendingSession(id: "late-high", ownerIndex: 0, priority: 10, createdAtMicros: 300, requested: [amountScale, 1 << 30, 0]),
            PendingSession(id: "old-low", ownerIndex: 0, priority: 0, createdAtMicros: 100, requested: [amountScale, 1 << 30, 0]),
            PendingSession(id: "early-high", ownerIndex: 0, priority: 10, createdAtMicros: 200, requested: [amountScale, 1 << 30, 0]),
        ]
        let input = SchedulerInput(slots: slots, total: [8 * amountScale, 1 << 34, 0], free: [8 * amountScale, 1 << 34, 0],
                                   sessions: sessions, owners: [SchedulingOwner(accessKey: "AK", occupied: [0, 0, 0])])
        #expect(try plugin.pickNext(input).map { sessions[$0].id } == "early-high")
        let empty = SchedulerInput(slots: slots, total: [0, 0, 0], free: [0, 0, 0], sessions: [], owners: [])
        #expect(try plugin.pickNext(empty) == nil)
    }

    @Test func fifoSkipsAHeadThatKeepsFailingWhenConfigured() throws {
        let library = try PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-fifo"))
        let sessions = [
            PendingSession(id: "stuck-head", ownerIndex: 0, createdAtMicros: 100, requested: [amountScale, 1, 0], attempts: 5),
            PendingSession(id: "next", ownerIndex: 0, createdAtMicros: 200, requested: [amountScale, 1, 0], attempts: 0),
        ]
        let input = SchedulerInput(slots: slots, total: [amountScale, 1, 0], free: [amountScale, 1, 0], sessions: sessions,
                                   owners: [SchedulingOwner(accessKey: "AK", occupied: [0, 0, 0])])
        let strict = try SchedulerPlugin(library: library)
        defer { strict.instance.destroy() }
        #expect(try strict.pickNext(input).map { sessions[$0].id } == "stuck-head")
        let skipping = try SchedulerPlugin(library: library, config: .table([("num_retries_to_skip", .integer(3))]))
        defer { skipping.instance.destroy() }
        #expect(try skipping.pickNext(input).map { sessions[$0].id } == "next")
    }

    @Test func destroyWaitsOutConcurrentCallsOnAThreadSafePlugin() async throws {
        let plugin = try SchedulerPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-fifo")))
        #expect(plugin.instance.library.descriptor.isThreadSafe)
        let input = SchedulerInput(slots: slots, total: [amountScale, 1, 0], free: [amountScale, 1, 0],
                                   sessions: [PendingSession(id: "a", ownerIndex: 0, createdAtMicros: 1, requested: [amountScale, 1, 0])],
                                   owners: [SchedulingOwner(accessKey: "AK", occupied: [0, 0, 0])])
        let outcomes = await withTaskGroup(of: (picked: Int, destroyed: Int).self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var picked = 0, destroyed = 0
                    for _ in 0..<20_000 {
                        do {
                            if try plugin.pickNext(input) == 0 { picked += 1 }
                        } catch {
                            if (error as? PluginError)?.code == .destroyed { destroyed += 1 }
                        }
                    }
                    return (picked, destroyed)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(5))
                plugin.instance.destroy()
                return (0, 0)
            }
            var total: [(picked: Int, destroyed: Int)] = []
            for await o in group { total.append(o) }
            return total
        }
        // Every call either ran to completion on a live instance or was refused cleanly.
        #expect(outcomes.reduce(0) { $0 + $1.picked + $1.destroyed } == 80_000)
        #expect(throws: PluginError.self) { try plugin.pickNext(input) }
    }

    @Test func lifoPicksTheNewestAndDRFTheLeastServedOwner() throws {
        let sessions = [
            PendingSession(id: "old-of-heavy", ownerIndex: 0, createdAtMicros: 100, requested: [amountScale, 1 << 30, 0]),
            PendingSession(id: "new-of-light", ownerIndex: 1, createdAtMicros: 300, requested: [amountScale, 1 << 30, 0]),
            PendingSession(id: "mid-of-heavy", ownerIndex: 0, createdAtMicros: 200, requested: [amountScale, 1 << 30, 0]),
        ]
        // Owner 0 holds 6 of 8 cores; owner 1 holds 1 GiB of 16.
        let input = SchedulerInput(slots: slots, total: [8 * amountScale, 16 << 30, 0], free: [amountScale, 15 << 30, 0], sessions: sessions,
                                   owners: [SchedulingOwner(accessKey: "HEAVY", occupied: [6 * amountScale, 0, 0]),
                                            SchedulingOwner(accessKey: "LIGHT", occupied: [0, 1 << 30, 0])])
        let lifo = try SchedulerPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-lifo")))
        defer { lifo.instance.destroy() }
        #expect(try lifo.pickNext(input).map { sessions[$0].id } == "new-of-light")
        let drf = try SchedulerPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-scheduler-drf")))
        defer { drf.instance.destroy() }
        #expect(try drf.pickNext(input).map { sessions[$0].id } == "new-of-light", "the owner with the smaller dominant share goes first")
        let heavyOnly = SchedulerInput(slots: slots, total: [8 * amountScale, 16 << 30, 0], free: [amountScale, 15 << 30, 0],
                                       sessions: [sessions[2], sessions[0]],
                                       owners: [SchedulingOwner(accessKey: "HEAVY", occupied: [6 * amountScale, 0, 0])])
        #expect(try drf.pickNext(heavyOnly) == 1, "within one owner, the oldest")
    }

    @Test func dispersedSpreadsAndRoundRobinRotates() throws {
        let agents = (0..<3).map { i in
            AgentCandidate(id: "agent-\(i)", architecture: "x86_64", capacity: [16 * amountScale, 1 << 36, 0], occupied: [Int64(i) * amountScale, 0, 0])
        }
        let one = PlacementRequest(sessionID: "s", architecture: nil, kernelRequests: [[amountScale, 1 << 30, 0]], singleNode: true)
        let dispersed = try AgentSelectorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-selector-dispersed")))
        defer { dispersed.instance.destroy() }
        #expect(try dispersed.selectAgents(slots: slots, request: one, candidates: agents) == .placed([0]), "the emptiest agent")
        let roundrobin = try AgentSelectorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-selector-roundrobin")))
        defer { roundrobin.instance.destroy() }
        var picks: [Int] = []
        for _ in 0..<4 {
            if case .placed(let p) = try roundrobin.selectAgents(slots: slots, request: one, candidates: agents) { picks += p }
        }
        #expect(picks == [0, 1, 2, 0])
    }

    @Test func concentratedPacksAndRespectsArchitecture() throws {
        let plugin = try AgentSelectorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-selector-concentrated")))
        defer { plugin.instance.destroy() }
        let agents = [
            AgentCandidate(id: "empty", architecture: "x86_64", capacity: [16 * amountScale, 1 << 36, 4 * amountScale], occupied: [0, 0, 0]),
            AgentCandidate(id: "busy", architecture: "x86_64", capacity: [16 * amountScale, 1 << 36, 4 * amountScale],
                           occupied: [12 * amountScale, 1 << 35, 2 * amountScale]),
            AgentCandidate(id: "arm", architecture: "aarch64", capacity: [64 * amountScale, 1 << 38, 8 * amountScale], occupied: [0, 0, 0]),
        ]
        let small = PlacementRequest(sessionID: "s", architecture: "x86_64", kernelRequests: [[2 * amountScale, 1 << 30, amountScale]], singleNode: true)
        #expect(try plugin.selectAgents(slots: slots, request: small, candidates: agents) == .placed([1]), "pack onto the busier agent")
        let gpuHeavy = PlacementRequest(sessionID: "g", architecture: "x86_64", kernelRequests: [[2 * amountScale, 1 << 30, 3 * amountScale]], singleNode: true)
        #expect(try plugin.selectAgents(slots: slots, request: gpuHeavy, candidates: agents) == .placed([0]), "only 'empty' has 3 free GPUs on x86_64")
        let huge = PlacementRequest(sessionID: "h", architecture: "x86_64", kernelRequests: [[32 * amountScale, 1 << 30, 0]], singleNode: true)
        guard case .noAgent(let reason) = try plugin.selectAgents(slots: slots, request: huge, candidates: agents) else {
            Issue.record("a 32-core kernel must not fit a 16-core x86_64 agent")
            return
        }
        #expect(reason.contains("cpu"))
    }
}

@Suite struct VFSStorageTests {
    @Test func folderLifecycleAndPathSafety() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let plugin = try StoragePlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-storage-vfs")),
                                       config: .table([("root", .string(dir.path))]))
        defer { plugin.instance.destroy() }
        let id = "0123456789abcdef0123456789abcdef"
        try plugin.createFolder(id, quotaBytes: 1 << 20)
        let path = try plugin.folderPath(id)
        #expect(path.hasPrefix(dir.path + "/"))
        #expect(FileManager.default.createFile(atPath: path + "/data.bin", contents: Data(count: 10_000)))
        let usage = try plugin.usage(of: id)
        #expect(usage.usedBytes >= 10_000)
        #expect(try plugin.quota(of: id) == 1 << 20)
        // A symlink pointing outside must not be followed when deleting.
        let outside = try dir.write("outside/keep.txt", "keep me")
        try FileManager.default.createSymbolicLink(atPath: path + "/escape", withDestinationPath: (outside as NSString).deletingLastPathComponent)
        try plugin.deleteFolder(id)
        #expect(FileManager.default.fileExists(atPath: outside))
        #expect(!FileManager.default.fileExists(atPath: path))
        for bad in ["../../etc", "a/b", "", "UPPER"] {
            #expect(throws: PluginError.self, "id '\(bad)' must be refused") { try plugin.createFolder(bad) }
        }
    }

    @Test func missingRootIsAConfigError() throws {
        #expect {
            try StoragePlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-storage-vfs")), config: .emptyTable)
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .invalidConfig && e.reason.contains("root")
        }
    }
}
