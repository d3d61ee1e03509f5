import ClusterProtocol
import Foundation
import Graphiti
import GraphQL
import Hummingbird
import Identity
import StateStore

// Container registries images are pulled from, configured by superadmins: Backend.AI 23.09's
// GraphQL (`container_registries`, `create/modify/delete_container_registry`) and REST
// (`GET /config/docker-registries`, which `admin resource docker-registries` prints). The
// password is sealed at rest (`SecretBox`) and never answered: the config shows only
// whether one is set.

/// A registry's settings as GraphQL answers them (`password` is always null).
struct GQLRegistryConfig: Sendable {
    let url: String
    let type: String
    let project: [String]?
    let username: String?
    let password: String?
    let ssl_verify: Bool?
    /// Hangar's own: whether a password is stored (it is never answered).
    let has_password: Bool
}

/// Backend.AI's `ContainerRegistry`.
struct GQLContainerRegistry: Sendable {
    let id: String
    let hostname: String
    let config: GQLRegistryConfig
}

/// `CreateContainerRegistryInput` (and, every field optional, `ModifyContainerRegistryInput`).
struct RegistryInput: Codable, Sendable {
    let url: String?
    let type: String?
    let project: [String]?
    let username: String?
    let password: String?
    let ssl_verify: Bool?
}

struct RegistryArguments: Codable, Sendable {
    let hostname: String
    let props: RegistryInput
}

struct HostnameArgument: Codable, Sendable {
    let hostname: String
}

struct GQLRegistryResult: Sendable {
    let ok: Bool
    let msg: String
    let container_registry: GQLContainerRegistry?
}

extension ManagerAPI {
    /// Seals and opens stored credentials with the cluster secret every manager shares.
    var secretBox: SecretBox { SecretBox(clusterSecret: clusterSecret) }

    /// The registry types Hangar can pull from and scan.
    static let registryTypes = ["docker"]

    /// A registry with `input` applied (every given field replaces the stored one; an empty
    /// password removes it), checked before anything is stored.
    func applying(_ input: RegistryInput, to base: ContainerRegistry) throws -> ContainerRegistry {
        var r = base
        guard (1...255).contains(r.hostname.count),
              r.hostname.range(of: #"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$"#, options: .regularExpression) != nil else {
            throw StoreError(.invalid, "hostname '\(r.hostname)' must be a registry host name, optionally with a port (cr.example.com, localhost:5000)")
        }
        if let url = input.url { r.url = url }
        if let type = input.type { r.type = type }
        if let projects = input.project { r.projects = projects }
        if let username = input.username { r.username = username.isEmpty ? nil : username }
        if let password = input.password {
            do {
                r.sealedPassword = password.isEmpty ? nil : try secretBox.seal(password)
            } catch {
                throw StoreError(.invalid, "the password could not be sealed: \(error)")
            }
        }
        if let verify = input.ssl_verify { r.sslVerify = verify }
        guard let url = URL(string: r.url), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw StoreError(.invalid, "url '\(r.url)' must be the registry's http:// or https:// address")
        }
        guard Self.registryTypes.contains(r.type) else {
            throw StoreError(.invalid, "registry type '\(r.type)' is not supported by Hangar; use 'docker' (any Registry v2 / OCI registry, Harbor included)")
        }
        guard r.projects.allSatisfy({ !$0.isEmpty && !$0.contains("..") && $0.count <= 255 }) else {
            throw StoreError(.invalid, "project names must be non-empty repository namespaces")
        }
        return r
    }

    /// Registries as `GET /config/docker-registries` answers them: by hostname, Backend.AI's
    /// etcd keys (`""` is the URL), the password never.
    static func registryConfigs(_ registries: [ContainerRegistry]) -> [String: Any] {
        var out: [String: Any] = [:]
        for r in registries {
            var entry: [String: Any] = ["": r.url, "type": r.type, "project": r.projects, "ssl_verify": r.sslVerify,
                                        "has_password": r.sealedPassword != nil]
            if let username = r.username { entry["username"] = username }
            out[r.hostname] = entry
        }
        return out
    }

    var registryRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/image/pull",
                      summary: "Pull an image onto agents ({image, agent?}: every alive agent, or the one named; admin). One JSON object per line: agent, status, detail, current, total, error",
                      access: .admin, bodyKeys: ["image", "agent"]) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let body = try await object(request, allowed: ["image", "agent"])
                let image = try Self.required(body, "image")
                guard ImageName.registryHost(image) != nil else {
                    throw APIError.invalidParams("'\(image)' names no registry: give it as REGISTRY/NAME:TAG (cr.example.com/ns/python:3.11); images without one are built on the agents")
                }
                let wanted = body["agent"] as? String
                let agents = try await store.run { try $0.agents(status: .alive) }.filter { wanted == nil || $0.id == wanted }
                guard !agents.isEmpty else { throw APIError.notFound("No such agent.", wanted.map { "no alive agent '\($0)'" } ?? "no alive agent") }
                let login = try await lifecycle.registryLogin(for: image)
                let lifecycle = self.lifecycle
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                    for agent in agents {
                        var last = ContinuousClock.now - .seconds(1)
                        do {
                            for try await step in lifecycle.agentPull(agent, image: image, login: login) {
                                guard step.status != .pulling || ContinuousClock.now - last >= .milliseconds(500) else { continue }
                                last = ContinuousClock.now
                                var line: [String: Any] = ["agent": agent.id, "status": step.status.rawValue]
                                if let detail = step.detail { line["detail"] = detail }
                                if let current = step.current { line["current"] = current }
                                if let total = step.total { line["total"] = total }
                                if let error = step.error { line["error"] = error }
                                try await writer.write(ByteBuffer(string: Self.eventJSON(line) + "\n"))
                            }
                        } catch {
                            try await writer.write(ByteBuffer(string: Self.eventJSON(["agent": agent.id, "status": "failed", "error": "\(error)"]) + "\n"))
                        }
                    }
                    try await writer.finish(nil)
                })
            },
            RouteSpec(method: .get, path: "/config/docker-registries",
                      summary: "Configured container registries by hostname (admin; passwords are never answered)", access: .admin,
                      bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                return try Self.jsonObject(Self.registryConfigs(try await store.run { try $0.containerRegistries() }))
            },
        ]
    }
}

