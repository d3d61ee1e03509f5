import Foundation

/// What the scheduling leader compares with the agents' reports when it reconciles (see the
/// manager's `SessionLifecycle.reconcile`).
extension StateStore {
    /// Sessions in one of `statuses` whose status last changed before `before` (µs), oldest
    /// first: those a manager left half-way (it died starting or ending them).
    public func sessionsStuck(in statuses: [SessionStatus], changedBefore before: Int64) throws -> [(session: SessionRecord, since: Int64)] {
        guard !statuses.isEmpty else { return [] }
        let list = statuses.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        return try database.withConnection { c in
            try c.query("SELECT * FROM sessions WHERE status IN (\(list)) AND status_changed < $1 ORDER BY status_changed, id", [.int(before)])
                .map { (Self.session(from: $0), $0.int("status_changed") ?? 0) }
        }
    }

    /// Of `kernelIDs` (what an agent reports running), those whose session has ended or that
    /// the database does not know: containers nothing accounts for.
    public func kernelsWithoutLiveSession(_ kernelIDs: [String]) throws -> [String] {
        guard !kernelIDs.isEmpty else { return [] }
        let live = try database.withConnection { c in
            Set(try c.query("""
                SELECT k.id AS id FROM kernels k JOIN sessions s ON s.id = k.session_id
                WHERE s.status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
                """).compactMap { $0.string("id") })
        }
        return kernelIDs.filter { !live.contains($0) }
    }

    /// Kernels of RUNNING sessions with their agent and when the session started running.
    public func runningKernelPlacements() throws -> [(kernel: String, session: String, agent: String, runningSince: Int64)] {
        try database.withConnection { c in
            try c.query("""
                SELECT k.id AS kernel, s.id AS session, k.agent_id AS agent, s.status_changed AS since FROM kernels k
                JOIN sessions s ON s.id = k.session_id WHERE s.status = 'RUNNING' AND k.agent_id IS NOT NULL ORDER BY k.id
                """).map { ($0.string("kernel") ?? "", $0.string("session") ?? "", $0.string("agent") ?? "", $0.int("since") ?? 0) }
        }
    }
}
