import ArgumentParser
import Foundation
import PluginConformance
import PluginHost

/// `hangar-plugin verify`: the conformance suite a vendor runs until their plugin passes.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Run the conformance suite against a plugin and report every contract as pass/fail.",
        discussion: """
        The plugin's config comes from [plugins.config.NAME] of --config. A storage plugin given no
        config is verified on a scratch folder the command creates and removes (config {"root": ...}).
        Exits non-zero if any check fails.
        """)

    @Argument(help: "A plugin name on the search path, or a library file path.")
    var plugin: String

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let hostConfig = try location.hostConfig()
        let library = try PluginCatalog.scan(hostConfig.searchPaths).resolve(plugin)
        var config = hostConfig.config(for: library.descriptor.name)
        var scratch: String?
        if library.descriptor.kind == .storage, config == .emptyTable {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-verify-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            scratch = dir
            config = .table([("root", .string(dir))])
        }
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        let report = ConformanceSuite.run(library: library, config: config)
        if json {
            try printJSON(report)
        } else {
            print("verifying \(report.plugin) (\(report.kind)) from \(report.file)")
            for check in report.checks {
                let mark = switch check.outcome {
                case .pass: "PASS"
                case .fail: "FAIL"
                case .notApplicable: "N/A "
                }
                print("  \(mark)  \(check.id): \(check.detail)")
            }
            let failed = report.checks.filter { $0.outcome == .fail }.count
            print("\(report.checks.filter { $0.outcome == .pass }.count) passed, \(failed) failed")
        }
        if !report.passed { throw ExitCode(1) }
    }
}
