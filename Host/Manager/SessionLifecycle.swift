import AsyncHTTPClient
import ClusterProtocol
import Foundation
import Identity
import Logging
import NIOCore
import NIOHTTP1
import PluginHost
import StateStore
import Synchronization

/// Drives sessions after scheduling: creates their kernels on the chosen agents, follows
/// them to RUNNING, and ends them — on exit, OOM, failure or a lost agent — releasing slots
/// exactly once through the store.
public final class SessionLifecycle: Sendable {
    let store: StateStore
    let scheduler: SessionScheduler
    /// Which manager schedules (nil: this one, unfenced — tests that drive one lifecycle).
    let leadership: SchedulerLeadership?
    let clusterSecret: String
    let logger: Logger
    /// When each session's activity was last written: `continue` polls of a streaming run
    /// refresh the idle clock at most every `activityInterval`, not on every poll.
    private let activityWritten = Mutex<[String: ContinuousClock.Instant]>([:])
    static let activityInterval: Duration = .seconds(10)
    /// When and how the leader reconciles (see `reconcile`).
    let reconcileLimits: ReconcileLimits
    /// Where cluster sessions' networks come from.
    let sessionNetworks: SessionNetworkPool
    /// 16 bits that tell this cluster's session networks from another's (FNV-1a of the
    /// cluster secret).
    let clusterTag: UInt16
    let lastReconcile = Mutex<ContinuousClock.Instant?>(nil)
    /// Kernels of RUNNING sessions that their agent's last report did not list (repaired when
    /// still missing at the next reconciliation).
    let suspects = Mutex<Set<String>>([])
    /// Sessions this manager is starting now (their kernels being created).
    let startsInFlight = Mutex<Set<String>>([])

    public init(store: StateStore, plugins: PluginHost, clusterSecret: String, leadership: SchedulerLeadership? = nil,
                reconcileLimits: ReconcileLimits = ReconcileLimits(), sessionNetworks: SessionNetworkPool = SessionNetworkPool(),
                logger: Logger = Logger(label: "hangar.sessions")) {
        self.store = store
        self.sessionNetworks = sessionNetworks
        var hash: UInt32 = 2_166_136_261
        for byte in clusterSecret.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        self.clusterTag = UInt16(truncatingIfNeeded: hash ^ hash >> 16)
        self.reconcileLimits = reconcileLimits
        self.scheduler = SessionScheduler(store: store, plugins: plugins, logger: logger)
        self.leadership = leadership
        self.clusterSecret = clusterSecret
        self.logger = logger
    }

    /// The agent-side request for one kernel: slot amounts in the agent's fixed point.
    static func kernelRequest(kernelID: String, session: SessionRecord, command: String?, slotTypes: [String: String],
                              mounts: [SessionMount] = [], sandbox: KernelSandbox? = nil, dotfiles: [KernelDotfile] = [],
                              preopenPorts: [Int] = [], sshKeypair: KernelSSHKeypair? = nil, cluster: ClusterPlace? = nil,
                              network: KernelNetwork? = nil, userEnvironment: [String: String] = [:]) -> KernelRequest {
        var slots: [String: Int64] = [:]
        for (slot, amount) in session.requested.amounts where amount > 0 {
            let bytes = slotTypes[slot] == "bytes" || slot == "mem"
            slots[slot] = SlotAmount.fixed(amount, bytes: bytes)
        }
        // The creator's variables first; Hangar's own are set over them.
        var environment = userEnvironment
        environment.merge(["BACKENDAI_SESSION_NAME": session.name, "BACKENDAI_ACCESS_KEY": session.accessKey]) { _, new in new }
        if let cluster { environment.merge(cluster.environment) { _, new in new } }
        var request = KernelRequest(kernelID: kernelID, sessionID: session.id, image: session.image, slots: slots,
                             environment: environment,
                             command: command.map { ["/bin/sh", "-c", $0] },
                             mounts: mounts.map { KernelMount(hostPath: $0.hostPath, containerPath: $0.containerPath, readOnly: $0.readOnly) },
                             sharedMemoryBytes: 64 << 20, pidsLimit: 4096, sandbox: sandbox, dotfiles: dotfiles.isEmpty ? nil : dotfiles,
                             preopenPorts: preopenPorts.isEmpty ? nil : preopenPorts, sshKeypair: sshKeypair)
        request.hostname = cluster?.hostname
        request.network = network
        return request
    }

