import Foundation
import Testing

/// The layering of ARCHITECTURE.md, checked against every import in the tree.
@Suite struct ArchitectureTests {
    static let root = PluginPaths.repoRoot
    /// Modules importable by anyone: the standard library, the OS, and structured-concurrency helpers.
    static let everywhere: Set<String> = ["Foundation", "Dispatch", "Synchronization", "Glibc", "Darwin", "os", "Testing", "XCTest"]
    static let http: Set<String> = ["AsyncHTTPClient", "NIOCore", "NIOPosix", "NIOHTTP1", "NIOHTTPTypes", "HTTPTypes", "Hummingbird", "HummingbirdWebSocket",
                                    "HummingbirdWSClient", "NIOSSL", "Logging", "Metrics", "Prometheus", "GraphQL", "Graphiti", "Crypto", "_CryptoExtras"]

    /// folder → (module, what it may import).
    static let allowed: [(folder: String, module: String, imports: Set<String>)] = [
        ("Host/ConfigFile", "ConfigFile", ["TOMLKit"]),
        ("Host/Identity", "Identity", ["Crypto", "_CryptoExtras"]),
        ("Host/ClusterProtocol", "ClusterProtocol", []),
        ("Host/StreamTunnel", "StreamTunnel", ["Crypto", "HTTPTypes", "HummingbirdWebSocket", "NIOCore", "NIOPosix", "NIOSSL", "NIOWebSocket"]),
        ("Host/Sandbox", "Sandbox", ["CSeccomp", "ConfigFile"]),
        ("Host/PluginHost", "PluginHost", ["PluginAPI", "CLtdl", "ConfigFile", "Logging", "TOMLKit"]),
        ("Host/AgentResources", "AgentResources", ["CNuma", "ClusterProtocol"]),
        ("Host/ContainerEngine", "ContainerEngine", ["AsyncHTTPClient", "NIOCore", "NIOHTTP1"]),
        ("Host/InMemoryEngine", "InMemoryEngine", ["ContainerEngine"]),
        ("Host/StateStore", "StateStore", ["CSQLite", "CLibpq", "ClusterProtocol", "Identity"]),
        ("Host/PluginConformance", "PluginConformance", ["PluginHost", "PluginAPI"]),
        ("Host/Agent", "Agent", http.union(["StreamTunnel", "AgentResources", "ContainerEngine", "PluginHost", "ClusterProtocol", "ConfigFile", "Sandbox"])),
        ("Host/Manager", "Manager", http.union(["StreamTunnel", "StateStore", "Identity", "ClusterProtocol", "ConfigFile", "PluginHost", "Sandbox", "Yams"])),
        ("Host/StorageProxy", "StorageProxy", http.union(["PluginHost", "ConfigFile", "ClusterProtocol"])),
        ("Host/WebServer", "WebServer", http.union(["StreamTunnel", "ClusterProtocol", "Identity", "ConfigFile", "CZlib"])),
        ("Host/hangard", "hangard", ["Agent", "Manager", "StorageProxy", "WebServer", "StateStore", "PluginHost", "ConfigFile", "Identity", "ContainerEngine", "Sandbox",
                                     "ArgumentParser", "Logging"]),
        ("Tools/hangar", "HangarCLI", http.union(["StreamTunnel", "Identity", "ConfigFile", "ClusterProtocol", "ArgumentParser"])),
        ("Tools/hangar-plugin", "HangarPluginCLI", ["PluginHost", "PluginConformance", "ArgumentParser", "Logging"]),
        ("Tools/hangar-bench", "HangarBench", ["PluginHost", "PluginAPI", "Manager", "StateStore", "ClusterProtocol"]),
    ]

