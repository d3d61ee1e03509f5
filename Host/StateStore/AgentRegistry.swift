import ClusterProtocol
import Foundation

/// The latest utilisation an agent reported, stored with it.
public struct AgentStats: Codable, Sendable, Equatable {
    public var kernels: [KernelStats]
    public var measures: [MeasureReport]
    /// When it was reported (microseconds since the epoch).
    public var at: Int64
}

/// The agent registry: capacity and liveness of every agent, in the database so that any
/// manager sharing it sees the same cluster.
extension StateStore {
    /// What recording a heartbeat did.
    public struct HeartbeatOutcome: Sendable, Equatable {
        public var agent: AgentRecord
        /// First contact, or the agent came back from LOST.
        public var registered: Bool
    }

    private static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
    }

    /// Records a heartbeat in one transaction: registers a new agent, refreshes capacity,
    /// devices and images, and brings a LOST agent back to ALIVE. Occupancy is the
    /// manager's own bookkeeping and is never overwritten by the agent.
    public func recordHeartbeat(_ hb: AgentHeartbeat, now: Int64 = Clock.nowMicros()) throws -> HeartbeatOutcome {
        let problems = hb.validationErrors()
        guard problems.isEmpty else { throw StoreError(.invalid, problems.joined(separator: "; ")) }
        return try database.transaction { c in
            guard try !c.query("SELECT name FROM resource_groups WHERE name = $1", [.text(hb.resourceGroup)]).isEmpty else {
                throw StoreError(.notFound, "agent \(hb.agentID) names resource group '\(hb.resourceGroup)', which does not exist; create it or fix the agent's resource_group")
            }
            let values: [SQLValue] = [
                .text(hb.agentID), .text(hb.address), .text(hb.resourceGroup), .text(hb.architecture), .text(hb.version),
                .text(hb.capacity.json), .text(Self.json(hb.slotTypes)), .text(Self.json(hb.devices)), .text(Self.json(hb.plugins)),
                .text(Self.json(hb.images)), .text(Self.json(hb.runningKernels)), .int(now),
                .text(Self.json(AgentStats(kernels: hb.kernelStats ?? [], measures: hb.measures ?? [], at: now))),
            ]
            // Insert-or-nothing first, so two managers (or two racing heartbeats) registering
            // one agent never collide on the primary key.
            let inserted = try c.execute("""
                INSERT INTO agents (id, status, address, resource_group, architecture, version, capacity_slots, slot_types,
                    devices, plugins, images, running_kernels, first_contact, last_heartbeat, stats)
                VALUES ($1, 'ALIVE', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)
                ON CONFLICT (id) DO NOTHING
                """, values)
            var registered = inserted > 0
            if !registered {
                let lock = database.dialect == .postgresql ? " FOR UPDATE" : ""
                let previous = try c.query("SELECT status FROM agents WHERE id = $1" + lock, [.text(hb.agentID)]).first?.string("status")
                registered = previous != AgentStatus.alive.rawValue
                try c.execute("""
                    UPDATE agents SET status = 'ALIVE', address = $2, resource_group = $3, architecture = $4, version = $5,
                        capacity_slots = $6, slot_types = $7, devices = $8, plugins = $9, images = $10, running_kernels = $11,
                        last_heartbeat = $12, lost_at = NULL, stats = $13
                    WHERE id = $1
                    """, values)
            }
            // Each kernel keeps its latest statistics (usage reports read them after it ends);
            // an agent updates only kernels placed on it.
            for stats in hb.kernelStats ?? [] {
                try c.execute("UPDATE kernels SET last_stat = $1 WHERE id = $2 AND agent_id = $3",
                              [.text(Self.json(stats)), .text(stats.kernelID), .text(hb.agentID)])
            }
            guard let row = try c.query("SELECT * FROM agents WHERE id = $1", [.text(hb.agentID)]).first else {
                throw StoreError(.query, "agent \(hb.agentID) vanished while recording its heartbeat")
            }
            return HeartbeatOutcome(agent: Self.agent(from: row), registered: registered)
        }
    }

    static func agent(from r: SQLRow) -> AgentRecord {
        AgentRecord(id: r.string("id") ?? "", status: AgentStatus(rawValue: r.string("status") ?? "") ?? .lost,
                    schedulable: r.bool("schedulable"), address: r.string("address") ?? "", resourceGroup: r.string("resource_group") ?? "",
                    architecture: r.string("architecture") ?? "", version: r.string("version") ?? "",
                    capacity: (try? ResourceSlots(json: r.string("capacity_slots") ?? "{}")) ?? ResourceSlots(),
                    occupied: (try? ResourceSlots(json: r.string("occupied_slots") ?? "{}")) ?? ResourceSlots(),
                    slotTypes: r.string("slot_types") ?? "{}", devices: r.string("devices") ?? "[]", plugins: r.string("plugins") ?? "[]",
                    images: r.string("images") ?? "[]", runningKernels: r.string("running_kernels") ?? "[]",
                    firstContact: r.int("first_contact") ?? 0, lastHeartbeat: r.int("last_heartbeat") ?? 0, lostAt: r.int("lost_at"),
                    stats: r.string("stats") ?? "{}")
    }

    public func agents(resourceGroup: String? = nil, status: AgentStatus? = nil) throws -> [AgentRecord] {
        try database.withConnection { c in
            var sql = "SELECT * FROM agents"
            var clauses: [String] = []
            var params: [SQLValue] = []
            if let resourceGroup { params.append(.text(resourceGroup)); clauses.append("resource_group = $\(params.count)") }
            if let status { params.append(.text(status.rawValue)); clauses.append("status = $\(params.count)") }
            if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
            return try c.query(sql + " ORDER BY id", params).map(Self.agent(from:))
        }
    }

    public func agent(id: String) throws -> AgentRecord? {
        try database.withConnection { c in try c.query("SELECT * FROM agents WHERE id = $1", [.text(id)]).first.map(Self.agent(from:)) }
    }

    /// Sets every agent's occupied slots to the sum of what its kernels hold now (Backend.AI's
    /// `recalculate-usage`): a repair for counts that drifted, e.g. after a database restore.
    /// Runs in one transaction with the agents locked, so no reservation lands half-way.
    /// - Returns: the agents whose count changed, with the old and the new value.
    @discardableResult
    public func recalculateOccupancy() throws -> [(agent: String, before: ResourceSlots, after: ResourceSlots)] {
        try database.transaction { c in
            let lock = database.dialect == .postgresql ? " FOR UPDATE" : ""
            var held: [String: ResourceSlots] = [:]
            // Only kernels whose slots were reserved and not yet released carry occupied_slots.
            for k in try c.query("SELECT agent_id, occupied_slots FROM kernels WHERE agent_id IS NOT NULL AND occupied_slots <> '{}'") {
                guard let agent = k.string("agent_id") else { continue }
                held[agent] = (held[agent] ?? ResourceSlots()) + (try ResourceSlots(json: k.string("occupied_slots") ?? "{}"))
            }
            var changed: [(agent: String, before: ResourceSlots, after: ResourceSlots)] = []
            for a in try c.query("SELECT id, occupied_slots FROM agents ORDER BY id" + lock) {
                let id = a.string("id") ?? ""
                let before = (try? ResourceSlots(json: a.string("occupied_slots") ?? "{}")) ?? ResourceSlots()
                var after = held[id] ?? ResourceSlots()
                for (slot, amount) in after.amounts where amount <= 0 { after.amounts[slot] = nil }
                guard after != before else { continue }
                try c.execute("UPDATE agents SET occupied_slots = $1 WHERE id = $2", [.text(after.json), .text(id)])
                changed.append((id, before, after))
            }
            return changed
        }
    }

    /// Lets the scheduler use an agent, or keeps it away (draining).
    public func setAgentSchedulable(_ id: String, _ schedulable: Bool) throws {
        let changed = try database.transaction { c in
            try c.execute("UPDATE agents SET schedulable = $1 WHERE id = $2", [SQLValue(schedulable), .text(id)])
        }
        if changed == 0 { throw StoreError(.notFound, "no agent with id '\(id)'") }
    }

    /// Marks ALIVE agents whose last heartbeat is older than `cutoff` as LOST.
    /// - Returns: the ids that became LOST.
    @discardableResult
    public func markLostAgents(silentSince cutoff: Int64, now: Int64 = Clock.nowMicros()) throws -> [String] {
        try database.transaction { c in
            let ids = try c.query("SELECT id FROM agents WHERE status = 'ALIVE' AND last_heartbeat < $1 ORDER BY id", [.int(cutoff)])
                .compactMap { $0.string("id") }
            if !ids.isEmpty {
                try c.execute("UPDATE agents SET status = 'LOST', lost_at = $1 WHERE status = 'ALIVE' AND last_heartbeat < $2",
                              [.int(now), .int(cutoff)])
            }
            return ids
        }
    }
}
