import ClusterProtocol
import Foundation

/// Roles, as Backend.AI names them.
public enum UserRole: String, Sendable, Codable, Comparable, CaseIterable {
    case user, admin, superadmin
    var rank: Int {
        switch self {
        case .user: 0
        case .admin: 1
        case .superadmin: 2
        }
    }
    public static func < (a: UserRole, b: UserRole) -> Bool { a.rank < b.rank }
}

/// A domain: the top of the tenancy tree.
public struct Domain: Sendable, Codable, Equatable {
    public var name: String
    public var description: String
    public var isActive: Bool
    public var createdAt: Int64
    /// The most its users may hold at once (JSON resource slots; `{}`: no domain limit).
    public var totalResourceSlots = "{}"
    /// Folder hosts the domain may use, as a JSON object host -> permission names.
    public var allowedVFolderHosts = "{}"
    /// Image registries the domain may pull from.
    public var allowedDockerRegistries: [String] = []
    /// An id in an external system (Backend.AI keeps it for integrations; Hangar stores it).
    public var integrationID: String?
    /// When its settings last changed (nil: never since creation).
    public var modifiedAt: Int64?

    public init(name: String, description: String, isActive: Bool, createdAt: Int64, totalResourceSlots: String = "{}",
                allowedVFolderHosts: String = "{}", allowedDockerRegistries: [String] = [], integrationID: String? = nil, modifiedAt: Int64? = nil) {
        (self.name, self.description, self.isActive, self.createdAt) = (name, description, isActive, createdAt)
        (self.totalResourceSlots, self.allowedVFolderHosts, self.allowedDockerRegistries) = (totalResourceSlots, allowedVFolderHosts, allowedDockerRegistries)
        (self.integrationID, self.modifiedAt) = (integrationID, modifiedAt)
    }
}

/// Changes to a domain (Backend.AI's `ModifyDomainInput`); nil leaves a field as it is.
public struct DomainChanges: Sendable {
    public var name: String?
    public var description: String?
    public var isActive: Bool?
    public var totalResourceSlots: String?
    public var allowedVFolderHosts: String?
    public var allowedDockerRegistries: [String]?
    public var integrationID: String?
    public init() {}
}

/// A project (Backend.AI: group).
public struct Project: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var domainName: String
    public var description: String
    public var isActive: Bool
    public var resourcePolicy: String
    public var createdAt: Int64
    /// The most its members' sessions may hold at once (JSON resource slots; `{}`: no limit).
    public var totalResourceSlots = "{}"
    /// Folder hosts the project may use, as a JSON object host -> permission names.
    public var allowedVFolderHosts = "{}"
    /// An id in an external system.
    public var integrationID: String?
    /// When its settings last changed (nil: never since creation).
    public var modifiedAt: Int64?

    public init(id: String, name: String, domainName: String, description: String, isActive: Bool, resourcePolicy: String, createdAt: Int64,
                totalResourceSlots: String = "{}", allowedVFolderHosts: String = "{}", integrationID: String? = nil, modifiedAt: Int64? = nil) {
        (self.id, self.name, self.domainName, self.description, self.isActive) = (id, name, domainName, description, isActive)
        (self.resourcePolicy, self.createdAt, self.totalResourceSlots, self.allowedVFolderHosts) = (resourcePolicy, createdAt, totalResourceSlots, allowedVFolderHosts)
        (self.integrationID, self.modifiedAt) = (integrationID, modifiedAt)
    }
}

/// Changes to a project (Backend.AI's `ModifyGroupInput`); nil leaves a field as it is.
public struct ProjectChanges: Sendable {
    public var name: String?
    public var description: String?
    public var isActive: Bool?
    public var totalResourceSlots: String?
    public var allowedVFolderHosts: String?
    public var integrationID: String?
    /// Members to add, or to remove (user ids), per `membersMode`.
    public var members: [String]?
    /// Whether `members` are added or removed.
    public var membersMode: MembershipChange = .add
    public init() {}
}

/// How a project's member list changes.
public enum MembershipChange: String, Sendable {
    case add, remove
}

/// A user account.
public struct User: Sendable, Codable, Equatable {
    public var id: String
    public var email: String
    public var username: String
    public var fullName: String
    public var role: UserRole
    public var status: String
    public var domainName: String
    public var resourcePolicy: String
    public var createdAt: Int64
    /// Free text an admin keeps about the user.
    public var description: String = ""
    /// The user must change the password at the next login.
    public var needPasswordChange = false
    /// Client addresses or networks the user may call from (empty: any).
    public var allowedClientIPs: [String] = []
    /// Whether the user's sessions allow sudo.
    public var sudoSessionEnabled = false
}

