import AsyncHTTPClient
import ClusterProtocol
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Identity
import Logging
import NIOCore
import StateStore
import StreamTunnel
import Synchronization

/// Interactive access to sessions, Backend.AI 23.09's way (no separate app proxy): the apps a
/// session offers, app streams (one WebSocket per TCP connection to a service inside the
/// session, relayed through the session's agent), the SSH keypair, and the file listing and
/// download `backend.ai ssh` relies on.
extension ManagerAPI {
    var appStreamRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/stream/session/:sessionId/apps",
                      summary: "The apps (service ports) a session offers: name, protocol, ports, url_template, allowed_arguments, allowed_envs",
                      access: .user, bodyKeys: nil) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionId"), caller: caller)
                let ports = try await store.run { try $0.servicePorts(session: session.id) }
                return try Self.jsonObject(ports.map(Self.appInfo))
            },
            RouteSpec(method: .get, path: "/auth/ssh-keypair", summary: "The caller's SSH public key (made on first use)", access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let keys = try await lifecycle.sshKeypair(accessKey: caller.accessKey)
                return try Self.jsonObject(["ssh_public_key": keys.publicKey])
            },
            RouteSpec(method: .post, path: "/auth/ssh-keypair", summary: "Make a new SSH keypair for the caller (new sessions get it)", access: .user, bodyKeys: []) { request, _ in
                let caller = try await auth.authenticate(request)
                let made = SSHKeys.generateEd25519(comment: "work@hangar")
                try await store.run { try $0.setSSHKeypair(accessKey: caller.accessKey, KernelSSHKeypair(publicKey: made.publicKey, privateKey: made.privateKey)) }
                return try Self.jsonObject(["ssh_public_key": made.publicKey, "ssh_private_key": made.privateKey])
            },
            RouteSpec(method: .patch, path: "/auth/ssh-keypair", summary: "Use your own SSH keypair (pubkey, privkey) in new sessions",
                      access: .user, bodyKeys: ["pubkey", "privkey"]) { request, _ in
                let caller = try await auth.authenticate(request)
                let body = try await object(request, allowed: ["pubkey", "privkey"])
                guard let pub = (body["pubkey"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines), SSHKeys.isPublicKey(pub) else {
                    throw APIError.invalidParams("pubkey must be an OpenSSH public key line (e.g. the contents of ~/.ssh/id_ed25519.pub)")
                }
                guard let priv = body["privkey"] as? String, priv.contains("PRIVATE KEY-----") else {
                    throw APIError.invalidParams("privkey must be the matching private key (PEM or OpenSSH format); it is written to \(KernelPaths.workDirectory)/id_container")
                }
                try await store.run { try $0.setSSHKeypair(accessKey: caller.accessKey, KernelSSHKeypair(publicKey: pub, privateKey: priv)) }
                return try Self.jsonObject(["ssh_public_key": pub])
            },
            RouteSpec(method: .get, path: "/session/:sessionName/files", summary: "List a directory of the session's home (JSON body {\"path\"})",
                      access: .user, bodyKeys: ["path"]) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let body = try await object(request, allowed: ["path"])
                let target = try await lifecycle.mainKernel(session)
                let call = KernelFilesRequest(path: body["path"] as? String ?? KernelPaths.workDirectory)
                let (status, text) = try await lifecycle.callAgent(target.address, .POST, AgentAPI.listFilesPath(target.kernel), body: try JSONEncoder().encode(call))
                guard status == 200, let list = try? JSONDecoder().decode(KernelFileList.self, from: Data(text.utf8)) else {
                    throw SessionLifecycle.agentFailure(status, text, agent: target.address)
                }
                let files = list.files.map { ["filename": $0.filename, "size": $0.size, "mode": $0.mode, "ctime": $0.ctime, "atime": $0.atime, "mtime": $0.mtime] as [String: Any] }
                let filesJSON = String(decoding: try JSONSerialization.data(withJSONObject: files), as: UTF8.self)
                return try Self.jsonObject(["files": filesJSON, "errors": list.errors, "abspath": list.abspath])
            },
            RouteSpec(method: .get, path: "/session/:sessionName/download",
                      summary: "Download files of the session's home (JSON body {\"files\": [...]}): multipart/mixed, one tar archive per file",
                      access: .user, bodyKeys: ["files"]) { request, context in
                let caller = try await auth.authenticate(request)
                let session = try await resolve(try context.parameters.require("sessionName"), caller: caller)
                let body = try await object(request, allowed: ["files"])
                guard let files = body["files"] as? [String], !files.isEmpty, files.count <= 100 else {
                    throw APIError.invalidParams("files must list 1-100 paths inside the session (relative to \(KernelPaths.workDirectory), or absolute under it)")
                }
                let target = try await lifecycle.mainKernel(session)
                var call = HTTPClientRequest(url: target.address.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + AgentAPI.downloadPath(target.kernel))
                call.method = .POST
                call.headers.add(name: "Authorization", value: "\(AgentAPI.authorizationScheme) \(lifecycle.clusterSecret)")
                call.headers.add(name: "Content-Type", value: "application/json")
                call.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(KernelFilesRequest(paths: files))))
                let reply = try await HTTPClient.shared.execute(call, timeout: .minutes(10))
                let data = try await reply.body.collect(upTo: Self.maxDownloadBytes + (1 << 20))
                guard reply.status == .ok else {
                    throw SessionLifecycle.agentFailure(Int(reply.status.code), String(buffer: data), agent: target.address)
                }
                try await store.run { try $0.noteActivity(session: session.id, query: false) }
                return Response(status: .ok, headers: [.contentType: reply.headers.first(name: "Content-Type") ?? "multipart/mixed"],
                                body: .init(byteBuffer: data))
            },
        ]
    }

    /// Downloads through the API are for keys and small results; vfolders carry big data.
    static let maxDownloadBytes = 256 << 20

    /// One app as `GET /stream/session/{name}/apps` lists it (Backend.AI's keys).
    static func appInfo(_ port: ServicePort) -> [String: Any] {
        var info: [String: Any] = ["name": port.name, "protocol": port.protocol, "ports": port.containerPorts]
        if let template = port.urlTemplate { info["url_template"] = template }
        if let arguments = port.allowedArguments { info["allowed_arguments"] = arguments }
        if let envs = port.allowedEnvs { info["allowed_envs"] = envs }
        return info
    }

    /// `service_ports` as Backend.AI reports them (GraphQL `compute_session`, session info).
    static func servicePortsJSON(_ ports: [ServicePort]) -> [[String: Any]] {
        ports.map { ["name": $0.name, "protocol": $0.protocol, "container_ports": $0.containerPorts, "host_ports": $0.containerPorts.map { _ in NSNull() },
                     "is_inference": false] }
    }

    /// What an app stream asks for, checked before the upgrade so mistakes are plain HTTP
    /// errors: the session (the caller's own, or any for an admin), RUNNING, the app, and the
    /// arguments and envs it allows.
    func appStreamTarget(_ request: Request, sessionName: String) async throws -> (session: SessionRecord, kernel: String, address: String, start: ServiceStartRequest) {
        let caller = try await auth.authenticate(request)
        let session = try await resolve(sessionName, caller: caller)
        let query = request.uri.queryParameters
        guard let app = query.get("app"), !app.isEmpty else { throw APIError.invalidParams("?app= names the app (GET /stream/session/NAME/apps lists them)") }
        let target = try await lifecycle.mainKernel(session)
        let ports = try await store.run { try $0.servicePorts(session: session.id) }
        guard let port = ports.first(where: { $0.name == app }) else {
            throw APIError(.notFound, "app-not-found", "No such app.",
                           "session '\(session.name)' has no app '\(app)'; it has: \(ports.map(\.name).joined(separator: ", "))")
        }
        var arguments: [String: ServiceArgument]?
        if let text = query.get("arguments"), !text.isEmpty {
            do {
                arguments = try JSONDecoder().decode([String: ServiceArgument].self, from: Data(text.utf8))
            } catch {
                throw APIError.invalidParams("arguments must be a JSON object of option → null, string or list of strings")
            }
            let allowed = Set(port.allowedArguments ?? [])
            if let bad = arguments?.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw APIError.invalidParams("the argument '\(bad)' is not allowed for \(app) (allowed: \(allowed.sorted().joined(separator: ", ").isEmpty ? "none" : allowed.sorted().joined(separator: ", ")))")
            }
        }
        var envs: [String: String]?
        if let text = query.get("envs"), !text.isEmpty {
            guard let object = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)) else {
                throw APIError.invalidParams("envs must be a JSON object of name → string")
            }
            let allowed = Set(port.allowedEnvs ?? [])
            if let bad = object.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw APIError.invalidParams("the environment variable '\(bad)' is not allowed for \(app) (allowed: \(allowed.sorted().joined(separator: ", ").isEmpty ? "none" : allowed.sorted().joined(separator: ", ")))")
            }
            envs = object
        }
        return (session, target.kernel, target.address, ServiceStartRequest(name: app, arguments: arguments, envs: envs))
    }

    /// Starts the app (unless it runs) on the session's agent: the port to tunnel to.
    func startApp(address: String, kernel: String, _ start: ServiceStartRequest) async throws -> Int {
        let (status, text) = try await lifecycle.callAgent(address, .POST, AgentAPI.serviceStartPath(kernel), body: try JSONEncoder().encode(start))
        guard status == 200, let reply = try? JSONDecoder().decode(ServiceStartReply.self, from: Data(text.utf8)) else {
            throw AppStreamFailure(message: SessionLifecycle.agentReason(text))
        }
        return reply.port
    }
}

