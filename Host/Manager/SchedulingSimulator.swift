import ClusterProtocol
import ConfigFile
import Foundation
import PluginHost
import StateStore

/// One job of a trace: when it arrives, whose it is, what it asks for, how long it runs.
public struct TraceJob: Sendable, Equatable, Codable {
    /// Seconds from the start of the trace.
    public var arrival: Double
    public var user: String
    public var project: String
    public var domain: String
    public var cpu: Double
    public var memGiB: Double
    /// Accelerator devices (`cuda.device`).
    public var gpu: Double
    /// Seconds it runs once started.
    public var runtime: Double
    /// 0-100, default 10.
    public var priority: Int
    /// Seconds the user declared it needs at most (Slurm's --time); nil: none.
    public var timeLimit: Double?

    public init(arrival: Double, user: String, project: String, domain: String = "default", cpu: Double, memGiB: Double = 1, gpu: Double = 0,
                runtime: Double, priority: Int = 10, timeLimit: Double? = nil) {
        (self.arrival, self.user, self.project, self.domain, self.cpu, self.memGiB) = (arrival, user, project, domain, cpu, memGiB)
        (self.gpu, self.runtime, self.priority, self.timeLimit) = (gpu, runtime, priority, timeLimit)
    }

    enum CodingKeys: String, CodingKey {
        case arrival, user, project, domain, cpu, gpu, runtime, priority
        case memGiB = "mem_gib"
        case timeLimit = "time_limit"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(arrival: try c.decode(Double.self, forKey: .arrival), user: try c.decode(String.self, forKey: .user),
                  project: try c.decodeIfPresent(String.self, forKey: .project) ?? "default", domain: try c.decodeIfPresent(String.self, forKey: .domain) ?? "default",
                  cpu: try c.decode(Double.self, forKey: .cpu), memGiB: try c.decodeIfPresent(Double.self, forKey: .memGiB) ?? 1,
                  gpu: try c.decodeIfPresent(Double.self, forKey: .gpu) ?? 0, runtime: try c.decode(Double.self, forKey: .runtime),
                  priority: try c.decodeIfPresent(Int.self, forKey: .priority) ?? 10, timeLimit: try c.decodeIfPresent(Double.self, forKey: .timeLimit))
    }
}

/// Job traces: JSON Lines (one object per line with the keys below) or CSV with a header
/// naming them, any order: `arrival,user,project,domain,cpu,mem_gib,gpu,runtime,priority,time_limit`
/// (arrival and runtime in seconds; project, domain, mem_gib, gpu, priority, time_limit optional).
public enum JobTrace {
    /// A trace that cannot be read, with the line and what is wrong.
    public struct ReadError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func read(_ text: String) throws -> [TraceJob] {
        var jobs: [TraceJob] = []
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.enumerated().filter { !$0.element.isEmpty && !$0.element.hasPrefix("#") }
        guard let first = lines.first else { return [] }
        if first.element.hasPrefix("{") {
            for (number, line) in lines {
                do {
                    jobs.append(try JSONDecoder().decode(TraceJob.self, from: Data(line.utf8)))
                } catch {
                    throw ReadError(description: "trace line \(number + 1): \(error) — each line is a JSON object with arrival, user, cpu, runtime (and optionally project, domain, mem_gib, gpu, priority, time_limit)")
                }
            }
        } else {
            let header = first.element.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for required in ["arrival", "user", "cpu", "runtime"] where !header.contains(required) {
                throw ReadError(description: "the CSV header lacks '\(required)'; it names arrival, user, cpu, runtime and optionally project, domain, mem_gib, gpu, priority, time_limit")
            }
            for (lineNumber, line) in lines.dropFirst() {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard fields.count == header.count else { throw ReadError(description: "trace line \(lineNumber + 1): \(fields.count) fields, the header has \(header.count)") }
                let row = Dictionary(uniqueKeysWithValues: zip(header, fields))
                func number(_ key: String) throws -> Double? {
                    guard let text = row[key], !text.isEmpty else { return nil }
                    guard let value = Double(text), value.isFinite, value >= 0 else { throw ReadError(description: "trace line \(lineNumber + 1): \(key) '\(text)' is not a number >= 0") }
                    return value
                }
                guard let arrival = try number("arrival"), let cpu = try number("cpu"), let runtime = try number("runtime"), let user = row["user"], !user.isEmpty else {
                    throw ReadError(description: "trace line \(lineNumber + 1): arrival, user, cpu and runtime are required")
                }
                jobs.append(TraceJob(arrival: arrival, user: user, project: row["project"].flatMap { $0.isEmpty ? nil : $0 } ?? "default",
                                     domain: row["domain"].flatMap { $0.isEmpty ? nil : $0 } ?? "default", cpu: cpu, memGiB: try number("mem_gib") ?? 1,
                                     gpu: try number("gpu") ?? 0, runtime: runtime, priority: Int(try number("priority") ?? 10), timeLimit: try number("time_limit")))
            }
        }
        // Times become microseconds: bounded (about 300 years) so that nothing overflows.
        for (i, job) in jobs.enumerated() where job.runtime <= 0 || job.cpu <= 0 || !(0...100).contains(job.priority)
            || ![job.arrival, job.runtime, job.timeLimit ?? 0, job.cpu, job.memGiB, job.gpu].allSatisfy({ (0...1e10).contains($0) }) {
            throw ReadError(description: "job \(i + 1): cpu and runtime must be > 0, priority 0-100, and every number 0-1e10 (seconds, cores, GiB)")
        }
        return jobs
    }

