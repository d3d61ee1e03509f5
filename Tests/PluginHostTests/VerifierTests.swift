import Foundation
import PluginConformance
import Testing
@testable import PluginHost

/// A fake sysfs/dev tree for the vendor template: three NPUs, the first unhealthy, so a
/// verifier that allocates "the first device" fails on a correct plugin.
struct FakeNPUTree {
    let dir: TemporaryDirectory
    var sysfs: String { "\(dir.path)/sys" }
    var dev: String { "\(dir.path)/dev" }
    var config: ConfigValue { .table([("sysfs_root", .string(sysfs)), ("dev_root", .string(dev))]) }

    init(devices: Int = 3, firstUnhealthy: Bool = true) throws {
        dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: "\(dir.path)/sys", withIntermediateDirectories: true)
        for n in 0..<devices {
            _ = try dir.write("sys/example\(n)/model", "Example NPU X\(n)\n")
            _ = try dir.write("sys/example\(n)/memory_bytes", "\(16 << 30)\n")
            _ = try dir.write("sys/example\(n)/numa_node", "\(n % 2)\n")
            _ = try dir.write("sys/example\(n)/local_cpulist", n % 2 == 0 ? "0\n" : "1\n")
            _ = try dir.write("sys/example\(n)/firmware_version", "1.4.\(n)\n")
            _ = try dir.write("sys/example\(n)/health", n == 0 && firstUnhealthy ? "ECC uncorrectable error count 3\n" : "ok\n")
            _ = try dir.write("sys/example\(n)/temp", "4\(n)500\n")
            _ = try dir.write("sys/example\(n)/power_uw", "75000000\n")
            _ = try dir.write("sys/example\(n)/energy_uj", "123456789\n")
            _ = try dir.write("dev/example\(n)", "")
        }
        _ = try dir.write("sys/driver_version", "2.7.1\n")
    }
}

/// Builds the vendor template with one -DBREAK_ switch (or none).
func buildBrokenTemplate(_ defines: [String], in dir: String) throws -> String {
    let output = "\(dir)/libhangar-broken-\(defines.joined(separator: "-").lowercased()).so"
    try FixtureCompiler.build(["Tests/Fixtures/TestPlugins/broken_template.c"], output: output, defines: defines)
    return output
}

/// Every check of `hangar-plugin verify` against a fixture that breaks exactly its rule.
@Suite struct VerifierTests {
    /// One broken fixture per accelerator check: the -D switch, the check that must fail, and
    /// whether it runs on an empty tree.
    struct Case: CustomTestStringConvertible, Sendable {
        let define: String
        let check: String
        var emptyTree = false
        /// Text the failure must contain, where the check has several ways to fail.
        var detail: String?
        var testDescription: String { "\(define) -> \(check)" }
    }

