import ClusterProtocol
import Foundation
import Metrics
import StateStore
import Synchronization

/// How long a session may sit in a transitional state before the leader repairs it, and how
/// often it looks (`[manager] reconcile_interval`, `reconcile_scheduled_after`,
/// `reconcile_starting_after`, `reconcile_terminating_after`).
public struct ReconcileLimits: Sendable, Equatable {
    /// Seconds between reconciliations (the leader also reconciles when it takes the lead).
    public var interval: Double = 30
    /// SCHEDULED this long: the manager that reserved it died before starting it; start it.
    public var scheduled: Double = 60
    /// PREPARING/PULLING/CREATING this long: whoever was starting it stopped; end it in ERROR.
    public var starting: Double = 900
    /// TERMINATING this long: whoever was ending it stopped; end it again.
    public var terminating: Double = 120
    public init() {}
}

/// What one reconciliation repaired, by kind (also counted in
/// `hangar_reconcile_repairs_total{kind=…}`).
public struct ReconcileReport: Sendable, Equatable {
    /// SCHEDULED sessions started again.
    public var restartedSchedules = 0
    /// Sessions stuck starting, ended in ERROR.
    public var failedStarts = 0
    /// Sessions stuck in TERMINATING, ended.
    public var finishedTerminations = 0
    /// Containers agents run for sessions that ended (or that the database does not know), removed.
    public var orphanKernels = 0
    /// RUNNING sessions whose kernel their (alive) agent no longer runs, ended in ERROR.
    public var vanishedKernels = 0
    public init() {}

    public var total: Int { restartedSchedules + failedStarts + finishedTerminations + orphanKernels + vanishedKernels }
}

extension SessionLifecycle {
    /// Compares the database with what the agents report and repairs each difference: the
    /// cases a manager dying half-way leaves behind (sessions stuck SCHEDULED, starting or
    /// TERMINATING), containers of ended sessions still running, and running sessions whose
    /// kernel is gone. Only the scheduling leader calls it. Every repair is logged and counted.
    /// A running kernel missing from its agent's reports is repaired only when it is still
    /// missing at the next reconciliation (a heartbeat may be between the container's exit
    /// and its exit report).
    public func reconcile(now: Int64 = Clock.nowMicros()) async -> ReconcileReport {
        var report = ReconcileReport()
        let limits = reconcileLimits
        @Sendable func micros(_ seconds: Double) -> Int64 { Int64(seconds * 1_000_000) }
        func since(_ changed: Int64) -> Int64 { max(0, (now - changed) / 1_000_000) }

        let terminating = (try? await store.run { try $0.sessionsStuck(in: [.terminating], changedBefore: now - micros(limits.terminating)) }) ?? []
        for (session, changed) in terminating {
            let reason = "\(session.statusInfo.isEmpty ? "" : session.statusInfo + " — ")ended by reconciliation: it was TERMINATING for \(since(changed)) s "
                + "(the manager ending it stopped); its kernels were removed and its slots released"
            guard (try? await destroy(session: session.id, reason: reason)) != nil else { continue }
            repaired(&report.finishedTerminations, "stuck_terminating", session.id, reason)
        }
        let scheduled = (try? await store.run { try $0.sessionsStuck(in: [.scheduled], changedBefore: now - micros(limits.scheduled)) }) ?? []
        for (session, changed) in scheduled where !startsInFlight.withLock({ $0.contains(session.id) }) {
            guard let placements = try? await store.run({ try $0.kernelAgents(session: session.id) }),
                  placements.allSatisfy({ $0.1 != nil }) else { continue }
            repaired(&report.restartedSchedules, "stuck_scheduled", session.id,
                     "SCHEDULED for \(since(changed)) s without being started (the manager that reserved it stopped); starting it")
            await start(session: session.id, placements: placements.map { KernelPlacement(kernelID: $0.0, agentID: $0.1 ?? "") })
        }
        let starting = (try? await store.run { try $0.sessionsStuck(in: [.preparing, .pulling, .creating], changedBefore: now - micros(limits.starting)) }) ?? []
        for (session, changed) in starting where !startsInFlight.withLock({ $0.contains(session.id) }) {
            let reason = "ended by reconciliation: it was \(session.status.rawValue) for \(since(changed)) s (the manager starting it stopped, "
                + "or the start hung); its kernels were removed and its slots released — create it again"
            guard (try? await destroy(session: session.id, reason: reason, endingIn: .error)) != nil else { continue }
            repaired(&report.failedStarts, "stuck_starting", session.id, reason)
        }

        let agents = (try? await store.run { try $0.agents(status: .alive) }) ?? []
        // What each alive agent last reported running, and when it reported it.
        let reported = Dictionary(agents.map { agent in
            (agent.id, (kernels: Set((try? JSONDecoder().decode([String].self, from: Data(agent.runningKernels.utf8))) ?? []), at: agent.lastHeartbeat))
        }, uniquingKeysWith: { first, _ in first })
        let everyReported = Array(reported.values.flatMap(\.kernels))
        let orphans = Set((try? await store.run { try $0.kernelsWithoutLiveSession(everyReported) }) ?? [])
        for agent in agents {
            for kernel in (reported[agent.id]?.kernels ?? []).sorted() where orphans.contains(kernel) {
                guard let (status, _) = try? await callAgent(agent.address, .DELETE, AgentAPI.kernelPath(kernel)), status < 300 || status == 404 else { continue }
                repaired(&report.orphanKernels, "orphan_kernel", kernel, "agent \(agent.id) ran kernel \(kernel), whose session has ended or is unknown; removed it")
            }
        }
        let placements = (try? await store.run { try $0.runningKernelPlacements() }) ?? []
        var missing = Set<String>()
        for p in placements {
            // Only against a report made after the kernel was running.
            guard let seen = reported[p.agent], seen.at > p.runningSince, !seen.kernels.contains(p.kernel) else { continue }
            missing.insert(p.kernel)
            guard suspects.withLock({ $0.contains(p.kernel) }) else { continue }
            let reason = "ended by reconciliation: its kernel \(p.kernel) is no longer on agent \(p.agent) (its reports no longer list it); its slots were released"
            guard (try? await store.run { try $0.transition(session: p.session, to: .error, reason: reason) }) == true else { continue }
            missing.remove(p.kernel)
            repaired(&report.vanishedKernels, "vanished_kernel", p.session, reason)
        }
        suspects.withLock { $0 = missing }
        if report.total > 0 {
            logger.notice("reconciliation repaired", metadata: [
                "stuck_terminating": .stringConvertible(report.finishedTerminations), "stuck_scheduled": .stringConvertible(report.restartedSchedules),
                "stuck_starting": .stringConvertible(report.failedStarts), "orphan_kernels": .stringConvertible(report.orphanKernels),
                "vanished_kernels": .stringConvertible(report.vanishedKernels),
            ])
        }
        return report
    }

    private func repaired(_ count: inout Int, _ kind: String, _ subject: String, _ what: String) {
        count += 1
        Counter(label: "hangar_reconcile_repairs_total", dimensions: [("kind", kind)]).increment()
        logger.warning("reconciliation", metadata: ["kind": .string(kind), "subject": .string(subject), "repair": .string(what)])
    }

    /// Reconciles when `interval` has passed since the last time (or when asked to now).
    func reconcileIfDue(force: Bool = false) async {
        let now = ContinuousClock.now
        let due = lastReconcile.withLock { last -> Bool in
            guard force || last.map({ now - $0 >= .milliseconds(Int64(reconcileLimits.interval * 1000)) }) ?? true else { return false }
            last = now
            return true
        }
        if due { _ = await reconcile() }
    }
}
