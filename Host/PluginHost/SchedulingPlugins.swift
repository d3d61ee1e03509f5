import Foundation
import PluginAPI

/// Slot names and types of one scheduling snapshot; every amount vector follows this order.
public struct SchedulingSlots: Sendable, Equatable {
    public var names: [String]
    public var types: [SlotType]
    public init(names: [String], types: [SlotType]) {
        precondition(names.count == types.count, "one type per slot name")
        self.names = names
        self.types = types
    }
}

/// A pending session as the scheduler sees it.
public struct PendingSession: Sendable, Equatable {
    public var id: String
    public var ownerIndex: Int
    public var priority: Int32
    public var createdAtMicros: Int64
    public var kernelCount: UInt32
    /// Total requested amounts, one per slot.
    public var requested: [Int64]
    /// Passes that picked the session but could not place it.
    public var attempts: UInt32
    /// Fair-share factor of its association in [0, 1] (ABI 1.3; 1 = no usage).
    public var fairshare: Double = 1
    public init(id: String, ownerIndex: Int, priority: Int32 = 0, createdAtMicros: Int64, kernelCount: UInt32 = 1,
                requested: [Int64], attempts: UInt32 = 0, fairshare: Double = 1) {
        self.fairshare = fairshare
        self.id = id
        self.ownerIndex = ownerIndex
        self.priority = priority
        self.createdAtMicros = createdAtMicros
        self.kernelCount = kernelCount
        self.requested = requested
        self.attempts = attempts
    }
}

/// An access key's current use of a resource group.
public struct SchedulingOwner: Sendable, Equatable {
    public var accessKey: String
    public var occupied: [Int64]
    public init(accessKey: String, occupied: [Int64]) {
        self.accessKey = accessKey
        self.occupied = occupied
    }
}

/// Owns C memory for the lifetime of a prepared input: strings and arrays a plugin reads.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    deinit { blocks.forEach { free($0) } }

    func string(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func array<T>(_ values: [T]) -> UnsafePointer<T> {
        let p = malloc(max(1, values.count * MemoryLayout<T>.stride))!
        blocks.append(p)
        let typed = p.bindMemory(to: T.self, capacity: max(values.count, 1))
        for (i, v) in values.enumerated() { (typed + i).initialize(to: v) }
        return UnsafePointer(typed)
    }

    func value<T>(_ v: T) -> UnsafePointer<T> { array([v]) }

    func slots(_ slots: SchedulingSlots) -> UnsafePointer<hangar_sched_slots> {
        var s = hangar_sched_slots()
        s.struct_size = UInt32(MemoryLayout<hangar_sched_slots>.size)
        s.slot_count = slots.names.count
        s.names = UnsafePointer(array(slots.names.map { Optional(string($0)) }))
        s.types = array(slots.types.map(\.rawValue))
        return value(s)
    }
}

/// A scheduler input laid out as C arrays once, so that repeated `pick_next` calls over the
/// same snapshot (and benchmarks) pay for the conversion only once.
public final class SchedulerInput: @unchecked Sendable {
    let arena: CArena
    /// The C input, valid as long as this object lives.
    public let raw: UnsafePointer<hangar_sched_input>
    public private(set) var sessions: [PendingSession]
    private let slotCount: Int

    public init(slots: SchedulingSlots, total: [Int64], free: [Int64], sessions: [PendingSession], owners: [SchedulingOwner], now: Int64 = 0) {
        let n = slots.names.count
        precondition(total.count == n && free.count == n, "capacity vectors must have one amount per slot")
        let arena = CArena()
        self.arena = arena
        self.sessions = sessions
        self.slotCount = n
        var input = hangar_sched_input()
        input.struct_size = UInt32(MemoryLayout<hangar_sched_input>.size)
        input.slots = arena.slots(slots)
        input.total_capacity = arena.array(total)
        input.free_capacity = arena.array(free)
        input.sessions = arena.array(sessions.map { s in
            precondition(s.requested.count == n, "session \(s.id) must request one amount per slot")
            var c = hangar_sched_session()
            c.struct_size = UInt32(MemoryLayout<hangar_sched_session>.size)
            c.session_id = arena.string(s.id)
            c.owner_index = UInt32(s.ownerIndex)
            c.priority = s.priority
            c.created_at_us = s.createdAtMicros
            c.kernel_count = s.kernelCount
            c.requested = arena.array(s.requested)
            c.attempts = s.attempts
            c.fairshare = s.fairshare
            return c
        })
        input.session_count = sessions.count
        input.session_stride = MemoryLayout<hangar_sched_session>.stride
        input.owners = arena.array(owners.map { o in
            var c = hangar_sched_owner()
            c.struct_size = UInt32(MemoryLayout<hangar_sched_owner>.size)
            c.access_key = arena.string(o.accessKey)
            c.occupied = arena.array(o.occupied)
            return c
        })
        input.owner_count = owners.count
        input.owner_stride = MemoryLayout<hangar_sched_owner>.stride
        input.now_us = now
        raw = arena.value(input)
    }

