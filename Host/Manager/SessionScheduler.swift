import ClusterProtocol
import ConfigFile
import Identity
import Foundation
import Logging
import PluginHost
import StateStore
import Synchronization

/// What one scheduling pass decided for a session.
public enum SchedulingDecision: Sendable, Equatable {
    case scheduled(session: String, placements: [KernelPlacement])
    case pending(session: String, reason: String)
    case cancelled(session: String, reason: String)
    /// A running session ended to make room for one of higher priority (now TERMINATING;
    /// the lifecycle removes its kernels).
    case preempted(session: String, reason: String)
}

/// Everything one scheduling pass decides on, read from the store in one go: the pass itself
/// is then a function of this snapshot (plus the group's plugins) and does no I/O.
public struct SchedulingSnapshot: Sendable {
    public var resourceGroup: String
    public var agents: [AgentRecord]
    public var pending: [SessionRecord]
    /// Kernel ids of each pending session, in cluster order.
    public var kernelIDs: [String: [String]]
    /// Running sessions per access key, and each key's max_concurrent_sessions (0: none).
    public var activeSessions: [String: Int]
    public var sessionLimits: [String: Int64]
    /// What holds the agents' slots, for saying why a session waits.
    public var holders: [SlotHolder] = []
    /// The sessions each pending session waits for (Backend.AI's `dependencies`).
    public var dependencies: [String: [StateStore.DependencyState]] = [:]
    /// When the snapshot was taken (microseconds since the epoch): the pass's clock.
    public var now: Int64 = Clock.nowMicros()
    /// The group's `scheduler_opts`.
    public var options = SchedulerOptions()
    /// Each pending session's fair-share factor (where the group's scheduler is `fairshare`).
    public var fairshare: [String: Double] = [:]
    /// Whether the plan says why each waiting session waits (the simulator needs no reasons).
    public var explainsWaits = true
}

/// What a pass decided, applied by `SessionScheduler.apply` (the reservations in one
/// transaction that re-checks the agents, so racing passes never over-commit).
public struct SchedulingPlan: Sendable, Equatable {
    public var cancellations: [(session: String, reason: String)] = []
    public var reservations: [(session: String, placements: [KernelPlacement])] = []
    /// Why a pending session still waits.
    public var waiting: [(session: String, reason: String)] = []
    /// Running sessions to end so that a pending one of higher priority fits.
    public var preemptions: [(session: String, reason: String)] = []
    /// The first session the pass could not place and when (at the latest, from running
    /// sessions' time limits) it can start where; nil start: not known (a holder has no limit).
    public var headReservation: (session: String, agent: String?, start: Int64?)?
    /// Sessions started while the head waits (backfill).
    public var backfilled: [String] = []
    /// The newest enqueue time the pass looked at.
    public var consideredUpTo: Int64 = 0

    public static func == (a: SchedulingPlan, b: SchedulingPlan) -> Bool {
        a.cancellations.map { "\($0.session)|\($0.reason)" } == b.cancellations.map { "\($0.session)|\($0.reason)" }
            && a.reservations.map { "\($0.session)|\($0.placements)" } == b.reservations.map { "\($0.session)|\($0.placements)" }
            && a.waiting.map { "\($0.session)|\($0.reason)" } == b.waiting.map { "\($0.session)|\($0.reason)" }
            && a.preemptions.map { "\($0.session)|\($0.reason)" } == b.preemptions.map { "\($0.session)|\($0.reason)" }
            && a.consideredUpTo == b.consideredUpTo
    }
}

/// Scheduling as plan-then-apply: `snapshot` reads what a pass needs, `plan` decides (the
/// group's scheduler plugin picks the next pending session, its agent-selector plugin places
/// the kernels; no I/O), and `apply` writes the plan. Plugin instances live as long as their
/// resource group's choice of plugins and config, not one pass.
public final class SessionScheduler: Sendable {
    let store: StateStore
    let plugins: PluginHost
    let logger: Logger
    /// Plugin instances per resource group, with the choice they were made for.
    private let instances = Mutex<[String: (key: String, scheduler: SchedulerPlugin, selector: AgentSelectorPlugin)]>([:])

    public init(store: StateStore, plugins: PluginHost, logger: Logger = Logger(label: "hangar.scheduler")) {
        self.store = store
        self.plugins = plugins
        self.logger = logger
    }

    deinit {
        instances.withLock { all in
            for entry in all.values {
                plugins.release(entry.scheduler.instance)
                plugins.release(entry.selector.instance)
            }
        }
    }

