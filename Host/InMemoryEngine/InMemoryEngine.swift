import ContainerEngine
import Foundation
import Synchronization

/// A container engine that keeps containers in memory: the test double of `ContainerEngine`,
/// in the spirit of swift-nio's embedded channel. Containers go through the real lifecycle
/// (created, running, exited; removed), with exit codes, OOM kills, logs, label filters and
/// events, and they outlive the agent that made them, so an agent restart can re-adopt them.
/// What a started container "does" is decided by `behaviour`, per spec; nothing is executed.
public final class InMemoryEngine: ContainerEngine {
    /// What a started container does.
    public enum Behaviour: Sendable {
        /// Runs until stopped or killed.
        case runsUntilStopped
        /// Exits with `code` right away, having printed `stdout` and `stderr`.
        case exits(code: Int, stdout: String = "", stderr: String = "")
        /// Is killed by the kernel's OOM killer (exit 137, OOMKilled).
        case oomKilled
    }

    struct Container {
        var id: String
        var spec: ContainerSpec
        var state = ContainerState(running: false, exitCode: nil, oomKilled: false)
        var started = false
        var stdout = ""
        var stderr = ""
        var waiters: [CheckedContinuation<Int, Never>] = []
    }

    struct State {
        var images: Set<String>
        var imageLabels: [String: [String: String]] = [:]
        var containers: [String: Container] = [:]
        var subscribers: [UUID: (labels: [String], continuation: AsyncThrowingStream<EngineEvent, Error>.Continuation)] = [:]
        var created: [ContainerSpec] = []
        /// Images a pull can fetch, with the login their registry wants (nil: anonymous).
        var remote: [String: RegistryCredentials?] = [:]
        /// Every pull asked for, in order.
        var pulls: [String] = []
        /// Set: listing images fails with this (podman's 500 while another client removes one).
        var listingFailure: EngineError?
    }

    private let state: Mutex<State>
    /// Decides what each started container does (default: runs until stopped).
    public let behaviour: @Sendable (ContainerSpec) -> Behaviour

    /// - Parameters:
    ///   - images: image references present "locally" (`name:tag`).
    ///   - behaviour: what a started container does.
    public init(images: Set<String> = [], behaviour: @escaping @Sendable (ContainerSpec) -> Behaviour = { _ in .runsUntilStopped }) {
        state = Mutex(State(images: images))
        self.behaviour = behaviour
    }

    /// Every spec ever created, in order (what the agent asked the engine for).
    public var createdSpecs: [ContainerSpec] { state.withLock { $0.created } }

    /// Adds an image, as a pull would.
    public func addImage(_ reference: String) { _ = state.withLock { $0.images.insert(reference) } }

    public func version() async throws -> EngineVersion { EngineVersion(name: "In-memory engine", version: "1", apiVersion: "1.41") }

    /// Makes image listing fail (nil: work again), as podman's does while an image is removed.
    public func failImageListing(_ error: EngineError?) { state.withLock { $0.listingFailure = error } }

    public func images() async throws -> [ImageSummary] {
        if let failure = state.withLock({ $0.listingFailure }) { throw failure }
        return state.withLock { s in
            s.images.sorted().map { ImageSummary(id: "sha256:" + String($0.hashValue.magnitude, radix: 16), tags: [$0], sizeBytes: 0, labels: s.imageLabels[$0] ?? [:]) }
        }
    }

    /// Adds an image with labels, as a pull of a labelled image would.
    public func addImage(_ reference: String, labels: [String: String]) {
        let (repo, tag) = ImageReference.split(reference)
        state.withLock {
            $0.images.insert("\(repo):\(tag)")
            $0.imageLabels["\(repo):\(tag)"] = labels
        }
    }

    public func imageLabels(_ name: String) async throws -> [String: String] {
        let (repo, tag) = ImageReference.split(name)
        return try state.withLock { s in
            guard s.images.contains("\(repo):\(tag)") else {
                throw EngineError(status: 404, operation: "inspect image \(name)", message: "no such image: \(name)")
            }
            return s.imageLabels["\(repo):\(tag)"] ?? [:]
        }
    }