    private var mutableInput: UnsafeMutablePointer<hangar_sched_input> { UnsafeMutablePointer(mutating: raw) }

    /// Takes a session out of the queue in place (after it was placed), keeping the order,
    /// so a scheduling pass does not rebuild the snapshot for every decision.
    public func removeSession(at index: Int) {
        precondition(sessions.indices.contains(index), "no pending session at \(index)")
        let base = UnsafeMutablePointer(mutating: raw.pointee.sessions!)
        (base + index).update(from: base + index + 1, count: sessions.count - index - 1)
        sessions.remove(at: index)
        mutableInput.pointee.session_count = sessions.count
    }

    /// Records that `amounts` were allocated to a session of `ownerIndex`: the owner's
    /// occupancy grows and the group's free capacity shrinks.
    public func charge(ownerIndex: Int, amounts: [Int64]) {
        precondition(amounts.count == slotCount, "one amount per slot")
        let owners = raw.pointee.owners!
        let occupied = UnsafeMutablePointer(mutating: owners[ownerIndex].occupied!)
        let free = UnsafeMutablePointer(mutating: raw.pointee.free_capacity!)
        for k in 0..<slotCount {
            occupied[k] += amounts[k]
            free[k] -= amounts[k]
        }
    }
}

/// Candidate agents laid out as C arrays once, with occupancy that can be charged in place,
/// for repeated placements over the same agents (a scheduling pass, benchmarks).
public final class SelectionInput: @unchecked Sendable {
    let arena: CArena
    let slots: SchedulingSlots
    let agentsPointer: UnsafeMutablePointer<hangar_select_agent>
    public let candidates: [AgentCandidate]

    public init(slots: SchedulingSlots, candidates: [AgentCandidate]) {
        let arena = CArena()
        self.arena = arena
        self.slots = slots
        self.candidates = candidates
        agentsPointer = UnsafeMutablePointer(mutating: arena.array(candidates.map { a in
            var c = hangar_select_agent()
            c.struct_size = UInt32(MemoryLayout<hangar_select_agent>.size)
            c.agent_id = arena.string(a.id)
            c.architecture = arena.string(a.architecture)
            c.capacity = arena.array(a.capacity)
            c.occupied = arena.array(a.occupied)
            c.kernel_count = a.kernelCount
            return c
        }))
    }

    /// Adds `amounts` to an agent's occupancy (a kernel was placed there).
    public func charge(agent index: Int, amounts: [Int64]) {
        let occupied = UnsafeMutablePointer(mutating: agentsPointer[index].occupied!)
        for k in 0..<slots.names.count { occupied[k] += amounts[k] }
        agentsPointer[index].kernel_count += 1
    }

    /// The agent's occupancy now.
    public func occupied(agent index: Int) -> [Int64] {
        Array(UnsafeBufferPointer(start: agentsPointer[index].occupied, count: slots.names.count))
    }
}