/// A service that could not be started or reached; its message goes into the close frame.
struct AppStreamFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension ManagerServer {
    /// `GET /stream/session/{name}/tcpproxy?app=NAME[&arguments=JSON][&envs=JSON]` (and
    /// `/httpproxy`, the same): starts the app, then relays the bytes of one TCP connection as
    /// binary frames, through the session's agent. Close codes: 1013 the app could not be
    /// started or reached, 1011 an error on the way, 1001 the app closed the connection.
    func addAppStreams(to router: Router<ManagerRequestContext>) {
        let api = self.api
        let logger = self.logger
        for kind in ["tcpproxy", "httpproxy"] {
            router.ws(RouterPath("/stream/session/:sessionId/\(kind)"), shouldUpgrade: { request, context in
                _ = try await api.appStreamTarget(request, sessionName: try context.parameters.require("sessionId"))
                return .upgrade([:])
            }, onUpgrade: { inbound, outbound, context in
                let target: (session: SessionRecord, kernel: String, address: String, start: ServiceStartRequest)
                let port: Int
                do {
                    target = try await api.appStreamTarget(context.request, sessionName: try context.requestContext.parameters.require("sessionId"))
                    port = try await api.startApp(address: target.address, kernel: target.kernel, target.start)
                } catch {
                    let message = (error as? APIError)?.message ?? "\(error)"
                    try? await outbound.close(.init(codeNumber: Int(TunnelClose.refused)), reason: Self.closeReason(message))
                    return
                }
                try? await api.store.run { try $0.noteActivity(session: target.session.id, query: false) }
                await Self.relay(inbound, outbound, toAgent: target.address, path: AgentAPI.tunnelPath(target.kernel) + "?port=\(port)",
                                 session: target.session.id, api: api, logger: logger)
            })
        }
    }