    /// Fixed point as the plugins see amounts: bytes slots in bytes, the rest × 1,000,000.
    static func fixed(_ slots: ResourceSlots, names: [String], bytes: Set<String>) -> [Int64] {
        names.map { name in
            SlotAmount.fixed(slots[name], bytes: bytes.contains(name))
        }
    }

    /// The group's scheduler and selector, created once and replaced when the group's choice changes.
    public func plugins(for group: ResourceGroup) throws -> (SchedulerPlugin, AgentSelectorPlugin) {
        let config = SchedulerOptions(of: group).pluginConfig
        let key = "\(group.scheduler)|\(group.agentSelector)|\(config)"
        if let cached = instances.withLock({ $0[group.name] }), cached.key == key { return (cached.scheduler, cached.selector) }
        let scheduler = try plugins.makeScheduler(group.scheduler, config: ConfigValue(jsonText: config))
        let selector: AgentSelectorPlugin
        do {
            selector = try plugins.makeAgentSelector(group.agentSelector)
        } catch {
            plugins.release(scheduler.instance)
            throw error
        }
        // Two passes that found no instance create one each; the first stored wins and the
        // other's are released unused (releasing the winner's would destroy instances a pass
        // is about to call).
        let (chosen, released) = instances.withLock { all -> ((SchedulerPlugin, AgentSelectorPlugin), (SchedulerPlugin, AgentSelectorPlugin)?) in
            if let existing = all[group.name], existing.key == key { return ((existing.scheduler, existing.selector), (scheduler, selector)) }
            let old = all[group.name]
            all[group.name] = (key, scheduler, selector)
            return ((scheduler, selector), old.map { ($0.scheduler, $0.selector) })
        }
        // Instances replaced because the group's choice changed: a pass still using them
        // finishes first (destroy() waits out every call).
        if let (oldScheduler, oldSelector) = released {
            plugins.release(oldScheduler.instance)
            plugins.release(oldSelector.instance)
        }
        return chosen
    }

    /// Runs one pass over a resource group: snapshot, plan, apply. Returns what it decided.
    /// - Parameter epoch: the scheduling leader's epoch this manager holds (`SchedulerLeadership`);
    ///   the pass's writes are refused if another manager has taken the lead since. nil: unfenced.
    public func schedule(resourceGroup: String, epoch: Int64? = nil) throws -> [SchedulingDecision] {
        guard let group = try store.resourceGroups().first(where: { $0.name == resourceGroup }) else {
            throw StoreError(.notFound, "no resource group named '\(resourceGroup)'")
        }
        let options = SchedulerOptions(of: group)
        let now = Clock.nowMicros()
        if Self.accountsUsage(group) {
            try store.accountUsage(resourceGroup: resourceGroup, now: now, halfLife: options.fairshareHalfLife, weights: options.usageWeights)
        }
        let snapshot = try preparedSnapshot(group, now: now)
        guard !snapshot.pending.isEmpty else { return [] }
        let (scheduler, selector) = try plugins(for: group)
        return try apply(try Self.plan(snapshot, scheduler: scheduler, selector: selector), snapshot: snapshot, epoch: epoch)
    }

    /// Usage is recorded, and fair-share factors computed, for groups scheduled by `fairshare`.
    static func accountsUsage(_ group: ResourceGroup) -> Bool { group.scheduler == "fairshare" }

    /// The group's fair-share tree now: usage decayed to `now`, every association with usage
    /// or a pending session.
    /// `pending` (each pending session's association) is read from the store when not given.
    public func fairshareReport(resourceGroup: String, options: SchedulerOptions, now: Int64 = Clock.nowMicros(),
                                pending: [String: FairShareAssociation]? = nil) throws -> FairShare.Report {
        var usage: [FairShareAssociation: Double] = [:]
        for row in try store.fairshareUsage(resourceGroup: resourceGroup) {
            usage[row.association] = UsageMeter.decayed(row.usage, from: row.updatedAt, to: now, halfLife: options.fairshareHalfLife)
        }
        let associations = try pending ?? store.pendingAssociations(resourceGroup: resourceGroup)
        return FairShare.compute(associations: Set(associations.values), usage: usage, shares: try store.fairshareShares())
    }

    /// The snapshot a pass at `now` decides on: the store's state, the group's options and,
    /// for `fairshare`, each pending session's factor.
    public func preparedSnapshot(_ group: ResourceGroup, now: Int64 = Clock.nowMicros()) throws -> SchedulingSnapshot {
        var snapshot = try self.snapshot(resourceGroup: group.name)
        guard !snapshot.pending.isEmpty else { return snapshot }
        let options = SchedulerOptions(of: group)
        snapshot.options = options
        snapshot.now = now
        if Self.accountsUsage(group) {
            let pending = try store.pendingAssociations(resourceGroup: group.name)
            let report = try fairshareReport(resourceGroup: group.name, options: options, now: now, pending: pending)
            snapshot.fairshare = pending.compactMapValues { report.factors[$0] }
        }
        return snapshot
    }

