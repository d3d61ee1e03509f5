import ConfigFile
import Foundation
import Sandbox
import Testing
import TestSupport

/// Sandbox policies: the default, how layers deny and allow, the errors an operator sees, and
/// the file the runner reads (what the runner makes of it is proven in real containers by
/// AgentTests/KernelSandboxTests).
@Suite struct SandboxTests {
    @Test func theDefaultDeniesWhatAContainerHasNoBusinessDoing() {
        let rules = SandboxPolicy.default.rules
        for name in ["mount", "umount2", "pivot_root", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                     "bpf", "perf_event_open", "reboot", "swapon", "swapoff", "keyctl", "add_key", "request_key", "open_by_handle_at",
                     "userfaultfd", "acct", "settimeofday", "clock_settime", "setns",
                     "kill:init", "ptrace:init", "unshare:newuser", "clone:newuser"] {
            #expect(rules[name]?.errno == EPERM, "\(name)")
        }
        #expect(rules["clone3"]?.errno == ENOSYS, "clone3 falls back to clone, whose flags the filter can read")
        #expect(rules["kill"] == nil && rules["ptrace"] == nil && rules["unshare"] == nil, "only the conditional forms")
    }

    @Test func layersDenyAndAllowBack() throws {
        var policy = SandboxPolicy.default
        try policy.apply(SandboxLayer(source: "t", deny: ["ptrace", "personality"], allow: ["perf_event_open", "unshare:newuser"]))
        #expect(policy.rules["ptrace"] != nil && policy.rules["personality"] != nil)
        #expect(policy.rules["perf_event_open"] == nil && policy.rules["unshare:newuser"] == nil)
        #expect(policy.rules["clone:newuser"] != nil, "allowing one conditional rule leaves the others")
        try policy.allow(["kill"])
        #expect(policy.rules["kill:init"] == nil, "allowing a whole call drops its conditional rules too")
    }

    @Test func unknownNamesAndConditionsAreRefusedByName() {
        var policy = SandboxPolicy.default
        #expect(throws: SandboxPolicyError.invalid(source: "agent.toml [sandbox]", key: "deny",
                                                   message: SandboxPolicyError.unknownSyscall("mountt").description)) {
            try policy.apply(SandboxLayer(source: "agent.toml [sandbox]", deny: ["mountt"]))
        }
        #expect(throws: SandboxPolicyError.self) { try policy.deny(["kill:everyone"]) }
        #expect((try? SandboxRule.parse("mount:init")) == nil, "mount has no init condition")
        #expect(throws: SandboxPolicyError.self) { try policy.deny(["Mount"]) }
        #expect(throws: SandboxPolicyError.self) { try policy.deny([""]) }
        #expect(SyscallNames.isKnown("umount"), "a call of another architecture is still a name libseccomp knows")
    }

    @Test func resourceGroupPoliciesAreCheckedTOML() throws {
        let layer = try SandboxLayer(toml: "deny = [\"ptrace\"]\nallow = [\"bpf\"]\n", source: "group gpu")
        #expect(layer.deny == ["ptrace"] && layer.allow == ["bpf"])
        let wrongType = #expect(throws: SandboxPolicyError.self) { try SandboxLayer(toml: "deny = \"ptrace\"", source: "group gpu") }
        #expect(wrongType?.description.contains("'deny'") == true && wrongType?.description.contains("expected an array of strings") == true,
                "\(String(describing: wrongType))")
        let unknownKey = #expect(throws: SandboxPolicyError.self) { try SandboxLayer(toml: "denny = []", source: "group gpu") }
        #expect(unknownKey?.description.contains("denny") == true)
        let unknownName = #expect(throws: SandboxPolicyError.self) { try SandboxLayer(toml: "allow = [\"bpff\"]", source: "group gpu") }
        #expect(unknownName?.description.contains("'bpff' is not a syscall") == true)
        #expect(throws: SandboxPolicyError.self) { try SandboxLayer(toml: "allow = [", source: "group gpu") }
        #expect(SandboxLayer.names("setns, bpf perf_event_open") == ["setns", "bpf", "perf_event_open"])
    }

    @Test func theRunnerFileIsVersionedSortedAndExact() throws {
        var policy = SandboxPolicy()
        try policy.deny(["mount", "kill:init", "unshare:newuser"])
        #expect(policy.runnerText(mode: .watch) == """
            hangar-sandbox 1
            mode watch
            deny kill 1 0 4294967295 1
            deny mount 1
            deny unshare 1 0 268435456 268435456

            """)
    }
}
