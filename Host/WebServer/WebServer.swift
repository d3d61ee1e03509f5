import AsyncHTTPClient
import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import HummingbirdWSClient
import Identity
import Logging
import NIOCore
import NIOHTTP1

/// The request context of the webserver's routes: the peer's address (for failed-login
/// counting) and the WebSocket upgrade of `/func/stream/*`.
public struct WebServerRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<WebServerRequestContext>
    public let remoteAddress: SocketAddress?
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }
}

extension HTTPField.Name {
    static let backendAISessionID = Self("X-BackendAI-SessionID")!
    static let secFetchSite = Self("Sec-Fetch-Site")!
    static let contentSecurityPolicy = Self("Content-Security-Policy")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// The webserver role, wire-compatible with Backend.AI 23.09's: it serves the web UI, logs
/// people in (`/server/login`, `/server/login-check`, `/server/logout`), and forwards
/// `/func/{path}` to the manager signed with the logged-in user's keypair, WebSockets under
/// `/func/stream/` included. Login sessions live in the manager's database; the browser holds
/// only an opaque id in an HttpOnly, SameSite=Strict cookie, and never the secret key.
public struct WebServer: Sendable {
    public let config: WebServerConfig
    let logger: Logger
    let link: ManagerLink
    let cache: SessionCache
    let assets: UIAssets
    let client: HTTPClient
    /// The manager's `Host` as requests to it carry it (part of every signature).
    let managerHost: String

    /// The login session cookie's name.
    public static let cookieName = "hangar_session"
    /// What the UI may load and talk to: only this server. No inline script, no framing.
    public static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    /// Used when a forwarded request names no API version.
    static let defaultAPIVersion = "v7.20230615"

    /// One client for the process, never shut down (so no path can leak one), without a read
    /// timeout: a blocking session create or an event stream may be quiet for minutes.
    static let managerClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: nil)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(config: WebServerConfig, logger: Logger = Logger(label: "hangar.webserver")) {
        self.config = config
        self.logger = logger
        client = Self.managerClient
        let base = config.managerURL.hasSuffix("/") ? String(config.managerURL.dropLast()) : config.managerURL
        link = ManagerLink(baseURL: base, clusterSecret: config.clusterSecret, client: client)
        cache = SessionCache(ttl: config.sessionCacheTTL)
        assets = UIAssets(directory: config.uiDirectory, xtermDirectory: config.xtermDirectory)
        let url = URL(string: base)
        managerHost = url.map { u in u.port.map { "\(u.host ?? ""):\($0)" } ?? (u.host ?? "") } ?? ""
    }

    // MARK: - Routes

    /// Every HTTP route (the WebSocket relay has its own router: `makeWebSocketRouter`).
    public func makeRouter() -> Router<WebServerRequestContext> {
        let router = Router(context: WebServerRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        router.post("/server/login") { request, context in try await login(request, context) }
        router.post("/server/login-check") { request, _ in
            guard let (_, session) = try await self.session(request) else { return Self.json(["authenticated": false, "data": NSNull()]) }
            return Self.json(["authenticated": true, "data": Self.publicData(session)])
        }
        router.post("/server/logout") { request, _ in
            if let refusal = Self.crossSiteRefusal(request) { return refusal }
            if let id = Self.sessionID(request) {
                cache.remove(id)
                _ = try? await link.call(WebServerAPI.logoutPath, WebSessionLookup(sessionID: id, ttl: config.sessionTTL), as: [String: Bool].self)
            }
            var response = Response(status: .created)
            response.headers[.setCookie] = cookie(value: "", maxAge: 0)
            return response
        }
        router.get("/func/ping") { _, _ in Self.json(["version": "hangar-webserver", "details": "Success"]) }
        // The version probe is the only manager call made without a login.
        router.get("/func") { request, context in try await forward(request, context, path: "", anonymous: true) }
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete, .head] {
            router.on("/func/**", method: method) { request, context in
                let path = String((request.uri.path).dropFirst("/func/".count))
                return try await forward(request, context, path: path, anonymous: false)
            }
        }
        router.get("/") { _, _ in try assets.response(for: "index.html") }
        router.get("/ui/:name") { _, context in try assets.response(for: try context.parameters.require("name")) }
        router.get("/vendor/xterm.js") { _, _ in try assets.xtermScript() }
        router.get("/vendor/xterm.css") { _, _ in try assets.xtermStyle() }
        return router
    }

