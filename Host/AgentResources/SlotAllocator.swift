import Foundation

/// The agent's allocation maps: which device holds how much of which slot, for every kernel.
///
/// Requests are grouped by device key and allocated in `order` (accelerators first, then
/// `cpu`, then `mem`), threading a NUMA hint so cores land on the node of the accelerators
/// they serve. A failure anywhere rolls back everything the request touched. All methods
/// are thread-safe.
public final class SlotAllocator: @unchecked Sendable {
    public let devices: [ComputeDevice]
    public let slots: [String: SlotSpec]
    /// slot → device → capacity.
    public let capacity: [String: [String: Int64]]
    public let policy: AffinityPolicy
    public let strategy: AllocationStrategy
    /// Device keys in allocation order; keys not listed go first, in name order.
    public let order: [String]

    private let lock = NSLock()
    /// slot → device → allocated.
    private var used: [String: [String: Int64]] = [:]
    private let numaOf: [String: [String: Int?]]
    /// key → device → the CPUs nearest it (accelerators that report cpu_affinity).
    private let nearCPUsOf: [String: [String: Set<Int>]]
    /// key → device → its parent, and key → device → its partitions.
    private let parentOf: [String: [String: String]]
    private let childrenOf: [String: [String: [String]]]

    /// - Parameters:
    ///   - capacity: slot → device id → capacity (fixed point; bytes for byte slots).
    public init(devices: [ComputeDevice], slots: [SlotSpec], capacity: [String: [String: Int64]],
                policy: AffinityPolicy = .interleaved, strategy: AllocationStrategy = .evenly,
                order: [String] = ["cuda", "rocm", "tpu", "cpu", "mem"]) {
        self.devices = devices
        self.slots = Dictionary(uniqueKeysWithValues: slots.map { ($0.name, $0) })
        self.capacity = capacity
        self.policy = policy
        self.strategy = strategy
        self.order = order
        var numa: [String: [String: Int?]] = [:]
        var near: [String: [String: Set<Int>]] = [:]
        var parents: [String: [String: String]] = [:]
        var children: [String: [String: [String]]] = [:]
        for d in devices {
            numa[d.key, default: [:]][d.id] = d.numaNode
            if let cpus = d.nearCPUs, !cpus.isEmpty { near[d.key, default: [:]][d.id] = Set(cpus) }
            if let parent = d.parentID {
                parents[d.key, default: [:]][d.id] = parent
                children[d.key, default: [:]][parent, default: []].append(d.id)
            }
        }
        numaOf = numa
        nearCPUsOf = near
        parentOf = parents
        childrenOf = children
    }

    /// True if any slot of `key` holds an amount on `device` (held by some kernel).
    private func inUse(key: String, device: String) -> Bool {
        used.contains { slot, devices in slots[slot]?.deviceKey == key && (devices[device] ?? 0) > 0 }
    }

    /// A partition whose parent is in use, or a device with a partition in use, belongs to
    /// another kernel already: the two share the hardware.
    private func sharesHardwareInUse(key: String, device: String) -> Bool {
        if let parent = parentOf[key]?[device], inUse(key: key, device: parent) { return true }
        return (childrenOf[key]?[device] ?? []).contains { inUse(key: key, device: $0) }
    }

    /// Free amount per slot.
    public var free: [String: Int64] {
        lock.lock()
        defer { lock.unlock() }
        return capacity.mapValues { _ in 0 }.merging(capacity.map { slot, devices in
            (slot, devices.reduce(0) { $0 + $1.value - (used[slot]?[$1.key] ?? 0) })
        }) { $1 }
    }

    /// Total capacity per slot.
    public var total: [String: Int64] { capacity.mapValues { $0.values.reduce(0, +) } }

    /// Allocated amounts (slot → device → amount), for checks and reports.
    public var allocated: [String: [String: Int64]] {
        lock.lock()
        defer { lock.unlock() }
        return used.mapValues { $0.filter { $0.value != 0 } }.filter { !$0.value.isEmpty }
    }

    private func sortedKeys(_ keys: Set<String>) -> [String] {
        keys.sorted { a, b in
            let ia = order.firstIndex(of: a) ?? -1, ib = order.firstIndex(of: b) ?? -1
            return ia != ib ? ia < ib : a < b
        }
    }

