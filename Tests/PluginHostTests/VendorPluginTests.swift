import AgentResources
import Foundation
import PluginConformance
import Testing
@testable import PluginHost

extension VendorCase: CustomTestStringConvertible {
    public var testDescription: String { name }
}

@Suite struct VendorPluginTests {
    @Test func everyVendorOfTheIssueHasACase() {
        let names = Set(VendorCase.all.map(\.name))
        for vendor in ["rocm", "tpu", "ipu", "atom", "warboy", "rngd", "hyperaccel-lpu", "gaudi", "tenstorrent", "cuda-mig"] {
            #expect(names.contains(vendor), "no fake machine for \(vendor) in Tests/Fixtures/Vendors")
        }
    }

    @Test(arguments: VendorCase.all)
    func passesVerifyOnItsFakeMachine(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        let report = ConformanceSuite.run(library: try rig.library, config: try rig.config())
        #expect(report.passed, "\(report.failures.map { "\($0.id): \($0.detail)" })")
        // The fake machine has an unhealthy device, so the refusal check ran.
        #expect(report.checks.first { $0.id == "accelerator.container_edits.unhealthy_device" }?.outcome == .pass)
    }

    @Test(arguments: VendorCase.all)
    func reportsTheDevicesSlotsAndNUMANodesOfItsFakeMachine(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        let plugin = try rig.plugin()
        defer { plugin.instance.destroy() }
        #expect(plugin.info.deviceKey == c.deviceKey)
        let devices = try plugin.devices()
        #expect(devices.map(\.id) == c.devices.map(\.id))
        for (got, want) in zip(devices, c.devices) {
            #expect(got.model == want.model, "device \(want.id)")
            #expect((got.numaNode ?? -1) == want.numa, "device \(want.id) NUMA node")
            #expect(got.health.description == want.health, "device \(want.id) health")
            if got.health == .unhealthy { #expect(got.healthReason?.isEmpty == false, "device \(want.id) says why it is unhealthy") }
            if let memory = want.memory { #expect(got.memoryBytes == memory, "device \(want.id) memory") }
            if let cpus = want.cpus { #expect(got.cpuAffinity == cpus, "device \(want.id) cpu_affinity") }
            if let parent = want.parent { #expect(got.parentDeviceID == parent, "device \(want.id) parent") }
        }
        let slots = try plugin.slots()
        #expect(Dictionary(uniqueKeysWithValues: slots.map { ($0.name, formatAmount($0.capacity, type: $0.type)) }) == c.slots)
        // An unhealthy device is listed but offered in no slot.
        let unhealthy = Set(devices.filter { $0.health == .unhealthy }.map(\.id))
        #expect(!unhealthy.isEmpty)
        #expect(try plugin.deviceSlots().allSatisfy { !unhealthy.contains($0.deviceID) || $0.capacity == 0 })
    }

    @Test(arguments: VendorCase.all)
    func givesContainersExactlyTheirDevices(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        let plugin = try rig.plugin()
        defer { plugin.instance.destroy() }
        for edit in c.edits {
            let allocation = try rig.allocation(plugin, devices: edit.devices, slot: edit.slot)
            try plugin.prepare(allocation)
            let lines = try plugin.containerEdits(for: allocation).lines
            try plugin.release(allocation)
            #expect(lines == (try edit.lines.map(rig.resolve)), "edits for \(edit.devices)")
        }
    }

    @Test(arguments: VendorCase.all)
    func measuresWhatTheVendorExposes(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        let plugin = try rig.plugin()
        defer { plugin.instance.destroy() }
        let node = Set(try plugin.nodeMeasures().map(\.key))
        #expect(Set(c.nodeMeasures).isSubset(of: node), "node measures \(node.sorted())")
        if let wanted = c.containerMeasures {
            let healthy = try #require(try plugin.devices().first { $0.health != .unhealthy })
            let allocation = try rig.allocation(plugin, devices: [healthy.id], slot: nil)
            try plugin.prepare(allocation)
            let measures = try plugin.containerMeasures([allocation])
            try plugin.release(allocation)
            #expect(Set(wanted).isSubset(of: Set(measures.map(\.key))), "container measures \(measures.map(\.key))")
            #expect(measures.allSatisfy { $0.containerID == allocation.containerID })
        }
    }

    /// A kernel with the vendor's devices on a 2-node machine gets cores from their nodes.
    @Test(arguments: VendorCase.all)
    func coresComeFromTheDevicesNUMANodes(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        let plugin = try rig.plugin()
        defer { plugin.instance.destroy() }
        let intrinsic = HostTopology.fake(nodes: 2, coresPerNode: 4, memoryBytes: 32 << 30).intrinsicSlots()
        var devices = intrinsic.devices, capacity = intrinsic.capacity
        for d in try plugin.devices() where d.health != .unhealthy {
            devices.append(ComputeDevice(key: plugin.info.deviceKey, id: d.id, numaNode: d.numaNode.map(Int.init)))
        }
        for row in try plugin.deviceSlots() { capacity[row.slotName, default: [:]][row.deviceID] = row.capacity }
        let slots = try plugin.slots()
        let specs = intrinsic.slots + slots.map { SlotSpec(name: $0.name, kind: $0.type == .bytes ? .bytes : $0.type == .unique ? .unique : .count,
                                                           exclusive: $0.exclusive) }
        let slot = try #require(slots.first { s in try plugin.deviceSlots().contains { $0.slotName == s.name && $0.capacity > 0 } })
        let numaOf = Dictionary(uniqueKeysWithValues: try plugin.devices().map { ($0.id, $0.numaNode.map(Int.init)) })
        // One device: cores on its node.
        let one = SlotAllocator(devices: devices, slots: specs, capacity: capacity, policy: .preferSingleNode, order: [plugin.info.deviceKey, "cpu", "mem"])
        let k1 = try one.allocate([slot.name: slot.type == .count ? amountScale : try #require(capacity[slot.name]?.values.max()), "cpu": 2 * amountScale])
        let node = try #require(k1.devices(of: slot.name).first.flatMap { numaOf[$0] ?? nil })
        #expect(k1.devices(of: "cpu").compactMap(Int.init).allSatisfy { $0 / 4 == node }, "cores \(k1.devices(of: "cpu")) for a device on node \(node)")
        // Two devices (where the slot gives two): cores only from their nodes.
        guard slot.type == .count, (capacity[slot.name]?.values.filter { $0 >= amountScale }.count ?? 0) >= 2 else { return }
        let two = SlotAllocator(devices: devices, slots: specs, capacity: capacity, policy: .interleaved, strategy: .evenly,
                                order: [plugin.info.deviceKey, "cpu", "mem"])
        let k2 = try two.allocate([slot.name: 2 * amountScale, "cpu": 4 * amountScale])
        let nodes = Set(k2.devices(of: slot.name).compactMap { numaOf[$0] ?? nil })
        #expect(k2.devices(of: "cpu").compactMap(Int.init).allSatisfy { nodes.contains($0 / 4) })
    }

    /// A vendor tool that hangs, prints garbage or fails, or a missing library: the plugin still
    /// loads, offers nothing and says why, within its timeout.
    @Test(arguments: VendorCase.all.filter { $0.failures != nil })
    func aBrokenVendorToolGivesAClearReasonAndNoDevices(_ c: VendorCase) throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        for failure in c.failures ?? [] {
            let started = Date()
            let plugin = try rig.plugin(overrides: failure.config)
            defer { plugin.instance.destroy() }
            #expect(Date().timeIntervalSince(started) < 10, "create() took \(Date().timeIntervalSince(started)) s with \(failure.config)")
            #expect(try plugin.devices().isEmpty, "\(failure.config)")
            let reason = plugin.info.noDeviceReason ?? ""
            #expect(reason.contains(try rig.resolve(failure.reason)), "\(failure.config): no_device_reason '\(reason)'")
        }
    }

    @Test(arguments: VendorCase.all.map(\.product).uniqued())
    func anExampleConfigListsItsDevicesOrSaysWhyNot(_ product: String) throws {
        let name = String(product.dropFirst("hangar-accel-".count))
        let example = "\(PluginPaths.repoRoot)/Tools/examples/\(name).toml"
        #expect(FileManager.default.fileExists(atPath: example), "Tools/examples/\(name).toml is missing")
        let (status, output) = try run(["\(PluginPaths.binDir)/hangar-plugin", "devices", "--config", example, "--search-path", PluginPaths.binDir])
        // This machine has none of these devices: the plugin is created and says so.
        #expect(status == 0, "\(output)")
        #expect(output.contains("no devices"), "\(output)")
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
