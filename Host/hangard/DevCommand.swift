import Agent
import ArgumentParser
import ConfigFile
import ContainerEngine
import Foundation
import Logging
import Manager
import PluginHost
import StateStore
import StorageProxy
import WebServer

/// `hangard dev`: a whole cluster on this machine in one process, on embedded defaults —
/// the manager on SQLite in the data directory, an agent with the mock accelerator and any
/// real one the machine has, the local Docker socket or a podman service it starts itself,
/// and the default Python image. State survives restarts.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run an all-in-one cluster on this machine (manager + agent on embedded defaults).",
        discussion: """
            First start: creates the database, the superadmin keypair, a client config (printed as export lines and \
            written to DATA_DIR/client.env and, if absent, ~/.config/hangar/client.toml), and the default image. \
            Later starts resume with all state. Ctrl-C stops everything, including a podman service it started.
            """)

    @Option(name: .customLong("data-dir"), help: "Where everything is kept (default: $HANGAR_DATA_DIR, else ~/.local/share/hangar/dev).")
    var dataDir: String?

    @Option(help: "host:port of the manager's API.")
    var listen = "127.0.0.1:8091"

    @Option(name: .customLong("agent-listen"), help: "host:port of the agent's RPC server.")
    var agentListen = "127.0.0.1:6001"

    @Option(name: .customLong("engine-socket"), help: "Docker Engine API socket (default: /var/run/docker.sock, /run/podman/podman.sock, else a podman service started here).")
    var engineSocket: String?

    @Option(name: .customLong("storage-listen"), help: "host:port of the storage proxy (uploads and downloads).")
    var storageListen = "127.0.0.1:6021"

    @Option(name: .customLong("web-listen"), help: "host:port of the webserver (the web UI and Backend.AI's session-mode API).")
    var webListen = "127.0.0.1:8090"

    @Option(name: .customLong("ui-dir"), help: "Serve the web UI from this folder instead of the built-in copy (for working on it).")
    var uiDir: String?

    @Option(help: ArgumentHelp("An image to make available, built from its recipe when missing: a recipe of Tools/images/build.sh (python, python-pytorch, python-tensorflow, r, nodejs, cpp, java) or the image it builds. Repeat for several; the first is the default.", valueName: "IMAGE"))
    var image: [String] = []

    @Flag(name: .customLong("no-image"), help: "Do not build missing images.")
    var noImage = false

    /// The images asked for, the default Python image when none was.
    var images: [String] { image.isEmpty ? ["hangar/python:3.11-bookworm"] : image }

    @Option(name: .customLong("database"), help: "postgresql://user@host:port/db (or a SQLite path) instead of the data directory's SQLite file.")
    var database: String?

    func run() async throws {
        let logger = Logger(label: "hangar.dev")
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let data = dataDir ?? ProcessInfo.processInfo.environment["HANGAR_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/share/hangar/dev"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)

        var managerConfig = try ManagerConfig.load(ConfigFile(toml: "[manager]\nlisten = \"\(listen.replacingOccurrences(of: "\"", with: ""))\"", path: "--listen"))
        managerConfig.dataDirectory = data
        managerConfig.schedulingInterval = 0.5
        if let database {
            do {
                managerConfig.database = try DatabaseLocation(database)
            } catch {
                throw ValidationError("--database: \(error.message)")
            }
        }
        let (store, created) = try openAndBootstrap(managerConfig, adminEmail: "admin@hangar.local", logger: logger)
        defer { store.close() }
        let secret = try clusterSecret(managerConfig)
        // A vfs volume in the data directory, served by an in-process storage proxy.
        var proxyConfig = try StorageProxyConfig.load(ConfigFile(toml: "[storage-proxy]\nlisten = \"\(storageListen.replacingOccurrences(of: "\"", with: ""))\"", path: "--storage-listen"))
        proxyConfig.secret = secret
        try FileManager.default.createDirectory(atPath: data + "/vfolders", withIntermediateDirectories: true)
        proxyConfig.volumes = [.init(name: "volume1", backend: "vfs", options: .table([("root", .string(data + "/vfolders"))]))]
        let storagePlugins = try PluginHost(searchPaths: PluginHostConfig.defaultSearchPaths(), logger: logger)
        defer { storagePlugins.shutdown() }
        let storage = try StorageProxyServer(config: proxyConfig, plugins: storagePlugins, logger: Logger(label: "hangar.storage-proxy"))
        defer { storage.shutdown() }
        managerConfig.storageProxies = ["local": StorageProxyLink(name: "local", url: proxyConfig.advertisedURL, secret: secret)]
        managerConfig.defaultVFolderHost = "local:volume1"
        let endpoint = "http://\(managerConfig.host == "0.0.0.0" ? "127.0.0.1" : managerConfig.host):\(managerConfig.port)"
        var webConfig = WebServerConfig()
        (webConfig.host, webConfig.port) = try WebServerConfig.listenAddress(webListen, flag: "--web-listen")
        webConfig.managerURL = endpoint
        webConfig.clusterSecret = secret
        webConfig.uiDirectory = uiDir
        let webURL = "http://\(webConfig.host == "0.0.0.0" ? "127.0.0.1" : webConfig.host):\(webConfig.port)"
        if let created { try DevClientConfig.write(created, endpoint: endpoint, webURL: webURL, dataDirectory: data, home: home) }
        DevClientConfig.updateWebURL(webURL, dataDirectory: data)

        let engine = try DevEngine.locate(explicit: engineSocket, dataDirectory: data, logger: logger)
        defer { engine.stop() }
        ShutdownDeadline.arm(role: "the dev cluster", logger: logger) { [engine] in engine.stop() }
        // A few tries: podman answers 500 while another client removes an image it is listing.
        var answered = false
        for attempt in 1...5 where !answered {
            do {
                _ = try await DockerEngineClient(socketPath: engine.socket).images()
                answered = true
            } catch {
                guard attempt < 5 else {
                    throw DevEngine.Failure(description: "the container engine at \(engine.socket) does not answer (\(error)); start it, or pass another --engine-socket")
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        var available: [String] = []
        for name in images {
            available.append(noImage ? name : try await DevEngine.ensureImage(name, socket: engine.socket, logger: logger))
        }

        var agentConfig = try AgentConfig.load(ConfigFile(toml: "[agent]\nlisten = \"\(agentListen.replacingOccurrences(of: "\"", with: ""))\"", path: "--agent-listen"))
        agentConfig.id = "dev"
        agentConfig.managerURL = endpoint
        agentConfig.clusterSecret = secret
        agentConfig.scratchDirectory = data + "/scratch"
        agentConfig.engineSocket = engine.socket
        agentConfig.heartbeatInterval = 2
        // The mock accelerator always; CUDA when the machine has NVML (without it the plugin
        // reports zero devices and a reason, and is skipped as optional).
        let plugins = try PluginHost(config: PluginHostConfig(enabled: ["mock", "cuda"]), logger: logger)
        defer { plugins.shutdown() }
        let daemon = try AgentDaemon(config: agentConfig, accelerators: plugins.accelerators, logger: Logger(label: "hangar.agent"))
        let server = try ManagerServer(store: store, config: managerConfig, clusterSecret: secret, logger: Logger(label: "hangar.manager"))
        defer { server.plugins.shutdown() }

        print((try? String(contentsOfFile: data + "/client.env", encoding: .utf8)) ?? "(the keys were printed when \(data) was first initialised)\n", terminator: "")
        print("""

            Hangar dev cluster: web UI \(webURL), manager \(endpoint), agent \(agentConfig.advertisedAddress), storage \(proxyConfig.advertisedURL) (host local:volume1), engine \(engine.socket), data \(data)
            Try:  hangar run \(available[0]) -c '\(DevEngine.sampleCode(available[0]))'
            Ctrl-C (or SIGTERM) stops it within seconds; running kernels keep running and the next start re-adopts them with all state.
            """)
        fflush(nil)
        let web = WebServer(config: webConfig, logger: Logger(label: "hangar.webserver"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { try await storage.run() }
            group.addTask { try await web.run() }
            group.addTask {
                // The agent starts once the manager answers, so its first heartbeat registers it.
                try? await Task.sleep(for: .milliseconds(300))
                try await daemon.run()
            }
            try await group.next()
            group.cancelAll()
        }
        logger.info("dev cluster stopped")
    }
}