    /// Allocates a request (slot → amount, fixed point).
    /// - Throws: `AllocationError` naming the slot and by how much it is short; nothing is held then.
    public func allocate(_ request: [String: Int64]) throws(AllocationError) -> SlotAllocation {
        let wanted = request.filter { $0.value != 0 }
        for (slot, amount) in wanted {
            guard let spec = slots[slot] else { throw .unknownSlot(slot, known: slots.keys.sorted()) }
            guard amount > 0 else { throw .invalidAmount(slot: slot, reason: "must be positive, got \(describeAmount(amount, kind: spec.kind))") }
            if spec.kind == .unique, amount != slotAmountScale {
                throw .invalidAmount(slot: slot, reason: "a unique slot is allocated exactly once (1), got \(describeAmount(amount, kind: spec.kind))")
            }
            if spec.kind != .bytes, amount % spec.step != 0 {
                throw .invalidAmount(slot: slot, reason: "must be a multiple of \(describeAmount(spec.step, kind: spec.kind)), got \(describeAmount(amount, kind: spec.kind))")
            }
        }
        // Exclusive slots of one device key may not be combined.
        let exclusive = wanted.keys.filter { slots[$0]?.exclusive == true }
        for key in Set(exclusive.map { slots[$0]!.deviceKey }) {
            let clash = exclusive.filter { slots[$0]!.deviceKey == key }.sorted()
            if clash.count > 1 { throw .exclusiveCombination(clash) }
        }
        lock.lock()
        defer { lock.unlock() }
        let snapshot = used
        var result = SlotAllocation()
        var hintNodes: Set<Int> = []
        var hintCPUs: Set<Int> = []
        do throws(AllocationError) {
            for key in sortedKeys(Set(wanted.keys.map { slots[$0]!.deviceKey })) {
                for slot in wanted.keys.filter({ slots[$0]!.deviceKey == key }).sorted() {
                    let placed = try place(slot: slots[slot]!, amount: wanted[slot]!, hint: hintNodes, nearCPUs: hintCPUs)
                    result.amounts[slot] = placed
                    for (device, amount) in placed { used[slot, default: [:]][device, default: 0] += amount }
                }
                // Later groups (cores after GPUs) prefer the nodes this group landed on, and
                // cores prefer the CPUs its devices say are nearest.
                for slot in wanted.keys where slots[slot]!.deviceKey == key {
                    for device in result.amounts[slot]!.keys {
                        if let node = numaOf[key]?[device] ?? nil { hintNodes.insert(node) }
                        if let near = nearCPUsOf[key]?[device] { hintCPUs.formUnion(near) }
                    }
                }
            }
        } catch {
            used = snapshot
            throw error
        }
        return result
    }

    /// Device ids of `slot` in preference order. For cores, those in `nearCPUs` (the kernel's
    /// accelerators' affinity hint) come first, each part keeping the NUMA order below.
    private func preference(_ spec: SlotSpec, hint: Set<Int>, nearCPUs: Set<Int> = []) -> [String] {
        let ordered = numaPreference(spec, hint: hint)
        guard spec.deviceKey == "cpu", !nearCPUs.isEmpty else { return ordered }
        let near = ordered.filter { Int($0).map(nearCPUs.contains) ?? false }
        return near + ordered.filter { !(Int($0).map(nearCPUs.contains) ?? false) }
    }

    private func numaPreference(_ spec: SlotSpec, hint: Set<Int>) -> [String] {
        let caps = capacity[spec.name] ?? [:]
        func free(_ d: String) -> Int64 { (caps[d] ?? 0) - (used[spec.name]?[d] ?? 0) }
        let natural: (String, String) -> Bool = { $0.localizedStandardCompare($1) == .orderedAscending }
        let key = spec.deviceKey
        let partitioned = !(parentOf[key]?.isEmpty ?? true)
        let ids = caps.keys.filter { free($0) > 0 && !(partitioned && sharesHardwareInUse(key: key, device: $0)) }
            .sorted { a, b in free(a) != free(b) ? free(a) > free(b) : natural(a, b) }
        let node: (String) -> Int? = { self.numaOf[spec.deviceKey]?[$0] ?? nil }
        guard ids.contains(where: { node($0) != nil }) else { return ids }
        // Cluster by NUMA node, busiest-free node first.
        var byNode: [Int: [String]] = [:]
        var unknown: [String] = []
        for id in ids { if let n = node(id) { byNode[n, default: []].append(id) } else { unknown.append(id) } }
        let freeOf: (Int) -> Int64 = { n in byNode[n]!.reduce(0) { $0 + free($1) } }
        var nodes = byNode.keys.sorted { freeOf($0) != freeOf($1) ? freeOf($0) > freeOf($1) : $0 < $1 }
        if !hint.isEmpty {
            // Nodes the kernel already uses come first; the rest are the fallback.
            nodes = nodes.filter { hint.contains($0) } + nodes.filter { !hint.contains($0) }
        }
        switch policy {
        case .preferSingleNode:
            return nodes.flatMap { byNode[$0]! } + unknown
        case .interleaved:
            let primary = hint.isEmpty ? nodes : nodes.filter { hint.contains($0) }
            let fallback = hint.isEmpty ? [] : nodes.filter { !hint.contains($0) }
            var interleaved: [String] = []
            let lists = primary.map { byNode[$0]! }
            for i in 0..<(lists.map(\.count).max() ?? 0) { for list in lists where i < list.count { interleaved.append(list[i]) } }
            return interleaved + fallback.flatMap { byNode[$0]! } + unknown
        }
    }

