import ArgumentParser
import ConfigFile
import Foundation
import Logging
import PluginHost
import StorageProxy

/// `hangard storage-proxy`: serves the volumes of its config to the manager and to clients.
struct StorageProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage-proxy",
        abstract: "The storage proxy: virtual folders on volumes served by storage plugins, uploads and downloads.")

    @Option(name: .long, help: "The role's TOML config file ([storage-proxy], [volumes.NAME], [plugins] search_paths).")
    var config: String

    @Option(name: .long, help: "host:port to listen on (overrides [storage-proxy] listen).")
    var listen: String?

    func run() async throws {
        let file = try ConfigFile(path: config)
        try file.checkSections(hangardSections)
        var proxyConfig = try StorageProxyConfig.load(file)
        if let listen {
            let parsed = try StorageProxyConfig.load(ConfigFile(toml: "[storage-proxy]\nlisten = \"\(listen.replacingOccurrences(of: "\"", with: ""))\"", path: "--listen"))
            proxyConfig.host = parsed.host
            proxyConfig.port = parsed.port
        }
        let logger = Logger(label: "hangar.storage-proxy")
        let plugins = try PluginHost(searchPaths: try PluginHostConfig.load(file: config).searchPaths, logger: logger)
        defer { plugins.shutdown() }
        let server = try StorageProxyServer(config: proxyConfig, plugins: plugins, logger: logger)
        defer { server.shutdown() }
        logger.info("storage proxy listening", metadata: ["address": .string("\(proxyConfig.host):\(proxyConfig.port)"),
                                                         "volumes": .string(server.volumes.keys.sorted().joined(separator: ","))])
        ShutdownDeadline.arm(role: "the storage proxy", logger: logger)
        try await server.run()
    }
}
