import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Identity
import StateStore
import Synchronization

/// The request context every manager route sees.
public struct ManagerRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by the WebSocket upgrade routes (the execute stream).
    public let webSocket: WebSocketHandlerReference<ManagerRequestContext>
    public init(source: Source) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

extension HTTPField.Name {
    static let backendAIVersion = Self("X-BackendAI-Version")!
    /// Where a reconnecting event-stream client left off.
    static let lastEventID = Self("Last-Event-ID")!
    static let backendAIDate = Self("X-BackendAI-Date")!
    static let backendAIDomain = Self("X-BackendAI-Domain")!
    static let sornaDate = Self("X-Sorna-Date")!
    static let rateLimitLimit = Self("X-RateLimit-Limit")!
    static let rateLimitRemaining = Self("X-RateLimit-Remaining")!
    static let rateLimitWindow = Self("X-RateLimit-Window")!
}

/// Who made a request, once its signature checked out.
public struct Caller: Sendable {
    public var identity: KeypairIdentity
    /// The domain the request acts in (X-BackendAI-Domain, defaulting to the user's).
    public var domain: String
    public var role: UserRole { identity.userRole }
    public var accessKey: String { identity.keypair.accessKey }
    /// Admin rights: a superadmin, or a domain admin acting in their own domain.
    public var isAdmin: Bool { role == .superadmin || (role == .admin && domain == identity.domainName) }
}

/// Verifies Backend.AI keypair signatures exactly as the official client computes them, and
/// enforces each keypair's rate limit.
public final class Authenticator: Sendable {
    let store: StateStore
    let maxClockSkew: Double
    let cacheTTL: Double
    private struct CacheEntry { var identity: KeypairIdentity?; var expires: Double }
    private let cache = Mutex<[String: CacheEntry]>([:])
    let limiter = RateLimiter()

    init(store: StateStore, maxClockSkew: Double, cacheTTL: Double) {
        self.store = store
        self.maxClockSkew = maxClockSkew
        self.cacheTTL = cacheTTL
    }

    /// Shares this manager's rate-limit counts with the others on the database (`RateLimiter.share`).
    func shareRateLimits(manager: String) async throws { try await limiter.share(store, manager: manager) }

    /// Forgets a cached keypair (after it was changed through this manager).
    func invalidate(_ accessKey: String) { _ = cache.withLock { $0.removeValue(forKey: accessKey) } }

    /// Forgets every cached keypair (after a change that touches many, such as a domain's).
    func invalidateAll() { cache.withLock { $0.removeAll() } }

    private func identity(_ accessKey: String) async throws -> KeypairIdentity? {
        let now = Date().timeIntervalSince1970
        if let hit = cache.withLock({ $0[accessKey] }), hit.expires > now { return hit.identity }
        let found = try await store.run { try $0.identity(accessKey: accessKey) }
        // Misses are cached too, so a flood of unknown keys cannot hammer the database.
        cache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[accessKey] = CacheEntry(identity: found, expires: now + cacheTTL)
        }
        return found
    }

    /// Authenticates a signed request, in the reference manager's order: date first (400),
    /// then credentials and signature (401), then the rate limit (429).
    /// - Throws: `APIError` with the problem the official client expects.
    public func authenticate(_ request: Request) async throws -> Caller {
        let headers = request.headers
        guard let rawDate = headers[.date] ?? headers[.backendAIDate] ?? headers[.sornaDate] else {
            throw APIError.invalidAuthParams("the Date header is missing")
        }
        let date: RequestDate
        do throws(SignatureError) {
            date = try RequestDate.parse(rawDate)
        } catch {
            throw APIError.invalidAuthParams(error.message)
        }
        let skew = abs(date.instant.timeIntervalSinceNow)
        guard skew <= maxClockSkew else {
            throw APIError.invalidAuthParams("Date/time sync error: the request is \(Int(skew)) s away from the server's clock (allowed: \(Int(maxClockSkew)) s); fix the client's clock")
        }
        guard let authorization = headers[.authorization] else {
            throw APIError.authFailed("Unauthorized access: the request is not signed")
        }
        let parsed: AuthorizationHeader
        do throws(SignatureError) {
            parsed = try AuthorizationHeader.parse(authorization)
        } catch {
            throw APIError.invalidAuthParams(error.message)
        }
        guard let version = headers[.backendAIVersion] else {
            throw APIError.invalidAuthParams("the X-BackendAI-Version header is missing (signed requests must carry it)")
        }
        guard let identity = try await identity(parsed.accessKey), identity.keypair.isActive, identity.userStatus == "active" else {
            throw APIError.authFailed("unknown or inactive access key")
        }
        // Superadmins stay in: they are the ones who reactivate a domain.
        guard identity.domainActive || identity.userRole == .superadmin else {
            throw APIError.authFailed("the domain '\(identity.domainName)' is inactive; a superadmin reactivates it with `admin domain update \(identity.domainName) --is-active true`")
        }
        let host = request.head.authority ?? ""
        var input = SignatureInput(method: request.method.rawValue, requestTarget: request.head.path ?? "/", date: rawDate,
                                   host: host, contentType: headers[.contentType], apiVersion: version)
        var candidates = [host]
        // The client signs the endpoint's netloc as written; aiohttp drops a default port from
        // Host. Accepting the explicit default port too fixes the classic 401 on :80/:443.
        if !host.isEmpty, !host.contains(":") || host.hasSuffix("]") { candidates += [host + ":80", host + ":443"] }
        let given = Array(parsed.signature.lowercased().utf8)
        var matched = false
        for candidate in candidates {
            input.host = candidate
            let expected = RequestSigner.signature(secretKey: identity.keypair.secretKey, input: input, dateStamp: date.dateStamp)
            if constantTimeEqual(Array(expected.utf8), given) { matched = true; break }
        }
        guard matched else { throw APIError.authFailed("the signature does not match (check the secret key, the endpoint URL and the client's clock)") }
        let domain = headers[.backendAIDomain] ?? identity.domainName
        guard domain == identity.domainName || identity.userRole == .superadmin else {
            throw APIError.forbidden("the keypair's user belongs to domain '\(identity.domainName)', not '\(domain)'")
        }
        try limiter.check(identity.keypair)
        return Caller(identity: identity, domain: domain)
    }

    /// Authenticates and requires admin rights.
    public func authenticateAdmin(_ request: Request) async throws -> Caller {
        let caller = try await authenticate(request)
        guard caller.isAdmin else {
            throw APIError.forbidden("this needs an admin or superadmin keypair; \(caller.accessKey) belongs to a \(caller.role.rawValue)")
        }
        return caller
    }
}

