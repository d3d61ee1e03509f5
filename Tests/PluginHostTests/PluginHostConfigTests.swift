import Foundation
import Testing
@testable import PluginHost

/// Operators enabling plugins through TOML: required vs optional, duplicates, bad config.
@Suite struct PluginHostConfigTests {
    @Test func parsesSearchPathsEnabledAndPerPluginConfig() throws {
        let config = try PluginHostConfig.parse(toml: """
            [plugins]
            search_paths = ["/opt/a", "rel/b"]
            enabled = ["mock", "cuda"]
            [plugins.config.mock]
            required = true
            device_key = "cuda"
            [plugins.config.cuda]
            required = false
            """, source: "/etc/hangar/agent.toml")
        #expect(config.searchPaths == ["/opt/a", "/etc/hangar/rel/b"])
        #expect(config.enabled == ["mock", "cuda"])
        #expect(config.required == ["mock"])
        #expect(config.config(for: "mock") == .table([("device_key", .string("cuda"))]), "'required' is the host's, not the plugin's")
        #expect(config.config(for: "other") == .emptyTable)
    }

    @Test(arguments: [
        ("[plugins]\nenable = [\"mock\"]", "unknown key 'plugins.enable'"),
        ("[plugins]\nenabled = \"mock\"", "'plugins.enabled' must be an array of strings"),
        ("[plugins]\nenabled = [1]", "must contain only strings"),
        ("[plugins]\nenabled = [\"mock\"]\n[plugins.config.mock]\nrequired = \"yes\"", "must be a boolean"),
        ("[plugins]\nenabled = []\n[plugins.config.mock]\nx = 1", "not in 'plugins.enabled'"),
        ("[plugins\nenabled = []", "invalid TOML at line 1"),
    ])
    func badHostConfigNamesFileAndKey(toml: String, phrase: String) {
        #expect {
            try PluginHostConfig.parse(toml: toml, source: "/etc/hangar/agent.toml")
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .hostConfig && e.file == "/etc/hangar/agent.toml" && e.reason.contains(phrase)
        }
    }

    @Test func loadsEnabledPluginsFromTheSearchPath() throws {
        let host = try PluginHost(config: PluginHostConfig(searchPaths: [PluginPaths.binDir], enabled: ["mock", "cuda", "fifo"]))
        defer { host.shutdown() }
        #expect(host.loaded.map(\.instance.name) == ["mock", "cuda", "fifo"])
        #expect(host.accelerators.map(\.info.deviceKey) == ["mock", "cuda"])
        #expect(host.skipped.isEmpty)
    }

    @Test func optionalPluginThatFailsIsSkippedAndReported() throws {
        let config = PluginHostConfig(searchPaths: [PluginPaths.binDir], enabled: ["no-such-plugin", "mock"])
        let host = try PluginHost(config: config)
        defer { host.shutdown() }
        #expect(host.loaded.map(\.instance.name) == ["mock"])
        #expect(host.skipped.count == 1)
        #expect(host.skipped[0].code == .notFound)
        #expect(host.skipped[0].reason.contains("found: atom, btrfs, concentrated, cuda, dispersed, drf, fairshare, fifo, gaudi, hyperaccel-lpu, ipu, lifo, mock, rngd, rocm, roundrobin, tenstorrent, tpu, vfs, warboy"),
                "the reason lists what is available")
    }

    @Test func requiredPluginThatFailsStopsStartup() throws {
        let config = PluginHostConfig(searchPaths: [PluginPaths.binDir], enabled: ["mock"],
                                      pluginConfigs: ["mock": .table([("allocation_mode", .string("sideways"))])], required: ["mock"])
        #expect {
            try PluginHost(config: config)
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .invalidConfig && e.reason.contains("'allocation_mode': must be one of \"discrete\", \"fractional\"")
        }
    }

    @Test func unknownConfigKeyIsRefusedBeforeCreate() throws {
        let library = try PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock"))
        #expect {
            try AcceleratorPlugin(library: library, config: .table([("devcies", .array([]))]))
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .invalidConfig && e.reason.contains("'devcies': unknown key") && e.reason.contains("devices")
        }
    }

    @Test func twoLibrariesWithOneKeyAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let impostor = try FixtureCompiler.fixture("impostor", in: dir.path, defines: ["FIXTURE_NAME=\"mock\""])
        let config = PluginHostConfig(searchPaths: [PluginPaths.binDir, dir.path], enabled: ["mock"], required: ["mock"])
        #expect {
            try PluginHost(config: config)
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .duplicateKey && e.reason.contains(impostor) && e.reason.contains(PluginPaths.bundled("hangar-accel-mock"))
        }
        // As an optional plugin the duplicate is skipped and the others still load.
        let host = try PluginHost(config: PluginHostConfig(searchPaths: [PluginPaths.binDir, dir.path], enabled: ["mock", "fifo"]))
        defer { host.shutdown() }
        #expect(host.loaded.map(\.instance.name) == ["fifo"])
        #expect(host.skipped.map(\.code) == [.duplicateKey])
    }

    @Test func twoAcceleratorsWithOneDeviceKeyAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // A second build of the mock under another plugin name, both posing as "gpu".
        try FixtureCompiler.build(["Plugins/Accelerators/Mock/mock.c"], output: "\(dir.path)/libhangar-accel-mock-b.so",
                                  defines: ["HANGAR_MOCK_NAME=\"mock-b\""])
        let gpu = ConfigValue.table([("device_key", .string("gpu"))])
        let config = PluginHostConfig(searchPaths: [PluginPaths.binDir, dir.path], enabled: ["mock", "mock-b"],
                                      pluginConfigs: ["mock": gpu, "mock-b": gpu], required: ["mock-b"])
        #expect {
            try PluginHost(config: config)
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .duplicateKey && e.reason.contains("device key 'gpu' is already provided by plugin 'mock'")
        }
    }

    @Test func enablingOnePluginTwiceIsRefused() throws {
        let host = try PluginHost(config: PluginHostConfig(searchPaths: [PluginPaths.binDir],
                                                           enabled: ["mock", PluginPaths.bundled("hangar-accel-mock")]))
        defer { host.shutdown() }
        #expect(host.loaded.count == 1)
        #expect(host.skipped.first?.code == .duplicateKey)
    }

    @Test func configSchemaSubset() throws {
        let schema = try ConfigSchema(json: """
            {"type":"object","additionalProperties":false,"required":["root"],
             "properties":{"root":{"type":"string","minLength":1},"n":{"type":"integer","minimum":1,"maximum":4},
                           "tags":{"type":"array","items":{"type":"string"}}}}
            """)
        #expect(schema.violations(of: .table([("root", .string("/x")), ("n", .integer(2))])).isEmpty)
        let problems = schema.violations(of: .table([("n", .integer(9)), ("tags", .array([.integer(1)])), ("zz", .bool(true))]))
        #expect(problems.contains("config: missing required key 'root'"))
        #expect(problems.contains("'n': must be at most 4, found 9"))
        #expect(problems.contains("'tags.0': expected string, found integer 1"))
        #expect(problems.contains { $0.hasPrefix("'zz': unknown key") })
        #expect(throws: PluginError.self) { try ConfigSchema(json: #"{"oneOf":[]}"#) }
    }

    @Test func byteSizesAndAmounts() {
        #expect(ByteSize.parse("16G") == 16 << 30)
        #expect(ByteSize.parse("512m") == 512 << 20)
        #expect(ByteSize.parse("1.5T") == 3 << 39)
        #expect(ByteSize.parse("4096") == 4096)
        #expect(ByteSize.parse("lots") == nil)
        #expect(ByteSize.parse("-1G") == nil)
        #expect(formatAmount(250_000, type: .count) == "0.25")
        #expect(formatAmount(2 * amountScale, type: .count) == "2")
        #expect(formatAmount(1 << 30, type: .bytes) == "1073741824")
    }
}