/// What a new user gets besides email, name, password, role and domain (Backend.AI's
/// `UserInput`); the defaults are Backend.AI's.
public struct NewUserOptions: Sendable {
    public var status = "active"
    public var description = ""
    public var needPasswordChange = false
    public var allowedClientIPs: [String] = []
    public var sudoSessionEnabled = false
    /// Also create the user's first keypair, as Backend.AI does for every new user.
    public var withKeypair = false
    public init() {}
}

/// Changes to a user (Backend.AI's `ModifyUserInput`); nil leaves a field as it is.
public struct UserChanges: Sendable {
    public var password: String?
    public var username: String?
    public var fullName: String?
    public var role: UserRole?
    public var status: String?
    public var description: String?
    public var needPasswordChange: Bool?
    public var allowedClientIPs: [String]?
    public var sudoSessionEnabled: Bool?
    public var resourcePolicy: String?
    /// Replaces the user's projects (by id or name, in the user's domain).
    public var projects: [String]?
    public init() {}
}

/// An API keypair.
public struct Keypair: Sendable, Codable, Equatable {
    public var accessKey: String
    public var secretKey: String
    public var userID: String
    public var isActive: Bool
    public var isAdmin: Bool
    public var resourcePolicy: String
    /// Requests per minute; 0 means unlimited.
    public var rateLimit: Int64
    public var createdAt: Int64
    public var lastUsed: Int64?
}

/// What request authentication needs about a keypair and its owner, read in one query.
public struct KeypairIdentity: Sendable, Equatable {
    public var keypair: Keypair
    public var userEmail: String
    public var userRole: UserRole
    public var userStatus: String
    public var domainName: String
    /// Whether the user's domain is active (an inactive domain's users are refused).
    public var domainActive = true
}

/// Resource policy levels.
public enum PolicyScope: String, Sendable, Codable, CaseIterable {
    case keypair, user, project
}

/// Limits applied at keypair, user or project level.
public struct ResourcePolicy: Sendable, Codable, Equatable {
    public var scope: PolicyScope
    public var name: String
    public var totalResourceSlots: ResourceSlots
    public var maxConcurrentSessions: Int64
    public var maxVfolderCount: Int64
    public var maxVfolderSize: Int64
    /// Seconds; 0 means none.
    public var idleTimeout: Int64
    public var createdAt: Int64
    /// Seconds a session may live at most; 0 means no limit.
    public var maxSessionLifetime: Int64 = 0
    /// The largest cluster a session may ask for.
    public var maxContainersPerSession: Int64 = 1
    /// Backend.AI's SFTP-only sessions (kept and shown; Hangar has no SFTP sessions yet).
    public var maxConcurrentSFTPSessions: Int64 = 1
    /// Folder hosts allowed, as a JSON object host -> permission names.
    public var allowedVFolderHosts = "{}"
    /// `UNLIMITED` or `LIMITED`: what a slot the policy does not name allows.
    public var defaultForUnspecified = "UNLIMITED"
    /// The highest session priority (0-100) the keypair's sessions may ask for.
    public var maxSessionPriority: Int64 = 100

    public init(scope: PolicyScope, name: String, totalResourceSlots: ResourceSlots, maxConcurrentSessions: Int64, maxVfolderCount: Int64,
                maxVfolderSize: Int64, idleTimeout: Int64, createdAt: Int64, maxSessionLifetime: Int64 = 0, maxContainersPerSession: Int64 = 1,
                maxConcurrentSFTPSessions: Int64 = 1, allowedVFolderHosts: String = "{}", defaultForUnspecified: String = "UNLIMITED",
                maxSessionPriority: Int64 = 100) {
        self.maxSessionPriority = maxSessionPriority
        (self.maxSessionLifetime, self.maxContainersPerSession, self.maxConcurrentSFTPSessions) = (maxSessionLifetime, maxContainersPerSession, maxConcurrentSFTPSessions)
        (self.allowedVFolderHosts, self.defaultForUnspecified) = (allowedVFolderHosts, defaultForUnspecified)
        self.scope = scope
        self.name = name
        self.totalResourceSlots = totalResourceSlots
        self.maxConcurrentSessions = maxConcurrentSessions
        self.maxVfolderCount = maxVfolderCount
        self.maxVfolderSize = maxVfolderSize
        self.idleTimeout = idleTimeout
        self.createdAt = createdAt
    }
}

