import ClusterProtocol
import Foundation
import StateStore
import TestSupport
import Testing

/// Utilisation history from heartbeats: one sample per 10 s per kernel and agent, CPU percent
/// from the CPU-time counter's growth, accelerator measures summed, an hour kept.
@Suite struct UtilisationTests {
    static func stats(_ kernel: String, cpuSeconds: Double, memory: UInt64) -> KernelStats {
        KernelStats(kernelID: kernel, cpuUsedNanoseconds: UInt64(cpuSeconds * 1e9), memoryBytes: memory, memoryLimitBytes: 1 << 30,
                    ioReadBytes: 10, ioWriteBytes: 20, networkRxBytes: 30, networkTxBytes: 40)
    }

    @Test(arguments: Backend.allCases)
    func samplesAreTakenEveryTenSecondsAndKeptForAnHour(backend: Backend) throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let t0: Int64 = 1_800_000_000_000_000
        let gpu = MeasureReport(plugin: "mock", key: "util", deviceID: "d0", kernelID: "k1", current: 40, capacity: 100)
        try store.recordUtilisation(agent: "a1", capacityMemory: 8 << 30, kernels: [Self.stats("k1", cpuSeconds: 1, memory: 100), Self.stats("k2", cpuSeconds: 0, memory: 50)],
                                    measures: [gpu], now: t0)
        // Five seconds later: too soon, nothing recorded.
        try store.recordUtilisation(agent: "a1", capacityMemory: 8 << 30, kernels: [Self.stats("k1", cpuSeconds: 3, memory: 200)], measures: [], now: t0 + 5_000_000)
        // Ten seconds later: k1 used 15 more CPU seconds (1.5 cores busy), k2 2 seconds.
        try store.recordUtilisation(agent: "a1", capacityMemory: 8 << 30, kernels: [Self.stats("k1", cpuSeconds: 16, memory: 300), Self.stats("k2", cpuSeconds: 2, memory: 60)],
                                    measures: [gpu], now: t0 + 10_000_000)
        let k1 = try store.utilisation(scope: "kernel", owner: "k1", since: 0)
        #expect(k1.map(\.at) == [t0, t0 + 10_000_000])
        #expect(k1.map(\.cpuPercent) == [0, 150])
        #expect(k1.last?.memoryBytes == 300 && k1.last?.memoryCapacityBytes == 1 << 30)
        #expect(k1.last?.accelerators["mock.util"] == [40, 100])
        let agent = try store.utilisation(scope: "agent", owner: "a1", since: 0)
        #expect(agent.count == 2)
        #expect(abs((agent.last?.cpuPercent ?? 0) - 170) < 1e-9, "the agent's CPU is its kernels' sum: \(agent.map(\.cpuPercent))")
        #expect(agent.last?.memoryBytes == 360 && agent.last?.memoryCapacityBytes == 8 << 30)
        #expect(try store.latestUtilisation(scope: "kernel", owner: "k1")?.at == t0 + 10_000_000)
        // An hour later the old samples are gone.
        try store.recordUtilisation(agent: "a1", capacityMemory: 8 << 30, kernels: [Self.stats("k1", cpuSeconds: 20, memory: 300)], measures: [],
                                    now: t0 + 3_605_000_000)
        #expect(try store.utilisation(scope: "kernel", owner: "k1", since: 0).map(\.at) == [t0 + 10_000_000, t0 + 3_605_000_000])
        #expect(try store.utilisation(scope: "agent", owner: "a1", since: 0).count == 2)
    }
}
