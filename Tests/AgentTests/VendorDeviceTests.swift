import ClusterProtocol
import Agent
import AgentResources
import ContainerEngine
import Foundation
import PluginHost
import Testing
import TestSupport

extension VendorCase: CustomTestStringConvertible {
    public var testDescription: String { name }
}

/// Every vendor plugin's device nodes in a real container under podman: the fake machine's
/// device files become real character devices, a kernel gets one of the vendor's devices, and
/// inside the container exactly that device's nodes exist, under the names the plugin gives
/// them (renumbered where the vendor renumbers) — and not the other device's.
@Suite(.serialized) struct VendorDeviceTests {
    /// Turns every regular file under `dev` into a character device (1:3, what /dev/null is), as
    /// the vendor's driver would have created it.
    static func makeDeviceNodes(under dev: String) throws {
        guard let files = FileManager.default.enumerator(atPath: dev)?.compactMap({ $0 as? String }) else { return }
        for file in files {
            let path = "\(dev)/\(file)"
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, !file.hasSuffix("README"), st.st_size == 0 else { continue }
            unlink(path)
            guard mknod(path, S_IFCHR | 0o666, makedev(1, 3)) == 0 else { throw TestSupportError("mknod \(path): errno \(errno)") }
        }
    }

    static func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
        dev_t((UInt64(major) << 8) | UInt64(minor))
    }

    @Test(arguments: VendorCase.all)
    func aContainerSeesOnlyItsDevicesUnderTheirContainerNames(_ c: VendorCase) async throws {
        let rig = try VendorRig(c)
        defer { rig.dir.remove() }
        try Self.makeDeviceNodes(under: "\(rig.tree)/dev")
        let plugin = try rig.plugin()
        let healthy = try plugin.devices().filter { $0.health != .unhealthy }
        let rows = try plugin.deviceSlots()
        // A slot two healthy devices offer (MIG parents offer none: skip devices without capacity).
        let offering = healthy.filter { d in rows.contains { $0.deviceID == d.id && $0.capacity > 0 } }
        guard offering.count >= 2, let slot = rows.first(where: { $0.deviceID == offering[0].id && $0.capacity > 0 })?.slotName else {
            Issue.record("\(c.name): the fake machine needs two healthy devices with capacity")
            return
        }
        let pair = offering.filter { d in rows.contains { $0.deviceID == d.id && $0.slotName == slot && $0.capacity > 0 } }.prefix(2).map(\.id)
        // What each device alone would show in a container.
        func nodes(_ ids: [String]) throws -> Set<String> {
            let allocation = try rig.allocation(plugin, devices: ids, slot: slot, container: "probe-\(ids.joined(separator: "-"))")
            try plugin.prepare(allocation)
            defer { try? plugin.release(allocation) }
            return Set(try plugin.containerEdits(for: allocation).deviceNodes.map(\.containerPath))
        }
        let candidates = try nodes([pair[0]]).union(try nodes([pair[1]])).union(try nodes(pair)).sorted()

        // The agent's allocator and runner with this plugin, on the real engine, with the
        // engine networks the plugin attaches containers to (IPU's RDMA networks) made first.
        let engine = DockerEngineClient(socketPath: try TestEngine.socket())
        let networks = Set(try [[pair[0]], [pair[1]]].flatMap { ids -> [String] in
            let allocation = try rig.allocation(plugin, devices: ids, slot: slot, container: "net-probe")
            try plugin.prepare(allocation)
            defer { try? plugin.release(allocation) }
            return try plugin.containerEdits(for: allocation).networks
        })
        for network in networks {
            _ = try? await engine.call(.POST, "/networks/create", json: JSONSerialization.data(withJSONObject: ["Name": network]), operation: "create network \(network)")
        }
        defer {
            for network in networks {
                let client = engine
                Task { _ = try? await client.call(.DELETE, "/networks/\(network)", operation: "remove network \(network)") }
            }
        }
        let intrinsic = HostTopology.detect().intrinsicSlots()
        var capacity = intrinsic.capacity
        var devices = intrinsic.devices
        for row in rows { capacity[row.slotName, default: [:]][row.deviceID] = row.capacity }
        for d in healthy { devices.append(ComputeDevice(key: plugin.info.deviceKey, id: d.id, numaNode: d.numaNode.map(Int.init), parentID: d.parentDeviceID)) }
        let specs = intrinsic.slots + (try plugin.slots()).map { s in
            SlotSpec(name: s.name, kind: s.type == .bytes ? .bytes : s.type == .unique ? .unique : .count, exclusive: s.exclusive)
        }
        let allocator = SlotAllocator(devices: devices, slots: specs, capacity: capacity, policy: .preferSingleNode, strategy: .fill)
        let runner = KernelRunner(agentID: "vendor-\(UUID().uuidString.prefix(8).lowercased())", engine: engine, allocator: allocator,
                                  scratchRoot: "\(rig.dir.path)/scratch", runnerBinary: nil, accelerators: [plugin],
                                  // What Tools/scripts/containers.conf gives every container: podman drops it once a
                                  // container names a ulimit of its own (memlock, here).
                                  defaultUlimits: [.init(name: "nofile", soft: 10000, hard: 10000), .init(name: "nproc", soft: 10000, hard: 10000)])
        let probe = "import os, stat, sys\nfor p in sys.argv[1:]:\n    if os.path.exists(p):\n        print(p, 'char' if stat.S_ISCHR(os.stat(p).st_mode) else 'other')"
        let request = KernelRequest(kernelID: "k-\(c.name)-\(UUID().uuidString.prefix(6))".replacingOccurrences(of: ".", with: "-"), sessionID: "s-vendor",
                                    image: TestEngine.image, slots: ["cpu": unit, "mem": 128 << 20, slot: unit],
                                    command: ["python3", "-c", probe] + candidates)
        let record = try await runner.create(request)
        let exit = try await runner.wait(request.kernelID)
        let logs = try await runner.logs(request.kernelID)
        _ = try await runner.destroy(request.kernelID)
        #expect(exit.exitCode == 0, "\(logs.stderr)")
        let allocated = record.allocation.devices(of: slot)
        #expect(allocated.count == 1)
        let expected = try nodes(allocated)
        let seen = Dictionary(uniqueKeysWithValues: logs.stdout.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            return (String(parts[0]), String(parts.last ?? ""))
        })
        // Directories the plugin passes (e.g. /dev/infiniband) appear as such; every node is a character device.
        for path in expected {
            #expect(seen[path] != nil, "\(c.name): \(path) missing in the container (saw \(seen.keys.sorted()))")
        }
        for path in candidates where !expected.contains(path) {
            #expect(seen[path] == nil, "\(c.name): \(path) belongs to the other device but is in the container")
        }
        #expect(allocator.allocated.isEmpty, "slots released")
    }
}