/// A resource group (Backend.AI: scaling group): agents that share a scheduler.
public struct ResourceGroup: Sendable, Codable, Equatable {
    public var name: String
    public var description: String
    public var isActive: Bool
    public var scheduler: String
    public var agentSelector: String
    /// JSON object of scheduler options.
    public var schedulerOptions: String
    public var createdAt: Int64
    /// The kernel sandbox mode of the group's sessions (`none`, `watch`, `enforce`); nil: the agents' own.
    public var sandbox: String?
    /// A TOML policy layer (`deny`, `allow`) over the agents' policy; nil: none.
    public var sandboxPolicy: String?
    /// Whether any project may be given it (Backend.AI's flag; kept and shown).
    public var isPublic = true
    /// The app proxy address of the group (Backend.AI's wsproxy; kept and shown).
    public var wsproxyAddress: String?
    /// Whether the group's kernels use the host network.
    public var useHostNetwork = false
}

/// Changes to a resource group (Backend.AI's `ModifyScalingGroupInput`); nil leaves a field.
public struct ResourceGroupChanges: Sendable {
    public var description: String?
    public var isActive: Bool?
    public var isPublic: Bool?
    public var scheduler: String?
    public var agentSelector: String?
    public var schedulerOptions: String?
    public var wsproxyAddress: String?
    public var useHostNetwork: Bool?
    public init() {}
}

/// An event of a session other than a status change: what a kernel in sandbox watch mode
/// called that its policy would deny.
public struct SessionEvent: Sendable, Codable, Equatable {
    public var kernelID: String
    /// `sandbox_watch`.
    public var kind: String
    /// The event's JSON payload.
    public var data: String
    public var createdAt: Int64

    public init(kernelID: String, kind: String, data: String, createdAt: Int64) {
        self.kernelID = kernelID
        self.kind = kind
        self.data = data
        self.createdAt = createdAt
    }
}

/// A container image known to the cluster.
public struct Image: Sendable, Codable, Equatable {
    public var name: String
    public var tag: String
    public var architecture: String
    public var digest: String
    /// JSON object of labels.
    public var labels: String
    public var minResourceSlots: ResourceSlots
    public var sizeBytes: Int64
    public var createdAt: Int64
}

/// Agent liveness.
public enum AgentStatus: String, Sendable, Codable {
    case alive = "ALIVE"
    case lost = "LOST"
    case terminated = "TERMINATED"
}

/// An agent as the registry knows it.
public struct AgentRecord: Sendable, Codable, Equatable {
    public var id: String
    public var status: AgentStatus
    public var schedulable: Bool
    public var address: String
    public var resourceGroup: String
    public var architecture: String
    public var version: String
    public var capacity: ResourceSlots
    public var occupied: ResourceSlots
    /// JSON: slot name to slot type.
    public var slotTypes: String
    /// JSON: devices reported by the accelerator plugins.
    public var devices: String
    /// JSON: accelerator plugins (name, version).
    public var plugins: String
    /// JSON: images present on the node.
    public var images: String
    /// JSON: kernel ids running on the node.
    public var runningKernels: String
    public var firstContact: Int64
    public var lastHeartbeat: Int64
    public var lostAt: Int64?
    /// JSON: the latest AgentStats.
    public var stats: String
}

extension AgentRecord {
    /// An agent as a scheduling snapshot needs it (simulations, tests): alive, schedulable,
    /// no devices or images.
    public init(id: String, resourceGroup: String = "default", architecture: String = "x86_64", capacity: ResourceSlots,
                occupied: ResourceSlots = ResourceSlots(), slotTypes: String = "{}") {
        (self.id, self.status, self.schedulable, self.address, self.resourceGroup) = (id, .alive, true, "", resourceGroup)
        (self.architecture, self.version, self.capacity, self.occupied, self.slotTypes) = (architecture, "", capacity, occupied, slotTypes)
        (self.devices, self.plugins, self.images, self.runningKernels, self.firstContact, self.lastHeartbeat, self.lostAt, self.stats) =
            ("[]", "[]", "[]", "[]", 0, 0, nil, "{}")
    }
}