    static func imports(in folder: String) throws -> [(file: String, module: String)] {
        let dir = "\(root)/\(folder)"
        guard let files = FileManager.default.enumerator(atPath: dir)?.compactMap({ $0 as? String }) else { return [] }
        var out: [(String, String)] = []
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init).filter { !$0.hasPrefix("@") }
                if words.first == "import", words.count >= 2 { out.append(("\(folder)/\(file)", words[1])) }
            }
        }
        return out
    }

    /// A folder that only maps a C library into Swift (CLtdl, CSQLite, …) holds no logic.
    static func isModuleMap(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(root)/Host/\(folder)/module.modulemap")
    }

    @Test func everyModuleImportsOnlyWhatItsLayerAllows() throws {
        var violations: [String] = []
        for (folder, module, imports) in Self.allowed {
            for (file, imported) in try Self.imports(in: folder) where !Self.everywhere.contains(imported) && !imports.contains(imported) {
                violations.append("\(file): \(module) imports \(imported), which ARCHITECTURE.md does not allow it")
            }
        }
        #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
    }

    @Test func everyHostModuleIsInTheTable() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: "\(Self.root)/Host").filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(Self.root)/Host/\(name)", isDirectory: &isDir) && isDir.boolValue
                && !Self.isModuleMap(name) && name != "Runner" && name != "CPUCountHook"
        }
        let listed = Set(Self.allowed.map(\.folder))
        #expect(folders.filter { !listed.contains("Host/\($0)") }.isEmpty, "add the module to ARCHITECTURE.md and this table")
    }

    /// Every Host module with logic has its own test target; the few covered by another
    /// target's tests say where.
    @Test func everyHostModuleHasATestTarget() throws {
        let coveredElsewhere = ["PluginConformance": "PluginHostTests", "InMemoryEngine": "ContainerEngineTests",
                                "Runner": "AgentTests", "hangard": "AgentTests", "CPUCountHook": "AgentTests"]
        let folders = try FileManager.default.contentsOfDirectory(atPath: "\(Self.root)/Host").filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(Self.root)/Host/\(name)", isDirectory: &isDir) && isDir.boolValue
                && !Self.isModuleMap(name)
        }
        for module in folders {
            let target = coveredElsewhere[module] ?? module + "Tests"
            #expect(FileManager.default.fileExists(atPath: "\(Self.root)/Tests/\(target)"), "Host/\(module) has no Tests/\(target)")
        }
    }

    @Test func theSpecificRulesHold() throws {
        // Only the plugin host (and its conformance suite, and the benchmark of both) touches the ABI.
        for (folder, module, imports) in Self.allowed where imports.contains("PluginAPI") {
            #expect(["PluginHost", "PluginConformance", "HangarBench"].contains(module), "\(folder) may not import PluginAPI")
        }
        // SQL lives in the store; roles never import each other.
        for (folder, module, imports) in Self.allowed where module != "StateStore" {
            #expect(imports.isDisjoint(with: ["CSQLite", "CLibpq"]), "\(folder)")
        }
        for role in ["Agent", "Manager", "StorageProxy", "WebServer"] {
            let imports = try #require(Self.allowed.first { $0.module == role }).imports
            #expect(imports.isDisjoint(with: ["Agent", "Manager", "StorageProxy", "WebServer"]), "\(role) imports another role")
        }
    }

    @Test func theManagerWritesNoSQL() throws {
        // Every query is a named StateStore method (tested on SQLite and PostgreSQL).
        let dir = "\(Self.root)/Host/Manager"
        var violations: [String] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("store.database") || line.contains("withConnection") || line.contains(".query(\"") {
                violations.append("Host/Manager/\(file):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
    }

    @Test func pluginsIncludeOnlyTheABIAndTheSupportLibrary() throws {
        let dir = "\(Self.root)/Plugins"
        let files = FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".c") || $0.hasSuffix(".h") } ?? []
        var violations: [String] = []
        for file in files {
            let text = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            for line in text.split(separator: "\n") where line.trimmingCharacters(in: .whitespaces).hasPrefix("#include") {
                // <system.h>, <hangar/...> and a plugin's own "private.h" in its folder; never "../" (another
                // plugin's source) and never the host.
                if line.contains("\"../") || line.contains("Host/") || line.contains(".c\"") || line.contains(".c>") {
                    violations.append("Plugins/\(file): \(line)")
                }
            }
        }
        #expect(files.count > 10)
        #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
    }
}
