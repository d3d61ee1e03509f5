import AgentResources
import AsyncHTTPClient
import ClusterProtocol
import ContainerEngine
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import PluginHost
import StreamTunnel
import Synchronization

/// The agent role's composition root: builds the node's slots from its cores, memory and
/// accelerator plugins, assembles the kernel runner over a container engine, and runs the
/// loops — re-adopting the kernels it left running, serving the manager's RPC calls
/// (`AgentRPC`, routes only) and heartbeating.
public final class AgentDaemon: Sendable {
    public let config: AgentConfig
    public let runner: KernelRunner
    /// Pulls kernels' images from registries, once per image.
    let images: ImagePuller
    public let allocator: SlotAllocator
    let accelerators: [AcceleratorPlugin]
    let slotSpecs: [SlotSpec]
    let logger: Logger
    /// The image list of the last heartbeat that could read it: when listing fails (podman
    /// answers 500 while another client removes an image) the heartbeat reports this one,
    /// not none, so the manager does not forget the agent's images (and their labels) for a beat.
    private let lastImages = Mutex<[ImageReport]?>(nil)

    /// - Parameters:
    ///   - accelerators: the accelerator plugins the agent's `[plugins]` section created.
    ///   - engine: the container engine; by default the Docker Engine API at `config.engineSocket`.
    public init(config: AgentConfig, accelerators: [AcceleratorPlugin], engine: (any ContainerEngine)? = nil, topology: HostTopology = .detect(),
                logger: Logger = Logger(label: "hangar.agent")) throws {
        self.config = config
        self.accelerators = accelerators
        self.logger = logger
        let intrinsic = topology.intrinsicSlots(reservedCores: config.reservedCores, reservedMemory: config.reservedMemory)
        var devices = intrinsic.devices
        var slots = intrinsic.slots
        var capacity = intrinsic.capacity
        for plugin in accelerators {
            for d in try plugin.devices() where d.health != .unhealthy {
                devices.append(ComputeDevice(key: plugin.info.deviceKey, id: d.id, numaNode: d.numaNode.map(Int.init),
                                             nearCPUs: d.affineCPUs.map { $0.sorted() }, parentID: d.parentDeviceID))
            }
            for s in try plugin.slots() {
                let kind: SlotKind = switch s.type {
                case .count: .count
                case .bytes: .bytes
                case .unique: .unique
                }
                slots.append(SlotSpec(name: s.name, kind: kind, mode: s.mode == .fractional ? .fractional : .discrete,
                                      quantum: s.quantum, exclusive: s.exclusive))
            }
            for row in try plugin.deviceSlots() { capacity[row.slotName, default: [:]][row.deviceID] = row.capacity }
        }
        slotSpecs = slots
        allocator = SlotAllocator(devices: devices, slots: slots, capacity: capacity, policy: config.affinityPolicy, strategy: config.strategy)
        runner = KernelRunner(agentID: config.id, engine: engine ?? DockerEngineClient(socketPath: config.engineSocket), allocator: allocator,
                              scratchRoot: config.scratchDirectory, runnerBinary: config.resolvedRunnerPath, accelerators: accelerators,
                              defaultUlimits: config.defaultUlimits, sandbox: config.sandbox,
                              clusterAddress: URLComponents(string: config.advertisedAddress)?.host ?? config.host, logger: logger)
        images = ImagePuller(engine: runner.engine, logger: logger)
        if runner.runnerBinary == nil {
            logger.warning("no in-container runner found (agent.runner_path); kernels run without code execution")
        }
    }

    // MARK: - Slots as the manager sees them

    static func decimal(_ amount: Int64, kind: SlotKind) -> Decimal {
        kind == .bytes ? Decimal(amount) : Decimal(amount) / Decimal(slotAmountScale)
    }

