import ConfigFile
import Foundation
import PluginHost
import StateStore

/// The manager role's configuration (`[manager]` and `[database]` of its TOML file). Every
/// key has a default that works on one machine.
///
/// ```toml
/// [manager]
/// listen = "127.0.0.1:8091"
/// data_dir = "/var/lib/hangar"
/// cluster_secret = "change-me"      # agents authenticate with it
/// agent_lost_timeout = 30           # seconds without a heartbeat before an agent is LOST
/// heartbeat_interval = 5            # seconds, told to agents (at most a third of agent_lost_timeout)
/// max_body_size = "1M"
/// [database]
/// url = "sqlite:/var/lib/hangar/manager.db"   # or postgresql://user@host:5432/hangar
/// ```
public struct ManagerConfig: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8091
    public var dataDirectory: String = "/var/lib/hangar"
    /// Empty: generated at first start and stored in the data directory.
    public var clusterSecret: String = ""
    public var agentLostTimeout: Double = 30
    public var heartbeatInterval: Double = 5
    /// What agents are told: `heartbeatInterval`, but at most a third of `agentLostTimeout`,
    /// so that a healthy agent is never declared lost between two of its heartbeats (a
    /// 2 s lost timeout with the default 5 s interval did exactly that).
    public var agentHeartbeatInterval: Double { min(heartbeatInterval, agentLostTimeout / 3) }
    public var maxBodyBytes: Int = 1 << 20
    /// nil: SQLite in the data directory.
    public var database: DatabaseLocation?
    /// Largest allowed clock skew of signed requests.
    public var maxClockSkew: Double = 15 * 60
    /// How long an authenticated keypair stays cached (deactivation takes effect within it).
    public var keypairCacheTTL: Double = 2
    /// Where the scheduler and agent-selector plugins are found (`[plugins] search_paths`).
    public var pluginSearchPaths: [String] = PluginHostConfig.defaultSearchPaths()
    /// Seconds between scheduling rounds (new sessions are also scheduled on the next round).
    public var schedulingInterval: Double = 1
    /// Seconds after which PostgreSQL drops a silent scheduling leader's connection, and with
    /// it the lead (`leader_timeout`): another manager takes over within about this long
    /// after the leader stops (crashed managers lose it at once, their connection closes).
    public var leaderTimeout: Double = 10
    /// How the scheduling leader reconciles the database with the agents
    /// (`reconcile_interval`, `reconcile_scheduled_after`, `reconcile_starting_after`,
    /// `reconcile_terminating_after`, seconds).
    public var reconcile = ReconcileLimits()
    /// Where cluster sessions' own networks take their /24s (`session_network_pool`).
    public var sessionNetworks = SessionNetworkPool()
    /// A listener that serves only `/metrics`, without authentication (`metrics_listen`, e.g.
    /// "127.0.0.1:9464": keep it on loopback or a monitoring network); nil: none.
    public var metricsListen: (host: String, port: Int)?
    /// A bearer token that lets `/metrics` be read on the API port (`metrics_token`); empty:
    /// the API port does not serve metrics to anyone.
    public var metricsToken: String = ""

    /// Storage proxies by name (`[storage-proxies.NAME] url, secret`).
    public var storageProxies: [String: StorageProxyLink] = [:]
    /// The vfolder host used when a request names none: "proxy:volume".
    public var defaultVFolderHost: String?
    /// Failed web logins per user before that login is refused for `window` seconds
    /// (`login_allowed_fail_count`, `login_block_time`: Backend.AI's 10 and 1,200 s).
    public var loginThrottleUser = LoginThrottle(limit: 10, window: 1200)
    /// Failed web logins per client address (`login_allowed_fail_count_per_address`): higher
    /// than per user, because many people may share one address behind a NAT.
    public var loginThrottleAddress = LoginThrottle(limit: 50, window: 1200)

    public init() {}

    /// Where state lives.
    public var resolvedDatabase: DatabaseLocation {
        database ?? .sqlite(path: (dataDirectory as NSString).appendingPathComponent("manager.db"))
    }

    /// Reads the `[manager]` and `[database]` sections; other sections are left to other roles.
    /// - Throws: `ConfigFileError` naming the file, the key and the expected type.
    public static func load(_ file: ConfigFile) throws -> ManagerConfig {
        var config = ManagerConfig()
        let manager = try file.section("manager")
        try manager.checkKeys([
            "listen": "string host:port", "data_dir": "string", "cluster_secret": "string", "agent_lost_timeout": "number of seconds",
            "heartbeat_interval": "number of seconds", "max_body_size": "size", "max_clock_skew": "number of seconds",
            "keypair_cache_ttl": "number of seconds", "scheduling_interval": "number of seconds", "leader_timeout": "number of seconds",
            "reconcile_interval": "number of seconds", "reconcile_scheduled_after": "number of seconds",
            "reconcile_starting_after": "number of seconds", "reconcile_terminating_after": "number of seconds",
            "default_vfolder_host": "string proxy:volume",
            "session_network_pool": "string IPv4 CIDR of /24 or larger (cluster sessions' networks, one /24 each)", "metrics_listen": "string host:port (metrics only, e.g. 127.0.0.1:9464)",
            "metrics_token": "string (bearer token for /metrics on the API port)",
            "login_allowed_fail_count": "integer (failed web logins per user before a block; 0: no limit)",
            "login_allowed_fail_count_per_address": "integer (failed web logins per client address before a block; 0: no limit)",
            "login_block_time": "number of seconds",
        ])
        (config.host, config.port) = try manager.hostPort("listen", default: config.host, config.port, ports: 1...65535)
        config.dataDirectory = try manager.string("data_dir", default: config.dataDirectory)
        config.clusterSecret = try manager.string("cluster_secret", default: "")
        config.agentLostTimeout = try manager.double("agent_lost_timeout", default: config.agentLostTimeout, range: 1...86_400)
        config.heartbeatInterval = try manager.double("heartbeat_interval", default: config.heartbeatInterval, range: 0.1...3600)
        config.maxBodyBytes = Int(try manager.bytes("max_body_size", default: Int64(config.maxBodyBytes)))
        config.maxClockSkew = try manager.double("max_clock_skew", default: config.maxClockSkew, range: 1...86_400)
        config.keypairCacheTTL = try manager.double("keypair_cache_ttl", default: config.keypairCacheTTL, range: 0...300)
        config.schedulingInterval = try manager.double("scheduling_interval", default: config.schedulingInterval, range: 0.05...3600)
        config.leaderTimeout = try manager.double("leader_timeout", default: config.leaderTimeout, range: 2...600)
        config.reconcile.interval = try manager.double("reconcile_interval", default: config.reconcile.interval, range: 1...86_400)
        config.reconcile.scheduled = try manager.double("reconcile_scheduled_after", default: config.reconcile.scheduled, range: 5...86_400)
        config.reconcile.starting = try manager.double("reconcile_starting_after", default: config.reconcile.starting, range: 30...604_800)
        config.reconcile.terminating = try manager.double("reconcile_terminating_after", default: config.reconcile.terminating, range: 10...86_400)
        config.defaultVFolderHost = try manager.optionalString("default_vfolder_host")
        if try manager.optionalString("metrics_listen") != nil {
            config.metricsListen = try manager.hostPort("metrics_listen", default: "127.0.0.1", 9464, ports: 1...65535)
        }
        config.metricsToken = try manager.string("metrics_token", default: "")
        if let pool = try manager.optionalString("session_network_pool") {
            guard let parsed = SessionNetworkPool(cidr: pool) else {
                throw ConfigFileError(file: file.path, key: "manager.session_network_pool", "'\(pool)' is not an IPv4 block of /24 or larger such as \"10.213.0.0/16\"")
            }
            config.sessionNetworks = parsed
        }
        let window = try manager.double("login_block_time", default: config.loginThrottleUser.window, range: 1...604_800)
        config.loginThrottleUser = LoginThrottle(limit: try manager.int("login_allowed_fail_count", default: config.loginThrottleUser.limit, range: 0...1_000_000),
                                                 window: window)
        config.loginThrottleAddress = LoginThrottle(limit: try manager.int("login_allowed_fail_count_per_address", default: config.loginThrottleAddress.limit,
                                                                           range: 0...1_000_000), window: window)
        let proxies = try file.section("storage-proxies")
        if case .table(let entries) = proxies.table {
            for (name, value) in entries {
                let section = ConfigSection(file: file.path, name: "storage-proxies.\(name)", table: value)
                try section.checkKeys(["url": "URL string of its API", "secret": "string shared with it"])
                guard let url = try section.optionalString("url"), let secret = try section.optionalString("secret") else {
                    throw ConfigFileError(file: file.path, key: "storage-proxies.\(name)", "needs url and secret")
                }
                config.storageProxies[name] = StorageProxyLink(name: name, url: url, secret: secret)
            }
        }
        let database = try file.section("database")
        try database.checkKeys(["url": "string: a SQLite path or postgresql://..."])
        if let url = try database.optionalString("url") {
            do throws(StoreError) {
                config.database = try DatabaseLocation(url)
            } catch {
                throw ConfigFileError(file: file.path, key: "database.url", error.message)
            }
        }
        return config
    }
}

