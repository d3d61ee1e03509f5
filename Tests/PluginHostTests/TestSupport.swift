import Foundation
import PluginHost

/// Where the bundled plugin libraries are: next to the test runner, which SwiftPM puts in
/// the bin folder (`PLUGIN_DIR` overrides, e.g. for installed plugins).
enum PluginPaths {
    static let binDir: String = {
        if let dir = ProcessInfo.processInfo.environment["PLUGIN_DIR"] { return dir }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }()

    static func bundled(_ product: String) -> String { "\(binDir)/lib\(product).so" }

    /// The repository root (for C fixture sources and the ABI headers).
    static let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// Builds C test fixtures into shared libraries with the system C compiler, as a vendor would.
enum FixtureCompiler {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Compiles `sources` (paths relative to the repo root) into `output`.
    /// Plugins hide everything but their entry symbol; a stand-in for a vendor library
    /// (`hiddenVisibility: false`) exports all its functions, as the real one does.
    /// `abiInclude` replaces the ABI headers (a fixture built against an older ABI's copy).
    static func build(_ sources: [String], output: String, defines: [String] = [], extraFlags: [String] = [],
                      hiddenVisibility: Bool = true, abiInclude: String = "PluginAPI/include") throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cc", "-std=c11", "-D_GNU_SOURCE", "-shared", "-fPIC"] + (hiddenVisibility ? ["-fvisibility=hidden"] : []) + [
                             "-I\(PluginPaths.repoRoot)/\(abiInclude)", "-I\(PluginPaths.repoRoot)/Plugins/Support/include", "-o", output]
            + defines.map { "-D\($0)" } + extraFlags + sources.map { "\(PluginPaths.repoRoot)/\($0)" } + ["-ldl"]
        let pipe = Pipe()
        process.standardError = pipe
        try process.run()
        let errors = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure(description: "cc failed for \(output): \(errors)") }
    }

    /// Builds the configurable accelerator fixture with the given switches.
    static func fixture(_ name: String, in dir: String, defines: [String] = []) throws -> String {
        let path = "\(dir)/libhangar-\(name).so"
        try build(["Tests/Fixtures/TestPlugins/fixture_accel.c"], output: path, defines: defines)
        return path
    }
}

/// A fresh temporary folder, removed by the caller with `remove()`.
struct TemporaryDirectory {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
    func write(_ name: String, _ text: String) throws -> String {
        let file = "\(path)/\(name)"
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// Parses a TOML snippet as a plugin config table.
func tomlConfig(_ text: String) throws -> ConfigValue {
    let config = try PluginHostConfig.parse(toml: "[plugins]\nenabled = [\"x\"]\n[plugins.config.x]\n" + text, source: "test")
    return config.config(for: "x")
}