/// The superadmin's keys as a client configuration: export lines in the data directory,
/// and `~/.config/hangar/client.toml` when the user has none yet.
enum DevClientConfig {
    static func write(_ result: StateStore.BootstrapResult, endpoint: String, webURL: String, dataDirectory: String, home: String) throws {
        let exports = """
            export BACKEND_ENDPOINT=\(endpoint)
            export BACKEND_ENDPOINT_TYPE=api
            export BACKEND_ACCESS_KEY=\(result.accessKey)
            export BACKEND_SECRET_KEY=\(result.secretKey)
            export HANGAR_WEB_URL=\(webURL)
            export HANGAR_WEB_USER=\(result.email)
            export HANGAR_WEB_PASSWORD=\(result.password)

            """
        _ = FileManager.default.createFile(atPath: dataDirectory + "/client.env", contents: Data(exports.utf8), attributes: [.posixPermissions: 0o600])
        let directory = home + "/.config/hangar"
        let path = directory + "/client.toml"
        guard !FileManager.default.fileExists(atPath: path) else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let toml = "[client]\nendpoint = \"\(endpoint)\"\naccess_key = \"\(result.accessKey)\"\nsecret_key = \"\(result.secretKey)\"\n"
        _ = FileManager.default.createFile(atPath: path, contents: Data(toml.utf8), attributes: [.posixPermissions: 0o600])
    }
}

