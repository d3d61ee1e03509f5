import ClusterProtocol
import Foundation
import Logging
import PluginHost
import StateStore

/// What one scheduling pass decided for a session.
public enum SchedulingDecision: Sendable, Equatable {
    case scheduled(session: String, placements: [KernelPlacement])
    case pending(session: String, reason: String)
    case cancelled(session: String, reason: String)
}

/// One scheduling pass per resource group, as a function of the database's current state:
/// the group's scheduler plugin picks the next pending session, its agent-selector plugin
/// places the kernels, and the store reserves the slots in one transaction that re-checks
/// the agents, so passes racing in one manager or across managers never over-commit.
public final class SessionScheduler: Sendable {
    let store: StateStore
    let catalog: PluginCatalog
    let logger: Logger

    public init(store: StateStore, catalog: PluginCatalog, logger: Logger = Logger(label: "hangar.scheduler")) {
        self.store = store
        self.catalog = catalog
        self.logger = logger
    }

    /// Fixed point as the plugins see amounts: bytes slots in bytes, the rest × 1,000,000.
    static func fixed(_ slots: ResourceSlots, names: [String], bytes: Set<String>) -> [Int64] {
        names.map { name in
            SlotAmount.fixed(slots[name], bytes: bytes.contains(name))
        }
    }