/// How the manager reaches one storage proxy.
public struct StorageProxyLink: Sendable, Equatable {
    public var name: String
    public var url: String
    public var secret: String
    public init(name: String, url: String, secret: String) {
        self.name = name
        self.url = url
        self.secret = secret
    }
}

/// The block cluster sessions' networks come from: one /24 per live cluster session (at most
/// 512), kernels at .10, .11, ... of it. The default, 198.18.0.0/15 (512 networks), is the range RFC 2544
/// sets aside for benchmarks, which no site routes.
public struct SessionNetworkPool: Sendable, Equatable {
    /// The block's first address, host order.
    public var base: UInt32 = 0xC612_0000
    /// How many /24s it holds.
    public var count: Int = 512

    public init() {}

    /// "a.b.c.d/n" with n from 8 to 24 (the address is rounded down to the block).
    public init?(cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let bits = Int(parts[1]), (8...24).contains(bits), let address = Self.parse(String(parts[0])) else { return nil }
        let mask = ~UInt32(0) << (32 - bits)
        base = address & mask
        // At most 512 networks: the VXLAN id holds the network's number in 9 bits.
        count = min(1 << (24 - bits), 512)
    }

    static func parse(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return octets.reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func format(_ address: UInt32) -> String {
        [24, 16, 8, 0].map { String((address >> UInt32($0)) & 0xFF) }.joined(separator: ".")
    }

    /// The address of kernel `rank` in network `index`.
    public func kernelAddress(network index: Int, rank: Int) -> String {
        Self.format(base + UInt32(index) << 8 + UInt32(10 + rank))
    }
}