    static let cases: [Case] = [
        Case(define: "BREAK_NO_ENTRY", check: "entry.exported"),
        Case(define: "BREAK_NULL_DESCRIPTOR", check: "entry.returns_descriptor"),
        Case(define: "BREAK_ENTRY_NOT_IDEMPOTENT", check: "entry.idempotent"),
        Case(define: "BREAK_ABI_MAJOR", check: "descriptor.abi"),
        Case(define: "BREAK_DESCRIPTOR_SIZE", check: "descriptor.struct_size"),
        Case(define: "BREAK_KIND", check: "descriptor.kind"),
        Case(define: "BREAK_NAME", check: "descriptor.name"),
        Case(define: "BREAK_METADATA", check: "descriptor.metadata"),
        Case(define: "BREAK_THREAD_FLAGS", check: "descriptor.thread_safety"),
        Case(define: "BREAK_SCHEMA", check: "descriptor.config_schema"),
        Case(define: "BREAK_MISSING_FUNCTION", check: "descriptor.functions"),
        Case(define: "BREAK_STATIC_SLOT", check: "descriptor.static_slot_names"),
        Case(define: "BREAK_CREATE", check: "lifecycle.create"),
        Case(define: "BREAK_LAST_ERROR", check: "lifecycle.last_error"),
        Case(define: "BREAK_RECREATE", check: "lifecycle.recreate"),
        Case(define: "BREAK_TWO_INSTANCES", check: "lifecycle.two_instances"),
        Case(define: "BREAK_DEVICE_KEY_NULL", check: "accelerator.get_info"),
        Case(define: "BREAK_DEVICE_KEY", check: "accelerator.device_key"),
        Case(define: "BREAK_NO_DEVICE_REASON", check: "accelerator.no_device_reason", emptyTree: true),
        Case(define: "BREAK_LIST_DEVICES", check: "accelerator.list_devices"),
        Case(define: "BREAK_DEVICE_STRUCT_SIZE", check: "accelerator.list_devices", detail: "struct_size 8"),
        Case(define: "BREAK_DUPLICATE_ID", check: "accelerator.device_ids"),
        Case(define: "BREAK_NO_MODEL", check: "accelerator.device_model"),
        Case(define: "BREAK_NUMA", check: "accelerator.device_numa"),
        Case(define: "BREAK_HEALTH", check: "accelerator.device_health"),
        Case(define: "BREAK_CPU_AFFINITY", check: "accelerator.device_cpu_affinity"),
        Case(define: "BREAK_EXTRA_INFO", check: "accelerator.device_extra_info"),
        Case(define: "BREAK_PARENT", check: "accelerator.device_parent"),
        Case(define: "BREAK_SLOT_TYPE", check: "accelerator.list_slots"),
        Case(define: "BREAK_SLOT_PREFIX", check: "accelerator.slot_prefix"),
        Case(define: "BREAK_SLOT_TWICE", check: "accelerator.slot_names_unique"),
        Case(define: "BREAK_UNDECLARED_SLOT", check: "accelerator.slots_declared"),
        Case(define: "BREAK_FRACTIONAL_QUANTUM", check: "accelerator.fractional_quantum"),
        Case(define: "BREAK_ROW_UNKNOWN", check: "accelerator.list_device_slots"),
        Case(define: "BREAK_CAPACITY_SUM", check: "accelerator.capacity_sum"),
        Case(define: "BREAK_SINK_STOP", check: "accelerator.sink_stop"),
        Case(define: "BREAK_CAPABILITIES", check: "accelerator.capabilities"),
        Case(define: "BREAK_EDITS_FAIL", check: "accelerator.container_edits.valid"),
        Case(define: "BREAK_NOT_REPEATABLE", check: "accelerator.container_edits.repeatable"),
        Case(define: "BREAK_EMPTY_EMITS", check: "accelerator.container_edits.empty"),
        Case(define: "BREAK_NULL_ARGS", check: "accelerator.container_edits.null_arguments"),
        Case(define: "BREAK_UNKNOWN_SLOT_STATUS", check: "accelerator.container_edits.unknown_slot"),
        Case(define: "BREAK_UNKNOWN_DEVICE_STATUS", check: "accelerator.container_edits.unknown_device"),
        Case(define: "BREAK_ZERO_AMOUNT", check: "accelerator.container_edits.zero_amount"),
        Case(define: "BREAK_PARTIAL_AMOUNT", check: "accelerator.container_edits.partial_amount"),
        Case(define: "BREAK_OVER_CAPACITY", check: "accelerator.container_edits.over_capacity"),
        Case(define: "BREAK_DUPLICATE_DEVICE", check: "accelerator.container_edits.duplicate_device"),
        Case(define: "BREAK_UNHEALTHY", check: "accelerator.container_edits.unhealthy_device"),
        Case(define: "BREAK_SILENT_REFUSAL", check: "accelerator.container_edits.error_message"),
        Case(define: "BREAK_PARTIAL_EDITS", check: "accelerator.container_edits.no_partial_edits"),
        Case(define: "BREAK_ORDER", check: "accelerator.container_edits.order"),
        Case(define: "BREAK_PREPARE_NOT_IDEMPOTENT", check: "accelerator.prepare.idempotent"),
        Case(define: "BREAK_PREPARE_ACCEPTS_UNKNOWN", check: "accelerator.prepare.refusals"),
        Case(define: "BREAK_RELEASE_UNKNOWN", check: "accelerator.release.idempotent"),
        Case(define: "BREAK_MEASURE_UNIT", check: "accelerator.node_measures"),
        Case(define: "BREAK_PERCENT", check: "accelerator.measures.percent_range"),
        Case(define: "BREAK_MEASURE_DEVICE", check: "accelerator.measures.device_known"),
        Case(define: "BREAK_MEASURE_TWICE", check: "accelerator.measures.unique"),
        Case(define: "BREAK_COUNTER_DECREASES", check: "accelerator.measures.counter_monotonic"),
        Case(define: "BREAK_CONTAINER_MEASURE_ID", check: "accelerator.container_measures"),
    ]

