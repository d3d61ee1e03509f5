import ClusterProtocol
import Foundation
import Manager
import PluginHost
import StateStore
import Testing
import TestSupport

/// The simulator: traces read and refused, and the fairshare policy proven on a simulated
/// two-week trace through the real plugins.
@Suite struct SchedulingSimulatorTests {
    static var binDir: String { PluginPaths.binDir }

    /// Two users in one project, shares 1:3, each submitting far more than the cluster runs
    /// (users give up after 8 hours pending). Over the second week the fairshare scheduler's
    /// usage split is within 0.05 of 25 % / 75 %; FIFO on the same trace gives them about half
    /// each, so the split is the policy's doing.
    @Test func fairShareConvergesToTheConfiguredSharesOverTwoWeeks() throws {
        var rng = SplitMix64(seed: 7)
        var jobs: [TraceJob] = []
        let twoWeeks = 14.0 * 86_400
        for user in ["light", "heavy"] {
            var t = 0.0
            while t < twoWeeks {
                t += -log(max(rng.unit(), 1e-12)) * 900  // 4 jobs an hour each: 16 core-hours an hour
                let runtime = max(60, -log(max(rng.unit(), 1e-12)) * 14_400)  // exponential, mean 4 h
                jobs.append(TraceJob(arrival: t.rounded(), user: user, project: "p", cpu: 1, runtime: runtime.rounded()))
            }
        }
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        var config = SimulationConfig()
        (config.agents, config.agentCPU, config.agentMemGiB, config.interval) = (2, 8, 64, 60)
        config.options.pendingTimeout = 8 * 3600
        config.options.fairshareHalfLife = 86_400
        config.shares = [.user: ["light": 1, "heavy": 3]]
        config.scheduler = "fairshare"
        let fair = try SchedulingSimulator(config: config, plugins: plugins).run(jobs)
        let light = try #require(fair.perUser["light"]), heavy = try #require(fair.perUser["heavy"])
        #expect(abs(light.targetShare - 0.25) < 1e-9 && abs(heavy.targetShare - 0.75) < 1e-9)
        #expect(fair.fairShareError < 0.05, "second-week usage \(light.usageShare) / \(heavy.usageShare) against 0.25 / 0.75")
        #expect(fair.utilisation > 0.9, "the cluster stays busy: \(fair.utilisation)")
        #expect(fair.cancelled > 0, "users gave up on some jobs (pending_timeout)")

        config.scheduler = "fifo"
        let fifo = try SchedulingSimulator(config: config, plugins: plugins).run(jobs)
        #expect(abs((fifo.perUser["light"]?.usageShare ?? 0) - 0.5) < 0.1, "FIFO splits by demand: \(fifo.perUser)")
        #expect(fifo.fairShareError > 0.15)
        print(String(format: "two-week trace, %d jobs: fairshare light/heavy usage %.3f/%.3f (error %.3f, Jain %.3f, utilisation %.3f, %d cancelled); fifo %.3f/%.3f (error %.3f)",
                     jobs.count, light.usageShare, heavy.usageShare, fair.fairShareError, fair.jainIndex, fair.utilisation, fair.cancelled,
                     fifo.perUser["light"]?.usageShare ?? 0, fifo.perUser["heavy"]?.usageShare ?? 0, fifo.fairShareError))
    }

