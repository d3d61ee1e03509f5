import AgentResources
import ClusterProtocol
import ContainerEngine
import Foundation
import Logging
import PluginHost
import Sandbox


/// A kernel the agent runs: its container and the resources it holds. Persisted as
/// `<scratch>/<kernel>/config/kernel.json` so a restarted agent rebuilds its maps exactly.
public struct KernelRecord: Codable, Sendable, Equatable {
    public var request: KernelRequest
    public var containerID: String
    public var allocation: SlotAllocation
    public var cpuset: [Int]
    public var memoryBytes: Int64
    public var createdAt: Date
    /// What the kernel offers (intrinsic services, the image's, preopened ports); nil in
    /// records of agents that predate services.
    public var servicePorts: [ServicePort]?
    /// The image's service definitions by name, read when the kernel started.
    public var serviceDefinitions: [String: ServiceDefinition]?
    /// The image's `ai.backend.runtime-path` (`{runtime_path}` in service commands).
    public var runtimePath: String?
    /// The request's runtime, else the image's `ai.backend.runtime-type` (KernelLanguage);
    /// nil in records of agents that predate it (python).
    public var runtimeType: String?
}

/// How a kernel ended, as the engine reports it.
public struct KernelExit: Sendable, Equatable {
    public var running: Bool
    public var exitCode: Int?
    public var oomKilled: Bool
}

/// Why a kernel could not be created. Nothing is left behind after any of these.
public enum KernelError: Error, Sendable, CustomStringConvertible {
    case allocation(AllocationError)
    case imageNotFound(String)
    case engine(EngineError)
    case accelerator(String)
    case unknownKernel(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .allocation(let e): "cannot allocate the requested resources: \(e)"
        case .imageNotFound(let image): "image '\(image)' is not present on this agent and could not be pulled; build or pull it first (Tools/images/build.sh, or `hangar image pull`)"
        case .engine(let e): e.description
        case .accelerator(let message): "accelerator plugin: \(message)"
        case .unknownKernel(let id): "no kernel '\(id)' on this agent"
        case .invalid(let message): message
        }
    }
}

/// Labels that mark our containers.
public enum KernelLabels {
    public static let agent = "io.hangar.agent-id"
    public static let kernel = "io.hangar.kernel-id"
    public static let session = "io.hangar.session-id"
}

