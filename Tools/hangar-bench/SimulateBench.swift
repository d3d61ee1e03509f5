import Foundation
import Manager
import PluginHost
import StateStore

/// `hangar-bench simulate`: replays a job trace (or a synthetic one) through the real
/// scheduler plugins and the manager's pass on a virtual clock, and prints what it measured.
///   --trace FILE (JSONL or CSV, see JobTrace) | --synthetic N [--users N] [--seed N] [--load X] [--write-trace FILE]
///   --agents N --agent-cpu N --scheduler NAME --selector NAME --scheduler-config JSON
///   --interval SECONDS --preemption --pending-timeout SECONDS --half-life SECONDS --shares user=N,... --json
func runSimulateBench(_ arguments: [String], pluginDir: String) throws {
    var config = SimulationConfig()
    var tracePath: String?, writePath: String?, synthetic: Int?
    var users = 8, seed: UInt64 = 1, json = false, load = 1.0
    var it = arguments.makeIterator()
    func value(_ flag: String) -> String {
        guard let v = it.next() else { FileHandle.standardError.write(Data("\(flag) needs a value\n".utf8)); exit(2) }
        return v
    }
    func number(_ flag: String) -> Double {
        let text = value(flag)
        guard let n = Double(text), n >= 0 else { FileHandle.standardError.write(Data("\(flag): '\(text)' is not a number >= 0\n".utf8)); exit(2) }
        return n
    }
    while let arg = it.next() {
        switch arg {
        case "--trace": tracePath = value(arg)
        case "--synthetic": synthetic = Int(number(arg))
        case "--users": users = max(1, Int(number(arg)))
        case "--seed": seed = UInt64(number(arg))
        case "--write-trace": writePath = value(arg)
        case "--agents": config.agents = max(1, Int(number(arg)))
        case "--agent-cpu": config.agentCPU = number(arg)
        case "--scheduler": config.scheduler = value(arg)
        case "--selector": config.selector = value(arg)
        case "--scheduler-config": config.schedulerConfig = value(arg)
        case "--interval": config.interval = max(0.001, number(arg))
        case "--preemption": config.options.preemption = true
        case "--backfill": config.options.backfill = true
        case "--pending-timeout": config.options.pendingTimeout = number(arg)
        case "--half-life": config.options.fairshareHalfLife = max(1, number(arg))
        case "--shares":
            for item in value(arg).split(separator: ",") {
                let parts = item.split(separator: "=")
                guard parts.count == 2, let n = Double(parts[1]) else { FileHandle.standardError.write(Data("--shares takes user=N,user=N\n".utf8)); exit(2) }
                config.shares[.user, default: [:]][String(parts[0])] = n
            }
        case "--load": load = max(0.01, number(arg))
        case "--json": json = true
        case "--plugin-dir": _ = value(arg)
        default:
            FileHandle.standardError.write(Data("simulate: unknown option \(arg)\n".utf8))
            exit(2)
        }
    }
    let jobs: [TraceJob]
    if let tracePath {
        jobs = try JobTrace.read(String(contentsOfFile: tracePath, encoding: .utf8))
    } else {
        let count = synthetic ?? 10_000
        // Offered load `load` × the cluster's cores: a job is 2.5 cores × ~3.08 × the median
        // runtime core-seconds on average, and the generator's mean gap is 1.64 × its parameter.
        let cores = Double(config.agents) * config.agentCPU
        let meanJob = 2.5 * 600 * exp(1.125)
        jobs = JobTrace.synthetic(jobs: count, users: (0..<users).map { ("user\($0)", "project\($0 % 2)", 1.0) },
                                  meanInterarrival: meanJob / (load * cores) / 1.64, medianRuntime: 600, seed: seed)
    }
    if let writePath { try JobTrace.jsonLines(jobs).write(toFile: writePath, atomically: true, encoding: .utf8) }
    let simulator = try SchedulingSimulator(config: config, plugins: try PluginHost(searchPaths: [pluginDir]))
    let report = try simulator.run(jobs)
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
        return
    }
    print("simulated \(report.jobs) jobs on \(config.agents) agents x \(Int(config.agentCPU)) cores, \(config.scheduler) + \(config.selector), pass every \(config.interval) s: \(report.passes) passes in \(String(format: "%.1f", report.wallSeconds)) s")
    print(String(format: "makespan %.0f s, utilisation %.1f %%, completed %d, cancelled %d, preempted %d, backfilled %d, first-in-line sessions started after their reservation %d",
                 report.makespan, report.utilisation * 100, report.completed, report.cancelled, report.preempted, report.backfilled, report.headDelays))
    print(String(format: "wait p50 %.0f s, p90 %.0f s, p99 %.0f s", report.waits.p50, report.waits.p90, report.waits.p99))
    for (priority, w) in report.perPriority.sorted(by: { Int($0.key)! > Int($1.key)! }) {
        print(String(format: "  priority %@: %d jobs, wait p50 %.0f s, p99 %.0f s", priority, w.jobs, w.p50, w.p99))
    }
    for (user, u) in report.perUser.sorted(by: { $0.key < $1.key }) {
        print(String(format: "  %@: wait p50 %.0f s p99 %.0f s, usage share %.3f (target %.3f)", user, u.waits.p50, u.waits.p99, u.usageShare, u.targetShare))
    }
    print(String(format: "fair-share error %.3f, Jain's index %.3f", report.fairShareError, report.jainIndex))
}
