import ClusterProtocol
import ConfigFile
import ContainerEngine
import Foundation
import PluginHost
import Sandbox

/// How this agent sandboxes its kernels (`[sandbox]` in its config): the jail's mode and policy,
/// whether the engine's own seccomp profile stays on, and the CPU-count hook and LXCFS files.
public struct SandboxSettings: Sendable, Equatable {
    /// What every kernel gets unless its resource group says otherwise.
    public var mode: SandboxMode = .enforce
    /// The default policy with the agent's `deny`/`allow` applied.
    public var policy: SandboxPolicy = .default
    /// Keep the engine's own seccomp profile under Hangar's (the default); `false` passes
    /// `seccomp=unconfined`, so Hangar's filter is the only one.
    public var engineSeccomp = true
    /// The CPU-count hook on this host (preloaded through /etc/ld.so.preload); nil: none.
    public var hookPath: String? = SandboxSettings.defaultHookPath
    /// Where LXCFS serves its /proc files; they are mounted when it answers there.
    public var lxcfsRoot = "/var/lib/lxcfs"

    public init() {}

    /// No jail, no hook: the kernel gets what the engine gives.
    public static var disabled: SandboxSettings {
        var s = SandboxSettings()
        s.mode = .none
        s.hookPath = nil
        s.lxcfsRoot = ""
        return s
    }

    /// Reads `[sandbox]`.
    /// - Throws: `ConfigFileError` naming the file, the key and the syscall that is wrong.
    public static func load(_ file: ConfigFile) throws -> SandboxSettings {
        var settings = SandboxSettings()
        let s = try file.section("sandbox")
        try s.checkKeys(["mode": "\"enforce\", \"watch\" or \"none\"", "deny": "array of syscall names", "allow": "array of syscall names",
                         "engine_seccomp": "boolean", "hook": "boolean", "hook_path": "string (file path)", "lxcfs": "string (directory)"])
        let mode = try s.string("mode", default: settings.mode.rawValue)
        guard let m = SandboxMode(rawValue: mode) else {
            throw ConfigFileError(file: file.path, key: "sandbox.mode", "expected \"enforce\", \"watch\" or \"none\", found \"\(mode)\"")
        }
        settings.mode = m
        let layer = try SandboxLayer(section: s)
        do {
            try settings.policy.apply(layer)
        } catch {
            if case .invalid(_, let key, let message) = error { throw ConfigFileError(file: file.path, key: "sandbox.\(key)", message) }
            throw ConfigFileError(file: file.path, key: "sandbox", error.description)
        }
        settings.engineSeccomp = try s.bool("engine_seccomp", default: true)
        if let path = try s.optionalString("hook_path") {
            guard FileManager.default.fileExists(atPath: path) else {
                throw ConfigFileError(file: file.path, key: "sandbox.hook_path", "\"\(path)\" does not exist; build it with `swift build` (it sits next to hangard as \(hookFileName))")
            }
            settings.hookPath = path
        }
        if try !s.bool("hook", default: true) { settings.hookPath = nil }
        settings.lxcfsRoot = try s.string("lxcfs", default: settings.lxcfsRoot)
        return settings
    }

    /// The hook's file name, chosen so that plugin scans (`libhangar-*.so`) never pick it up.
    public static let hookFileName = "hangar-hook.so"

    /// The hook the build put in the agent's resources next to this executable, or an
    /// installed one, if either exists.
    public static var defaultHookPath: String? {
        let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        return ["\(beside)/Hangar_Agent.resources/\(hookFileName)", "\(beside)/\(hookFileName)", "/usr/local/lib/hangar/\(hookFileName)"]
            .first { FileManager.default.fileExists(atPath: $0) }
    }
}

/// The sandbox one kernel gets: the mode and the policy file the runner installs.
struct KernelJail: Sendable {
    var mode: SandboxMode
    /// The runner's policy text; nil in mode `none`.
    var policyText: String?

    /// Image labels that adjust the policy for one image (comma-separated syscall names).
    static let allowLabel = "ai.hangar.sandbox.allow"
    static let denyLabel = "ai.hangar.sandbox.deny"

    /// The agent's policy, then the resource group's layer, the image's labels and the
    /// syscalls the allocated devices' plugins need.
    /// - Throws: `KernelError.invalid` saying which layer is wrong; the kernel is not started.
    static func resolve(_ request: KernelRequest, settings: SandboxSettings, imageLabels: [String: String],
                        edits: [ContainerEdits]) throws(KernelError) -> KernelJail {
        var mode = settings.mode
        if let text = request.sandbox?.mode {
            guard let m = SandboxMode(rawValue: text) else {
                throw .invalid("sandbox: the resource group's mode \"\(text)\" is not enforce, watch or none; the kernel was not started")
            }
            mode = m
        }
        guard mode != .none else { return KernelJail(mode: .none, policyText: nil) }
        var policy = settings.policy
        do {
            if let text = request.sandbox?.policy, !text.isEmpty {
                try policy.apply(try SandboxLayer(toml: text, source: "the resource group's sandbox policy"))
            }
            try policy.apply(SandboxLayer(source: "image \(request.image) labels", deny: SandboxLayer.names(imageLabels[denyLabel]),
                                          allow: SandboxLayer.names(imageLabels[allowLabel])))
            try policy.apply(SandboxLayer(source: "accelerator plugins' container edits", allow: edits.flatMap(\.allowedSyscalls)))
        } catch {
            throw .invalid("sandbox: \(error); the kernel was not started")
        }
        return KernelJail(mode: mode, policyText: policy.runnerText(mode: mode))
    }
}
