import Foundation
import PluginAPI
import Testing
@testable import PluginHost

/// The mock and CUDA accelerator plugins through the host wrapper.
@Suite struct MockAcceleratorTests {
    func mock(_ config: ConfigValue) throws -> AcceleratorPlugin {
        try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock")), config: config)
    }

    @Test func discreteDevicesPoseAsCUDA() throws {
        let plugin = try mock(tomlConfig("""
            device_key = "cuda"
            devices = [
              { id = "0", model = "Mock H100", memory = "80G", processing_units = 132, numa_node = 0 },
              { id = "1", model = "Mock H100", memory = "80G", processing_units = 132, numa_node = 1 },
            ]
            """))
        defer { plugin.instance.destroy() }
        #expect(plugin.info.deviceKey == "cuda")
        let devices = try plugin.devices()
        #expect(devices.map(\.numaNode) == [0, 1])
        #expect(devices[0].memoryBytes == 80 << 30)
        let slots = try plugin.slots()
        #expect(slots.map(\.name) == ["cuda.device"])
        #expect(slots[0].capacity == 2 * amountScale && slots[0].mode == .discrete)
        let edits = try plugin.containerEdits(for: Allocation(containerID: "k1", entries: [.init(slotName: "cuda.device", deviceID: "1", amount: amountScale)]))
        #expect(edits.envValue("HANGAR_MOCK_CUDA_DEVICES") == "1")
        #expect(edits.envValue("HANGAR_MOCK_CUDA_DEVICE_COUNT") == "1")
        #expect(edits.envValue("TF_MIN_GPU_MULTIPROCESSOR_COUNT") == "4")
        #expect(edits.deviceNodes.isEmpty)
        #expect(edits.resourceData.contains(.init(name: "CUDA_GLOBAL_DEVICE_IDS", value: "0:1")))
    }

