import ArgumentParser
import ConfigFile
import Foundation
import Identity
import Logging
import Manager
import StateStore

/// `hangard`: the Hangar server, one subcommand per role.
@main
struct Hangard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hangard",
        abstract: "The Hangar server: run a role of the cluster.",
        version: HangarVersion.current,
        subcommands: [ManagerCommand.self, AgentCommand.self, StorageProxyCommand.self, WebServerCommand.self, DevCommand.self, SandboxCommand.self])

    static func main() async {
        let level = ProcessInfo.processInfo.environment["HANGAR_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Options shared by the manager's subcommands.
struct ManagerOptions: ParsableArguments {
    @Option(name: .long, help: "The role's TOML config file ([manager], [database]).")
    var config: String?

    @Option(name: .long, help: "SQLite file path or postgresql://user@host:port/db (overrides [database] url).")
    var database: String?

    @Option(name: .customLong("data-dir"), help: "Where the manager keeps its files (overrides [manager] data_dir).")
    var dataDir: String?

    @Option(name: .long, help: "host:port to listen on (overrides [manager] listen).")
    var listen: String?

    @Option(name: .customLong("admin-email"), help: "Email of the superadmin created when the database is new.")
    var adminEmail = "admin@hangar.local"

    /// Loads the config, opens the store (migrating it) and bootstraps a new database.
    func open() throws -> (ManagerConfig, Logger, StateStore, StateStore.BootstrapResult?) {
        let config = try load()
        let logger = Logger(label: "hangar.manager")
        let (store, created) = try openAndBootstrap(config, adminEmail: adminEmail, logger: logger)
        return (config, logger, store, created)
    }

    func load() throws -> ManagerConfig {
        let file = try config.map { path throws in try ConfigFile(path: path) } ?? ConfigFile(emptyAt: "defaults")
        try file.checkSections(hangardSections)
        var resolved = try ManagerConfig.load(file)
        if let dataDir { resolved.dataDirectory = dataDir }
        if let database {
            do {
                resolved.database = try DatabaseLocation(database)
            } catch {
                throw ValidationError("--database: \(error)")
            }
        }
        if let listen {
            let override = try ConfigFile(toml: "[manager]\nlisten = \"\(listen.replacingOccurrences(of: "\"", with: ""))\"", path: "--listen")
            let parsed = try ManagerConfig.load(override)
            resolved.host = parsed.host
            resolved.port = parsed.port
        }
        return resolved
    }
}

struct ManagerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manager",
        abstract: "The control plane: API, scheduler, state.",
        subcommands: [ServeManager.self, InitManager.self],
        defaultSubcommand: ServeManager.self)
}

/// Opens the store and creates the first accounts if the database is new.
func openAndBootstrap(_ config: ManagerConfig, adminEmail: String, logger: Logger) throws -> (StateStore, StateStore.BootstrapResult?) {
    let store = try StateStore(location: config.resolvedDatabase)
    let schema = try store.schemaVersion
    logger.info("state store ready", metadata: ["database": .string(config.resolvedDatabase.description), "schema": .stringConvertible(schema)])
    let created = try store.bootstrap(adminEmail: adminEmail)
    return (store, created)
}

func printCredentials(_ result: StateStore.BootstrapResult, config: ManagerConfig) {
    let host = config.host == "0.0.0.0" ? "127.0.0.1" : config.host
    print("""
        Hangar manager initialised. These credentials are shown only once:
          superadmin   \(result.email)
          password     \(result.password)
          access key   \(result.accessKey)
          secret key   \(result.secretKey)

        export BACKEND_ENDPOINT=http://\(host):\(config.port)
        export BACKEND_ENDPOINT_TYPE=api
        export BACKEND_ACCESS_KEY=\(result.accessKey)
        export BACKEND_SECRET_KEY=\(result.secretKey)
        """)
    fflush(nil)  // stdout is buffered when it is not a terminal; flush all streams
}

/// The cluster secret agents present: from config, or generated once into the data directory.
func clusterSecret(_ config: ManagerConfig) throws -> String {
    if !config.clusterSecret.isEmpty { return config.clusterSecret }
    let path = (config.dataDirectory as NSString).appendingPathComponent("cluster-secret")
    if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !existing.isEmpty {
        return existing
    }
    try FileManager.default.createDirectory(atPath: config.dataDirectory, withIntermediateDirectories: true)
    var rng = SystemRandomNumberGenerator()
    let secret = hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
    _ = FileManager.default.createFile(atPath: path, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
    return secret
}

struct InitManager: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the schema, the default domain and project, and a superadmin with a keypair (prints the credentials once).")

    @OptionGroup var options: ManagerOptions

    func run() async throws {
        let (config, _, store, created) = try options.open()
        defer { store.close() }
        _ = try clusterSecret(config)
        if let created {
            printCredentials(created, config: config)
        } else {
            print("The database at \(config.resolvedDatabase) is already initialised; nothing changed.")
        }
    }
}

struct ServeManager: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the manager (initialises a new database on first start).")

    @OptionGroup var options: ManagerOptions

    func run() async throws {
        let (config, logger, store, created) = try options.open()
        defer { store.close() }
        if let created { printCredentials(created, config: config) }
        let server = try ManagerServer(store: store, config: config, clusterSecret: try clusterSecret(config), logger: logger)
        defer { server.plugins.shutdown() }
        ShutdownDeadline.arm(role: "the manager", logger: logger)
        logger.info("manager listening", metadata: ["address": .string("\(config.host):\(config.port)")])
        try await server.run()
    }
}

/// Sections any role's config file may hold (one file can configure several roles).
let hangardSections = ["manager", "database", "agent", "storage-proxy", "storage-proxies", "volumes", "plugins", "webserver", "dev", "sandbox"]