/// A live session's kernel and the slots it holds on an agent.
public struct SlotHolder: Sendable, Equatable {
    public var sessionName: String
    public var accessKey: String
    public var agentID: String
    public var occupied: ResourceSlots
    public var sessionID = ""
    public var priority = 0
    public var status = SessionStatus.running
    /// Whether the session may be preempted (its own choice, or its type's default).
    public var preemptible = false
    /// When it will have ended at the latest (its time limit from when it got its slots);
    /// nil: no limit.
    public var expectedEnd: Int64?

    public init(sessionName: String, accessKey: String, agentID: String, occupied: ResourceSlots) {
        self.sessionName = sessionName
        self.accessKey = accessKey
        self.agentID = agentID
        self.occupied = occupied
    }
}

/// A keypair as list pages show it: with its owner, the owner's projects (names, sorted) and
/// how many of its sessions run.
public struct KeypairListing: Sendable {
    public let keypair: Keypair
    public let owner: User
    public let projectNames: [String]
    public let activeSessions: Int
}

/// What a resource group's `scheduler_opts` (a JSON object, Backend.AI's shape) says to the
/// manager's scheduling pass. Keys the manager does not use (`allowed_session_types`,
/// `config` for the plugins) are kept in the stored JSON as they are.
public struct SchedulerOptions: Sendable, Equatable {
    /// Seconds a session may stay PENDING before it is cancelled; 0: for ever.
    public var pendingTimeout: Double = 0
    /// Whether a pending session may end running preemptible sessions of lower priority.
    public var preemption = false
    /// Fair-share usage halves every this many seconds (Slurm's PriorityDecayHalfLife, 7 days).
    public var fairshareHalfLife: Double = 604_800
    /// What a second of each slot costs in fair-share usage (memory-like slots per GiB);
    /// unlisted slots weigh 1 per unit, memory 0.
    public var usageWeights: [String: Double] = [:]
    /// The scheduler plugin's own configuration (Backend.AI's `scheduler_opts.config`), JSON.
    public var pluginConfig = "{}"
    /// EASY backfill: once the first session in the scheduler's order is blocked, later ones
    /// start only when they declared a time limit and do not delay its earliest start.
    public var backfill = false

    public init(pendingTimeout: Double = 0, preemption: Bool = false) {
        self.pendingTimeout = pendingTimeout
        self.preemption = preemption
    }

    /// A resource group's options as a pass uses them. They were checked when written; a row
    /// edited by hand that no longer reads falls back to none.
    public init(of group: ResourceGroup) {
        self = (try? SchedulerOptions(json: group.schedulerOptions)) ?? SchedulerOptions()
    }

    /// Reads the options.
    /// - Throws: `StoreError(.invalid)` naming the key when a value has the wrong type.
    public init(json: String) throws {
        struct Stored: Decodable {
            let pending_timeout: Double?
            let preemption: Bool?
            let fairshare_half_life: Double?
            let usage_weights: [String: Double]?
            let backfill: Bool?
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
            throw StoreError(.invalid, "scheduler_opts must be a JSON object, e.g. {\"pending_timeout\": 600}; got '\(json.prefix(80))'")
        }
        // Seconds are bounded (ten years): a pass turns them into microseconds.
        let tenYears = 315_360_000.0
        guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(json.utf8)), (0...tenYears).contains(stored.pending_timeout ?? 0) else {
            throw StoreError(.invalid, "scheduler_opts: pending_timeout must be a number of seconds from 0 (no timeout) to 315360000, e.g. 600; preemption true or false; fairshare_half_life seconds > 0; usage_weights an object of numbers >= 0, e.g. {\"cpu\": 1, \"mem\": 0.25}")
        }
        guard (stored.fairshare_half_life ?? 1) > 0, (stored.fairshare_half_life ?? 1) <= tenYears,
              (stored.usage_weights ?? [:]).values.allSatisfy({ $0 >= 0 && $0 <= 1e9 }) else {
            throw StoreError(.invalid, "scheduler_opts: fairshare_half_life must be 1-315360000 seconds and usage_weights numbers from 0 to 1e9")
        }
        pendingTimeout = stored.pending_timeout ?? 0
        preemption = stored.preemption ?? false
        backfill = stored.backfill ?? false
        fairshareHalfLife = stored.fairshare_half_life ?? fairshareHalfLife
        usageWeights = stored.usage_weights ?? [:]
        if let config = object["config"] {
            guard config is [String: Any], let data = try? JSONSerialization.data(withJSONObject: config) else {
                throw StoreError(.invalid, "scheduler_opts.config must be a JSON object (the scheduler plugin's configuration)")
            }
            pluginConfig = String(decoding: data, as: UTF8.self)
        }
    }
}
