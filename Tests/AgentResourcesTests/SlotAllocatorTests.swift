import AgentResources
import Testing
import TestSupport

/// A fake two-node machine: 8 cores (0-3 on node 0, 4-7 on node 1), 32 GiB, two GPUs
/// (cuda.device, discrete, one per node) and two fractional devices (mock.shares, 1.0 each
/// in 0.25 quanta, one per node).
func twoNodeAllocator(policy: AffinityPolicy = .preferSingleNode, strategy: AllocationStrategy = .evenly) -> SlotAllocator {
    let topology = HostTopology.fake(nodes: 2, coresPerNode: 4, memoryBytes: 32 << 30)
    let intrinsic = topology.intrinsicSlots()
    let gpus = [ComputeDevice(key: "cuda", id: "0", numaNode: 0), ComputeDevice(key: "cuda", id: "1", numaNode: 1)]
    let shares = [ComputeDevice(key: "mock", id: "a", numaNode: 0), ComputeDevice(key: "mock", id: "b", numaNode: 1)]
    var capacity = intrinsic.capacity
    capacity["cuda.device"] = ["0": slotAmountScale, "1": slotAmountScale]
    capacity["mock.shares"] = ["a": slotAmountScale, "b": slotAmountScale]
    return SlotAllocator(devices: intrinsic.devices + gpus + shares,
                         slots: intrinsic.slots + [SlotSpec(name: "cuda.device", kind: .count, exclusive: true),
                                                   SlotSpec(name: "mock.shares", kind: .count, mode: .fractional, quantum: slotAmountScale / 4)],
                         capacity: capacity, policy: policy, strategy: strategy)
}

let core = slotAmountScale

@Suite struct SlotAllocatorTests {
    @Test func coresFollowTheGPUsNUMANodeWhenPreferringOneNode() throws {
        let allocator = twoNodeAllocator(policy: .preferSingleNode)
        // Take GPU 0's node's capacity first so the next GPU comes from node 1.
        let first = try allocator.allocate(["cuda.device": core])
        let second = try allocator.allocate(["cuda.device": core, "cpu": 3 * core, "mem": 1 << 30])
        let gpuNode = second.devices(of: "cuda.device") == ["1"] ? 1 : 0
        #expect(first.devices(of: "cuda.device") != second.devices(of: "cuda.device"))
        let cores = second.devices(of: "cpu").compactMap(Int.init)
        #expect(cores.count == 3)
        #expect(cores.allSatisfy { $0 / 4 == gpuNode }, "cores \(cores) must be on node \(gpuNode), the GPU's")
    }

    @Test func interleavedSpreadsCoresOverNodes() throws {
        let allocator = twoNodeAllocator(policy: .interleaved)
        let a = try allocator.allocate(["cpu": 4 * core])
        let nodes = a.devices(of: "cpu").compactMap(Int.init).map { $0 / 4 }
        #expect(Set(nodes) == [0, 1])
        #expect(nodes.filter { $0 == 0 }.count == 2)
    }

    @Test func fallsBackToTheOtherNodeWhenTheGPUsNodeIsFull() throws {
        let allocator = twoNodeAllocator(policy: .preferSingleNode)
        let k = try allocator.allocate(["cuda.device": core, "cpu": 6 * core])
        #expect(k.devices(of: "cpu").count == 6)
        #expect(allocator.free["cpu"] == 2 * core)
    }

