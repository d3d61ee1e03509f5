import ClusterProtocol
import Foundation

/// Where the built products and the repository are, for every test target. SwiftPM puts the
/// test runner in the bin folder next to the plugins, executables and the in-container runner
/// (`PLUGIN_DIR` overrides it, e.g. for installed plugins).
public enum PluginPaths {
    public static let binDir: String = {
        if let dir = ProcessInfo.processInfo.environment["PLUGIN_DIR"] { return dir }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }()

    /// A bundled plugin library by product name.
    public static func bundled(_ product: String) -> String { "\(binDir)/lib\(product).so" }

    /// The repository root (for C fixture sources, the ABI headers and fixture trees).
    public static let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// A failure of test scaffolding (a fixture that would not build, a tree that would not copy).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh temporary folder, removed by the caller with `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String
    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
    /// Writes `text` to `name` below the folder (creating folders), returning the full path.
    public func write(_ name: String, _ text: String) throws -> String {
        let file = "\(path)/\(name)"
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

/// Runs a command, returning its exit status and its stdout and stderr together.
public func run(_ arguments: [String], in directory: String? = nil, environment: [String: String]? = nil) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: arguments[0])
    process.arguments = Array(arguments.dropFirst())
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A TCP port on 127.0.0.1 that the kernel reports free (bound to port 0, then released), so
/// parallel suites and the ephemeral range never collide with a guessed one.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket() failed: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestSupportError("cannot find a free port on 127.0.0.1") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Builds C test fixtures into shared libraries with the system C compiler, as a vendor would.
public enum FixtureCompiler {
    /// Compiles `sources` (paths relative to the repo root) into `output`. Plugins hide
    /// everything but their entry symbol; a stand-in for a vendor library
    /// (`hiddenVisibility: false`) exports all its functions, as the real one does.
    /// `abiInclude` replaces the ABI headers (a fixture built against an older ABI's copy).
    public static func build(_ sources: [String], output: String, defines: [String] = [], extraFlags: [String] = [],
                             hiddenVisibility: Bool = true, abiInclude: String = "PluginAPI/include") throws {
        let (status, errors) = try run(["/usr/bin/env", "cc", "-std=c11", "-D_GNU_SOURCE", "-shared", "-fPIC"]
            + (hiddenVisibility ? ["-fvisibility=hidden"] : [])
            + ["-I\(PluginPaths.repoRoot)/\(abiInclude)", "-I\(PluginPaths.repoRoot)/Plugins/Support/include", "-o", output]
            + defines.map { "-D\($0)" } + extraFlags + sources.map { "\(PluginPaths.repoRoot)/\($0)" } + ["-ldl"])
        guard status == 0 else { throw TestSupportError("cc failed for \(output): \(errors)") }
    }

    /// Builds the configurable accelerator fixture with the given switches.
    public static func fixture(_ name: String, in dir: String, defines: [String] = []) throws -> String {
        let path = "\(dir)/libhangar-\(name).so"
        try build(["Tests/Fixtures/TestPlugins/fixture_accel.c"], output: path, defines: defines)
        return path
    }
}

/// A small deterministic random generator (SplitMix64) so that randomised tests reproduce
/// from their seed.
public typealias SplitMix = SplitMix64
