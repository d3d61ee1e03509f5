import Foundation
import PluginAPI
import Testing
import TestSupport
@testable import PluginHost

/// Loading bundled plugins and rejecting broken ones.
@Suite struct PluginLoaderTests {
    static let bundled: [(product: String, name: String, kind: PluginKind)] = [
        ("hangar-accel-mock", "mock", .accelerator),
        ("hangar-accel-cuda", "cuda", .accelerator),
        ("hangar-storage-vfs", "vfs", .storage),
        ("hangar-storage-btrfs", "btrfs", .storage),
        ("hangar-scheduler-fifo", "fifo", .scheduler),
        ("hangar-selector-concentrated", "concentrated", .agentSelector),
        ("hangar-scheduler-lifo", "lifo", .scheduler),
        ("hangar-scheduler-drf", "drf", .scheduler),
        ("hangar-scheduler-fairshare", "fairshare", .scheduler),
        ("hangar-selector-dispersed", "dispersed", .agentSelector),
        ("hangar-selector-roundrobin", "roundrobin", .agentSelector),
        ("hangar-accel-rocm", "rocm", .accelerator),
        ("hangar-accel-gaudi", "gaudi", .accelerator),
        ("hangar-accel-tpu", "tpu", .accelerator),
        ("hangar-accel-warboy", "warboy", .accelerator),
        ("hangar-accel-rngd", "rngd", .accelerator),
        ("hangar-accel-tenstorrent", "tenstorrent", .accelerator),
        ("hangar-accel-ipu", "ipu", .accelerator),
        ("hangar-accel-atom", "atom", .accelerator),
        ("hangar-accel-hyperaccel-lpu", "hyperaccel-lpu", .accelerator),
    ]

