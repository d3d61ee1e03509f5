import Foundation

/// The webserver ↔ manager contract: the webserver logs people in and keeps their login
/// sessions in the manager's database (so several webservers share them and a restart logs no
/// one out). Every call carries the cluster secret, as agents' calls do; bodies are JSON with
/// these types' property names.
public enum WebServerAPI {
    /// POST a `WebLoginRequest`: 200 `WebLoginReply`; 401 for a wrong login or password (the
    /// failure is counted); 429 while the user or the address is blocked.
    public static let loginPath = "/webserver/login"
    /// POST a `WebSessionLookup`: 200 `WebSessionReply`; 401 when the session is unknown,
    /// expired, or its user or keypair was deactivated.
    public static let sessionPath = "/webserver/session"
    /// POST a `WebSessionLookup`: ends the session (200 either way).
    public static let logoutPath = "/webserver/logout"
}

/// A login attempt as the webserver forwards it.
public struct WebLoginRequest: Codable, Sendable {
    /// An email or a username.
    public var username: String
    public var password: String
    /// The domain to log in to (the webserver's configured one).
    public var domain: String
    /// The browser's address, for the per-address failure count.
    public var clientAddress: String
    /// How long the session lives without use, in seconds.
    public var ttl: Double
    public init(username: String, password: String, domain: String, clientAddress: String, ttl: Double) {
        self.username = username
        self.password = password
        self.domain = domain
        self.clientAddress = clientAddress
        self.ttl = ttl
    }
}

/// A new login session. `sessionID` goes into the browser's cookie; the manager keeps only its hash.
public struct WebLoginReply: Codable, Sendable {
    public var sessionID: String
    public var accessKey: String
    public var role: String
    public var status: String
    /// Seconds since the epoch.
    public var expiresAt: Double
    public init(sessionID: String, accessKey: String, role: String, status: String, expiresAt: Double) {
        self.sessionID = sessionID
        self.accessKey = accessKey
        self.role = role
        self.status = status
        self.expiresAt = expiresAt
    }
}

/// Names a login session (a lookup extends a used one to `ttl` seconds from now).
public struct WebSessionLookup: Codable, Sendable {
    public var sessionID: String
    public var ttl: Double
    public init(sessionID: String, ttl: Double) {
        self.sessionID = sessionID
        self.ttl = ttl
    }
}

/// What the webserver needs to act for a logged-in user. The secret key stays on the
/// webserver: it signs the user's requests and is never sent to the browser.
public struct WebSessionReply: Codable, Sendable {
    public var userID: String
    public var email: String
    public var domain: String
    public var role: String
    public var status: String
    public var accessKey: String
    public var secretKey: String
    /// Seconds since the epoch.
    public var expiresAt: Double
    public init(userID: String, email: String, domain: String, role: String, status: String, accessKey: String, secretKey: String, expiresAt: Double) {
        self.userID = userID
        self.email = email
        self.domain = domain
        self.role = role
        self.status = status
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.expiresAt = expiresAt
    }
}