    /// Verifies a library file as `hangar-plugin verify PATH` does: a library the host refuses
    /// to open is reported as the failure of the loading rule it broke.
    static func verify(_ path: String, config: ConfigValue) -> ConformanceReport {
        do {
            return ConformanceSuite.run(library: try PluginLoader.open(path: path), config: config)
        } catch {
            return ConformanceSuite.report(loadFailure: error, file: path)
        }
    }

    @Test(arguments: cases)
    func brokenFixtureFailsItsCheckAndNamesTheRule(_ c: Case) throws {
        let tree = try FakeNPUTree(devices: c.emptyTree ? 0 : 3)
        defer { tree.dir.remove() }
        let report = Self.verify(try buildBrokenTemplate([c.define], in: tree.dir.path), config: tree.config)
        let failure = report.failures.first { $0.id == c.check }
        #expect(failure != nil, "expected \(c.check) to fail; failures: \(report.failures.map { "\($0.id): \($0.detail)" })")
        let rule = try #require(ConformanceRules.rule(c.check))
        #expect(failure?.rule == "\(rule.header): \(rule.rule)")
        if let detail = c.detail { #expect(failure?.detail.contains(detail) == true, "\(failure?.detail ?? "")") }
        // The failure says what was wrong, not the sentence a pass would print.
        if let failure, let passing = Self.templateReport.checks.first(where: { $0.id == c.check && $0.outcome == .pass }) {
            #expect(failure.detail != passing.detail)
        }
    }

    /// The report of the unbroken template with prepare, for comparing failure texts.
    static let templateReport: ConformanceReport = {
        let tree = try! FakeNPUTree()
        defer { tree.dir.remove() }
        return verify(try! buildBrokenTemplate(["FX_WITH_PREPARE"], in: tree.dir.path), config: tree.config)
    }()

    /// One broken vfs per storage check.
    static let storageCases: [Case] = [
        Case(define: "BREAK_STORAGE_CAPS", check: "storage.capabilities"),
        Case(define: "BREAK_STORAGE_CREATE", check: "lifecycle.create"),
        Case(define: "BREAK_CREATE_FOLDER", check: "storage.create_folder"),
        Case(define: "BREAK_FOLDER_PATH_RELATIVE", check: "storage.folder_path"),
        Case(define: "BREAK_FOLDER_PATH_BUFFER", check: "storage.folder_path_buffer"),
        Case(define: "BREAK_USAGE_ZERO", check: "storage.get_usage"),
        Case(define: "BREAK_EXISTS_STATUS", check: "storage.create_folder.exists"),
        Case(define: "BREAK_ACCEPTS_BAD_ID", check: "storage.invalid_id"),
        Case(define: "BREAK_VOLUME_USAGE", check: "storage.volume_usage"),
        Case(define: "BREAK_QUOTA", check: "storage.quota_roundtrip"),
        Case(define: "BREAK_CLONE", check: "storage.clone_folder"),
        Case(define: "BREAK_PERFORMANCE", check: "storage.performance"),
        Case(define: "BREAK_STORAGE_SINK", check: "storage.sink_stop"),
        Case(define: "BREAK_DELETE_MISSING", check: "storage.delete_folder"),
    ]

    @Test(arguments: storageCases)
    func brokenStorageFailsItsCheckAndNamesTheRule(_ c: Case) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let output = "\(dir.path)/libhangar-vfs-broken.so"
        try FixtureCompiler.build(["Tests/Fixtures/TestPlugins/broken_storage.c"], output: output, defines: [c.define])
        try FileManager.default.createDirectory(atPath: "\(dir.path)/volume", withIntermediateDirectories: true)
        let report = Self.verify(output, config: .table([("root", .string("\(dir.path)/volume"))]))
        let failure = report.failures.first { $0.id == c.check }
        #expect(failure != nil, "expected \(c.check) to fail; failures: \(report.failures.map { "\($0.id): \($0.detail)" })")
        let rule = try #require(ConformanceRules.rule(c.check))
        #expect(failure?.rule == "\(rule.header): \(rule.rule)")
    }

