import Foundation
import TOMLKit

/// The `[plugins]` section of a role's TOML config:
///
/// ```toml
/// [plugins]
/// search_paths = ["/usr/lib/hangar/plugins"]   # optional; defaults below
/// enabled = ["mock", "cuda"]                  # plugin names or library paths
/// [plugins.config.cuda]
/// required = false                            # host-only key: fail startup if the plugin fails
/// device_mask = ["GPU-..."]                   # everything else goes to the plugin
/// ```
public struct PluginHostConfig: Sendable, Equatable {
    /// Directories scanned for `libhangar-*.so`, in order.
    public var searchPaths: [String]
    /// Plugin names (or library paths) to create, in order.
    public var enabled: [String]
    /// Per-plugin configuration tables (without the host-only `required` key).
    public var pluginConfigs: [String: ConfigValue]
    /// Plugins whose failure stops startup.
    public var required: Set<String>
    /// Where the config came from, for error messages.
    public var source: String

    public init(searchPaths: [String] = PluginHostConfig.defaultSearchPaths(), enabled: [String] = [],
                pluginConfigs: [String: ConfigValue] = [:], required: Set<String> = [], source: String = "defaults") {
        self.searchPaths = searchPaths
        self.enabled = enabled
        self.pluginConfigs = pluginConfigs
        self.required = required
        self.source = source
    }

    /// `$HANGAR_PLUGIN_PATH` (colon-separated), then the executable's folder, then
    /// `../lib/hangar/plugins` beside it, then the system plugin folders.
    public static func defaultSearchPaths() -> [String] {
        var paths: [String] = []
        if let env = ProcessInfo.processInfo.environment["HANGAR_PLUGIN_PATH"] {
            paths += env.split(separator: ":").map(String.init)
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        paths.append(exe.path)
        paths.append(exe.deletingLastPathComponent().appendingPathComponent("lib/hangar/plugins").path)
        paths += ["/usr/local/lib/hangar/plugins", "/usr/lib/hangar/plugins"]
        return paths
    }

    /// The configuration handed to a plugin (an empty table if the operator gave none).
    public func config(for name: String) -> ConfigValue { pluginConfigs[name] ?? .emptyTable }

    /// Reads the `[plugins]` section of a TOML file. A file without one gives the defaults.
    /// - Throws: `PluginError(.hostConfig)` naming the file, the key and the expected type.
    public static func load(file: String) throws(PluginError) -> PluginHostConfig {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw PluginError(.hostConfig, file: file, reason: "cannot read the config file: \(error.localizedDescription)")
        }
        return try parse(toml: text, source: file)
    }

    /// Parses TOML text; `source` names it in errors.
    public static func parse(toml text: String, source: String) throws(PluginError) -> PluginHostConfig {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw PluginError(.hostConfig, file: source, reason: "invalid TOML at line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        } catch {
            throw PluginError(.hostConfig, file: source, reason: "invalid TOML: \(error)")
        }
        var config = PluginHostConfig(source: source)
        guard let section = ConfigValue(toml: table)["plugins"] else { return config }
        guard case .table(let entries) = section else {
            throw PluginError(.hostConfig, file: source, reason: "'plugins' must be a table ([plugins])")
        }
        func strings(_ value: ConfigValue, _ key: String) throws(PluginError) -> [String] {
            guard case .array(let items) = value else {
                throw PluginError(.hostConfig, file: source, reason: "'plugins.\(key)' must be an array of strings, found \(value.typeName)")
            }
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else {
                    throw PluginError(.hostConfig, file: source, reason: "'plugins.\(key)' must contain only strings, found \(item.typeName) \(item.json)")
                }
                out.append(s)
            }
            return out
        }
        for (key, value) in entries {
            switch key {
            case "search_paths":
                // Relative paths are relative to the config file, not to wherever the daemon was
                // started: resolve the file's own path against the working directory first (a
                // relative URL would otherwise lose its base when standardized).
                let file = source.hasPrefix("/") ? URL(fileURLWithPath: source)
                    : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(source)
                let dir = file.standardizedFileURL.deletingLastPathComponent()
                config.searchPaths = try strings(value, key).map {
                    $0.hasPrefix("/") ? $0 : dir.appendingPathComponent($0).standardizedFileURL.path
                }
            case "enabled":
                config.enabled = try strings(value, key)
            case "config":
                guard case .table(let plugins) = value else {
                    throw PluginError(.hostConfig, file: source, reason: "'plugins.config' must be a table of per-plugin tables ([plugins.config.NAME])")
                }
                for (name, pluginConfig) in plugins {
                    guard case .table = pluginConfig else {
                        throw PluginError(.hostConfig, file: source, reason: "'plugins.config.\(name)' must be a table, found \(pluginConfig.typeName)")
                    }
                    if let required = pluginConfig["required"] {
                        guard case .bool(let flag) = required else {
                            throw PluginError(.hostConfig, file: source, reason: "'plugins.config.\(name).required' must be a boolean (true or false), found \(required.typeName)")
                        }
                        if flag { config.required.insert(name) }
                    }
                    config.pluginConfigs[name] = pluginConfig.removing("required")
                }
            default:
                throw PluginError(.hostConfig, file: source, reason: "unknown key 'plugins.\(key)'; known keys: search_paths (array of strings), enabled (array of strings), config (table)")
            }
        }
        for name in config.pluginConfigs.keys where !config.enabled.contains(name) {
            throw PluginError(.hostConfig, file: source, reason: "'plugins.config.\(name)' configures a plugin that is not in 'plugins.enabled'; add \"\(name)\" to enabled or remove the table")
        }
        return config
    }
}