    func slots(_ amounts: [String: Int64]) -> ResourceSlots {
        var out = ResourceSlots()
        for spec in slotSpecs { out[spec.name] = Self.decimal(amounts[spec.name] ?? 0, kind: spec.kind) }
        return out
    }

    /// The heartbeat message: capacity, devices, plugins, running kernels, images.
    public func heartbeat() async -> AgentHeartbeat {
        var devices: [DeviceReport] = []
        var plugins: [PluginReport] = []
        for plugin in accelerators {
            plugins.append(PluginReport(name: plugin.name, version: plugin.instance.library.descriptor.version, deviceKey: plugin.info.deviceKey))
            for d in (try? plugin.devices()) ?? [] {
                devices.append(DeviceReport(plugin: plugin.info.deviceKey, id: d.id, model: d.model, memoryBytes: d.memoryBytes,
                                            processingUnits: d.processingUnits, numaNode: d.numaNode, health: d.health.description,
                                            healthReason: d.healthReason, firmwareVersion: d.firmwareVersion, boardID: d.boardID,
                                            linkSpeed: d.linkSpeed, cpuAffinity: d.cpuAffinity, parentDeviceID: d.parentDeviceID,
                                            extraInfoJSON: d.extraInfoJSON))
            }
        }
        let images: [ImageReport]
        do {
            images = try await runner.engine.images().flatMap { image -> [ImageReport] in
                image.tags.map { tag in
                    let (name, version) = ImageReference.split(tag)
                    // Only Backend.AI's labels travel: what the manager decides on, kept small.
                    return ImageReport(name: name, tag: version, digest: image.id, architecture: "", sizeBytes: image.sizeBytes,
                                       labels: image.labels.filter { $0.key.hasPrefix("ai.backend.") })
                }
            }
            lastImages.withLock { $0 = images }
        } catch {
            logger.warning("cannot list the engine's images; reporting the last list", metadata: ["error": .string("\(error)")])
            images = lastImages.withLock { $0 } ?? []
        }
        let records = await runner.running
        let kernelStats = await withTaskGroup(of: KernelStats?.self) { group in
            for record in records {
                group.addTask { [engine = runner.engine] in
                    guard let stats = try? await engine.stats(record.containerID) else { return nil }
                    return KernelStats(kernelID: record.request.kernelID, cpuUsedNanoseconds: stats.cpuUsedNanoseconds,
                                       memoryBytes: stats.memoryBytes, memoryLimitBytes: stats.memoryLimitBytes,
                                       ioReadBytes: stats.ioReadBytes, ioWriteBytes: stats.ioWriteBytes,
                                       networkRxBytes: stats.networkRxBytes, networkTxBytes: stats.networkTxBytes)
                }
            }
            var out: [KernelStats] = []
            for await s in group { if let s { out.append(s) } }
            return out.sorted { $0.kernelID < $1.kernelID }
        }
        var measures: [MeasureReport] = []
        for plugin in accelerators {
            let key = plugin.info.deviceKey
            for m in (try? plugin.nodeMeasures()) ?? [] {
                measures.append(MeasureReport(plugin: key, key: m.key, deviceID: m.deviceID, kernelID: nil, current: m.current, capacity: m.capacity,
                                              unit: "\(m.unit)", kind: "\(m.kind)"))
            }
            let allocations = records.compactMap { record -> Allocation? in
                let entries = record.allocation.amounts.filter { $0.key.hasPrefix(key + ".") }.flatMap { slot, devices in
                    devices.filter { $0.value > 0 }.map { AllocationEntry(slotName: slot, deviceID: $0.key, amount: $0.value) }
                }
                return entries.isEmpty ? nil : Allocation(containerID: record.request.kernelID, entries: entries)
            }
            for m in (try? plugin.containerMeasures(allocations)) ?? [] {
                measures.append(MeasureReport(plugin: key, key: m.key, deviceID: m.deviceID, kernelID: m.containerID, current: m.current, capacity: m.capacity,
                                              unit: "\(m.unit)", kind: "\(m.kind)"))
            }
        }
        var arch = utsname()
        uname(&arch)
        let machine = withUnsafeBytes(of: &arch.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return AgentHeartbeat(agentID: config.id, address: config.advertisedAddress, resourceGroup: config.resourceGroup,
                              architecture: machine, version: "0.1.0", capacity: slots(allocator.total),
                              slotTypes: Dictionary(uniqueKeysWithValues: slotSpecs.map { ($0.name, $0.kind.rawValue) }),
                              devices: devices, plugins: plugins, runningKernels: records.map(\.request.kernelID).sorted(),
                              images: images, kernelStats: kernelStats, measures: measures,
                              terminatedKernels: await runner.terminated().map { KernelExitReport(kernelID: $0.kernelID, exitCode: $0.exit.exitCode, oomKilled: $0.exit.oomKilled) },
                              sandboxReports: await runner.sandboxReports())
    }

    // MARK: - Running

    /// Re-adopts surviving kernels, then serves RPC and heartbeats until cancelled.
    public func run() async throws {
        let (adopted, orphans) = try await runner.recover()
        if !adopted.isEmpty || !orphans.isEmpty {
            logger.notice("recovered kernels", metadata: ["adopted": .stringConvertible(adopted.count), "orphans": .stringConvertible(orphans.count)])
        }
        if !orphans.isEmpty {
            // A grace period first: an operator restoring a scratch folder gets a chance.
            let grace = config.orphanGrace
            Task { [runner, logger] in
                try? await Task.sleep(for: .seconds(grace))
                let removed = await runner.removeOrphans(orphans)
                logger.notice("removed containers that could not be re-adopted", metadata: ["count": .stringConvertible(removed)])
            }
        }
        let router = AgentRPC(daemon: self).makeRouter()
        let app = Application(router: router, server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .init(maxFrameSize: 1 << 20, extensions: [FastUnmaskingExtension.factory]))),
                              configuration: .init(address: .hostname(config.host, port: config.port), serverName: "hangar-agent"),
                              logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            group.addTask { await self.heartbeatLoop() }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Heartbeats forever; when the manager is unreachable the kernels keep running and the
    /// agent retries with exponential backoff (up to 30 s).
    func heartbeatLoop() async {
        let client = HTTPClient.shared
        let managers = ManagerEndpoints(config.managerURLs.isEmpty ? [config.managerURL] : config.managerURLs)
        var backoff = 1.0
        var lastManager = managers.active
        while !Task.isCancelled {
            var delay = config.heartbeatInterval
            do {
                let message = try JSONEncoder().encode(await heartbeat())
                let (url, status, body) = try await managers.send({ base in
                    var request = HTTPClientRequest(url: base + AgentAPI.heartbeatPath)
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "\(AgentAPI.authorizationScheme) \(config.clusterSecret)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(bytes: message))
                    return request
                }, client: client, timeout: .seconds(10))
                if url != lastManager {
                    logger.warning("heartbeats now go to another manager", metadata: ["from": .string(lastManager), "to": .string(url)])
                    lastManager = url
                }
                guard status == 200 else {
                    throw AgentLinkError(message: "manager \(url) answered \(status): \(String(buffer: body))")
                }
                if let reply = try? JSONDecoder().decode(HeartbeatReply.self, from: Data(body.readableBytesView)) {
                    if reply.registered { logger.info("registered with the manager", metadata: ["manager": .string(url)]) }
                    delay = reply.heartbeatInterval
                }
                backoff = 1
            } catch {
                logger.warning("heartbeat failed; kernels keep running, retrying", metadata: ["error": .string("\(error)"), "retry_s": .stringConvertible(backoff)])
                delay = backoff
                backoff = min(backoff * 2, 30)
            }
            try? await Task.sleep(for: .seconds(delay))
        }
    }
}

struct AgentLinkError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
