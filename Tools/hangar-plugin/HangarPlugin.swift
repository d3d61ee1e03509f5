import ArgumentParser
import Foundation
import Logging
import PluginHost

/// `hangar-plugin`: inspect and verify Hangar plugins without starting any service.
@main
struct HangarPlugin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hangar-plugin",
        abstract: "List, inspect and verify Hangar plugins (shared libraries speaking the Hangar C ABI).",
        discussion: """
        Plugins are found as libhangar-*.so in the search path: --search-path options, else the
        [plugins] search_paths of --config, else $HANGAR_PLUGIN_PATH, this executable's folder,
        ../lib/hangar/plugins beside it, /usr/local/lib/hangar/plugins and /usr/lib/hangar/plugins.
        """,
        subcommands: [ListCommand.self, InspectCommand.self, DevicesCommand.self, EditsCommand.self, VerifyCommand.self])

    /// Plugin logs go to stderr (warnings and worse unless HANGAR_LOG_LEVEL says otherwise), so
    /// that `--json` output on stdout stays parseable.
    static func main() {
        let level = ProcessInfo.processInfo.environment["HANGAR_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        Self.main(nil)
    }
}

/// Options every subcommand shares: where plugins are and which config to read.
struct PluginLocationOptions: ParsableArguments {
    @Option(name: .customLong("search-path"), help: "A folder to scan for libhangar-*.so (repeatable).")
    var searchPaths: [String] = []

    @Option(name: .long, help: "A TOML file with a [plugins] section (search paths, enabled plugins, per-plugin config).")
    var config: String?

    /// The host config: the file's, with --search-path overriding its search paths.
    func hostConfig() throws -> PluginHostConfig {
        var host = try config.map { path throws(PluginError) in try PluginHostConfig.load(file: path) } ?? PluginHostConfig()
        if !searchPaths.isEmpty { host.searchPaths = searchPaths.map { URL(fileURLWithPath: $0).standardized.path } }
        return host
    }
}

/// Prints an encodable value as pretty JSON with stable key order.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Left-aligned text columns.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

/// Exits with a message on stderr and status 1; used for errors a user must act on.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}
