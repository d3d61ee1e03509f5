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
                            ("arrival,user,cpu,runtime,priority\n0,a,1,1,101\n", "priority 0-100")] {
            #expect { _ = try JobTrace.read(bad) } throws: { "\($0)".contains(says) }
        }
    }
}
