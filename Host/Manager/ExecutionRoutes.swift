import ClusterProtocol
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Identity
import StateStore

/// Code execution, uploads, interrupts, and session info and listing (§7.2–7.4 of the wire
/// notes). The WebSocket execute stream is added to the router separately (see
/// `addExecutionStream`), as it is not a plain request/response route.
extension ManagerAPI {
    static let executeKeys = ["mode", "code", "runId", "options"]

    var executionRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: "/session/:sessionName", summary: "Execute code (query, batch, continue, input); returns {result}",
                      access: .user, bodyKeys: Self.executeKeys) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let call = try await io.decode(ExecutionRequest.self, from: request, allowed: Self.executeKeys, snakeCase: false)
                struct Reply: Encodable { let result: ExecutionResult }
                return try io.response(Reply(result: try await lifecycle.execute(session, call)), snakeCase: false)
            },
            RouteSpec(method: .post, path: "/session/:sessionName/interrupt", summary: "Interrupt the running code (SIGINT)", access: .user,
                      bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                try await lifecycle.interrupt(session)
                return Response(status: .noContent)
            },
            RouteSpec(method: .post, path: "/session/:sessionName/upload", summary: "Upload files (multipart, field 'src') into /home/work",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let files = try await Self.uploadedFiles(request)
                try await lifecycle.upload(session, KernelUpload(files: files.map { .init(path: $0.filename, data: $0.content.base64EncodedString()) }))
                return Response(status: .noContent)
            },
            RouteSpec(method: .get, path: "/session/:sessionName", summary: "Session info", access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                guard let detail = try await store.run({ try $0.sessionDetail(id: session.id) }) else {
                    throw APIError.notFound("No such session.", "session '\(session.id)' vanished")
                }
                var info = Self.info(detail)
                info["servicePorts"] = Self.servicePortsJSON(try await store.run { try $0.servicePorts(session: session.id) })
                return try Self.jsonObject(info)
            },
            RouteSpec(method: .get, path: "/session", summary: "List sessions (?status=A,B&all=true for admins&limit&offset)", access: .user,
                      bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let query = request.uri.queryParameters
                var statuses: [SessionStatus] = []
                for raw in (query.get("status") ?? "").split(separator: ",") {
                    guard let status = SessionStatus(rawValue: raw.uppercased()) else {
                        throw APIError.invalidParams("unknown status '\(raw)'; one of \(SessionStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    statuses.append(status)
                }
                let all = query.get("all") == "true"
                if all && !caller.isAdmin { throw APIError.forbidden("only admins list other users' sessions (all=true)") }
                let limit = Int(query.get("limit") ?? "100") ?? 100
                let offset = Int(query.get("offset") ?? "0") ?? 0
                guard (1...1000).contains(limit), offset >= 0 else { throw APIError.invalidParams("limit must be 1-1000 and offset >= 0") }
                let accessKey = all ? nil : caller.accessKey
                let domain = all && caller.role != .superadmin ? caller.domain : nil
                let wanted = statuses
                let (items, total) = try await store.run { try $0.listSessions(accessKey: accessKey, domain: domain, statuses: wanted, limit: limit, offset: offset) }
                return try Self.jsonObject(["items": items.map(Self.info), "total_count": total])
            },
        ]
    }

    /// Backend.AI's session info keys (camelCase), plus ours.
    static func info(_ d: SessionDetail) -> [String: Any] {
        let s = d.session
        let now = Clock.nowMicros()
        let end = d.terminatedAt ?? now
        var info: [String: Any] = [
            "sessionId": s.id, "sessionName": s.name, "domainName": d.domain, "groupId": d.projectID, "userId": d.userID,
            "accessKey": s.accessKey, "image": s.image, "lang": s.image, "architecture": s.architecture, "type": s.type.uppercased(),
            "resourceGroup": s.resourceGroup, "scalingGroup": s.resourceGroup, "status": s.status.rawValue, "statusInfo": s.statusInfo,
            "requestedSlots": s.requested.stringAmounts, "occupiedSlots": d.occupied.stringAmounts, "clusterSize": s.clusterSize, "priority": s.priority, "preemptible": s.preemptible, "batchTimeout": s.timeLimit.map { $0 as Any } ?? NSNull(),
            "creationTime": CivilTime.iso8601(micros: s.createdAt), "age": max(0, (end - s.createdAt) / 1_000_000),
            "statusChanged": CivilTime.iso8601(micros: d.statusChanged), "numQueriesExecuted": d.queries,
            "terminationTime": d.terminatedAt.map { CivilTime.iso8601(micros: $0) as Any } ?? NSNull(),
            "exitCode": d.exitCode.map { $0 as Any } ?? NSNull(),
            "startupCommand": d.startupCommand.map { $0 as Any } ?? NSNull(),
            "lastActivity": d.lastActivity > 0 ? CivilTime.iso8601(micros: d.lastActivity) : NSNull(),
        ]
        if s.type == "batch" { info["batchExitCode"] = info["exitCode"] }
        return info
    }

    static func jsonObject(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Backend.AI's limits on session uploads.
    static let maxUploadFiles = 20
    static let maxUploadFileBytes = 1 << 20

    static func uploadedFiles(_ request: Request) async throws -> [MultipartForm.Part] {
        guard let type = request.headers[.contentType], let boundary = MultipartForm.boundary(type) else {
            throw APIError.invalidParams("send the files as multipart/form-data (one part per file, field 'src', with a filename)")
        }
        var request = request
        let limit = maxUploadFiles * (maxUploadFileBytes + 4096)
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError.tooLarge(limit)
        }
        let parts: [MultipartForm.Part]
        do throws(MultipartForm.ParseError) {
            parts = try MultipartForm.parse(Array(body.readableBytesView), boundary: boundary)
        } catch {
            throw APIError.invalidParams("the multipart body is malformed: \(error.message)")
        }
        let files = parts.filter { !$0.filename.isEmpty }
        guard !files.isEmpty else { throw APIError.invalidParams("no file parts (each needs a filename) in the upload") }
        guard files.count <= maxUploadFiles else { throw APIError.invalidParams("at most \(maxUploadFiles) files per upload, got \(files.count)") }
        if let big = files.first(where: { $0.content.count >= maxUploadFileBytes }) {
            throw APIError(.contentTooLarge, "request-too-large", "A file is too large.",
                           "'\(big.filename)' has \(big.content.count) bytes; each uploaded file must be under \(maxUploadFileBytes) bytes (use a vfolder for larger data)")
        }
        return files
    }
}

