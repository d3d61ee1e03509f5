import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import PluginHost
import Prometheus
import StateStore
import StreamTunnel
import Synchronization

/// Process-wide Prometheus registry behind swift-metrics (MetricsSystem can be bootstrapped
/// once per process).
public enum ManagerMetrics {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    /// Installs the Prometheus factory as the swift-metrics backend, once.
    public static func bootstrap() {
        bootstrapped.withLock { done in
            guard !done else { return }
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            done = true
        }
    }

    /// Times this manager became or stopped being the scheduling leader.
    static let leadershipChanges = Counter(label: "hangar_scheduler_leadership_changes_total")
}

/// The manager's composition root: it assembles the plugin host, the session lifecycle
/// (scheduling) and the HTTP API over them, and runs them with metrics, the OpenAPI document
/// and the lost-agent monitor.
public struct ManagerServer: Sendable {
    public let api: ManagerAPI
    public let config: ManagerConfig
    public let logger: Logger
    /// The manager's plugins (resource groups' schedulers and selectors).
    public let plugins: PluginHost

    /// - Throws: `PluginError` when the plugin search path cannot be used.
    public init(store: StateStore, config: ManagerConfig, clusterSecret: String, logger: Logger = Logger(label: "hangar.manager")) throws {
        self.config = config
        self.logger = logger
        plugins = try PluginHost(searchPaths: config.pluginSearchPaths, logger: logger)
        let holder = "\(ProcessInfo.processInfo.hostName) pid \(getpid()) \(config.host):\(config.port)"
        let leadership = SchedulerLeadership(store: store, holder: holder, sessionTimeout: max(config.leaderTimeout, config.schedulingInterval * 3))
        let lifecycle = SessionLifecycle(store: store, plugins: plugins, clusterSecret: clusterSecret, leadership: leadership,
                                         reconcileLimits: config.reconcile, sessionNetworks: config.sessionNetworks, logger: logger)
        api = ManagerAPI(store: store, lifecycle: lifecycle, config: config, clusterSecret: clusterSecret, logger: logger)
    }

    /// The router with every route, the problem+json error mapping and request metrics.
    public func makeRouter() -> Router<ManagerRequestContext> {
        ManagerMetrics.bootstrap()
        let router = Router(context: ManagerRequestContext.self)
        router.add(middleware: ProblemMiddleware { [store = api.store] entry in _ = try? await store.run { try $0.addErrorLog(entry) } })
        router.add(middleware: MetricsMiddleware())
        let routes = api.routes
        for spec in routes {
            router.on(RouterPath(spec.path), method: spec.method) { request, context in try await spec.handler(request, context) }
        }
        addExecutionStream(to: router)
        addAppStreams(to: router)
        addTerminalStream(to: router)
        let document = OpenAPIDocument.make(routes: routes)
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document)))
        }
        // Metrics tell an outsider the cluster's load and who calls what: on the API port only
        // with the operator's bearer token; otherwise on their own listener (metrics_listen).
        router.get("/metrics") { [config] request, _ in
            guard !config.metricsToken.isEmpty else {
                throw APIError(.forbidden, "insufficient-privilege", "Metrics are not served here.",
                               "the API port does not serve /metrics: set [manager] metrics_listen (e.g. \"127.0.0.1:9464\") for a metrics-only listener, or metrics_token to read them here with Authorization: Bearer TOKEN")
            }
            let given = request.headers[.authorization] ?? ""
            let expected = "Bearer " + config.metricsToken
            guard given.utf8.count == expected.utf8.count, zip(given.utf8, expected.utf8).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
                throw APIError(.unauthorized, "auth-failed", "Authentication failed.", "/metrics needs Authorization: Bearer with [manager] metrics_token")
            }
            return Self.metricsResponse()
        }
        return router
    }

    static func metricsResponse() -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                 body: .init(byteBuffer: ByteBuffer(bytes: ManagerMetrics.registry.emitToBuffer())))
    }

    /// The metrics-only listener, when `metrics_listen` names one.
    public func makeMetricsApplication() -> Application<RouterResponder<BasicRequestContext>>? {
        guard let listen = config.metricsListen else { return nil }
        let router = Router()
        router.get("/metrics") { _, _ in Self.metricsResponse() }
        return Application(router: router, configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "hangar-manager-metrics"),
                           logger: logger)
    }

    /// The application, listening where the config says.
    public func makeApplication() -> some ApplicationProtocol {
        let router = makeRouter()
        return Application(router: router, server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .init(maxFrameSize: 16 << 20, extensions: [FastUnmaskingExtension.factory]))),
                           configuration: .init(address: .hostname(config.host, port: config.port), serverName: "hangar-manager"), logger: logger)
    }

    /// Serves until SIGINT/SIGTERM, marking silent agents LOST in the background.
    /// - Throws: `StoreError(.configuration)` when another manager serves the same SQLite database.
    public func run() async throws {
        // Held while serving: one manager per SQLite database (several need PostgreSQL).
        let sqliteLock = try api.store.managerLock()
        defer { withExtendedLifetime(sqliteLock) {}; api.lifecycle.leadership?.resign() }
        let app = makeApplication()
        let metrics = makeMetricsApplication()
        // Sessions accepted or ended by the other managers wake this one while it leads, as
        // its own do through their route (PostgreSQL NOTIFY; nothing on SQLite).
        api.lifecycle.leadership?.listenForWakes { [lifecycle = api.lifecycle] in Task { await lifecycle.wake() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            if let metrics { group.addTask { try await metrics.runService() } }
            group.addTask { await monitorAgents() }
            group.addTask { await scheduleSessions() }
            // Several managers (PostgreSQL): keypair rate limits hold for the cluster.
            if !api.store.answersInProcess, let name = api.lifecycle.leadership?.holder {
                group.addTask { await shareRateLimits(as: name) }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Scheduling rounds: pending sessions are placed and their kernels created.
    public func scheduleSessions() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(config.schedulingInterval))
            await api.lifecycle.wake()
        }
    }

    /// Every second, this manager's keypair request counts go to the database and the other
    /// managers' come back (`RateLimiter.share`).
    public func shareRateLimits(as name: String) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            do {
                try await api.auth.shareRateLimits(manager: name)
            } catch {
                logger.warning("cannot share rate-limit counts", metadata: ["error": .string("\(error)")])
            }
        }
    }

    /// Every second (or faster for short timeouts), agents silent past the timeout become LOST.
    public func monitorAgents() async {
        let interval = min(1.0, config.agentLostTimeout / 4)
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(interval))
            let cutoff = Clock.nowMicros() - Int64(config.agentLostTimeout * 1_000_000)
            do {
                let lost = try await api.store.run { try $0.markLostAgents(silentSince: cutoff) }
                for id in lost { logger.warning("agent lost", metadata: ["agent": .string(id), "timeout_s": .stringConvertible(config.agentLostTimeout)]) }
                if !lost.isEmpty { await api.lifecycle.agentsLost(lost) }
            } catch {
                logger.error("lost-agent check failed", metadata: ["error": .string("\(error)")])
            }
        }
    }
}