    @Test func failuresNameTheSlotAndLeaveNothingHeld() throws {
        let allocator = twoNodeAllocator()
        let before = allocator.allocated
        #expect(throws: AllocationError.insufficient(slot: "cpu", requested: "9", available: "8", short: "1")) {
            try allocator.allocate(["cuda.device": core, "cpu": 9 * core])
        }
        #expect(allocator.allocated == before, "the GPU taken before the cores ran out is given back")
        #expect(throws: AllocationError.self) { try allocator.allocate(["tpu.device": core]) }
        #expect(throws: AllocationError.self) { try allocator.allocate(["cpu": core / 2]) }
        #expect(throws: AllocationError.self) { try allocator.allocate(["mock.shares": core / 10]) }
        #expect(throws: AllocationError.self) { try allocator.allocate(["cpu": -core]) }
        do {
            _ = try allocator.allocate(["mem": 40 << 30])
            Issue.record("40 GiB must not fit 32 GiB")
        } catch {
            #expect(error.description == "not enough 'mem': requested 42949672960 bytes, free 34359738368 bytes, short by 8589934592 bytes")
        }
        #expect(allocator.allocated.isEmpty)
    }

    @Test func exclusiveSlotsCannotBeCombined() {
        let allocator = SlotAllocator(devices: [ComputeDevice(key: "cuda", id: "0", numaNode: nil)],
                                      slots: [SlotSpec(name: "cuda.device", kind: .count, exclusive: true),
                                              SlotSpec(name: "cuda.shares", kind: .count, mode: .fractional, quantum: core / 100, exclusive: true)],
                                      capacity: ["cuda.device": ["0": core], "cuda.shares": ["0": core]])
        #expect(throws: AllocationError.exclusiveCombination(["cuda.device", "cuda.shares"])) {
            try allocator.allocate(["cuda.device": core, "cuda.shares": core / 2])
        }
    }

    @Test func restoreRebuildsTheSameState() throws {
        let allocator = twoNodeAllocator()
        let kernels = try (0..<3).map { _ in try allocator.allocate(["cpu": 2 * core, "mem": 2 << 30, "mock.shares": core / 4]) }
        let fresh = twoNodeAllocator()
        for k in kernels { try fresh.restore(k) }
        #expect(fresh.allocated == allocator.allocated)
        #expect(fresh.free == allocator.free)
        #expect(throws: AllocationError.self) { try fresh.restore(SlotAllocation(["cpu": ["99": core]])) }
        #expect(throws: AllocationError.self) { try fresh.restore(SlotAllocation(["mem": ["root": 40 << 30]])) }
        #expect(fresh.allocated == allocator.allocated, "a failed restore changes nothing")
    }

    /// Random allocate/free sequences over mixed discrete and fractional slots: never over
    /// capacity, never residue after freeing everything.
    @Test(arguments: [(AffinityPolicy.preferSingleNode, AllocationStrategy.evenly), (.interleaved, .fill), (.preferSingleNode, .fill), (.interleaved, .evenly)])
    func randomSequencesKeepTheInvariants(policy: AffinityPolicy, strategy: AllocationStrategy) {
        var rng = SplitMix(seed: 42)
        for _ in 0..<30 {
            let allocator = twoNodeAllocator(policy: policy, strategy: strategy)
            let total = allocator.total
            var held: [SlotAllocation] = []
            for _ in 0..<200 {
                if !held.isEmpty && rng.next() % 3 == 0 {
                    allocator.free(held.remove(at: Int(rng.next() % UInt64(held.count))))
                } else {
                    var request: [String: Int64] = ["cpu": Int64(rng.next() % 4 + 1) * core, "mem": Int64(rng.next() % 8 + 1) << 30]
                    if rng.next() % 2 == 0 { request["mock.shares"] = Int64(rng.next() % 6 + 1) * core / 4 }
                    if rng.next() % 4 == 0 { request["cuda.device"] = core }
                    if let a = try? allocator.allocate(request) {
                        #expect(a.totals.filter { $0.value != 0 } == request, "granted exactly what was asked")
                        held.append(a)
                    }
                }
                for (slot, devices) in allocator.allocated {
                    #expect(devices.values.reduce(0, +) <= total[slot]!, "\(slot) over capacity")
                    for (device, amount) in devices { #expect(amount >= 0 && amount <= twoNodeAllocator().capacity[slot]![device]!) }
                }
            }
            for a in held { allocator.free(a) }
            #expect(allocator.allocated.isEmpty, "residue after freeing everything: \(allocator.allocated)")
            #expect(allocator.free == total)
        }
    }

    @Test func reservedCoresAndMemoryAreNotOffered() {
        let slots = HostTopology.fake(nodes: 1, coresPerNode: 4, memoryBytes: 8 << 30).intrinsicSlots(reservedCores: 1, reservedMemory: 1 << 30)
        #expect(slots.capacity["cpu"]?.count == 3)
        #expect(slots.capacity["mem"]?["root"] == 7 << 30)
    }

    @Test func detectsThisMachine() {
        let topology = HostTopology.detect()
        #expect(!topology.cores.isEmpty)
        #expect(topology.memoryBytes > 1 << 28)
    }
}

@Test func cpuListsParseLikeTheKernelWritesThem() {
    #expect(HostTopology.parseCPUList("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11])
    #expect(HostTopology.parseCPUList("0") == [0])
    #expect(HostTopology.parseCPUList("3-1") == nil)
}