    public static func jsonLines(_ jobs: [TraceJob]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return jobs.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }.joined(separator: "\n") + "\n"
    }

    /// A synthetic trace: bursty arrivals (exponential gaps, one in five drawn at ten times the
    /// rate of the others, so jobs come in clumps; the mean gap is 1.64 × `meanInterarrival`),
    /// heavy-tailed runtimes (log-normal, median `medianRuntime`, σ 1.5, capped at 50× the
    /// median; mean ≈ 3 × the median), sizes of 1, 2, 4 or 8 cores (mean 2.5), 10 % at
    /// priority 50, 70 % with a time limit of 1.5 × the runtime; users drawn with the given
    /// weights. The same seed gives the same trace.
    public static func synthetic(jobs count: Int, users: [(user: String, project: String, weight: Double)], meanInterarrival: Double,
                                 medianRuntime: Double, seed: UInt64) -> [TraceJob] {
        var rng = SplitMix64(seed: seed)
        let totalWeight = users.reduce(0) { $0 + $1.weight }
        var t = 0.0
        var jobs: [TraceJob] = []
        jobs.reserveCapacity(count)
        for _ in 0..<count {
            let burst = rng.unit() < 0.2
            let rate = (burst ? 5.0 : 0.5) / meanInterarrival
            t += -log(max(rng.unit(), 1e-12)) / rate
            var pick = rng.unit() * totalWeight
            var owner = users[users.count - 1]
            for u in users {
                pick -= u.weight
                if pick <= 0 { owner = u; break }
            }
            // Box-Muller for the log-normal runtime.
            let z = sqrt(-2 * log(max(rng.unit(), 1e-12))) * cos(2 * Double.pi * rng.unit())
            let runtime = min(medianRuntime * exp(1.5 * z), medianRuntime * 50).rounded(.up)
            let sizes: [Double] = [1, 1, 1, 1, 2, 2, 4, 8]
            let cpu = sizes[Int(rng.next() % UInt64(sizes.count))]
            let priority = rng.unit() < 0.1 ? 50 : 10
            jobs.append(TraceJob(arrival: (t * 1000).rounded() / 1000, user: owner.user, project: owner.project, cpu: cpu, memGiB: cpu * 2,
                                 runtime: max(1, runtime), priority: priority, timeLimit: rng.unit() < 0.7 ? (runtime * 1.5).rounded(.up) : nil))
        }
        return jobs
    }
}