    public func imageExists(_ name: String) async throws -> Bool {
        let (repo, tag) = ImageReference.split(name)
        return state.withLock { $0.images.contains("\(repo):\(tag)") }
    }

    public func create(_ spec: ContainerSpec) async throws -> String {
        let (repo, tag) = ImageReference.split(spec.image)
        let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") + "00000000"
        try state.withLock { s in
            guard s.images.contains("\(repo):\(tag)") else {
                throw EngineError(status: 404, operation: "create container \(spec.name)", message: "no such image: \(spec.image)")
            }
            guard !s.containers.values.contains(where: { $0.spec.name == spec.name }) else {
                throw EngineError(status: 409, operation: "create container \(spec.name)", message: "the container name \"\(spec.name)\" is already in use")
            }
            s.containers[id] = Container(id: id, spec: spec)
            s.created.append(spec)
        }
        publish("create", id)
        return id
    }

    private func find(_ s: inout State, _ id: String) -> String? {
        if s.containers[id] != nil { return id }
        return s.containers.values.first { $0.spec.name == id || $0.id.hasPrefix(id) && id.count >= 12 }?.id
    }

    private func notFound(_ operation: String, _ id: String) -> EngineError {
        EngineError(status: 404, operation: "\(operation) \(id.prefix(12))", message: "no container with name or ID \"\(id)\" found")
    }

    public func start(_ id: String) async throws {
        let outcome: (String, Behaviour)? = try state.withLock { s in
            guard let key = find(&s, id) else { throw notFound("start container", id) }
            guard !s.containers[key]!.state.running else { return nil }
            s.containers[key]!.state = ContainerState(running: true, exitCode: nil, oomKilled: false)
            s.containers[key]!.started = true
            return (key, behaviour(s.containers[key]!.spec))
        }
        guard let (key, behaviour) = outcome else { return }
        publish("start", key)
        switch behaviour {
        case .runsUntilStopped: break
        case .exits(let code, let stdout, let stderr): end(key, code: code, oom: false, stdout: stdout, stderr: stderr)
        case .oomKilled:
            publish("oom", key)
            end(key, code: 137, oom: true)
        }
    }

    /// Ends a running container with an exit code, waking its waiters.
    private func end(_ key: String, code: Int, oom: Bool, stdout: String = "", stderr: String = "") {
        let waiters: [CheckedContinuation<Int, Never>]? = state.withLock { s in
            guard var c = s.containers[key], c.state.running else { return nil }
            c.state = ContainerState(running: false, exitCode: code, oomKilled: oom)
            c.stdout += stdout
            c.stderr += stderr
            let waiting = c.waiters
            c.waiters = []
            s.containers[key] = c
            return waiting
        }
        guard let waiters else { return }
        publish("die", key)
        for w in waiters { w.resume(returning: code) }
    }

    public func stop(_ id: String, timeout: Int) async throws {
        guard let key = state.withLock({ s in find(&s, id) }) else { throw notFound("stop container", id) }
        end(key, code: 143, oom: false)  // SIGTERM, obeyed
    }

    public func kill(_ id: String, signal: String) async throws {
        guard let key = state.withLock({ s in find(&s, id) }) else { throw notFound("kill container", id) }
        end(key, code: signal == "SIGKILL" || signal == "KILL" || signal == "9" ? 137 : 143, oom: false)
    }

    public func remove(_ id: String, force: Bool) async throws {
        guard let key = state.withLock({ s in find(&s, id) }) else { return }
        if state.withLock({ $0.containers[key]?.state.running ?? false }) {
            guard force else {
                throw EngineError(status: 409, operation: "remove container \(id.prefix(12))", message: "container is running: stop it first or force the removal")
            }
            end(key, code: 137, oom: false)
        }
        _ = state.withLock { $0.containers.removeValue(forKey: key) }
        publish("destroy", key)
    }