/// The ABI 1.2 device facts the allocator honours: an accelerator's nearest CPUs, and
/// partitions that share hardware with their parent.
@Suite struct DeviceHintTests {
    /// Eight cores on one node with no NUMA information; NPU "0" is nearest cores 6-7, NPU "1"
    /// nearest cores 2-3 (what sysfs local_cpulist says on boards whose NUMA node reads -1).
    func affinityAllocator() -> SlotAllocator {
        let intrinsic = HostTopology(cores: (0..<8).map { (id: $0, numaNode: nil) }, memoryBytes: 16 << 30).intrinsicSlots()
        let npus = [ComputeDevice(key: "npu", id: "0", numaNode: nil, nearCPUs: [6, 7]),
                    ComputeDevice(key: "npu", id: "1", numaNode: nil, nearCPUs: [2, 3])]
        var capacity = intrinsic.capacity
        capacity["npu.device"] = ["0": core, "1": core]
        return SlotAllocator(devices: intrinsic.devices + npus, slots: intrinsic.slots + [SlotSpec(name: "npu.device", kind: .count)],
                             capacity: capacity, order: ["npu", "cpu", "mem"])
    }

    @Test func coresComeFromTheCPUsNearestTheDevice() throws {
        let allocator = affinityAllocator()
        let first = try allocator.allocate(["npu.device": core, "cpu": 2 * core])
        let npu = try #require(first.devices(of: "npu.device").first)
        let expected: Set<Int> = npu == "0" ? [6, 7] : [2, 3]
        #expect(Set(first.devices(of: "cpu").compactMap(Int.init)) == expected)
        let second = try allocator.allocate(["npu.device": core, "cpu": 2 * core])
        let other: Set<Int> = npu == "0" ? [2, 3] : [6, 7]
        #expect(Set(second.devices(of: "cpu").compactMap(Int.init)) == other)
    }

    @Test func nearCoresAreAPreferenceNotALimit() throws {
        let allocator = affinityAllocator()
        let k = try allocator.allocate(["npu.device": core, "cpu": 4 * core])
        let cores = Set(k.devices(of: "cpu").compactMap(Int.init))
        let near: Set<Int> = k.devices(of: "npu.device") == ["0"] ? [6, 7] : [2, 3]
        #expect(cores.count == 4)
        #expect(cores.isSuperset(of: near), "cores \(cores) must include the device's near CPUs \(near)")
    }

    /// GPU "0" split into two MIG-like partitions "0/a" and "0/b"; GPU "1" whole.
    func partitionAllocator() -> SlotAllocator {
        let intrinsic = HostTopology.fake(nodes: 1, coresPerNode: 4, memoryBytes: 16 << 30).intrinsicSlots()
        let gpus = [ComputeDevice(key: "gpu", id: "0", numaNode: 0), ComputeDevice(key: "gpu", id: "0/a", numaNode: 0, parentID: "0"),
                    ComputeDevice(key: "gpu", id: "0/b", numaNode: 0, parentID: "0"), ComputeDevice(key: "gpu", id: "1", numaNode: 0)]
        var capacity = intrinsic.capacity
        capacity["gpu.device"] = ["0": core, "1": core]
        capacity["gpu.mig"] = ["0/a": core, "0/b": core]
        return SlotAllocator(devices: intrinsic.devices + gpus,
                             slots: intrinsic.slots + [SlotSpec(name: "gpu.device", kind: .count, exclusive: true),
                                                       SlotSpec(name: "gpu.mig", kind: .unique, exclusive: true)],
                             capacity: capacity)
    }

    @Test func aPartitionInUseKeepsItsParentFromOtherKernels() throws {
        let allocator = partitionAllocator()
        let mig = try allocator.allocate(["gpu.mig": core])
        #expect(["0/a", "0/b"].contains(mig.devices(of: "gpu.mig").first))
        // The whole GPU 0 is now off limits: the next whole GPU is 1, and then none is left.
        #expect(try allocator.allocate(["gpu.device": core]).devices(of: "gpu.device") == ["1"])
        #expect(throws: AllocationError.self) { try allocator.allocate(["gpu.device": core]) }
        // The sibling partition is still free.
        #expect(try allocator.allocate(["gpu.mig": core]).devices(of: "gpu.mig").count == 1)
    }

    @Test func aParentInUseKeepsItsPartitionsFromOtherKernels() throws {
        let allocator = partitionAllocator()
        var held: [SlotAllocation] = []
        // Take both whole GPUs; no partition of GPU 0 may be handed out then.
        held.append(try allocator.allocate(["gpu.device": core]))
        held.append(try allocator.allocate(["gpu.device": core]))
        #expect(throws: AllocationError.self) { try allocator.allocate(["gpu.mig": core]) }
        // Freeing GPU 0 makes its partitions available again.
        let gpu0 = try #require(held.first { $0.devices(of: "gpu.device") == ["0"] })
        allocator.free(gpu0)
        #expect(try allocator.allocate(["gpu.mig": core]).devices(of: "gpu.mig").count == 1)
    }
}