/// The cluster and policies a trace is replayed against.
public struct SimulationConfig: Sendable {
    public var agents = 1_000
    public var agentCPU: Double = 64
    public var agentMemGiB: Double = 256
    public var agentGPU: Double = 0
    public var scheduler = "fifo"
    public var selector = "concentrated"
    /// The scheduler plugin's configuration (JSON object).
    public var schedulerConfig = "{}"
    public var options = SchedulerOptions()
    /// Shares by level, keyed by the trace's domain, project and user names.
    public var shares: [FairShareLevel: [String: Double]] = [:]
    /// Seconds between scheduling passes (the manager's scheduling_interval).
    public var interval: Double = 10
    public init() {}
}

/// Wait-time percentiles, seconds.
public struct WaitStats: Sendable, Codable, Equatable {
    public var jobs: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var mean: Double

    static func of(_ waits: [Double]) -> WaitStats {
        guard !waits.isEmpty else { return WaitStats(jobs: 0, p50: 0, p90: 0, p99: 0, mean: 0) }
        let sorted = waits.sorted()
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))] }
        return WaitStats(jobs: sorted.count, p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: sorted.reduce(0, +) / Double(sorted.count))
    }
}

/// What a replay measured.
public struct SimulationReport: Sendable, Codable {
    public struct UserFigures: Sendable, Codable {
        public var waits: WaitStats
        /// Fraction of all weighted usage in the second half of the run.
        public var usageShare: Double
        /// The configured hierarchical share among the users of the trace.
        public var targetShare: Double
    }
    public var jobs: Int
    /// Sessions that started later than the reservation computed when they were first in
    /// line (and stayed first until they started), beyond one pass interval.
    public var headDelays: Int
    /// Backfilled sessions that had no time limit (must be 0).
    public var backfilledWithoutLimit: Int
    public var completed: Int
    public var cancelled: Int
    public var preempted: Int
    public var backfilled: Int
    public var passes: Int
    /// Seconds from the first arrival to the last end.
    public var makespan: Double
    /// Busy core-seconds over available core-seconds during the makespan.
    public var utilisation: Double
    public var waits: WaitStats
    public var perUser: [String: UserFigures]
    public var perPriority: [String: WaitStats]
    /// Largest |usage share - target share| over users, second half of the run.
    public var fairShareError: Double
    /// Jain's index over users' usage/target ratios (1 = perfectly fair).
    public var jainIndex: Double
    public var wallSeconds: Double
}

/// Replays a job trace through the real scheduler and selector plugins and the manager's own
/// pass (`SessionScheduler.plan`) on a virtual clock: a pass every `interval` seconds when
/// something arrived or ended, placements started at once, usage accounted and decayed as the
/// manager does, fair-share factors from `FairShare`.
public final class SchedulingSimulator {
    let config: SimulationConfig
    let scheduler: SchedulerPlugin
    let selector: AgentSelectorPlugin

    public init(config: SimulationConfig, plugins: PluginHost) throws {
        self.config = config
        scheduler = try plugins.makeScheduler(config.scheduler, config: ConfigValue(jsonText: config.schedulerConfig))
        selector = try plugins.makeAgentSelector(config.selector)
    }

    struct Running { var job: Int; var agent: Int; var start: Int64; var end: Int64; var counted: Int64 }

