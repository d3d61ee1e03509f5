import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import StateStore

/// Backend.AI's session endpoints, as the official client calls them (§7 of the wire notes):
/// create (blocking until RUNNING unless enqueueOnly), destroy, logs.
extension ManagerAPI {
    /// `config.environ` as kernels can take it: names of letters, digits and `_` not
    /// starting with a digit and not Hangar's own (`BACKENDAI_*`, `HANGAR_*`), at most 256
    /// variables and 64 KiB in all.
    static func checkedEnvironment(_ environ: [String: String]) throws -> [String: String] {
        guard environ.count <= 256 else { throw StoreError(.invalid, "config.environ has \(environ.count) variables; at most 256 are allowed") }
        var total = 0
        for (name, value) in environ {
            let valid = !name.isEmpty && name.utf8.count <= 256 && !(name.first?.isNumber ?? true)
                && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }
            guard valid else {
                throw StoreError(.invalid, "config.environ: '\(name.prefix(64))' is not a variable name (letters, digits and _, not starting with a digit)")
            }
            guard !name.hasPrefix("BACKENDAI_"), !name.hasPrefix("HANGAR_") else {
                throw StoreError(.invalid, "config.environ: \(name) is one of Hangar's own variables (BACKENDAI_*, HANGAR_*), which the kernel sets itself")
            }
            guard !value.utf8.contains(0) else { throw StoreError(.invalid, "config.environ: the value of \(name) contains a NUL byte") }
            total += name.utf8.count + value.utf8.count
        }
        guard total <= 64 << 10 else { throw StoreError(.invalid, "config.environ holds \(total) bytes; at most 65536 are allowed") }
        return environ
    }

    /// The create body the official client sends; every key it may send is listed.
    struct CreateSession: Decodable {
        struct Config: Decodable {
            let mounts: [String]?
            let mountMap: [String: String]?
            let environ: [String: String]?
            let resources: [String: String]?
            let scalingGroup: String?
            let agentList: [String]?
            let preopenPorts: [Int]?
            enum CodingKeys: String, CodingKey {
                case mounts, environ, resources, scalingGroup, agentList
                case mountMap = "mount_map"
                case preopenPorts = "preopen_ports"
            }
        }
        let name: String?
        let image: String
        let type: String?
        let startupCommand: String?
        let clusterSize: Int?
        let clusterMode: String?
        let architecture: String?
        let group: String?
        let domain: String?
        let enqueueOnly: Bool?
        let maxWaitSeconds: Int?
        let reuseIfExists: Bool?
        let config: Config?
        /// Sessions (ids or names) that must end successfully before this one is scheduled.
        let dependencies: [String]?
        /// 0-100 (Backend.AI 24.03); higher is scheduled first. Default `defaultPriority`.
        let priority: Int?
        /// Hangar's: whether a session of higher priority may end this one where the resource
        /// group enables preemption (default: batch sessions may, interactive ones not).
        let preemptible: Bool?
        /// Seconds the session may run once it has its slots (Backend.AI's batchTimeout); it
        /// is ended after that, and lets backfill start it ahead of a blocked session.
        let batchTimeout: Int?
    }

    /// Backend.AI's default session priority.
    static let defaultPriority = 10

    static let createKeys = ["tag", "name", "config", "dependencies", "callback_url", "architecture", "clusterSize", "clusterMode", "starts_at",
                             "bootstrap_script", "owner_access_key", "domain", "group", "type", "enqueueOnly", "maxWaitSeconds",
                             "reuseIfExists", "startupCommand", "image", "priority", "preemptible", "batchTimeout"]

    struct CreateReply: Encodable {
        let sessionId: String
        let sessionName: String
        let status: String
        let servicePorts: [AppPort]
        let created: Bool
    }

    /// A service port as the create reply lists it (the client prints the names).
    struct AppPort: Encodable {
        let name: String
        let `protocol`: String
        let ports: [Int]
    }

    static func validName(_ name: String) -> Bool {
        (4...64).contains(name.count) && name.range(of: #"^\w[\w.-]*\w$"#, options: .regularExpression) != nil
    }

    /// Session routes, added to the route table.
    var sessionRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/session", summary: "Create a session (blocks until it runs unless enqueueOnly)", access: .user,
                      bodyKeys: Self.createKeys) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await io.decode(CreateSession.self, from: request, allowed: Self.createKeys, snakeCase: false)
                return try await createSession(body, caller: caller)
            },
            RouteSpec(method: .delete, path: "/session/:sessionName", summary: "Destroy a session", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                // ?recursive=true also ends the sessions that wait for this one (they could never run).
                if request.uri.queryParameters.get("recursive") == "true" {
                    for dependent in try await store.run({ try $0.dependents(of: session.id) }) {
                        try await lifecycle.destroy(session: dependent, reason: "destroyed by \(caller.accessKey) with '\(session.name)', which it depended on")
                    }
                }
                try await lifecycle.destroy(session: session.id, reason: "destroyed by \(caller.accessKey)")
                struct Reply: Encodable { let stats: String? }
                return try io.response(Reply(stats: nil))
            },
            RouteSpec(method: .get, path: "/events/session", summary: "Server-sent lifecycle events of a session (?sessionId= or ?sessionName=)",
                      access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let query = request.uri.queryParameters
                guard let key = query.get("sessionId") ?? query.get("sessionName") else {
                    throw APIError.invalidParams("give sessionId or sessionName (\"*\": every session of the caller)")
                }
                if key == "*" { return allSessionsEvents(caller) }
                let session = try await resolve(key, caller: caller)
                // Every event carries `id: H-E` (status changes and reports sent so far); a client
                // that reconnects — to this manager or another one, all read the same database —
                // with `Last-Event-ID` gets only what came after.
                let resumeFrom = Self.eventPosition(request.headers[values: .lastEventID].first)
                return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                                body: ResponseBody { [store] writer in
                                    var (sent, sentEvents) = resumeFrom
                                    var waitingSaid = ""
                                    while true {
                                        // Sandbox watch reports (what the policy would have denied).
                                        let events = try await store.run { try $0.sessionEvents(session: session.id) }
                                        for (index, event) in events.enumerated().dropFirst(sentEvents) {
                                            let data = Self.withSession(event.data, current: session)
                                            try await writer.write(ByteBuffer(string: "id: \(sent)-\(index + 1)\nevent: \(event.kind)\ndata: \(data)\n\n"))
                                        }
                                        sentEvents = max(sentEvents, events.count)
                                        let history = try await store.run { try $0.statusHistory(session: session.id) }
                                        let current = try await store.run { try $0.session(id: session.id) } ?? session
                                        let exitCode = try await store.run { try $0.exitCode(session: session.id) }
                                        for (index, (status, _)) in history.enumerated().dropFirst(sent) {
                                            for name in Self.eventNames(status, type: current.type, exitCode: exitCode) {
                                                let data = Self.eventData(current, status: status, exitCode: exitCode)
                                                try await writer.write(ByteBuffer(string: "id: \(index + 1)-\(sentEvents)\nevent: \(name)\ndata: \(data)\n\n"))
                                            }
                                        }
                                        sent = max(sent, history.count)
                                        // A pending session says why it waits, again whenever the scheduler's
                                        // reason changes (what holds the capacity, and what to do about it).
                                        if current.status == .pending, !current.statusInfo.isEmpty, current.statusInfo != waitingSaid {
                                            try await writer.write(ByteBuffer(string: "event: session_waiting\ndata: \(Self.waitingData(current))\n\n"))
                                            waitingSaid = current.statusInfo
                                        }
                                        if history.last?.0.isTerminal == true { break }
                                        try await Task.sleep(for: .milliseconds(200))
                                    }
                                    // The official client reconnects forever unless told to stop.
                                    try await writer.write(ByteBuffer(string: "event: server_close\ndata: {}\n\n"))
                                    try await writer.finish(nil)
                                })
            },
            RouteSpec(method: .get, path: "/session/:sessionName/status-history", summary: "When the session entered each status (lowercase status: ISO time)",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let history = try await store.run { try $0.statusHistory(session: session.id) }
                // The latest entry of each status, as Backend.AI keeps them (one time per status).
                var result: [String: String] = [:]
                for (status, at) in history { result[status.rawValue.lowercased()] = CivilTime.iso8601(micros: at) }
                return try Self.jsonObject(["result": result])
            },
            RouteSpec(method: .post, path: "/session/:sessionName/rename", summary: "Rename a live session (?name=NEW)", access: .user,
                      bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                guard let name = request.uri.queryParameters.get("name") else { throw APIError.invalidParams("give the new name as ?name=NEW") }
                guard Self.validName(name) else {
                    throw APIError.invalidParams("the session name must be 4-64 characters of letters, digits, '_', '.' or '-', starting and ending with a letter, digit or '_'")
                }
                try await store.run { try $0.renameSession(session.id, to: name) }
                return Response(status: .noContent)
            },
            RouteSpec(method: .post, path: "/session/:sessionName/commit", summary: "Not supported by Hangar: committing a session's container to an image",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                _ = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                throw APIError.notSupported("session commit", "Hangar does not commit session containers to images; build images from recipes (Tools/images) and push them to your registry")
            },
            RouteSpec(method: .patch, path: "/session/:sessionName", summary: "Restart a running interactive session's containers in place (home and scratch kept)",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                try await lifecycle.restart(session: session)
                return Response(status: .noContent)
            },
            RouteSpec(method: .get, path: "/session/:sessionName/dependency-graph",
                      summary: "The sessions this one depends on, as a tree (session_id, session_name, status, status_changed, depends_on)",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let changed = try await store.run { try $0.sessionDetail(id: session.id)?.statusChanged } ?? session.createdAt
                let root = StateStore.DependencyState(id: session.id, name: session.name, status: session.status, exitCode: nil, statusChanged: changed)
                return try Self.jsonObject(try await dependencyNode(root, depth: 0))
            },
            RouteSpec(method: .get, path: "/session/:sessionName/abusing-report",
                      summary: "What the session's kernels did that their sandbox policy denies (watch-mode reports, newest 20 per kernel)",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let reports = try await store.run { try $0.sessionEvents(session: session.id) }.filter { $0.kind == "sandbox_watch" }
                var byKernel: [String: [Any]] = [:]
                for event in reports {
                    byKernel[event.kernelID, default: []].append((try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) ?? event.data)
                }
                var result: [String: Any] = [:]
                for (kernel, items) in byKernel {
                    result[kernel] = ["reports": items.count, "latest": Array(items.suffix(20))] as [String: Any]
                }
                return try Self.jsonObject(result)
            },
            RouteSpec(method: .get, path: "/session/:sessionName/logs",
                      summary: "The main kernel's console output (`/session/_/logs?taskId=KERNEL`: one kernel's, as text)", access: .user,
                      bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let reference = try context.parameters.require("sessionName")
                if reference == "_" {
                    // Backend.AI's task logs: one kernel's (or session's) output as plain text.
                    guard let task = request.uri.queryParameters.get("taskId"), !task.isEmpty else {
                        throw APIError.invalidParams("give the kernel (or session) id as ?taskId=ID")
                    }
                    let sessionID = try await store.run { try $0.sessionID(ofKernel: task) } ?? task
                    let session = try await resolve(sessionID, caller: caller)
                    let text = try await lifecycle.logs(session: session.id, kernel: sessionID == task ? nil : task)
                    return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
                }
                let session = try await resolve(reference, caller: caller)
                let logs = try await lifecycle.logs(session: session.id)
                struct Logs: Encodable { let logs: String }
                struct Reply: Encodable { let result: Logs }
                return try io.response(Reply(result: Logs(logs: logs)))
            },
        ]
    }

    /// One node of a dependency graph in Backend.AI's shape (the client's tree printer wants
    /// `KernelStatus.`-prefixed statuses and space-separated times), its dependencies below.
    func dependencyNode(_ s: StateStore.DependencyState, depth: Int) async throws -> [String: Any] {
        var below: [[String: Any]] = []
        if depth < 16 {
            for dependency in try await store.run({ try $0.dependencies(of: s.id) }) {
                below.append(try await dependencyNode(dependency, depth: depth + 1))
            }
        }
        let changed = CivilTime.iso8601(micros: s.statusChanged).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
        return ["session_id": s.id, "session_name": s.name, "status": "KernelStatus.\(s.status.rawValue)", "status_changed": changed,
                "depends_on": below]
    }

    /// Backend.AI's event names for a status transition.
    /// `GET /events/session?sessionName=*`: every change of status (or of the scheduler's
    /// reason) of the caller's sessions, as `session_status` events with the session's name,
    /// id, status and reason, first for each live session, then as they change (ending ones
    /// with the status they ended in); a comment
    /// line every 15 s keeps the stream open through proxies. It ends when the client goes.
    func allSessionsEvents(_ caller: Caller) -> Response {
        let accessKey = caller.accessKey
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { [store] writer in
                            // Only live sessions are listed each round; one that left the list
                            // is read once more for the status it ended in, then forgotten.
                            let live = SessionStatus.allCases.filter { !$0.isTerminal }
                            var known: [String: String] = [:]
                            var quiet = 0
                            func send(_ s: SessionRecord) async throws {
                                let object: [String: Any] = ["sessionId": s.id, "sessionName": s.name, "status": s.status.rawValue, "reason": s.statusInfo]
                                let data = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                                try await writer.write(ByteBuffer(string: "event: session_status\ndata: \(data)\n\n"))
                                quiet = 0
                            }
                            while true {
                                let (items, _) = try await store.run { try $0.listSessions(accessKey: accessKey, domain: nil, statuses: live, limit: 500) }
                                for s in items.map(\.session) {
                                    let state = "\(s.status.rawValue)\u{1}\(s.statusInfo)"
                                    guard known[s.id] != state else { continue }
                                    known[s.id] = state
                                    try await send(s)
                                }
                                let current = Set(items.map(\.session.id))
                                for id in known.keys where !current.contains(id) {
                                    known[id] = nil
                                    if let ended = try await store.run({ try $0.session(id: id) }) { try await send(ended) }
                                }
                                quiet += 1
                                if quiet >= 30 {
                                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                                    quiet = 0
                                }
                                try await Task.sleep(for: .milliseconds(500))
                            }
                        })
    }

    /// Where a reconnecting client left off: `Last-Event-ID` "H-E" (status changes, reports);
    /// (0, 0) when absent or malformed (everything again).
    static func eventPosition(_ lastEventID: String?) -> (Int, Int) {
        let parts = (lastEventID ?? "").split(separator: "-").map { Int($0) }
        guard parts.count == 2, let h = parts[0], let e = parts[1], (0...1_000_000).contains(h), (0...1_000_000).contains(e) else { return (0, 0) }
        return (h, e)
    }

    static func eventNames(_ status: SessionStatus, type: String, exitCode: Int64?) -> [String] {
        switch status {
        case .pending: ["session_enqueued"]
        case .scheduled: ["session_scheduled"]
        case .preparing: ["kernel_preparing"]
        case .pulling: ["kernel_pulling"]
        case .creating: ["kernel_creating"]
        case .running: ["kernel_started", "session_started"]
        case .restarting: ["kernel_restarting"]
        case .terminating: ["session_terminating"]
        case .terminated: ["session_terminated"] + (type == "batch" ? [exitCode == 0 ? "session_success" : "session_failure"] : [])
        case .cancelled: ["session_cancelled"]
        case .error: ["session_failure"]
        }
    }

    /// An event's own JSON with the session's id and name added, as the client expects of every event.
    static func withSession(_ data: String, current: SessionRecord) -> String {
        var object = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
        object["sessionId"] = current.id
        object["sessionName"] = current.name
        object["ownerAccessKey"] = current.accessKey
        return eventJSON(object)
    }

    /// The JSON payload of an event (always valid JSON: the client json.loads every one).
    static func eventData(_ s: SessionRecord, status: SessionStatus, exitCode: Int64?) -> String {
        var object: [String: Any] = ["sessionId": s.id, "sessionName": s.name, "ownerAccessKey": s.accessKey,
                                     "reason": status.isTerminal ? s.statusInfo : "", "exitCode": NSNull()]
        if status.isTerminal, let exitCode { object["exitCode"] = exitCode }
        return eventJSON(object)
    }

    /// The `session_waiting` event: the scheduler's reason a pending session waits.
    static func waitingData(_ s: SessionRecord) -> String {
        eventJSON(["sessionId": s.id, "sessionName": s.name, "ownerAccessKey": s.accessKey, "reason": s.statusInfo])
    }

    /// An event payload as JSON text, keys sorted (always valid JSON: the client json.loads every one).
    static func eventJSON(_ object: [String: Any]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// An image's Backend.AI labels as an agent holding it, or else the last scan of its
    /// registry, reports them; nil when neither knows the image (a registry image not yet
    /// scanned: its minimums are checked once it is).
    func knownImageLabels(_ image: String) async throws -> [String: String]? {
        let (agents, scanned) = try await store.run { (try $0.agents(status: .alive), try $0.registryImages()) }
        for agent in agents {
            guard let reports = try? JSONDecoder().decode([ImageReport].self, from: Data(agent.images.utf8)) else { continue }
            if let report = reports.first(where: { GQLResolver.sameImage(image, name: $0.name, tag: $0.tag) }) { return report.labels ?? [:] }
        }
        return scanned.first { $0.reference == image }?.labels
    }

    /// The minimums `ai.backend.resource.min.SLOT` labels set (amounts as the API takes them:
    /// "1", "0.5", "64m", "1g"); unreadable ones are ignored.
    static func resourceMinimums(_ labels: [String: String]) -> [(slot: String, minimum: Decimal)] {
        labels.compactMap { key, value in
            guard key.hasPrefix("ai.backend.resource.min."), let amount = ResourceSlots.parseAmount(value) else { return nil }
            return (String(key.dropFirst("ai.backend.resource.min.".count)), amount)
        }.sorted { $0.slot < $1.slot }
    }

    /// A session by name or id: the caller's own; for a domain admin, any in the domain; for
    /// a superadmin, any.
    func resolve(_ nameOrID: String, caller: Caller) async throws -> SessionRecord {
        let accessKey = caller.isAdmin ? nil : caller.accessKey
        let domain = caller.isAdmin && caller.role != .superadmin ? caller.domain : nil
        let found = try await store.run { try $0.findSession(nameOrID, accessKey: accessKey, domain: domain) }
        guard let found else { throw APIError.notFound("No such session.", "no session '\(nameOrID)' of \(caller.accessKey)") }
        return found
    }

    func createSession(_ body: CreateSession, caller: Caller) async throws -> Response {
        try await refuseWhileFrozen(caller)
        let name = body.name ?? "pysdk-\(UUID().uuidString.lowercased().prefix(10))"
        guard Self.validName(name) else {
            throw APIError.invalidParams("the session name must be 4-64 characters of letters, digits, '_', '.' or '-', starting and ending with a letter, digit or '_'")
        }
        let type = body.type ?? "interactive"
        guard type == "interactive" || type == "batch" else { throw APIError.invalidParams("type must be 'interactive' or 'batch'") }
        if type == "batch", (body.startupCommand ?? "").isEmpty {
            throw APIError.invalidParams("a batch session needs a startupCommand")
        }
        // Bounded (ten years): the scheduler turns it into microseconds, where a larger one would overflow.
        if let limit = body.batchTimeout, !(1...315_360_000).contains(limit) {
            throw APIError.invalidParams("batchTimeout must be a number of seconds from 1 to 315360000 (ten years; the most the session may run), not \(limit)")
        }
        let priority = body.priority ?? Self.defaultPriority
        guard (0...100).contains(priority) else { throw APIError.invalidParams("priority must be 0-100 (higher is scheduled first; default \(Self.defaultPriority)), not \(priority)") }
        var requested = ResourceSlots(["cpu": 1, "mem": Decimal(512 << 20)])
        for (slot, text) in body.config?.resources ?? [:] {
            guard let amount = ResourceSlots.parseAmount(slot == "mem" && Int64(text) != nil ? text + "m" : text) else {
                throw APIError.invalidParams("resource '\(slot)' has an invalid amount '\(text)': write \(ResourceSlots.acceptedAmountForms)")
            }
            requested[slot] = amount
        }
        // An alias names an image ("python" -> "hangar/python:3.11-bookworm").
        let image = try await store.run { try $0.imageAliases()[body.image] } ?? body.image
        // The image's resource minimums (`ai.backend.resource.min.SLOT` labels): a slot left
        // to the default is raised to the minimum; one asked for below it is refused.
        if let labels = try await knownImageLabels(image) {
            let explicit = Set((body.config?.resources ?? [:]).keys)
            for (slot, minimum) in Self.resourceMinimums(labels) where requested[slot] < minimum {
                guard !explicit.contains(slot) else {
                    let bytes = slot == "mem" || slot.hasSuffix(".mem")
                    throw APIError.invalidParams("image \(image) needs at least \(ResourceSlots.human(minimum, bytes: bytes)) of \(slot) (its label ai.backend.resource.min.\(slot)); the session asks for \(ResourceSlots.human(requested[slot], bytes: bytes)) — ask for more")
                }
                requested[slot] = minimum
            }
            // An accelerator image (a minimum of a device slot) runs only where that device is:
            // said now, naming the label, rather than by a cancelled session.
            let placement = body.config?.scalingGroup ?? StateStore.defaultResourceGroup
            let devices = Self.resourceMinimums(labels).map(\.slot).filter { $0 != "cpu" && $0 != "mem" }
            if !devices.isEmpty {
                let offered = try await store.run { store in
                    Set(try store.agents(resourceGroup: placement, status: .alive).flatMap { $0.capacity.amounts.filter { $0.value > 0 }.keys })
                }
                if let missing = devices.first(where: { !offered.contains($0) }) {
                    throw APIError.invalidParams("image \(image) runs only where '\(missing)' is (its label ai.backend.resource.min.\(missing)\(labels["ai.backend.accelerators"].map { "; accelerators \($0)" } ?? "")), and no alive agent in resource group '\(placement)' offers it — choose an image without that accelerator or a resource group that has it")
                }
            }
        }
        // Reuse a live session of the same name, as the reference manager does.
        if let existing = try await store.run({ try $0.findSession(name, accessKey: caller.accessKey) }), !existing.status.isTerminal {
            guard body.reuseIfExists ?? true, existing.image == image else {
                var error = APIError(.badRequest, "session-already-exists", "The session already exists.", "session '\(name)' exists (\(existing.id))")
                error.data = ["existingSessionId": existing.id]
                throw error
            }
            return try io.response(CreateReply(sessionId: existing.id, sessionName: name, status: existing.status.rawValue, servicePorts: [], created: false),
                                   status: .created, snakeCase: false)
        }
        let slots = requested
        let dependencyRefs = body.dependencies ?? []
        guard dependencyRefs.count <= 32 else { throw APIError.invalidParams("a session may depend on at most 32 sessions, got \(dependencyRefs.count)") }
        var resolved: [String] = []
        for ref in dependencyRefs { resolved.append(try await resolve(ref, caller: caller).id) }
        let dependsOn = resolved
        let mounts = try await resolveMounts(body.config?.mounts ?? [], map: body.config?.mountMap ?? [:], caller: caller)
        let userID = caller.identity.keypair.userID
        let projectName = body.group ?? StateStore.defaultProject
        let domain = caller.domain
        let group = body.config?.scalingGroup ?? StateStore.defaultResourceGroup
        let spec = try await store.run { store -> SessionSpec in
            guard let project = try store.projects(domain: domain).first(where: { $0.name == projectName }) else {
                throw StoreError(.notFound, "no project named '\(projectName)' in domain '\(domain)'")
            }
            guard project.isActive else {
                throw StoreError(.invalid, "project '\(projectName)' is inactive; an admin reactivates it with `admin group update ID --is-active true`")
            }
            guard try store.resourceGroups(forUser: userID).contains(group) else {
                throw StoreError(.invalid, "resource group '\(group)' is not allowed for your projects")
            }
            let clusterSize = body.clusterSize ?? 1
            guard let clusterMode = ClusterMode(rawValue: (body.clusterMode ?? ClusterMode.singleNode.rawValue).lowercased()) else {
                throw StoreError(.invalid, "clusterMode '\(body.clusterMode ?? "")' is not one Hangar knows: use 'single-node' (every kernel on one agent) or 'multi-node' (kernels spread over agents)")
            }
            let policy = try store.resourcePolicy(scope: .keypair, name: caller.identity.keypair.resourcePolicy)
            if let policy, Int64(clusterSize) > policy.maxContainersPerSession {
                throw StoreError(.invalid, "a cluster of \(clusterSize) containers is more than your policy '\(policy.name)' allows (max_containers_per_session \(policy.maxContainersPerSession))")
            }
            // Superadmins set any priority (they are who moves urgent work ahead); everyone
            // else up to their keypair policy's max_session_priority.
            if let policy, caller.role != .superadmin, Int64(priority) > policy.maxSessionPriority {
                throw StoreError(.invalid, "priority \(priority) is above what your policy '\(policy.name)' allows (max_session_priority \(policy.maxSessionPriority)); ask for \(policy.maxSessionPriority) or less")
            }
            let preopen = body.config?.preopenPorts ?? []
            guard preopen.count <= 32, preopen.allSatisfy({ (1025...65535).contains($0) }), Set(preopen).count == preopen.count else {
                throw StoreError(.invalid, "config.preopen_ports must be at most 32 distinct ports in 1025-65535, got \(preopen)")
            }
            var spec = SessionSpec(name: name, accessKey: caller.accessKey, userID: userID, domain: domain, projectID: project.id, resourceGroup: group,
                                   type: type, image: image, architecture: body.architecture ?? "", requested: slots,
                                   clusterSize: body.clusterSize ?? 1, startupCommand: body.startupCommand, priority: priority, mounts: mounts)
            spec.preopenPorts = preopen
            spec.dependsOn = dependsOn
            spec.preemptible = body.preemptible
            spec.timeLimit = body.batchTimeout.map(Int64.init)
            spec.clusterMode = clusterMode
            spec.environment = try Self.checkedEnvironment(body.config?.environ ?? [:])
            return spec
        }
        let created = try await store.run { try $0.createSession(spec) }
        Task { [lifecycle] in await lifecycle.wake() }
        var status = created.status
        if !(body.enqueueOnly ?? false) {
            let limit = Double(body.maxWaitSeconds ?? 0) > 0 ? Double(body.maxWaitSeconds!) : 600
            let deadline = Date().addingTimeInterval(limit)
            while Date() < deadline {
                status = try await store.run { try $0.session(id: created.id)?.status } ?? .error
                if status == .running || status.isTerminal { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            if status != .running && !status.isTerminal { status = .pending }
        }
        // A session that started and already ended between two looks (a batch job of a few
        // milliseconds) did start: the reply says RUNNING, as Backend.AI's does once the kernel
        // started, and the events and session info tell how it ended.
        if status.isTerminal, try await store.run({ try $0.statusHistory(session: created.id) }).contains(where: { $0.0 == .running }) {
            status = .running
        }
        let reported = status == .pending && !(body.enqueueOnly ?? false) ? "TIMEOUT" : status.rawValue
        let apps = status == .running ? try await store.run { try $0.servicePorts(session: created.id) }.map { AppPort(name: $0.name, protocol: $0.protocol, ports: $0.containerPorts) } : []
        return try io.response(CreateReply(sessionId: created.id, sessionName: name, status: reported, servicePorts: apps, created: true),
                               status: .created, snakeCase: false)
    }
}