/// Per-keypair request counting against the `rate_limit` stored on the keypair (requests per
/// minute; 0 = unlimited), over a sliding minute: the previous minute's count, weighted by how
/// much of it still lies within the last 60 seconds, plus this minute's. A fixed window would
/// reset at every minute boundary and let a client send twice the limit across one (and made
/// tests that straddle a boundary flaky). Each manager counts what it serves in memory; with
/// several managers (PostgreSQL) they share their counts every second (`share`), and each
/// counts the others' too, so the limit holds for the cluster: at most what the other
/// managers admitted in the last second can pass over it.
final class RateLimiter: Sendable {
    private struct Window { var start: Int64; var count: Int64; var previous: Int64 }
    private let windows = Mutex<[String: Window]>([:])
    /// The other managers' counts as of the last `share`: access key → minute → requests.
    private let others = Mutex<[String: [Int64: Int64]]>([:])

    func check(_ keypair: Keypair, now: Double = Date().timeIntervalSince1970) throws {
        guard keypair.rateLimit > 0 else { return }
        let minute = Int64(now) / 60
        let elapsed = (now - Double(minute * 60)) / 60
        let theirs = others.withLock { $0[keypair.accessKey] } ?? [:]
        let weighted = windows.withLock { windows -> Double in
            var w = windows[keypair.accessKey] ?? Window(start: minute, count: 0, previous: 0)
            if w.start != minute {
                w = Window(start: minute, count: 0, previous: w.start == minute - 1 ? w.count : 0)
            }
            w.count += 1
            windows[keypair.accessKey] = w
            return Double(w.previous + (theirs[minute - 1] ?? 0)) * (1 - elapsed) + Double(w.count + (theirs[minute] ?? 0))
        }
        if weighted > Double(keypair.rateLimit) {
            var error = APIError(.tooManyRequests, "too-many-requests", "Too many requests.",
                                 "keypair \(keypair.accessKey) is limited to \(keypair.rateLimit) requests per minute; retry later")
            error.extraHeaders[.rateLimitLimit] = String(keypair.rateLimit)
            error.extraHeaders[.rateLimitRemaining] = "0"
            error.extraHeaders[.retryAfter] = String(max(1, 60 - Int(now) % 60))
            throw error
        }
    }

    /// Records this manager's counts of this and the previous minute in the database and
    /// takes the other managers' (`manager` names this one).
    func share(_ store: StateStore, manager: String, now: Double = Date().timeIntervalSince1970) async throws {
        let minute = Int64(now) / 60
        let mine = windows.withLock { windows -> [(accessKey: String, minute: Int64, count: Int64)] in
            windows = windows.filter { $0.value.start >= minute - 1 }
            return windows.flatMap { key, w in [(key, w.start, w.count)] + (w.previous > 0 ? [(key, w.start - 1, w.previous)] : []) }
        }
        let theirs = try await store.run { try $0.shareRateLimitCounts(manager: manager, counts: mine, oldestMinute: minute - 1) }
        others.withLock { $0 = theirs }
    }
}
