import CNuma
import Foundation

/// The node's CPU cores (with their NUMA nodes) and memory, as the intrinsic `cpu` and `mem`
/// slots see them.
public struct HostTopology: Sendable, Equatable {
    /// Cores the agent may use, each with its NUMA node (nil when libnuma is unavailable).
    public var cores: [(id: Int, numaNode: Int?)]
    public var memoryBytes: Int64

    public static func == (a: HostTopology, b: HostTopology) -> Bool {
        a.memoryBytes == b.memoryBytes && a.cores.map(\.id) == b.cores.map(\.id) && a.cores.map(\.numaNode) == b.cores.map(\.numaNode)
    }

    public init(cores: [(id: Int, numaNode: Int?)], memoryBytes: Int64) {
        self.cores = cores
        self.memoryBytes = memoryBytes
    }

    /// A made-up topology for tests: `nodes` NUMA nodes of `coresPerNode` cores each.
    public static func fake(nodes: Int, coresPerNode: Int, memoryBytes: Int64) -> HostTopology {
        HostTopology(cores: (0..<(nodes * coresPerNode)).map { ($0, $0 / coresPerNode) }, memoryBytes: memoryBytes)
    }

    /// Reads the real machine: the cores in this process's affinity mask (so an agent started
    /// under taskset or in a cgroup cpuset offers only those), NUMA nodes from libnuma, and
    /// the physical memory.
    public static func detect() -> HostTopology {
        var allowed = allowedCPUs() ?? []
        if allowed.isEmpty { allowed = Array(0..<max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))) }
        let numa = numa_available() >= 0
        let cores = allowed.map { cpu -> (id: Int, numaNode: Int?) in
            guard numa else { return (cpu, nil) }
            let node = numa_node_of_cpu(Int32(cpu))
            return (cpu, node >= 0 ? Int(node) : nil)
        }
        let pages = Int64(sysconf(Int32(_SC_PHYS_PAGES))), pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))
        return HostTopology(cores: cores, memoryBytes: pages * pageSize)
    }

    /// The CPUs this process may run on, from /proc/self/status ("Cpus_allowed_list: 0-3,8").
    static func allowedCPUs() -> [Int]? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        return parseCPUList(String(line.dropFirst("Cpus_allowed_list:".count)))
    }

    /// Parses the kernel's CPU list format: "0-3,8,10-11".
    public static func parseCPUList(_ text: String) -> [Int]? {
        var cpus: [Int] = []
        for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1: guard let a = bounds[0] else { return nil }; cpus.append(a)
            case 2: guard let a = bounds[0], let b = bounds[1], a <= b else { return nil }; cpus += Array(a...b)
            default: return nil
            }
        }
        return cpus
    }

    /// The intrinsic slots: `cpu` (one device per core, capacity `overcommit` cores each) and
    /// `mem` (one device "root"), minus what the host keeps for itself.
    /// - Parameters:
    ///   - reservedCores: cores withheld for the host (taken from the end of the list).
    ///   - reservedMemory: bytes withheld for the host.
    public func intrinsicSlots(reservedCores: Int = 0, reservedMemory: Int64 = 0, overcommit: Int64 = 1)
        -> (devices: [ComputeDevice], slots: [SlotSpec], capacity: [String: [String: Int64]]) {
        let offered = cores.dropLast(min(max(0, reservedCores), max(0, cores.count - 1)))
        let cpuDevices = offered.map { ComputeDevice(key: "cpu", id: String($0.id), numaNode: $0.numaNode) }
        let memory = max(0, memoryBytes - reservedMemory)
        return (cpuDevices + [ComputeDevice(key: "mem", id: "root", numaNode: nil)],
                [SlotSpec(name: "cpu", kind: .count), SlotSpec(name: "mem", kind: .bytes)],
                ["cpu": Dictionary(uniqueKeysWithValues: cpuDevices.map { ($0.id, slotAmountScale * max(1, overcommit)) }),
                 "mem": ["root": memory]])
    }
}