    /// The owner's SSH keypair, made on first use (Backend.AI gives every keypair one).
    func sshKeypair(accessKey: String) async throws -> KernelSSHKeypair {
        if let keys = try await store.run({ try $0.sshKeypair(accessKey: accessKey) }) { return keys }
        let made = SSHKeys.generateEd25519(comment: "work@hangar")
        return try await store.run { try $0.sshKeypair(accessKey: accessKey, orStore: KernelSSHKeypair(publicKey: made.publicKey, privateKey: made.privateKey)) }
    }

    /// The reason an agent gave for a failed call (its `AgentErrorReply`), or its raw answer.
    static func agentReason(_ text: String) -> String {
        (try? JSONDecoder().decode(AgentErrorReply.self, from: Data(text.utf8)))?.error ?? text
    }

    /// Calls an agent's RPC server.
    func callAgent(_ address: String, _ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: address.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "\(AgentAPI.authorizationScheme) \(clusterSecret)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 4 << 20)))
    }

    /// Whether a round is running, and whether another was asked for meanwhile.
    private let rounds = Mutex<(running: Bool, again: Bool)>((false, false))

    /// Runs a round now, or — when one is running — once more right after it: however many
    /// wake-ups arrive together (a burst of created sessions, NOTIFYs from other managers,
    /// the periodic round), passes never overlap and the last request is always served.
    public func wake() async {
        let first = rounds.withLock { state -> Bool in
            if state.running { state.again = true; return false }
            state.running = true
            return true
        }
        guard first else { return }
        repeat { await tick() } while rounds.withLock { state -> Bool in
            if state.again { state.again = false; return true }
            state.running = false
            return false
        }
    }

    /// Whether reaping and reconciliation are running, and whether a forced reconciliation
    /// (a new leader's) waits for the next turn.
    private let chores = Mutex<(running: Bool, forceNext: Bool)>((false, false))

    /// Reaps idle and expired sessions and reconciles when due, on a task of its own: both
    /// wait on agents (kernel grace periods, restarting stuck sessions), and a scheduling
    /// round must not wait for them. One such task at a time.
    func doChores(forceReconcile: Bool = false) {
        let first = chores.withLock { state -> Bool in
            if state.running { state.forceNext = state.forceNext || forceReconcile; return false }
            state.running = true
            return true
        }
        guard first else { return }
        Task {
            var force = forceReconcile
            repeat {
                await reapIdle()
                await reconcileIfDue(force: force)
                force = true
            } while chores.withLock { state -> Bool in
                if state.forceNext { state.forceNext = false; return true }
                state.running = false
                return false
            }
        }
    }

    /// One round: a scheduling pass per resource group; kernel creation for what it placed
    /// runs on its own (a pull can take minutes; the next pass need not wait for it).
    func tick() async {
        // Only the scheduling leader schedules and reaps; the other managers serve the API.
        guard let epoch = await leaderEpoch() else { return }
        doChores()
        do {
            let groups = try await store.run { try $0.resourceGroups().filter(\.isActive).map(\.name) }
            for group in groups {
                let decisions = try await store.run { [scheduler] _ in try scheduler.schedule(resourceGroup: group, epoch: epoch) }
                for decision in decisions {
                    switch decision {
                    case .scheduled(let session, let placements): Task { await self.start(session: session, placements: placements) }
                    case .preempted(let session, let reason):
                        // Ending kernels waits out their grace period: not on the scheduling loop.
                        Task { try? await self.destroy(session: session, reason: reason) }
                    case .pending, .cancelled: break
                    }
                }
            }
        } catch let error as StoreError where error.code == .leadershipLost {
            logger.warning("scheduling pass fenced off", metadata: ["reason": .string(error.message)])
        } catch {
            logger.error("scheduling round failed", metadata: ["error": .string("\(error)")])
        }
    }