    @Test func binDirHasPlugins() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: PluginPaths.binDir)
        for plugin in Self.bundled {
            #expect(files.contains("lib\(plugin.product).so"),
                    "lib\(plugin.product).so is missing from \(PluginPaths.binDir): `swift build` must build every plugin product")
        }
    }

    @Test(arguments: bundled.map { $0.product })
    func loadsBundledPlugin(product: String) throws {
        let expected = Self.bundled.first { $0.product == product }!
        let library = try PluginLoader.open(path: PluginPaths.bundled(product))
        #expect(library.descriptor.name == expected.name)
        #expect(library.descriptor.kind == expected.kind)
        #expect(library.descriptor.abiMajor == HostABI.major)
        #expect(library.descriptor.configSchema != nil)
    }

    @Test func scanFindsEveryBundledPluginAndNothingElse() {
        let catalog = PluginCatalog.scan([PluginPaths.binDir])
        let names = Set(catalog.plugins.map(\.descriptor.name))
        #expect(names == Set(Self.bundled.map(\.name)))
        #expect(catalog.entries.allSatisfy { if case .plugin = $0 { true } else { false } })
    }

    /// Roles that make plugin instances on demand (a volume's backend, a resource group's
    /// scheduler) make them through the host, which ends every one of them at shutdown.
    @Test func onDemandInstancesEndWithTheHost() throws {
        let host = try PluginHost(searchPaths: [PluginPaths.binDir])
        let scheduler = try host.makeScheduler("lifo")
        let selector = try host.makeAgentSelector("concentrated")
        let dir = try TemporaryDirectory()
        let storage = try host.makeStorage("vfs", config: .table([("root", .string(dir.path))]))
        #expect(host.madeInstanceCount == 3)
        #expect(throws: PluginError.self) { try host.makeScheduler("concentrated") }
        #expect(throws: PluginError.self) { try host.makeStorage("no-such-backend", config: .emptyTable) }
        #expect(host.madeInstanceCount == 3, "a failed make leaves nothing behind")
        host.release(selector.instance)
        #expect(host.madeInstanceCount == 2)
        host.shutdown()
        #expect(host.madeInstanceCount == 0)
        let input = SchedulerInput(slots: SchedulingSlots(names: ["cpu"], types: [.count]), total: [0], free: [0], sessions: [], owners: [])
        #expect(throws: PluginError.self) { try scheduler.pickNext(input) }
        #expect(throws: PluginError.self) { try storage.volumeUsage() }
    }

    @Test func openingTwiceReturnsTheSameLibrary() throws {
        let a = try PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock"))
        let b = try PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock"))
        #expect(a === b)
    }

    @Test func concurrentLoadsAreSerialisedSafely() async throws {
        let path = PluginPaths.bundled("hangar-scheduler-fifo")
        let names = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<16 { group.addTask { try? PluginLoader.open(path: path).descriptor.name } }
            var out: [String?] = []
            for await n in group { out.append(n) }
            return out
        }
        #expect(names == Array(repeating: "fifo", count: 16))
    }

    @Test func missingFileNamesThePath() throws {
        #expect {
            try PluginLoader.open(path: "/nonexistent/libhangar-nothing.so")
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .openFailed && e.description.contains("/nonexistent/libhangar-nothing.so")
        }
    }

    /// Each defect, the error code it must produce, and a phrase the message must contain.
    static let brokenCases: [(defines: [String], code: PluginError.Code, phrase: String)] = [
        (["FIXTURE_NO_ENTRY"], .missingEntrySymbol, "hangar_plugin_entry_v1"),
        (["FIXTURE_ABI_MAJOR=2"], .abiMismatch, "built for ABI 2.\(HostABI.minor)"),
        (["FIXTURE_NO_LIST_DEVICES"], .missingFunction, "'list_devices'"),
        (["FIXTURE_SLOT=\"gpu.device\""], .badSlotName, "'gpu.device' does not start with the plugin key 'fixture.'"),
    ]

    @Test(arguments: brokenCases.indices)
    func brokenPluginIsRejectedWithFileAndReason(index: Int) throws {
        let broken = Self.brokenCases[index]
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try FixtureCompiler.fixture("broken-\(index)", in: dir.path, defines: broken.defines)
        do {
            _ = try PluginLoader.open(path: path)
            Issue.record("\(broken.defines) loaded but should have been rejected")
        } catch {
            #expect(error.code == broken.code)
            #expect(error.file == path, "the error must name the file")
            #expect(error.description.contains(broken.phrase), "message was: \(error.description)")
        }
        // The host keeps working after a rejection.
        let mock = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock")))
        #expect(try mock.devices().count == 2)
    }

    @Test func createFailureCarriesThePluginsMessage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let library = try PluginLoader.open(path: FixtureCompiler.fixture("create-fails", in: dir.path, defines: ["FIXTURE_CREATE_FAILS"]))
        #expect {
            try AcceleratorPlugin(library: library)
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .createFailed && e.status == PluginStatus(HANGAR_E_DRIVER_UNAVAILABLE)
                && e.reason.contains("/dev/fixture0 does not exist") && e.file == library.path && e.call == "create"
        }
        #expect(library.instances.withLock { $0 } == 0, "a failed create must not count as a live instance")
    }

    @Test func olderMinorDescriptorStillLoads() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let library = try PluginLoader.open(path: FixtureCompiler.fixture("old-minor", in: dir.path, defines: ["FIXTURE_OLD_MINOR"]))
        #expect(library.descriptor.abiMinor == 0)
        #expect(Int(library.descriptor.structSize) < MemoryLayout<hangar_plugin_descriptor>.size)
        #expect(library.descriptor.homepage == nil, "a field past struct_size must read as absent")
        let plugin = try AcceleratorPlugin(library: library)
        #expect(try plugin.devices().map(\.id) == ["0"])
        #expect(try plugin.containerEdits(for: Allocation(containerID: "c", entries: [.init(slotName: "fixture.device", deviceID: "0", amount: amountScale)])).envValue("FIXTURE_VISIBLE_DEVICES") == "0")
    }

    @Test func currentMinorFixtureReadsHomepage() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let library = try PluginLoader.open(path: FixtureCompiler.fixture("current", in: dir.path))
        #expect(library.descriptor.homepage == "https://example.invalid/fixture")
    }

    @Test func worldWritablePluginIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try FixtureCompiler.fixture("writable", in: dir.path)
        chmod(path, 0o777)
        #expect {
            try PluginLoader.open(path: path)
        } throws: { error in
            (error as? PluginError)?.reason.contains("world-writable") == true
        }
    }

    @Test func pluginErrorsFromCallsNameTheCallAndCarryLastError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let plugin = try AcceleratorPlugin(library: PluginLoader.open(path: FixtureCompiler.fixture("calls", in: dir.path)))
        #expect {
            try plugin.containerEdits(for: Allocation(containerID: "c", entries: [.init(slotName: "fixture.device", deviceID: "7", amount: amountScale)]))
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .callFailed && e.call == "container_edits" && e.status == .notFound && e.reason == "unknown device '7'"
        }
        plugin.instance.destroy()
        #expect(throws: PluginError.self) { try plugin.devices() }
    }
}
