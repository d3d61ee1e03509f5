import Foundation
import Logging
import Synchronization

/// The plugin libraries found on a search path, opened (descriptors read, nothing created).
public struct PluginCatalog: Sendable {
    /// One file that was scanned.
    public enum Entry: Sendable {
        case plugin(PluginLibrary)
        case broken(path: String, error: PluginError)

        public var path: String {
            switch self {
            case .plugin(let library): library.path
            case .broken(let path, _): path
            }
        }
    }

    public let searchPaths: [String]
    public let entries: [Entry]

    /// File names the scan picks up: `libhangar-<anything>.so`, so that other libraries
    /// sharing a folder with plugins are never opened.
    public static func isPluginFileName(_ name: String) -> Bool {
        name.hasPrefix("libhangar-") && name.hasSuffix(".so")
    }

    /// Opens every `libhangar-*.so` in `searchPaths` (missing folders are skipped).
    public static func scan(_ searchPaths: [String]) -> PluginCatalog {
        var entries: [Entry] = []
        var seen = Set<String>()
        for dir in searchPaths {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names.sorted() where isPluginFileName(name) {
                let path = URL(fileURLWithPath: dir).appendingPathComponent(name).resolvingSymlinksInPath().path
                guard seen.insert(path).inserted else { continue }
                do throws(PluginError) {
                    entries.append(.plugin(try PluginLoader.open(path: path)))
                } catch {
                    entries.append(.broken(path: path, error: error))
                }
            }
        }
        return PluginCatalog(searchPaths: searchPaths, entries: entries)
    }

    /// The libraries that opened cleanly.
    public var plugins: [PluginLibrary] {
        entries.compactMap { if case .plugin(let l) = $0 { l } else { nil } }
    }

    /// Finds a plugin by name, or opens a library path (anything containing a '/').
    /// - Throws: `.notFound` listing what is available, or `.duplicateKey` naming both files.
    public func resolve(_ nameOrPath: String) throws(PluginError) -> PluginLibrary {
        if nameOrPath.contains("/") { return try PluginLoader.open(path: nameOrPath) }
        let matches = plugins.filter { $0.descriptor.name == nameOrPath }
        if matches.count > 1 {
            throw PluginError(.duplicateKey, plugin: nameOrPath,
                              reason: "\(matches.count) libraries claim the key '\(nameOrPath)': \(matches.map(\.path).joined(separator: ", ")); remove all but one from the search path")
        }
        if let match = matches.first { return match }
        let brokenHint = entries.compactMap { entry -> String? in
            if case .broken(let path, let error) = entry { return "\(path): \(error.reason)" } else { return nil }
        }
        let available = plugins.map(\.descriptor.name).sorted()
        var reason = "no plugin named '\(nameOrPath)' in \(searchPaths.joined(separator: ":"))"
        reason += available.isEmpty ? " (no plugins found there)" : " (found: \(available.joined(separator: ", ")))"
        if !brokenHint.isEmpty { reason += "; libraries that failed to load: " + brokenHint.joined(separator: "; ") }
        throw PluginError(.notFound, plugin: nameOrPath, reason: reason)
    }
}

/// A created plugin instance of any kind.
public enum LoadedPlugin: Sendable {
    case accelerator(AcceleratorPlugin)
    case storage(StoragePlugin)
    case scheduler(SchedulerPlugin)
    case agentSelector(AgentSelectorPlugin)

    public var instance: PluginInstance {
        switch self {
        case .accelerator(let p): p.instance
        case .storage(let p): p.instance
        case .scheduler(let p): p.instance
        case .agentSelector(let p): p.instance
        }
    }

    /// Creates an instance of the right kind for `library`.
    public static func create(_ library: PluginLibrary, config: ConfigValue) throws(PluginError) -> LoadedPlugin {
        switch library.descriptor.kind {
        case .accelerator: .accelerator(try AcceleratorPlugin(library: library, config: config))
        case .storage: .storage(try StoragePlugin(library: library, config: config))
        case .scheduler: .scheduler(try SchedulerPlugin(library: library, config: config))
        case .agentSelector: .agentSelector(try AgentSelectorPlugin(library: library, config: config))
        }
    }
}

/// The one way a role loads plugins. It creates the plugins a role's config enables,
/// enforcing `required`, one key per plugin and one device key per accelerator (an optional
/// plugin that fails is reported and skipped; a required one stops startup), and makes further
/// instances on demand by name with their own config — a storage volume's backend, a resource
/// group's scheduler — so that `shutdown()` ends every instance the role made.
public final class PluginHost: @unchecked Sendable {
    public let config: PluginHostConfig
    public let catalog: PluginCatalog
    /// Created plugins, in the order the config enables them.
    public private(set) var loaded: [LoadedPlugin] = []
    /// Optional plugins that failed, with why.
    public private(set) var skipped: [PluginError] = []
    private let logger: Logger
    /// Instances made on demand, until released or shut down.
    private let made = Mutex<[ObjectIdentifier: PluginInstance]>([:])

