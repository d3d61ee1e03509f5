import CSeccomp
import ConfigFile
import Foundation

/// How a kernel is sandboxed.
public enum SandboxMode: String, Sendable, Codable, CaseIterable {
    /// No filter from Hangar (the engine's own profile still applies). Only an admin sets this,
    /// per resource group.
    case none
    /// The filter is installed but only reports: every call the policy would deny is allowed
    /// and logged (how an operator tunes a policy before enforcing it).
    case watch
    /// Denied calls fail with their errno (EPERM) before they reach the kernel.
    case enforce
}

/// One rule of a policy: a syscall, optionally only when one argument matches.
public struct SandboxRule: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// A condition on one argument: `(argument & mask) == value`.
    public struct Condition: Sendable, Equatable, Hashable {
        public var argument: Int
        public var mask: UInt64
        public var value: UInt64
    }

    public var syscall: String
    /// The condition's name as policies write it (`kill:init`), nil for the whole call.
    public var conditionName: String?
    public var condition: Condition?
    /// The errno the call fails with (EPERM, or ENOSYS where a libc must fall back).
    public var errno: Int32

    /// `name` or `name:condition`, as policies write it.
    public var description: String { conditionName.map { "\(syscall):\($0)" } ?? syscall }

    /// Named argument conditions. A pid argument is compared in its low 32 bits (the kernel
    /// reads an int), so high garbage bits cannot sneak past the rule.
    static let conditions: [String: [String: Condition]] = {
        let initPID = Condition(argument: 0, mask: 0xFFFF_FFFF, value: 1)
        let newUser = UInt64(0x1000_0000) // CLONE_NEWUSER
        return [
            // Signals and handles aimed at PID 1, the runner: user code cannot end it or its sessions.
            "init": ["kill": initPID, "tkill": initPID, "tgkill": initPID, "rt_sigqueueinfo": initPID, "rt_tgsigqueueinfo": initPID,
                     "pidfd_open": initPID, "process_vm_readv": initPID, "process_vm_writev": initPID,
                     "ptrace": Condition(argument: 1, mask: 0xFFFF_FFFF, value: 1)],
            // New user namespaces: the way around every capability the container was not given.
            "newuser": ["unshare": Condition(argument: 0, mask: newUser, value: newUser),
                        "clone": Condition(argument: 0, mask: newUser, value: newUser)],
        ]
    }()

    /// Parses `name` or `name:condition`.
    /// - Throws: `SandboxPolicyError` naming what is unknown.
    public static func parse(_ text: String, errno: Int32 = EPERM) throws(SandboxPolicyError) -> SandboxRule {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        guard SyscallNames.isKnown(name) else { throw .unknownSyscall(name) }
        guard parts.count == 2 else { return SandboxRule(syscall: name, conditionName: nil, condition: nil, errno: errno) }
        guard let condition = conditions[parts[1]]?[name] else {
            let known = conditions.filter { $0.value[name] != nil }.keys.sorted().map { "\(name):\($0)" }
            throw .unknownCondition(text, known: known)
        }
        return SandboxRule(syscall: name, conditionName: parts[1], condition: condition, errno: errno)
    }

    /// The rule as one line of the runner's policy file (see Host/Runner/README.md).
    var runnerLine: String {
        var line = "deny \(syscall) \(errno)"
        if let condition { line += " \(condition.argument) \(condition.mask) \(condition.value)" }
        return line
    }
}

/// Syscall names as libseccomp knows them, for every architecture it supports, so a policy
/// written on one machine means the same on another.
public enum SyscallNames {
    public static func isKnown(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
            && seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR
    }
}

/// A problem with a sandbox policy, named so an operator can fix it.
public enum SandboxPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownSyscall(String)
    case unknownCondition(String, known: [String])
    case invalid(source: String, key: String, message: String)

    public var description: String {
        switch self {
        case .unknownSyscall(let name): "'\(name)' is not a syscall libseccomp knows (check the spelling: e.g. umount2, not umount)"
        case .unknownCondition(let text, let known):
            "'\(text)' has an unknown condition" + (known.isEmpty ? "; this syscall has none" : "; known: \(known.joined(separator: ", "))")
        case .invalid(let source, let key, let message): "\(source): '\(key)': \(message)"
        }
    }
}

/// What a kernel may not call: the default policy, then each layer (the agent's config, the
/// resource group's, the image's labels, the allocated devices' plugins) denying more or
/// allowing back.
public struct SandboxPolicy: Sendable, Equatable {
    /// Denied calls by `description` (`mount`, `kill:init`).
    public private(set) var rules: [String: SandboxRule]

    public init(rules: [SandboxRule] = []) {
        self.rules = Dictionary(rules.map { ($0.description, $0) }, uniquingKeysWith: { _, b in b })
    }