/// A scheduler plugin instance: picks which pending session to try next.
public final class SchedulerPlugin: @unchecked Sendable {
    public let instance: PluginInstance
    @usableFromInline let pick: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<hangar_sched_input>?, UnsafeMutablePointer<Int>?) -> hangar_status
    let explainFunction: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<hangar_sched_input>?, Int, UnsafeMutablePointer<hangar_sched_factors>?) -> hangar_status)?

    /// - Throws: `PluginError` (`.kindMismatch`, `.invalidConfig`, `.createFailed`).
    public init(library: PluginLibrary, config: ConfigValue = .emptyTable) throws(PluginError) {
        guard library.descriptor.kind == .scheduler else {
            throw PluginError(.kindMismatch, plugin: library.descriptor.name, file: library.path,
                              reason: "is a \(library.descriptor.kind) plugin, not a scheduler")
        }
        let table = SchedulerTable(library.functions).raw
        pick = table.pick_next!
        explainFunction = table.explain
        instance = try PluginInstance(library: library, config: config)
    }

    /// Whether the scheduler reports the factors behind its order (ABI 1.3 `explain`).
    public var explains: Bool { explainFunction != nil }

    /// The factors behind session `index` of `input`, or nil for a scheduler without them.
    public func explain(_ input: SchedulerInput, index: Int) throws(PluginError) -> SchedulingFactors? {
        guard let explainFunction else { return nil }
        guard input.sessions.indices.contains(index) else {
            throw PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "explain", reason: "no pending session at \(index)")
        }
        var out = hangar_sched_factors()
        out.struct_size = UInt32(MemoryLayout<hangar_sched_factors>.size)
        _ = try instance.invoke("explain") { h in explainFunction(h, input.raw, index, &out) }
        return SchedulingFactors(age: out.age, fairshare: out.fairshare, priority: out.priority, size: out.size, total: out.total)
    }

    public var name: String { instance.name }

    /// The index into `input.sessions` to try next, or nil when nothing can be scheduled.
    @inlinable
    public func pickNext(_ input: SchedulerInput) throws(PluginError) -> Int? {
        var index = 0
        let status = try instance.invoke("pick_next", allowing: HANGAR_E_NOTHING_TO_SCHEDULE) { h in pick(h, input.raw, &index) }
        if status == HANGAR_E_NOTHING_TO_SCHEDULE { return nil }
        guard index >= 0 && index < input.sessions.count else {
            throw PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "pick_next",
                              reason: "returned index \(index) for \(input.sessions.count) pending sessions")
        }
        return index
    }
}

/// A candidate agent for placement.
public struct AgentCandidate: Sendable, Equatable {
    public var id: String
    public var architecture: String
    public var capacity: [Int64]
    public var occupied: [Int64]
    public var kernelCount: UInt32
    public init(id: String, architecture: String, capacity: [Int64], occupied: [Int64], kernelCount: UInt32 = 0) {
        self.id = id
        self.architecture = architecture
        self.capacity = capacity
        self.occupied = occupied
        self.kernelCount = kernelCount
    }
}

/// A session's kernels to place.
public struct PlacementRequest: Sendable, Equatable {
    public var sessionID: String
    /// nil for any architecture.
    public var architecture: String?
    /// One amount vector per kernel.
    public var kernelRequests: [[Int64]]
    public var singleNode: Bool
    public init(sessionID: String, architecture: String?, kernelRequests: [[Int64]], singleNode: Bool) {
        self.sessionID = sessionID
        self.architecture = architecture
        self.kernelRequests = kernelRequests
        self.singleNode = singleNode
    }
}

/// The outcome of a placement.
public enum Placement: Sendable, Equatable {
    /// Agent index (into the candidates) per kernel.
    case placed([Int])
    /// Nothing fits; the plugin's reason.
    case noAgent(String)
}

