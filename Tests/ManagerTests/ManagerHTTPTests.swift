import ClusterProtocol
import ConfigFile
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Manager
import StateStore
import Testing
import TestSupport

/// The manager's HTTP API through its router, on both backends.
@Suite struct ManagerHTTPTests {
    @Test(arguments: Backend.allCases)
    func versionProbeIsPublicAndExact(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        try await managerApp(store).test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let body = try jsonObject(response.body)
                #expect(body["version"] as? String == "v7.20230615")
                #expect((body["manager"] as? String)?.hasPrefix("hangar-") == true)
            }
            // Signed, as `backend.ai config` sends it, works too.
            let headers = try SignedAPI.headers(method: .get, path: "/", accessKey: admin.accessKey, secretKey: admin.secretKey, contentType: "text/plain")
            try await client.execute(uri: "/", method: .get, headers: headers) { #expect($0.status == .ok) }
        }
    }

    @Test(arguments: Backend.allCases)
    func signedRequestsAreVerified(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let ak = admin.accessKey, sk = admin.secretKey
        try await managerApp(store).test(.router) { client in
            let good = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: ak, secretKey: sk, contentType: "text/plain")
            try await client.execute(uri: "/auth/keypair", method: .get, headers: good) { response in
                #expect(response.status == .ok)
                let body = try jsonObject(response.body)
                #expect(body["access_key"] as? String == ak)
                #expect(body["secret_key"] == nil, "secrets are never listed")
            }
            try await client.execute(uri: "/manager/announcement", method: .get,
                                     headers: try SignedAPI.headers(method: .get, path: "/manager/announcement", accessKey: ak, secretKey: sk)) { response in
                #expect(response.status == .ok)
                let body = try jsonObject(response.body)
                #expect(body["enabled"] as? Bool == false && body["message"] as? String == "")
            }
            // Each tampered part of the request: 401 auth-failed.
            let cases: [(String, HTTPFields, HTTPRequest.Method, String)] = [
                ("wrong key", try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: ak, secretKey: sk + "x"), .get, "/auth/keypair"),
                ("method", try SignedAPI.headers(method: .post, path: "/auth/keypair", accessKey: ak, secretKey: sk), .get, "/auth/keypair"),
                ("path", try SignedAPI.headers(method: .get, path: "/auth/role", accessKey: ak, secretKey: sk), .get, "/auth/keypair"),
                ("query", try SignedAPI.headers(method: .get, path: "/admin/agents?resource_group=a", accessKey: ak, secretKey: sk), .get, "/admin/agents?resource_group=b"),
                ("host", try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: ak, secretKey: sk, host: "evil.example:8091"), .get, "/auth/keypair"),
                ("unknown key", try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: "AKIANOSUCHKEY0000000", secretKey: sk), .get, "/auth/keypair"),
                ("not signed", [.date: good[.date]!], .get, "/auth/keypair"),
            ]
            for (what, headers, method, uri) in cases {
                try await client.execute(uri: uri, method: method, headers: headers) { response in
                    #expect(response.status == .unauthorized, "\(what)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(what)")
                    let body = try jsonObject(response.body)
                    #expect(body["type"] as? String == "https://api.backend.ai/probs/auth-failed", "\(what)")
                    #expect(body["title"] != nil, "\(what)")
                }
            }
            // A tampered date or content type: the signature no longer matches either.
            var date = good
            date[.date] = try SignedAPI.headers(method: .get, path: "/x", accessKey: ak, secretKey: sk, date: Date().addingTimeInterval(1))[.date]
            var bodyType = good
            bodyType[.contentType] = "application/json"
            for (what, headers) in [("date", date), ("content type", bodyType)] {
                try await client.execute(uri: "/auth/keypair", method: .get, headers: headers) { #expect($0.status == .unauthorized, "\(what)") }
            }
            // Clock skew over 15 minutes: 400 invalid-auth-params.
            let skewed = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: ak, secretKey: sk, date: Date().addingTimeInterval(-16 * 60))
            try await client.execute(uri: "/auth/keypair", method: .get, headers: skewed) { response in
                #expect(response.status == .badRequest)
                #expect((try? jsonObject(response.body))?["type"] as? String == "https://api.backend.ai/probs/invalid-auth-params")
            }
            // The explicit default port the client signs when the endpoint says :80.
            let port80 = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: ak, secretKey: sk, host: "localhost:80")
            try await client.execute(uri: "/auth/keypair", method: .get, headers: port80) { #expect($0.status == .ok) }
        }
    }

    @Test(arguments: Backend.allCases)
    func rolesAndInactiveKeys(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let user = try store.createUser(email: "user@example.com", password: "user-password", passwordRounds: 1000)
        let keypair = try store.createKeypair(userID: user.id)
        try await managerApp(store).test(.router) { client in
            let userHeaders = try SignedAPI.headers(method: .get, path: "/admin/users", accessKey: keypair.accessKey, secretKey: keypair.secretKey)
            try await client.execute(uri: "/admin/users", method: .get, headers: userHeaders) { response in
                #expect(response.status == .forbidden)
                #expect((try? jsonObject(response.body))?["type"] as? String == "https://api.backend.ai/probs/insufficient-privilege")
            }
            // The admin deactivates the user's key; the next request is refused.
            let path = "/admin/keypairs/\(keypair.accessKey)/deactivate"
            try await client.execute(uri: path, method: .post,
                                     headers: try SignedAPI.headers(method: .post, path: path, accessKey: admin.accessKey, secretKey: admin.secretKey)) {
                #expect($0.status == .ok)
            }
            let own = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: keypair.accessKey, secretKey: keypair.secretKey)
            try await client.execute(uri: "/auth/keypair", method: .get, headers: own) { #expect($0.status == .unauthorized) }
            // Another domain through X-BackendAI-Domain: forbidden for a non-superadmin.
            let user2 = try store.createUser(email: "user2@example.com", password: "user-password", passwordRounds: 1000)
            let k2 = try store.createKeypair(userID: user2.id)
            let foreign = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: k2.accessKey, secretKey: k2.secretKey, domain: "other")
            try await client.execute(uri: "/auth/keypair", method: .get, headers: foreign) { #expect($0.status == .forbidden) }
        }
    }

    @Test(arguments: Backend.allCases)
    func adminCreatesUsersAndKeypairs(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let ak = admin.accessKey, sk = admin.secretKey
        try await managerApp(store).test(.router) { client in
            let create = #"{"email": "new@example.com", "password": "new-user-password", "full_name": "New User"}"#
            try await client.execute(uri: "/admin/users", method: .post, headers: try SignedAPI.headers(method: .post, path: "/admin/users", accessKey: ak, secretKey: sk),
                                     body: ByteBuffer(string: create)) { response in
                #expect(response.status == .created)
                #expect((try? jsonObject(response.body))?["email"] as? String == "new@example.com")
            }
            let keypairBody = #"{"user_email": "new@example.com", "rate_limit": 3}"#
            var created: [String: Any] = [:]
            try await client.execute(uri: "/admin/keypairs", method: .post, headers: try SignedAPI.headers(method: .post, path: "/admin/keypairs", accessKey: ak, secretKey: sk),
                                     body: ByteBuffer(string: keypairBody)) { response in
                #expect(response.status == .created)
                created = try jsonObject(response.body)
            }
            let newAK = try #require(created["access_key"] as? String), newSK = try #require(created["secret_key"] as? String)
            // The rate limit stored on the new keypair: the 4th request in the minute is refused.
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<4 {
                let h = try SignedAPI.headers(method: .get, path: "/auth/keypair", accessKey: newAK, secretKey: newSK)
                try await client.execute(uri: "/auth/keypair", method: .get, headers: h) { statuses.append($0.status) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 3, "\(statuses)")
            #expect(statuses.last == .tooManyRequests)
            // Unknown fields and malformed JSON are refused with the field named.
            try await client.execute(uri: "/admin/keypairs", method: .post, headers: try SignedAPI.headers(method: .post, path: "/admin/keypairs", accessKey: ak, secretKey: sk),
                                     body: ByteBuffer(string: #"{"user_email": "new@example.com", "ratelimit": 3}"#)) { response in
                #expect(response.status == .badRequest)
                let body = try jsonObject(response.body)
                #expect(body["type"] as? String == "https://api.backend.ai/probs/invalid-api-params")
                #expect((body["msg"] as? String)?.contains("'ratelimit'") == true)
            }
            try await client.execute(uri: "/admin/users", method: .post, headers: try SignedAPI.headers(method: .post, path: "/admin/users", accessKey: ak, secretKey: sk),
                                     body: ByteBuffer(string: "{not json")) { #expect($0.status == .badRequest) }
            // Listing.
            try await client.execute(uri: "/admin/keypairs", method: .get, headers: try SignedAPI.headers(method: .get, path: "/admin/keypairs", accessKey: ak, secretKey: sk)) { response in
                let list = try #require(try jsonObject(response.body)["keypairs"] as? [[String: Any]])
                #expect(list.count == 2)
            }
            for path in ["/admin/users", "/admin/resource-policies?scope=user", "/admin/resource-groups", "/scaling-groups", "/auth/role"] {
                try await client.execute(uri: path, method: .get, headers: try SignedAPI.headers(method: .get, path: path, accessKey: ak, secretKey: sk)) { response in
                    #expect(response.status == .ok, "\(path)")
                }
            }
        }
    }

    @Test func oversizedBodiesAreRefused() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        let app = try managerApp(store) { $0.maxBodyBytes = 1024 }
        try await app.test(.router) { client in
            let big = #"{"email": "x@example.com", "password": ""# + String(repeating: "p", count: 4096) + #""}"#
            try await client.execute(uri: "/admin/users", method: .post,
                                     headers: try SignedAPI.headers(method: .post, path: "/admin/users", accessKey: admin.accessKey, secretKey: admin.secretKey),
                                     body: ByteBuffer(string: big)) { response in
                #expect(response.status == .contentTooLarge)
                #expect(response.headers[.contentType] == "application/problem+json")
            }
        }
        #expect(try store.user(email: "x@example.com") == nil)
    }

    @Test(arguments: Backend.allCases)
    func agentsRegisterHeartbeatAndGetLost(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let heartbeat = StoreFixtures.gpuHeartbeat("gpu-node-7")
        let encoded = try JSONEncoder().encode(heartbeat)
        try await managerApp(store).test(.router) { client in
            try await client.execute(uri: AgentAPI.heartbeatPath, method: .post, headers: [.authorization: "Bearer wrong", .contentType: "application/json"],
                                     body: ByteBuffer(bytes: encoded)) { #expect($0.status == .unauthorized) }
            let agentHeaders: HTTPFields = [.authorization: "Bearer test-cluster-secret", .contentType: "application/json"]
            try await client.execute(uri: AgentAPI.heartbeatPath, method: .post, headers: agentHeaders, body: ByteBuffer(bytes: encoded)) { response in
                #expect(response.status == .ok)
                let reply = try JSONDecoder().decode(HeartbeatReply.self, from: Data(response.body.readableBytesView))
                #expect(reply.registered && reply.status == "ALIVE" && reply.schedulable)
            }
            var bad = heartbeat
            bad.address = "somewhere"
            try await client.execute(uri: AgentAPI.heartbeatPath, method: .post, headers: agentHeaders, body: ByteBuffer(bytes: try JSONEncoder().encode(bad))) { response in
                #expect(response.status == .badRequest)
                #expect(((try? jsonObject(response.body))?["msg"] as? String)?.contains("address") == true)
            }
            _ = try store.markLostAgents(silentSince: Clock.nowMicros() + 1_000_000)
            let list = try SignedAPI.headers(method: .get, path: "/admin/agents", accessKey: admin.accessKey, secretKey: admin.secretKey)
            try await client.execute(uri: "/admin/agents", method: .get, headers: list) { response in
                let agents = try #require(try jsonObject(response.body)["agents"] as? [[String: Any]])
                #expect(agents.first?["status"] as? String == "LOST")
                #expect((agents.first?["devices"] as? [[String: Any]])?.first?["model"] as? String == "H200")
            }
            try await client.execute(uri: AgentAPI.heartbeatPath, method: .post, headers: agentHeaders, body: ByteBuffer(bytes: encoded)) { response in
                let reply = try JSONDecoder().decode(HeartbeatReply.self, from: Data(response.body.readableBytesView))
                #expect(reply.registered && reply.status == "ALIVE", "a LOST agent that returns is ALIVE again")
            }
            let path = "/admin/agents/gpu-node-7/schedulable"
            try await client.execute(uri: path, method: .post, headers: try SignedAPI.headers(method: .post, path: path, accessKey: admin.accessKey, secretKey: admin.secretKey),
                                     body: ByteBuffer(string: #"{"schedulable": false}"#)) { response in
                #expect((try? jsonObject(response.body))?["schedulable"] as? Bool == false)
            }
        }
    }

    @Test func lostAgentMonitorRunsOnItsOwn() async throws {
        let (db, store, _) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.gpuHeartbeat("quiet-node"))
        var config = ManagerConfig()
        config.host = "127.0.0.1"
        config.port = 0
        config.agentLostTimeout = 1
        let server = try ManagerServer(store: store, config: config, clusterSecret: "s")
        let monitor = Task { await server.monitorAgents() }
        defer { monitor.cancel() }
        var status: AgentStatus?
        for _ in 0..<40 {
            try await Task.sleep(for: .milliseconds(100))
            status = try store.agent(id: "quiet-node")?.status
            if status == .lost { break }
        }
        #expect(status == .lost)
    }

    @Test func openAPIDocumentListsEveryRouteAndEveryRouteIsServed() async throws {
        let (db, store, _) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        let server = try ManagerServer(store: store, config: ManagerConfig(), clusterSecret: "s")
        try await Application(router: server.makeRouter()).test(.router) { client in
            var document: [String: Any] = [:]
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                document = try jsonObject(response.body)
            }
            #expect(document["openapi"] as? String == "3.0.3")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            for spec in server.api.routes {
                #expect(paths[spec.openAPIPath]?[spec.method.rawValue.lowercased()] != nil, "\(spec.method) \(spec.path) missing from openapi.json")
                // Served: anything but the router's own 404.
                let uri = spec.path.replacingOccurrences(of: ":accessKey", with: "AKIAX").replacingOccurrences(of: ":agentId", with: "n1")
                try await client.execute(uri: uri, method: spec.method) { response in
                    let type = (try? jsonObject(response.body))?["type"] as? String
                    #expect(type != "https://api.backend.ai/probs/url-not-found", "\(spec.method) \(spec.path) is documented but not routed")
                }
            }
            #expect(paths.count == Set(server.api.routes.map(\.openAPIPath)).count + 2)
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .forbidden, "no token configured: the API port serves no metrics")
                #expect(String(buffer: response.body).contains("metrics_listen"), "the refusal says how to get metrics")
            }
            try await client.execute(uri: "/no/such/path", method: .get) { response in
                #expect(response.status == .notFound)
                #expect((try? jsonObject(response.body))?["type"] as? String == "https://api.backend.ai/probs/url-not-found")
            }
        }
    }

    /// /metrics on the API port: only with the operator's bearer token.
    @Test func metricsNeedTheOperatorsToken() async throws {
        let (db, store, _) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        try await managerApp(store, configure: { $0.metricsToken = "metrics-s3cret" }).test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer wrong-token-xx"]) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer metrics-s3cret"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("hb_requests") || String(buffer: response.body).contains("http_requests_total"))
            }
        }
        let config = try ManagerConfig.load(ConfigFile(toml: "[manager]\nmetrics_listen = \"127.0.0.1:9999\"\nmetrics_token = \"t\"", path: "m.toml"))
        #expect(config.metricsListen?.host == "127.0.0.1" && config.metricsListen?.port == 9999 && config.metricsToken == "t")
        #expect(throws: ConfigFileError.self) { try ManagerConfig.load(ConfigFile(toml: "[manager]\nmetrics_listen = \"9999\"", path: "m.toml")) }
    }

    /// Agents are told to beat at least three times per lost timeout, and cluster networks'
    /// pools are read (and refused) as CIDR blocks.
    @Test func heartbeatIntervalFitsTheLostTimeoutAndNetworkPoolsParse() throws {
        let short = try ManagerConfig.load(ConfigFile(toml: "[manager]\nagent_lost_timeout = 2", path: "m.toml"))
        #expect(abs(short.agentHeartbeatInterval - 2.0 / 3) < 1e-9)
        let plain = try ManagerConfig.load(ConfigFile(toml: "[manager]\n", path: "m.toml"))
        #expect(plain.agentHeartbeatInterval == 5)
        #expect(plain.sessionNetworks.count == 512)
        #expect(plain.sessionNetworks.kernelAddress(network: 3, rank: 1) == "198.18.3.11")
        let pool = try ManagerConfig.load(ConfigFile(toml: "[manager]\nsession_network_pool = \"10.213.7.9/16\"", path: "m.toml"))
        #expect(pool.sessionNetworks.count == 256)
        #expect(pool.sessionNetworks.kernelAddress(network: 255, rank: 0) == "10.213.255.10")
        for bad in ["10.0.0.0/25", "10.0.0/16", "10.0.0.0", "300.0.0.0/16"] {
            #expect(throws: ConfigFileError.self, "\(bad)") {
                try ManagerConfig.load(ConfigFile(toml: "[manager]\nsession_network_pool = \"\(bad)\"", path: "m.toml"))
            }
        }
    }

    @Test func configErrorsNameFileKeyAndType() throws {
        let cases: [(String, String)] = [
            ("[manager]\nlisten = 8091", "'manager.listen': expected a string"),
            ("[manager]\nlisten = \"nowhere\"", "expected host:port"),
            ("[manager]\nagent_lost_timeout = \"30s\"", "'manager.agent_lost_timeout': expected a number"),
            ("[manager]\nheartbeat_intervall = 5", "'manager.heartbeat_intervall': unknown key"),
            ("[database]\nurl = \"mysql://x\"", "'database.url'"),
            ("[database]\nurl = 5", "expected a string"),
        ]
        for (toml, phrase) in cases {
            do {
                _ = try ManagerConfig.load(ConfigFile(toml: toml, path: "/etc/hangar/manager.toml"))
                Issue.record("accepted: \(toml)")
            } catch {
                #expect("\(error)".contains("/etc/hangar/manager.toml"), "\(error)")
                #expect("\(error)".contains(phrase), "\(error)")
            }
        }
        let ok = try ManagerConfig.load(ConfigFile(toml: "[manager]\nlisten = \"0.0.0.0:9000\"\nmax_body_size = \"2M\"\n[database]\nurl = \"postgresql://h/db\"", path: "m.toml"))
        #expect(ok.port == 9000 && ok.maxBodyBytes == 2 << 20 && ok.resolvedDatabase == .postgresql(url: "postgresql://h/db"))
    }
}