    /// `GET /func/stream/*` WebSockets, relayed to the manager's.
    public func makeWebSocketRouter() -> Router<WebServerRequestContext> {
        let router = Router(context: WebServerRequestContext.self)
        router.ws("/func/stream/**", shouldUpgrade: { request, _ in
            // A page of another site must not open a stream with the user's cookie.
            if let origin = request.headers[.origin], !Self.sameOrigin(origin, request) { return .dontUpgrade }
            guard try await self.session(request) != nil else { return .dontUpgrade }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            guard let (_, session) = try? await self.session(context.request) else {
                try? await outbound.close(.init(codeNumber: 1008), reason: "not logged in")
                return
            }
            let target = String(context.request.uri.path.dropFirst("/func".count)) + (context.request.uri.query.map { "?" + $0 } ?? "")
            await relay(inbound, outbound, target: target, session: session)
        })
        return router
    }

    /// The application, listening where the config says.
    public func makeApplication() -> some ApplicationProtocol {
        Application(router: makeRouter(), server: .http1WebSocketUpgrade(webSocketRouter: makeWebSocketRouter(), configuration: .init(ws: .init(maxFrameSize: 16 << 20))),
                    configuration: .init(address: .hostname(config.host, port: config.port), serverName: "hangar-webserver"), logger: logger)
    }

    /// Serves until SIGINT/SIGTERM.
    public func run() async throws {
        let app = makeApplication()
        try await app.runService()
    }

    // MARK: - Login

