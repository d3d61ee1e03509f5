import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import StateStore

/// The webserver's side of login: password checks with failure throttling, and login sessions
/// kept in the database (`WebServerAPI`). Only callers holding the cluster secret reach these.
extension ManagerAPI {
    var webSessionRoutes: [RouteSpec] {
        [
            RouteSpec(method: .post, path: WebServerAPI.loginPath, summary: "Log a user in for a webserver (cluster secret)", access: .agent,
                      bodyKeys: ["username", "password", "domain", "clientAddress", "ttl"]) { request, _ in
                try authenticateAgent(request)
                let login = try await io.decode(WebLoginRequest.self, from: request, allowed: ["username", "password", "domain", "clientAddress", "ttl"],
                                                snakeCase: false)
                return try io.response(try await logIn(login), snakeCase: false)
            },
            RouteSpec(method: .post, path: WebServerAPI.sessionPath, summary: "A webserver's login session (cluster secret)", access: .agent,
                      bodyKeys: ["sessionID", "ttl"]) { request, _ in
                try authenticateAgent(request)
                let lookup = try await io.decode(WebSessionLookup.self, from: request, allowed: ["sessionID", "ttl"], snakeCase: false)
                let ttl = Self.sessionTTL(lookup.ttl)
                guard let session = try await store.run({ try $0.webSession(idHash: LoginSessionID.hash(lookup.sessionID), ttl: ttl) }) else {
                    throw APIError.authFailed("the login session is unknown or expired, or its user or keypair was deactivated; log in again")
                }
                return try io.response(WebSessionReply(userID: session.userID, email: session.email, domain: session.domainName, role: session.role.rawValue,
                                                       status: session.userStatus, accessKey: session.accessKey, secretKey: session.secretKey,
                                                       expiresAt: Double(session.expiresAt) / 1_000_000), snakeCase: false)
            },
            RouteSpec(method: .post, path: WebServerAPI.logoutPath, summary: "End a webserver's login session (cluster secret)", access: .agent,
                      bodyKeys: ["sessionID", "ttl"]) { request, _ in
                try authenticateAgent(request)
                let lookup = try await io.decode(WebSessionLookup.self, from: request, allowed: ["sessionID", "ttl"], snakeCase: false)
                let ended = try await store.run { try $0.deleteWebSession(idHash: LoginSessionID.hash(lookup.sessionID)) }
                return try io.response(["ended": ended])
            },
            RouteSpec(method: .post, path: "/auth/authorize", summary: "Trade a user's password for their keypair (type keypair), unsigned",
                      access: .public, bodyKeys: ["type", "domain", "username", "password", "otp"]) { request, _ in
                try await authorize(request)
            },
        ]
    }

    /// Session lifetimes a webserver may ask for: a minute to 30 days.
    static func sessionTTL(_ asked: Double) -> Double { min(max(asked.isFinite ? asked : 0, 60), 30 * 86_400) }

    /// Checks a login against the throttles, then the password; a success opens a session.
    func logIn(_ login: WebLoginRequest) async throws -> WebLoginReply {
        let (user, _) = try await checkCredentials(username: login.username, domain: login.domain, password: login.password,
                                                   clientAddress: login.clientAddress)
        let id = LoginSessionID.generate()
        let ttl = Self.sessionTTL(login.ttl)
        let keypair = try await store.run { store -> Keypair? in
            guard let keypair = try store.loginKeypair(userID: user.id) else { return nil }
            try store.createWebSession(idHash: LoginSessionID.hash(id), userID: user.id, accessKey: keypair.accessKey, ttl: ttl,
                                       clientAddress: login.clientAddress)
            return keypair
        }
        guard let keypair else { throw Self.noKeypair(user) }
        logger.info("web login", metadata: ["user": .string(user.email), "address": .string(login.clientAddress)])
        return WebLoginReply(sessionID: id, accessKey: keypair.accessKey, role: user.role.rawValue, status: user.status,
                             expiresAt: Date().timeIntervalSince1970 + ttl)
    }

    /// Backend.AI's `POST /auth/authorize` (`{"type": "keypair", "domain", "username",
    /// "password"}` → `{"data": {access_key, secret_key, role, status}}`): a password traded
    /// for the user's keypair, unsigned, as the official client's `User.authorize` and
    /// Backend.AI's own webserver call it.
    func authorize(_ request: Request) async throws -> Response {
        struct Authorize: Decodable { let type: String; let domain: String?; let username: String; let password: String; let otp: String? }
        let asked = try await io.decode(Authorize.self, from: request, allowed: ["type", "domain", "username", "password", "otp"])
        guard asked.type == "keypair" else {
            throw APIError.invalidParams("type '\(asked.type)' is not supported; the only authorization type is \"keypair\"")
        }
        // Counted per user only: callers of this route are often a webserver acting for many
        // people from one address, which a per-address count would block for everyone.
        let (user, keypair) = try await checkCredentials(username: asked.username, domain: asked.domain ?? StateStore.defaultDomain,
                                                         password: asked.password, clientAddress: nil)
        logger.info("authorize", metadata: ["user": .string(user.email)])
        struct Reply: Encodable { let data: [String: String] }
        return try io.response(Reply(data: ["access_key": keypair.accessKey, "secret_key": keypair.secretKey, "role": user.role.rawValue,
                                            "status": user.status]))
    }

    /// The user and the keypair a password stands for, after the failed-login throttles
    /// (per user, and per address when `clientAddress` is given); a failure is counted.
    /// - Throws: `APIError` 429 while blocked, 401 for a wrong password, an inactive account or
    ///   no active keypair, 400 for an empty name or password.
    func checkCredentials(username: String, domain: String, password: String, clientAddress: String?) async throws -> (User, Keypair) {
        let name = username.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !password.isEmpty else { throw APIError.invalidParams("username and password are required") }
        let userKey = "user:\(domain)/\(name.lowercased())"
        let addressKey = clientAddress.map { "address:\($0)" }
        let (userThrottle, addressThrottle) = (config.loginThrottleUser, config.loginThrottleAddress)
        let blocked = try await store.run { store in
            [try store.loginBlocked(key: userKey, throttle: userThrottle), try addressKey.flatMap { try store.loginBlocked(key: $0, throttle: addressThrottle) }]
                .compactMap { $0 }.max()
        }
        if let blocked {
            throw APIError(.tooManyRequests, "too-many-requests", "Too many failed login attempts",
                           "too many failed logins for this user or from this address; try again in \(Int(blocked.rounded(.up) / 60) + 1) min")
        }
        let user = try await store.run { try $0.user(login: name, domain: domain, password: password) }
        guard let user else {
            try await store.run { store in
                try store.recordLoginFailure(key: userKey, window: userThrottle.window)
                if let addressKey { try store.recordLoginFailure(key: addressKey, window: addressThrottle.window) }
            }
            throw APIError(.unauthorized, "auth-failed", "Login failed.", "invalid user ID or password")
        }
        guard user.status == "active" else {
            throw APIError.authFailed("the account \(user.email) is \(user.status.replacingOccurrences(of: "-", with: " ")); an admin activates it")
        }
        let keypair = try await store.run { store -> Keypair? in
            try store.clearLoginFailures(key: userKey)
            return try store.loginKeypair(userID: user.id)
        }
        guard let keypair else { throw Self.noKeypair(user) }
        return (user, keypair)
    }

    static func noKeypair(_ user: User) -> APIError {
        APIError.authFailed("\(user.email) has no active keypair to act with; an admin creates one (`backend.ai admin keypair add \(user.email)`)")
    }
}
