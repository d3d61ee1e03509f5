import ClusterProtocol
import Agent
import AgentResources
import ConfigFile
import ContainerEngine
import Foundation
import PluginHost
import Testing
import TestSupport

let unit = slotAmountScale

/// A runner on the real engine with the machine's cores and memory plus two mock devices.
func makeRunner(agentID: String = "test-agent-\(UUID().uuidString.prefix(8).lowercased())", scratch: String? = nil,
                sandbox: SandboxSettings = .disabled, mockConfig: ConfigValue = .emptyTable) throws -> (KernelRunner, SlotAllocator, String) {
    let engine = DockerEngineClient(socketPath: try TestEngine.socket())
    let mock = try AcceleratorPlugin(library: PluginLoader.open(path: TestEngine.binDir + "/libhangar-accel-mock.so"), config: mockConfig)
    let intrinsic = HostTopology.detect().intrinsicSlots()
    var capacity = intrinsic.capacity
    var devices = intrinsic.devices
    for row in try mock.deviceSlots() { capacity[row.slotName, default: [:]][row.deviceID] = row.capacity }
    for d in try mock.devices() { devices.append(ComputeDevice(key: "mock", id: d.id, numaNode: d.numaNode.map(Int.init))) }
    let slots = intrinsic.slots + (try mock.slots()).map { SlotSpec(name: $0.name, kind: .count, exclusive: $0.exclusive) }
    let allocator = SlotAllocator(devices: devices, slots: slots, capacity: capacity, policy: .preferSingleNode, strategy: .fill)
    let root = scratch ?? FileManager.default.temporaryDirectory.appendingPathComponent("hangar-scratch-\(UUID().uuidString)").path
    return (KernelRunner(agentID: agentID, engine: engine, allocator: allocator, scratchRoot: root, runnerBinary: TestEngine.binDir + "/hangar-runner",
                         accelerators: [mock], sandbox: sandbox), allocator, agentID)
}

/// Reads the kernel's own cgroup limits from inside the container (v1 or v2 layout).
let probe = """
import os
def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return "?"
print("CPUS=" + read("/sys/fs/cgroup/cpuset/cpuset.cpus", "/sys/fs/cgroup/cpuset.cpus.effective", "/sys/fs/cgroup/cpuset.cpus"))
print("MEM=" + read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"))
print("PIDS=" + read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
print("AFFINITY=" + ",".join(str(c) for c in sorted(os.sched_getaffinity(0))))
print("MOCK=" + os.environ.get("HANGAR_MOCK_MOCK_DEVICES", "-"))
print("RESOURCE=" + open("/home/config/resource.txt").read().replace("\\n", ";"))
import sys; print("to stderr", file=sys.stderr)
"""