    /// Reads what a pass over the group needs.
    public func snapshot(resourceGroup: String) throws -> SchedulingSnapshot {
        let agents = try store.agents(resourceGroup: resourceGroup, status: .alive).filter(\.schedulable)
        let pending = try store.sessions(resourceGroup: resourceGroup, status: .pending)
        var snapshot = SchedulingSnapshot(resourceGroup: resourceGroup, agents: agents, pending: pending, kernelIDs: [:], activeSessions: [:], sessionLimits: [:])
        guard !pending.isEmpty else { return snapshot }
        let policies = Dictionary(uniqueKeysWithValues: try store.resourcePolicies(scope: .keypair).map { ($0.name, $0) })
        for key in Set(pending.map(\.accessKey)) {
            snapshot.activeSessions[key] = try store.activeSessionCount(accessKey: key)
            if let identity = try store.identity(accessKey: key), let policy = policies[identity.keypair.resourcePolicy] {
                snapshot.sessionLimits[key] = policy.maxConcurrentSessions
            }
        }
        snapshot.kernelIDs = try store.pendingKernelIDs(resourceGroup: resourceGroup)
        snapshot.holders = try store.slotHolders(resourceGroup: resourceGroup)
        snapshot.dependencies = try store.pendingDependencies(resourceGroup: resourceGroup)
        return snapshot
    }

