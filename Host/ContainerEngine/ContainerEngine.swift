import Foundation

/// What the agent asks of a container engine, in types rather than an engine's wire format:
/// the Docker Engine API (`DockerEngineClient`, for Docker and podman's compatible service) is
/// one implementation, and `InMemoryEngine` (its own module) is the test double that lets the
/// agent's logic run without an engine. Every method throws `EngineError` with the engine's own
/// message.
public protocol ContainerEngine: Sendable {
    /// Engine name and version ("Podman Engine 4.3.1").
    func version() async throws -> EngineVersion
    /// Images present locally.
    func images() async throws -> [ImageSummary]
    /// True if the image (name:tag or id) is present locally.
    func imageExists(_ name: String) async throws -> Bool
    /// The labels an image carries (its `Config.Labels`); empty when it has none.
    /// - Throws: `EngineError` 404 when the image is not present.
    func imageLabels(_ name: String) async throws -> [String: String]
    /// Creates a container; returns its id.
    func create(_ spec: ContainerSpec) async throws -> String
    func start(_ id: String) async throws
    /// Stops with SIGTERM, then SIGKILL after `timeout` seconds; a stopped container is fine.
    func stop(_ id: String, timeout: Int) async throws
    /// Sends a signal; a container that is not running is fine.
    func kill(_ id: String, signal: String) async throws
    /// Removes a container; a missing one is fine.
    func remove(_ id: String, force: Bool) async throws
    /// The container's name, labels and state, or nil if it does not exist.
    func inspect(_ id: String) async throws -> ContainerDetails?
    /// Waits for the container to exit; returns its exit code.
    func wait(_ id: String) async throws -> Int
    /// Stdout and stderr so far.
    func logs(_ id: String) async throws -> (stdout: String, stderr: String)
    /// Containers (running or not) carrying every given label (`key=value` or `key`).
    func containers(labels: [String]) async throws -> [ContainerSummary]
    /// Container events for objects carrying every given label, from now on.
    func events(labels: [String]) -> AsyncThrowingStream<EngineEvent, Error>
    /// One resource-use sample.
    func stats(_ id: String) async throws -> ContainerStats
    /// A path inside the container (a file or a whole directory) as a tar archive, as the
    /// container sees it (its image, its writes and its mounts); nil when the path does not
    /// exist. Bounded by `maxBytes`: a bigger archive throws rather than filling memory.
    func archive(_ id: String, path: String, maxBytes: Int) async throws -> [UInt8]?
    /// Pulls an image from its registry (the reference names it: `cr.example.com/ns/name:tag`),
    /// reporting the engine's progress as it comes; finishes when the image is present, or
    /// throws `EngineError` with the registry's reason (unknown tag, refused credentials, ...).
    func pull(_ reference: String, credentials: RegistryCredentials?) -> AsyncThrowingStream<PullProgress, Error>
}

/// A login to a registry, handed to the engine for one pull.
public struct RegistryCredentials: Sendable, Equatable {
    public var serverAddress: String
    public var username: String
    public var password: String
    public init(serverAddress: String, username: String, password: String) {
        self.serverAddress = serverAddress
        self.username = username
        self.password = password
    }
}

/// One progress report of a pull, as the engine words it.
public struct PullProgress: Sendable, Equatable {
    /// "Pulling fs layer", "Downloading", "Download complete", ...
    public var status: String
    /// The layer it concerns, when it concerns one.
    public var layer: String?
    /// Bytes done and in all of the layer, when the engine says.
    public var current: Int64?
    public var total: Int64?
    public init(status: String, layer: String? = nil, current: Int64? = nil, total: Int64? = nil) {
        self.status = status
        self.layer = layer
        self.current = current
        self.total = total
    }
}

/// A container to create: everything the agent decides, nothing engine-specific.
public struct ContainerSpec: Sendable, Equatable, Codable {
    /// A host device node exposed in the container.
    public struct Device: Sendable, Equatable, Codable {
        public var hostPath: String
        public var containerPath: String
        /// "rwm" or a subset.
        public var permissions: String
        public init(hostPath: String, containerPath: String, permissions: String = "rwm") {
            self.hostPath = hostPath
            self.containerPath = containerPath
            self.permissions = permissions
        }
    }
    /// A bind mount.
    public struct Mount: Sendable, Equatable, Codable {
        public var hostPath: String
        public var containerPath: String
        public var readOnly: Bool
        public init(hostPath: String, containerPath: String, readOnly: Bool) {
            self.hostPath = hostPath
            self.containerPath = containerPath
            self.readOnly = readOnly
        }
    }
    /// An rlimit; -1 is unlimited.
    public struct Ulimit: Sendable, Equatable, Codable {
        public var name: String
        public var soft: Int64
        public var hard: Int64
        public init(name: String, soft: Int64, hard: Int64) {
            self.name = name
            self.soft = soft
            self.hard = hard
        }
    }