@Suite(.serialized) struct KernelRunnerTests {
    @Test func kernelGetsExactlyWhatWasAllocated() async throws {
        let (runner, allocator, _) = try makeRunner()
        let request = KernelRequest(kernelID: "k-limits-\(UUID().uuidString.prefix(6))", sessionID: "s1", image: TestEngine.image,
                                    slots: ["cpu": unit, "mem": 256 << 20, "mock.device": unit],
                                    command: ["python3", "-c", probe], pidsLimit: 128)
        let record = try await runner.create(request)
        #expect(record.cpuset.count == 1)
        let exit = try await runner.wait(request.kernelID)
        #expect(exit.exitCode == 0 && !exit.oomKilled)
        let logs = try await runner.logs(request.kernelID)
        let values = Dictionary(logs.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
            guard let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), String(line[line.index(after: eq)...]))
        }, uniquingKeysWith: { a, _ in a })
        #expect(values["CPUS"] == String(record.cpuset[0]), "stdout: \(logs.stdout)")
        #expect(values["AFFINITY"] == String(record.cpuset[0]))
        #expect(values["MEM"] == String(256 << 20))
        #expect(values["PIDS"] == "128")
        #expect(values["MOCK"] == record.allocation.devices(of: "mock.device").first)
        #expect(values["RESOURCE"]?.contains("CPU_SHARES=\(record.cpuset[0]):\(unit)") == true)
        // The agent prepared the mock's allocation (ABI 1.2 prepare) before asking for its edits.
        #expect(values["RESOURCE"]?.contains("MOCK_PREPARED=1") == true, "resource.txt: \(values["RESOURCE"] ?? "")")
        #expect(logs.stderr.contains("to stderr"), "stderr is kept apart")
        _ = try await runner.destroy(request.kernelID)
        #expect(allocator.allocated.isEmpty, "slots released on destroy")
        #expect(try await runner.engine.inspect(record.containerID) == nil, "container removed")
    }

    @Test func memoryHogIsOOMKilledAndReportedAsSuch() async throws {
        let (runner, allocator, _) = try makeRunner()
        let request = KernelRequest(kernelID: "k-oom-\(UUID().uuidString.prefix(6))", sessionID: "s2", image: TestEngine.image,
                                    slots: ["cpu": unit, "mem": 64 << 20],
                                    command: ["python3", "-c", "b = bytearray(1 << 30)\nprint('survived')"])
        _ = try await runner.create(request)
        let exit = try await runner.wait(request.kernelID)
        #expect(exit.oomKilled, "exit: \(exit)")
        #expect(exit.exitCode == 137)
        let final = try await runner.destroy(request.kernelID)
        #expect(final.oomKilled && final.exitCode == 137, "destroy reports the OOM kill too")
        #expect(allocator.allocated.isEmpty)
    }

    @Test func aKernelKilledBySignalIsNotMistakenForOOM() async throws {
        let (runner, _, _) = try makeRunner()
        let request = KernelRequest(kernelID: "k-kill-\(UUID().uuidString.prefix(6))", sessionID: "s", image: TestEngine.image,
                                    slots: ["mem": 128 << 20], command: ["python3", "-c", "import time\ntime.sleep(300)"])
        let record = try await runner.create(request)
        try await runner.engine.kill(record.containerID, signal: "SIGKILL")
        let exit = try await runner.wait(request.kernelID)
        #expect(exit.exitCode == 137 && !exit.oomKilled)
        _ = try await runner.destroy(request.kernelID)
    }

    @Test func kernelsThatCannotBePlacedLeaveNothingBehind() async throws {
        let (runner, allocator, agentID) = try makeRunner()
        let cores = allocator.total["cpu"]! / unit
        let cases: [(String, KernelRequest, String)] = [
            ("too many cores", KernelRequest(kernelID: "k-big", sessionID: "s", image: TestEngine.image, slots: ["cpu": (cores + 1) * unit, "mem": 64 << 20]),
             "not enough 'cpu': requested \(cores + 1), free \(cores), short by 1"),
            ("unknown slot", KernelRequest(kernelID: "k-slot", sessionID: "s", image: TestEngine.image, slots: ["tpu.device": unit]), "unknown slot 'tpu.device'"),
            ("bad image", KernelRequest(kernelID: "k-image", sessionID: "s", image: "hangar/does-not-exist:1", slots: ["cpu": unit, "mem": 64 << 20]),
             "image 'hangar/does-not-exist:1' is not present"),
        ]
        for (what, request, phrase) in cases {
            do {
                _ = try await runner.create(request)
                Issue.record("\(what) must fail")
            } catch {
                #expect(error.description.contains(phrase), "\(what): \(error)")
            }
            #expect(allocator.allocated.isEmpty, "\(what) left an allocation")
        }
        // The runner is the entrypoint, so a command that cannot run is an exit (127, as a
        // shell reports it) rather than a failed start; destroying it frees everything.
        let bad = try await runner.create(KernelRequest(kernelID: "k-cmd-\(UUID().uuidString.prefix(6))", sessionID: "s", image: TestEngine.image, slots: ["cpu": unit, "mem": 64 << 20],
                                                        command: ["/no/such/binary"]))
        #expect(try await runner.wait(bad.request.kernelID).exitCode == 127)
        _ = try await runner.destroy(bad.request.kernelID)
        #expect(allocator.allocated.isEmpty, "bad command left an allocation")
        let leftovers = try await runner.engine.containers(labels: ["\(KernelLabels.agent)=\(agentID)"])
        #expect(leftovers.isEmpty, "no container remains: \(leftovers.map(\.id))")
    }

    @Test func aRestartedAgentReadoptsItsKernelsWithIdenticalAllocations() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-scratch-\(UUID().uuidString)").path
        let (first, allocator, agentID) = try makeRunner(scratch: scratch)
        var ids: [String] = []
        for i in 0..<3 {
            let id = "k-adopt-\(i)-\(UUID().uuidString.prefix(6))"
            _ = try await first.create(KernelRequest(kernelID: id, sessionID: "s3", image: TestEngine.image,
                                                     // Two cores on this 2-core machine: the third kernel gets memory only.
                                                     slots: ["cpu": i < 2 ? unit : 0, "mem": Int64(32 + i) << 20, "mock.device": i < 2 ? unit : 0]
                                                         .filter { $0.value > 0 },
                                                     command: ["python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: exit(0))\ntime.sleep(300)"]))
            ids.append(id)
        }
        let before = allocator.allocated
        let freeBefore = allocator.free
        // While the agent is down: one kernel dies, and a stray container with our label but
        // no kernel.json appears.
        let victim = try #require(await first.record(ids[2]))
        try await first.engine.kill(victim.containerID, signal: "SIGKILL")
        _ = try await first.engine.wait(victim.containerID)
        var straySpec = ContainerSpec(name: "hangar-stray-\(UUID().uuidString.prefix(6))", image: TestEngine.image)
        straySpec.command = ["true"]
        straySpec.labels = [KernelLabels.agent: agentID, KernelLabels.kernel: "stray"]
        let stray = try await first.engine.create(straySpec)
        // A new runner with an empty allocator, as after the agent process died and restarted.
        let (second, fresh, _) = try makeRunner(agentID: agentID, scratch: scratch)
        let (adopted, orphans) = try await second.recover()
        #expect(Set(adopted.map(\.request.kernelID)) == Set(ids))
        #expect(orphans == [stray])
        let dead = await second.terminated()
        #expect(dead.map(\.kernelID) == [ids[2]], "the kernel that died while the agent was down is reported")
        #expect(dead.first?.exit.exitCode == 137 && dead.first?.exit.oomKilled == false)
        #expect(await second.removeOrphans(orphans) == 1)
        #expect(try await second.engine.inspect(stray) == nil)
        #expect(fresh.allocated == before, "allocation maps rebuilt exactly")
        #expect(fresh.free == freeBefore)
        for id in ids { _ = try await second.destroy(id) }
        #expect(fresh.allocated.isEmpty)
        try? FileManager.default.removeItem(atPath: scratch)
    }

    @Test func eventsReportContainerStartAndExit() async throws {
        let engine = DockerEngineClient(socketPath: try TestEngine.socket())
        let label = "io.hangar.test-events=\(UUID().uuidString.prefix(8).lowercased())"
        let events = engine.events(labels: [label])
        let watcher = Task { () -> [String] in
            var actions: [String] = []
            for try await event in events {
                actions.append(event.action)
                if event.isContainerExit { break }
            }
            return actions
        }
        try await Task.sleep(for: .milliseconds(300))
        let parts = label.split(separator: "=")
        var spec = ContainerSpec(name: "hangar-events-\(UUID().uuidString.prefix(6))", image: TestEngine.image)
        spec.command = ["true"]
        spec.labels = [String(parts[0]): String(parts[1])]
        let id = try await engine.create(spec)
        try await engine.start(id)
        _ = try await engine.wait(id)
        let timeout = Task { try await Task.sleep(for: .seconds(20)); watcher.cancel() }
        let actions = try await watcher.value
        timeout.cancel()
        try await engine.remove(id)
        #expect(actions.contains("start"), "\(actions)")
        #expect(actions.contains { $0 == "die" || $0 == "died" }, "\(actions)")
    }

    @Test func engineErrorsCarryTheEnginesMessage() async throws {
        let engine = DockerEngineClient(socketPath: try TestEngine.socket())
        let version = try await engine.version()
        #expect(!version.version.isEmpty)
        do {
            try await engine.start("no-such-container-\(UUID().uuidString)")
            Issue.record("starting a missing container must fail")
        } catch let error as EngineError {
            #expect(error.status == 404)
            #expect(error.message.contains("no such container"), "\(error.message)")
        }
    }
}
