import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An error from the container engine, carrying the engine's own message.
public struct EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    public let status: Int
    public let operation: String
    public let message: String

    public init(status: Int, operation: String, message: String) {
        self.status = status
        self.operation = operation
        self.message = message
    }

    public var description: String { "container engine: \(operation) failed (\(status)): \(message)" }
    public var isNotFound: Bool { status == 404 }
}

/// One event from the engine's event stream.
public struct EngineEvent: Sendable, Equatable {
    /// "container", "image", ...
    public var type: String
    /// "create", "start", "die" (podman: "died"), "oom", "destroy", ...
    public var action: String
    public var actorID: String
    public var attributes: [String: String]
    public var time: Int64

    /// True for the actions that mean a container has ended.
    public var isContainerExit: Bool { type == "container" && (action == "die" || action == "died") }
}

/// A client for the Docker Engine API over its unix socket. It speaks the versioned paths
/// (`/v1.41/...`) that Docker and podman's compatible service both serve, so one client
/// drives either.
public final class DockerEngineClient: Sendable {
    public let socketPath: String
    public let apiVersion: String
    private let client: HTTPClient

    public init(socketPath: String, apiVersion: String = "v1.41") {
        self.socketPath = socketPath
        self.apiVersion = apiVersion
        client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    deinit { try? client.syncShutdown() }

    /// The raw response of one call.
    public struct Reply: Sendable {
        public var status: Int
        public var body: ByteBuffer
        public var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) }
    }

    /// Makes one call; a non-2xx answer throws `EngineError` with the engine's message.
    @discardableResult
    public func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json: Data? = nil,
                     operation: String, timeout: TimeAmount = .seconds(60), maxBytes: Int = 64 << 20,
                     accept: Set<Int> = []) async throws -> Reply {
        var components = URLComponents()
        components.path = "/\(apiVersion)\(path)"
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        guard let uri = components.string, let url = URL(httpURLWithSocketPath: socketPath, uri: uri) else {
            throw EngineError(status: 0, operation: operation, message: "cannot build a URL for \(path)")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        // Podman (Go's net/http) rejects HTTP/1.1 requests without Host; AHC sends none for unix sockets.
        request.headers.add(name: "Host", value: "localhost")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw EngineError(status: 0, operation: operation, message: "cannot reach the engine at \(socketPath): \(error)")
        }
        let body = try await response.body.collect(upTo: maxBytes)
        let status = Int(response.status.code)
        if (200..<300).contains(status) || accept.contains(status) { return Reply(status: status, body: body) }
        let text = String(buffer: body)
        let message = ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["message"] as? String ?? text
        throw EngineError(status: status, operation: operation, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    // MARK: - System and images

    /// Engine name and version ("Podman Engine 4.3.1", "Docker Engine 28.2.2").
    public func version() async throws -> (name: String, version: String, apiVersion: String) {
        let object = try await call(.GET, "/version", operation: "version").json as? [String: Any] ?? [:]
        let component = (object["Components"] as? [[String: Any]])?.first
        return (component?["Name"] as? String ?? "unknown", object["Version"] as? String ?? "?", object["ApiVersion"] as? String ?? "?")
    }

    /// Image ids, tags, sizes and labels.
    public func images() async throws -> [[String: Any]] {
        try await call(.GET, "/images/json", operation: "list images").json as? [[String: Any]] ?? []
    }

    /// The image's inspect document, or nil if it is not present locally.
    public func inspectImage(_ name: String) async throws -> [String: Any]? {
        let reply = try await call(.GET, "/images/\(name)/json", operation: "inspect image \(name)", accept: [404])
        return reply.status == 404 ? nil : reply.json as? [String: Any]
    }

    /// Pulls an image, reporting each progress line the engine streams.
    public func pull(_ image: String, progress: @Sendable (String) -> Void = { _ in }) async throws {
        let (name, tag) = Self.split(image)
        let reply = try await call(.POST, "/images/create", query: [("fromImage", name), ("tag", tag)], operation: "pull \(image)", timeout: .minutes(30))
        for line in String(buffer: reply.body).split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if let error = object["error"] as? String { throw EngineError(status: 500, operation: "pull \(image)", message: error) }
            if let status = object["status"] as? String { progress(status + ((object["progress"] as? String).map { " " + $0 } ?? "")) }
        }
    }

    /// Splits "name:tag" (a registry port is not a tag); the tag defaults to "latest".
    public static func split(_ image: String) -> (String, String) {
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }

    // MARK: - Containers

    /// Creates a container from a Docker API create body (JSON); returns its id.
    public func createContainer(name: String, config: Data) async throws -> String {
        let reply = try await call(.POST, "/containers/create", query: [("name", name)], json: config, operation: "create container \(name)")
        guard let id = (reply.json as? [String: Any])?["Id"] as? String else {
            throw EngineError(status: reply.status, operation: "create container \(name)", message: "no Id in the engine's answer")
        }
        return id
    }

    public func start(_ id: String) async throws {
        try await call(.POST, "/containers/\(id)/start", operation: "start container \(id.prefix(12))", accept: [304])
    }

    /// Stops with SIGTERM, then SIGKILL after `timeout` seconds.
    public func stop(_ id: String, timeout: Int = 10) async throws {
        try await call(.POST, "/containers/\(id)/stop", query: [("t", String(timeout))], operation: "stop container \(id.prefix(12))",
                       timeout: .seconds(Int64(timeout) + 30), accept: [304])
    }

    public func kill(_ id: String, signal: String = "SIGKILL") async throws {
        try await call(.POST, "/containers/\(id)/kill", query: [("signal", signal)], operation: "kill container \(id.prefix(12))", accept: [409])
    }

    /// Removes a container (and its anonymous volumes); missing containers are fine.
    public func remove(_ id: String, force: Bool = true) async throws {
        try await call(.DELETE, "/containers/\(id)", query: [("force", String(force)), ("v", "true")], operation: "remove container \(id.prefix(12))", accept: [404])
    }

    /// The inspect document, or nil if the container does not exist.
    public func inspect(_ id: String) async throws -> [String: Any]? {
        let reply = try await call(.GET, "/containers/\(id)/json", operation: "inspect container \(id.prefix(12))", accept: [404])
        return reply.status == 404 ? nil : reply.json as? [String: Any]
    }

    /// Waits for the container to exit; returns its exit code.
    public func wait(_ id: String, timeout: TimeAmount = .hours(24)) async throws -> Int {
        let reply = try await call(.POST, "/containers/\(id)/wait", operation: "wait for container \(id.prefix(12))", timeout: timeout)
        return (reply.json as? [String: Any])?["StatusCode"] as? Int ?? -1
    }

    /// Stdout and stderr so far, demultiplexed from the engine's 8-byte frame format.
    public func logs(_ id: String, maxBytes: Int = 16 << 20) async throws -> (stdout: String, stderr: String) {
        let reply = try await call(.GET, "/containers/\(id)/logs", query: [("stdout", "true"), ("stderr", "true")],
                                   operation: "logs of container \(id.prefix(12))", maxBytes: maxBytes)
        return Self.demultiplex(reply.body)
    }

    /// Splits Docker's multiplexed stream: [stream, 0, 0, 0, size (4 bytes big-endian)] frames.
    public static func demultiplex(_ buffer: ByteBuffer) -> (stdout: String, stderr: String) {
        var buffer = buffer
        var out = [UInt8](), err = [UInt8]()
        while buffer.readableBytes >= 8 {
            guard let header = buffer.readBytes(length: 8) else { break }
            guard header[0] <= 2, header[1] == 0, header[2] == 0, header[3] == 0 else {
                // Not multiplexed (a TTY container): everything is stdout.
                return (String(decoding: header + (buffer.readBytes(length: buffer.readableBytes) ?? []), as: UTF8.self), "")
            }
            let size = Int(header[4]) << 24 | Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
            guard let frame = buffer.readBytes(length: min(size, buffer.readableBytes)) else { break }
            if header[0] == 2 { err += frame } else { out += frame }
        }
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Containers (running or not) carrying every given label (`key=value` or `key`).
    public func containers(labels: [String]) async throws -> [[String: Any]] {
        let filters = try JSONSerialization.data(withJSONObject: ["label": labels])
        return try await call(.GET, "/containers/json", query: [("all", "true"), ("filters", String(decoding: filters, as: UTF8.self))],
                              operation: "list containers").json as? [[String: Any]] ?? []
    }

    /// The engine's event stream, filtered to objects carrying every given label, from now on.
    /// Ends when the caller stops iterating (or the connection drops, with an error).
    public func events(labels: [String]) -> AsyncThrowingStream<EngineEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let filters = String(decoding: try JSONSerialization.data(withJSONObject: ["label": labels]), as: UTF8.self)
                    var components = URLComponents()
                    components.path = "/\(apiVersion)/events"
                    components.queryItems = [URLQueryItem(name: "filters", value: filters)]
                    guard let uri = components.string, let url = URL(httpURLWithSocketPath: socketPath, uri: uri) else {
                        throw EngineError(status: 0, operation: "events", message: "cannot build the events URL")
                    }
                    var request = HTTPClientRequest(url: url.absoluteString)
                    request.headers.add(name: "Host", value: "localhost")
                    let response = try await client.execute(request, timeout: .hours(24 * 365))
                    guard response.status == .ok else {
                        throw EngineError(status: Int(response.status.code), operation: "events", message: String(buffer: try await response.body.collect(upTo: 1 << 20)))
                    }
                    var pending = [UInt8]()
                    for try await chunk in response.body {
                        pending += chunk.readableBytesView
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = Array(pending[..<newline])
                            pending.removeFirst(newline + 1)
                            if let event = Self.event(from: line) { continuation.yield(event) }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func event(from line: [UInt8]) -> EngineEvent? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return nil }
        let actor = object["Actor"] as? [String: Any] ?? [:]
        let action = object["Action"] as? String ?? object["status"] as? String ?? ""
        return EngineEvent(type: object["Type"] as? String ?? "", action: action, actorID: actor["ID"] as? String ?? object["id"] as? String ?? "",
                           attributes: actor["Attributes"] as? [String: String] ?? [:],
                           time: (object["time"] as? NSNumber)?.int64Value ?? 0)
    }

    /// One stats sample (CPU, memory, I/O, network) as the engine reports it.
    public func stats(_ id: String) async throws -> [String: Any] {
        try await call(.GET, "/containers/\(id)/stats", query: [("stream", "false")], operation: "stats of container \(id.prefix(12))").json as? [String: Any] ?? [:]
    }
}
