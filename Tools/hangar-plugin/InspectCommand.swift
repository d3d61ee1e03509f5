import ArgumentParser
import Foundation
import PluginHost

/// `hangar-plugin inspect`: everything the descriptor says.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a plugin's descriptor, including its config schema.")

    @Argument(help: "A plugin name on the search path, or a library file path.")
    var plugin: String

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    struct Output: Encodable {
        var file: String
        var descriptor: PluginDescriptor
        var threadSafe: Bool
        var singleInstance: Bool
        var capabilities: [String]
    }

    func run() throws {
        let library = try PluginCatalog.scan(location.hostConfig().searchPaths).resolve(plugin)
        let d = library.descriptor
        let output = Output(file: library.path, descriptor: d, threadSafe: d.isThreadSafe, singleInstance: d.isSingleInstance,
                            capabilities: CapabilityNames.names(kind: d.kind, bits: d.capabilities))
        if json {
            // The config schema is itself JSON: embed it as an object rather than as an escaped
            // string, so `jq .descriptor.configSchema.properties` reads it directly.
            let encoder = JSONEncoder()
            guard var object = try JSONSerialization.jsonObject(with: encoder.encode(output)) as? [String: Any],
                  var descriptor = object["descriptor"] as? [String: Any] else { return try printJSON(output) }
            if let schema = d.configSchema, let parsed = try? JSONSerialization.jsonObject(with: Data(schema.utf8)) {
                descriptor["configSchema"] = parsed
            }
            object["descriptor"] = descriptor
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var lines = [
            ("name", d.name), ("kind", d.kind.description), ("version", d.version), ("vendor", d.vendor),
            ("license", d.license), ("description", d.description), ("abi", "\(d.abiMajor).\(d.abiMinor) (descriptor \(d.structSize) bytes)"),
            ("threading", d.isThreadSafe ? "thread-safe" : "serialised by the host" + (d.isSingleInstance ? ", one instance per process" : "")),
            ("capabilities", output.capabilities.isEmpty ? "none" : output.capabilities.joined(separator: ", ")),
            ("file", library.path),
        ]
        if let slots = d.staticSlotNames { lines.append(("slots", slots.joined(separator: ", "))) }
        if let homepage = d.homepage { lines.append(("homepage", homepage)) }
        for (key, value) in lines { print("\(key.padding(toLength: 13, withPad: " ", startingAt: 0))\(value)") }
        if let schema = d.configSchema {
            print("config schema:")
            if let data = schema.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
               let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
                print(String(decoding: pretty, as: UTF8.self))
            } else {
                print(schema)
            }
        } else {
            print("config schema: none (any config accepted)")
        }
    }
}

/// Names of the capability bits each kind defines.
enum CapabilityNames {
    static func names(kind: PluginKind, bits: UInt64) -> [String] {
        let known: [(UInt64, String)] = switch kind {
        case .accelerator: [(1 << 0, "fractional"), (1 << 1, "cdi"), (1 << 2, "node-metrics"), (1 << 3, "container-metrics"),
                            (1 << 4, "health-watch"), (1 << 5, "needs-release")]
        case .storage: [(1 << 0, "quota"), (1 << 1, "fast-clone"), (1 << 2, "fast-usage"), (1 << 3, "metrics")]
        case .scheduler, .agentSelector: []
        }
        var out = known.filter { bits & $0.0 != 0 }.map(\.1)
        let unknown = bits & ~known.reduce(0) { $0 | $1.0 }
        if unknown != 0 { out.append(String(format: "unknown-bits-0x%llx", unknown)) }
        return out
    }
}
