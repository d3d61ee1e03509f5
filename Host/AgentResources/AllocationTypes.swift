import ClusterProtocol
import Foundation

/// Fixed-point scale of count and unique slot amounts, the same as the plugin ABI's
/// HANGAR_AMOUNT_SCALE: 1.0 == 1_000_000. Byte slots are in bytes.
public let slotAmountScale: Int64 = SlotAmount.scale

/// Backend.AI's slot types.
public enum SlotKind: String, Sendable, Codable {
    case count, bytes, unique
}

/// Whole units per device, or shares of a device in quanta.
public enum SlotMode: String, Sendable, Codable {
    case discrete, fractional
}

/// One slot the node offers: "cpu", "mem", "cuda.device", "cuda.shares", ...
public struct SlotSpec: Sendable, Codable, Equatable {
    public var name: String
    public var kind: SlotKind
    public var mode: SlotMode
    /// Smallest allocatable amount per device (fixed point); 0 = one whole unit.
    public var quantum: Int64
    /// A container may not combine two exclusive slots of one device key.
    public var exclusive: Bool

    public init(name: String, kind: SlotKind, mode: SlotMode = .discrete, quantum: Int64 = 0, exclusive: Bool = false) {
        self.name = name
        self.kind = kind
        self.mode = mode
        self.quantum = quantum
        self.exclusive = exclusive
    }

    /// The device key: the text before the first '.' ("cuda" for "cuda.shares").
    public var deviceKey: String { name.split(separator: ".", maxSplits: 1).first.map(String.init) ?? name }

    /// The step an allocation on one device moves in.
    var step: Int64 {
        switch (kind, mode) {
        case (.bytes, _): 1
        case (_, .fractional): quantum > 0 ? quantum : slotAmountScale / 100
        default: slotAmountScale
        }
    }
}

/// A device that provides slots: a CPU core, the node's memory, a GPU.
public struct ComputeDevice: Sendable, Codable, Hashable {
    /// Device key ("cpu", "mem", "cuda").
    public var key: String
    public var id: String
    /// nil when unknown.
    public var numaNode: Int?
    /// The host CPUs nearest the device (an accelerator's cpu_affinity): cores for a kernel that
    /// gets this device come from here first. nil when the plugin gives no hint.
    public var nearCPUs: [Int]?
    /// For a partition (a MIG instance): the id of the device it is carved from. The allocator
    /// never gives a partition and its parent to different kernels at once.
    public var parentID: String?

    public init(key: String, id: String, numaNode: Int?, nearCPUs: [Int]? = nil, parentID: String? = nil) {
        self.key = key
        self.id = id
        self.numaNode = numaNode
        self.nearCPUs = nearCPUs
        self.parentID = parentID
    }
}

/// Slot → device → amount: what one kernel holds.
public struct SlotAllocation: Sendable, Codable, Equatable {
    public var amounts: [String: [String: Int64]]

    public init(_ amounts: [String: [String: Int64]] = [:]) { self.amounts = amounts }

    /// Total per slot.
    public var totals: [String: Int64] { amounts.mapValues { $0.values.reduce(0, +) } }

    /// Device ids holding some of `slot`, sorted naturally ("2" before "10").
    public func devices(of slot: String) -> [String] {
        (amounts[slot] ?? [:]).filter { $0.value > 0 }.keys.sorted { $0.localizedStandardCompare($1) == .orderedAscending }
    }

    public var isEmpty: Bool { amounts.values.allSatisfy { $0.values.allSatisfy { $0 == 0 } } }
}

/// How devices are chosen among equals.
public enum AllocationStrategy: String, Sendable, Codable {
    /// Fill the devices with the most free capacity first.
    case fill
    /// Spread over devices round-robin.
    case evenly
}

/// Backend.AI's affinity policies.
public enum AffinityPolicy: String, Sendable, Codable {
    /// Keep a kernel's devices and cores on one NUMA node where possible.
    case preferSingleNode = "prefer-single-node"
    /// Interleave over NUMA nodes.
    case interleaved
}

/// Why an allocation failed. Nothing is held after any of these.
public enum AllocationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownSlot(String, known: [String])
    case insufficient(slot: String, requested: String, available: String, short: String)
    case exclusiveCombination([String])
    case invalidAmount(slot: String, reason: String)
    case restoreConflict(slot: String, device: String, reason: String)

    public var description: String {
        switch self {
        case .unknownSlot(let slot, let known):
            "unknown slot '\(slot)': this agent offers \(known.joined(separator: ", "))"
        case .insufficient(let slot, let requested, let available, let short):
            "not enough '\(slot)': requested \(requested), free \(available), short by \(short)"
        case .exclusiveCombination(let slots):
            "slots \(slots.joined(separator: " and ")) are exclusive and cannot be combined in one kernel"
        case .invalidAmount(let slot, let reason):
            "invalid amount of '\(slot)': \(reason)"
        case .restoreConflict(let slot, let device, let reason):
            "cannot restore '\(slot)' on device \(device): \(reason)"
        }
    }
}

/// Formats a fixed-point amount of a slot for messages.
public func describeAmount(_ amount: Int64, kind: SlotKind) -> String {
    if kind == .bytes { return "\(amount) bytes" }
    let whole = amount / slotAmountScale
    var fraction = String(abs(amount % slotAmountScale))
    if fraction == "0" { return String(whole) }
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return "\(amount < 0 && whole == 0 ? "-" : "")\(whole).\(fraction)"
}
