import Foundation
import Testing
@testable import PluginHost

/// `hangar-plugin` as a vendor or an operator runs it: the real binary, real plugins.
@Suite struct PluginCLITests {
    static var cli: String { "\(PluginPaths.binDir)/hangar-plugin" }

    /// A folder with the template built into it and a config for the fake tree.
    struct TemplateSetup {
        let tree: FakeNPUTree
        let plugins: String
        let config: String

        init(searchPath: String? = nil) throws {
            tree = try FakeNPUTree()
            plugins = "\(tree.dir.path)/plugins"
            try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
            _ = try buildBrokenTemplate([], in: plugins)
            config = try tree.dir.write("etc/agent.toml", """
                [plugins]
                search_paths = ["\(searchPath ?? plugins)"]
                enabled = ["example"]
                [plugins.config.example]
                sysfs_root = "\(tree.sysfs)"
                dev_root = "\(tree.dev)"
                """)
        }
    }

    @Test func editsPrintsWhatTheContainerGetsInListOrder() throws {
        let setup = try TemplateSetup()
        defer { setup.tree.dir.remove() }
        let (status, output) = try run([Self.cli, "edits", "example", "--config", setup.config, "--device", "2", "--device", "1"])
        #expect(status == 0, "\(output)")
        #expect(output.split(separator: "\n").map(String.init) == [
            "# example: 1 of example.device on 2, 1 of example.device on 1 (container hangar-plugin-edits)",
            "env EXAMPLE_VISIBLE_DEVICES=0,1",
            "device \(setup.tree.dev)/example1 -> /dev/example0 (rwm)",
            "device \(setup.tree.dev)/example2 -> /dev/example1 (rwm)",
            "resource EXAMPLE_GLOBAL_DEVICE_IDS=0:1,1:2",
        ])
    }

    @Test func editsOfTheMockAllocationAfterPrepare() throws {
        let (status, output) = try run([Self.cli, "edits", "mock", "--search-path", PluginPaths.binDir, "--device", "1"])
        #expect(status == 0, "\(output)")
        #expect(output.split(separator: "\n").map(String.init) == [
            "# mock: 1 of mock.device on 1 (container hangar-plugin-edits)",
            "env HANGAR_MOCK_MOCK_DEVICES=1",
            "env HANGAR_MOCK_MOCK_DEVICE_COUNT=1",
            "resource MOCK_GLOBAL_DEVICE_IDS=0:1",
            "resource MOCK_PREPARED=1",
        ])
    }

    @Test func editsOfTheCUDAPluginOnTheFakeNVML() throws {
        let rig = try CUDAPluginTests.rig()
        defer { rig.dir.remove() }
        let config = try rig.dir.write("agent.toml", """
            [plugins]
            search_paths = ["\(PluginPaths.binDir)"]
            enabled = ["cuda"]
            [plugins.config.cuda]
            nvml_library = "\(rig.nvml)"
            sysfs_root = "\(rig.sysfs)"
            injection = "device-nodes"
            """)
        // Entries in reverse order: the container still sees the GPUs in NVML's order.
        let (status, output) = try run([Self.cli, "edits", "cuda", "--config", config, "--device", "1", "--device", "0"])
        #expect(status == 0, "\(output)")
        #expect(output.split(separator: "\n").map(String.init) == [
            "# cuda: 1 of cuda.device on 1, 1 of cuda.device on 0 (container hangar-plugin-edits)",
            "env NVIDIA_VISIBLE_DEVICES=GPU-11111111-2222-3333-4444-555555555555,GPU-66666666-7777-8888-9999-000000000000",
            "env NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            "device /dev/nvidia0 (rwm)",
            "device /dev/nvidia1 (rwm)",
            "device /dev/nvidiactl (rwm)",
            "device /dev/nvidia-uvm (rwm)",
            "device /dev/nvidia-uvm-tools (rwm)",
            "resource CUDA_GLOBAL_DEVICE_IDS=0:0,1:1",
        ])
    }

    @Test func editsShowsThePluginsRefusal() throws {
        let setup = try TemplateSetup()
        defer { setup.tree.dir.remove() }
        // Device 0 of the fake tree is unhealthy: the plugin's own status and reason come through.
        let (status, output) = try run([Self.cli, "edits", "example", "--config", setup.config, "--device", "0"])
        #expect(status != 0)
        #expect(output.contains("HANGAR_E_DEVICE_LOST") && output.contains("ECC uncorrectable"), "\(output)")
        let (typo, message) = try run([Self.cli, "edits", "example", "--config", setup.config, "--device", "7"])
        #expect(typo != 0)
        #expect(message.contains("no device '7'") && message.contains("0, 1, 2"), "\(message)")
    }

    @Test func relativeSearchPathsAreRelativeToTheConfigFileFromAnyDirectory() throws {
        let setup = try TemplateSetup(searchPath: "../plugins")
        defer { setup.tree.dir.remove() }
        for cwd in ["/", setup.tree.dir.path, "\(setup.tree.dir.path)/etc"] {
            let relativeConfig = cwd == "/" ? String(setup.config.dropFirst()) : setup.config
            let (status, output) = try run([Self.cli, "list", "--config", relativeConfig], in: cwd)
            #expect(status == 0)
            #expect(output.contains("\(setup.plugins)/libhangar-broken-.so"), "from \(cwd): \(output)")
        }
    }

    @Test func devicesFailsWhenAnEnabledPluginIsSkipped() throws {
        let setup = try TemplateSetup()
        defer { setup.tree.dir.remove() }
        let (ok, listing) = try run([Self.cli, "devices", "--config", setup.config])
        #expect(ok == 0, "\(listing)")
        #expect(listing.contains("ECC uncorrectable"))
        #expect(listing.contains("1: firmware 1.4.1, near CPUs 1"), "the ABI 1.2 facts are listed: \(listing)")
        let broken = try setup.tree.dir.write("etc/broken.toml", """
            [plugins]
            search_paths = ["\(setup.plugins)"]
            enabled = ["example", "no-such-plugin"]
            """)
        let (status, output) = try run([Self.cli, "devices", "--config", broken])
        #expect(status != 0)
        #expect(output.contains("no-such-plugin"), "\(output)")
    }

    @Test func inspectJSONCarriesTheSchemaAsAnObject() throws {
        let setup = try TemplateSetup()
        defer { setup.tree.dir.remove() }
        let (status, output) = try run([Self.cli, "inspect", "example", "--config", setup.config, "--json"])
        #expect(status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        let schema = (object?["descriptor"] as? [String: Any])?["configSchema"] as? [String: Any]
        let properties = schema?["properties"] as? [String: Any]
        #expect(properties?["sysfs_root"] != nil, "\(output)")
    }

    @Test func verifyReportsALoadingRuleAsAFailedCheck() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try buildBrokenTemplate(["BREAK_ABI_MAJOR"], in: dir.path)
        let (status, output) = try run([Self.cli, "verify", path])
        #expect(status == 1)
        #expect(output.contains("FAIL  descriptor.abi") && output.contains("rule (plugin.h: abi_major is the host's HANGAR_ABI_MAJOR)"), "\(output)")
    }
}