extension DevClientConfig {
    /// Keeps the web UI's address in client.env current when --web-listen changes between
    /// starts (the other lines are written once, when the keys are made).
    static func updateWebURL(_ webURL: String, dataDirectory: String) {
        let path = dataDirectory + "/client.env"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let line = "export HANGAR_WEB_URL=\(webURL)"
        if let index = lines.firstIndex(where: { $0.hasPrefix("export HANGAR_WEB_URL=") }) {
            guard lines[index] != line else { return }
            lines[index] = line
        } else {
            lines.insert(line, at: max(lines.count - 1, 0))
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8), attributes: [.posixPermissions: 0o600])
    }
}

/// The container engine for the dev cluster: an existing socket, or a podman service this
/// process starts (and stops) with settings that work on cgroup v1 hosts.
/// Sendable by hand: after start, `service` is only read for its pid (to signal and reap it).
struct DevEngine: @unchecked Sendable {
    let socket: String
    let service: Process?

    /// Stops the podman service this process started: SIGTERM, up to 5 s, then SIGKILL, and
    /// reaps it here with waitpid — Foundation's `waitUntilExit` can hang for ever on a child
    /// that already exited (a Ctrl-C from the terminal reaches the service too), which left
    /// `hangard dev` unkillable with a zombie child.
    func stop(grace: Double = 5) {
        guard let service else { return }
        let pid = service.processIdentifier
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || (reaped < 0 && errno == ECHILD) { return }
            if Date() >= deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return
            }
            usleep(50_000)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func locate(explicit: String?, dataDirectory: String, logger: Logger) throws -> DevEngine {
        if let explicit { return DevEngine(socket: explicit, service: nil) }
        for candidate in ["/var/run/docker.sock", "/run/podman/podman.sock"] where FileManager.default.fileExists(atPath: candidate) {
            return DevEngine(socket: candidate, service: nil)
        }
        guard let podman = ["/usr/bin/podman", "/usr/local/bin/podman"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Failure(description: "no container engine: there is no /var/run/docker.sock and podman is not installed (apt-get install podman runc), or pass --engine-socket")
        }
        let directory = dataDirectory + "/podman"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let conf = directory + "/containers.conf"
        // runc (crun fails on hybrid cgroup layouts) and capped ulimits (podman's defaults
        // exceed what unprivileged hosts allow).
        try """
            [containers]
            default_ulimits = ["nofile=10000:10000", "nproc=10000:10000"]
            [engine]
            runtime = "runc"
            """.write(toFile: conf, atomically: true, encoding: .utf8)
        let socket = directory + "/podman.sock"
        try? FileManager.default.removeItem(atPath: socket)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: podman)
        process.arguments = ["system", "service", "--time=0", "unix://" + socket]
        // Its own folder as working directory: conmon drops files (an "oom" marker) there.
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["CONTAINERS_CONF"] = environment["CONTAINERS_CONF"] ?? conf
        // Podman's network helpers call iptables and friends from the sbin folders, which a
        // user's PATH (or a minimal one) may lack; without them every container start fails.
        let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        environment["PATH"] = (path + ["/usr/local/sbin", "/usr/sbin", "/sbin"].filter { !path.contains($0) }).joined(separator: ":")
        process.environment = environment
        _ = FileManager.default.createFile(atPath: directory + "/service.log", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: directory + "/service.log")
        process.standardError = FileHandle(forWritingAtPath: directory + "/service.log")
        try process.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(100_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            process.terminate()
            throw Failure(description: "podman's API service did not start; see \(directory)/service.log")
        }
        logger.info("started podman's Docker-compatible service", metadata: ["socket": .string(socket)])
        return DevEngine(socket: socket, service: process)
    }

    /// Makes an image available, building it with Tools/images/build.sh when the engine lacks
    /// it: `name` is a recipe (its image is returned) or an image reference (a recipe that
    /// builds it is looked up; the python recipe builds any other name, as python-image.sh does).
    static func ensureImage(_ name: String, socket: String, logger: Logger) async throws -> String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // From a build folder (.build/<triple>/<config>/hangard) the recipes are in the
        // checkout; an installation keeps them in share/hangar.
        let candidates = [exe.deletingLastPathComponent().appendingPathComponent("../../../Tools/images/build.sh").standardized.path,
                          exe.deletingLastPathComponent().appendingPathComponent("../share/hangar/images/build.sh").standardized.path,
                          "/usr/local/share/hangar/images/build.sh"]
        let script = candidates.first(where: FileManager.default.isExecutableFile(atPath:))
        var environment = ProcessInfo.processInfo.environment
        if socket.hasSuffix("docker.sock") { environment["CONTAINER_ENGINE"] = "docker" }
        let conf = (socket as NSString).deletingLastPathComponent + "/containers.conf"
        if FileManager.default.fileExists(atPath: conf) { environment["CONTAINERS_CONF"] = environment["CONTAINERS_CONF"] ?? conf }
        func recipeScript(_ arguments: [String], environment extra: [String: String] = [:], quiet: Bool) throws -> (Int32, String) {
            guard let script else { return (127, "") }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [script] + arguments
            process.environment = environment.merging(extra) { $1 }
            let pipe = Pipe()
            if quiet {
                process.standardOutput = pipe
                process.standardError = FileHandle.nullDevice
            }
            try process.run()
            let output = quiet ? String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) : ""
            process.waitUntilExit()
            return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let isReference = name.contains(":") || name.contains("/")
        var (recipe, reference) = (name, name)
        if isReference {
            let (status, found) = try recipeScript(["--recipe", name], quiet: true)
            recipe = status == 0 ? found : "python"
        } else {
            let (status, found) = try recipeScript(["--image", name], quiet: true)
            guard status == 0 else {
                throw Failure(description: script == nil ? "no image recipes were found (Tools/images/build.sh) to build '\(name)'"
                                                         : "'\(name)' is neither an image reference nor a recipe; the recipes: `Tools/images/build.sh --list`")
            }
            reference = found
        }
        if try await DockerEngineClient(socketPath: socket).imageExists(reference) { return reference }
        guard script != nil else {
            logger.warning("the image is missing and the image recipes (Tools/images/build.sh) were not found", metadata: ["image": .string(reference)])
            return reference
        }
        print("building \(reference) from the \(recipe) recipe (a minute or more the first time) ...")
        fflush(nil)
        let (status, _) = try recipeScript([recipe], environment: isReference ? ["HANGAR_IMAGE_AS": reference] : [:], quiet: false)
        guard status == 0 else {
            throw Failure(description: "building \(reference) failed (Tools/images/build.sh \(recipe) exited with \(status)); install mmdebstrap, or pass --no-image")
        }
        return reference
    }

    /// A first line of code in the image's language, for the welcome text.
    static func sampleCode(_ image: String) -> String {
        switch image.split(separator: "/").last.map({ String($0.split(separator: ":")[0]) }) ?? "" {
        case "r": "cat(6*7)"
        case "nodejs": "console.log(6*7)"
        case "cpp": "cout << 6*7 << endl;"
        case "java": "System.out.println(6*7);"
        default: "print(6*7)"
        }
    }
}