    @Test func fractionalSharesFollowTheQuantum() throws {
        let plugin = try mock(tomlConfig("""
            allocation_mode = "fractional"
            quantum = "0.25"
            unit_memory = "4G"
            unit_processing_units = 8
            devices = [{ id = "a", memory = "16G", processing_units = 64 }]
            """))
        defer { plugin.instance.destroy() }
        let slots = try plugin.slots()
        #expect(slots.map(\.name) == ["mock.shares"])
        #expect(slots[0].capacity == 4 * amountScale, "min(16G/4G, 64/8) = 4 shares")
        #expect(slots[0].quantum == amountScale / 4)
        let half = Allocation(containerID: "k", entries: [.init(slotName: "mock.shares", deviceID: "a", amount: amountScale / 2)])
        #expect(try plugin.containerEdits(for: half).envValue("HANGAR_MOCK_MOCK_SHARES") == "a:0.5")
        let odd = Allocation(containerID: "k", entries: [.init(slotName: "mock.shares", deviceID: "a", amount: amountScale / 10)])
        #expect {
            try plugin.containerEdits(for: odd)
        } throws: { error in
            (error as? PluginError)?.status == PluginStatus(HANGAR_E_BAD_ALLOCATION)
        }
    }

    @Test func reportsTheABI12DeviceFacts() throws {
        let plugin = try mock(tomlConfig("""
            devices = [
              { id = "0", firmware_version = "fw 2.1", board_id = "B-0042", link_speed = "PCIe 4.0 x16", cpu_affinity = "0-3,8" },
              { id = "0a", parent = "0" },
            ]
            """))
        defer { plugin.instance.destroy() }
        let devices = try plugin.devices()
        #expect(devices.map(\.id) == ["0", "0a"])
        #expect(devices[0].firmwareVersion == "fw 2.1" && devices[0].boardID == "B-0042" && devices[0].linkSpeed == "PCIe 4.0 x16")
        #expect(devices[0].affineCPUs == [0, 1, 2, 3, 8])
        #expect(devices[1].parentDeviceID == "0" && devices[0].parentDeviceID == nil)
    }

    @Test(arguments: [("cpu_affinity = \"0-\"", "devices.0.cpu_affinity"), ("parent = \"nope\"", "devices.0.parent")])
    func aBadDeviceFactFailsCreateNamingTheKey(_ entry: String, _ key: String) throws {
        #expect {
            _ = try mock(tomlConfig("devices = [ { id = \"0\", \(entry) } ]"))
        } throws: { error in
            (error as? PluginError)?.code == .createFailed && (error as? PluginError)?.reason.contains(key) == true
        }
    }

    @Test func prepareIsIdempotentAndReleaseForgetsIt() throws {
        let plugin = try mock(.emptyTable)
        defer { plugin.instance.destroy() }
        #expect(plugin.hasPrepare)
        let allocation = Allocation(containerID: "k-prep", entries: [.init(slotName: "mock.device", deviceID: "0", amount: amountScale)])
        #expect(try plugin.containerEdits(for: allocation).resourceData.contains { $0.name == "MOCK_PREPARED" } == false)
        try plugin.prepare(allocation)
        try plugin.prepare(allocation)
        #expect(try plugin.containerEdits(for: allocation).resourceData.contains(.init(name: "MOCK_PREPARED", value: "1")))
        try plugin.release(allocation)
        try plugin.release(allocation)
        #expect(try plugin.containerEdits(for: allocation).resourceData.contains { $0.name == "MOCK_PREPARED" } == false)
        #expect {
            try plugin.prepare(Allocation(containerID: "k-prep", entries: [.init(slotName: "mock.device", deviceID: "9", amount: amountScale)]))
        } throws: { error in (error as? PluginError)?.status == .notFound }
    }

    @Test func badDeviceConfigNamesTheKey() throws {
        #expect {
            try mock(tomlConfig("devices = [{ id = \"0\" }, { id = \"1\", memory = \"lots\" }]"))
        } throws: { error in
            guard let e = error as? PluginError else { return false }
            return e.code == .createFailed && e.reason.contains("devices.1.memory")
        }
    }

    @Test func serialisedPluginSurvivesConcurrentCalls() async throws {
        let plugin = try mock(.emptyTable)
        defer { plugin.instance.destroy() }
        let counts = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var n = 0
                    for _ in 0..<200 { n += (try? plugin.devices().count) ?? -1000 }
                    return n
                }
            }
            var total: [Int] = []
            for await c in group { total.append(c) }
            return total
        }
        #expect(counts == Array(repeating: 400, count: 8))
    }
}

/// The CUDA plugin's real NVML loading and query code against a fake libnvidia-ml.so.1 and a
/// fake sysfs tree (we have no GPUs here).
@Suite struct CUDAPluginTests {
    struct Rig {
        let dir: TemporaryDirectory
        let nvml: String
        let sysfs: String
    }

    static func rig() throws -> Rig {
        let dir = try TemporaryDirectory()
        let nvml = "\(dir.path)/libnvidia-ml.so.1"
        try FixtureCompiler.build(["Tests/Fixtures/FakeNVML/fake_nvml.c"], output: nvml, hiddenVisibility: false)
        _ = try dir.write("sys/bus/pci/devices/0000:3b:00.0/numa_node", "0\n")
        _ = try dir.write("sys/bus/pci/devices/0000:af:00.0/numa_node", "1\n")
        _ = try dir.write("sys/bus/pci/devices/0000:3b:00.0/local_cpulist", "0-15,32-47\n")
        _ = try dir.write("sys/bus/pci/devices/0000:af:00.0/local_cpulist", "16-31,48-63\n")
        return Rig(dir: dir, nvml: nvml, sysfs: "\(dir.path)/sys")
    }

