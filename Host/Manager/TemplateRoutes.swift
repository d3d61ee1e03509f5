import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import StateStore
import Yams

/// Session templates (Backend.AI's task templates) as `session-template` and
/// `session create-from-template` use them. A template is YAML or JSON:
///
///     kind: task_template
///     metadata: {name: py-small}
///     spec:
///       session_type: interactive        # or batch
///       kernel: {image: python:3.11, environ: {A: "1"}, run: {startup_command: "python main.py"}}
///       resources: {cpu: 1, mem: 1g}
///       mounts: {data: /home/work/data}
///       scaling_group: default
extension ManagerAPI {
    /// Parses a template payload (one template or a list) and checks each; the normalised JSON
    /// documents with their names.
    static func parseTemplates(_ payload: String) throws -> [(name: String, json: String)] {
        // Bounded before the YAML parser sees it: size, and flow nesting (`[[[[…`), which a
        // recursive parser would follow until the stack ran out.
        guard payload.utf8.count <= 256 << 10 else { throw APIError.invalidParams("the template is larger than 256 KiB") }
        var depth = 0, deepest = 0
        for byte in payload.utf8 {
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") { depth += 1; deepest = max(deepest, depth) }
            if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") { depth = max(0, depth - 1) }
        }
        guard deepest <= 64 else { throw APIError.invalidParams("the template nests more than 64 levels of [ ] or { }") }
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: payload)
        } catch {
            throw APIError.invalidParams("the template is neither valid YAML nor JSON: \(error)")
        }
        let items: [Any] = (loaded as? [Any]) ?? [loaded as Any]
        guard !items.isEmpty, items.count <= 100 else { throw APIError.invalidParams("give 1-100 templates") }
        return try items.enumerated().map { index, item in
            let place = items.count > 1 ? "template \(index + 1): " : ""
            guard let document = jsonCompatible(item) as? [String: Any] else { throw APIError.invalidParams("\(place)a template is a mapping (kind, metadata, spec)") }
            let kind = document["kind"] as? String ?? "task_template"
            guard ["task_template", "taskTemplate"].contains(kind) else {
                throw APIError.invalidParams("\(place)kind must be task_template, not '\(kind)'")
            }
            guard let metadata = document["metadata"] as? [String: Any], let name = metadata["name"] as? String,
                  (1...128).contains(name.count) else {
                throw APIError.invalidParams("\(place)metadata.name (1-128 characters) is required")
            }
            guard let spec = document["spec"] as? [String: Any], let kernel = spec["kernel"] as? [String: Any],
                  let image = kernel["image"] as? String, !image.isEmpty else {
                throw APIError.invalidParams("\(place)spec.kernel.image is required")
            }
            if let type = (spec["session_type"] ?? spec["type"]) as? String, !["interactive", "batch"].contains(type) {
                throw APIError.invalidParams("\(place)spec.session_type must be interactive or batch, not '\(type)'")
            }
            for key in ["resources", "mounts"] where spec[key] != nil && !(spec[key] is [String: Any]) {
                throw APIError.invalidParams("\(place)spec.\(key) must be a mapping")
            }
            if let environ = kernel["environ"], !(environ is [String: Any]) { throw APIError.invalidParams("\(place)spec.kernel.environ must be a mapping") }
            let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
            return (name, String(decoding: data, as: UTF8.self))
        }
    }

    /// YAML scalars JSON has no form for (timestamps, binary) as text; everything else as is.
    static func jsonCompatible(_ value: Any) -> Any {
        switch value {
        case let map as [String: Any]: return map.mapValues(jsonCompatible)
        case let list as [Any]: return list.map(jsonCompatible)
        case let date as Date: return CivilTime.iso8601(micros: Int64(date.timeIntervalSince1970 * 1_000_000))
        case let data as Data: return data.base64EncodedString()
        case is String, is Bool, is Int, is Double, is NSNull: return value
        default: return "\(value)"
        }
    }

    /// A template the caller may read or change: their own; admins their domain's; superadmins any.
    func visibleTemplate(_ id: String, caller: Caller) async throws -> SessionTemplate {
        guard let template = try await store.run({ try $0.sessionTemplate(id: id) }),
              template.userID == caller.identity.keypair.userID || caller.role == .superadmin || (caller.isAdmin && template.domainName == caller.domain) else {
            throw APIError.notFound("No such session template.", "no session template '\(id)' of yours")
        }
        return template
    }

    /// What `create-from-template` accepts: the template, the session request's keys, and
    /// the client's `callbackURL` (Hangar calls no callbacks; the key is accepted and unused).
    static let fromTemplateKeys = ["template_id", "callbackURL"] + createKeys

    var templateRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/template/session", summary: "Store session templates (payload: YAML or JSON, one or a list)", access: .user,
                      bodyKeys: ["payload", "group_name", "domain_name", "owner_access_key"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: ["payload", "group_name", "domain_name", "owner_access_key"])
                guard let payload = body["payload"] as? String else { throw APIError.invalidParams("payload (the template text) is required") }
                let parsed = try Self.parseTemplates(payload)
                let (userID, domain) = (caller.identity.keypair.userID, caller.domain)
                let projectName = body["group_name"] as? String
                let created = try await store.run { store -> [String] in
                    let project = try projectName.flatMap { name in try store.projects(domain: domain).first { $0.name == name || $0.id == name } }
                    if let projectName, project == nil { throw StoreError(.notFound, "no project '\(projectName)' in domain '\(domain)'") }
                    return try parsed.map { name, json in
                        let id = UUID().uuidString.lowercased()
                        try store.createSessionTemplate(SessionTemplate(id: id, name: name, userID: userID, domainName: domain, projectID: project?.id,
                                                                        template: json, createdAt: Clock.nowMicros()))
                        return id
                    }
                }
                return try Self.jsonObject(created.map { ["id": $0, "user": userID] })
            },
            RouteSpec(method: .get, path: "/template/session", summary: "Your session templates (admins: {\"all\": true} lists their domain's)",
                      access: .user, bodyKeys: ["all"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let all = (try await object(request, allowed: ["all"])["all"] as? Bool ?? false) && caller.isAdmin
                let userID = caller.identity.keypair.userID
                // Rendered inside the store call: JSON values are not Sendable.
                let listing = try await store.run { store -> Data in
                    let templates = try store.sessionTemplates(userID: all ? nil : userID)
                        .filter { caller.role == .superadmin || $0.domainName == caller.domain }
                    let rows: [[String: Any]] = try templates.map { t in
                        let owner = try store.user(id: t.userID)
                        let project = try t.projectID.flatMap { try store.project(id: $0) }
                        return ["name": t.name, "id": t.id, "created_at": CivilTime.iso8601(micros: t.createdAt), "is_owner": t.userID == userID,
                                "user": t.userID, "group": t.projectID as Any, "user_email": owner?.email as Any, "group_name": project?.name as Any,
                                "domain_name": t.domainName, "type": "task",
                                "template": (try? JSONSerialization.jsonObject(with: Data(t.template.utf8))) ?? [:]]
                    }
                    return try JSONSerialization.data(withJSONObject: rows)
                }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: listing)))
            },
            RouteSpec(method: .get, path: "/template/session/:templateId", summary: "One session template (?format=yaml|json)", access: .user,
                      bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let template = try await visibleTemplate(try context.parameters.require("templateId"), caller: caller)
                let format = request.uri.queryParameters.get("format") ?? "yaml"
                let document = try JSONSerialization.jsonObject(with: Data(template.template.utf8))
                switch format {
                case "json":
                    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: template.template)))
                case "yaml":
                    let text = try Yams.dump(object: document, sortKeys: true)
                    return Response(status: .ok, headers: [.contentType: "text/yaml"], body: .init(byteBuffer: ByteBuffer(string: text)))
                default:
                    throw APIError.invalidParams("format must be yaml or json, not '\(format)'")
                }
            },
            RouteSpec(method: .put, path: "/template/session/:templateId", summary: "Replace a session template (payload: YAML or JSON)", access: .user,
                      bodyKeys: ["payload", "owner_access_key"]) { request, context in
                let caller = try await auth.authenticate(request)
                let template = try await visibleTemplate(try context.parameters.require("templateId"), caller: caller)
                let body = try await object(request, allowed: ["payload", "owner_access_key"])
                guard let payload = body["payload"] as? String else { throw APIError.invalidParams("payload (the template text) is required") }
                let parsed = try Self.parseTemplates(payload)
                guard parsed.count == 1, let replacement = parsed.first else { throw APIError.invalidParams("give exactly one template to replace one") }
                try await store.run { try $0.updateSessionTemplate(id: template.id, name: replacement.name, template: replacement.json) }
                return try Self.jsonObject([:] as [String: Any])
            },
            RouteSpec(method: .delete, path: "/template/session/:templateId", summary: "Delete a session template", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let template = try await visibleTemplate(try context.parameters.require("templateId"), caller: caller)
                try await store.run { try $0.deleteSessionTemplate(id: template.id) }
                return try Self.jsonObject([:] as [String: Any])
            },
            RouteSpec(method: .post, path: "/session/_/create-from-template", summary: "Create a session from a template; the request's fields override it",
                      access: .user, bodyKeys: Self.fromTemplateKeys) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: Self.fromTemplateKeys)
                guard let id = body["template_id"] as? String else { throw APIError.invalidParams("template_id is required") }
                let template = try await visibleTemplate(id, caller: caller)
                let merged = try Self.sessionRequest(template: template.template, overrides: body)
                let data = try JSONSerialization.data(withJSONObject: merged)
                let create: CreateSession
                do {
                    create = try JSONDecoder().decode(CreateSession.self, from: data)
                } catch {
                    throw APIError.invalidParams("the template and the request do not make a session request: \(error)")
                }
                return try await createSession(create, caller: caller)
            },
        ]
    }

    /// The session request a template makes, with the request's non-null fields on top
    /// (`config` field by field).
    static func sessionRequest(template: String, overrides: [String: Any]) throws -> [String: Any] {
        let document = (try JSONSerialization.jsonObject(with: Data(template.utf8))) as? [String: Any] ?? [:]
        let spec = document["spec"] as? [String: Any] ?? [:]
        let kernel = spec["kernel"] as? [String: Any] ?? [:]
        var request: [String: Any] = ["image": kernel["image"] as Any]
        if let type = (spec["session_type"] ?? spec["type"]) as? String { request["type"] = type }
        if let command = (kernel["run"] as? [String: Any])?["startup_command"] as? String { request["startupCommand"] = command }
        if let architecture = kernel["architecture"] as? String { request["architecture"] = architecture }
        var config: [String: Any] = [:]
        if let resources = spec["resources"] as? [String: Any] { config["resources"] = resources.mapValues { "\($0)" } }
        if let environ = kernel["environ"] as? [String: Any] { config["environ"] = environ.mapValues { "\($0)" } }
        if let mounts = spec["mounts"] as? [String: Any] {
            config["mounts"] = mounts.keys.sorted()
            config["mount_map"] = mounts.compactMapValues { $0 as? String }
        }
        if let group = spec["scaling_group"] as? String { config["scalingGroup"] = group }
        for (key, value) in overrides where !["template_id", "callbackURL", "config"].contains(key) && !(value is NSNull) { request[key] = value }
        for (key, value) in overrides["config"] as? [String: Any] ?? [:] where !(value is NSNull) {
            if let list = value as? [Any], list.isEmpty { continue }
            if let map = value as? [String: Any], map.isEmpty { continue }
            config[key] = value
        }
        if !config.isEmpty { request["config"] = config }
        return request
    }
}