    /// Chooses devices for `amount` of one slot; does not record anything.
    private func place(slot spec: SlotSpec, amount: Int64, hint: Set<Int>, nearCPUs: Set<Int>) throws(AllocationError) -> [String: Int64] {
        let caps = capacity[spec.name] ?? [:]
        func free(_ d: String) -> Int64 { (caps[d] ?? 0) - (used[spec.name]?[d] ?? 0) }
        let candidates = preference(spec, hint: hint, nearCPUs: nearCPUs)
        let available = candidates.reduce(0) { $0 + free($1) }
        guard available >= amount else {
            throw .insufficient(slot: spec.name, requested: describeAmount(amount, kind: spec.kind),
                                available: describeAmount(available, kind: spec.kind), short: describeAmount(amount - available, kind: spec.kind))
        }
        var placed: [String: Int64] = [:]
        var remaining = amount
        let step = spec.step
        if spec.kind == .unique {
            // One whole device that is entirely free.
            guard let device = candidates.first(where: { free($0) == (caps[$0] ?? 0) }) else {
                throw .insufficient(slot: spec.name, requested: "1", available: "0", short: "1")
            }
            return [device: caps[device]!]
        }
        switch (strategy, spec.kind) {
        case (.fill, _), (_, .bytes):
            for device in candidates where remaining > 0 {
                var take = min(free(device), remaining)
                if spec.kind != .bytes { take -= take % step }
                if take > 0 {
                    placed[device] = take
                    remaining -= take
                }
            }
        case (.evenly, _):
            // Round-robin one step at a time over the preferred devices.
            var progress = true
            while remaining > 0 && progress {
                progress = false
                for device in candidates where remaining > 0 {
                    if free(device) - (placed[device] ?? 0) >= step {
                        placed[device, default: 0] += step
                        remaining -= step
                        progress = true
                    }
                }
            }
        }
        guard remaining == 0 else {
            // Free capacity exists but not in whole steps on any device (fragmentation).
            throw .insufficient(slot: spec.name, requested: describeAmount(amount, kind: spec.kind),
                                available: describeAmount(amount - remaining, kind: spec.kind) + " in allocatable steps",
                                short: describeAmount(remaining, kind: spec.kind))
        }
        return placed
    }

    /// Takes an existing allocation back (agent restart): checks it against capacity.
    /// - Throws: `.restoreConflict` if it names unknown slots or devices, or overflows a device.
    public func restore(_ allocation: SlotAllocation) throws(AllocationError) {
        lock.lock()
        defer { lock.unlock() }
        let snapshot = used
        for (slot, devices) in allocation.amounts {
            for (device, amount) in devices where amount != 0 {
                guard let cap = capacity[slot]?[device] else {
                    used = snapshot
                    throw .restoreConflict(slot: slot, device: device, reason: "this agent has no such slot on that device")
                }
                let now = (used[slot]?[device] ?? 0) + amount
                guard amount > 0, now <= cap else {
                    used = snapshot
                    throw .restoreConflict(slot: slot, device: device, reason: "\(describeAmount(now, kind: slots[slot]?.kind ?? .count)) exceeds the capacity \(describeAmount(cap, kind: slots[slot]?.kind ?? .count))")
                }
                used[slot, default: [:]][device] = now
            }
        }
    }

    /// Releases an allocation. Releasing more than is held clamps at zero.
    public func free(_ allocation: SlotAllocation) {
        lock.lock()
        defer { lock.unlock() }
        for (slot, devices) in allocation.amounts {
            for (device, amount) in devices {
                let left = max(0, (used[slot]?[device] ?? 0) - amount)
                used[slot, default: [:]][device] = left
            }
        }
    }
}