    /// Runs one pass over a resource group and returns what it decided.
    public func schedule(resourceGroup: String) throws -> [SchedulingDecision] {
        guard let group = try store.resourceGroups().first(where: { $0.name == resourceGroup }) else {
            throw StoreError(.notFound, "no resource group named '\(resourceGroup)'")
        }
        let scheduler = try SchedulerPlugin(library: catalog.resolve(group.scheduler))
        let selector = try AgentSelectorPlugin(library: catalog.resolve(group.agentSelector))
        defer { scheduler.instance.destroy(); selector.instance.destroy() }

        let agents = try store.agents(resourceGroup: resourceGroup, status: .alive).filter(\.schedulable)
        var pending = try store.sessions(resourceGroup: resourceGroup, status: .pending)
        guard !pending.isEmpty else { return [] }
        var decisions: [SchedulingDecision] = []

        // The slot universe of this pass, with byte slots told apart by the agents' slot types.
        var bytes: Set<String> = []
        var names = Set<String>()
        for a in agents {
            names.formUnion(a.capacity.amounts.keys)
            if let types = try? JSONDecoder().decode([String: String].self, from: Data(a.slotTypes.utf8)) {
                bytes.formUnion(types.filter { $0.value == "bytes" }.keys)
            }
        }
        bytes.insert("mem")
        // Impossible requests are cancelled at once: a slot no agent has, or more than the
        // largest agent offers in total (single-node sessions need it all on one agent).
        for s in pending {
            let needs = s.requested.amounts.filter { $0.value > 0 }
            if let missing = needs.keys.sorted().first(where: { !names.contains($0) }) {
                let reason = "no agent in resource group '\(resourceGroup)' offers the slot '\(missing)'"
                try store.transition(session: s.id, to: .cancelled, reason: reason)
                decisions.append(.cancelled(session: s.id, reason: reason))
                continue
            }
            let total = needs.mapValues { $0 * Decimal(s.clusterSize) }
            let fitsSomewhere = agents.contains { a in total.allSatisfy { a.capacity[$0.key] >= $0.value } && (s.architecture.isEmpty || a.architecture == s.architecture) }
            if !fitsSomewhere {
                let slot = total.keys.sorted().first { slot in !agents.contains { $0.capacity[slot] >= total[slot]! } } ?? total.keys.sorted().first ?? "?"
                let largest = agents.map { $0.capacity[slot] }.max() ?? 0
                let reason = agents.isEmpty
                    ? "no alive, schedulable agent in resource group '\(resourceGroup)' (architecture \(s.architecture))"
                    : "the session asks for \(total[slot] ?? 0) of '\(slot)' but the largest agent has \(largest); it can never run here"
                try store.transition(session: s.id, to: .cancelled, reason: reason)
                decisions.append(.cancelled(session: s.id, reason: reason))
            }
        }
        let cancelled = Set(decisions.compactMap { if case .cancelled(let id, _) = $0 { id } else { nil } })
        pending.removeAll { cancelled.contains($0.id) }
        guard !pending.isEmpty, !agents.isEmpty else { return decisions }

        // Policy predicates: a keypair at its concurrent-session limit waits.
        let policies = Dictionary(uniqueKeysWithValues: try store.resourcePolicies(scope: .keypair).map { ($0.name, $0) })
        var active: [String: Int] = [:]
        var limits: [String: Int64] = [:]
        for key in Set(pending.map(\.accessKey)) {
            active[key] = try store.activeSessionCount(accessKey: key)
            if let identity = try store.identity(accessKey: key), let policy = policies[identity.keypair.resourcePolicy] {
                limits[key] = policy.maxConcurrentSessions
            }
        }

        let slotNames = names.sorted()
        let slots = SchedulingSlots(names: slotNames, types: slotNames.map { bytes.contains($0) ? .bytes : .count })
        let candidates = agents.map {
            AgentCandidate(id: $0.id, architecture: $0.architecture, capacity: Self.fixed($0.capacity, names: slotNames, bytes: bytes),
                           occupied: Self.fixed($0.occupied, names: slotNames, bytes: bytes))
        }
        let prepared = SelectionInput(slots: slots, candidates: candidates)
        var ownerIndex: [String: Int] = [:]
        for s in pending where ownerIndex[s.accessKey] == nil { ownerIndex[s.accessKey] = ownerIndex.count }
        let zero = [Int64](repeating: 0, count: slotNames.count)
        let queue = SchedulerInput(
            slots: slots, total: zero, free: zero,
            sessions: pending.map {
                PendingSession(id: $0.id, ownerIndex: ownerIndex[$0.accessKey]!, priority: Int32($0.priority), createdAtMicros: $0.createdAt,
                               kernelCount: UInt32($0.clusterSize), requested: Self.fixed($0.requested, names: slotNames, bytes: bytes),
                               attempts: UInt32($0.attempts))
            },
            owners: ownerIndex.sorted { $0.value < $1.value }.map { SchedulingOwner(accessKey: $0.key, occupied: zero) })
        let byID = Dictionary(uniqueKeysWithValues: pending.map { ($0.id, $0) })

        // Decisions are made in memory and written at the end in two transactions: the
        // reservations (each re-checked against the agents) and the pending reasons.
        let kernelIDs = try store.pendingKernelIDs(resourceGroup: resourceGroup)
        var reservations: [(session: String, placements: [KernelPlacement])] = []
        var notes: [(session: String, reason: String)] = []
        // Within a pass capacity only shrinks, so a request at least as large as one that
        // found no agent cannot be placed either; those skip the selector.
        var unplaceable: [[Int64]] = []
        while let index = try scheduler.pickNext(queue) {
            let picked = queue.sessions[index]
            queue.removeSession(at: index)
            let session = byID[picked.id]!
            if let limit = limits[session.accessKey], limit > 0, (active[session.accessKey] ?? 0) >= limit {
                notes.append((session.id, "keypair \(session.accessKey) already runs \(active[session.accessKey]!) sessions, its policy's limit (max_concurrent_sessions \(limit))"))
                continue
            }
            if session.clusterSize == 1, session.architecture.isEmpty,
               unplaceable.contains(where: { failed in zip(picked.requested, failed).allSatisfy { $0 >= $1 } }) {
                notes.append((session.id, "no agent has room for the requested resources now; waiting for capacity"))
                continue
            }
            let request = PlacementRequest(sessionID: session.id, architecture: session.architecture.isEmpty ? nil : session.architecture,
                                           kernelRequests: Array(repeating: picked.requested, count: session.clusterSize), singleNode: true)
            switch try selector.selectAgents(prepared, request: request) {
            case .noAgent(let reason):
                notes.append((session.id, reason))
                if session.clusterSize == 1, session.architecture.isEmpty, unplaceable.count < 64 { unplaceable.append(picked.requested) }
            case .placed(let indices):
                let placements = zip(kernelIDs[session.id] ?? [], indices).map { KernelPlacement(kernelID: $0, agentID: candidates[$1].id) }
                for i in indices { prepared.charge(agent: i, amounts: picked.requested) }
                active[session.accessKey, default: 0] += 1
                reservations.append((session.id, placements))
            }
        }
        for (reservation, made) in zip(reservations, try store.reserve(reservations)) {
            if made {
                decisions.append(.scheduled(session: reservation.session, placements: reservation.placements))
            } else {
                // Another pass took the capacity (or the session) first; the database is right.
                notes.append((reservation.session, "the chosen agent filled up before the reservation; retrying next pass"))
            }
        }
        // Sessions cancelled above are terminal already and are not counted again.
        try store.notePass(resourceGroup: resourceGroup, consideredUpTo: pending.map(\.createdAt).max() ?? 0,
                           changedReasons: notes.filter { byID[$0.session]?.statusInfo != $0.reason })
        decisions += notes.map { .pending(session: $0.session, reason: $0.reason) }
        return decisions
    }
}