/// The host applies schema defaults before create() and refuses schema-invalid config, so a
/// plugin's defaults live only in its schema (plugin.h, ABI 1.2).
@Suite struct SchemaDefaultTests {
    let schema = try! ConfigSchema(json: """
        {"type":"object","additionalProperties":false,"properties":{
          "root":{"type":"string","default":"/srv"},
          "depth":{"type":"integer","minimum":1,"default":3},
          "limits":{"type":"object","properties":{"files":{"type":"integer","default":100},"bytes":{"type":"integer"}}},
          "devices":{"type":"array","items":{"type":"object","properties":{"id":{"type":"string"},"health":{"type":"string","default":"healthy"}}}}
        }}
        """)

    @Test func missingKeysGetTheirDefaultsAndGivenValuesStay() {
        let filled = schema.applyingDefaults(to: .table([("depth", .integer(7))]))
        #expect(filled["root"] == .string("/srv"))
        #expect(filled["depth"] == .integer(7))
        // An object that is absent stays absent; no default is invented for it.
        #expect(filled["limits"] == nil)
        #expect(schema.violations(of: filled).isEmpty)
    }

    @Test func defaultsReachIntoPresentObjectsAndArrayItems() {
        let filled = schema.applyingDefaults(to: .table([
            ("limits", .table([("bytes", .integer(5))])),
            ("devices", .array([.table([("id", .string("a"))]), .table([("id", .string("b")), ("health", .string("unhealthy"))])])),
        ]))
        #expect(filled["limits"]?["files"] == .integer(100))
        #expect(filled["limits"]?["bytes"] == .integer(5))
        guard case .array(let devices)? = filled["devices"] else {
            Issue.record("devices is not an array: \(String(describing: filled["devices"]))")
            return
        }
        #expect(devices.map { $0["health"] } == [.string("healthy"), .string("unhealthy")])
    }

    @Test func aPluginSeesItsDefaultsAndNeverAMistypedConfig() throws {
        let tree = try FakeNPUTree()
        defer { tree.dir.remove() }
        let library = try PluginLoader.open(path: buildBrokenTemplate([], in: tree.dir.path))
        // No config at all: the template relies on its schema's defaults (no fallbacks in C).
        let instance = try PluginInstance(library: library, config: .emptyTable)
        #expect(instance.config["sysfs_root"] == .string("/sys/class/example"))
        #expect(instance.config["dev_root"] == .string("/dev"))
        instance.destroy()
        // A mistyped key is refused by the host, naming the key, before create() runs.
        #expect {
            _ = try PluginInstance(library: library, config: .table([("sysfs_root", .integer(5))]))
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .invalidConfig && e.call == "config" && e.reason.contains("'sysfs_root': expected string")
        }
    }
}