    /// JSON Lines and CSV give the same jobs; broken traces are refused with the line.
    @Test func tracesReadAsJSONLinesOrCSVAndBadOnesAreRefused() throws {
        let jobs = JobTrace.synthetic(jobs: 50, users: [("u1", "p1", 1), ("u2", "p2", 2)], meanInterarrival: 30, medianRuntime: 600, seed: 3)
        #expect(try JobTrace.read(JobTrace.jsonLines(jobs)) == jobs)
        #expect(JobTrace.synthetic(jobs: 50, users: [("u1", "p1", 1), ("u2", "p2", 2)], meanInterarrival: 30, medianRuntime: 600, seed: 3) == jobs,
                "the same seed gives the same trace")
        let csv = "arrival,user,project,cpu,mem_gib,runtime,priority,time_limit\n0,alice,ml,2,4,60,50,120\n5.5,bob,ml,1,,30,,\n"
        #expect(try JobTrace.read(csv) == [TraceJob(arrival: 0, user: "alice", project: "ml", cpu: 2, memGiB: 4, runtime: 60, priority: 50, timeLimit: 120),
                                           TraceJob(arrival: 5.5, user: "bob", project: "ml", cpu: 1, runtime: 30)])
        for (bad, says) in [("arrival,user,cpu\n0,a,1\n", "lacks 'runtime'"), ("arrival,user,cpu,runtime\n0,a,x,1\n", "line 2: cpu 'x'"),
                            ("arrival,user,cpu,runtime\n0,a,1\n", "3 fields"), ("{\"arrival\": 0}\n", "trace line 1"),
                            ("arrival,user,cpu,runtime,priority\n0,a,1,1,101\n", "priority 0-100"),
                            ("arrival,user,cpu,runtime\n1e300,a,1,1\n", "every number 0-1e10")] {
            #expect { _ = try JobTrace.read(bad) } throws: { "\($0)".contains(says) }
        }
    }

    /// The simulator and the manager decide the same on the same state: for every bundled
    /// scheduler, with preemption, backfill and a pending timeout, the manager's pass over a
    /// database holding that state and the simulator's pass over its in-memory copy place the
    /// same sessions on the same agents, keep the same ones waiting, and cancel, preempt and
    /// backfill the same ones.
    @Test(arguments: Backend.allCases)
    func simulatorAndManagerDecideTheSameOnTheSameState(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        try store.database.withConnection { try $0.execute("UPDATE resource_policies SET max_concurrent_sessions = 0") }
        for i in 0..<4 { _ = try store.recordHeartbeat(StoreFixtures.heartbeat("a\(i)", cpu: 8)) }
        let t0: Int64 = 1_800_000_000_000_000
        let seconds = Double(t0 / 1_000_000)
        // user, cpu, priority, time limit, arrival (s before t0); the first three run.
        let rows: [(String, Double, Int, Double?, Double)] = [
            ("u1", 4, 10, 3600, 700), ("u2", 8, 10, nil, 1300), ("u3", 2, 10, 1800, 200),
            ("u1", 8, 10, nil, 500), ("u2", 2, 50, 600, 400), ("u3", 4, 10, 7200, 300), ("u2", 1, 10, nil, 200),
            ("u1", 6, 90, nil, 100), ("u3", 16, 10, nil, 90), ("u2", 1, 10, 300, 50), ("u1", 2, 10, 900, 40),
        ]
        let jobs = rows.map { TraceJob(arrival: seconds - $0.4, user: $0.0, project: "p", cpu: $0.1, memGiB: 1, runtime: 60, priority: $0.2, timeLimit: $0.3) }
        let running: [(job: Int, agent: Int, start: Int64)] = [(0, 0, t0 - 600_000_000), (1, 1, t0 - 1_200_000_000), (2, 2, t0 - 100_000_000)]

        // The same state in the database: users, sessions, placements, usage.
        var keys: [String: (key: String, user: String)] = ["u1": (admin.accessKey, try #require(try store.user(email: admin.email)).id)]
        for name in ["u2", "u3"] {
            let user = try store.createUser(email: "\(name)@example.com", password: "same-state-password", passwordRounds: 1000)
            keys[name] = (try store.createKeypair(userID: user.id).accessKey, user.id)
        }
        for (i, job) in jobs.enumerated() {
            var spec = try StoreFixtures.sessionSpec(store, admin, name: "j\(i)", cpu: Decimal(job.cpu), accessKey: keys[job.user]!.key)
            (spec.userID, spec.priority, spec.type, spec.timeLimit) = (keys[job.user]!.user, job.priority, "batch", job.timeLimit.map { Int64($0) })
            let session = try store.createSession(spec, now: Int64(job.arrival * 1_000_000))
            if let run = running.first(where: { $0.job == i }) {
                let kernels = try #require(try store.pendingKernelIDs(resourceGroup: "default")[session.id])
                #expect(try store.reserve(session: session.id, placements: kernels.map { KernelPlacement(kernelID: $0, agentID: "a\(run.agent)") }, now: run.start))
                try store.transition(session: session.id, to: .running, now: run.start)
            }
        }
        let project = try #require(try store.projects().first).id
        var simulatedUsage: [FairShareAssociation: Double] = [:]
        for (name, usage) in [("u1", 9000.0), ("u2", 3000.0)] {
            simulatedUsage[FairShareAssociation(domain: "default", projectID: "p", userID: name)] = usage
            try store.database.withConnection {
                try $0.execute("INSERT INTO fairshare_usage (resource_group, domain_name, project_id, user_id, usage_milli, updated_at) VALUES ('default', 'default', $1, $2, $3, $4)",
                               [.text(project), .text(keys[name]!.user), .int(Int64(usage * 1000)), .int(t0)])
            }
        }
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let manager = SessionScheduler(store: store, plugins: plugins)
        let pending = Array(3..<jobs.count)
        for scheduler in ["fifo", "lifo", "drf", "fairshare"] {
            for options in [#"{}"#, #"{"preemption": true}"#, #"{"backfill": true}"#, #"{"preemption": true, "backfill": true, "pending_timeout": 450}"#] {
                var changes = ResourceGroupChanges()
                (changes.scheduler, changes.schedulerOptions) = (scheduler, options)
                try store.updateResourceGroup(name: "default", changes)
                let group = try #require(try store.resourceGroups().first { $0.name == "default" })
                let snapshot = try manager.preparedSnapshot(group, now: t0)
                let (picker, selector) = try manager.plugins(for: group)
                let decided = try SessionScheduler.plan(snapshot, scheduler: picker, selector: selector)
                let names = Dictionary(uniqueKeysWithValues: snapshot.pending.map { ($0.id, $0.name) } + snapshot.holders.map { ($0.sessionID, $0.sessionName) })

                var config = SimulationConfig()
                (config.agents, config.agentCPU, config.agentMemGiB, config.scheduler) = (4, 8, 100, scheduler)
                config.options = try SchedulerOptions(json: options)
                let simulated = try SchedulingSimulator(config: config, plugins: plugins).plan(jobs: jobs, now: t0, pending: pending, running: running, usage: simulatedUsage)

                let label = "\(scheduler) \(options)"
                #expect(decided.reservations.map { "\(names[$0.session]!)@\($0.placements.map(\.agentID))" } == simulated.reservations.map { "\($0.session)@\($0.placements.map(\.agentID))" }, "\(label)")
                #expect(Set(decided.waiting.map { names[$0.session]! }) == Set(simulated.waiting.map(\.session)), "\(label)")
                #expect(decided.cancellations.map { names[$0.session]! } == simulated.cancellations.map(\.session), "\(label)")
                #expect(decided.preemptions.map { names[$0.session]! } == simulated.preemptions.map(\.session), "\(label)")
                #expect(decided.backfilled.map { names[$0]! } == simulated.backfilled, "\(label)")
                #expect(decided.headReservation.map { "\(names[$0.session]!) \($0.agent ?? "-") \($0.start ?? 0)" } ==
                        simulated.headReservation.map { "\($0.session) \($0.agent ?? "-") \($0.start ?? 0)" }, "\(label)")
                #expect(!decided.reservations.isEmpty || !decided.preemptions.isEmpty, "\(label): the state leaves something to decide")
            }
        }
    }
}
