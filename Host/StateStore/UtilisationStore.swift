import ClusterProtocol
import Foundation

/// One point of a kernel's or an agent's utilisation history.
public struct UtilisationSample: Codable, Sendable, Equatable {
    /// Microseconds since the epoch.
    public var at: Int64
    /// CPU use over the interval since the previous sample, in percent of one core (a kernel
    /// busy on two cores shows 200).
    public var cpuPercent: Double
    public var memoryBytes: UInt64
    /// The memory limit (a kernel's) or capacity (an agent's); 0 when unknown.
    public var memoryCapacityBytes: UInt64
    /// Cumulative counters at the sample (a rate is the difference of two samples).
    public var ioReadBytes: UInt64
    public var ioWriteBytes: UInt64
    public var networkRxBytes: UInt64
    public var networkTxBytes: UInt64
    /// The CPU time counter the percentage was computed from (nanoseconds).
    public var cpuUsedNanoseconds: UInt64
    /// Accelerator measures of the sample by "plugin.key" (device-level values summed):
    /// current and capacity in the plugin's unit.
    public var accelerators: [String: [Double]]

    public init(at: Int64, cpuPercent: Double, memoryBytes: UInt64, memoryCapacityBytes: UInt64, ioReadBytes: UInt64 = 0, ioWriteBytes: UInt64 = 0,
                networkRxBytes: UInt64 = 0, networkTxBytes: UInt64 = 0, cpuUsedNanoseconds: UInt64 = 0, accelerators: [String: [Double]] = [:]) {
        self.at = at
        self.cpuPercent = cpuPercent
        self.memoryBytes = memoryBytes
        self.memoryCapacityBytes = memoryCapacityBytes
        self.ioReadBytes = ioReadBytes
        self.ioWriteBytes = ioWriteBytes
        self.networkRxBytes = networkRxBytes
        self.networkTxBytes = networkTxBytes
        self.cpuUsedNanoseconds = cpuUsedNanoseconds
        self.accelerators = accelerators
    }
}

/// Utilisation history from heartbeats: a sample per kernel and per agent at most every
/// `sampleInterval` seconds, kept for `retention` seconds (an hour), in the database so every
/// manager serves the same history.
extension StateStore {
    public static let utilisationSampleInterval: Double = 10
    public static let utilisationRetention: Double = 3600

    /// Records the samples a heartbeat carries (called with it; cheap when no sample is due).
    public func recordUtilisation(agent: String, capacityMemory: UInt64, kernels: [KernelStats], measures: [MeasureReport],
                                  now: Int64 = Clock.nowMicros()) throws {
        try database.transaction { c in
            let interval = Int64(Self.utilisationSampleInterval * 1_000_000)
            let last = try c.query("SELECT data FROM utilisation_samples WHERE scope = 'agent' AND owner = $1 ORDER BY at DESC LIMIT 1", [.text(agent)])
                .first?.string("data").flatMap { try? JSONDecoder().decode(UtilisationSample.self, from: Data($0.utf8)) }
            guard last.map({ now - $0.at >= interval }) ?? true else { return }
            var agentSample = UtilisationSample(at: now, cpuPercent: 0, memoryBytes: 0, memoryCapacityBytes: capacityMemory)
            for stats in kernels {
                let previous = try c.query("SELECT data FROM utilisation_samples WHERE scope = 'kernel' AND owner = $1 ORDER BY at DESC LIMIT 1",
                                           [.text(stats.kernelID)]).first?.string("data")
                    .flatMap { try? JSONDecoder().decode(UtilisationSample.self, from: Data($0.utf8)) }
                var cpu = 0.0
                if let previous, now > previous.at, stats.cpuUsedNanoseconds >= previous.cpuUsedNanoseconds {
                    cpu = Double(stats.cpuUsedNanoseconds - previous.cpuUsedNanoseconds) / (Double(now - previous.at) * 1000) * 100
                }
                var accelerators: [String: [Double]] = [:]
                for measure in measures where measure.kernelID == stats.kernelID {
                    let key = "\(measure.plugin).\(measure.key)"
                    let sum = accelerators[key] ?? [0, 0]
                    accelerators[key] = [sum[0] + measure.current, sum[1] + measure.capacity]
                }
                let sample = UtilisationSample(at: now, cpuPercent: cpu, memoryBytes: stats.memoryBytes, memoryCapacityBytes: stats.memoryLimitBytes,
                                               ioReadBytes: stats.ioReadBytes, ioWriteBytes: stats.ioWriteBytes, networkRxBytes: stats.networkRxBytes,
                                               networkTxBytes: stats.networkTxBytes, cpuUsedNanoseconds: stats.cpuUsedNanoseconds, accelerators: accelerators)
                try c.execute("INSERT INTO utilisation_samples (scope, owner, at, data) VALUES ('kernel', $1, $2, $3) ON CONFLICT DO NOTHING",
                              [.text(stats.kernelID), .int(now), .text(String(decoding: try JSONEncoder().encode(sample), as: UTF8.self))])
                agentSample.cpuPercent += cpu
                agentSample.memoryBytes += stats.memoryBytes
                agentSample.ioReadBytes += stats.ioReadBytes
                agentSample.ioWriteBytes += stats.ioWriteBytes
                agentSample.networkRxBytes += stats.networkRxBytes
                agentSample.networkTxBytes += stats.networkTxBytes
            }
            for measure in measures where measure.kernelID == nil && measure.deviceID != nil {
                let key = "\(measure.plugin).\(measure.key)"
                let sum = agentSample.accelerators[key] ?? [0, 0]
                agentSample.accelerators[key] = [sum[0] + measure.current, sum[1] + measure.capacity]
            }
            try c.execute("INSERT INTO utilisation_samples (scope, owner, at, data) VALUES ('agent', $1, $2, $3) ON CONFLICT DO NOTHING",
                          [.text(agent), .int(now), .text(String(decoding: try JSONEncoder().encode(agentSample), as: UTF8.self))])
            try c.execute("DELETE FROM utilisation_samples WHERE at < $1", [.int(now - Int64(Self.utilisationRetention * 1_000_000))])
        }
    }

    /// The history of a kernel ("kernel") or an agent ("agent") since `since`, oldest first.
    public func utilisation(scope: String, owner: String, since: Int64 = Clock.nowMicros() - Int64(utilisationRetention * 1_000_000)) throws -> [UtilisationSample] {
        try database.withConnection { c in
            try c.query("SELECT data FROM utilisation_samples WHERE scope = $1 AND owner = $2 AND at >= $3 ORDER BY at",
                        [.text(scope), .text(owner), .int(since)])
                .compactMap { $0.string("data").flatMap { try? JSONDecoder().decode(UtilisationSample.self, from: Data($0.utf8)) } }
        }
    }

    /// The newest sample of a kernel or an agent, if any in the last hour.
    public func latestUtilisation(scope: String, owner: String) throws -> UtilisationSample? {
        try database.withConnection { c in
            try c.query("SELECT data FROM utilisation_samples WHERE scope = $1 AND owner = $2 ORDER BY at DESC LIMIT 1", [.text(scope), .text(owner)])
                .first?.string("data").flatMap { try? JSONDecoder().decode(UtilisationSample.self, from: Data($0.utf8)) }
        }
    }
}