    public var name: String
    public var image: String
    /// Replaces the image's entrypoint when set.
    public var entrypoint: [String]?
    /// Replaces the image's command when set.
    public var command: [String]?
    /// KEY=VALUE, in order.
    public var environment: [String] = []
    public var workingDirectory: String?
    public var labels: [String: String] = [:]
    /// The host CPUs the container may use (empty: any).
    public var cpuset: [Int] = []
    /// CPU time as a number of CPUs × 10⁹, or nil for no CFS quota.
    public var nanoCPUs: Int64?
    /// Memory limit in bytes (swap is never added), or nil for none.
    public var memoryBytes: Int64?
    public var pidsLimit: Int64?
    /// /dev/shm size in bytes (ignored with the host IPC namespace).
    public var sharedMemoryBytes: Int64?
    public var devices: [Device] = []
    public var mounts: [Mount] = []
    /// Linux capabilities to add ("IPC_LOCK").
    public var capabilities: [String] = []
    /// Supplementary groups (numeric gids or names).
    public var groups: [String] = []
    public var ulimits: [Ulimit] = []
    public var sysctls: [String: String] = [:]
    /// Engine security options ("seccomp=unconfined").
    public var securityOptions: [String] = []
    /// The host's IPC namespace.
    public var hostIPC = false
    /// Fully qualified CDI device names.
    public var cdiDevices: [String] = []
    /// Engine networks to attach.
    public var networks: [String] = []
    /// The container's host name (nil: the engine's default).
    public var hostname: String?
    /// Extra /etc/hosts lines, "name:address".
    public var extraHosts: [String] = []

    public init(name: String, image: String) {
        self.name = name
        self.image = image
    }
}

/// Engine name and versions.
public struct EngineVersion: Sendable, Equatable {
    public var name: String
    public var version: String
    public var apiVersion: String
    public init(name: String, version: String, apiVersion: String) {
        self.name = name
        self.version = version
        self.apiVersion = apiVersion
    }
}

/// An image present locally.
public struct ImageSummary: Sendable, Equatable {
    public var id: String
    /// "name:tag" references.
    public var tags: [String]
    public var sizeBytes: Int64
    /// The image's labels (`Config.Labels`), as the engine lists them.
    public var labels: [String: String]
    public init(id: String, tags: [String], sizeBytes: Int64, labels: [String: String] = [:]) {
        self.id = id
        self.tags = tags
        self.sizeBytes = sizeBytes
        self.labels = labels
    }
}

/// Whether a container runs, and how it ended.
public struct ContainerState: Sendable, Equatable {
    public var running: Bool
    /// Nil while running (or never started).
    public var exitCode: Int?
    /// The engine saw the kernel's OOM killer end it.
    public var oomKilled: Bool
    public init(running: Bool, exitCode: Int?, oomKilled: Bool) {
        self.running = running
        self.exitCode = exitCode
        self.oomKilled = oomKilled
    }
}

/// What inspecting a container tells.
public struct ContainerDetails: Sendable, Equatable {
    public var id: String
    public var name: String
    public var labels: [String: String]
    public var state: ContainerState
    /// The container's first process on the host (0 when it is not running): its namespaces
    /// are under /proc/PID/ns.
    public var pid: Int32
    public init(id: String, name: String, labels: [String: String], state: ContainerState, pid: Int32 = 0) {
        self.id = id
        self.name = name
        self.labels = labels
        self.state = state
        self.pid = pid
    }
}

/// One container of a listing.
public struct ContainerSummary: Sendable, Equatable {
    public var id: String
    public var labels: [String: String]
    public init(id: String, labels: [String: String]) {
        self.id = id
        self.labels = labels
    }
}

/// One resource-use sample of a container.
public struct ContainerStats: Sendable, Equatable {
    public var cpuUsedNanoseconds: UInt64 = 0
    public var memoryBytes: UInt64 = 0
    public var memoryLimitBytes: UInt64 = 0
    public var ioReadBytes: UInt64 = 0
    public var ioWriteBytes: UInt64 = 0
    public var networkRxBytes: UInt64 = 0
    public var networkTxBytes: UInt64 = 0
    public init() {}
}

/// An error from the container engine, carrying the engine's own message.
public struct EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    public let status: Int
    public let operation: String
    public let message: String

    public init(status: Int, operation: String, message: String) {
        self.status = status
        self.operation = operation
        self.message = message
    }

    public var description: String { "container engine: \(operation) failed (\(status)): \(message)" }
    public var isNotFound: Bool { status == 404 }
}

/// One event from the engine's event stream.
public struct EngineEvent: Sendable, Equatable {
    /// "container", "image", ...
    public var type: String
    /// "create", "start", "die" (podman: "died"), "oom", "destroy", ...
    public var action: String
    public var actorID: String
    public var attributes: [String: String]
    public var time: Int64

    public init(type: String, action: String, actorID: String, attributes: [String: String], time: Int64) {
        self.type = type
        self.action = action
        self.actorID = actorID
        self.attributes = attributes
        self.time = time
    }

    /// True for the actions that mean a container has ended.
    public var isContainerExit: Bool { type == "container" && (action == "die" || action == "died") }
}

/// Image references: "name:tag" (a registry port is not a tag), the tag defaulting to "latest".
public enum ImageReference {
    public static func split(_ image: String) -> (name: String, tag: String) {
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }
}

/// Label filters as the engines apply them: `key=value` needs that value, `key` only the key.
public enum LabelFilter {
    public static func matches(_ labels: [String: String], _ filters: [String]) -> Bool {
        filters.allSatisfy { filter in
            if let eq = filter.firstIndex(of: "=") { return labels[String(filter[..<eq])] == String(filter[filter.index(after: eq)...]) }
            return labels[filter] != nil
        }
    }
}

extension ContainerEngine {
    /// Stops with the usual 10 s grace.
    public func stop(_ id: String) async throws { try await stop(id, timeout: 10) }
    /// Kills with SIGKILL.
    public func kill(_ id: String) async throws { try await kill(id, signal: "SIGKILL") }
    /// Removes, stopping it first if it runs.
    public func remove(_ id: String) async throws { try await remove(id, force: true) }
}
