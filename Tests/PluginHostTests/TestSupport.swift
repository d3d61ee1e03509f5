import Foundation
import PluginHost
@_exported import TestSupport

/// Parses a TOML snippet as a plugin config table.
func tomlConfig(_ text: String) throws -> ConfigValue {
    let config = try PluginHostConfig.parse(toml: "[plugins]\nenabled = [\"x\"]\n[plugins.config.x]\n" + text, source: "test")
    return config.config(for: "x")
}
