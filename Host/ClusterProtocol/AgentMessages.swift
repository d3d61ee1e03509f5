import Foundation

/// The manager ↔ agent contract, shared by both sides. Agents reach the manager over HTTP
/// with `Authorization: Bearer <cluster secret>`; every field an agent reports is about the
/// agent's own host, and `address` is where the manager calls it back, so an agent behind
/// its own address on another host works exactly like a local one.
public enum AgentAPI {
    /// POST: register or heartbeat (the same message; the first one registers).
    public static let heartbeatPath = "/internal/agents/heartbeat"
    /// The header carrying the cluster secret.
    public static let authorizationScheme = "Bearer"
}

/// A device an accelerator plugin reported.
public struct DeviceReport: Codable, Sendable, Equatable {
    /// Plugin (device key) that owns the device, e.g. "cuda".
    public var plugin: String
    public var id: String
    public var model: String
    public var memoryBytes: UInt64
    public var processingUnits: UInt32
    public var numaNode: Int32?
    public var health: String
    /// Facts of plugin ABI 1.2, absent when the plugin does not report them (optional, so
    /// older agents' heartbeats still decode and newer fields are ignored by older managers).
    public var healthReason: String?
    public var firmwareVersion: String?
    public var boardID: String?
    public var linkSpeed: String?
    /// Host CPUs nearest the device (a Linux cpulist).
    public var cpuAffinity: String?
    /// The device this one is a partition of.
    public var parentDeviceID: String?
    /// Further facts as the plugin reported them (one JSON object).
    public var extraInfoJSON: String?

    public init(plugin: String, id: String, model: String, memoryBytes: UInt64, processingUnits: UInt32, numaNode: Int32?, health: String,
                healthReason: String? = nil, firmwareVersion: String? = nil, boardID: String? = nil, linkSpeed: String? = nil,
                cpuAffinity: String? = nil, parentDeviceID: String? = nil, extraInfoJSON: String? = nil) {
        self.plugin = plugin
        self.id = id
        self.model = model
        self.memoryBytes = memoryBytes
        self.processingUnits = processingUnits
        self.numaNode = numaNode
        self.health = health
        self.healthReason = healthReason
        self.firmwareVersion = firmwareVersion
        self.boardID = boardID
        self.linkSpeed = linkSpeed
        self.cpuAffinity = cpuAffinity
        self.parentDeviceID = parentDeviceID
        self.extraInfoJSON = extraInfoJSON
    }
}

/// An accelerator plugin loaded on the agent.
public struct PluginReport: Codable, Sendable, Equatable {
    public var name: String
    public var version: String
    public var deviceKey: String
    public init(name: String, version: String, deviceKey: String) {
        self.name = name
        self.version = version
        self.deviceKey = deviceKey
    }
}

/// An image present on the agent's container engine.
public struct ImageReport: Codable, Sendable, Equatable {
    public var name: String
    public var tag: String
    public var digest: String
    public var architecture: String
    public var sizeBytes: Int64
    /// The image's Backend.AI labels (`ai.backend.*`: kernelspec, runtime, service ports,
    /// resource minimums); absent from agents older than this field.
    public var labels: [String: String]?
    public init(name: String, tag: String, digest: String, architecture: String, sizeBytes: Int64, labels: [String: String]? = nil) {
        self.name = name
        self.tag = tag
        self.digest = digest
        self.architecture = architecture
        self.sizeBytes = sizeBytes
        self.labels = labels
    }
}

/// Utilisation of one kernel's container.
public struct KernelStats: Codable, Sendable, Equatable {
    public var kernelID: String
    /// CPU time used since the container started.
    public var cpuUsedNanoseconds: UInt64
    public var memoryBytes: UInt64
    public var memoryLimitBytes: UInt64
    public var ioReadBytes: UInt64
    public var ioWriteBytes: UInt64
    public var networkRxBytes: UInt64
    public var networkTxBytes: UInt64

    public init(kernelID: String, cpuUsedNanoseconds: UInt64, memoryBytes: UInt64, memoryLimitBytes: UInt64,
                ioReadBytes: UInt64, ioWriteBytes: UInt64, networkRxBytes: UInt64, networkTxBytes: UInt64) {
        self.kernelID = kernelID
        self.cpuUsedNanoseconds = cpuUsedNanoseconds
        self.memoryBytes = memoryBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.ioReadBytes = ioReadBytes
        self.ioWriteBytes = ioWriteBytes
        self.networkRxBytes = networkRxBytes
        self.networkTxBytes = networkTxBytes
    }
}

/// A kernel whose container has ended (including while the agent was down).
public struct KernelExitReport: Codable, Sendable, Equatable {
    public var kernelID: String
    public var exitCode: Int?
    public var oomKilled: Bool
    public init(kernelID: String, exitCode: Int?, oomKilled: Bool) {
        self.kernelID = kernelID
        self.exitCode = exitCode
        self.oomKilled = oomKilled
    }
}

/// One measurement from an accelerator plugin (node-, device- or container-level).
public struct MeasureReport: Codable, Sendable, Equatable {
    /// Device key of the plugin.
    public var plugin: String
    public var key: String
    public var deviceID: String?
    /// The kernel the measurement belongs to, for per-container measures.
    public var kernelID: String?
    public var current: Double
    public var capacity: Double
    /// The plugin's unit ("count", "bytes", "percent", "bytesPerSecond", "celsius", "watts",
    /// "joules", "hertz") and kind ("gauge" or "counter"); absent from agents before ABI 1.2.
    public var unit: String?
    public var kind: String?

