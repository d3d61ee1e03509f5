import ConfigFile
import Foundation

/// The webserver role's settings (`[webserver]`).
public struct WebServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8090
    /// The manager's API, e.g. "http://127.0.0.1:8091" (`manager_url`).
    public var managerURL = "http://127.0.0.1:8091"
    /// Shared with the manager (its `cluster_secret`): login sessions are kept there.
    public var clusterSecret = ""
    /// The domain people log in to (`domain`).
    public var domain = "default"
    /// Seconds a login session lives without use (`session_ttl`, default 12 h).
    public var sessionTTL: Double = 12 * 3600
    /// Seconds a looked-up session is trusted before asking the manager again
    /// (`session_cache_ttl`): a deactivated user is logged out within it.
    public var sessionCacheTTL: Double = 5
    /// Marks the session cookie `Secure` (`secure_cookie`): set it when browsers reach the
    /// webserver over HTTPS (through a TLS-terminating proxy); over plain HTTP a `Secure`
    /// cookie would never come back.
    public var secureCookie = false
    /// Serves the UI from this folder instead of the copy built into hangard (`ui_directory`;
    /// for working on the UI without rebuilding).
    public var uiDirectory: String?
    /// Debian's xterm.js modules (`xterm_directory`, package node-xterm).
    public var xtermDirectory = "/usr/share/nodejs/xterm/lib"
    /// Largest response body (bytes) checked for the user's secret key before it reaches the
    /// browser; larger JSON bodies are refused rather than passed unchecked.
    public var maxCheckedBody = 64 << 20
    /// Reverse proxies in front of the webserver (`trusted_proxies`: addresses or CIDR blocks).
    /// Only when the TCP peer is one of them is `X-Forwarded-For` read for the client's
    /// address (failed logins per address, logs); by default it is never believed.
    public var trustedProxies: [AddressBlock] = []
    /// Ports the app gateway opens web apps on (`app_port_range`, "30000-30099"), so a
    /// firewall can let exactly those through; nil: any free port the system hands out.
    public var appPortRange: ClosedRange<Int>?
    /// Seconds an app port stays open without a connection (`app_idle_timeout`, default 15
    /// min; 0: until the webserver stops). Opening the app again opens a port again.
    public var appIdleTimeout: Double = 900

    public init() {}

    /// Reads `[webserver]`.
    /// - Throws: `ConfigFileError` naming the file, the key and what it expects.
    public static func load(_ file: ConfigFile) throws -> WebServerConfig {
        var config = WebServerConfig()
        let section = try file.section("webserver")
        try section.checkKeys([
            "listen": "string host:port", "manager_url": "URL string of the manager's API", "cluster_secret": "string (the manager's)",
            "domain": "string", "session_ttl": "number of seconds", "session_cache_ttl": "number of seconds", "secure_cookie": "boolean",
            "ui_directory": "string (a folder)", "xterm_directory": "string (a folder)",
            "trusted_proxies": "list of addresses or CIDR blocks, e.g. [\"127.0.0.1\", \"10.0.0.0/8\"]",
            "app_port_range": "string \"FIRST-LAST\", e.g. \"30000-30099\"", "app_idle_timeout": "number of seconds (0: never)",
        ])
        (config.host, config.port) = try section.hostPort("listen", default: config.host, config.port, ports: 1...65535)
        config.managerURL = try section.string("manager_url", default: config.managerURL)
        config.clusterSecret = try section.string("cluster_secret", default: "")
        config.domain = try section.string("domain", default: config.domain)
        config.sessionTTL = try section.double("session_ttl", default: config.sessionTTL, range: 60...(30 * 86_400))
        config.sessionCacheTTL = try section.double("session_cache_ttl", default: config.sessionCacheTTL, range: 0...300)
        config.secureCookie = try section.bool("secure_cookie", default: false)
        config.uiDirectory = try section.optionalString("ui_directory")
        config.xtermDirectory = try section.string("xterm_directory", default: config.xtermDirectory)
        config.trustedProxies = try section.strings("trusted_proxies", default: []).map { text in
            guard let block = AddressBlock(text) else {
                throw ConfigFileError(file: file.path, key: "webserver.trusted_proxies",
                                      "'\(text)' is not an address or a CIDR block (write e.g. \"127.0.0.1\", \"10.0.0.0/8\" or \"fd00::/8\")")
            }
            return block
        }
        if let range = try section.optionalString("app_port_range") {
            let bounds = range.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard bounds.count == 2, let first = bounds[0], let last = bounds[1], 1024 < first, first <= last, last <= 65535 else {
                throw ConfigFileError(file: file.path, key: "webserver.app_port_range",
                                      "'\(range)' is not a port range: write \"FIRST-LAST\" with 1024 < FIRST <= LAST <= 65535, e.g. \"30000-30099\"")
            }
            config.appPortRange = first...last
        }
        config.appIdleTimeout = try section.double("app_idle_timeout", default: config.appIdleTimeout, range: 0...(30 * 86_400))
        guard URL(string: config.managerURL)?.host != nil else {
            throw ConfigFileError(file: file.path, key: "webserver.manager_url", "must be a URL such as \"http://127.0.0.1:8091\"")
        }
        return config
    }
}
