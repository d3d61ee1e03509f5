import ArgumentParser
import Foundation

/// `hangar`: Hangar's own client. Run code, manage sessions; signs requests as the official
/// Backend.AI client does, so it works against any manager that speaks that protocol.
@main
struct Hangar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hangar",
        abstract: "Run code on a Hangar cluster and manage sessions.",
        discussion: """
            Credentials come from BACKEND_ENDPOINT, BACKEND_ACCESS_KEY and BACKEND_SECRET_KEY (as for the official \
            Backend.AI client), or from ~/.config/hangar/client.toml ([client] endpoint, access_key, secret_key; \
            $HANGAR_CLIENT_CONFIG overrides the path). The environment wins over the file.
            """,
        subcommands: [RunCommand.self, SessionCommand.self, AppsCommand.self, AppCommand.self, SSHCommand.self, SCPCommand.self, SSHConfigCommand.self,
                      TerminalCommand.self, VFolderCommand.self, ImageCommand.self, AdminCommand.self, ConfigCommand.self])
}

/// Reports a CLIError as one line and exits 1 instead of printing a Swift error dump.
protocol ClientCommand: AsyncParsableCommand {
    func perform() async throws
}

extension ClientCommand {
    func run() async throws {
        do {
            try await perform()
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("✗ \(error.description)\n".utf8))
            throw ExitCode.failure
        }
    }
}

struct ConfigCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Show the endpoint and keypair in use, and where each came from.")

    func perform() async throws {
        let config = try ClientConfig.load()
        print("endpoint:   \(config.endpoint)  (\(config.sources["endpoint"] ?? "-"))")
        print("access key: \(config.accessKey)  (\(config.sources["access_key"] ?? "-"))")
        print("secret key: \(String(repeating: "*", count: 8))  (\(config.sources["secret_key"] ?? "-"))")
    }
}

/// Options shared by the commands that create sessions.
struct SessionSpecOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .customLong("name")], help: "Session name (an existing live session of that name is reused).")
    var name: String?

    @Option(name: [.customShort("r"), .customLong("resource")], help: "Resource request SLOT=AMOUNT, e.g. cpu=2, mem=1g, cuda.device=1 (repeatable).")
    var resources: [String] = []

    @Option(name: [.customShort("e"), .customLong("env")], help: "Environment variable KEY=VALUE (repeatable).")
    var environment: [String] = []

    @Option(name: .customLong("group"), help: "Project to run in.")
    var project: String = "default"

    @Option(name: .customLong("resource-group"), help: "Resource group (scaling group) to schedule in.")
    var resourceGroup: String?

    @Option(name: [.customShort("v"), .customLong("mount")], help: "Mount a vfolder: NAME (at /home/work/NAME) or NAME:PATH[:ro] (repeatable).")
    var mounts: [String] = []

    @Option(name: .customLong("priority"), help: "Scheduling priority 0-100, higher first (default 10; your policy may cap it).")
    var priority: Int?

    @Option(name: .customLong("time-limit"), help: "Seconds the session may run once started (ended after that; lets backfill start it early).")
    var timeLimit: Int?

    @Option(name: .customLong("cluster-size"), help: "Kernels in the session (main1, sub1, ...; your policy's max_containers_per_session caps it).")
    var clusterSize: Int = 1

    @Option(name: .customLong("cluster-mode"), help: "single-node (every kernel on one agent) or multi-node (spread over agents).")
    var clusterMode: String = "single-node"

    func body(image: String, type: String, startupCommand: String?, enqueueOnly: Bool) throws -> [String: Any] {
        var resources: [String: String] = [:]
        for item in self.resources {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw CLIError("--resource expects SLOT=AMOUNT, got '\(item)'") }
            resources[parts[0]] = parts[1]
        }
        var environ: [String: String] = [:]
        for item in environment {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw CLIError("--env expects KEY=VALUE, got '\(item)'") }
            environ[parts[0]] = parts[1]
        }
        let name = self.name ?? "hangar-" + UUID().uuidString.lowercased().prefix(10)
        if let priority, !(0...100).contains(priority) { throw CLIError("--priority must be 0-100, got \(priority)") }
        guard (1...64).contains(clusterSize) else { throw CLIError("--cluster-size must be 1-64, got \(clusterSize)") }
        guard ["single-node", "multi-node"].contains(clusterMode) else { throw CLIError("--cluster-mode is single-node or multi-node, got '\(clusterMode)'") }
        var body: [String: Any] = [
            "name": name, "image": image, "type": type, "group": project, "domain": "default", "clusterSize": clusterSize, "clusterMode": clusterMode,
            "enqueueOnly": enqueueOnly, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": startupCommand ?? NSNull(),
            "config": ["resources": resources, "environ": environ, "scalingGroup": resourceGroup.map { $0 as Any } ?? NSNull(), "mounts": mounts],
        ]
        if let priority { body["priority"] = priority }
        if let timeLimit {
            guard timeLimit > 0 else { throw CLIError("--time-limit takes seconds > 0, got \(timeLimit)") }
            body["batchTimeout"] = timeLimit
        }
        return body
    }
}

/// Creation that returns at once and then follows the session to RUNNING, with a progress
/// line while it waits (for resources, or for its image).
enum SessionStarter {
    struct Started: Sendable {
        let id: String
        let name: String
        let created: Bool
    }

    static func create(_ client: ManagerClient, body: [String: Any], quiet: Bool) async throws -> Started {
        let reply = try await client.call(.POST, "/session", json: body) as? [String: Any] ?? [:]
        guard let id = reply["sessionId"] as? String else { throw CLIError("the manager's reply has no sessionId: \(reply)") }
        let name = reply["sessionName"] as? String ?? (body["name"] as? String ?? id)
        let created = reply["created"] as? Bool ?? true
        if !quiet, !created { FileHandle.standardError.write(Data("∙ reusing the running session \(name)\n".utf8)) }
        return Started(id: id, name: name, created: created)
    }

    /// Waits for RUNNING; a terminal status is an error carrying the reason.
    static func waitUntilRunning(_ client: ManagerClient, id: String, quiet: Bool) async throws {
        let tty = isatty(2) == 1
        var shown = ""
        var delay = 0.02
        defer { if tty && !shown.isEmpty && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
        while true {
            let info = try await client.call(.GET, "/session/\(id)") as? [String: Any] ?? [:]
            let status = info["status"] as? String ?? "?"
            let reason = info["statusInfo"] as? String ?? ""
            switch status {
            case "RUNNING":
                return
            case "TERMINATED", "CANCELLED", "ERROR":
                throw CLIError("session \(info["sessionName"] as? String ?? id) is \(status)\(reason.isEmpty ? "" : ": \(reason)")")
            default:
                let line = "⋯ \(status.lowercased())\(reason.isEmpty ? "" : ": \(reason)")"
                // One updating line on a terminal, erased once the session runs; nothing in
                // pipes and CI logs, where a redrawn line would only be noise.
                if line != shown && !quiet && tty {
                    FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
                    shown = line
                }
            }
            try await Task.sleep(for: .seconds(delay))
            delay = min(delay * 1.5, 1)
        }
    }
}