    /// Relays a client's stream to the agent's stream at `path`, frame by frame (text stays
    /// text), until either side closes; the agent's close code is passed on. Traffic resets
    /// the session's idle clock. The agent hop uses `ByteStreamWebSocket`, which masks a word
    /// at a time (HummingbirdWSClient's byte loop was the stream's main cost).
    static func relay(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, toAgent address: String, path: String,
                      session sessionID: String, api: ManagerAPI, logger: Logger) async {
        let url = address.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
            .trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path
        var headers = HTTPFields()
        headers[.authorization] = "\(AgentAPI.authorizationScheme) \(api.lifecycle.clusterSecret)"
        let activity = ActivityClock()
        @Sendable func noteActivity() async {
            if activity.due() { try? await api.store.run { try $0.noteActivity(session: sessionID, query: false) } }
        }
        do {
            let closed = try await ByteStreamWebSocket.connect(url: url, headers: headers) { agentInbound, agentOutbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await frame in inbound {
                            if frame.opcode == .text { try await agentOutbound.write(text: String(buffer: frame.data)) } else { try await agentOutbound.write(binary: frame.data) }
                            await noteActivity()
                        }
                        // The client is gone: close the agent's side too, so its reader ends
                        // now rather than when the agent next sends (an idle terminal never does).
                        try? await agentOutbound.close(code: 1000)
                    }
                    group.addTask {
                        for try await frame in agentInbound {
                            if frame.opcode == .text { try await outbound.write(.text(String(buffer: frame.data))) } else { try await outbound.write(.binary(frame.data)) }
                            await noteActivity()
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
            let code = closed.map(\.code) ?? Int(TunnelClose.upstreamClosed)
            try? await outbound.close(.init(codeNumber: code == 1005 ? 1000 : code), reason: closed?.reason.map(Self.closeReason))
        } catch {
            try? await outbound.close(.init(codeNumber: Int(TunnelClose.error)), reason: Self.closeReason("the session's agent: \(error)"))
        }
    }

    /// `GET /stream/session/{name}/pty`: the session's terminal in Backend.AI's JSON messages
    /// (`stdin` base64, `resize` rows/cols, `ping`, `restart`; `out` base64 back).
    func addTerminalStream(to router: Router<ManagerRequestContext>) {
        let api = self.api
        let logger = self.logger
        router.ws("/stream/session/:sessionId/pty", shouldUpgrade: { request, context in
            let caller = try await api.auth.authenticate(request)
            let session = try await api.resolve(try context.parameters.require("sessionId"), caller: caller)
            _ = try await api.lifecycle.mainKernel(session)
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            let target: (session: SessionRecord, kernel: String, address: String)
            do {
                let caller = try await api.auth.authenticate(context.request)
                let session = try await api.resolve(try context.requestContext.parameters.require("sessionId"), caller: caller)
                let kernel = try await api.lifecycle.mainKernel(session)
                target = (session, kernel.kernel, kernel.address)
            } catch {
                try? await outbound.close(.init(codeNumber: Int(TunnelClose.refused)), reason: Self.closeReason((error as? APIError)?.message ?? "\(error)"))
                return
            }
            await Self.relay(inbound, outbound, toAgent: target.address, path: AgentAPI.ptyPath(target.kernel), session: target.session.id, api: api, logger: logger)
        })
    }

    /// Close reasons must fit a control frame (123 bytes).
    static func closeReason(_ text: String) -> String {
        var out = ""
        for ch in text where out.utf8.count + String(ch).utf8.count <= 120 { out.append(ch) }
        return out
    }
}

/// Says when a stream's traffic should reset the session's idle clock again: at most every
/// 10 s, so a busy stream does not write to the database per frame.
final class ActivityClock: Sendable {
    private let last = Mutex<ContinuousClock.Instant>(.now)

    func due() -> Bool {
        last.withLock { last in
            guard ContinuousClock.now - last > .seconds(10) else { return false }
            last = .now
            return true
        }
    }
}