    public func run(_ trace: [TraceJob]) throws -> SimulationReport {
        let clock = DispatchTime.now().uptimeNanoseconds
        let jobs = trace.enumerated().sorted { ($0.element.arrival, $0.offset) < ($1.element.arrival, $1.offset) }.map(\.element)
        guard !jobs.isEmpty else { throw JobTrace.ReadError(description: "the trace has no jobs") }
        func micros(_ seconds: Double) -> Int64 { Int64((seconds * 1_000_000).rounded()) }
        var agents = idleAgents()
        let agentIndex = Dictionary(uniqueKeysWithValues: agents.enumerated().map { ($0.element.id, $0.offset) })
        let requested = jobs.map(Self.slots)
        let names = jobs.indices.map { "j\($0)" }
        let weights = requested.map { UsageMeter.weight($0, weights: config.options.usageWeights) }
        func association(_ j: TraceJob) -> FairShareAssociation { FairShareAssociation(domain: j.domain, projectID: j.project, userID: j.user) }

        var nextArrival = 0
        var pending: [Int] = []
        var running: [Int: Running] = [:]
        var usage: [FairShareAssociation: (value: Double, at: Int64)] = [:]
        var lateUsage: [String: Double] = [:]
        var waits = [Double](repeating: -1, count: jobs.count)
        var ends: [Int64] = []
        var busy = 0.0
        var (cancelled, preempted, passes, backfilled, headDelays, unlimitedBackfills) = (0, 0, 0, 0, 0, 0)
        // The session first in line and the start its reservation promised.
        var promise: (job: Int, start: Int64)?
        let start = micros(jobs[0].arrival)
        let halfLife = config.options.fairshareHalfLife
        let lastArrival = micros(jobs[jobs.count - 1].arrival)
        let step = max(1, micros(config.interval))
        var now = start
        var changed = false

        func account(_ r: inout Running, to t: Int64) {
            let until = min(t, r.end)
            guard until > r.counted else { return }
            let job = jobs[r.job]
            let added = weights[r.job] * Double(until - r.counted) / 1_000_000
            let key = association(job)
            let previous = usage[key] ?? (0, until)
            usage[key] = (UsageMeter.decayed(previous.value, from: previous.at, to: until, halfLife: halfLife) + added, until)
            // The second half of the arrivals' span is where shares are compared.
            if until > start + (lastArrival - start) / 2 {
                let from = max(r.counted, start + (lastArrival - start) / 2)
                lateUsage[job.user, default: 0] += weights[r.job] * Double(until - from) / 1_000_000
            }
            r.counted = until
        }
        func release(_ id: Int, at t: Int64) {
            guard var r = running.removeValue(forKey: id) else { return }
            account(&r, to: t)
            agents[r.agent].occupied = agents[r.agent].occupied - requested[id]
            for (slot, amount) in agents[r.agent].occupied.amounts where amount <= 0 { agents[r.agent].occupied.amounts[slot] = nil }
            busy += jobs[id].cpu * Double(min(t, r.end) - r.start) / 1_000_000
            ends.append(min(t, r.end))
        }

        while nextArrival < jobs.count || !pending.isEmpty || !running.isEmpty {
            // Arrivals and ends up to now.
            while nextArrival < jobs.count, micros(jobs[nextArrival].arrival) <= now {
                pending.append(nextArrival)
                nextArrival += 1
                changed = true
            }
            // In job order, not the dictionary's (which varies by process): usage sums, and so
            // fair-share ties, must come out the same in every run.
            for id in running.keys.sorted() where running[id]!.end <= now {
                release(id, at: running[id]!.end)
                changed = true
            }
            if changed && !pending.isEmpty {
                passes += 1
                for id in running.keys.sorted() { account(&running[id]!, to: now) }
                let snapshot = makeSnapshot(now: now, pending: pending, running: running, agents: agents, jobs: jobs, requested: requested, usage: usage, names: names)
                let plan = try SessionScheduler.plan(snapshot, scheduler: scheduler, selector: selector)
                var removed = Set<Int>()
                for (session, _) in plan.cancellations {
                    let id = Int(session.dropFirst())!
                    removed.insert(id)
                    cancelled += 1
                }
                for (session, _) in plan.preemptions {
                    let id = Int(session.dropFirst())!
                    release(id, at: now)
                    preempted += 1
                }
                backfilled += plan.backfilled.count
                unlimitedBackfills += plan.backfilled.filter { jobs[Int($0.dropFirst())!].timeLimit == nil }.count
                for (session, placements) in plan.reservations {
                    let id = Int(session.dropFirst())!
                    let agent = agentIndex[placements[0].agentID]!
                    agents[agent].occupied = agents[agent].occupied + requested[id]
                    // A job that would outrun its declared limit is ended at the limit.
                    let runs = min(jobs[id].runtime, jobs[id].timeLimit ?? .infinity)
                    running[id] = Running(job: id, agent: agent, start: now, end: now + micros(runs), counted: now)
                    if let p = promise, p.job == id {
                        if now > p.start + step { headDelays += 1 }
                        promise = nil
                    }
                    waits[id] = Double(now - micros(jobs[id].arrival)) / 1_000_000
                    removed.insert(id)
                }
                pending.removeAll { removed.contains($0) }
                // A new first-in-line session replaces the promise (a higher priority arrived);
                // the same one keeps its first, earliest promise.
                if let reservation = plan.headReservation, let start = reservation.start {
                    let id = Int(reservation.session.dropFirst())!
                    if promise?.job != id { promise = (id, start) }
                } else if let head = plan.headReservation, promise?.job != Int(head.session.dropFirst())! {
                    promise = nil
                }
                changed = !plan.preemptions.isEmpty
            } else {
                changed = false
            }
            // The next pass: one interval on, or later when nothing happens before then.
            var next = now + step
            if !changed {
                var event = Int64.max
                if nextArrival < jobs.count { event = min(event, micros(jobs[nextArrival].arrival)) }
                if let end = running.values.map(\.end).min() { event = min(event, end) }
                if config.options.pendingTimeout > 0, let oldest = pending.map({ micros(jobs[$0].arrival) }).min() {
                    event = min(event, oldest + micros(config.options.pendingTimeout) + 1)
                }
                if event == Int64.max { break }
                next = max(next, start + ((event - start + step - 1) / step) * step)
            }
            now = next
        }
        let makespan = Double((ends.max() ?? start) - start) / 1_000_000
        let started = waits.enumerated().filter { $0.element >= 0 }
        var perUser: [String: SimulationReport.UserFigures] = [:]
        let lateTotal = lateUsage.values.reduce(0, +)
        let everyone = Set(jobs.map(association))
        let target = FairShare.compute(associations: everyone, usage: [:], shares: config.shares)
        var targetByUser: [String: Double] = [:]
        for row in target.rows where row.level == .user { targetByUser[row.name, default: 0] += row.normalizedShares }
        for user in Set(jobs.map(\.user)).sorted() {
            let mine = started.filter { jobs[$0.offset].user == user }.map(\.element)
            perUser[user] = .init(waits: .of(mine), usageShare: lateTotal > 0 ? (lateUsage[user] ?? 0) / lateTotal : 0, targetShare: targetByUser[user] ?? 0)
        }
        var perPriority: [String: WaitStats] = [:]
        for priority in Set(jobs.map(\.priority)) {
            perPriority[String(priority)] = .of(started.filter { jobs[$0.offset].priority == priority }.map(\.element))
        }
        let ratios = perUser.values.filter { $0.targetShare > 0 }.map { $0.usageShare / $0.targetShare }
        let jain = ratios.isEmpty ? 1 : pow(ratios.reduce(0, +), 2) / (Double(ratios.count) * ratios.reduce(0) { $0 + $1 * $1 })
        return SimulationReport(
            jobs: jobs.count, headDelays: headDelays, backfilledWithoutLimit: unlimitedBackfills, completed: ends.count - preempted, cancelled: cancelled,
            preempted: preempted, backfilled: backfilled, passes: passes,
            makespan: makespan, utilisation: makespan > 0 ? busy / (config.agentCPU * Double(config.agents) * makespan) : 0,
            waits: .of(started.map(\.element)), perUser: perUser, perPriority: perPriority,
            fairShareError: perUser.values.map { abs($0.usageShare - $0.targetShare) }.max() ?? 0, jainIndex: jain,
            wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9)
    }

