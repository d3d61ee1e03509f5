import ClusterProtocol
import Agent
import AgentResources
import ContainerEngine
import Foundation
import InMemoryEngine
import PluginHost
import Testing
import TestSupport

/// The agent's kernel logic against the in-memory engine: no podman, so these run anywhere and
/// fast; the same behaviours are proven on the real engine in KernelRunnerTests.
@Suite struct InMemoryKernelRunnerTests {
    static let image = "hangar/test:1"

    /// A runner on a fake 2-node, 8-core machine with the mock accelerator's two devices.
    static func runner(engine: InMemoryEngine, agentID: String = "mem-agent", scratch: String) throws -> (KernelRunner, SlotAllocator, AcceleratorPlugin) {
        let mock = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock")))
        let intrinsic = HostTopology.fake(nodes: 2, coresPerNode: 4, memoryBytes: 8 << 30).intrinsicSlots()
        var capacity = intrinsic.capacity
        var devices = intrinsic.devices
        for row in try mock.deviceSlots() { capacity[row.slotName, default: [:]][row.deviceID] = row.capacity }
        for d in try mock.devices() { devices.append(ComputeDevice(key: "mock", id: d.id, numaNode: d.numaNode.map(Int.init))) }
        let slots = intrinsic.slots + (try mock.slots()).map { SlotSpec(name: $0.name, kind: .count, exclusive: $0.exclusive) }
        let allocator = SlotAllocator(devices: devices, slots: slots, capacity: capacity, policy: .preferSingleNode, strategy: .fill)
        return (KernelRunner(agentID: agentID, engine: engine, allocator: allocator, scratchRoot: scratch, accelerators: [mock]), allocator, mock)
    }

    func request(_ id: String, image: String = Self.image) -> KernelRequest {
        KernelRequest(kernelID: id, sessionID: "s-\(id)", image: image, slots: ["cpu": 2 * slotAmountScale, "mem": 256 << 20, "mock.device": slotAmountScale],
                      command: ["python3", "-c", "print(1)"])
    }

