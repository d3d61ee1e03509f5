import AsyncHTTPClient
import ClusterProtocol
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import HummingbirdWSClient
import Identity
import Logging
import NIOCore
import NIOHTTP1
import StreamTunnel

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
    let gateway: AppGateway
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
        gateway = AppGateway(host: config.host, range: config.appPortRange, idleTimeout: config.appIdleTimeout, logger: logger)
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
        router.post("/server/app-proxy") { request, _ in try await openApp(request) }
        router.get("/func/ping") { _, _ in Self.json(["version": "hangar-webserver", "details": "Success"]) }
        // The version probe is the only manager call made without a login.
        router.get("/func") { request, context in try await forward(request, context, path: "", anonymous: true) }
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete, .head] {
            router.on("/func/**", method: method) { request, context in
                let path = String((request.uri.path).dropFirst("/func/".count))
                return try await forward(request, context, path: path, anonymous: false)
            }
        }
        for method in [HTTPRequest.Method.get, .head, .patch, .options] {
            router.on("/storage-proxy/:signature/:target", method: method) { request, context in
                try await forwardTransfer(request, signature: try context.parameters.require("signature"), target: try context.parameters.require("target"))
            }
        }
        router.get("/") { request, _ in try assets.response(for: "index.html", acceptEncoding: request.headers[.acceptEncoding]) }
        router.get("/ui/:name") { request, context in
            try assets.response(for: try context.parameters.require("name"), acceptEncoding: request.headers[.acceptEncoding])
        }
        router.get("/vendor/xterm.js") { request, _ in try assets.xtermScript(acceptEncoding: request.headers[.acceptEncoding]) }
        router.get("/vendor/xterm.css") { request, _ in try assets.xtermStyle(acceptEncoding: request.headers[.acceptEncoding]) }
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
        Application(router: makeRouter(), server: .http1WebSocketUpgrade(webSocketRouter: makeWebSocketRouter(), configuration: .init(ws: .init(maxFrameSize: 16 << 20, extensions: [FastUnmaskingExtension.factory]))),
                    configuration: .init(address: .hostname(config.host, port: config.port), serverName: "hangar-webserver"), logger: logger)
    }

    /// Serves until SIGINT/SIGTERM.
    public func run() async throws {
        let app = makeApplication()
        try await app.runService()
        await gateway.closeAll()
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
        let address = clientAddress(request, context)
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
        guard let id = Self.sessionID(request), let session = try await session(id: id) else { return nil }
        return (id, session)
    }

    /// The login session an id names, or nil when there is none (any more).
    func session(id: String) async throws -> WebSessionReply? {
        guard id.count <= 200 else { return nil }
        if let hit = cache.get(id) { return hit }
        do {
            let session = try await link.call(WebServerAPI.sessionPath, WebSessionLookup(sessionID: id, ttl: config.sessionTTL), as: WebSessionReply.self)
            cache.put(id, session)
            return session
        } catch let problem as ManagerProblem where problem.status == 401 {
            cache.remove(id)
            return nil
        }
    }

    /// `POST /server/app-proxy` `{"session", "app"}`: where the logged-in user's browser opens
    /// a web app of their session (`{"url"}`); see `AppGateway`.
    func openApp(_ request: Request) async throws -> Response {
        if let refusal = Self.crossSiteRefusal(request) { return refusal }
        guard let (_, session) = try await session(request) else {
            return Self.problem(.unauthorized, "auth-failed", "Authentication required", "log in first (POST /server/login)")
        }
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any],
              let name = object["session"] as? String, let app = object["app"] as? String, !name.isEmpty, !app.isEmpty else {
            return Self.problem(.badRequest, "invalid-api-params", "Which app?", "send {\"session\": NAME, \"app\": APP}")
        }
        // The manager lists the session's apps only to its owner (404 for anyone else).
        let path = "/stream/session/\(name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name)/apps"
        var check = HTTPClientRequest(url: link.baseURL + path)
        for header in signature(session, method: "GET", target: path) { check.headers.add(name: header.name, value: header.value) }
        let answer = try await client.execute(check, timeout: .seconds(30))
        let data = Data(try await answer.body.collect(upTo: 1 << 20).readableBytesView)
        guard answer.status.code == 200 else {
            let problem = ManagerProblem(status: Int(answer.status.code), body: data)
            return Self.problem(HTTPResponse.Status(code: problem.status), "object-not-found", problem.title, problem.details)
        }
        let apps = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
        guard let entry = apps.first(where: { $0["name"] as? String == app }) else {
            let names = apps.compactMap { $0["name"] as? String }.joined(separator: ", ")
            return Self.problem(.notFound, "object-not-found", "No such app", "\(name) offers \(names.isEmpty ? "no apps" : names), not '\(app)'")
        }
        guard entry["protocol"] as? String == "http" else {
            return Self.problem(.badRequest, "invalid-api-params", "Not a web app",
                                "\(app) speaks \(entry["protocol"] as? String ?? "?"), not HTTP: reach it with `backend.ai app \(name) \(app)` or `hangar app`")
        }
        let port: Int
        do {
            port = try await gateway.port(for: AppGateway.Key(accessKey: session.accessKey, session: name, app: app), server: self)
        } catch let error as AppGatewayError {
            return Self.problem(.serviceUnavailable, "service-unavailable", "No app port is free", error.description)
        }
        let host = (request.head.authority ?? config.host).split(separator: ":").first.map(String.init) ?? config.host
        return Self.json(["url": "http://\(host):\(port)/"])
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

    /// The client's address: the TCP peer, or what trusted proxies say it is (`ClientAddress`).
    func clientAddress(_ request: Request, _ context: WebServerRequestContext) -> String {
        ClientAddress.resolve(peer: Self.address(context.remoteAddress), forwardedFor: request.headers[values: .xForwardedFor],
                              trusted: config.trustedProxies)
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
        let version = request.headers[values: HTTPField.Name("X-BackendAI-Version")!].first ?? Self.defaultAPIVersion
        var extra: [(name: String, value: String)] = [("X-Forwarded-For", clientAddress(request, context))]
        if let signing {
            extra += signature(signing, method: request.method.rawValue, target: target, contentType: request.headers[.contentType], apiVersion: version)
        } else {
            extra.append(("X-BackendAI-Version", version))
        }
        let upstream: HTTPClientResponse
        let pump: RequestBodyPump?
        do {
            (upstream, pump) = try await relayRequest(request, to: link.baseURL + target, adding: extra)
        } catch {
            return Self.problem(.badGateway, "bad-gateway", "The proxy target server is inaccessible.", "the manager at \(link.baseURL): \(error)")
        }
        var headers = Self.responseHeaders(upstream)
        let status = HTTPResponse.Status(code: Int(upstream.status.code))
        let type = upstream.headers.first(name: "content-type")?.lowercased() ?? ""
        guard let signing, type.contains("json") else {
            return Self.streamed(upstream, status: status, headers: headers, pump: pump)
        }
        let collected: ByteBuffer
        do {
            collected = try await upstream.body.collect(upTo: config.maxCheckedBody)
            await pump?.stop()
        } catch {
            await pump?.stop()
            return Self.problem(.badGateway, "bad-gateway", "The manager's answer is too large to pass", "JSON answers are passed up to \(config.maxCheckedBody) bytes")
        }
        var bytes = Self.redact(Array(collected.readableBytesView), secret: Array(signing.secretKey.utf8))
        // Transfer tickets name the storage proxy's own address, which a browser may not reach
        // (and the UI's CSP does not allow): they are pointed at this webserver instead.
        if upstream.status.code == 200, path.hasPrefix("folders/"), path.hasSuffix("/request-upload") || path.hasSuffix("/request-download"),
           var ticket = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any], let url = ticket["url"] as? String {
            ticket["url"] = storageRoute(for: url, authority: request.head.authority ?? "\(config.host):\(config.port)")
            bytes = Array((try? JSONSerialization.data(withJSONObject: ticket, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data(bytes))
        }
        headers[.contentLength] = nil
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Sends `request` (method, body streamed, headers but the dropped ones) to `url` with
    /// `extra` headers set. The caller must `stop()` the returned pump (when there is one)
    /// before its answer to the browser completes: see `RequestBodyPump`.
    func relayRequest(_ request: Request, to url: String, adding extra: [(name: String, value: String)]) async throws -> (HTTPClientResponse, RequestBodyPump?) {
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.droppedRequestHeaders.contains(field.name.canonicalName) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        for header in extra { outgoing.headers.replaceOrAdd(name: header.name, value: header.value) }
        var pump: RequestBodyPump?
        if request.method != .get, request.method != .head {
            let length = request.headers[.contentLength].flatMap(Int64.init)
            let body = RequestBodyPump(request.body)
            pump = body
            outgoing.body = .stream(body, length: length.map { .known($0) } ?? .unknown)
        }
        do {
            return (try await client.execute(outgoing, deadline: .now() + .hours(24)), pump)
        } catch {
            await pump?.stop()
            throw error
        }
    }

    /// A streamed answer with `upstream`'s body, after which the request body's pump stops.
    static func streamed(_ upstream: HTTPClientResponse, status: HTTPResponse.Status, headers: HTTPFields, pump: RequestBodyPump?) -> Response {
        guard let pump else { return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: upstream.body)) }
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            do {
                for try await chunk in upstream.body { try await writer.write(chunk) }
            } catch {
                await pump.stop()
                throw error
            }
            await pump.stop()
            try await writer.finish(nil)
        })
    }

    static func responseHeaders(_ upstream: HTTPClientResponse) -> HTTPFields {
        var headers = HTTPFields()
        for (name, value) in upstream.headers where !droppedResponseHeaders.contains(name.lowercased()) {
            if let fieldName = HTTPField.Name(name) { headers.append(HTTPField(name: fieldName, value: value)) }
        }
        return headers
    }

    // MARK: - Transfers

    /// The webserver's address for a storage proxy URL from a transfer ticket:
    /// `/storage-proxy/SIGNATURE/TARGET`, the target base64url-encoded and signed with the
    /// cluster secret, so this route forwards only to addresses a manager handed out (never
    /// wherever a browser asks) and any webserver of the cluster accepts it. The ticket's token
    /// still authorizes the transfer at the storage proxy.
    func storageRoute(for url: String, authority: String) -> String {
        let target = base64URL(Data(url.utf8))
        return "http://\(authority)/storage-proxy/\(storageSignature(target))/\(target)"
    }

    func storageSignature(_ target: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(("storage-proxy:" + target).utf8), using: SymmetricKey(data: Data(config.clusterSecret.utf8)))
        return base64URL(Data(mac))
    }

    /// Uploads (tus HEAD/PATCH) and downloads through the webserver to a storage proxy.
    func forwardTransfer(_ request: Request, signature: String, target: String) async throws -> Response {
        guard constantTimeEqual(Array(signature.utf8), Array(storageSignature(target).utf8)) else {
            return Self.problem(.forbidden, "forbidden", "Not a transfer address", "this address was not made by a Hangar webserver; ask the manager for a new transfer ticket")
        }
        var padded = target.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while padded.count % 4 != 0 { padded += "=" }
        guard let decoded = Data(base64Encoded: padded), let url = String(data: decoded, encoding: .utf8) else {
            return Self.problem(.badRequest, "invalid-api-params", "Damaged transfer address", "ask the manager for a new transfer ticket")
        }
        let upstream: HTTPClientResponse
        let pump: RequestBodyPump?
        do {
            (upstream, pump) = try await relayRequest(request, to: url + (request.uri.query.map { "?" + $0 } ?? ""), adding: [])
        } catch {
            return Self.problem(.badGateway, "bad-gateway", "The storage proxy is inaccessible.", "\(error)")
        }
        return Self.streamed(upstream, status: HTTPResponse.Status(code: Int(upstream.status.code)), headers: Self.responseHeaders(upstream), pump: pump)
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

    /// The headers that sign a request of `session`'s user to the manager.
    func signature(_ session: WebSessionReply, method: String, target: String, contentType: String? = nil,
                   apiVersion: String = defaultAPIVersion) -> [(name: String, value: String)] {
        RequestSigner.headers(accessKey: session.accessKey, secretKey: session.secretKey, method: method, requestTarget: target,
                              host: managerHost, contentType: contentType, apiVersion: apiVersion)
    }

    /// The manager's WebSocket at `target` (`ws://` or `wss://`, as the manager's URL says), and
    /// the fields that sign its upgrade for `session`'s user.
    func managerWebSocket(_ target: String, as session: WebSessionReply) -> (url: String, headers: HTTPFields) {
        let url = link.baseURL.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + target
        var headers = HTTPFields()
        for header in signature(session, method: "GET", target: target) { headers[HTTPField.Name(header.name)!] = header.value }
        return (url, headers)
    }

    /// Relays a browser's WebSocket to the manager's at `target`, signed for the session.
    func relay(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, target: String, session: WebSessionReply) async {
        let (url, headers) = managerWebSocket(target, as: session)
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
