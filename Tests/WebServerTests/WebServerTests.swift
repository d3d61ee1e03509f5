@testable import WebServer
import ClusterProtocol
import ConfigFile
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Logging
import Manager
import StateStore
import Testing
import TestSupport

/// The webserver against a real manager (both on loopback ports, the manager on a real
/// database): login, the session cookie, logout, expiry, deactivation, failed-login blocking,
/// CSRF refusals, re-signing of forwarded calls, and that no answer carries the secret key.
@Suite(.serialized)
struct WebServerTests {
    static let secret = "test-cluster-secret"

    /// Runs `body` with a manager over a bootstrapped store and a webserver in front of it.
    static func withWebServer(_ backend: Backend = .sqlite, manager configureManager: @escaping @Sendable (inout ManagerConfig) -> Void = { _ in },
                              web configureWeb: @escaping @Sendable (inout WebServerConfig) -> Void = { _ in },
                              _ body: @escaping @Sendable (WebClient, StateStore, StateStore.BootstrapResult) async throws -> Void) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        var managerConfig = ManagerConfig()
        managerConfig.keypairCacheTTL = 0
        managerConfig.port = try freeLoopbackPort()
        configureManager(&managerConfig)
        let server = try ManagerServer(store: store, config: managerConfig, clusterSecret: secret)
        let managerApp = Application(router: server.makeRouter(), configuration: .init(address: .hostname("127.0.0.1", port: managerConfig.port)))
        try await managerApp.test(.live) { managerClient in
            var webConfig = WebServerConfig()
            webConfig.port = try freeLoopbackPort()
            webConfig.managerURL = "http://127.0.0.1:\(try #require(managerClient.port))"
            webConfig.clusterSecret = secret
            webConfig.sessionCacheTTL = 0
            configureWeb(&webConfig)
            let finalConfig = webConfig
            let web = WebServer(config: finalConfig)
            try await web.makeApplication().test(.live) { client in
                let recorder = WebClient(client: client, port: finalConfig.port)
                recorder.managerURL = finalConfig.managerURL
                try await body(recorder, store, admin)
                // Whatever the test did, no answer to the browser carried a secret key.
                for key in try store.keypairs() {
                    #expect(!recorder.everything().contains(key.secretKey), "an answer carried the secret key of \(key.accessKey)")
                }
            }
        }
    }

    /// A new user with a keypair, logged in: the user and the session cookie.
    static func loggedIn(_ web: WebClient, _ store: StateStore, _ email: String, _ password: String) async throws -> (User, String) {
        let user = try store.createUser(email: email, password: password, passwordRounds: 1000)
        _ = try store.createKeypair(userID: user.id)
        return (user, try await web.logIn(email, password))
    }

    @Test(arguments: Backend.allCases)
    func loginCookieCheckAndLogout(backend: Backend) async throws {
        try await Self.withWebServer(backend) { web, store, admin in
            let wrong = try await web.post("/server/login", json: #"{"username": "admin@hangar.local", "password": "nope"}"#)
            #expect(wrong.status == .ok && wrong.text.contains("\"authenticated\":false") && wrong.text.contains("invalid user ID or password"), "\(wrong.text)")
            #expect(wrong.headers[.setCookie] == nil)
            let unknownField = try await web.post("/server/login", json: #"{"username": "a", "password": "b", "tenant": "x"}"#)
            #expect(unknownField.status == .badRequest && unknownField.text.contains("tenant"), "\(unknownField.text)")

            let login = try await web.post("/server/login", json: #"{"username": "admin@hangar.local", "password": "admin-password"}"#)
            #expect(login.status == .ok && login.text.contains("\"authenticated\":true") && login.text.contains(admin.accessKey), "\(login.text)")
            let setCookie = try #require(login.headers[.setCookie])
            #expect(setCookie.hasPrefix("\(WebServer.cookieName)=") && setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"), "\(setCookie)")
            #expect(login.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("script-src 'self'") == true)
            let cookie = try #require(setCookie.split(separator: ";").first.map(String.init))
            // Only a hash of the id is stored.
            let id = String(cookie.dropFirst(WebServer.cookieName.count + 1))
            #expect(try store.webSession(idHash: LoginSessionID.hash(id), ttl: 600) != nil)

            let check = try await web.post("/server/login-check", json: "{}", cookie: cookie)
            #expect(check.text.contains("\"authenticated\":true") && check.text.contains("superadmin"), "\(check.text)")
            // The header the client's session mode may send instead of the cookie.
            let byHeader = try await web.send("/server/login-check", method: .post, headers: [HTTPField.Name("X-BackendAI-SessionID")!: id])
            #expect(byHeader.text.contains("\"authenticated\":true"), "\(byHeader.text)")

            let logout = try await web.post("/server/logout", json: "{}", cookie: cookie)
            #expect(logout.status == .created && logout.headers[.setCookie]?.contains("Max-Age=0") == true)
            let after = try await web.post("/server/login-check", json: "{}", cookie: cookie)
            #expect(after.text.contains("\"authenticated\":false"), "\(after.text)")
            let refused = try await web.send("/func/auth/keypair", method: .get, cookie: cookie)
            #expect(refused.status == .unauthorized, "\(refused.text)")
            #expect(try store.webSession(idHash: LoginSessionID.hash(id), ttl: 600) == nil, "logout removes the stored session")
        }
    }

    @Test
    func forwardedCallsAreSignedForTheLoggedInUserAndNeverShowTheSecret() async throws {
        try await Self.withWebServer { web, store, admin in
            let user = try store.createUser(email: "alice@example.com", username: "alice", password: "alice-password", passwordRounds: 1000)
            let aliceKey = try store.createKeypair(userID: user.id)
            let cookie = try await web.logIn("alice@example.com", "alice-password")
            // The version probe works without a login.
            let probe = try await web.send("/func/", method: .get)
            #expect(probe.status == .ok && probe.text.contains("v7."), "\(probe.text)")
            // The manager accepts the webserver's signature and sees alice, whatever
            // credential the browser tries to smuggle along.
            let forged = RequestSigner.authorization(accessKey: admin.accessKey, signature: String(repeating: "0", count: 64))
            let me = try await web.send("/func/auth/keypair", method: .get, cookie: cookie, headers: [.authorization: forged])
            #expect(me.status == .ok && me.text.contains(aliceKey.accessKey) && !me.text.contains(admin.accessKey), "\(me.text)")
            // GraphQL that asks for the secret key gets it masked.
            let gql = try await web.post("/func/admin/gql", json: #"{"query": "{ keypair { access_key secret_key } }"}"#, cookie: cookie)
            #expect(gql.status == .ok && gql.text.contains(aliceKey.accessKey) && gql.text.contains("****"), "\(gql.text)")
            // The manager's routes for webservers are not reachable through the proxy.
            let internalRoute = try await web.post("/func/webserver/session", json: #"{"sessionID": "x", "ttl": 60}"#, cookie: cookie)
            #expect(internalRoute.status == .notFound, "\(internalRoute.text)")
            // A user is refused admin calls by the manager, as with their own keys.
            let admins = try await web.send("/func/admin/keypairs", method: .get, cookie: cookie)
            #expect(admins.status == .forbidden, "\(admins.text)")
        }
    }

    /// The manager answers some requests before reading their body (an unknown path, a failed
    /// signature). The webserver then completed its answer while AsyncHTTPClient still waited
    /// for the rest of the body, and Hummingbird's read of the rest made two concurrent readers
    /// of one request body: a fatal error in swift-nio that ended `hangard dev`.
    @Test
    func anAnswerBeforeTheWholeBodyEndsOnlyThatRequest() async throws {
        try await Self.withWebServer { web, store, _ in
            let (_, cookie) = try await Self.loggedIn(web, store, "fay@example.com", "fay-password")
            let port = try #require(web.client.port)
            let fd = try Self.connectLoopback(port: port)
            defer { close(fd) }
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // A body announced as 1 MB of which only 100 bytes come: the manager's 404 for the
            // unknown path arrives while the rest is still awaited.
            let head = "POST /func/no-such-route HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nCookie: \(cookie)\r\n"
                + "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" + String(repeating: "x", count: 100)
            _ = head.withCString { send(fd, $0, strlen($0), 0) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let received = recv(fd, &buffer, buffer.count, 0)
            let answer = String(decoding: buffer.prefix(max(0, received)), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 404"), "\(answer)")
            try await Task.sleep(for: .milliseconds(300))
            // The webserver lives on and serves the next requests.
            let check = try await web.post("/server/login-check", json: "{}", cookie: cookie)
            #expect(check.text.contains("\"authenticated\":true"), "\(check.text)")
            let forwarded = try await web.send("/func/auth/role", method: .get, cookie: cookie)
            #expect(forwarded.status == .ok, "\(forwarded.text)")
        }
    }

    @Test
    func crossSiteRequestsAreRefused() async throws {
        try await Self.withWebServer { web, _, _ in
            let cookie = try await web.logIn("admin@hangar.local", "admin-password")
            let evil: HTTPFields = [.origin: "http://evil.example"]
            let fromEvil = try await web.send("/func/folders", method: .post, body: #"{"name": "x"}"#, cookie: cookie, headers: evil)
            #expect(fromEvil.status == .forbidden && fromEvil.text.contains("evil.example"), "\(fromEvil.text)")
            let crossSite = try await web.send("/server/logout", method: .post, cookie: cookie, headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            #expect(crossSite.status == .forbidden, "\(crossSite.text)")
            let loginCSRF = try await web.send("/server/login", method: .post, body: #"{"username": "admin@hangar.local", "password": "admin-password"}"#, headers: evil)
            #expect(loginCSRF.status == .forbidden)
            // The same request from the site itself goes through; the session was not ended.
            let sameOrigin = try await web.send("/server/login-check", method: .post, cookie: cookie,
                                                headers: [.origin: "http://127.0.0.1:\(web.port)", HTTPField.Name("Sec-Fetch-Site")!: "same-origin"])
            #expect(sameOrigin.text.contains("\"authenticated\":true"), "\(sameOrigin.text)")
        }
    }

    @Test
    func failedLoginsAreBlockedPerUserAndPerAddress() async throws {
        try await Self.withWebServer(manager: { config in
            config.loginThrottleUser = LoginThrottle(limit: 3, window: 1200)
            config.loginThrottleAddress = LoginThrottle(limit: 6, window: 1200)
        }) { web, store, _ in
            let bob = try store.createUser(email: "bob@example.com", password: "bob-password", passwordRounds: 1000)
            _ = try store.createKeypair(userID: bob.id)
            for _ in 0..<3 {
                let wrong = try await web.post("/server/login", json: #"{"username": "admin@hangar.local", "password": "nope"}"#)
                #expect(wrong.text.contains("\"authenticated\":false"))
            }
            // Blocked now, even with the right password: 429 with when to try again.
            let blocked = try await web.post("/server/login", json: #"{"username": "admin@hangar.local", "password": "admin-password"}"#)
            #expect(blocked.status == .tooManyRequests && blocked.text.contains("try again in"), "\(blocked.text)")
            // Another user from the same address is not blocked yet...
            _ = try await web.logIn("bob@example.com", "bob-password")
            // ...until the address has its own limit of failures.
            for _ in 0..<3 { _ = try await web.post("/server/login", json: #"{"username": "bob@example.com", "password": "nope"}"#) }
            let byAddress = try await web.post("/server/login", json: #"{"username": "carol@example.com", "password": "whatever"}"#)
            #expect(byAddress.status == .tooManyRequests, "\(byAddress.text)")
        }
    }

    @Test
    func forwardedForIsBelievedOnlyFromTrustedProxies() async throws {
        let blocks = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"].compactMap(AddressBlock.init)
        #expect(blocks.map(\.description) == ["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
        #expect(AddressBlock("10.0.0.0/33") == nil && AddressBlock("proxy.example") == nil && AddressBlock("::1/129") == nil)
        #expect(blocks[1].contains("10.200.3.4") && !blocks[1].contains("11.0.0.1") && blocks[0].contains("::ffff:127.0.0.1"))
        #expect(blocks[2].contains("fd12::1") && !blocks[2].contains("fe80::1") && !blocks[2].contains("10.0.0.1"))
        // Untrusted peer: its own address, whatever the header claims.
        #expect(ClientAddress.resolve(peer: "198.51.100.7", forwardedFor: ["203.0.113.9"], trusted: blocks) == "198.51.100.7")
        // Trusted peer: read from the right past trusted hops; what the client prepended is ignored.
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["1.2.3.4, 203.0.113.9", "10.1.1.1"], trusted: blocks) == "203.0.113.9")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["[2001:db8::5]:443"], trusted: blocks) == "2001:db8::5")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["203.0.113.9:8080, garbage"], trusted: blocks) == "127.0.0.1")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: [], trusted: blocks) == "127.0.0.1")

        // Through the webserver: behind a trusted proxy, failures count per forwarded address.
        try await Self.withWebServer(manager: { config in
            config.loginThrottleAddress = LoginThrottle(limit: 2, window: 1200)
        }, web: { $0.trustedProxies = [AddressBlock("127.0.0.1")!] }) { web, _, _ in
            func attempt(_ from: String, _ user: String) async throws -> WebClient.Answer {
                try await web.send("/server/login", method: .post, body: "{\"username\": \"\(user)\", \"password\": \"nope\"}",
                                   headers: [.xForwardedFor: from])
            }
            _ = try await attempt("203.0.113.1", "u1@example.com")
            _ = try await attempt("203.0.113.1", "u2@example.com")
            #expect(try await attempt("203.0.113.1", "u3@example.com").status == .tooManyRequests, "the forwarded address has its two failures")
            #expect(try await attempt("203.0.113.2", "u4@example.com").status == .ok, "another client behind the same proxy is not blocked")
        }
        // Without trusted proxies the header changes nothing: the peer is blocked.
        try await Self.withWebServer(manager: { config in
            config.loginThrottleAddress = LoginThrottle(limit: 2, window: 1200)
        }) { web, _, _ in
            for (index, from) in ["203.0.113.1", "203.0.113.2"].enumerated() {
                _ = try await web.send("/server/login", method: .post, body: "{\"username\": \"v\(index)@example.com\", \"password\": \"nope\"}",
                                       headers: [.xForwardedFor: from])
            }
            let third = try await web.send("/server/login", method: .post, body: #"{"username": "v9@example.com", "password": "nope"}"#,
                                           headers: [.xForwardedFor: "203.0.113.3"])
            #expect(third.status == .tooManyRequests, "\(third.text)")
        }
    }

    @Test
    func proxyAndAppPortSettingsAreCheckedWhenRead() throws {
        let good = try WebServerConfig.load(ConfigFile(toml: """
            [webserver]
            trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
            app_port_range = "30000-30099"
            app_idle_timeout = 60
            """, path: "w.toml"))
        #expect(good.trustedProxies.map(\.description) == ["127.0.0.1", "10.0.0.0/8"] && good.appPortRange == 30000...30099 && good.appIdleTimeout == 60)
        let defaults = try WebServerConfig.load(ConfigFile(toml: "[webserver]\n", path: "w.toml"))
        #expect(defaults.trustedProxies.isEmpty && defaults.appPortRange == nil && defaults.appIdleTimeout == 900)
        for (line, expected) in [("trusted_proxies = [\"proxy.local\"]", "'proxy.local' is not an address or a CIDR block"),
                                 ("trusted_proxies = \"127.0.0.1\"", "expected an array of strings"),
                                 ("app_port_range = \"30099-30000\"", "is not a port range"),
                                 ("app_port_range = \"80-90\"", "1024 < FIRST"),
                                 ("app_idle_timeout = -1", "app_idle_timeout")] {
            #expect { try WebServerConfig.load(ConfigFile(toml: "[webserver]\n\(line)\n", path: "w.toml")) } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test
    func filesAreGzippedForClientsThatAcceptIt() async throws {
        try await Self.withWebServer { web, _, _ in
            let plain = try await web.send("/ui/app.js", method: .get)
            #expect(plain.status == .ok && plain.headers[.contentEncoding] == nil && plain.headers[.vary] == "Accept-Encoding")
            #expect(Array(plain.text.utf8) == UIAssets.embedded["app.js"])
            for accept in ["gzip, deflate, br", "br;q=1.0, gzip;q=0.8", "*"] {
                let zipped = try await web.client.execute(uri: "/ui/app.js", method: .get, headers: [.acceptEncoding: accept]) { $0 }
                #expect(zipped.headers[.contentEncoding] == "gzip", "Accept-Encoding: \(accept)")
                let body = Array(zipped.body.readableBytesView)
                #expect(body.count < plain.text.utf8.count / 2, "\(body.count) bytes gzipped of \(plain.text.utf8.count)")
                #expect(try Self.gunzip(body) == UIAssets.embedded["app.js"], "gzip -d gives the file back")
            }
            let refused = try await web.client.execute(uri: "/ui/app.js", method: .get, headers: [.acceptEncoding: "gzip;q=0, identity"]) { $0 }
            #expect(refused.headers[.contentEncoding] == nil)
            // Tiny files are not worth it.
            let icon = try await web.client.execute(uri: "/ui/icon.svg", method: .get, headers: [.acceptEncoding: "gzip"]) { $0 }
            #expect(icon.status == .ok && icon.headers[.contentEncoding] == nil)
            // The terminal's library, the largest file, when Debian's node-xterm is installed.
            if FileManager.default.fileExists(atPath: WebServerConfig().xtermDirectory + "/public/Terminal.js") {
                let xterm = try await web.client.execute(uri: "/vendor/xterm.js", method: .get, headers: [.acceptEncoding: "gzip"]) { $0 }
                let bytes = Array(xterm.body.readableBytesView)
                let script = try Self.gunzip(bytes)
                #expect(xterm.headers[.contentEncoding] == "gzip" && String(decoding: script, as: UTF8.self).contains("window.Terminal = Terminal"))
                #expect(bytes.count < script.count / 3, "xterm.js: \(bytes.count) bytes gzipped of \(script.count)")
            }
        }
    }

    /// `gzip -d` of `bytes` (the real tool, not our code).
    static func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-gz-\(UUID().uuidString).gz")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try run(["/bin/sh", "-c", "gzip -dc \"$0\" > \"$0.out\"", file.path])
        defer { try? FileManager.default.removeItem(atPath: file.path + ".out") }
        #expect(status == 0, "gzip -d: \(output)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: file.path + ".out")))
    }

    /// A TCP connection to 127.0.0.1:`port` (its descriptor), or an error when refused.
    static func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            throw CocoaError(.fileReadUnknown)
        }
        return fd
    }

    @Test
    func appPortsComeFromTheRangeAndCloseWhenIdle() async throws {
        let first = try freeLoopbackPort()
        var config = WebServerConfig()
        config.managerURL = "http://127.0.0.1:9"
        let web = WebServer(config: config)
        let gateway = AppGateway(host: "127.0.0.1", range: first...(first + 1), idleTimeout: 1, logger: Logger(label: "test"))
        let keys = (0..<3).map { AppGateway.Key(accessKey: "AK", session: "s\($0)", app: "jupyter") }
        let a = try await gateway.port(for: keys[0], server: web)
        let b = try await gateway.port(for: keys[1], server: web)
        #expect(Set([a, b]).isSubset(of: Set([first, first + 1])) && a != b)
        #expect(try await gateway.port(for: keys[0], server: web) == a, "the same app keeps its port")
        do {
            _ = try await gateway.port(for: keys[2], server: web)
            Issue.record("a third app got a port of a two-port range")
        } catch let error as AppGatewayError {
            #expect(error.description.contains("app_port_range \(first)-\(first + 1)"), "\(error)")
        }
        // A connection keeps its port open past the idle timeout; the other port closes.
        let held = try Self.connectLoopback(port: a)
        defer { close(held) }
        try await Task.sleep(for: .milliseconds(2500))
        let open = await gateway.openPorts
        #expect(open == [keys[0]: a], "\(open)")
        #expect((try? Self.connectLoopback(port: b)).map { close($0); return false } ?? true, "the idle port refuses connections")
        // Its port is free again for the next app.
        #expect(try await gateway.port(for: keys[2], server: web) == b)
        await gateway.closeAll()
        #expect(await gateway.openPorts.isEmpty)
    }

    @Test
    func deactivationEndsTheSessionAndSessionsOutliveTheWebserver() async throws {
        try await Self.withWebServer { web, store, _ in
            let (user, cookie) = try await Self.loggedIn(web, store, "dave@example.com", "dave-password")
            // A second webserver (a restart, or another replica) knows the session: it lives in
            // the manager's database.
            var other = WebServerConfig()
            other.managerURL = web.managerURL
            other.clusterSecret = Self.secret
            other.port = try freeLoopbackPort()
            let second = WebServer(config: other)
            try await second.makeApplication().test(.live) { client in
                let check = try await client.execute(uri: "/server/login-check", method: .post, headers: [.cookie: cookie])
                #expect(String(buffer: check.body).contains("\"authenticated\":true"), "\(String(buffer: check.body))")
            }
            _ = try store.updateUser(id: user.id, { var changes = UserChanges(); changes.status = "inactive"; return changes }(), passwordRounds: 1000)
            let after = try await web.post("/server/login-check", json: "{}", cookie: cookie)
            #expect(after.text.contains("\"authenticated\":false"), "a deactivated user is logged out: \(after.text)")
            let again = try await web.post("/server/login", json: #"{"username": "dave@example.com", "password": "dave-password"}"#)
            #expect(again.text.contains("\"authenticated\":false") && again.text.contains("inactive"), "\(again.text)")
        }
    }

    @Test
    func aNewPasswordEndsTheWebLogins() async throws {
        try await Self.withWebServer { web, store, _ in
            let (user, cookie) = try await Self.loggedIn(web, store, "erin@example.com", "erin-password")
            var changes = UserChanges()
            changes.password = "erin-new-password"
            _ = try store.updateUser(id: user.id, changes, passwordRounds: 1000)
            let after = try await web.post("/server/login-check", json: "{}", cookie: cookie)
            #expect(after.text.contains("\"authenticated\":false"), "\(after.text)")
            _ = try await web.logIn("erin@example.com", "erin-new-password")
        }
    }

    @Test
    func sessionsExpire() throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        let user = try #require(try store.user(email: admin.email))
        let now = Clock.nowMicros()
        try store.createWebSession(idHash: "h1", userID: user.id, accessKey: admin.accessKey, ttl: 120, clientAddress: "127.0.0.1", now: now)
        #expect(try store.webSession(idHash: "h1", ttl: 120, now: now + 60_000_000) != nil)
        // Used at +61 s: extended to 120 s from then.
        #expect(try store.webSession(idHash: "h1", ttl: 120, now: now + 61_000_000) != nil)
        #expect(try store.webSession(idHash: "h1", ttl: 120, now: now + 170_000_000) != nil, "the use at +61 s extended it")
        #expect(try store.webSession(idHash: "h1", ttl: 120, now: now + 400_000_000) == nil, "unused for longer than the ttl: expired")
    }

    @Test
    func redactionMasksEveryCopy() {
        let secret = Array("S3cretKeyValue0123456789".utf8)
        let text = Array("{\"a\": \"S3cretKeyValue0123456789\", \"b\": [\"xS3cretKeyValue0123456789y\"]}".utf8)
        let out = String(decoding: WebServer.redact(text, secret: secret), as: UTF8.self)
        #expect(!out.contains("S3cret") && out.contains("x************************y"), "\(out)")
    }
}

/// A client of the webserver that keeps every answer, so a test can check that none carried
/// a secret.
final class WebClient: @unchecked Sendable {
    let client: any TestClientProtocol
    let port: Int
    private let lock = NSLock()
    private var seen: [String] = []

    init(client: any TestClientProtocol, port: Int) {
        self.client = client
        self.port = port
    }

    var managerURL: String = ""

    struct Answer {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String
    }

    func send(_ uri: String, method: HTTPRequest.Method, body: String? = nil, cookie: String? = nil, headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let cookie { headers[.cookie] = cookie }
        if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        let answer = Answer(status: response.status, headers: response.headers, text: String(buffer: response.body))
        lock.withLock { seen.append(answer.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + "\n" + answer.text) }
        return answer
    }

    func post(_ uri: String, json: String, cookie: String? = nil) async throws -> Answer {
        try await send(uri, method: .post, body: json, cookie: cookie)
    }

    /// Logs in and returns the `name=value` of the session cookie.
    func logIn(_ user: String, _ password: String) async throws -> String {
        let answer = try await post("/server/login", json: "{\"username\": \"\(user)\", \"password\": \"\(password)\"}")
        #expect(answer.text.contains("\"authenticated\":true"), "\(answer.text)")
        return try #require(answer.headers[.setCookie]?.split(separator: ";").first.map(String.init))
    }

    func everything() -> String { lock.withLock { seen.joined(separator: "\n") } }
}