    /// One broken fifo or concentrated per scheduler and selector check (the define picks the
    /// plugin: FX_SCHEDULER or FX_SELECTOR, then the defect).
    static let schedulingCases: [Case] = [
        Case(define: "FX_SCHEDULER BREAK_EMPTY_QUEUE", check: "scheduler.empty_queue"),
        Case(define: "FX_SCHEDULER BREAK_PICK_RANGE", check: "scheduler.pick"),
        Case(define: "FX_SCHEDULER BREAK_NONDETERMINISTIC", check: "scheduler.deterministic"),
        Case(define: "FX_SCHEDULER BREAK_PRIORITY", check: "scheduler.priority"),
        Case(define: "FX_SCHEDULER BREAK_NULL_INPUT", check: "scheduler.null_input"),
        Case(define: "FX_FAIRSHARE BREAK_EXPLAIN", check: "scheduler.explain"),
        Case(define: "FX_SELECTOR BREAK_PLACE_FIRST", check: "selector.place"),
        Case(define: "FX_SELECTOR BREAK_TOO_BIG_SILENT", check: "selector.too_big"),
        Case(define: "FX_SELECTOR BREAK_MULTI_OVERCOMMIT", check: "selector.multi_kernel"),
        Case(define: "FX_SELECTOR BREAK_ARCH", check: "selector.architecture"),
        Case(define: "FX_SELECTOR BREAK_SPREAD", check: "selector.single_node"),
        Case(define: "FX_SELECTOR BREAK_OVERCOMMITTED", check: "selector.overcommitted_agent"),
        Case(define: "FX_SELECTOR BREAK_SELECT_NULL", check: "selector.null_input"),
    ]

    static func buildScheduling(_ defines: [String], in dir: String) throws -> String {
        let output = "\(dir)/libhangar-\(defines.joined(separator: "-").lowercased()).so"
        try FixtureCompiler.build(["Tests/Fixtures/TestPlugins/broken_scheduling.c"], output: output, defines: defines)
        return output
    }