/// Creates, tracks, stops and re-adopts kernel containers, holding their slots in the
/// allocator and asking the accelerator plugins for their container settings.
public actor KernelRunner {
    public let agentID: String
    public let engine: any ContainerEngine
    public let allocator: SlotAllocator
    public nonisolated let scratchRoot: String
    /// The static in-container runner on this host, bind-mounted into every kernel as its
    /// entrypoint; nil runs the image's command directly (no code execution).
    public let runnerBinary: String?
    /// Ulimits added to every container that sets any (see `grantableUlimits`).
    public let defaultUlimits: [ContainerEdits.Ulimit]
    /// The jail, hook and LXCFS settings every kernel gets (a resource group may change the mode).
    public let sandbox: SandboxSettings
    /// Accelerator plugins by device key.
    let accelerators: [String: AcceleratorPlugin]
    let logger: Logger
    private var kernels: [String: KernelRecord] = [:]
    private var executions: [String: KernelExecution] = [:]
    /// Kernels whose containers are being restarted: their stop is not an exit to report.
    private var restarting: Set<String> = []
    /// How far each kernel's watch-mode report file has been read.
    private var watchOffsets: [String: UInt64] = [:]
    /// Service starts in progress by "kernel/service": concurrent connections to a service that
    /// is not up yet wait for the one start instead of starting it again.
    var serviceStarts: [String: Task<ServiceStartReply, any Error>] = [:]

    /// The policy file the runner installs (in the kernel's config folder), and where it
    /// reports in watch mode (in its IPC folder, which the agent reads).
    static let sandboxPolicyFile = "sandbox.policy"
    static let sandboxLogFile = "sandbox.log"
    /// Where the CPU-count hook sits inside a kernel.
    static let hookContainerPath = "/opt/hangar/lib/" + SandboxSettings.hookFileName
    /// Thread-count variables set to the allocated core count unless the user set them
    /// (Backend.AI's image label `ai.backend.envs.corecount` names more).
    static let coreCountVariables = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                                     "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "GOTO_NUM_THREADS"]
    static let coreCountLabel = "ai.backend.envs.corecount"
    /// The /proc files LXCFS virtualises per container.
    static let lxcfsFiles = ["cpuinfo", "diskstats", "loadavg", "meminfo", "stat", "swaps", "uptime"]

    /// LXCFS's /proc files, each mounted over the container's where LXCFS answers for it
    /// (a stale mount point errors on read, so each is read once first); none without LXCFS.
    nonisolated func lxcfsMounts() -> [ContainerSpec.Mount] {
        guard !sandbox.lxcfsRoot.isEmpty else { return [] }
        return Self.lxcfsFiles.compactMap { name in
            let path = "\(sandbox.lxcfsRoot)/proc/\(name)"
            let fd = open(path, O_RDONLY | O_NONBLOCK)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { return nil }
            return ContainerSpec.Mount(hostPath: path, containerPath: "/proc/\(name)", readOnly: true)
        }
    }

    /// Where the runner lives inside a kernel, and its socket directory.
    public static let runnerPath = "/opt/hangar/bin/hangar-runner"
    public static let runnerIPCDirectory = "/opt/hangar/ipc"

    public init(agentID: String, engine: any ContainerEngine, allocator: SlotAllocator, scratchRoot: String, runnerBinary: String? = nil,
                accelerators: [AcceleratorPlugin] = [], defaultUlimits: [ContainerEdits.Ulimit] = [], sandbox: SandboxSettings = .disabled,
                clusterAddress: String = "127.0.0.1", logger: Logger = Logger(label: "hangar.agent")) {
        self.clusterAddress = clusterAddress
        self.defaultUlimits = defaultUlimits
        self.sandbox = sandbox
        self.agentID = agentID
        self.engine = engine
        self.allocator = allocator
        self.scratchRoot = scratchRoot
        self.runnerBinary = runnerBinary
        self.accelerators = Dictionary(accelerators.map { ($0.info.deviceKey, $0) }, uniquingKeysWith: { a, _ in a })
        self.logger = logger
    }

    public var running: [KernelRecord] { Array(kernels.values) }

    /// This host's address as the other agents reach it: the source of cluster sessions'
    /// VXLAN tunnels.
    public let clusterAddress: String

    /// Joins a started kernel to its cluster session's network (nothing for other kernels).
    func attachSessionNetwork(_ request: KernelRequest, containerID: String) async throws {
        guard let network = request.network else { return }
        let pid = try await engine.inspect(containerID)?.pid ?? 0
        do {
            try SessionNetworks.attach(network, kernelID: request.kernelID, pid: pid, localAddress: clusterAddress)
        } catch let failure as SessionNetworks.Failure {
            throw KernelError.invalid("the session's network: \(failure.description)")
        }
    }

    public func record(_ kernelID: String) -> KernelRecord? { kernels[kernelID] }

    static func isSafeID(_ id: String) -> Bool {
        (1...64).contains(id.count) && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// Creates and starts a kernel. On any failure the allocation is freed and no container remains.
    public func create(_ request: KernelRequest) async throws(KernelError) -> KernelRecord {
        guard Self.isSafeID(request.kernelID) else { throw .invalid("kernel id '\(request.kernelID)' must be 1-64 letters, digits, '-' or '_'") }
        guard kernels[request.kernelID] == nil else { throw .invalid("kernel '\(request.kernelID)' already exists on this agent") }
        let allocation: SlotAllocation
        do {
            allocation = try allocator.allocate(request.slots)
        } catch {
            throw .allocation(error)
        }
        var containerID: String?
        let scratch = "\(scratchRoot)/\(request.kernelID)"
        do {
            do {
                guard try await engine.imageExists(request.image) else { throw KernelError.imageNotFound(request.image) }
            } catch let error as EngineError {
                throw KernelError.engine(error)
            }
            let cpuset = allocation.devices(of: "cpu").compactMap(Int.init).sorted()
            let memory = allocation.totals["mem"] ?? 0
            let edits = try pluginEdits(for: allocation, kernelID: request.kernelID)
            let labels: [String: String]
            do {
                labels = try await engine.imageLabels(request.image)
            } catch let error as EngineError {
                throw KernelError.engine(error)
            }
            let jail = try KernelJail.resolve(request, settings: sandbox, imageLabels: labels, edits: edits)
            // Checked before anything starts: a broken label is the image's fault, said plainly.
            _ = try KernelServices.servicePorts(label: labels[KernelServices.label], definitions: [:], preopen: request.preopenPorts ?? [])
            if jail.mode != .none && runnerBinary == nil {
                throw KernelError.invalid("sandbox: no in-container runner on this agent (agent.runner_path) to install the \(jail.mode.rawValue) policy; the kernel was not started")
            }
            try prepareScratch(scratch, request: request, allocation: allocation, edits: edits)
            if let text = jail.policyText { try text.write(toFile: scratch + "/config/" + Self.sandboxPolicyFile, atomically: true, encoding: .utf8) }
            if jail.mode != .none, sandbox.hookPath != nil {
                try (Self.hookContainerPath + "\n").write(toFile: scratch + "/config/ld.so.preload", atomically: true, encoding: .utf8)
            }
            let id = try await engine.create(containerSpec(request, cpuset: cpuset, memory: memory, scratch: scratch, edits: edits,
                                                           jail: jail, imageLabels: labels))
            containerID = id
            var record = KernelRecord(request: request, containerID: id, allocation: allocation, cpuset: cpuset, memoryBytes: memory, createdAt: Date())
            record.runtimeType = request.runtime ?? labels["ai.backend.runtime-type"]
            try persist(record, scratch: scratch)
            try await engine.start(id)
            try await attachSessionNetwork(request, containerID: id)
            let definitions = await serviceDefinitions(containerID: id, kernelID: request.kernelID)
            record.serviceDefinitions = definitions
            record.servicePorts = try KernelServices.servicePorts(label: labels[KernelServices.label], definitions: definitions, preopen: request.preopenPorts ?? [])
            record.runtimePath = labels["ai.backend.runtime-path"]
            try persist(record, scratch: scratch)
            kernels[request.kernelID] = record
            logger.info("kernel started", metadata: ["kernel": .string(request.kernelID), "container": .string(String(id.prefix(12))),
                                                     "cpuset": .string(cpuset.map(String.init).joined(separator: ","))])
            return record
        } catch {
            // The container goes first: its devices' driver state (partitions) and its slots
            // must not be handed to another kernel while it may still exist.
            if let containerID { try? await engine.remove(containerID, force: true) }
            if let network = request.network { SessionNetworks.release(network, kernelID: request.kernelID) }
            releaseAccelerators(allocation, kernelID: request.kernelID)
            allocator.free(allocation)
            try? FileManager.default.removeItem(atPath: scratch)
            switch error {
            case let e as KernelError: throw e
            case let e as EngineError: throw .engine(e)
            case let e as PluginError: throw .accelerator(e.description)
            case let e as KernelServices.LabelError: throw .invalid(e.description)
            default: throw .invalid("\(error)")
            }
        }
    }

    /// Each accelerator's part of a kernel's allocation, by device key (entries sorted, so a
    /// plugin sees the same allocation every time it is asked).
    func acceleratorParts(of allocation: SlotAllocation, kernelID: String) -> [(key: String, allocation: Allocation)] {
        var byKey: [String: [AllocationEntry]] = [:]
        for (slot, devices) in allocation.amounts {
            let key = slot.split(separator: ".", maxSplits: 1).first.map(String.init) ?? slot
            guard key != "cpu", key != "mem" else { continue }
            for (device, amount) in devices where amount > 0 {
                byKey[key, default: []].append(AllocationEntry(slotName: slot, deviceID: device, amount: amount))
            }
        }
        return byKey.keys.sorted().map { key in
            let entries = byKey[key]!.sorted { ($0.slotName, $0.deviceID) < ($1.slotName, $1.deviceID) }
            return (key, Allocation(containerID: kernelID, entries: entries))
        }
    }

    /// Each accelerator plugin's container settings for its part of the allocation, after the
    /// plugin prepared what the allocation needs (ABI 1.2 `prepare`: MIG instances and the
    /// like; idempotent, so re-adopting a kernel after a restart prepares it again safely).
    func pluginEdits(for allocation: SlotAllocation, kernelID: String) throws -> [ContainerEdits] {
        try acceleratorParts(of: allocation, kernelID: kernelID).map { part in
            guard let plugin = accelerators[part.key] else { throw KernelError.accelerator("no plugin provides the device key '\(part.key)'") }
            try plugin.prepare(part.allocation)
            return try plugin.containerEdits(for: part.allocation)
        }
    }

    /// Lets every plugin free what it made for a kernel's allocation (release is idempotent, so
    /// this is safe after a partial prepare too).
    func releaseAccelerators(_ allocation: SlotAllocation, kernelID: String) {
        for part in acceleratorParts(of: allocation, kernelID: kernelID) {
            do {
                try accelerators[part.key]?.release(part.allocation)
            } catch {
                logger.warning("accelerator release failed", metadata: ["kernel": .string(kernelID), "error": .string(error.description)])
            }
        }
    }

    /// `<scratch>/config` (read-only in the container) and `<scratch>/work`.
    func prepareScratch(_ scratch: String, request: KernelRequest, allocation: SlotAllocation, edits: [ContainerEdits]) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: scratch + "/config", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: scratch + "/work", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: scratch + "/ipc", withIntermediateDirectories: true)
        // resource.txt in Backend.AI's KEY=VALUE form, read by in-container hooks.
        var lines: [String] = []
        for slot in allocation.amounts.keys.sorted() {
            let shares = allocation.devices(of: slot).map { "\($0):\(allocation.amounts[slot]![$0]!)" }.joined(separator: ",")
            lines.append("\(slot.uppercased())_SHARES=\(shares)")
        }
        for edit in edits { for pair in edit.resourceData { lines.append("\(pair.name)=\(pair.value)") } }
        try (lines.joined(separator: "\n") + "\n").write(toFile: scratch + "/config/resource.txt", atomically: true, encoding: .utf8)
        let environ = edits.flatMap(\.env).map { "\($0.name)=\($0.value)" } + request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        try (environ.joined(separator: "\n") + "\n").write(toFile: scratch + "/config/environ.txt", atomically: true, encoding: .utf8)
        try writeDotfiles(request.dotfiles ?? [], into: scratch + "/work")
        if let keys = request.sshKeypair { try writeSSHKeys(keys, into: scratch + "/work") }
    }

    /// Backend.AI's layout: the owner's public key in `.ssh/authorized_keys` (what sshd checks)
    /// and the private key in `id_container` (what `backend.ai ssh` downloads to connect).
    /// Modes as sshd demands: nothing group- or world-writable, keys readable by the owner only.
    func writeSSHKeys(_ keys: KernelSSHKeypair, into home: String) throws {
        let fm = FileManager.default
        let ssh = home + "/.ssh"
        try fm.createDirectory(atPath: ssh, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (path, text) in [(ssh + "/authorized_keys", keys.publicKey), (home + "/id_container", keys.privateKey)] {
            try? fm.removeItem(atPath: path)
            let body = text.hasSuffix("\n") ? text : text + "\n"
            guard fm.createFile(atPath: path, contents: Data(body.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw KernelError.invalid("cannot write \(path) into the kernel's home")
            }
        }
    }

    /// Writes the owner's dotfiles into the kernel's home before it starts. Paths are checked
    /// again here (the manager checked them when they were stored): nothing lands outside the
    /// home directory, and a symlink already there is replaced, never followed.
    func writeDotfiles(_ dotfiles: [KernelDotfile], into home: String) throws {
        let fm = FileManager.default
        for dotfile in dotfiles {
            guard let relative = KernelDotfile.homeRelativePath(dotfile.path) else {
                logger.warning("dotfile skipped: its path leaves the home directory", metadata: ["path": .string(dotfile.path)])
                continue
            }
            let target = home + "/" + relative
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: target)
            guard fm.createFile(atPath: target, contents: Data(dotfile.data.utf8), attributes: [.posixPermissions: dotfile.mode & 0o7777]) else {
                throw KernelError.invalid("cannot write the dotfile \(relative) into the kernel's home")
            }
        }
    }

    func persist(_ record: KernelRecord, scratch: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(record).write(to: URL(fileURLWithPath: scratch + "/config/kernel.json"), options: .atomic)
    }

    /// What the engine creates for a kernel: the allocated cpuset and memory, the plugins'
    /// container edits, the scratch and runner mounts, and the labels that let a restarted agent
    /// find its kernels again.
    func containerSpec(_ request: KernelRequest, cpuset: [Int], memory: Int64, scratch: String, edits: [ContainerEdits],
                       jail: KernelJail = KernelJail(mode: .none, policyText: nil), imageLabels: [String: String] = [:]) -> ContainerSpec {
        var spec = ContainerSpec(name: "hangar-\(request.kernelID)", image: request.image)
        spec.hostname = request.hostname
        spec.extraHosts = (request.network?.hosts ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }
        var env = ["BACKENDAI_KERNEL_ID=\(request.kernelID)", "BACKENDAI_SESSION_ID=\(request.sessionID)",
                   "BACKENDAI_KERNEL_IMAGE=\(request.image)", "HANGAR_KERNEL_ID=\(request.kernelID)"]
        if !cpuset.isEmpty {
            // Runtimes that size their pools from the environment rather than sysconf; the
            // user's own setting wins.
            let named = Self.coreCountVariables + SandboxLayer.names(imageLabels[Self.coreCountLabel])
            var seen = Set<String>()
            for name in named where request.environment[name] == nil && seen.insert(name).inserted {
                env.append("\(name)=\(cpuset.count)")
            }
        }
        env += edits.flatMap(\.env).map { "\($0.name)=\($0.value)" }
        env += request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var mounts = [ContainerSpec.Mount(hostPath: "\(scratch)/config", containerPath: "/home/config", readOnly: true),
                      ContainerSpec.Mount(hostPath: "\(scratch)/work", containerPath: KernelPaths.workDirectory, readOnly: false)]
        if let runnerBinary {
            mounts += [ContainerSpec.Mount(hostPath: runnerBinary, containerPath: Self.runnerPath, readOnly: true),
                       ContainerSpec.Mount(hostPath: "\(scratch)/ipc", containerPath: Self.runnerIPCDirectory, readOnly: false)]
        }
        if jail.mode != .none, let hook = sandbox.hookPath {
            // /etc/ld.so.preload rather than LD_PRELOAD: it survives scrubbed environments,
            // su and sudo. musl and static programs ignore it and run without the hook.
            mounts += [ContainerSpec.Mount(hostPath: hook, containerPath: Self.hookContainerPath, readOnly: true),
                       ContainerSpec.Mount(hostPath: "\(scratch)/config/ld.so.preload", containerPath: "/etc/ld.so.preload", readOnly: true)]
        }
        if jail.mode != .none { mounts += lxcfsMounts() }
        mounts += request.mounts.map { ContainerSpec.Mount(hostPath: $0.hostPath, containerPath: $0.containerPath, readOnly: $0.readOnly) }
        mounts += edits.flatMap(\.mounts).map { ContainerSpec.Mount(hostPath: $0.hostPath, containerPath: $0.containerPath, readOnly: $0.readOnly) }
        let preload = edits.flatMap(\.preloadLibraries)
        if !preload.isEmpty {
            mounts += preload.map { ContainerSpec.Mount(hostPath: $0, containerPath: "/opt/hangar/hooks/\(($0 as NSString).lastPathComponent)", readOnly: true) }
            env.append("LD_PRELOAD=" + preload.map { "/opt/hangar/hooks/\(($0 as NSString).lastPathComponent)" }.joined(separator: ":"))
        }
        spec.environment = env
        spec.mounts = mounts
        spec.workingDirectory = KernelPaths.workDirectory
        spec.labels = [KernelLabels.agent: agentID, KernelLabels.kernel: request.kernelID, KernelLabels.session: request.sessionID]
        spec.pidsLimit = request.pidsLimit
        spec.sharedMemoryBytes = request.sharedMemoryBytes
        spec.devices = edits.flatMap(\.deviceNodes).map { ContainerSpec.Device(hostPath: $0.hostPath, containerPath: $0.containerPath, permissions: $0.cgroupPermissions) }
        spec.capabilities = edits.flatMap(\.capabilities)
        spec.groups = Self.supplementaryGroups(edits.flatMap(\.groups))
        spec.ulimits = Self.grantableUlimits(edits.flatMap(\.ulimits), defaults: defaultUlimits, logger: logger)
            .map { ContainerSpec.Ulimit(name: $0.name, soft: $0.soft, hard: $0.hard) }
        spec.sysctls = Dictionary(edits.flatMap(\.sysctls).map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
        spec.securityOptions = edits.flatMap(\.securityOptions)
        if jail.mode != .none && !sandbox.engineSeccomp { spec.securityOptions.append("seccomp=unconfined") }
        spec.hostIPC = edits.contains(where: \.hostIPC)
        spec.cdiDevices = edits.flatMap(\.cdiDevices)
        spec.networks = edits.flatMap(\.networks)
        if !cpuset.isEmpty {
            spec.cpuset = cpuset
            spec.nanoCPUs = Int64(cpuset.count) * 1_000_000_000
        }
        if memory > 0 { spec.memoryBytes = memory }
        if runnerBinary != nil {
            // The runner is PID 1: it reaps, forwards signals, serves the agent's socket and
            // runs the main command (batch or startup command) with its exit status.
            var sandboxArguments: [String] = []
            if jail.policyText != nil {
                sandboxArguments = ["--sandbox", "/home/config/" + Self.sandboxPolicyFile]
                if jail.mode == .watch { sandboxArguments += ["--sandbox-log", Self.runnerIPCDirectory + "/" + Self.sandboxLogFile] }
            }
            spec.entrypoint = [Self.runnerPath, "--runtime", KernelLanguage(runtimeType: request.runtime ?? imageLabels["ai.backend.runtime-type"]).runnerRuntime,
                               "--socket", Self.runnerIPCDirectory + "/runner.sock"] + sandboxArguments + (request.command.map { ["--"] + $0 } ?? [])
            spec.command = []
        } else if let command = request.command {
            spec.command = command
        }
        return spec
    }

    /// The rlimits a plugin asks for (memlock unlimited, for RDMA and NPU runtimes), as the
    /// container can get them. Two things bite: an engine given any ulimit may drop its own
    /// configured defaults (podman then sets nofile to a built-in 1048576, which fails where the
    /// host's hard limit is lower), so the agent's `default_ulimits` are added for the names the
    /// plugins do not set; and without CAP_SYS_RESOURCE the runtime cannot raise a limit above
    /// the agent's hard limit, so a request beyond it is capped there, with a warning, instead of
    /// failing every container.
    static func grantableUlimits(_ requested: [ContainerEdits.Ulimit], defaults: [ContainerEdits.Ulimit] = [],
                                 logger: Logger) -> [ContainerEdits.Ulimit] {
        guard !requested.isEmpty else { return [] }
        // Linux's resource numbers (the Glibc module imports only some of them by name).
        let resources: [String: UInt32] = ["stack": 3, "core": 4, "nproc": 6, "nofile": 7, "memlock": 8, "rtprio": 14]
        func own(_ name: String) -> (soft: Int64, hard: Int64)? {
            guard let resource = resources[name] else { return nil }
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(resource), &limit) == 0 else { return nil }
            func value(_ v: rlim_t) -> Int64 { v > rlim_t(Int64.max) ? -1 : Int64(v) }  // RLIM_INFINITY is all ones
            return (value(limit.rlim_cur), value(limit.rlim_max))
        }
        let privileged = hasCapability(24)  // CAP_SYS_RESOURCE
        var out: [ContainerEdits.Ulimit] = []
        for wanted in requested where !out.contains(where: { $0.name == wanted.name }) {
            var granted = wanted
            if !privileged, let limit = own(wanted.name), limit.hard >= 0 {
                func cap(_ v: Int64) -> Int64 { v < 0 || v > limit.hard ? limit.hard : v }
                granted.hard = cap(wanted.hard)
                granted.soft = min(cap(wanted.soft), granted.hard)
                if granted != wanted {
                    logger.warning("ulimit capped to what this agent may grant", metadata: [
                        "ulimit": .string(wanted.name), "requested": .string("\(wanted.soft):\(wanted.hard)"), "granted": .string("\(granted.soft):\(granted.hard)")])
                }
            }
            out.append(granted)
        }
        for ulimit in defaults where !out.contains(where: { $0.name == ulimit.name }) { out.append(ulimit) }
        return out
    }

    /// True if the agent's effective capability set has `bit` (from /proc/self/status).
    static func hasCapability(_ bit: Int) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << UInt64(bit)) != 0
    }

    /// Plugins name groups as the host knows them ("video", "render"): the engine would look the
    /// name up in the image's /etc/group, where it may be missing or have another id. What
    /// matters is the group that owns the host's device nodes, so names become the host's
    /// numeric gid; a name the host does not know owns no device node here and is dropped.
    static func supplementaryGroups(_ groups: [String]) -> [String] {
        var out: [String] = []
        for group in groups {
            let resolved: String? = if UInt32(group) != nil { group } else { getgrnam(group).map { String($0.pointee.gr_gid) } }
            if let resolved, !out.contains(resolved) { out.append(resolved) }
        }
        return out
    }

    /// Running state, exit code and whether the kernel was OOM-killed.
    public func status(_ kernelID: String) async throws(KernelError) -> KernelExit {
        guard let record = kernels[kernelID] else { throw .unknownKernel(kernelID) }
        do {
            guard let state = try await engine.inspect(record.containerID)?.state else {
                return KernelExit(running: false, exitCode: nil, oomKilled: false)
            }
            return Self.exit(from: state, containerID: record.containerID)
        } catch let error as EngineError {
            throw .engine(error)
        } catch {
            throw .invalid("\(error)")
        }
    }

    /// The exit as the engine's State reports it, with OOM kills confirmed from the kernel log
    /// when the engine does not flag them (a SIGKILL exit, 137, is what an OOM kill looks like).
    static func exit(from state: ContainerState, containerID: String) -> KernelExit {
        var oom = state.oomKilled
        if !oom, state.exitCode == 137 { oom = OOMEvidence.containerWasOOMKilled(containerID) }
        return KernelExit(running: state.running, exitCode: state.exitCode, oomKilled: oom)
    }

    /// Waits for a kernel's container to exit.
    public func wait(_ kernelID: String) async throws(KernelError) -> KernelExit {
        guard let record = kernels[kernelID] else { throw .unknownKernel(kernelID) }
        do {
            _ = try await engine.wait(record.containerID)
        } catch let error as EngineError {
            throw .engine(error)
        } catch {
            throw .invalid("\(error)")
        }
        return try await status(kernelID)
    }

    public func logs(_ kernelID: String) async throws(KernelError) -> (stdout: String, stderr: String) {
        guard let record = kernels[kernelID] else { throw .unknownKernel(kernelID) }
        do {
            return try await engine.logs(record.containerID)
        } catch let error as EngineError {
            throw .engine(error)
        } catch {
            throw .invalid("\(error)")
        }
    }

    /// The kernel's code execution, connected lazily to its runner.
    public func execution(_ kernelID: String) throws(KernelError) -> KernelExecution {
        guard kernels[kernelID] != nil else { throw .unknownKernel(kernelID) }
        guard runnerBinary != nil else { throw .invalid("this agent runs kernels without the in-container runner (agent.runner_path), so it cannot execute code") }
        if let existing = executions[kernelID] { return existing }
        let scratch = "\(scratchRoot)/\(kernelID)"
        let execution = KernelExecution(socketPath: scratch + "/ipc/runner.sock", workDirectory: scratch + "/work",
                                        language: KernelLanguage(runtimeType: kernels[kernelID]?.runtimeType))
        executions[kernelID] = execution
        return execution
    }

    /// Writes uploaded files into the kernel's working directory (`/home/work`). Every path is
    /// checked first: relative, no `..`, no NUL, no component over 255 bytes, no symlink on the
    /// way; nothing is written unless all of them are acceptable.
    public func writeFiles(_ kernelID: String, _ upload: KernelUpload) throws(KernelError) -> Int {
        guard kernels[kernelID] != nil else { throw .unknownKernel(kernelID) }
        let work = "\(scratchRoot)/\(kernelID)/work"
        var decoded: [(String, Data)] = []
        for file in upload.files {
            let parts = file.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard !file.path.hasPrefix("/"), !parts.isEmpty, !file.path.contains("\0"),
                  parts.allSatisfy({ $0 != ".." && $0 != "." && $0.utf8.count <= 255 }) else {
                throw .invalid("'\(file.path)' is not a relative path inside the working directory (no '..', '/' at the start or NUL)")
            }
            guard let data = Data(base64Encoded: file.data) else { throw .invalid("the content of '\(file.path)' is not valid base64") }
            var path = work
            for part in parts.dropLast() {
                path += "/" + part
                var info = stat()
                if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR {
                    throw .invalid("'\(file.path)': '\(part)' exists and is not a directory (symlinks are not followed)")
                }
            }
            var info = stat()
            if lstat(work + "/" + parts.joined(separator: "/"), &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
                throw .invalid("'\(file.path)' is a symlink in the working directory; it is not followed")
            }
            decoded.append((parts.joined(separator: "/"), data))
        }
        for (relative, data) in decoded {
            let target = work + "/" + relative
            do {
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: target), options: .atomic)
            } catch {
                throw .invalid("cannot write '\(relative)': \(error.localizedDescription)")
            }
        }
        return decoded.count
    }

    /// Restarts a kernel's container in place (Backend.AI's session restart): its processes
    /// get SIGTERM (then SIGKILL after 5 s) and the container starts again with the same
    /// allocation, scratch and home folder; the interpreter's state and started services are
    /// gone (services start again on their next connection). While it restarts, the kernel's
    /// stop is not reported as an exit.
    public func restart(_ kernelID: String) async throws(KernelError) {
        guard let record = kernels[kernelID] else { throw .unknownKernel(kernelID) }
        guard !restarting.contains(kernelID) else { throw .invalid("kernel '\(kernelID)' is already restarting") }
        restarting.insert(kernelID)
        defer { restarting.remove(kernelID) }
        if let execution = executions.removeValue(forKey: kernelID) { await execution.close() }
        do {
            if (try await engine.inspect(record.containerID))?.state.running == true {
                try await engine.stop(record.containerID, timeout: 5)
            }
            try await engine.start(record.containerID)
            // A new start is a new network namespace: join the session's network again.
            try await attachSessionNetwork(record.request, containerID: record.containerID)
        } catch let error as EngineError {
            throw .engine(error)
        } catch let error as KernelError {
            throw error
        } catch {
            throw .invalid("\(error)")
        }
        logger.info("kernel restarted", metadata: ["kernel": .string(kernelID), "container": .string(String(record.containerID.prefix(12)))])
    }

    /// Stops and removes a kernel, frees its slots exactly once, and removes its scratch.
    public func destroy(_ kernelID: String) async throws(KernelError) -> KernelExit {
        guard let record = kernels.removeValue(forKey: kernelID) else { throw .unknownKernel(kernelID) }
        watchOffsets[kernelID] = nil
        if let execution = executions.removeValue(forKey: kernelID) { await execution.close() }
        var exit = KernelExit(running: false, exitCode: nil, oomKilled: false)
        if let state = (try? await engine.inspect(record.containerID))??.state {
            if state.running { try? await engine.stop(record.containerID, timeout: 5) }
            let final = ((try? await engine.inspect(record.containerID))??.state) ?? state
            exit = Self.exit(from: final, containerID: record.containerID)
        }
        try? await engine.remove(record.containerID, force: true)
        if let network = record.request.network { SessionNetworks.release(network, kernelID: kernelID) }
        allocator.free(record.allocation)
        releaseAccelerators(record.allocation, kernelID: kernelID)
        try? FileManager.default.removeItem(atPath: "\(scratchRoot)/\(kernelID)")
        return exit
    }

    /// Kernels whose containers are no longer running, with how they ended; they keep their
    /// slots until the manager destroys them, so nothing is released twice.
    /// What kernels in watch mode reported since the last call (each report is also logged
    /// here, so an operator tuning a policy finds it in the agent's log). Lines the runner
    /// has not finished writing are left for the next call.
    public func sandboxReports() -> [SandboxReport] {
        var reports: [SandboxReport] = []
        for kernelID in kernels.keys.sorted() {
            let path = "\(scratchRoot)/\(kernelID)/ipc/\(Self.sandboxLogFile)"
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            let offset = watchOffsets[kernelID] ?? 0
            try? handle.seek(toOffset: offset)
            guard let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty, let lastNewline = data.lastIndex(of: 0x0A) else { continue }
            let complete = data[data.startIndex...lastNewline]
            watchOffsets[kernelID] = offset + UInt64(complete.count)
            struct Line: Decodable { let syscall: String; let pid: Int; let time: Int64 }
            for line in complete.split(separator: 0x0A) {
                guard let parsed = try? JSONDecoder().decode(Line.self, from: Data(line)) else { continue }
                logger.notice("sandbox watch: the policy would deny this call", metadata: [
                    "kernel": .string(kernelID), "syscall": .string(parsed.syscall), "pid": .stringConvertible(parsed.pid)])
                reports.append(SandboxReport(kernelID: kernelID, syscall: parsed.syscall, pid: parsed.pid, time: parsed.time))
            }
        }
        return reports
    }

    public func terminated() async -> [(kernelID: String, exit: KernelExit)] {
        var out: [(String, KernelExit)] = []
        for id in kernels.keys.sorted() where !restarting.contains(id) {
            if let exit = try? await status(id), !exit.running { out.append((id, exit)) }
        }
        return out
    }

    /// Removes containers carrying this agent's label that could not be adopted (no or
    /// unreadable kernel.json). Containers of adopted kernels are never touched.
    /// - Returns: how many were removed.
    @discardableResult
    public func removeOrphans(_ containerIDs: [String]) async -> Int {
        let adopted = Set(kernels.values.map(\.containerID))
        var removed = 0
        for id in containerIDs where !adopted.contains(id) {
            guard let details = (try? await engine.inspect(id)) ?? nil, details.labels[KernelLabels.agent] == agentID else { continue }
            if (try? await engine.remove(id, force: true)) != nil { removed += 1 }
        }
        return removed
    }

    /// After a restart: re-adopts every container labelled with this agent's id whose
    /// kernel.json survives, restoring its allocation exactly. Returns the adopted kernels
    /// and the ids of labelled containers that could not be adopted.
    public func recover() async throws(KernelError) -> (adopted: [KernelRecord], orphans: [String]) {
        let containers: [ContainerSummary]
        do {
            containers = try await engine.containers(labels: ["\(KernelLabels.agent)=\(agentID)"])
        } catch let error as EngineError {
            throw .engine(error)
        } catch {
            throw .invalid("\(error)")
        }
        var adopted: [KernelRecord] = []
        var orphans: [String] = []
        for container in containers {
            let labels = container.labels
            guard let kernelID = labels[KernelLabels.kernel], Self.isSafeID(kernelID), kernels[kernelID] == nil,
                  let data = FileManager.default.contents(atPath: "\(scratchRoot)/\(kernelID)/config/kernel.json"),
                  let record = try? JSONDecoder().decode(KernelRecord.self, from: data),
                  record.containerID == container.id else {
                orphans.append(container.id)
                continue
            }
            do {
                try allocator.restore(record.allocation)
            } catch {
                logger.error("cannot restore a kernel's allocation", metadata: ["kernel": .string(kernelID), "error": .string(error.description)])
                // Its container becomes an orphan; what the plugins made for it goes too.
                releaseAccelerators(record.allocation, kernelID: kernelID)
                orphans.append(record.containerID)
                continue
            }
            // Driver-side state (partitions) may not have survived whatever restarted the agent.
            for part in acceleratorParts(of: record.allocation, kernelID: kernelID) {
                do {
                    try accelerators[part.key]?.prepare(part.allocation)
                } catch {
                    logger.error("cannot prepare a re-adopted kernel's devices", metadata: ["kernel": .string(kernelID), "error": .string(error.description)])
                }
            }
            kernels[kernelID] = record
            adopted.append(record)
        }
        return (adopted, orphans)
    }
}
