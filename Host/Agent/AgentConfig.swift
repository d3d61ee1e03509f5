import AgentResources
import ConfigFile
import Foundation
import PluginHost

/// The agent role's configuration (`[agent]` of its TOML file; `[plugins]` is read by the
/// plugin host). Every key has a default that works on one machine.
///
/// ```toml
/// [agent]
/// id = "node-1"                         # default: the host name
/// manager = "http://127.0.0.1:8091"
/// cluster_secret = "..."                # the manager's cluster secret
/// resource_group = "default"
/// listen = "127.0.0.1:6001"             # RPC server for the manager
/// advertise = "http://10.0.0.5:6001"    # how the manager reaches it (default: http://<listen>)
/// scratch_dir = "/var/lib/hangar/scratch"
/// engine_socket = "/run/docker.sock"
/// reserved_cpu = 0
/// reserved_mem = "1G"
/// affinity_policy = "interleaved"       # or "prefer-single-node"
/// allocation_strategy = "evenly"        # or "fill"
/// heartbeat_interval = 5
/// orphan_grace = 60                     # seconds before unadoptable containers are removed
/// runner_path = "/usr/local/lib/hangar/hangar-runner"  # default: next to hangard, then there
/// ```
public struct AgentConfig: Sendable {
    public var id: String = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "agent"
    public var managerURL: String = "http://127.0.0.1:8091"
    /// Several managers on one PostgreSQL (`managers`): heartbeats go to the one that answered
    /// last and fail over to the next. Empty: `managerURL` alone.
    public var managerURLs: [String] = []
    public var clusterSecret: String = ""
    public var resourceGroup: String = "default"
    public var host: String = "127.0.0.1"
    public var port: Int = 6001
    public var advertise: String?
    public var scratchDirectory: String = "/var/lib/hangar/scratch"
    public var engineSocket: String = "/run/docker.sock"
    public var reservedCores: Int = 0
    public var reservedMemory: Int64 = 0
    public var affinityPolicy: AffinityPolicy = .interleaved
    public var strategy: AllocationStrategy = .evenly
    public var heartbeatInterval: Double = 5
    /// How long starting a kernel's service may take before its port must accept connections
    /// (`service_start_timeout`; Backend.AI's 5-10 s are too short for Jupyter on a busy node).
    public var serviceStartTimeout: Double = 60
    /// Seconds before labelled containers that cannot be re-adopted are removed.
    public var orphanGrace: Double = 60
    /// The static in-container runner; nil: found next to the executable or in /usr/local/lib/hangar.
    public var runnerPath: String?
    /// Ulimits every container that sets any gets, for engines (podman) that drop their own
    /// configured defaults once a container names one: e.g. ["nofile=10000:10000"].
    public var defaultUlimits: [ContainerEdits.Ulimit] = []

    /// `[sandbox]`: the jail, the CPU-count hook and LXCFS (on by default).
    public var sandbox = SandboxSettings()

    public init() {}

    /// The runner binary to use: the configured one, else `hangar-runner` next to this
    /// executable, else /usr/local/lib/hangar/hangar-runner; nil when there is none.
    public var resolvedRunnerPath: String? {
        if let runnerPath { return runnerPath }
        let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path + "/hangar-runner"
        return [beside, "/usr/local/lib/hangar/hangar-runner"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The URL the manager calls back.
    public var advertisedAddress: String { advertise ?? "http://\(host):\(port)" }

    /// Reads `[agent]`.
    /// - Throws: `ConfigFileError` naming the file, the key and the expected type.
    public static func load(_ file: ConfigFile) throws -> AgentConfig {
        var c = AgentConfig()
        let s = try file.section("agent")
        try s.checkKeys([
            "id": "string", "manager": "URL string", "managers": "array of URL strings (managers sharing one PostgreSQL)", "cluster_secret": "string", "resource_group": "string", "listen": "string host:port",
            "advertise": "URL string", "scratch_dir": "string", "engine_socket": "string", "reserved_cpu": "integer", "reserved_mem": "size",
            "affinity_policy": "\"interleaved\" or \"prefer-single-node\"", "allocation_strategy": "\"evenly\" or \"fill\"",
            "heartbeat_interval": "number of seconds", "orphan_grace": "number of seconds", "runner_path": "string (file path)",
            "default_ulimits": "array of \"name=soft:hard\" strings",
        ])
        c.id = try s.string("id", default: c.id)
        c.managerURL = try s.string("manager", default: c.managerURL)
        c.managerURLs = try s.strings("managers", default: [])
        for url in c.managerURLs where URL(string: url)?.host == nil {
            throw ConfigFileError(file: file.path, key: "agent.managers", "'\(url)' is not a URL such as \"http://10.0.0.5:8091\"")
        }
        if let first = c.managerURLs.first { c.managerURL = first }
        c.clusterSecret = try s.string("cluster_secret", default: c.clusterSecret)
        c.resourceGroup = try s.string("resource_group", default: c.resourceGroup)
        (c.host, c.port) = try s.hostPort("listen", default: c.host, c.port)
        c.advertise = try s.optionalString("advertise")
        c.scratchDirectory = try s.string("scratch_dir", default: c.scratchDirectory)
        c.engineSocket = try s.string("engine_socket", default: c.engineSocket)
        c.reservedCores = Int(try s.int("reserved_cpu", default: 0, range: 0...4096))
        c.reservedMemory = try s.bytes("reserved_mem", default: 0)
        let policy = try s.string("affinity_policy", default: c.affinityPolicy.rawValue)
        guard let p = AffinityPolicy(rawValue: policy) else {
            throw ConfigFileError(file: file.path, key: "agent.affinity_policy", "expected \"interleaved\" or \"prefer-single-node\", found \"\(policy)\"")
        }
        c.affinityPolicy = p
        let strategy = try s.string("allocation_strategy", default: c.strategy.rawValue)
        guard let st = AllocationStrategy(rawValue: strategy) else {
            throw ConfigFileError(file: file.path, key: "agent.allocation_strategy", "expected \"evenly\" or \"fill\", found \"\(strategy)\"")
        }
        c.strategy = st
        c.heartbeatInterval = try s.double("heartbeat_interval", default: c.heartbeatInterval, range: 0.1...3600)
        c.serviceStartTimeout = try s.double("service_start_timeout", default: c.serviceStartTimeout, range: 1...3600)
        c.orphanGrace = try s.double("orphan_grace", default: c.orphanGrace, range: 0...86_400)
        for text in try s.strings("default_ulimits", default: []) {
            guard let ulimit = ContainerEdits.Ulimit(text) else {
                throw ConfigFileError(file: file.path, key: "agent.default_ulimits", "expected \"name=soft:hard\" (e.g. \"nofile=10000:10000\", -1 for unlimited), found \"\(text)\"")
            }
            c.defaultUlimits.append(ulimit)
        }
        if let path = try s.optionalString("runner_path") {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw ConfigFileError(file: file.path, key: "agent.runner_path", "\"\(path)\" is not an executable file; build it with `swift build` (product hangar-runner)")
            }
            c.runnerPath = path
        }
        c.sandbox = try SandboxSettings.load(file)
        return c
    }
}
