import AgentResources
import Testing

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

/// A small deterministic generator so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Test func cpuListsParseLikeTheKernelWritesThem() {
    #expect(HostTopology.parseCPUList("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11])
    #expect(HostTopology.parseCPUList("0") == [0])
    #expect(HostTopology.parseCPUList("3-1") == nil)
}