    @Test(arguments: schedulingCases)
    func brokenSchedulerOrSelectorFailsItsCheckAndNamesTheRule(_ c: Case) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let report = Self.verify(try Self.buildScheduling(c.define.split(separator: " ").map(String.init), in: dir.path), config: .emptyTable)
        let failure = report.failures.first { $0.id == c.check }
        #expect(failure != nil, "expected \(c.check) to fail; failures: \(report.failures.map { "\($0.id): \($0.detail)" })")
        let rule = try #require(ConformanceRules.rule(c.check))
        #expect(failure?.rule == "\(rule.header): \(rule.rule)")
    }

    @Test(arguments: ["FX_SCHEDULER", "FX_SELECTOR", "FX_FAIRSHARE"])
    func theUnbrokenSchedulingFixturesPass(_ kind: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let report = Self.verify(try Self.buildScheduling([kind], in: dir.path), config: .emptyTable)
        #expect(report.passed, "\(report.failures.map { "\($0.id): \($0.detail)" })")
    }

    @Test func theUnbrokenStorageFixturePasses() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let output = "\(dir.path)/libhangar-vfs-broken.so"
        try FixtureCompiler.build(["Tests/Fixtures/TestPlugins/broken_storage.c"], output: output)
        try FileManager.default.createDirectory(atPath: "\(dir.path)/volume", withIntermediateDirectories: true)
        let report = Self.verify(output, config: .table([("root", .string("\(dir.path)/volume"))]))
        #expect(report.passed, "\(report.failures.map { "\($0.id): \($0.detail)" })")
        #expect(report.checks.first { $0.id == "storage.sink_stop" }?.outcome == .pass)
    }

    @Test func everyCheckHasABrokenFixture() {
        let accelerator = Set(ConformanceRules.all.map(\.id))
        let covered = Set((Self.cases + Self.storageCases + Self.schedulingCases).map(\.check))
        #expect(accelerator.subtracting(covered).isEmpty, "checks without a fixture: \(accelerator.subtracting(covered).sorted())")
        #expect(covered.subtracting(accelerator).isEmpty, "fixtures for unknown checks: \(covered.subtracting(accelerator).sorted())")
    }

    @Test(arguments: [[String](), ["FX_WITH_PREPARE"]])
    func templatePassesEveryCheckWithItsFirstDeviceUnhealthy(_ defines: [String]) throws {
        let tree = try FakeNPUTree()
        defer { tree.dir.remove() }
        let report = Self.verify(try buildBrokenTemplate(defines, in: tree.dir.path), config: tree.config)
        #expect(report.passed, "\(report.failures.map { "\($0.id): \($0.detail)" })")
        let outcome = { (id: String) in report.checks.first { $0.id == id }?.outcome }
        // The checks that need an unhealthy device, two healthy ones and a counter really ran.
        #expect(outcome("accelerator.container_edits.unhealthy_device") == .pass)
        #expect(outcome("accelerator.container_edits.order") == .pass)
        #expect(outcome("accelerator.measures.counter_monotonic") == .pass)
        if defines.contains("FX_WITH_PREPARE") {
            #expect(outcome("accelerator.prepare.idempotent") == .pass)
            #expect(outcome("accelerator.release.idempotent") == .pass)
            #expect(outcome("accelerator.container_measures") == .pass)
        }
    }

    @Test func templateBuildsOutsideThePackageWithPlainCCAndWarningsAsErrors() throws {
        // A vendor's tree: the two include folders and the template, copied out of Hangar.
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fm = FileManager.default
        try fm.copyItem(atPath: "\(PluginPaths.repoRoot)/PluginAPI/include", toPath: "\(dir.path)/sdk-abi")
        try fm.copyItem(atPath: "\(PluginPaths.repoRoot)/Plugins/Support/include", toPath: "\(dir.path)/sdk-support")
        try fm.createDirectory(atPath: "\(dir.path)/vendor", withIntermediateDirectories: true)
        try fm.copyItem(atPath: "\(PluginPaths.repoRoot)/Tools/PluginTemplate/example_accel.c", toPath: "\(dir.path)/vendor/npu.c")
        for compiler in ["gcc", "clang"] where FileManager.default.isExecutableFile(atPath: "/usr/bin/\(compiler)") || compiler == "gcc" {
            let output = "\(dir.path)/vendor/libhangar-accel-example-\(compiler).so"
            let (status, errors) = try run(["/usr/bin/env", compiler, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden",
                                            "-I\(dir.path)/sdk-abi", "-I\(dir.path)/sdk-support", "-o", output, "\(dir.path)/vendor/npu.c"])
            #expect(status == 0, "\(compiler): \(errors)")
            let library = try PluginLoader.open(path: output)
            #expect(library.descriptor.name == "example")
        }
        // The template stays the vendor's own logic: under 200 lines of C.
        let lines = try String(contentsOfFile: "\(PluginPaths.repoRoot)/Tools/PluginTemplate/example_accel.c", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).count
        #expect(lines < 200, "the template has \(lines) lines")
    }

    @Test func anABI11PluginLoadsAndPassesOnThisHost() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = "\(dir.path)/libhangar-accel-example.so"
        try FixtureCompiler.build(["Tests/Fixtures/TestPlugins/template_abi11.c"], output: path, abiInclude: "Tests/Fixtures/ABI-1.1/include")
        let library = try PluginLoader.open(path: path)
        #expect(library.descriptor.abiMinor == 1)
        #expect(HostABI.minor == 3, "this host is newer than the plugin")
        let config: ConfigValue = .table([("device_count", .integer(2))])
        let report = ConformanceSuite.run(library: library, config: config)
        #expect(report.passed, "\(report.failures.map { "\($0.id): \($0.detail)" })")
        // Fields a 1.1 plugin cannot fill read as absent, and the 1.2 entry points as NULL.
        let plugin = try AcceleratorPlugin(library: library, config: config)
        defer { plugin.instance.destroy() }
        let devices = try plugin.devices()
        #expect(devices.count == 2)
        #expect(devices.allSatisfy { $0.firmwareVersion == nil && $0.cpuAffinity == nil && $0.parentDeviceID == nil })
        #expect(!plugin.hasPrepare)
        let edits = try plugin.containerEdits(for: Allocation(containerID: "k", entries: [.init(slotName: "example.device", deviceID: "1", amount: amountScale)]))
        #expect(edits.envValue("EXAMPLE_VISIBLE_DEVICES") == "1")
    }

    @Test func verifyListNamesEveryCheckWithItsRule() throws {
        let ids = ConformanceRules.all.map(\.id)
        #expect(Set(ids).count == ids.count)
        #expect(ConformanceRules.all.allSatisfy { !$0.rule.isEmpty && $0.header.hasSuffix(".h") })
        let (status, output) = try run(["\(PluginPaths.binDir)/hangar-plugin", "verify", "--list"])
        #expect(status == 0)
        for rule in ConformanceRules.all {
            #expect(output.contains(rule.id) && output.contains(rule.rule), "\(rule.id) missing from verify --list")
        }
    }
}