    /// Hangar's default: what a container has no business doing. The engine's profile may
    /// deny some of these too; Hangar denies them whatever the engine allows.
    ///
    /// - Mounts and filesystem views (`mount`, `umount2`, `pivot_root`, the new mount API
    ///   `fsopen`…`mount_setattr`, `open_tree`, `move_mount`): the container's view of files is
    ///   what the agent mounted, including the read-only config and the runner.
    /// - Kernel code and state (`kexec_*`, `*_module`, `bpf`, `perf_event_open` — side channels
    ///   and a large attack surface —, `reboot`, `swapon`/`swapoff`, `acct`, `syslog`,
    ///   `iopl`/`ioperm`, `lookup_dcookie`, `quotactl`, `vhangup`).
    /// - The kernel keyring (`keyctl`, `add_key`, `request_key`): not namespaced.
    /// - File handles (`open_by_handle_at`, `name_to_handle_at`): open_by_handle_at is how the
    ///   "shocker" escape read host files; handles bypass the mount view.
    /// - `userfaultfd`: a common exploit primitive for kernel races; no notebook needs it.
    /// - The clock (`settimeofday`, `clock_settime`, `clock_adjtime`, `stime`): not namespaced.
    /// - Namespaces: `setns`, and `unshare`/`clone` with CLONE_NEWUSER (a new user namespace
    ///   grants every capability inside it); `clone3` fails with ENOSYS because its flags sit
    ///   in memory a filter cannot read, and libcs then fall back to `clone`.
    /// - PID 1 (the runner): `kill`, `tkill`, `tgkill`, `rt_*sigqueueinfo`, `pidfd_open`,
    ///   `ptrace` and `process_vm_*` aimed at it; user code may still signal and trace
    ///   everything it started.
    public static let `default`: SandboxPolicy = {
        let plain = ["mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount",
                     "mount_setattr", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
                     "perf_event_open", "reboot", "swapon", "swapoff", "acct", "syslog", "iopl", "ioperm", "lookup_dcookie", "quotactl",
                     "vhangup", "keyctl", "add_key", "request_key", "open_by_handle_at", "name_to_handle_at", "userfaultfd",
                     "settimeofday", "clock_settime", "clock_adjtime", "stime", "setns"]
        let conditional = ["kill:init", "tkill:init", "tgkill:init", "rt_sigqueueinfo:init", "rt_tgsigqueueinfo:init", "pidfd_open:init",
                           "ptrace:init", "process_vm_readv:init", "process_vm_writev:init", "unshare:newuser", "clone:newuser"]
        var rules = (plain + conditional).map { try! SandboxRule.parse($0) }
        rules.append(try! SandboxRule.parse("clone3", errno: ENOSYS))
        return SandboxPolicy(rules: rules)
    }()

    /// Denies more.
    public mutating func deny(_ names: [String]) throws(SandboxPolicyError) {
        for name in names {
            let rule = try SandboxRule.parse(name)
            rules[rule.description] = rule
        }
    }

    /// Allows back: a plain name allows the whole call (its conditional rules too), a
    /// `name:condition` only that rule.
    public mutating func allow(_ names: [String]) throws(SandboxPolicyError) {
        for name in names {
            let rule = try SandboxRule.parse(name)
            if rule.conditionName == nil {
                rules = rules.filter { $0.value.syscall != rule.syscall }
            } else {
                rules[rule.description] = nil
            }
        }
    }

    /// Applies one TOML layer: `deny = [...]` then `allow = [...]`.
    /// - Throws: `SandboxPolicyError.invalid` naming the source, the key and the entry.
    public mutating func apply(_ layer: SandboxLayer) throws(SandboxPolicyError) {
        do {
            try deny(layer.deny)
        } catch {
            throw .invalid(source: layer.source, key: "deny", message: error.description)
        }
        do {
            try allow(layer.allow)
        } catch {
            throw .invalid(source: layer.source, key: "allow", message: error.description)
        }
    }

    /// The policy file the runner reads (format in Host/Runner/README.md).
    public func runnerText(mode: SandboxMode) -> String {
        (["hangar-sandbox 1", "mode \(mode.rawValue)"] + rules.keys.sorted().map { rules[$0]!.runnerLine }).joined(separator: "\n") + "\n"
    }
}

/// One layer of a policy as an operator writes it in TOML:
///
/// ```toml
/// deny = ["ptrace"]
/// allow = ["perf_event_open", "unshare:newuser"]
/// ```
public struct SandboxLayer: Sendable, Equatable {
    public var source: String
    public var deny: [String]
    public var allow: [String]

    public init(source: String, deny: [String] = [], allow: [String] = []) {
        self.source = source
        self.deny = deny
        self.allow = allow
    }

    /// Reads `deny` and `allow` from a config section (unknown keys are the caller's to check).
    public init(section: ConfigSection) throws(ConfigFileError) {
        self.init(source: "\(section.file) [\(section.name)]", deny: try section.strings("deny", default: []),
                  allow: try section.strings("allow", default: []))
    }

    /// Parses a standalone TOML policy (a resource group's): only `deny` and `allow`.
    /// - Throws: `SandboxPolicyError.invalid` naming the source and the key.
    public init(toml: String, source: String) throws(SandboxPolicyError) {
        do {
            let file = try ConfigFile(toml: "[policy]\n" + toml, path: source)
            let section = try file.section("policy")
            try section.checkKeys(["deny": "array of syscall names", "allow": "array of syscall names"])
            self = try SandboxLayer(section: section)
            self.source = source
        } catch {
            throw .invalid(source: source, key: error.key.map { $0.replacingOccurrences(of: "policy.", with: "") } ?? "policy", message: error.message)
        }
        var check = SandboxPolicy()
        try check.apply(self)
    }

    /// Comma- or space-separated names, as image labels carry them.
    public static func names(_ label: String?) -> [String] {
        (label ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }
}