    func login(_ request: Request, _ context: WebServerRequestContext) async throws -> Response {
        if let refusal = Self.crossSiteRefusal(request) { return refusal }
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
            return Self.problem(.badRequest, "invalid-api-params", "The request body must be a JSON object", "send {\"username\": ..., \"password\": ...}")
        }
        let unknown = object.keys.filter { !["username", "password", "otp"].contains($0) }.sorted()
        guard unknown.isEmpty else {
            return Self.problem(.badRequest, "invalid-api-params", "Unknown field\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", "))",
                                "the login accepts username, password (and otp)")
        }
        guard let username = object["username"] as? String, !username.isEmpty else {
            return Self.problem(.badRequest, "invalid-api-params", "You must provide the username field.", "username is the user's email or name")
        }
        guard let password = object["password"] as? String, !password.isEmpty else {
            return Self.problem(.badRequest, "invalid-api-params", "You must provide the password field.", "password is missing or empty")
        }
        let address = Self.address(context.remoteAddress)
        let reply: WebLoginReply
        do {
            reply = try await link.call(WebServerAPI.loginPath, WebLoginRequest(username: username, password: password, domain: config.domain,
                                                                                 clientAddress: address, ttl: config.sessionTTL), as: WebLoginReply.self)
        } catch let problem as ManagerProblem where problem.status == 401 || problem.status == 400 {
            logger.info("web login refused", metadata: ["user": .string(username), "address": .string(address)])
            // Backend.AI answers a refused login with 200 and authenticated: false.
            return Self.json(["authenticated": false, "data": ["type": problem.type, "title": problem.title, "details": problem.details]])
        } catch let problem as ManagerProblem where problem.status == 429 {
            return Self.problem(.tooManyRequests, "too-many-requests", "Too many failed login attempts", problem.details)
        } catch {
            return Self.problem(.badGateway, "bad-gateway", "The proxy target server is inaccessible.", "\(error)")
        }
        // A new id on every login: a session id planted before the login is never promoted.
        if let old = Self.sessionID(request) {
            cache.remove(old)
            _ = try? await link.call(WebServerAPI.logoutPath, WebSessionLookup(sessionID: old, ttl: config.sessionTTL), as: [String: Bool].self)
        }
        var response = Self.json(["authenticated": true, "data": ["access_key": reply.accessKey, "role": reply.role, "status": reply.status]])
        response.headers[.setCookie] = cookie(value: reply.sessionID, maxAge: Int(config.sessionTTL))
        return response
    }

    func cookie(value: String, maxAge: Int) -> String {
        "\(Self.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (config.secureCookie ? "; Secure" : "")
    }

    static func publicData(_ session: WebSessionReply) -> [String: Any] {
        ["access_key": session.accessKey, "role": session.role, "status": session.status, "email": session.email, "domain": session.domain]
    }

    /// The session id a request carries: the cookie, else the `X-BackendAI-SessionID` header.
    static func sessionID(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2, parts[0] == cookieName, !parts[1].isEmpty { return parts[1] }
            }
        }
        return request.headers[.backendAISessionID].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The logged-in session of a request, or nil.
    func session(_ request: Request) async throws -> (String, WebSessionReply)? {
        guard let id = Self.sessionID(request), id.count <= 200 else { return nil }
        if let hit = cache.get(id) { return (id, hit) }
        do {
            let session = try await link.call(WebServerAPI.sessionPath, WebSessionLookup(sessionID: id, ttl: config.sessionTTL), as: WebSessionReply.self)
            cache.put(id, session)
            return (id, session)
        } catch let problem as ManagerProblem where problem.status == 401 {
            cache.remove(id)
            return nil
        }
    }

    // MARK: - CSRF

    /// A refusal for a state-changing request that a page of another site sent with the user's
    /// cookie (the browser says so in `Sec-Fetch-Site` or `Origin`); nil when it is fine.
    /// Clients that are not browsers send neither header.
    static func crossSiteRefusal(_ request: Request) -> Response? {
        if let site = request.headers[.secFetchSite], site != "same-origin", site != "none" {
            return problem(.forbidden, "forbidden", "Cross-site request refused", "a page of another site (Sec-Fetch-Site: \(site)) may not act for the logged-in user")
        }
        if let origin = request.headers[.origin], !sameOrigin(origin, request) {
            return problem(.forbidden, "forbidden", "Cross-site request refused", "requests from \(origin) may not act for the logged-in user of this site")
        }
        return nil
    }

    static func sameOrigin(_ origin: String, _ request: Request) -> Bool {
        guard let authority = request.head.authority else { return false }
        return origin == "http://\(authority)" || origin == "https://\(authority)"
    }

    static func address(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        return address.ipAddress ?? "\(address)"
    }

    // MARK: - Forwarding

    /// Request headers that never go to the manager: the browser's credentials and what the
    /// webserver sets itself.
    static let droppedRequestHeaders: Set<String> = [
        "host", "cookie", "authorization", "date", "x-backendai-date", "x-sorna-date", "x-backendai-version", "x-backendai-sessionid",
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "content-length", "origin", "referer",
        "x-forwarded-for",
    ]
    static let droppedResponseHeaders: Set<String> = ["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "set-cookie", "server", "date"]

    /// Forwards a request to the manager signed with the session's keypair (or unsigned for
    /// the version probe), streaming the body both ways. JSON answers are read whole and any
    /// copy of the secret key in them is replaced, so it never reaches the browser.
    func forward(_ request: Request, _ context: WebServerRequestContext, path: String, anonymous: Bool) async throws -> Response {
        var signing: WebSessionReply?
        if !anonymous {
            if request.method != .get, request.method != .head, let refusal = Self.crossSiteRefusal(request) { return refusal }
            guard let (_, session) = try await session(request) else {
                return Self.problem(.unauthorized, "auth-failed", "Authentication required", "log in first (POST /server/login)")
            }
            signing = session
        }
        guard !path.hasPrefix("webserver/"), !path.split(separator: "/").contains("..") else {
            return Self.problem(.notFound, "generic-not-found", "Not Found", "/func/\(path) is not an API path")
        }
        let target = "/" + path + (request.uri.query.map { "?" + $0 } ?? "")
        var outgoing = HTTPClientRequest(url: link.baseURL + target)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        outgoing.headers.add(name: "X-Forwarded-For", value: Self.address(context.remoteAddress))
        let version = request.headers[values: HTTPField.Name("X-BackendAI-Version")!].first ?? Self.defaultAPIVersion
        if let signing {
            for header in RequestSigner.headers(accessKey: signing.accessKey, secretKey: signing.secretKey, method: request.method.rawValue,
                                                requestTarget: target, host: managerHost, contentType: request.headers[.contentType], apiVersion: version) {
                outgoing.headers.replaceOrAdd(name: header.name, value: header.value)
            }
        } else {
            outgoing.headers.replaceOrAdd(name: "X-BackendAI-Version", value: version)
        }
        if request.method != .get, request.method != .head {
            let length = request.headers[.contentLength].flatMap(Int64.init)
            outgoing.body = .stream(request.body, length: length.map { .known($0) } ?? .unknown)
        }
        let upstream: HTTPClientResponse
        do {
            upstream = try await client.execute(outgoing, deadline: .now() + .hours(24))
        } catch {
            return Self.problem(.badGateway, "bad-gateway", "The proxy target server is inaccessible.", "the manager at \(link.baseURL): \(error)")
        }
        var headers = HTTPFields()
        for (name, value) in upstream.headers where !Self.droppedResponseHeaders.contains(name.lowercased()) {
            if let fieldName = HTTPField.Name(name) { headers.append(HTTPField(name: fieldName, value: value)) }
        }
        let status = HTTPResponse.Status(code: Int(upstream.status.code))
        let type = upstream.headers.first(name: "content-type")?.lowercased() ?? ""
        guard let signing, type.contains("json") else {
            return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: upstream.body))
        }
        let collected: ByteBuffer
        do {
            collected = try await upstream.body.collect(upTo: config.maxCheckedBody)
        } catch {
            return Self.problem(.badGateway, "bad-gateway", "The manager's answer is too large to pass", "JSON answers are passed up to \(config.maxCheckedBody) bytes")
        }
        var bytes = Array(collected.readableBytesView)
        bytes = Self.redact(bytes, secret: Array(signing.secretKey.utf8))
        headers[.contentLength] = nil
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Replaces every occurrence of `secret` in `bytes` with asterisks of the same length.
    static func redact(_ bytes: [UInt8], secret: [UInt8]) -> [UInt8] {
        guard secret.count >= 8, bytes.count >= secret.count else { return bytes }
        var out = bytes
        var index = 0
        while index <= out.count - secret.count {
            if out[index] == secret[0], Array(out[index..<(index + secret.count)]) == secret {
                for offset in 0..<secret.count { out[index + offset] = UInt8(ascii: "*") }
                index += secret.count
            } else {
                index += 1
            }
        }
        return out
    }

    /// Relays a browser's WebSocket to the manager's at `target`, signed for the session.
    func relay(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, target: String, session: WebSessionReply) async {
        let url = link.baseURL.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + target
        var headers = HTTPFields()
        for header in RequestSigner.headers(accessKey: session.accessKey, secretKey: session.secretKey, method: "GET", requestTarget: target,
                                            host: managerHost, contentType: nil, apiVersion: Self.defaultAPIVersion) {
            headers[HTTPField.Name(header.name)!] = header.value
        }
        @Sendable func pass(_ frame: WebSocketDataFrame, to writer: WebSocketOutboundWriter) async throws {
            if frame.opcode == .text { try await writer.write(.text(String(buffer: frame.data))) } else { try await writer.write(.binary(frame.data)) }
        }
        do {
            let closed = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 16 << 20, additionalHeaders: headers), logger: logger) {
                managerInbound, managerOutbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { for try await frame in inbound { try await pass(frame, to: managerOutbound) } }
                    group.addTask { for try await frame in managerInbound { try await pass(frame, to: outbound) } }
                    try await group.next()
                    group.cancelAll()
                }
            }
            try? await outbound.close(closed?.closeCode ?? .init(codeNumber: Int(TunnelClose.upstreamClosed)), reason: closed?.reason)
        } catch {
            try? await outbound.close(.init(codeNumber: Int(TunnelClose.error)), reason: String("the manager: \(error)".prefix(120)))
        }
    }

    // MARK: - Responses

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func problem(_ status: HTTPResponse.Status, _ slug: String, _ title: String, _ details: String) -> Response {
        let object: [String: Any] = ["type": "https://api.backend.ai/probs/\(slug)", "title": title, "msg": details]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/problem+json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Adds the security headers to every answer: the strict Content-Security-Policy, no MIME
/// sniffing, no referrer leaving the site.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = WebServerRequestContext
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = WebServer.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "no-referrer"
        return response
    }
}
