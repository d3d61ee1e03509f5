import ArgumentParser
import ConfigFile
import Foundation
import Logging
import WebServer

/// `hangard webserver`: the web UI and login sessions, forwarding API calls to the manager.
struct WebServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webserver",
        abstract: "The webserver: the web UI, logins, and Backend.AI's /server and /func API for the official client's session mode.")

    @Option(name: .long, help: "The role's TOML config file ([webserver] listen, manager_url, cluster_secret, ...).")
    var config: String

    @Option(name: .long, help: "host:port to listen on (overrides [webserver] listen).")
    var listen: String?

    func run() async throws {
        let file = try ConfigFile(path: config)
        try file.checkSections(hangardSections)
        var webConfig = try WebServerConfig.load(file)
        if let listen { (webConfig.host, webConfig.port) = try WebServerConfig.listenAddress(listen, flag: "--listen") }
        guard !webConfig.clusterSecret.isEmpty else {
            throw ValidationError("\(config): [webserver] cluster_secret is required (the manager's cluster_secret: login sessions are kept by the manager)")
        }
        let logger = Logger(label: "hangar.webserver")
        ShutdownDeadline.arm(role: "the webserver", logger: logger)
        logger.info("webserver listening", metadata: ["address": .string("\(webConfig.host):\(webConfig.port)"), "manager": .string(webConfig.managerURL)])
        try await WebServer(config: webConfig, logger: logger).run()
    }
}

extension WebServerConfig {
    /// host:port from a command-line flag, checked as `[webserver] listen` is.
    static func listenAddress(_ value: String, flag: String) throws -> (host: String, port: Int) {
        let section = try ConfigFile(toml: "[webserver]\nlisten = \"\(value.replacingOccurrences(of: "\"", with: ""))\"", path: flag).section("webserver")
        return try section.hostPort("listen", default: "127.0.0.1", 8090, ports: 1...65535)
    }
}