extension GQLResolver {
    static func registry(_ r: ContainerRegistry) -> GQLContainerRegistry {
        GQLContainerRegistry(id: r.hostname, hostname: r.hostname,
                             config: GQLRegistryConfig(url: r.url, type: r.type, project: r.projects, username: r.username, password: nil,
                                                       ssl_verify: r.sslVerify, has_password: r.sealedPassword != nil))
    }

    func containerRegistries(context: GQLContext, arguments: NoArguments) async throws -> [GQLContainerRegistry] {
        guard context.caller.isAdmin else { throw GraphQLError(message: "container_registries is for admins (insufficient privilege)") }
        return try await context.read { try $0.containerRegistries() }.map(Self.registry)
    }

    func containerRegistry(context: GQLContext, arguments: HostnameArgument) async throws -> GQLContainerRegistry? {
        try await containerRegistries(context: context, arguments: NoArguments()).first { $0.hostname == arguments.hostname }
    }

    func createContainerRegistry(context: GQLContext, arguments: RegistryArguments) async throws -> GQLRegistryResult {
        try await saveRegistry(context, arguments, replace: false, root: "create_container_registry")
    }

    func modifyContainerRegistry(context: GQLContext, arguments: RegistryArguments) async throws -> GQLRegistryResult {
        try await saveRegistry(context, arguments, replace: true, root: "modify_container_registry")
    }

    private func saveRegistry(_ context: GQLContext, _ arguments: RegistryArguments, replace: Bool, root: String) async throws -> GQLRegistryResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "\(root) needs a superadmin keypair (insufficient privilege)") }
        if !replace, arguments.props.url == nil { throw GraphQLError(message: "\(root): props.url is required") }
        let api = context.api
        let result = try await Self.attempt {
            try await context.read { store -> GQLContainerRegistry in
                var base = ContainerRegistry(hostname: arguments.hostname, url: "")
                if replace {
                    guard let stored = try store.containerRegistries().first(where: { $0.hostname == arguments.hostname }) else {
                        throw StoreError(.notFound, "no registry '\(arguments.hostname)'")
                    }
                    base = stored
                }
                let registry = try api.applying(arguments.props, to: base)
                try store.saveContainerRegistry(registry, replace: replace)
                return Self.registry(registry)
            }
        }
        switch result {
        case .success(let registry): return GQLRegistryResult(ok: true, msg: "success", container_registry: registry)
        case .failure(let error): return GQLRegistryResult(ok: false, msg: error.message, container_registry: nil)
        }
    }

    func deleteContainerRegistry(context: GQLContext, arguments: HostnameArgument) async throws -> GQLRegistryResult {
        guard context.isSuperadmin else { throw GraphQLError(message: "delete_container_registry needs a superadmin keypair (insufficient privilege)") }
        let result = try await Self.attempt { try await context.read { try $0.deleteContainerRegistry(arguments.hostname) } }
        switch result {
        case .success: return GQLRegistryResult(ok: true, msg: "success", container_registry: nil)
        case .failure(let error): return GQLRegistryResult(ok: false, msg: error.message, container_registry: nil)
        }
    }
}