extension ManagerServer {
    /// `GET /stream/session/{id}/execute`: the official client's `run` command. The first
    /// client frame is `{"code", "mode", "options"}`; every server frame is a `result` object;
    /// `waiting-input` is answered by a plain text frame; `finished` ends the stream.
    func addExecutionStream(to router: Router<ManagerRequestContext>) {
        let api = self.api
        router.ws("/stream/session/:sessionId/execute", shouldUpgrade: { request, context in
            let caller = try await api.auth.authenticate(request)
            let session = try await api.resolve(try context.parameters.require("sessionId"), caller: caller)
            _ = try await api.lifecycle.mainKernel(session)
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            let caller = try await api.auth.authenticate(context.request)
            let session = try await api.resolve(try context.requestContext.parameters.require("sessionId"), caller: caller)
            var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            func send(_ object: [String: Any]) async throws {
                let data = try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
                try await outbound.write(.text(String(decoding: data, as: UTF8.self)))
            }
            func nextText() async throws -> String? {
                while let message = try await messages.next() {
                    switch message {
                    case .text(let text): return text
                    case .binary(let buffer): return String(buffer: buffer)
                    }
                }
                return nil
            }
            func fail(_ error: APIError) async throws {
                try await send(["status": "error", "msg": error.message ?? error.title])
                try await outbound.close(.normalClosure, reason: nil)
            }
            // Resolved once: every call of the stream goes to the same kernel.
            let target: (kernel: String, address: String)
            do {
                target = try await api.lifecycle.mainKernel(session)
            } catch let error as APIError {
                return try await fail(error)
            }
            guard let first = try await nextText() else { return }
            guard let object = try? JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any] else {
                try await send(["status": "error", "msg": "the first frame must be a JSON object {\"code\", \"mode\", \"options\"}"])
                try await outbound.close(.unacceptableData, reason: "bad first frame")
                return
            }
            let mode = object["mode"] as? String ?? "query"
            let options = (object["options"] as? [String: Any]).map { o in
                BatchOptions(clean: o["clean"] as? String, build: o["build"] as? String, exec: o["exec"] as? String)
            }
            var call = ExecutionRequest(mode: mode, code: object["code"] as? String ?? "", options: options)
            while true {
                let result: ExecutionResult
                do {
                    result = try await api.lifecycle.execute(session, call, on: target)
                } catch let error as APIError {
                    return try await fail(error)
                }
                // Empty keep-alive answers are not worth a frame.
                if !(result.status == "continued" && result.console.isEmpty) {
                    try await send(Self.frame(result))
                }
                switch result.status {
                case "finished":
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                case "waiting-input":
                    guard let line = try await nextText() else {
                        try? await api.lifecycle.interrupt(session)
                        return
                    }
                    call = ExecutionRequest(mode: "input", code: line, runId: result.runId)
                default:
                    call = ExecutionRequest(mode: "continue", runId: result.runId)
                }
            }
        })
    }

    /// A result as the client's stream loop reads it: console always a list, options an object
    /// when input is awaited.
    static func frame(_ r: ExecutionResult) -> [String: Any] {
        var options: Any = NSNull()
        if let o = r.options { options = ["is_password": o.isPassword, "prompt": o.prompt] } else if r.status == "finished" { options = [String: Any]() }
        return ["status": r.status, "runId": r.runId, "console": r.console, "exitCode": r.exitCode.map { $0 as Any } ?? NSNull(),
                "options": options, "files": r.status == "finished" ? [Any]() : NSNull()]
    }
}