    public func inspect(_ id: String) async throws -> ContainerDetails? {
        state.withLock { s in
            guard let key = find(&s, id), let c = s.containers[key] else { return nil }
            return ContainerDetails(id: c.id, name: c.spec.name, labels: c.spec.labels, state: c.state)
        }
    }

    public func wait(_ id: String) async throws -> Int {
        guard let key = state.withLock({ s in find(&s, id) }) else { throw notFound("wait for container", id) }
        return await withCheckedContinuation { continuation in
            let done: Int? = state.withLock { s in
                guard let c = s.containers[key] else { return -1 }
                if !c.state.running && c.started { return c.state.exitCode ?? -1 }
                s.containers[key]!.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    public func logs(_ id: String) async throws -> (stdout: String, stderr: String) {
        try state.withLock { s in
            guard let key = find(&s, id), let c = s.containers[key] else { throw notFound("logs of container", id) }
            return (c.stdout, c.stderr)
        }
    }

    public func containers(labels: [String]) async throws -> [ContainerSummary] {
        state.withLock { s in
            s.containers.values.filter { LabelFilter.matches($0.spec.labels, labels) }.sorted { $0.id < $1.id }
                .map { ContainerSummary(id: $0.id, labels: $0.spec.labels) }
        }
    }

    public func events(labels: [String]) -> AsyncThrowingStream<EngineEvent, Error> {
        let key = UUID()
        return AsyncThrowingStream { continuation in
            state.withLock { $0.subscribers[key] = (labels, continuation) }
            continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) } }
        }
    }

    /// Makes an image pullable, as a registry holding it would (with that login, if any).
    public func addRemoteImage(_ reference: String, credentials: RegistryCredentials? = nil) {
        state.withLock { $0.remote[reference] = .some(credentials) }
    }

    /// The references pulled so far, in order.
    public var pulls: [String] { state.withLock { $0.pulls } }

    /// A pull: one progress report, then the image is present — or the registry's refusal.
    public func pull(_ reference: String, credentials: RegistryCredentials?) -> AsyncThrowingStream<PullProgress, Error> {
        let (repo, tag) = ImageReference.split(reference)
        let outcome: Result<Void, EngineError> = state.withLock { s in
            s.pulls.append(reference)
            guard let wanted = s.remote["\(repo):\(tag)"] else {
                return .failure(EngineError(status: 502, operation: "pull \(reference)", message: "manifest unknown: \(repo):\(tag)"))
            }
            if let wanted, wanted.username != credentials?.username || wanted.password != credentials?.password {
                return .failure(EngineError(status: 502, operation: "pull \(reference)", message: "unauthorized: authentication required"))
            }
            s.images.insert("\(repo):\(tag)")
            return .success(())
        }
        return AsyncThrowingStream { continuation in
            switch outcome {
            case .success:
                continuation.yield(PullProgress(status: "Download complete", layer: "0", current: 1, total: 1))
                continuation.finish()
            case .failure(let error):
                continuation.finish(throwing: error)
            }
        }
    }

    /// Containers in memory have no file system: every path is absent.
    public func archive(_ id: String, path: String, maxBytes: Int) async throws -> [UInt8]? {
        try state.withLock { s in
            guard find(&s, id) != nil else { throw notFound("archive of container", id) }
            return nil
        }
    }

    public func stats(_ id: String) async throws -> ContainerStats {
        try state.withLock { s in
            guard let key = find(&s, id), let c = s.containers[key] else { throw notFound("stats of container", id) }
            var stats = ContainerStats()
            stats.memoryLimitBytes = UInt64(max(c.spec.memoryBytes ?? 0, 0))
            return stats
        }
    }

    private func publish(_ action: String, _ id: String) {
        let (labels, subscribers) = state.withLock { s in (s.containers[id]?.spec.labels ?? [:], Array(s.subscribers.values)) }
        let event = EngineEvent(type: "container", action: action, actorID: id, attributes: labels,
                                time: Int64(Date().timeIntervalSince1970))
        for subscriber in subscribers where LabelFilter.matches(labels, subscriber.labels) {
            subscriber.continuation.yield(event)
        }
    }
}