    /// Decides a pass: impossible requests are cancelled, sessions are picked in the
    /// scheduler's order and placed by the selector against capacity that shrinks as the pass
    /// places kernels, keypairs at their session limit wait. No I/O.
    public static func plan(_ snapshot: SchedulingSnapshot, scheduler: SchedulerPlugin, selector: AgentSelectorPlugin) throws -> SchedulingPlan {
        let resourceGroup = snapshot.resourceGroup
        let agents = snapshot.agents
        var pending = snapshot.pending
        var plan = SchedulingPlan()
        guard !pending.isEmpty else { return plan }

        let (slots, bytes) = self.slots(of: agents)
        let names = Set(slots.names)
        // Impossible requests are cancelled at once: a slot no agent has, or more than the
        // largest agent offers in total (single-node sessions need it all on one agent; a
        // multi-node gang needs each kernel to fit some agent and all of them to fit the
        // group's whole capacity).
        for s in pending {
            let needs = s.requested.amounts.filter { $0.value > 0 }
            if let missing = needs.keys.sorted().first(where: { !names.contains($0) }) {
                plan.cancellations.append((s.id, "no agent in resource group '\(resourceGroup)' offers the slot '\(missing)'"))
                continue
            }
            let total = needs.mapValues { $0 * Decimal(s.clusterSize) }
            let eligible = agents.filter { s.architecture.isEmpty || $0.architecture == s.architecture }
            let fitsSomewhere = s.clusterMode == .multiNode && s.clusterSize > 1
                ? eligible.contains { a in needs.allSatisfy { a.capacity[$0.key] >= $0.value } }
                    && total.allSatisfy { slot, amount in eligible.reduce(Decimal(0)) { $0 + $1.capacity[slot] } >= amount }
                : eligible.contains { a in total.allSatisfy { a.capacity[$0.key] >= $0.value } }
            if !fitsSomewhere, s.clusterMode == .multiNode, s.clusterSize > 1, !agents.isEmpty {
                plan.cancellations.append((s.id, "the multi-node session's \(s.clusterSize) kernels need more than every agent of resource group '\(resourceGroup)' offers together (or one kernel more than the largest agent has); it can never run here"))
            } else if !fitsSomewhere {
                let slot = total.keys.sorted().first { slot in !agents.contains { $0.capacity[slot] >= total[slot]! } } ?? total.keys.sorted().first ?? "?"
                let largest = agents.map { $0.capacity[slot] }.max() ?? 0
                plan.cancellations.append((s.id, agents.isEmpty
                    ? "no alive, schedulable agent in resource group '\(resourceGroup)' (architecture \(s.architecture))"
                    : "the session asks for \(ResourceSlots.human(total[slot] ?? 0, bytes: bytes.contains(slot))) of \(slot); the largest agent has \(ResourceSlots.human(largest, bytes: bytes.contains(slot))); it can never run here"))
            }
        }
        // A session pending for longer than the group's pending_timeout is cancelled, as
        // Backend.AI does, rather than left queued for ever.
        if snapshot.options.pendingTimeout > 0 {
            let limit = Int64(snapshot.options.pendingTimeout * 1_000_000)
            for s in pending where snapshot.now - s.createdAt > limit && !plan.cancellations.contains(where: { $0.session == s.id }) {
                let waited = (snapshot.now - s.createdAt) / 1_000_000
                plan.cancellations.append((s.id, "pending timeout: the session waited \(waited) s, longer than resource group '\(resourceGroup)' allows (scheduler_opts.pending_timeout \(Self.seconds(snapshot.options.pendingTimeout)) s)"))
            }
        }
        // Sessions with dependencies run only after all of them ended successfully; one that
        // failed (or was cancelled) means this session can never run, so it is cancelled
        // instead of waiting for ever.
        for s in pending where !plan.cancellations.contains(where: { $0.session == s.id }) {
            guard let dependencies = snapshot.dependencies[s.id] else { continue }
            if let failed = dependencies.first(where: \.failed) {
                let how = failed.exitCode.map { "\(failed.status.rawValue) with exit status \($0)" } ?? failed.status.rawValue
                plan.cancellations.append((s.id, "the session '\(failed.name)' it depends on ended \(how); it runs only after its dependencies succeed"))
            } else if !dependencies.allSatisfy(\.succeeded) {
                let open = dependencies.filter { !$0.succeeded }.map { "\($0.name) (\($0.status.rawValue))" }
                plan.waiting.append((s.id, "waiting for the session\(open.count == 1 ? "" : "s") it depends on to end successfully: \(open.joined(separator: ", "))"))
            }
        }
        let cancelled = Set(plan.cancellations.map(\.session))
        let blocked = Set(plan.waiting.map(\.session))
        pending.removeAll { cancelled.contains($0.id) || blocked.contains($0.id) }
        plan.consideredUpTo = snapshot.pending.map(\.createdAt).max() ?? 0
        guard !pending.isEmpty, !agents.isEmpty else { return plan }

        var active = snapshot.activeSessions
        let slotNames = slots.names
        let candidates = agents.map {
            AgentCandidate(id: $0.id, architecture: $0.architecture, capacity: fixed($0.capacity, names: slotNames, bytes: bytes),
                           occupied: fixed($0.occupied, names: slotNames, bytes: bytes))
        }
        let prepared = SelectionInput(slots: slots, candidates: candidates)
        let queue = queueInput(snapshot, pending: pending, slots: slots, bytes: bytes)
        let byID = Dictionary(uniqueKeysWithValues: pending.map { ($0.id, $0) })
        // Within a pass capacity only shrinks, so a request at least as large as one that
        // found no agent cannot be placed either; those skip the selector.
        var unplaceable: [[Int64]] = []
        // Sessions this pass chose to preempt: their slots count as coming back.
        var preempted = Set<String>()
        // The first session that could not be placed, with its reservation, and when the
        // sessions this pass placed will have ended (for its earliest start).
        var head: (session: SessionRecord, need: [Int64], start: Int64?, agent: Int?)?
        var passEnds: [(agent: Int, end: Int64?, amounts: [Int64])] = []
        var releases: [Int: [Release]]?
        // Why a session waits depends only on its request and its owner (whose own holders it
        // names): a stuck queue of thousands has a few dozen distinct reasons, computed once.
        var reasons: [String: String] = [:]
        func waitReason(_ session: SessionRecord) -> String {
            guard snapshot.explainsWaits else { return "" }
            let key = session.accessKey + "|" + session.requested.json
            if let known = reasons[key] { return known }
            let text = waitingReason(session, snapshot: snapshot, bytes: bytes)
            reasons[key] = text
            return text
        }
        var victims: [String: [String: Victim]]?
        let backfill = snapshot.options.backfill
        while let index = try scheduler.pickNext(queue) {
            let picked = queue.sessions[index]
            queue.removeSession(at: index)
            let session = byID[picked.id]!
            if backfill, let blocked = head, session.timeLimit == nil {
                plan.waiting.append((session.id, "waiting behind session '\(blocked.session.name)', which is first and cannot start yet: with backfill only sessions with a time limit (batchTimeout) that do not delay it start ahead of it"))
                continue
            }
            if let limit = snapshot.sessionLimits[session.accessKey], limit > 0, (active[session.accessKey] ?? 0) >= limit {
                plan.waiting.append((session.id, "keypair \(session.accessKey) already runs \(active[session.accessKey]!) sessions, its policy's limit (max_concurrent_sessions \(limit))"))
                continue
            }
            if session.clusterSize == 1, session.architecture.isEmpty,
               unplaceable.contains(where: { failed in zip(picked.requested, failed).allSatisfy { $0 >= $1 } }) {
                plan.waiting.append((session.id, waitReason(session)))
                continue
            }
            let request = PlacementRequest(sessionID: session.id, architecture: session.architecture.isEmpty ? nil : session.architecture,
                                           kernelRequests: Array(repeating: picked.requested, count: session.clusterSize),
                                           singleNode: session.clusterMode == .singleNode)
            switch try selector.selectAgents(prepared, request: request) {
            case .noAgent(let reason):
                // Preemption makes room on one agent, so it serves sessions whose kernels all go
                // to one agent; a multi-node gang waits for capacity instead.
                if snapshot.options.preemption, session.clusterMode == .singleNode || session.clusterSize == 1,
                   let choice = preemption(for: session, need: picked.requested.map { $0 * Int64(session.clusterSize) }, prepared: prepared,
                                           perAgent: victims ?? { victims = Self.victims(snapshot.holders, names: slotNames, bytes: bytes); return victims! }(),
                                           alreadyPreempted: preempted) {
                    switch choice {
                    case .waitForRelease(let agent):
                        plan.waiting.append((session.id, "waiting for preempted or ending sessions to release their slots on \(agent)"))
                    case .preempt(let agent, let victims):
                        for victim in victims {
                            preempted.insert(victim.sessionID)
                            plan.preemptions.append((victim.sessionID, "preempted: ended to place session '\(session.name)' (priority \(session.priority), above this session's \(victim.priority)) in resource group '\(resourceGroup)'"))
                        }
                        plan.waiting.append((session.id, "waiting for \(victims.count) preempted session\(victims.count == 1 ? "" : "s") on \(agent) to end: \(victims.map(\.sessionName).joined(separator: ", "))"))
                    }
                    continue
                }
                // Say what holds the capacity when the snapshot shows it; else the selector's reason.
                let holding = waitReason(session)
                plan.waiting.append((session.id, holding.hasPrefix("waiting for ") ? holding : reason))
                if head == nil {
                    let need = picked.requested.map { $0 * Int64(session.clusterSize) }
                    if releases == nil { releases = Self.releases(holders: snapshot.holders, prepared: prepared, now: snapshot.now, names: slotNames, bytes: bytes) }
                    let (start, agent) = earliestStart(session, need: need, prepared: prepared, releases: releases!, passEnds: passEnds, now: snapshot.now)
                    head = (session, need, start, agent)
                    plan.headReservation = (session.id, agent.map { candidates[$0].id }, start)
                }
                if session.clusterSize == 1, session.architecture.isEmpty, unplaceable.count < 64 { unplaceable.append(picked.requested) }
            case .placed(let indices):
                let end = session.timeLimit.map { snapshot.now + min(max($0, 0), 315_360_000) * 1_000_000 }
                if backfill, let blocked = head {
                    // It may start ahead of the head only if the head still fits at its
                    // reserved start: it ends by then, or the head's agent keeps room for both.
                    if let start = blocked.start, let agent = blocked.agent, end.map({ $0 > start }) ?? true, indices.contains(agent) {
                        let extra = picked.requested.map { $0 * Int64(indices.filter { $0 == agent }.count) }
                        if !fitsAt(start, agent: agent, need: zip(blocked.need, extra).map { $0 + $1 }, prepared: prepared,
                                   releases: releases?[agent] ?? [], passEnds: passEnds) {
                            plan.waiting.append((session.id, "waiting: starting now would delay session '\(blocked.session.name)', first in line and reserved on \(candidates[agent].id) from \(CivilTime.iso8601(micros: start))"))
                            continue
                        }
                    }
                    plan.backfilled.append(session.id)
                }
                for i in indices { passEnds.append((i, end, picked.requested)) }
                let placements = zip(snapshot.kernelIDs[session.id] ?? [], indices).map { KernelPlacement(kernelID: $0, agentID: candidates[$1].id) }
                for i in indices { prepared.charge(agent: i, amounts: picked.requested) }
                queue.charge(ownerIndex: picked.ownerIndex, amounts: picked.requested.map { $0 * Int64(indices.count) })
                active[session.accessKey, default: 0] += 1
                plan.reservations.append((session.id, placements))
            }
        }
        return plan
    }