/// An OpenAPI 3 document generated from the route table.
enum OpenAPIDocument {
    static func make(routes: [RouteSpec]) -> String {
        var paths: [String: [String: Any]] = [:]
        let problem: [String: Any] = ["description": "An error (application/problem+json with type and title)",
                                      "content": ["application/problem+json": ["schema": ["$ref": "#/components/schemas/Problem"]]]]
        for spec in routes + [
            RouteSpec(method: .get, path: "/openapi.json", summary: "This document", access: .public, bodyKeys: nil) { _, _ in Response(status: .ok) },
            RouteSpec(method: .get, path: "/metrics", summary: "Prometheus metrics (Authorization: Bearer [manager] metrics_token; or on metrics_listen)",
                      access: .public, bodyKeys: nil) { _, _ in Response(status: .ok) },
        ] {
            var operation: [String: Any] = [
                "summary": spec.summary,
                "operationId": "\(spec.method.rawValue.lowercased())\(spec.openAPIPath.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: ""))",
                "responses": ["200": ["description": "Success"], "default": problem],
            ]
            let parameters = spec.openAPIPath.split(separator: "/").filter { $0.hasPrefix("{") }.map { segment -> [String: Any] in
                ["name": String(segment.dropFirst().dropLast()), "in": "path", "required": true, "schema": ["type": "string"]]
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            switch spec.access {
            case .public: operation["security"] = [[String: [String]]]()
            case .user, .admin: operation["security"] = [["BackendAIKeypair": [String]()]]
            case .agent: operation["security"] = [["ClusterSecret": [String]()]]
            }
            if spec.access == .admin { operation["x-hangar-role"] = "admin" }
            if let keys = spec.bodyKeys {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": [
                    "type": "object", "additionalProperties": spec.access == .agent,
                    "properties": Dictionary(uniqueKeysWithValues: keys.map { ($0, [String: Any]()) }),
                ]]]]
            }
            paths[spec.openAPIPath, default: [:]][spec.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.0.3",
            "info": ["title": "Hangar manager API", "version": HangarVersion.current,
                     "description": "Backend.AI-compatible manager API (\(HangarVersion.backendAPI)) plus Hangar's administration and agent endpoints."],
            "paths": paths,
            "components": [
                "securitySchemes": [
                    "BackendAIKeypair": ["type": "apiKey", "in": "header", "name": "Authorization",
                                         "description": "BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>; with Date and X-BackendAI-Version headers"],
                    "ClusterSecret": ["type": "http", "scheme": "bearer"],
                ],
                "schemas": ["Problem": ["type": "object", "required": ["type", "title"],
                                        "properties": ["type": ["type": "string"], "title": ["type": "string"], "msg": ["type": "string"]]]],
            ],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
