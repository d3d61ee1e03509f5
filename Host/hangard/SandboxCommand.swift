import Agent
import ArgumentParser
import ConfigFile
import Foundation

/// `hangard sandbox`: what an agent's kernels are sandboxed with, for an operator tuning a
/// policy (and the file the runner reads, for benchmarks and audits).
struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Print the kernel sandbox an agent config gives: the mode, the denied calls, the hook and LXCFS.")

    @Option(name: .long, help: "The agent's TOML config file (its [sandbox] section); none: the defaults.")
    var config: String?

    @Flag(name: .customLong("runner-policy"), help: "Print only the policy file the in-container runner installs.")
    var runnerPolicy = false

    func run() throws {
        let file = try config.map { path throws in try ConfigFile(path: path) } ?? ConfigFile(emptyAt: "defaults")
        try file.checkSections(hangardSections)
        let settings = try SandboxSettings.load(file)
        if runnerPolicy {
            print(settings.policy.runnerText(mode: settings.mode == .none ? .enforce : settings.mode), terminator: "")
            return
        }
        print("mode: \(settings.mode.rawValue)")
        print("engine seccomp profile: \(settings.engineSeccomp ? "kept" : "off (seccomp=unconfined)")")
        print("cpu-count hook: \(settings.hookPath ?? "none")")
        print("lxcfs: \(settings.lxcfsRoot.isEmpty ? "off" : settings.lxcfsRoot)")
        let rules = settings.policy.rules.values.sorted { $0.description < $1.description }
        print("denied (\(rules.count)): " + rules.map { $0.errno == EPERM ? $0.description : "\($0.description) (errno \($0.errno))" }.joined(separator: ", "))
    }
}