extension ManagerAPI {
    /// Runs a registry scan as background task `task`: each registry's images replace its
    /// last scan's; progress and the outcome go to the task's record.
    func scanRegistries(_ registries: [ContainerRegistry], task: String) async {
        var summary: [String] = []
        var failures: [String] = []
        var done: Int64 = 0
        for registry in registries {
            do {
                let password = try registry.sealedPassword.map { try secretBox.open($0) }
                let scanner = RegistryScanner(registry: registry, password: password)
                let store = self.store
                let base = done
                let (found, problems) = try await scanner.scan { current, total, what in
                    try? await store.run { try $0.updateBackgroundTask(task, status: .running, current: base + Int64(current), total: base + Int64(total), message: what) }
                }
                await scanner.shutdown()
                done += Int64(found.count + problems.count)
                let now = Clock.nowMicros()
                try await store.run { store in
                    try store.replaceRegistryImages(registry: registry.hostname, found.map {
                        RegistryImage(registry: registry.hostname, repository: $0.repository, tag: $0.tag, digest: $0.digest, architecture: $0.architecture,
                                      sizeBytes: $0.sizeBytes, labels: $0.labels, scannedAt: now)
                    })
                }
                summary.append("\(registry.hostname): \(found.count) image\(found.count == 1 ? "" : "s")" + (problems.isEmpty ? "" : ", \(problems.count) unreadable (\(problems.prefix(3).joined(separator: "; ")))"))
                logger.info("registry scanned", metadata: ["registry": .string(registry.hostname), "images": .stringConvertible(found.count), "problems": .stringConvertible(problems.count)])
            } catch {
                failures.append("\(registry.hostname): \(error)")
                logger.warning("registry scan failed", metadata: ["registry": .string(registry.hostname), "error": .string("\(error)")])
            }
        }
        let message = registries.isEmpty ? "no registries are configured (images on the agents are reported by the agents themselves)"
            : (summary + failures).joined(separator: "; ")
        let (status, count) = (failures.isEmpty ? BackgroundTask.Status.done : .failed, done)
        _ = try? await store.run { try $0.updateBackgroundTask(task, status: status, current: count, total: count, message: message) }
    }

    /// `GET /events/background-task?task_id=ID`: a task's progress as server-sent events
    /// (`bgtask_updated` with current/total progress, then `bgtask_done` or `bgtask_failed`),
    /// as the official client follows `admin image rescan`. A task whose manager stopped
    /// updating it for two minutes is reported failed.
    var backgroundTaskRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/events/background-task", summary: "Server-sent progress of a background task (?task_id=)", access: .user,
                      bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                guard let id = request.uri.queryParameters.get("task_id"), !id.isEmpty else { throw APIError.invalidParams("give the task as ?task_id=ID") }
                guard let first = try await store.run({ try $0.backgroundTask(id) }), first.owner == caller.accessKey || caller.isAdmin else {
                    throw APIError.notFound("No such background task.", "no background task '\(id)' of \(caller.accessKey)")
                }
                return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { [store] writer in
                    var said = ""
                    while true {
                        guard let t = try await store.run({ try $0.backgroundTask(id) }) else { break }
                        let stale = t.status == .running && Clock.nowMicros() - t.updatedAt > 120_000_000
                        let data = Self.eventJSON(["task_id": t.id, "current_progress": t.current, "total_progress": t.total,
                                                   "message": stale ? "the manager running this task stopped updating it" : t.message])
                        if t.status == .running && !stale {
                            if data != said { try await writer.write(ByteBuffer(string: "event: bgtask_updated\ndata: \(data)\n\n")); said = data }
                            try await Task.sleep(for: .milliseconds(300))
                            continue
                        }
                        let name = t.status == .done ? "bgtask_done" : "bgtask_failed"
                        try await writer.write(ByteBuffer(string: "event: \(name)\ndata: \(data)\n\n"))
                        break
                    }
                    try await writer.write(ByteBuffer(string: "event: server_close\ndata: {}\n\n"))
                    try await writer.finish(nil)
                })
            },
        ]
    }
}
