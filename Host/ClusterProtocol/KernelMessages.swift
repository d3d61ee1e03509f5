import Foundation

/// The manager ↔ agent kernel contract: the paths of the agent's RPC server and the messages
/// both sides exchange on them. Unknown fields are ignored when decoding (Codable's default),
/// so a newer manager or agent can add fields during a rolling upgrade; removing or retyping
/// one needs a new `AgentAPI.protocolVersion`.
extension AgentAPI {
    /// The kernel protocol's version, reported by agents in their heartbeats (`version`).
    public static let protocolVersion = 1
    /// POST a `KernelRequest` (201 with the kernel's record), GET the list of kernel ids.
    public static let kernelsPath = "/rpc/kernels"
    /// GET the node's slot state.
    public static let statusPath = "/rpc/status"
    /// A kernel: GET its exit state, DELETE it (its final `KernelExitState`).
    public static func kernelPath(_ id: String) -> String { "\(kernelsPath)/\(id)" }
    /// GET a kernel's `KernelLogs`.
    public static func logsPath(_ id: String) -> String { "\(kernelsPath)/\(id)/logs" }
    /// POST an `ExecutionRequest`, answered with an `ExecutionResult`.
    public static func executePath(_ id: String) -> String { "\(kernelsPath)/\(id)/execute" }
    /// POST to interrupt the running code.
    public static func interruptPath(_ id: String) -> String { "\(kernelsPath)/\(id)/interrupt" }
    /// POST a `KernelUpload`.
    public static func filesPath(_ id: String) -> String { "\(kernelsPath)/\(id)/files" }
    /// POST to restart a kernel's container in place (its scratch and home are kept; its
    /// processes, the interpreter's state among them, start afresh). 204 once it runs again.
    public static func restartPath(_ id: String) -> String { "\(kernelsPath)/\(id)/restart" }
}

/// What the agent answers when a call fails: `{"error": "..."}` with a 4xx or 5xx status.
public struct AgentErrorReply: Codable, Sendable, Equatable {
    public var error: String
    public init(error: String) { self.error = error }
}

