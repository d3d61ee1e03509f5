import ClusterProtocol
import Foundation
import StateStore
import Testing
import TestSupport

/// One scheduling leader among managers on one PostgreSQL database, its epoch fencing the
/// scheduler's writes, and one manager per SQLite database.
@Suite struct SchedulerLeadershipTests {
    /// Ends the PostgreSQL sessions holding Hangar's scheduling lock (a leader's connection
    /// cut off, as a crash or a network partition would do).
    static func cutTheLeadersConnection(_ store: StateStore) throws -> Int {
        try store.database.withConnection { c in
            let holders = try c.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                + "(SELECT oid FROM pg_database WHERE datname = current_database())")
            for row in holders { _ = try c.query("SELECT pg_terminate_backend(\(row.int("pid") ?? 0)::int) AS ended") }
            return holders.count
        }
    }

    /// The epoch `leadership` takes within five seconds: PostgreSQL frees a lock when the
    /// backend that held it has ended, a moment after its connection closed.
    static func acquired(_ leadership: SchedulerLeadership) async throws -> Int64? {
        for _ in 0..<100 {
            if case .acquired(let epoch) = leadership.refresh() { return epoch }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    @Test
    func oneLeaderAtATimeAndAFormerLeaderCanNeverWrite() async throws {
        let (db, store, admin) = try bootstrappedStore(.postgresql)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-l", cpu: 4))
        let a = SchedulerLeadership(store: store, holder: "manager-a")
        let b = SchedulerLeadership(store: store, holder: "manager-b")
        guard case .acquired(let first) = a.refresh() else { Issue.record("the first manager did not take the lead"); return }
        #expect(b.refresh() == .follower, "a second manager does not lead while the first does")
        #expect(a.refresh() == .kept(epoch: first))
        #expect(try store.schedulerLeader().holder == "manager-a" && store.schedulerLeader().epoch == first)

        // The leader writes under its epoch.
        let one = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "under-a"))
        let oneKernel = try #require(try store.kernels(session: one.id).first)
        let made = try store.applyPass(resourceGroup: "default", cancellations: [], reservations: [(one.id, [KernelPlacement(kernelID: oneKernel.id, agentID: "node-l")])],
                                       consideredUpTo: one.createdAt, epoch: first, reasons: { _ in [] })
        #expect(made == [true])

        // The leader's connection is cut; the other manager takes over with a higher epoch.
        #expect(try Self.cutTheLeadersConnection(store) == 1)
        guard let second = try await Self.acquired(b) else { Issue.record("the lead did not move"); return }
        #expect(try second == first + 1 && store.schedulerLeader().holder == "manager-b")
        // The former leader (it has not noticed yet) cannot write: not a reservation, not a
        // cancellation, not a preemption — and nothing of the refused pass is left behind.
        let two = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "under-a-late"))
        let twoKernel = try #require(try store.kernels(session: two.id).first)
        #expect { try store.applyPass(resourceGroup: "default", cancellations: [(two.id, "cancelled by a stale leader")],
                                      reservations: [(two.id, [KernelPlacement(kernelID: twoKernel.id, agentID: "node-l")])],
                                      consideredUpTo: two.createdAt, epoch: first, reasons: { _ in [] }) } throws: { error in
            (error as? StoreError)?.code == .leadershipLost && "\(error)".contains("no longer the scheduling leader")
        }
        #expect(try store.session(id: two.id)?.status == .pending)
        #expect(try store.agents().first { $0.id == "node-l" }?.occupied["cpu"] == 1, "only the first session holds a core")
        #expect(throws: StoreError.self) { try store.transition(session: one.id, to: .terminating, reason: "preempted by a stale leader", fencedBy: first) }
        #expect(try store.session(id: one.id)?.status == .scheduled)
        // The new leader writes.
        #expect(try store.applyPass(resourceGroup: "default", cancellations: [], reservations: [(two.id, [KernelPlacement(kernelID: twoKernel.id, agentID: "node-l")])],
                                    consideredUpTo: two.createdAt, epoch: second, reasons: { _ in [] }) == [true])
        // The former leader learns it lost the lead, and then follows.
        guard case .lost(let reason) = a.refresh() else { Issue.record("the former leader did not notice"); return }
        #expect(reason.contains("broke"), "\(reason)")
        #expect(a.refresh() == .follower)

        // A leader that resigns (stops) hands over at once.
        b.resign()
        guard let third = try await Self.acquired(a) else { Issue.record("the lead did not come back after a resignation"); return }
        #expect(third == second + 1)
        a.resign()
    }

    /// A leader that stops talking (paused, partitioned) loses the lead on the server's side:
    /// PostgreSQL ends its idle session after the leader timeout.
    @Test
    func aSilentLeaderLosesTheLeadAfterItsTimeout() async throws {
        let (db, store, _) = try bootstrappedStore(.postgresql)
        defer { store.close(); _ = db }
        let silent = SchedulerLeadership(store: store, holder: "silent", sessionTimeout: 1)
        let standby = SchedulerLeadership(store: store, holder: "standby", sessionTimeout: 1)
        guard case .acquired(let first) = silent.refresh() else { Issue.record("no lead"); return }
        #expect(standby.refresh() == .follower)
        var took: Int64?
        for _ in 0..<50 where took == nil {
            try await Task.sleep(for: .milliseconds(100))
            if case .acquired(let epoch) = standby.refresh() { took = epoch }
        }
        #expect(took == first + 1, "the standby took over once the silent leader's session timed out")
        if case .kept = silent.refresh() { Issue.record("the silent leader still thinks it leads") }
        standby.resign()
    }

    @Test
    func sqliteLeadsUnfencedAndServesOneManager() throws {
        let (db, store, _) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        #expect(SchedulerLeadership(store: store, holder: "only").refresh() == .kept(epoch: nil))
        do {
            let held = try #require(try ManagerLock.acquire(for: store.database))
            #expect { _ = try ManagerLock.acquire(for: store.database) } throws: { error in
                "\(error)".contains("already serves the SQLite database") && "\(error)".contains("(pid \(getpid()))") && "\(error)".contains("PostgreSQL")
            }
            withExtendedLifetime(held) {}
        }
        // Released with its holder: the next manager starts.
        #expect(try ManagerLock.acquire(for: store.database) != nil)
    }
}