    /// The agent's composition root assembles on any engine: its heartbeat reports the node's
    /// slots, the plugin's devices, the engine's images and the kernels the runner keeps.
    @Test func theAgentComposesOnTheInMemoryEngine() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image])
        let mock = try AcceleratorPlugin(library: PluginLoader.open(path: PluginPaths.bundled("hangar-accel-mock")))
        var config = AgentConfig()
        config.id = "composed"
        config.scratchDirectory = dir.path
        let daemon = try AgentDaemon(config: config, accelerators: [mock], engine: engine,
                                     topology: HostTopology.fake(nodes: 1, coresPerNode: 4, memoryBytes: 8 << 30))
        _ = try await daemon.runner.create(request("k-composed"))
        let heartbeat = await daemon.heartbeat()
        #expect(heartbeat.agentID == "composed")
        #expect(heartbeat.capacity["cpu"] == 4 && heartbeat.capacity["mock.device"] == 2)
        #expect(heartbeat.runningKernels == ["k-composed"])
        #expect(heartbeat.images.map { "\($0.name):\($0.tag)" } == [Self.image])
        // A listing that fails for a beat reports the last list, not none.
        engine.failImageListing(EngineError(status: 500, operation: "list images", message: "retrieving label for image: image not known"))
        #expect(await daemon.heartbeat().images.map { "\($0.name):\($0.tag)" } == [Self.image])
        engine.failImageListing(nil)
        #expect(heartbeat.devices.map(\.plugin) == ["mock", "mock"])
        _ = try await daemon.runner.destroy("k-composed")
        #expect(await daemon.heartbeat().runningKernels.isEmpty)
    }

    @Test func theEngineGetsExactlyTheAllocation() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image])
        let (runner, allocator, _) = try Self.runner(engine: engine, scratch: dir.path)
        let record = try await runner.create(request("k1"))
        let spec = try #require(engine.createdSpecs.last)
        #expect(spec.name == "hangar-k1")
        #expect(spec.cpuset == record.cpuset && spec.cpuset.count == 2)
        #expect(Set(spec.cpuset.map { $0 / 4 }).count == 1, "two cores of one NUMA node, as the mock device's")
        #expect(spec.nanoCPUs == 2_000_000_000 && spec.memoryBytes == 256 << 20)
        let device = try #require(record.allocation.devices(of: "mock.device").first)
        #expect(spec.environment.contains("HANGAR_MOCK_MOCK_DEVICES=\(device)"))
        #expect(spec.environment.contains("OMP_NUM_THREADS=2"))
        #expect(spec.labels[KernelLabels.kernel] == "k1" && spec.labels[KernelLabels.agent] == "mem-agent")
        #expect(spec.mounts.contains { $0.containerPath == "/home/config" && $0.readOnly })
        #expect(try await engine.inspect(record.containerID)?.state.running == true)
        _ = try await runner.destroy("k1")
        #expect(allocator.allocated.isEmpty)
        #expect(try await engine.inspect(record.containerID) == nil)
    }

    @Test(arguments: [(InMemoryEngine.Behaviour.exits(code: 3, stdout: "out\n", stderr: "err\n"), 3, false), (.oomKilled, 137, true)])
    func exitCodesAndOOMKillsComeBack(_ behaviour: InMemoryEngine.Behaviour, _ code: Int, _ oom: Bool) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image]) { _ in behaviour }
        let (runner, allocator, _) = try Self.runner(engine: engine, scratch: dir.path)
        _ = try await runner.create(request("k2"))
        let exit = try await runner.wait("k2")
        #expect(exit.exitCode == code && exit.oomKilled == oom && !exit.running)
        if !oom { #expect(try await runner.logs("k2").stdout == "out\n") }
        let final = try await runner.destroy("k2")
        #expect(final.exitCode == code && final.oomKilled == oom)
        #expect(allocator.allocated.isEmpty)
    }

    @Test func aMissingImageFailsAndHoldsNothing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image])
        let (runner, allocator, _) = try Self.runner(engine: engine, scratch: dir.path)
        do {
            _ = try await runner.create(request("k3", image: "nope:1"))
            Issue.record("a kernel of a missing image was created")
        } catch {
            guard case .imageNotFound("nope:1") = error else { Issue.record("wrong error: \(error)"); return }
        }
        #expect(allocator.allocated.isEmpty)
        #expect(engine.createdSpecs.isEmpty)
    }

    @Test func aFailedCreateReleasesTheSlotsAndWhatThePluginsPrepared() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image])
        let (runner, allocator, mock) = try Self.runner(engine: engine, scratch: dir.path)
        // A container of that name already exists: the engine refuses the create.
        _ = try await engine.create(ContainerSpec(name: "hangar-k4", image: Self.image))
        await #expect(throws: KernelError.self) { try await runner.create(request("k4")) }
        #expect(allocator.allocated.isEmpty)
        for device in try mock.devices() {
            let allocation = Allocation(containerID: "k4", entries: [.init(slotName: "mock.device", deviceID: device.id, amount: slotAmountScale)])
            #expect(try mock.containerEdits(for: allocation).resourceData.contains { $0.name == "MOCK_PREPARED" } == false,
                    "the mock's preparation for k4 was released")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(dir.path)/k4"), "the scratch folder is gone")
    }

    @Test func aRestartedAgentAdoptsItsKernelsWithTheSameAllocationAndRemovesStrays() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let engine = InMemoryEngine(images: [Self.image])
        let (first, before, _) = try Self.runner(engine: engine, scratch: dir.path)
        _ = try await first.create(request("k5"))
        _ = try await first.create(request("k6"))
        var stray = ContainerSpec(name: "hangar-stray", image: Self.image)
        stray.labels = [KernelLabels.agent: "mem-agent", KernelLabels.kernel: "stray"]
        let strayID = try await engine.create(stray)
        // The agent process dies; a new one with empty allocation maps starts on the same engine.
        let (second, after, _) = try Self.runner(engine: engine, scratch: dir.path)
        let (adopted, orphans) = try await second.recover()
        #expect(Set(adopted.map(\.request.kernelID)) == ["k5", "k6"])
        #expect(orphans == [strayID])
        #expect(after.allocated == before.allocated, "allocation maps rebuilt exactly")
        #expect(await second.removeOrphans(orphans) == 1)
        #expect(try await engine.inspect(strayID) == nil)
        for id in ["k5", "k6"] { _ = try await second.destroy(id) }
        #expect(after.allocated.isEmpty)
    }

    @Test func theDockerBodyOfASpec() {
        var spec = ContainerSpec(name: "k", image: "img:1")
        spec.memoryBytes = 1 << 30
        spec.sharedMemoryBytes = 64 << 20
        spec.devices = [.init(hostPath: "/dev/x0", containerPath: "/dev/x1")]
        spec.ulimits = [.init(name: "memlock", soft: -1, hard: -1)]
        var host = DockerEngineClient.createBody(spec)["HostConfig"] as? [String: Any] ?? [:]
        #expect(host["Memory"] as? Int64 == 1 << 30 && host["MemorySwap"] as? Int64 == 1 << 30, "no swap")
        #expect(host["ShmSize"] as? Int64 == 64 << 20 && host["IpcMode"] == nil)
        #expect((host["Devices"] as? [[String: String]])?.first?["PathInContainer"] == "/dev/x1")
        spec.hostIPC = true
        host = DockerEngineClient.createBody(spec)["HostConfig"] as? [String: Any] ?? [:]
        #expect(host["IpcMode"] as? String == "host" && host["ShmSize"] == nil, "the host's /dev/shm takes no size")
    }
}