    /// What a job asks for, as a session's slots.
    static func slots(_ job: TraceJob) -> ResourceSlots {
        var s = ResourceSlots(["cpu": Decimal(job.cpu), "mem": Decimal(Int64(job.memGiB * Double(1 << 30)))])
        if job.gpu > 0 { s["cuda.device"] = Decimal(job.gpu) }
        return s
    }

    /// The configured agents, a0, a1, …, with nothing placed.
    func idleAgents() -> [AgentRecord] {
        var capacity = ResourceSlots(["cpu": Decimal(config.agentCPU), "mem": Decimal(Int64(config.agentMemGiB * Double(1 << 30)))])
        if config.agentGPU > 0 { capacity["cuda.device"] = Decimal(config.agentGPU) }
        let types = config.agentGPU > 0 ? #"{"cpu":"count","mem":"bytes","cuda.device":"count"}"# : #"{"cpu":"count","mem":"bytes"}"#
        return (0..<config.agents).map { AgentRecord(id: "a\($0)", capacity: capacity, slotTypes: types) }
    }

    /// One pass's decisions for a given state, as `run` makes them: `pending` and `running`
    /// index `jobs`, running ones placed on agent `agent` (0-based, agents a0, a1, …) since
    /// `start` (µs); `usage` per association, decayed to `now`.
    public func plan(jobs: [TraceJob], now: Int64, pending: [Int], running: [(job: Int, agent: Int, start: Int64)],
                     usage: [FairShareAssociation: Double] = [:]) throws -> SchedulingPlan {
        var agents = idleAgents()
        let requested = jobs.map(Self.slots)
        var state: [Int: Running] = [:]
        for r in running {
            agents[r.agent].occupied = agents[r.agent].occupied + requested[r.job]
            state[r.job] = Running(job: r.job, agent: r.agent, start: r.start, end: .max, counted: r.start)
        }
        let snapshot = makeSnapshot(now: now, pending: pending, running: state, agents: agents, jobs: jobs, requested: requested,
                                    usage: usage.mapValues { ($0, now) }, names: jobs.indices.map { "j\($0)" })
        return try SessionScheduler.plan(snapshot, scheduler: scheduler, selector: selector)
    }

