import AsyncHTTPClient
import ClusterProtocol
import ConfigFile
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PluginHost
import StorageProxy
import Testing
import TestSupport

/// A real storage proxy on a loopback port, over volumes in a scratch directory, with the
/// bundled storage plugins loaded from the test runner's folder.
final class ProxyHarness: @unchecked Sendable {
    static var binDir: String { PluginPaths.binDir }
    let dir: String
    let port: Int
    let server: StorageProxyServer
    let task: Task<Void, any Error>
    let secret = "test-secret-\(UUID().uuidString)"
    var base: String { "http://127.0.0.1:\(port)" }

    /// - Parameter volumes: name → (backend, root); a nil root makes a fresh directory.
    init(volumes: [(name: String, backend: String, root: String?)] = [("v1", "vfs", nil)], tokenTTL: Double = 3600) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-proxy-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = try freeLoopbackPort()
        var config = StorageProxyConfig()
        config.port = port
        config.secret = secret
        config.tokenTTL = tokenTTL
        for v in volumes {
            let root = v.root ?? dir + "/" + v.name
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            config.volumes.append(.init(name: v.name, backend: v.backend, options: .table([("root", .string(root))])))
        }
        let (started, ready) = AsyncStream<Void>.makeStream()
        var logger = Logger(label: "test.storage-proxy")
        logger.logLevel = .warning
        server = try StorageProxyServer(config: config, plugins: try PluginHost(searchPaths: [Self.binDir]), logger: logger)
        // The application the role serves (its HTTP pipeline included), on the test's port.
        let app = server.makeApplication(host: "127.0.0.1", port: port, onServerRunning: { _ in ready.yield(); ready.finish() })
        // If the server cannot start, the stream ends without a value instead of hanging.
        task = Task {
            defer { ready.finish() }
            try await app.run()
        }
        var running = false
        for await _ in started { running = true }
        try #require(running, "the storage proxy did not start listening on \(port)")
    }

    /// A port the kernel picked as free (so parallel suites and busy ephemeral ranges cannot
    /// collide the way randomly chosen ports can).
    func stop() {
        task.cancel()
        server.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A manager-API call; returns the status and JSON reply.
    @discardableResult
    func manager(_ path: String, _ body: [String: Any]? = nil, secret: String? = nil) async throws -> (Int, [String: Any]) {
        var request = HTTPClientRequest(url: base + "/manager/" + path)
        request.method = body == nil ? .GET : .POST
        request.headers.add(name: StorageProxyAPI.secretHeader, value: secret ?? self.secret)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let data = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView)) as? [String: Any]) ?? [:])
    }

    /// Creates a folder and returns its id and host path.
    func folder(_ volume: String = "v1", quota: Int64 = 0) async throws -> (id: String, path: String) {
        let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let (status, reply) = try await manager("folder/create", ["volume": volume, "folder": id, "quota": quota])
        try #require(status == 201, "\(reply)")
        return (id, reply["path"] as? String ?? "")
    }

    /// One PATCH of `data` at `offset`.
    func patch(_ url: String, offset: Int64, _ data: ByteBuffer) async throws -> (Int, Int64?) {
        var request = HTTPClientRequest(url: url)
        request.method = .PATCH
        request.headers.add(name: "Tus-Resumable", value: "1.0.0")
        request.headers.add(name: "Upload-Offset", value: String(offset))
        request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
        request.body = .bytes(data)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        _ = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "Upload-Offset").flatMap(Int64.init))
    }

    func head(_ url: String) async throws -> Int64? {
        var request = HTTPClientRequest(url: url)
        request.method = .HEAD
        return try await HTTPClient.shared.execute(request, timeout: .seconds(30)).headers.first(name: "Upload-Offset").flatMap(Int64.init)
    }
}