    /// Slots coming back on one agent: when (nil: no time limit) and how much.
    typealias Release = (end: Int64?, amounts: [Int64])

    /// Each agent's coming releases (by candidate index): holders' slots at their time limit's
    /// end, ending sessions' now. Built once per pass, only when a session is blocked.
    static func releases(holders: [SlotHolder], prepared: SelectionInput, now: Int64, names: [String], bytes: Set<String>) -> [Int: [Release]] {
        let index = Dictionary(prepared.candidates.enumerated().map { ($0.element.id, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var out: [Int: [Release]] = [:]
        for holder in holders {
            guard let agent = index[holder.agentID] else { continue }
            out[agent, default: []].append((holder.status == .terminating ? now : holder.expectedEnd, fixed(holder.occupied, names: names, bytes: bytes)))
        }
        return out
    }

    /// Whether `need` fits on `agent` at `time`, counting what comes back by then (releases
    /// and this pass's placements with a time limit).
    static func fitsAt(_ time: Int64, agent: Int, need: [Int64], prepared: SelectionInput, releases: [Release], passEnds: [(agent: Int, end: Int64?, amounts: [Int64])]) -> Bool {
        var back = [Int64](repeating: 0, count: need.count)
        for release in releases where release.end.map({ $0 <= time }) ?? false {
            for k in back.indices { back[k] += release.amounts[k] }
        }
        for placed in passEnds where placed.agent == agent && (placed.end.map { $0 <= time } ?? false) {
            for k in back.indices { back[k] += placed.amounts[k] }
        }
        let capacity = prepared.candidates[agent].capacity, occupied = prepared.occupied(agent: agent)
        return need.indices.allSatisfy { capacity[$0] - occupied[$0] + back[$0] >= need[$0] }
    }

    /// The earliest time (and agent) at which `need` fits on one agent, counting only
    /// releases that time limits guarantee; nil when no agent is sure to have room.
    static func earliestStart(_ session: SessionRecord, need: [Int64], prepared: SelectionInput, releases: [Int: [Release]],
                              passEnds: [(agent: Int, end: Int64?, amounts: [Int64])], now: Int64) -> (Int64?, Int?) {
        var best: (Int64, Int)?
        for (index, agent) in prepared.candidates.enumerated() where session.architecture.isEmpty || agent.architecture == session.architecture {
            guard need.indices.allSatisfy({ agent.capacity[$0] >= need[$0] }) else { continue }
            let mine = releases[index] ?? []
            var times = Set(mine.compactMap(\.end))
            times.formUnion(passEnds.filter { $0.agent == index }.compactMap(\.end))
            times.insert(now)
            for time in times.sorted() where best.map({ time < $0.0 }) ?? true {
                if fitsAt(time, agent: index, need: need, prepared: prepared, releases: mine, passEnds: passEnds) {
                    best = (time, index)
                    break
                }
            }
        }
        return (best?.0, best?.1)
    }

    /// The slot universe of a pass (sorted names), with byte slots told apart by the agents'
    /// slot types.
    static func slots(of agents: [AgentRecord]) -> (SchedulingSlots, Set<String>) {
        var bytes: Set<String> = ["mem"]
        var names = Set<String>()
        // Agents of one cluster mostly report the same slot types: each distinct text is
        // decoded once per pass.
        var decoded = Set<String>()
        for a in agents {
            names.formUnion(a.capacity.amounts.keys)
            guard decoded.insert(a.slotTypes).inserted else { continue }
            if let types = try? JSONDecoder().decode([String: String].self, from: Data(a.slotTypes.utf8)) {
                bytes.formUnion(types.filter { $0.value == "bytes" }.keys)
            }
        }
        let sorted = names.sorted()
        return (SchedulingSlots(names: sorted, types: sorted.map { bytes.contains($0) ? .bytes : .count }), bytes)
    }

    /// The scheduler's view of a queue: the group's total and free capacity, each owner's
    /// (access key's) occupancy from what holds the agents' slots, the snapshot's clock and
    /// each session's fair-share factor.
    static func queueInput(_ snapshot: SchedulingSnapshot, pending: [SessionRecord], slots: SchedulingSlots, bytes: Set<String>) -> SchedulerInput {
        let names = slots.names
        var total = [Int64](repeating: 0, count: names.count), used = total
        for agent in snapshot.agents {
            let capacity = fixed(agent.capacity, names: names, bytes: bytes), occupied = fixed(agent.occupied, names: names, bytes: bytes)
            for k in names.indices { total[k] += capacity[k]; used[k] += occupied[k] }
        }
        var ownerIndex: [String: Int] = [:]
        for s in pending where ownerIndex[s.accessKey] == nil { ownerIndex[s.accessKey] = ownerIndex.count }
        var occupied = Array(repeating: [Int64](repeating: 0, count: names.count), count: ownerIndex.count)
        for holder in snapshot.holders {
            guard let index = ownerIndex[holder.accessKey] else { continue }
            let amounts = fixed(holder.occupied, names: names, bytes: bytes)
            for k in names.indices { occupied[index][k] += amounts[k] }
        }
        return SchedulerInput(
            slots: slots, total: total, free: zip(total, used).map { max(0, $0 - $1) },
            sessions: pending.map {
                PendingSession(id: $0.id, ownerIndex: ownerIndex[$0.accessKey]!, priority: Int32($0.priority), createdAtMicros: $0.createdAt,
                               kernelCount: UInt32($0.clusterSize), requested: fixed($0.requested, names: names, bytes: bytes),
                               attempts: UInt32($0.attempts), fairshare: snapshot.fairshare[$0.id] ?? 1)
            },
            owners: ownerIndex.sorted { $0.value < $1.value }.map { SchedulingOwner(accessKey: $0.key, occupied: occupied[$0.value]) },
            now: snapshot.now)
    }

    enum PreemptionChoice {
        /// Slots already on their way back (ending or preempted sessions) will make it fit.
        case waitForRelease(agent: String)
        /// End these sessions (on one agent) and it fits.
        case preempt(agent: String, victims: [SlotHolder])
    }

    /// A running session as preemption weighs it: what it holds on one agent.
    struct Victim { var holder: SlotHolder; var amounts: [Int64]; var order: Int }

    /// Each agent's sessions (by agent id, then session id), built once per pass.
    static func victims(_ holders: [SlotHolder], names: [String], bytes: Set<String>) -> [String: [String: Victim]] {
        var perAgent: [String: [String: Victim]] = [:]
        for (order, holder) in holders.enumerated() {
            let amounts = fixed(holder.occupied, names: names, bytes: bytes)
            if var existing = perAgent[holder.agentID]?[holder.sessionID] {
                existing.amounts = zip(existing.amounts, amounts).map { $0 + $1 }
                perAgent[holder.agentID]![holder.sessionID] = existing
            } else {
                perAgent[holder.agentID, default: [:]][holder.sessionID] = Victim(holder: holder, amounts: amounts, order: order)
            }
        }
        return perAgent
    }

    /// Which running sessions to end so that `session` (all its kernels on one agent, `need`
    /// in total) fits: only RUNNING, preemptible sessions of strictly lower priority; on the
    /// agent where the fewest must go, lowest priorities first (then the newest, which lose
    /// the least work), and none that the rest already make room without. Nil when no choice
    /// makes it fit — nothing is preempted for a session that would still not fit.
    static func preemption(for session: SessionRecord, need: [Int64], prepared: SelectionInput, perAgent: [String: [String: Victim]],
                           alreadyPreempted: Set<String>) -> PreemptionChoice? {
        let agents = prepared.candidates.enumerated().filter { session.architecture.isEmpty || $0.element.architecture == session.architecture }
        func fits(_ index: Int, freed: [Int64]) -> Bool {
            let capacity = prepared.candidates[index].capacity, occupied = prepared.occupied(agent: index)
            return need.indices.allSatisfy { capacity[$0] - occupied[$0] + freed[$0] >= need[$0] }
        }
        func sum(_ victims: [Victim]) -> [Int64] {
            victims.reduce(into: [Int64](repeating: 0, count: need.count)) { total, v in for k in total.indices { total[k] += v.amounts[k] } }
        }
        // Capacity already coming back makes room: wait for it rather than end more.
        for (index, agent) in agents {
            let releasing = (perAgent[agent.id] ?? [:]).values.filter { $0.holder.status == .terminating || alreadyPreempted.contains($0.holder.sessionID) }
            if fits(index, freed: sum(Array(releasing))) { return .waitForRelease(agent: agent.id) }
        }
        var best: (victims: [Victim], agent: String)?
        for (index, agent) in agents {
            let onAgent = Array((perAgent[agent.id] ?? [:]).values)
            var freed = sum(onAgent.filter { $0.holder.status == .terminating || alreadyPreempted.contains($0.holder.sessionID) })
            let eligible = onAgent.filter {
                $0.holder.status == .running && $0.holder.preemptible && $0.holder.priority < session.priority && !alreadyPreempted.contains($0.holder.sessionID)
            }.sorted { ($0.holder.priority, -$0.order) < ($1.holder.priority, -$1.order) }
            var chosen: [Victim] = []
            for victim in eligible where !fits(index, freed: freed) {
                chosen.append(victim)
                for k in freed.indices { freed[k] += victim.amounts[k] }
            }
            guard fits(index, freed: freed), !chosen.isEmpty else { continue }
            // Spare whoever the others already make room without (higher priorities first).
            for victim in chosen.reversed() {
                let without = zip(freed, victim.amounts).map { $0 - $1 }
                if fits(index, freed: without) {
                    freed = without
                    chosen.removeAll { $0.holder.sessionID == victim.holder.sessionID }
                }
            }
            let key = (chosen.count, chosen.map(\.holder.priority).max() ?? 0)
            if best == nil || key < (best!.victims.count, best!.victims.map(\.holder.priority).max() ?? 0) { best = (chosen, agent.id) }
        }
        return best.map { .preempt(agent: $0.agent, victims: $0.victims.map(\.holder)) }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(value)
    }

    /// Writes a plan in one transaction: the cancellations, the reservations (each
    /// re-checked against the agents; one another pass beat is noted and retried next pass)
    /// and the reasons of sessions that still wait.
    public func apply(_ plan: SchedulingPlan, snapshot: SchedulingSnapshot, epoch: Int64? = nil) throws -> [SchedulingDecision] {
        let stored = Dictionary(snapshot.pending.map { ($0.id, $0.statusInfo) }, uniquingKeysWith: { a, _ in a })
        let lostRace = "the chosen agent filled up before the reservation; retrying next pass"
        let made = try store.applyPass(
            resourceGroup: snapshot.resourceGroup, cancellations: plan.cancellations, reservations: plan.reservations,
            consideredUpTo: plan.consideredUpTo, epoch: epoch,
            reasons: { made in
                let lost = zip(plan.reservations, made).filter { !$1 }.map { ($0.0.session, lostRace) }
                return (plan.waiting + lost).filter { stored[$0.session] != $0.reason }
            })
        var decisions: [SchedulingDecision] = plan.cancellations.map { .cancelled(session: $0.session, reason: $0.reason) }
        var waiting = plan.waiting
        for (reservation, wasMade) in zip(plan.reservations, made) {
            if wasMade {
                decisions.append(.scheduled(session: reservation.session, placements: reservation.placements))
            } else {
                // Another pass took the capacity (or the session) first; the database is right.
                waiting.append((reservation.session, lostRace))
            }
        }
        decisions += waiting.map { .pending(session: $0.session, reason: $0.reason) }
        // Victims move to TERMINATING here, so the next pass counts their slots as coming
        // back and preempts no more for the same session; the lifecycle then ends their
        // kernels (SIGTERM, the engine's grace period, then SIGKILL) and releases the slots.
        for (victim, reason) in plan.preemptions {
            guard try store.session(id: victim)?.status == .running,
                  try store.transition(session: victim, to: .terminating, reason: reason, fencedBy: epoch) else { continue }
            logger.info("session preempted", metadata: ["session": .string(victim), "reason": .string(reason)])
            decisions.append(.preempted(session: victim, reason: reason))
        }
        return decisions
    }
}

extension SessionScheduler {
    /// Why a session that fits the group's agents in size must wait: for the agent it would
    /// fit best, the first slot short and who holds it — naming the user's own sessions, which
    /// the user can end (other users' sessions are only counted).
    static func waitingReason(_ session: SessionRecord, snapshot: SchedulingSnapshot, bytes: Set<String>) -> String {
        let needs = session.requested.amounts.filter { $0.value > 0 }
        let candidates = snapshot.agents.filter { a in needs.allSatisfy { a.capacity[$0.key] >= $0.value } }
        // The agent short by the fewest slots.
        func short(_ a: AgentRecord) -> [String] {
            needs.keys.sorted().filter { a.capacity[$0] - a.occupied[$0] < needs[$0]! }
        }
        guard let agent = candidates.min(by: { short($0).count < short($1).count }), let slot = short(agent).first else {
            return "no agent has room for the requested resources now; waiting for capacity"
        }
        let isBytes = bytes.contains(slot)
        let amount = { (d: Decimal) in ResourceSlots.human(d, bytes: isBytes) }
        let holders = snapshot.holders.filter { $0.agentID == agent.id && $0.occupied[slot] > 0 }
        let own = holders.filter { $0.accessKey == session.accessKey }
        let ownNames = Array(Set(own.map(\.sessionName))).sorted()
        var reason = "waiting for \(slot): \(amount(agent.occupied[slot])) of \(amount(agent.capacity[slot])) on \(agent.id) "
        if !ownNames.isEmpty {
            reason += "are held by your session\(ownNames.count == 1 ? "" : "s") \(ownNames.joined(separator: ", "))"
            let others = Set(holders.map(\.sessionName)).count - ownNames.count
            if others > 0 { reason += " and \(others) other session\(others == 1 ? "" : "s")" }
            reason += " — `hangar session rm` one, or use --rm"
        } else {
            reason += "are in use by \(Set(holders.map(\.sessionName)).count) other session\(Set(holders.map(\.sessionName)).count == 1 ? "" : "s"); it starts when they end"
        }
        return reason
    }
}