/// A kernel's console output so far.
public struct KernelLogs: Codable, Sendable, Equatable {
    public var stdout: String
    public var stderr: String
    public init(stdout: String, stderr: String) {
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Whether a kernel runs, and how it ended.
public struct KernelExitState: Codable, Sendable, Equatable {
    public var running: Bool
    public var exitCode: Int?
    public var oomKilled: Bool
    public init(running: Bool, exitCode: Int?, oomKilled: Bool) {
        self.running = running
        self.exitCode = exitCode
        self.oomKilled = oomKilled
    }
}

/// A cluster session's own network as one kernel's agent builds it: a bridge on each of the
/// session's agents joined by a VXLAN (multi-node), and the kernel's interface with its address.
/// Only the session's kernels are on it, and every kernel resolves the others by host name.
public struct KernelNetwork: Codable, Sendable, Equatable {
    /// The session's network number, unique among the cluster's live sessions.
    public var index: Int
    /// The bridge's name on every agent of the session (unique per cluster and session).
    public var bridge: String
    /// The VXLAN port's name (multi-node sessions).
    public var vxlan: String
    /// The VXLAN id (multi-node sessions).
    public var vni: Int
    /// The kernel's address with its prefix length ("198.18.3.10/24").
    public var address: String
    /// Every kernel of the session: host name → address ("main1" → "198.18.3.10").
    public var hosts: [String: String]
    /// The other agents of the session, as the VXLAN reaches them (their host addresses);
    /// empty when every kernel is on this agent.
    public var peers: [String]
    /// The interface MTU (VXLAN takes 50 bytes of the hosts' 1500).
    public var mtu: Int

    public init(index: Int, bridge: String, vxlan: String, vni: Int, address: String, hosts: [String: String], peers: [String], mtu: Int) {
        (self.index, self.bridge, self.vxlan, self.vni, self.address, self.hosts, self.peers, self.mtu) = (index, bridge, vxlan, vni, address, hosts, peers, mtu)
    }
}

/// What the manager asks an agent to run.
public struct KernelRequest: Codable, Sendable, Equatable {
    public var kernelID: String
    public var sessionID: String
    public var image: String
    /// Slot → amount in fixed point (count slots × 1_000_000, bytes in bytes).
    public var slots: [String: Int64]
    public var environment: [String: String]
    /// nil: the image's default command.
    public var command: [String]?
    /// Extra bind mounts (vfolders): host path, container path, read-only.
    public var mounts: [KernelMount]
    public var sharedMemoryBytes: Int64
    public var pidsLimit: Int64
    /// What code queries run in (KernelLanguage: python, r, nodejs, cpp, c, java, shell);
    /// nil: the image's `ai.backend.runtime-type` label, else python.
    public var runtime: String?
    /// The resource group's sandbox, set by an admin; nil: the agent's own settings.
    public var sandbox: KernelSandbox?
    /// Files written into the kernel's home before it starts (the owner's dotfiles); nil from
    /// managers that predate them.
    public var dotfiles: [KernelDotfile]?
    /// Ports the session asked to preopen (services the user starts); nil: none.
    public var preopenPorts: [Int]?
    /// The owner's SSH keypair: the public key goes into `.ssh/authorized_keys`, the private
    /// one into `id_container` (Backend.AI's layout, which `backend.ai ssh` downloads); nil: none.
    public var sshKeypair: KernelSSHKeypair?
    /// The session's own network, for a cluster session's kernels; nil: none (a session of one
    /// kernel, or a manager that predates them).
    public var network: KernelNetwork?
    /// The container's host name: the kernel's name in its cluster (`main1`, `sub1`, ...);
    /// nil from managers that predate it (the engine's default, the container id).
    public var hostname: String?

    public init(kernelID: String, sessionID: String, image: String, slots: [String: Int64], environment: [String: String] = [:],
                command: [String]? = nil, mounts: [KernelMount] = [], sharedMemoryBytes: Int64 = 64 << 20, pidsLimit: Int64 = 4096,
                runtime: String? = nil, sandbox: KernelSandbox? = nil, dotfiles: [KernelDotfile]? = nil,
                preopenPorts: [Int]? = nil, sshKeypair: KernelSSHKeypair? = nil) {
        self.dotfiles = dotfiles
        self.preopenPorts = preopenPorts
        self.sshKeypair = sshKeypair
        self.kernelID = kernelID
        self.sessionID = sessionID
        self.image = image
        self.slots = slots
        self.environment = environment
        self.command = command
        self.mounts = mounts
        self.sharedMemoryBytes = sharedMemoryBytes
        self.pidsLimit = pidsLimit
        self.runtime = runtime
        self.sandbox = sandbox
    }
}

/// An SSH keypair in OpenSSH formats.
public struct KernelSSHKeypair: Codable, Sendable, Equatable {
    public var publicKey: String
    public var privateKey: String
    public init(publicKey: String, privateKey: String) {
        (self.publicKey, self.privateKey) = (publicKey, privateKey)
    }
}

/// What the agent's reply to a kernel creation tells the manager beyond success.
public struct KernelCreated: Codable, Sendable, Equatable {
    public var servicePorts: [ServicePort]?
    public init(servicePorts: [ServicePort]?) { self.servicePorts = servicePorts }
}

/// A file the agent writes into a new kernel's home directory (`KernelPaths.workDirectory`).
public struct KernelDotfile: Codable, Sendable, Equatable {
    /// Relative to the home directory (`.bashrc`, `.config/pip/pip.conf`); never `..`.
    public var path: String
    public var data: String
    /// Unix permission bits (e.g. 0o644).
    public var mode: Int

    public init(path: String, data: String, mode: Int) {
        (self.path, self.data, self.mode) = (path, data, mode)
    }

    /// The path relative to the home directory, or nil when it is not a safe path inside it
    /// (absolute elsewhere, `..`, empty parts). Absolute paths under the home directory are allowed.
    public static func homeRelativePath(_ path: String) -> String? {
        var relative = path
        if relative.hasPrefix("/") {
            let home = KernelPaths.workDirectory + "/"
            guard relative.hasPrefix(home) else { return nil }
            relative = String(relative.dropFirst(home.count))
        }
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.isEmpty, relative.count <= 255, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
              !relative.contains("\0") else { return nil }
        return relative
    }
}

/// A resource group's sandbox as the manager hands it to the agent with each kernel.
public struct KernelSandbox: Codable, Sendable, Equatable {
    /// `none`, `watch` or `enforce`; nil keeps the agent's mode.
    public var mode: String?
    /// A TOML policy layer (`deny = [...]`, `allow = [...]`) applied over the agent's policy.
    public var policy: String?

    public init(mode: String? = nil, policy: String? = nil) {
        self.mode = mode
        self.policy = policy
    }
}

/// A bind mount into a kernel.
public struct KernelMount: Codable, Sendable, Equatable {
    public var hostPath: String
    public var containerPath: String
    public var readOnly: Bool
    public init(hostPath: String, containerPath: String, readOnly: Bool) {
        self.hostPath = hostPath
        self.containerPath = containerPath
        self.readOnly = readOnly
    }
}