    /// The snapshot the manager would read at `now` for this state.
    func makeSnapshot(now: Int64, pending: [Int], running: [Int: Running], agents: [AgentRecord], jobs: [TraceJob], requested: [ResourceSlots],
                      usage: [FairShareAssociation: (value: Double, at: Int64)], names: [String]) -> SchedulingSnapshot {
        let sessions = pending.map { id in
            SessionRecord(scheduling: names[id], name: names[id], accessKey: jobs[id].user, requested: requested[id], priority: jobs[id].priority,
                          createdAt: Int64((jobs[id].arrival * 1_000_000).rounded()), timeLimit: jobs[id].timeLimit.map { Int64($0.rounded(.up)) })
        }
        var snapshot = SchedulingSnapshot(resourceGroup: "default", agents: agents, pending: sessions,
                                          kernelIDs: Dictionary(uniqueKeysWithValues: pending.map { (names[$0], [names[$0] + "-k0"]) }),
                                          activeSessions: [:], sessionLimits: [:])
        snapshot.now = now
        snapshot.options = config.options
        snapshot.explainsWaits = false
        // Holders always (they are the owners' occupancy DRF weighs), in the manager's order:
        // by enqueue time, then name.
        snapshot.holders = running.values.sorted { a, b in
            jobs[a.job].arrival != jobs[b.job].arrival ? jobs[a.job].arrival < jobs[b.job].arrival : names[a.job] < names[b.job]
        }.map { r in
            var holder = SlotHolder(sessionName: names[r.job], accessKey: jobs[r.job].user, agentID: agents[r.agent].id, occupied: requested[r.job])
            (holder.sessionID, holder.priority, holder.status, holder.preemptible) = (names[r.job], jobs[r.job].priority, .running, true)
            holder.expectedEnd = jobs[r.job].timeLimit.map { r.start + Int64(($0.rounded(.up)) * 1_000_000) }
            return holder
        }
        if config.scheduler == "fairshare" {
            var decayed: [FairShareAssociation: Double] = [:]
            for (key, u) in usage { decayed[key] = UsageMeter.decayed(u.value, from: u.at, to: now, halfLife: config.options.fairshareHalfLife) }
            let associations = Set(pending.map { FairShareAssociation(domain: jobs[$0].domain, projectID: jobs[$0].project, userID: jobs[$0].user) })
            let report = FairShare.compute(associations: associations, usage: decayed, shares: config.shares)
            for id in pending {
                snapshot.fairshare[names[id]] = report.factors[FairShareAssociation(domain: jobs[id].domain, projectID: jobs[id].project, userID: jobs[id].user)] ?? 1
            }
        }
        return snapshot
    }
}
