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
        Exits non-zero if any check fails; each failure names the header rule it broke.
        `--list` prints every check with the rule it enforces.
        """)

    @Argument(help: "A plugin name on the search path, or a library file path.")
    var plugin: String?

    @OptionGroup var location: PluginLocationOptions

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "List every check and the header rule it enforces, then exit.")
    var list = false

    func validate() throws {
        if !list && plugin == nil { throw ValidationError("name a plugin (or a library path) to verify, or pass --list") }
    }

    func run() throws {
        if list { return try printRules() }
        let hostConfig = try location.hostConfig()
        let name = plugin ?? ""
        let resolved: Result<PluginLibrary, PluginError> = Result { () throws(PluginError) in
            try PluginCatalog.scan(hostConfig.searchPaths).resolve(name)
        }
        let library: PluginLibrary
        switch resolved {
        case .success(let opened):
            library = opened
        case .failure(let error) where name.contains("/") && error.code != .openFailed:
            // A library that opens but breaks a loading rule is a conformance failure, reported as one.
            return try show(ConformanceSuite.report(loadFailure: error, file: name))
        case .failure(let error):
            throw error
        }
        var config = hostConfig.config(for: library.descriptor.name)
        var scratch: String?
        if library.descriptor.kind == .storage, config == .emptyTable {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-verify-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            scratch = dir
            config = .table([("root", .string(dir))])
        }
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        try show(ConformanceSuite.run(library: library, config: config))
    }

    func show(_ report: ConformanceReport) throws {
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
                if check.outcome == .fail { print("        rule (\(check.rule))") }
            }
            let failed = report.failures.count
            print("\(report.checks.filter { $0.outcome == .pass }.count) passed, \(failed) failed")
        }
        if !report.passed { throw ExitCode(1) }
    }

    func printRules() throws {
        if json { return try printJSON(ConformanceRules.all) }
        for rule in ConformanceRules.all {
            let kinds = rule.kinds.isEmpty ? "all kinds" : rule.kinds.joined(separator: ", ")
            print("\(rule.id)  [\(kinds); \(rule.header)]\n    \(rule.rule)")
        }
    }
}
