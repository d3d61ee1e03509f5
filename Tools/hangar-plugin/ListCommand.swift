import ArgumentParser
import PluginHost

/// `hangar-plugin list`: what is on the search path, without creating anything.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the plugins on the search path (kind, name, version, ABI, file) without creating instances.")

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    struct Row: Encodable {
        var kind: String?
        var name: String?
        var version: String?
        var abi: String?
        var file: String
        var error: String?
    }

    func run() throws {
        let host = try location.hostConfig()
        let catalog = PluginCatalog.scan(host.searchPaths)
        let rows: [Row] = catalog.entries.map { entry in
            switch entry {
            case .plugin(let lib):
                let d = lib.descriptor
                return Row(kind: d.kind.description, name: d.name, version: d.version, abi: "\(d.abiMajor).\(d.abiMinor)", file: lib.path)
            case .broken(let path, let error):
                return Row(file: path, error: error.reason)
            }
        }
        if json { return try printJSON(rows) }
        if rows.isEmpty {
            print("No plugins (libhangar-*.so) in: \(host.searchPaths.joined(separator: ":"))")
            return
        }
        print(table(["KIND", "NAME", "VERSION", "ABI", "FILE"], rows.map { r in
            r.error == nil ? [r.kind!, r.name!, r.version!, r.abi!, r.file] : ["broken", "-", "-", "-", "\(r.file): \(r.error!)"]
        }))
    }
}