    /// Scans the search paths and creates every enabled plugin.
    ///
    /// - Throws: the error of the first required plugin that fails.
    public init(config: PluginHostConfig, logger: Logger = Logger(label: "hangar.plugin-host")) throws(PluginError) {
        self.config = config
        self.logger = logger
        catalog = PluginCatalog.scan(config.searchPaths)
        var names = Set<String>()
        var deviceKeys: [String: String] = [:]
        for entry in config.enabled {
            do throws(PluginError) {
                let library = try catalog.resolve(entry)
                let name = library.descriptor.name
                guard names.insert(name).inserted else {
                    throw PluginError(.duplicateKey, plugin: name, file: library.path,
                                      reason: "the key '\(name)' is enabled twice (as '\(entry)'); each plugin may be enabled once")
                }
                let plugin = try LoadedPlugin.create(library, config: config.config(for: name))
                if case .accelerator(let accelerator) = plugin {
                    let key = accelerator.info.deviceKey
                    if let other = deviceKeys[key] {
                        accelerator.instance.destroy()
                        throw PluginError(.duplicateKey, plugin: name, file: library.path,
                                          reason: "device key '\(key)' is already provided by plugin '\(other)'; two plugins may not share a key (configure another device_key or disable one)")
                    }
                    deviceKeys[key] = name
                }
                loaded.append(plugin)
                logger.info("plugin loaded", metadata: ["plugin": .string(name), "file": .string(library.path),
                                                        "kind": .string(library.descriptor.kind.description)])
            } catch {
                let isRequired = config.required.contains(entry) || error.plugin.map { config.required.contains($0) } == true
                if isRequired {
                    logger.critical("required plugin failed", metadata: ["error": .string(error.description)])
                    loaded.forEach { $0.instance.destroy() }
                    loaded.removeAll()
                    throw error
                }
                logger.warning("optional plugin skipped", metadata: ["error": .string(error.description)])
                skipped.append(error)
            }
        }
    }

    /// A host that enables nothing at start and makes instances on demand (storage proxy,
    /// manager).
    public convenience init(searchPaths: [String], logger: Logger = Logger(label: "hangar.plugin-host")) throws(PluginError) {
        try self.init(config: PluginHostConfig(searchPaths: searchPaths), logger: logger)
    }

    /// A new instance of the storage plugin `nameOrPath` with `config`.
    /// - Throws: `.notFound` (what the search path has), `.kindMismatch`, `.invalidConfig`, `.createFailed`.
    public func makeStorage(_ nameOrPath: String, config: ConfigValue) throws(PluginError) -> StoragePlugin {
        let plugin = try StoragePlugin(library: catalog.resolve(nameOrPath), config: config)
        track(plugin.instance)
        return plugin
    }

    /// A new instance of the scheduler plugin `nameOrPath`.
    public func makeScheduler(_ nameOrPath: String, config: ConfigValue = .emptyTable) throws(PluginError) -> SchedulerPlugin {
        let plugin = try SchedulerPlugin(library: catalog.resolve(nameOrPath), config: config)
        track(plugin.instance)
        return plugin
    }

    /// A new instance of the agent-selector plugin `nameOrPath`.
    public func makeAgentSelector(_ nameOrPath: String, config: ConfigValue = .emptyTable) throws(PluginError) -> AgentSelectorPlugin {
        let plugin = try AgentSelectorPlugin(library: catalog.resolve(nameOrPath), config: config)
        track(plugin.instance)
        return plugin
    }

    private func track(_ instance: PluginInstance) {
        made.withLock { $0[ObjectIdentifier(instance)] = instance }
        logger.debug("plugin instance made", metadata: ["plugin": .string(instance.library.descriptor.name)])
    }

    /// Destroys an instance made on demand (waiting out calls in flight) and forgets it.
    public func release(_ instance: PluginInstance) {
        _ = made.withLock { $0.removeValue(forKey: ObjectIdentifier(instance)) }
        instance.destroy()
    }

    /// How many instances made on demand are alive.
    public var madeInstanceCount: Int { made.withLock { $0.count } }

    /// The accelerator plugins that loaded.
    public var accelerators: [AcceleratorPlugin] {
        loaded.compactMap { if case .accelerator(let p) = $0 { p } else { nil } }
    }

    /// Destroys every instance, enabled or made on demand (libraries stay loaded).
    public func shutdown() {
        for instance in made.withLock({ all in defer { all.removeAll() }; return Array(all.values) }) { instance.destroy() }
        for plugin in loaded.reversed() { plugin.instance.destroy() }
        loaded.removeAll()
    }
}