    /// Whether this manager schedules now: `.some(epoch)` while it leads (`.some(nil)` when
    /// unfenced), nil while another manager does. Keeps or seeks the lead each call, and logs
    /// and counts every change.
    func leaderEpoch() async -> Int64?? {
        guard let leadership else { return .some(nil) }
        let change = (try? await store.run { _ in leadership.refresh() }) ?? .follower
        switch change {
        case .kept(let epoch):
            return .some(epoch)
        case .acquired(let epoch):
            logger.notice("this manager is now the scheduling leader", metadata: ["epoch": .stringConvertible(epoch), "holder": .string(leadership.holder)])
            ManagerMetrics.leadershipChanges.increment()
            // A new leader repairs what the previous one may have left half-done, beside its
            // first passes (they place only PENDING sessions; repairs touch the others).
            doChores(forceReconcile: true)
            return .some(epoch)
        case .lost(let reason):
            logger.warning("this manager is no longer the scheduling leader", metadata: ["reason": .string(reason)])
            ManagerMetrics.leadershipChanges.increment()
            return nil
        case .follower:
            return nil
        }
    }

    /// Creates a scheduled session's kernels; any failure ends it in ERROR with the agent's reason.
    func start(session id: String, placements: [KernelPlacement]) async {
        // Reconciliation leaves a session alone while this manager is still starting it.
        guard startsInFlight.withLock({ $0.insert(id).inserted }) else { return }
        defer { _ = startsInFlight.withLock { $0.remove(id) } }
        do {
            guard let session = try await store.run({ try $0.session(id: id) }) else { return }
            try await pullImage(session, placements: placements)
            try await store.run { try $0.transition(session: id, to: .creating, reason: "creating kernels") }
            let command = try await store.run { try $0.startupCommand(session: id) }
            let mounts = try await store.run { try $0.sessionMounts(id) }
            let dotfiles = try await store.run { try $0.kernelDotfiles(session: id) }
            let preopen = try await store.run { try $0.preopenPorts(session: id) }
            let userEnvironment = try await store.run { try $0.sessionEnvironment(id) }
            let keys = try await sshKeypair(accessKey: session.accessKey)
            // The group's sandbox, as a superadmin set it; users have no say.
            let group = try await store.run { try $0.resourceGroups().first { $0.name == session.resourceGroup } }
            let sandbox = group.flatMap { $0.sandbox == nil && $0.sandboxPolicy == nil ? nil : KernelSandbox(mode: $0.sandbox, policy: $0.sandboxPolicy) }
            var found: [String: AgentRecord] = [:]
            for agentID in Set(placements.map(\.agentID)) {
                guard let agent = try await store.run({ try $0.agent(id: agentID) }) else { throw StoreError(.notFound, "agent \(agentID) vanished") }
                found[agentID] = agent
            }
            let agents = found
            let places = ClusterPlace.places(try await store.run { try $0.kernels(session: id) }, mode: session.clusterMode)
            let networks = session.clusterSize > 1 ? try await clusterNetworks(session: id, placements: placements, places: places, agents: agents) : [:]
            // Every kernel is asked for at once (a cluster of 8 starts in the time of its
            // slowest kernel), and every answer is awaited before a failure is acted on, so the
            // clean-up below never races a kernel still being created.
            let outcomes = await withTaskGroup(of: (String, Result<[ServicePort]?, any Error>).self) { group in
                for placement in placements {
                    group.addTask {
                        do {
                            let agent = agents[placement.agentID]!
                            let types = (try? JSONDecoder().decode([String: String].self, from: Data(agent.slotTypes.utf8))) ?? [:]
                            let body = try JSONEncoder().encode(Self.kernelRequest(kernelID: placement.kernelID, session: session,
                                                                                    command: command, slotTypes: types, mounts: mounts, sandbox: sandbox,
                                                                                    dotfiles: dotfiles, preopenPorts: preopen, sshKeypair: keys,
                                                                                    cluster: places[placement.kernelID], network: networks[placement.kernelID],
                                                                                    userEnvironment: userEnvironment))
                            let (status, text) = try await self.callAgent(agent.address, .POST, AgentAPI.kernelsPath, body: body)
                            guard status == 201 else {
                                throw StoreError(.invalid, "agent \(agent.id) could not create the kernel\(places.count > 1 ? " \(places[placement.kernelID]?.hostname ?? "")" : ""): \(Self.agentReason(text))")
                            }
                            return (placement.kernelID, .success((try? JSONDecoder().decode(KernelCreated.self, from: Data(text.utf8)))?.servicePorts))
                        } catch {
                            return (placement.kernelID, .failure(error))
                        }
                    }
                }
                var all: [(String, Result<[ServicePort]?, any Error>)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            for (_, outcome) in outcomes { if case .failure(let error) = outcome { throw error } }
            for case (let kernel, .success(let ports?)) in outcomes {
                try await store.run { try $0.setServicePorts(kernel: kernel, ports) }
            }
            try await store.run { try $0.transition(session: id, to: .running) }
            logger.info("session running", metadata: ["session": .string(id)])
        } catch {
            logger.warning("session failed to start", metadata: ["session": .string(id), "error": .string("\(error)")])
            // Agents release what they hold before the manager's books do (see handle(_:)).
            for placement in placements { await removeKernel(placement.kernelID, onAgent: placement.agentID) }
            _ = try? await store.run { try $0.transition(session: id, to: .error, reason: "\(error)") }
        }
    }

    /// A cluster session's own network, per kernel: the session's number (kept while it
    /// lives), each kernel's address by rank, and for each kernel the other agents the
    /// session's VXLAN joins (by the host of their advertised address).
    func clusterNetworks(session id: String, placements: [KernelPlacement], places: [String: ClusterPlace],
                         agents: [String: AgentRecord]) async throws -> [String: KernelNetwork] {
        let index = try await store.run { [count = sessionNetworks.count] in try $0.assignNetworkIndex(session: id, count: count) }
        let agentHosts = agents.compactMapValues { URLComponents(string: $0.address)?.host }
        var hosts: [String: String] = [:]
        for place in places.values { hosts[place.hostname] = sessionNetworks.kernelAddress(network: index, rank: place.rank) }
        // Interface names and VXLAN ids carry this cluster's tag, so two Hangar clusters whose
        // agents share hosts or a network never share a bridge or a segment.
        let tag = String(clusterTag, radix: 16)
        var out: [String: KernelNetwork] = [:]
        for placement in placements {
            guard let place = places[placement.kernelID], let address = hosts[place.hostname] else { continue }
            let peers = Set(placements.map(\.agentID)).subtracting([placement.agentID]).compactMap { agentHosts[$0] }.sorted()
            out[placement.kernelID] = KernelNetwork(index: index, bridge: "hgb\(tag)\(index)", vxlan: "hgx\(tag)\(index)",
                                                    vni: 0x10_0000 | Int(clusterTag & 0x7FF) << 9 | index,
                                                    address: address + "/24", hosts: hosts, peers: peers, mtu: 1450)
        }
        return out
    }

    /// Makes every agent of a starting session hold its image when the image names a
    /// registry (`cr.example.com/ns/name:tag`): the agent pulls it through its engine with the
    /// registry's login, if one is configured (opened from its sealed copy here). While an
    /// agent pulls, the session is PULLING and the engine's progress becomes
    /// `kernel_pull_progress` events (at most one a second per agent).
    /// - Throws: the registry's reason when a pull fails (the session then ends in ERROR).
    func pullImage(_ session: SessionRecord, placements: [KernelPlacement]) async throws {
        guard ImageName.registryHost(session.image) != nil else { return }
        let login = try await registryLogin(for: session.image)
        var kernelOnAgent: [String: String] = [:]
        for p in placements where kernelOnAgent[p.agentID] == nil { kernelOnAgent[p.agentID] = p.kernelID }
        var markedPulling = false
        for (agentID, kernel) in kernelOnAgent.sorted(by: { $0.key < $1.key }) {
            guard let agent = try await store.run({ try $0.agent(id: agentID) }) else { throw StoreError(.notFound, "agent \(agentID) vanished") }
            var lastEvent = ContinuousClock.now - .seconds(2)
            var outcome: ImagePullProgress?
            for try await step in agentPull(agent, image: session.image, login: login) {
                switch step.status {
                case .pulling:
                    if !markedPulling {
                        try await store.run { try $0.transition(session: session.id, to: .pulling, reason: "pulling \(session.image)") }
                        markedPulling = true
                    }
                    if ContinuousClock.now - lastEvent >= .seconds(1) {
                        lastEvent = ContinuousClock.now
                        try await store.run { try $0.addSessionEvents([Self.pullEvent(kernel: kernel, image: session.image, step)]) }
                    }
                case .present, .pulled, .failed:
                    outcome = step
                }
            }
            switch outcome?.status {
            case .pulled?:
                let done = Self.pullEvent(kernel: kernel, image: session.image, outcome!)
                try await store.run { try $0.addSessionEvents([done]) }
                logger.info("image pulled", metadata: ["session": .string(session.id), "agent": .string(agentID), "image": .string(session.image)])
            case .present?:
                break
            default:
                throw StoreError(.invalid, "pulling \(session.image) on agent \(agentID) failed: \(outcome?.error ?? "the agent's answer ended early")")
            }
        }
    }

    /// The login for the registry an image names, opened from its sealed copy; nil when the
    /// image names no registry, or one configured without a username (anonymous pulls).
    func registryLogin(for image: String) async throws -> RegistryLogin? {
        guard let host = ImageName.registryHost(image),
              let registry = try await store.run({ try $0.containerRegistries().first { $0.hostname == host } }), let username = registry.username else { return nil }
        let password = try registry.sealedPassword.map { try SecretBox(clusterSecret: clusterSecret).open($0) } ?? ""
        return RegistryLogin(serverAddress: host, username: username, password: password)
    }

    /// Asks an agent to make sure it holds `image`: its answer's lines as they come (the last
    /// says how it ended). An agent that cannot be asked throws.
    func agentPull(_ agent: AgentRecord, image: String, login: RegistryLogin?) -> AsyncThrowingStream<ImagePullProgress, Error> {
        let secret = clusterSecret
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var request = HTTPClientRequest(url: agent.address.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + AgentAPI.imagePullPath)
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "\(AgentAPI.authorizationScheme) \(secret)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(ImagePullRequest(image: image, login: login))))
                    let response = try await HTTPClient.shared.execute(request, timeout: .hours(2))
                    guard response.status == .ok else {
                        throw StoreError(.invalid, "agent \(agent.id) could not pull \(image): \(Self.agentReason(String(buffer: try await response.body.collect(upTo: 1 << 20))))")
                    }
                    var pending = [UInt8]()
                    for try await chunk in response.body {
                        pending += chunk.readableBytesView
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = Data(pending[..<newline])
                            pending.removeFirst(newline + 1)
                            if let step = try? JSONDecoder().decode(ImagePullProgress.self, from: line) { continuation.yield(step) }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A pull's progress as Backend.AI's `kernel_pull_progress` event.
    static func pullEvent(kernel: String, image: String, _ step: ImagePullProgress) -> SessionEvent {
        var data: [String: Any] = ["image": image, "status": step.status.rawValue]
        if let detail = step.detail { data["message"] = detail }
        if let current = step.current { data["current_progress"] = current }
        if let total = step.total { data["total_progress"] = total }
        let json = String(decoding: (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
        return SessionEvent(kernelID: kernel, kind: "kernel_pull_progress", data: json, createdAt: Clock.nowMicros())
    }

    /// Ends sessions whose kernels an agent reports as exited, and removes the containers.
    public func handle(_ heartbeat: AgentHeartbeat) async {
        for exit in heartbeat.terminatedKernels ?? [] {
            do {
                guard let sessionID = try await store.run({ try $0.sessionID(ofKernel: exit.kernelID) }) else { continue }
                let (status, reason): (SessionStatus, String) = if exit.oomKilled {
                    (.error, "the kernel was killed for running out of memory (raise the mem request)")
                } else if exit.exitCode == 0 {
                    (.terminated, "finished")
                } else {
                    (.terminated, "exited with status \(exit.exitCode.map(String.init) ?? "unknown")")
                }
                await keepLogs(kernel: exit.kernelID, agentAddress: heartbeat.address)
                // The agent frees the kernel's devices and cores first: the transition frees
                // them in the manager's books, and a session scheduled onto them in between
                // was refused by the agent ("not enough 'cpu'") and ended in ERROR.
                _ = try? await callAgent(heartbeat.address, .DELETE, AgentAPI.kernelPath(exit.kernelID))
                try await store.run { try $0.transition(session: sessionID, to: status, reason: reason, exitCode: exit.exitCode) }
            } catch {
                logger.error("cannot record a kernel exit", metadata: ["kernel": .string(exit.kernelID), "error": .string("\(error)")])
            }
        }
    }

    /// Saves a kernel's console output before its container goes away.
    func keepLogs(kernel id: String, agentAddress: String) async {
        guard let (status, text) = try? await callAgent(agentAddress, .GET, AgentAPI.logsPath(id)), status == 200,
              let logs = try? JSONDecoder().decode(KernelLogs.self, from: Data(text.utf8)) else { return }
        _ = try? await store.run { try $0.saveLogs(kernel: id, logs.stdout + logs.stderr) }
    }

    /// Ends a session on request: its kernels' containers are removed (logs kept) and its
    /// slots released; a pending session is cancelled.
    public func destroy(session id: String, reason: String, endingIn final: SessionStatus = .terminated) async throws {
        guard let session = try await store.run({ try $0.session(id: id) }) else { return }
        if session.status == .pending {
            try await store.run { try $0.transition(session: id, to: .cancelled, reason: reason) }
            return
        }
        guard !session.status.isTerminal else { return }
        for (kernel, agentID) in try await store.run({ try $0.kernelAgents(session: id) }) {
            guard let agentID, let agent = try await store.run({ try $0.agent(id: agentID) }) else { continue }
            await keepLogs(kernel: kernel, agentAddress: agent.address)
            _ = try? await callAgent(agent.address, .DELETE, AgentAPI.kernelPath(kernel))
        }
        try await store.run { try $0.transition(session: id, to: final, reason: reason) }
    }

    /// Restarts a running session's containers in place (RUNNING → RESTARTING → RUNNING):
    /// scratch and home folders stay, processes and the interpreter's state start afresh. A
    /// kernel that fails to come back ends the session in ERROR with the agent's reason.
    public func restart(session: SessionRecord) async throws {
        guard session.status == .running else {
            throw APIError(.conflict, "invalid-session-state", "The session is not running.",
                           "session '\(session.name)' is \(session.status.rawValue); only RUNNING sessions restart")
        }
        guard session.type == "interactive" else {
            throw APIError.invalidParams("session '\(session.name)' is a batch session: it runs its command once; create a new session to run it again")
        }
        try await store.run { try $0.transition(session: session.id, to: .restarting, reason: "restart requested") }
        for (kernel, agentID) in try await store.run({ try $0.kernelAgents(session: session.id) }) {
            do {
                guard let agentID, let agent = try await store.run({ try $0.agent(id: agentID) }) else {
                    throw APIError.internalError("kernel \(kernel) of session '\(session.name)' has no agent")
                }
                let (status, text) = try await callAgent(agent.address, .POST, AgentAPI.restartPath(kernel))
                guard status == 204 else { throw Self.agentFailure(status, text, agent: agent.address) }
            } catch {
                let reason = "restart failed: \((error as? APIError)?.message ?? "\(error)")"
                try? await destroy(session: session.id, reason: reason, endingIn: .error)
                throw error
            }
        }
        try await store.run { try $0.transition(session: session.id, to: .running) }
    }

    /// The main kernel's console output: live from the agent, or what was kept.
    public func logs(session id: String, kernel wanted: String? = nil) async throws -> String {
        let kernels = try await store.run { try $0.kernelAgents(session: id) }
        guard let (kernel, agentID) = wanted.map({ w in kernels.first { $0.0 == w } }) ?? kernels.first else { return "" }
        if let agentID, let agent = try await store.run({ try $0.agent(id: agentID) }),
           let (status, text) = try? await callAgent(agent.address, .GET, AgentAPI.logsPath(kernel)), status == 200,
           let logs = try? JSONDecoder().decode(KernelLogs.self, from: Data(text.utf8)) {
            return logs.stdout + logs.stderr
        }
        return try await store.run { try $0.savedLogs(kernel: kernel) } ?? ""
    }

    // MARK: - Code execution

    /// The main kernel's id and its agent's address, for a RUNNING session.
    func mainKernel(_ session: SessionRecord) async throws -> (kernel: String, address: String) {
        guard session.status == .running else {
            throw APIError(.conflict, "invalid-session-state", "The session is not running.",
                           "session '\(session.name)' is \(session.status.rawValue)\(session.statusInfo.isEmpty ? "" : " (\(session.statusInfo))"); code runs only in RUNNING sessions")
        }
        guard let (kernel, agentID) = try await store.run({ try $0.kernelAgents(session: session.id) }).first, let agentID,
              let agent = try await store.run({ try $0.agent(id: agentID) }) else {
            throw APIError.internalError("session '\(session.name)' has no placed main kernel")
        }
        return (kernel, agent.address)
    }

    /// An agent's error reply as the API error a client can act on.
    static func agentFailure(_ status: Int, _ text: String, agent: String) -> APIError {
        let reason = agentReason(text)
        return switch status {
        case 409: APIError(.conflict, "kernel-busy", "The kernel is busy.", reason)
        case 400: APIError.invalidParams(reason)
        case 404: APIError(.notFound, "kernel-not-found", "The kernel is gone.", reason)
        default: APIError(.serviceUnavailable, "agent-unavailable", "The agent could not run the request.", "agent \(agent): \(reason)")
        }
    }

    /// One execute call on the session's main kernel (Backend.AI's execute semantics).
    /// - Parameter target: the main kernel and its agent, when the caller resolved them already
    ///   (a stream makes many calls on one kernel).
    public func execute(_ session: SessionRecord, _ request: ExecutionRequest, on target: (kernel: String, address: String)? = nil) async throws -> ExecutionResult {
        let resolved: (kernel: String, address: String)
        if let target { resolved = target } else { resolved = try await mainKernel(session) }
        let (kernel, address) = resolved
        if shouldNoteActivity(session.id, mode: request.mode) {
            try await store.run { try $0.noteActivity(session: session.id, query: request.mode == "query" || request.mode == "batch") }
        }
        let (status, text) = try await callAgent(address, .POST, AgentAPI.executePath(kernel), body: try JSONEncoder().encode(request))
        guard status == 200 else { throw Self.agentFailure(status, text, agent: address) }
        do {
            return try JSONDecoder().decode(ExecutionResult.self, from: Data(text.utf8))
        } catch {
            throw APIError.internalError("the agent answered an execute call with something unreadable: \(error)")
        }
    }

    /// Starting a run or answering input always counts; a `continue` poll only once per interval.
    func shouldNoteActivity(_ session: String, mode: String) -> Bool {
        let now = ContinuousClock.now
        return activityWritten.withLock { written in
            if mode == "continue", let last = written[session], now - last < Self.activityInterval { return false }
            if written.count > 10_000 { written.removeAll() }
            written[session] = now
            return true
        }
    }

    /// SIGINT to the code running in the session's main kernel.
    public func interrupt(_ session: SessionRecord) async throws {
        let (kernel, address) = try await mainKernel(session)
        let (status, text) = try await callAgent(address, .POST, AgentAPI.interruptPath(kernel))
        guard status == 204 else { throw Self.agentFailure(status, text, agent: address) }
    }

    /// Files into the main kernel's working directory.
    public func upload(_ session: SessionRecord, _ files: KernelUpload) async throws {
        let (kernel, address) = try await mainKernel(session)
        try await store.run { try $0.noteActivity(session: session.id, query: false) }
        let (status, text) = try await callAgent(address, .POST, AgentAPI.filesPath(kernel), body: try JSONEncoder().encode(files))
        guard status == 200 else { throw Self.agentFailure(status, text, agent: address) }
    }

    /// Ends interactive sessions idle past their resource policy's idle timeout, and any live
    /// session past its policy's lifetime.
    public func reapIdle() async {
        // Sessions past their declared time limit (batchTimeout) end, as Slurm ends a job at
        // its --time: backfill counted on it.
        if let late = try? await store.run({ try $0.sessionsPastTimeLimit() }) {
            for session in late {
                logger.info("session reached its time limit", metadata: ["session": .string(session.id), "limit": .stringConvertible(session.limit)])
                try? await destroy(session: session.id, reason: "time-limit: the session ran \(session.ranSeconds) s, its declared time limit (batchTimeout) is \(session.limit) s")
            }
        }
        if let idle = try? await store.run({ try $0.idleSessions() }) {
            for session in idle {
                logger.info("idle session ends", metadata: ["session": .string(session.id), "idle": .stringConvertible(session.idleSeconds)])
                try? await destroy(session: session.id, reason: "idle-timeout: no code ran for \(session.idleSeconds) s (policy limit \(session.limit) s)")
            }
        }
        // Sessions past their policy's lifetime end whether busy or not (Backend.AI's
        // max_session_lifetime).
        if let expired = try? await store.run({ try $0.expiredSessions() }) {
            for session in expired {
                logger.info("session reached its lifetime", metadata: ["session": .string(session.id), "age": .stringConvertible(session.ageSeconds)])
                try? await destroy(session: session.id, reason: "lifetime-exceeded: the session ran \(session.ageSeconds) s (policy max_session_lifetime \(session.limit) s)")
            }
        }
    }

    /// Asks an agent to remove a kernel (stop, free its slots); best effort: an agent that
    /// cannot be reached is left to reconciliation.
    func removeKernel(_ kernelID: String, onAgent agentID: String) async {
        guard let agent = try? await store.run({ try $0.agent(id: agentID) }) else { return }
        _ = try? await callAgent(agent.address, .DELETE, AgentAPI.kernelPath(kernelID))
    }

    /// Sessions with kernels on agents that went LOST end in ERROR, and their kernels on the
    /// agents still alive are removed.
    public func agentsLost(_ ids: [String]) async {
        let lost = Set(ids)
        for agentID in ids {
            let sessions = (try? await store.run { try $0.activeSessions(onAgent: agentID) }) ?? []
            for id in sessions {
                // A session never runs in part: its kernels on agents that are still alive (a
                // multi-node session's) are removed now, before the books release their slots;
                // the lost agent's own are removed when it comes back (reconciliation).
                var removed: [String] = []
                for kernel in (try? await store.run { try $0.kernels(session: id) }) ?? [] {
                    guard let other = kernel.agentID, !lost.contains(other) else { continue }
                    await removeKernel(kernel.id, onAgent: other)
                    removed.append("\(kernel.clusterHostname) on \(other)")
                }
                let reason = "agent \(agentID) was lost" + (removed.isEmpty ? "" : "; the session's other kernels were removed (\(removed.joined(separator: ", ")))")
                _ = try? await store.run { try $0.transition(session: id, to: .error, reason: reason) }
            }
        }
    }
}

/// A kernel's place in its session's cluster, as Backend.AI's kernel environment describes it:
/// its role (`main` or `sub`), its index within the role, its host name (`main1`, `sub1`, ...)
/// and every host name of the session.
struct ClusterPlace: Sendable, Equatable {
    var role: String
    var roleIndex: Int
    var hostname: String
    var hosts: [String]
    /// The kernel's position in the cluster, 0-based (the main kernel is 0).
    var rank: Int
    var mode: ClusterMode

    /// The variables every kernel gets (`BACKENDAI_CLUSTER_*`).
    var environment: [String: String] {
        let subs = hosts.count - 1
        return ["BACKENDAI_CLUSTER_MODE": mode.rawValue, "BACKENDAI_CLUSTER_SIZE": String(hosts.count),
                "BACKENDAI_CLUSTER_ROLE": role, "BACKENDAI_CLUSTER_IDX": String(roleIndex),
                "BACKENDAI_CLUSTER_HOST": hostname, "BACKENDAI_CLUSTER_HOSTS": hosts.joined(separator: ","),
                "BACKENDAI_CLUSTER_LOCAL_RANK": String(rank),
                "BACKENDAI_CLUSTER_REPLICAS": subs > 0 ? "main:1,sub:\(subs)" : "main:1"]
    }

    /// Each kernel's place, by kernel id, from the session's kernels in cluster order.
    static func places(_ kernels: [StateStore.KernelSummary], mode: ClusterMode) -> [String: ClusterPlace] {
        let hosts = kernels.map(\.clusterHostname)
        return Dictionary(uniqueKeysWithValues: kernels.enumerated().map { rank, kernel in
            (kernel.id, ClusterPlace(role: kernel.clusterRole, roleIndex: kernel.roleIndex, hostname: kernel.clusterHostname,
                                     hosts: hosts, rank: rank, mode: mode))
        })
    }
}