    func cuda(_ rig: Rig, injection: String, cdiDirs: [String] = []) throws -> AcceleratorPlugin {
        try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-cuda")), config: .table([
            ("nvml_library", .string(rig.nvml)), ("sysfs_root", .string(rig.sysfs)), ("injection", .string(injection)),
            ("cdi_spec_dirs", .array(cdiDirs.map { .string($0) })),
        ]))
    }

    @Test func discoversTwoGPUsOnTwoNUMANodes() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try cuda(rig, injection: "device-nodes")
        defer { plugin.instance.destroy() }
        #expect(plugin.info.driverVersion == "550.54.15")
        #expect(plugin.info.noDeviceReason == nil)
        let devices = try plugin.devices()
        #expect(devices.map(\.id) == ["0", "1"])
        #expect(devices.map(\.uuid) == ["GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666-7777-8888-9999-000000000000"])
        #expect(devices.map(\.hwLocation) == ["0000:3b:00.0", "0000:af:00.0"])
        #expect(devices.map(\.numaNode) == [0, 1])
        #expect(devices.allSatisfy { $0.model == "NVIDIA H200" && $0.memoryBytes == 151_397_597_184 && $0.health == .healthy })
        #expect(try plugin.slots().map(\.name) == ["cuda.device"])
        #expect(try plugin.slots()[0].capacity == 2 * amountScale)
    }

    @Test func reportsFirmwareLinkAffinityAndPowerFromNVMLAndSysfs() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try cuda(rig, injection: "device-nodes")
        defer { plugin.instance.destroy() }
        let devices = try plugin.devices()
        #expect(devices.map(\.firmwareVersion) == ["96.00.A5.00.01", "96.00.A5.00.01"])
        #expect(devices.map(\.linkSpeed) == ["PCIe 5.0 x16", "PCIe 5.0 x16"])
        #expect(devices.map(\.cpuAffinity) == ["0-15,32-47", "16-31,48-63"])
        let measures = try plugin.nodeMeasures()
        let temps = measures.filter { $0.key == "cuda_temp" }
        #expect(temps.map(\.current) == [34, 36] && temps.allSatisfy { $0.unit == .celsius && $0.kind == .gauge })
        let power = measures.filter { $0.key == "cuda_power" }
        #expect(power.map(\.current) == [118, 95] && power.allSatisfy { $0.unit == .watts && $0.capacity == 700 })
        let energy = measures.filter { $0.key == "cuda_energy" }
        #expect(energy.count == 2 && energy.allSatisfy { $0.unit == .joules && $0.kind == .counter })
    }

    @Test func anOlderDriverWithoutTheOptionalFunctionsStillWorks() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let old = "\(rig.dir.path)/old/libnvidia-ml.so.1"
        try FileManager.default.createDirectory(atPath: "\(rig.dir.path)/old", withIntermediateDirectories: true)
        try FixtureCompiler.build(["Tests/Fixtures/FakeNVML/fake_nvml.c"], output: old, defines: ["FAKE_NVML_WITHOUT_OPTIONAL"], hiddenVisibility: false)
        let plugin = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-cuda")), config: .table([
            ("nvml_library", .string(old)), ("sysfs_root", .string(rig.sysfs)),
        ]))
        defer { plugin.instance.destroy() }
        let devices = try plugin.devices()
        #expect(devices.count == 2 && devices.allSatisfy { $0.firmwareVersion == nil && $0.linkSpeed == nil })
        #expect(try plugin.nodeMeasures().contains { $0.key == "cuda_temp" } == false)
        #expect(try plugin.containerEdits(for: Allocation(containerID: "k", entries: [.init(slotName: "cuda.device", deviceID: "0", amount: amountScale)])).isEmpty == false)
    }

    @Test func deviceNodeInjection() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try cuda(rig, injection: "device-nodes")
        defer { plugin.instance.destroy() }
        let edits = try plugin.containerEdits(for: Allocation(containerID: "k", entries: [.init(slotName: "cuda.device", deviceID: "1", amount: amountScale)]))
        #expect(edits.deviceNodes.map(\.hostPath).contains("/dev/nvidia1"))
        #expect(!edits.deviceNodes.map(\.hostPath).contains("/dev/nvidia0"))
        #expect(Set(edits.deviceNodes.map(\.hostPath)).isSuperset(of: ["/dev/nvidiactl", "/dev/nvidia-uvm"]))
        #expect(edits.envValue("NVIDIA_VISIBLE_DEVICES") == "GPU-66666666-7777-8888-9999-000000000000")
        #expect(edits.cdiDevices.isEmpty)
        #expect(edits.resourceData.contains(.init(name: "CUDA_GLOBAL_DEVICE_IDS", value: "0:1")))
    }

    @Test func cdiInjectionWhenASpecExists() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        _ = try rig.dir.write("cdi/nvidia.json", #"{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[]}"#)
        let plugin = try cuda(rig, injection: "auto", cdiDirs: ["\(rig.dir.path)/cdi"])
        defer { plugin.instance.destroy() }
        let edits = try plugin.containerEdits(for: Allocation(containerID: "k", entries: [
            .init(slotName: "cuda.device", deviceID: "0", amount: amountScale), .init(slotName: "cuda.device", deviceID: "1", amount: amountScale),
        ]))
        #expect(edits.cdiDevices == ["nvidia.com/gpu=GPU-11111111-2222-3333-4444-555555555555", "nvidia.com/gpu=GPU-66666666-7777-8888-9999-000000000000"])
        #expect(!edits.deviceNodes.map(\.hostPath).contains("/dev/nvidia0"))
    }

    @Test func measuresUtilisationAndMemory() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try cuda(rig, injection: "device-nodes")
        defer { plugin.instance.destroy() }
        let node = try plugin.nodeMeasures()
        #expect(node.contains { $0.key == "cuda_util" && $0.deviceID == "0" && $0.current == 37 && $0.capacity == 100 })
        #expect(node.contains { $0.key == "cuda_mem" && $0.deviceID == "1" && $0.current == 1_073_741_824 })
        let perContainer = try plugin.containerMeasures([Allocation(containerID: "k9", entries: [.init(slotName: "cuda.device", deviceID: "0", amount: amountScale)])])
        #expect(!perContainer.isEmpty && perContainer.allSatisfy { $0.containerID == "k9" && $0.deviceID == "0" })
    }

    @Test func rejectsBadAllocations() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try cuda(rig, injection: "device-nodes")
        defer { plugin.instance.destroy() }
        for (entry, status) in [(AllocationEntry(slotName: "cuda.device", deviceID: "7", amount: amountScale), HANGAR_E_NOT_FOUND),
                                (AllocationEntry(slotName: "cuda.device", deviceID: "0", amount: amountScale / 2), HANGAR_E_BAD_ALLOCATION)] {
            #expect {
                try plugin.containerEdits(for: Allocation(containerID: "k", entries: [entry]))
            } throws: { error in
                (error as? PluginError)?.status == PluginStatus(status)
            }
        }
    }

    @Test func missingNVMLMeansZeroDevicesAndAReason() throws {
        let plugin = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-cuda")),
                                           config: .table([("nvml_library", .string("/nonexistent/libnvidia-ml.so.1"))]))
        defer { plugin.instance.destroy() }
        #expect(try plugin.devices().isEmpty)
        #expect(plugin.info.noDeviceReason?.contains("/nonexistent/libnvidia-ml.so.1") == true)
        #expect(try plugin.slots().allSatisfy { $0.capacity == 0 })
    }

    @Test func maskHidesADevice() throws {
        let rig = try Self.rig()
        defer { rig.dir.remove() }
        let plugin = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-cuda")), config: .table([
            ("nvml_library", .string(rig.nvml)), ("sysfs_root", .string(rig.sysfs)),
            ("device_mask", .array([.string("GPU-11111111-2222-3333-4444-555555555555")])),
        ]))
        defer { plugin.instance.destroy() }
        #expect(try plugin.devices().map(\.id) == ["1"])
    }
}
