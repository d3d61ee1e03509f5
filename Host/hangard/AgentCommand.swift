import Agent
import ArgumentParser
import ConfigFile
import Foundation
import Logging
import PluginHost

/// `hangard agent`: runs kernels on this node for the manager.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "The node agent: kernels in containers, CPUs, memory and accelerators, heartbeats to the manager.")

    @Option(name: .long, help: "The role's TOML config file ([agent] and [plugins]).")
    var config: String?

    @Option(name: .long, help: "Agent id (overrides [agent] id).")
    var id: String?

    @Option(name: .long, help: "Manager URL (overrides [agent] manager).")
    var manager: String?

    @Option(name: .customLong("cluster-secret-file"), help: "Read the cluster secret from this file (e.g. the manager's data_dir/cluster-secret).")
    var clusterSecretFile: String?

    @Option(name: .long, help: "host:port of the RPC server (overrides [agent] listen).")
    var listen: String?

    @Option(name: .customLong("scratch-dir"), help: "Where kernel scratch folders live (overrides [agent] scratch_dir).")
    var scratchDir: String?

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket (overrides [agent] engine_socket).")
    var engineSocket: String?

    func run() async throws {
        let file = try config.map { path throws in try ConfigFile(path: path) } ?? ConfigFile(emptyAt: "defaults")
        try file.checkSections(hangardSections)
        var agentConfig = try AgentConfig.load(file)
        if let id { agentConfig.id = id }
        if let manager { agentConfig.managerURL = manager }
        if let scratchDir { agentConfig.scratchDirectory = scratchDir }
        if let engineSocket { agentConfig.engineSocket = engineSocket }
        if let listen {
            let parsed = try AgentConfig.load(ConfigFile(toml: "[agent]\nlisten = \"\(listen.replacingOccurrences(of: "\"", with: ""))\"", path: "--listen"))
            agentConfig.host = parsed.host
            agentConfig.port = parsed.port
        }
        if let clusterSecretFile {
            agentConfig.clusterSecret = try String(contentsOfFile: clusterSecretFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !agentConfig.clusterSecret.isEmpty else {
            throw ValidationError("the agent needs the manager's cluster secret: set [agent] cluster_secret or pass --cluster-secret-file")
        }
        let logger = Logger(label: "hangar.agent")
        let pluginConfig = try config.map { path throws in try PluginHostConfig.load(file: path) } ?? PluginHostConfig()
        let plugins = try PluginHost(config: pluginConfig, logger: logger)
        defer { plugins.shutdown() }
        let daemon = try AgentDaemon(config: agentConfig, accelerators: plugins.accelerators, logger: logger)
        logger.info("agent starting", metadata: ["id": .string(agentConfig.id), "rpc": .string(agentConfig.advertisedAddress),
                                                 "manager": .string(agentConfig.managerURL), "engine": .string(agentConfig.engineSocket)])
        ShutdownDeadline.arm(role: "the agent", logger: logger)
        try await daemon.run()
    }
}