    public init(plugin: String, key: String, deviceID: String?, kernelID: String?, current: Double, capacity: Double,
                unit: String? = nil, kind: String? = nil) {
        self.plugin = plugin
        self.key = key
        self.deviceID = deviceID
        self.kernelID = kernelID
        self.current = current
        self.capacity = capacity
        self.unit = unit
        self.kind = kind
    }
}

/// The version of the messages in this module. A role sends it where a peer must know what
/// it speaks (the heartbeat); additions that older peers can ignore keep the version, changes
/// they would misread raise it.
public enum ClusterProtocolVersion {
    /// What this build speaks and understands.
    public static let current = 1
}

/// What an agent sends every few seconds (the first one registers it).
public struct AgentHeartbeat: Codable, Sendable, Equatable {
    /// Stable id chosen by the agent (its config, or the host name): 1-64 of [A-Za-z0-9._-].
    public var agentID: String
    /// Base URL of the agent's RPC server as the manager must reach it, e.g. http://10.0.0.5:6001.
    public var address: String
    public var resourceGroup: String
    /// "x86_64", "aarch64", ...
    public var architecture: String
    /// Hangar version of the agent.
    public var version: String
    /// Total capacity per slot, after reserved amounts.
    public var capacity: ResourceSlots
    /// Slot name to slot type ("count", "bytes", "unique").
    public var slotTypes: [String: String]
    public var devices: [DeviceReport]
    public var plugins: [PluginReport]
    /// Kernel ids with a live container on the agent.
    public var runningKernels: [String]
    public var images: [ImageReport]
    /// Per-kernel utilisation (optional so older agents still parse).
    public var kernelStats: [KernelStats]?
    /// Accelerator plugins' node, device and per-kernel measurements.
    public var measures: [MeasureReport]?
    /// Kernels whose containers have exited and await the manager's destroy call.
    public var terminatedKernels: [KernelExitReport]?
    /// The cluster protocol the agent speaks (absent: an agent from before versioning, 1).
    public var protocolVersion: Int?
    /// Calls that kernels in sandbox watch mode made and the policy would deny, since the
    /// last heartbeat.
    public var sandboxReports: [SandboxReport]?

    public init(agentID: String, address: String, resourceGroup: String, architecture: String, version: String,
                capacity: ResourceSlots, slotTypes: [String: String], devices: [DeviceReport] = [], plugins: [PluginReport] = [],
                runningKernels: [String] = [], images: [ImageReport] = [], kernelStats: [KernelStats]? = nil,
                measures: [MeasureReport]? = nil, terminatedKernels: [KernelExitReport]? = nil,
                protocolVersion: Int? = ClusterProtocolVersion.current, sandboxReports: [SandboxReport]? = nil) {
        self.agentID = agentID
        self.address = address
        self.resourceGroup = resourceGroup
        self.architecture = architecture
        self.version = version
        self.capacity = capacity
        self.slotTypes = slotTypes
        self.devices = devices
        self.plugins = plugins
        self.runningKernels = runningKernels
        self.images = images
        self.kernelStats = kernelStats
        self.measures = measures
        self.terminatedKernels = terminatedKernels
        self.protocolVersion = protocolVersion
        self.sandboxReports = sandboxReports
    }

    /// Problems that make the message unusable, each naming the field.
    public func validationErrors() -> [String] {
        var problems: [String] = []
        let idOK = (1...64).contains(agentID.count) && agentID.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        if !idOK { problems.append("agentID must be 1-64 characters of letters, digits, '.', '_' and '-'") }
        if let url = URL(string: address), ["http", "https"].contains(url.scheme ?? ""), url.host != nil {} else {
            problems.append("address must be the agent's base URL, e.g. http://10.0.0.5:6001")
        }
        if resourceGroup.isEmpty { problems.append("resourceGroup must not be empty") }
        if architecture.isEmpty { problems.append("architecture must not be empty") }
        if let protocolVersion, protocolVersion > ClusterProtocolVersion.current {
            problems.append("protocolVersion \(protocolVersion) is newer than this manager understands (up to \(ClusterProtocolVersion.current)); upgrade the managers before the agents")
        }
        for (slot, amount) in capacity.amounts where amount < 0 { problems.append("capacity of '\(slot)' is negative") }
        for (slot, type) in slotTypes where !["count", "bytes", "unique"].contains(type) {
            problems.append("slotTypes['\(slot)'] must be count, bytes or unique")
        }
        return problems
    }
}

/// The manager's answer to a heartbeat.
public struct HeartbeatReply: Codable, Sendable, Equatable {
    /// "ALIVE".
    public var status: String
    public var schedulable: Bool
    /// True the first time the manager saw this agent (or after it was LOST).
    public var registered: Bool
    /// Seconds between heartbeats the manager expects.
    public var heartbeatInterval: Double
    public init(status: String, schedulable: Bool, registered: Bool, heartbeatInterval: Double) {
        self.status = status
        self.schedulable = schedulable
        self.registered = registered
        self.heartbeatInterval = heartbeatInterval
    }
}

/// One call a kernel in sandbox watch mode made that its policy would deny (it was allowed).
public struct SandboxReport: Codable, Sendable, Equatable {
    public var kernelID: String
    public var syscall: String
    public var pid: Int
    /// Seconds since the epoch, as the runner saw it.
    public var time: Int64

    public init(kernelID: String, syscall: String, pid: Int, time: Int64) {
        self.kernelID = kernelID
        self.syscall = syscall
        self.pid = pid
        self.time = time
    }
}