/// An agent-selector plugin instance: places a session's kernels on agents.
public final class AgentSelectorPlugin: @unchecked Sendable {
    public let instance: PluginInstance
    private let select: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<hangar_select_input>?, UnsafeMutablePointer<Int>?) -> hangar_status

    /// - Throws: `PluginError` (`.kindMismatch`, `.invalidConfig`, `.createFailed`).
    public init(library: PluginLibrary, config: ConfigValue = .emptyTable) throws(PluginError) {
        guard library.descriptor.kind == .agentSelector else {
            throw PluginError(.kindMismatch, plugin: library.descriptor.name, file: library.path,
                              reason: "is a \(library.descriptor.kind) plugin, not an agent selector")
        }
        select = SelectorTable(library.functions).raw.select_agents!
        instance = try PluginInstance(library: library, config: config)
    }

    public var name: String { instance.name }

    /// Places `request` on prepared candidates, checking that the plugin's answer really fits:
    /// valid indices, the requested architecture, one agent for single-node sessions, and no
    /// agent over capacity (an over-committed agent is worse than a pending session).
    public func selectAgents(_ prepared: SelectionInput, request: PlacementRequest) throws(PluginError) -> Placement {
        let n = prepared.slots.names.count
        let candidates = prepared.candidates
        let arena = CArena()
        var input = hangar_select_input()
        input.struct_size = UInt32(MemoryLayout<hangar_select_input>.size)
        input.slots = arena.slots(prepared.slots)
        input.session_id = arena.string(request.sessionID)
        input.architecture = request.architecture.map { arena.string($0) }
        input.kernel_count = request.kernelRequests.count
        input.kernel_requests = arena.array(request.kernelRequests.flatMap { precondition($0.count == n); return $0 })
        input.single_node = request.singleNode ? 1 : 0
        input.agents = UnsafePointer(prepared.agentsPointer)
        input.agent_count = candidates.count
        input.agent_stride = MemoryLayout<hangar_select_agent>.stride
        var out = [Int](repeating: -1, count: max(request.kernelRequests.count, 1))
        var reason = ""
        let status = try instance.invoke("select_agents", allowing: HANGAR_E_NO_AGENT) { [select] h in
            let status = out.withUnsafeMutableBufferPointer { select(h, &input, $0.baseAddress) }
            if status == HANGAR_E_NO_AGENT { reason = instance.lastErrorUnlocked(h) }
            return status
        }
        if status == HANGAR_E_NO_AGENT { return .noAgent(reason.isEmpty ? "no agent can host the session" : reason) }
        let placement = Array(out.prefix(request.kernelRequests.count))
        func violation(_ text: String) -> PluginError {
            PluginError(.contractViolation, plugin: name, file: instance.library.path, call: "select_agents", reason: text)
        }
        var added: [Int: [Int64]] = [:]
        for (kernel, agent) in placement.enumerated() {
            guard candidates.indices.contains(agent) else { throw violation("placed kernel \(kernel) on agent index \(agent) of \(candidates.count)") }
            if let arch = request.architecture, candidates[agent].architecture != arch {
                throw violation("placed kernel \(kernel) on \(candidates[agent].id) (\(candidates[agent].architecture)) but the session needs \(arch)")
            }
            let occupied = prepared.occupied(agent: agent)
            var sum = added[agent] ?? [Int64](repeating: 0, count: n)
            for k in 0..<n { sum[k] += request.kernelRequests[kernel][k] }
            added[agent] = sum
            for k in 0..<n where occupied[k] + sum[k] > candidates[agent].capacity[k] {
                throw violation("placing kernel \(kernel) on \(candidates[agent].id) over-commits slot '\(prepared.slots.names[k])'")
            }
        }
        if request.singleNode, Set(placement).count > 1 {
            throw violation("a single-node session was spread over \(Set(placement).count) agents")
        }
        return .placed(placement)
    }

    /// Places `request` on `candidates` (laid out for this one call).
    public func selectAgents(slots: SchedulingSlots, request: PlacementRequest, candidates: [AgentCandidate]) throws(PluginError) -> Placement {
        try selectAgents(SelectionInput(slots: slots, candidates: candidates), request: request)
    }
}

extension PluginInstance {
    /// The last error message; only call while holding the instance lock (inside `withHandle`).
    func lastErrorUnlocked(_ h: UnsafeMutableRawPointer) -> String {
        var buf = [CChar](repeating: 0, count: 1024)
        _ = buf.withUnsafeMutableBufferPointer { LifecycleFunctions(library: library).lastError(h, $0.baseAddress, $0.count) }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// The factors behind a pending session's place in a multifactor queue (Slurm's sprio).
public struct SchedulingFactors: Sendable, Equatable, Codable {
    public var age: Double
    public var fairshare: Double
    public var priority: Double
    public var size: Double
    /// The weighted sum the queue is ordered by.
    public var total: Double
    public init(age: Double, fairshare: Double, priority: Double, size: Double, total: Double) {
        (self.age, self.fairshare, self.priority, self.size, self.total) = (age, fairshare, priority, size, total)
    }
}
