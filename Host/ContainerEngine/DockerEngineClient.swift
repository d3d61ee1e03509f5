import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A client for the Docker Engine API over its unix socket. It speaks the versioned paths
/// (`/v1.41/...`) that Docker and podman's compatible service both serve, so one client
/// drives either.
public final class DockerEngineClient: ContainerEngine {
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
        let trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
        throw EngineError(status: Self.conflictStatus(status, trimmed), operation: operation, message: trimmed)
    }

    /// Podman's compatible service answers some conflicts (a container name in use, removing a
    /// running container) with 500 where Docker answers 409; callers decide on the status, so
    /// those read as the 409 they are.
    static func conflictStatus(_ status: Int, _ message: String) -> Int {
        guard status == 500 else { return status }
        let conflicts = ["is already in use", "cannot be removed without force", "as it is running", "container is running"]
        return conflicts.contains { message.contains($0) } ? 409 : status
    }

    // MARK: - System and images

    /// Engine name and version ("Podman Engine 4.3.1", "Docker Engine 28.2.2").
    public func version() async throws -> EngineVersion {
        let object = try await call(.GET, "/version", operation: "version").json as? [String: Any] ?? [:]
        let component = (object["Components"] as? [[String: Any]])?.first
        return EngineVersion(name: component?["Name"] as? String ?? "unknown", version: object["Version"] as? String ?? "?",
                             apiVersion: object["ApiVersion"] as? String ?? "?")
    }

    /// Image ids, tags and sizes.
    public func images() async throws -> [ImageSummary] {
        let list = try await call(.GET, "/images/json", operation: "list images").json as? [[String: Any]] ?? []
        return list.map { image in
            ImageSummary(id: image["Id"] as? String ?? "", tags: image["RepoTags"] as? [String] ?? [],
                         sizeBytes: (image["Size"] as? NSNumber)?.int64Value ?? 0, labels: image["Labels"] as? [String: String] ?? [:])
        }
    }

    public func imageLabels(_ name: String) async throws -> [String: String] {
        let reply = try await call(.GET, "/images/\(name)/json", operation: "inspect image \(name)")
        let config = (reply.json as? [String: Any])?["Config"] as? [String: Any]
        return (config?["Labels"] as? [String: String]) ?? [:]
    }

    public func imageExists(_ name: String) async throws -> Bool {
        try await call(.GET, "/images/\(name)/json", operation: "inspect image \(name)", accept: [404]).status != 404
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

    public func archive(_ id: String, path: String, maxBytes: Int) async throws -> [UInt8]? {
        let reply = try await call(.GET, "/containers/\(id)/archive", query: [("path", path)], operation: "read \(path) in container \(id.prefix(12))",
                                   timeout: .minutes(10), maxBytes: maxBytes, accept: [404])
        return reply.status == 404 ? nil : Array(reply.body.readableBytesView)
    }

    /// Splits "name:tag" (see `ImageReference`).
    public static func split(_ image: String) -> (String, String) { ImageReference.split(image) }

    // MARK: - Containers

    /// Creates a container from a spec (laid out as the Docker API's create body); returns its id.
    public func create(_ spec: ContainerSpec) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: Self.createBody(spec))
        let reply = try await call(.POST, "/containers/create", query: [("name", spec.name)], json: body, operation: "create container \(spec.name)")
        guard let id = (reply.json as? [String: Any])?["Id"] as? String else {
            throw EngineError(status: reply.status, operation: "create container \(spec.name)", message: "no Id in the engine's answer")
        }
        return id
    }

    /// The Docker Engine API create body of a spec (Docker and podman's compatible service
    /// read the same shape).
    public static func createBody(_ spec: ContainerSpec) -> [String: Any] {
        var host: [String: Any] = [
            "Binds": spec.mounts.map { "\($0.hostPath):\($0.containerPath):\($0.readOnly ? "ro" : "rw")" },
            "Devices": spec.devices.map { ["PathOnHost": $0.hostPath, "PathInContainer": $0.containerPath, "CgroupPermissions": $0.permissions] },
            "CapAdd": spec.capabilities,
            "GroupAdd": spec.groups,
            "Ulimits": spec.ulimits.map { ["Name": $0.name, "Soft": $0.soft, "Hard": $0.hard] },
            "Sysctls": spec.sysctls,
            "SecurityOpt": spec.securityOptions,
            "Init": false,
        ]
        if let pids = spec.pidsLimit { host["PidsLimit"] = pids }
        if !spec.cpuset.isEmpty { host["CpusetCpus"] = spec.cpuset.map(String.init).joined(separator: ",") }
        if let nano = spec.nanoCPUs { host["NanoCpus"] = nano }
        if let memory = spec.memoryBytes, memory > 0 {
            host["Memory"] = memory
            host["MemorySwap"] = memory  // equal to Memory: no swap
        }
        if spec.hostIPC {
            // The host's IPC namespace brings the host's /dev/shm: engines refuse a size for it.
            host["IpcMode"] = "host"
        } else if let shm = spec.sharedMemoryBytes {
            host["ShmSize"] = shm
        }
        if !spec.extraHosts.isEmpty { host["ExtraHosts"] = spec.extraHosts }
        if !spec.cdiDevices.isEmpty { host["DeviceRequests"] = [["Driver": "cdi", "DeviceIDs": spec.cdiDevices]] }
        var body: [String: Any] = ["Image": spec.image, "Env": spec.environment, "Labels": spec.labels, "HostConfig": host]
        if let dir = spec.workingDirectory { body["WorkingDir"] = dir }
        if let hostname = spec.hostname { body["Hostname"] = hostname }
        if let entrypoint = spec.entrypoint { body["Entrypoint"] = entrypoint }
        if let command = spec.command { body["Cmd"] = command }
        if !spec.networks.isEmpty {
            body["NetworkingConfig"] = ["EndpointsConfig": Dictionary(uniqueKeysWithValues: spec.networks.map { ($0, [String: Any]()) })]
        }
        return body
    }

    public func start(_ id: String) async throws {
        try await call(.POST, "/containers/\(id)/start", operation: "start container \(id.prefix(12))", accept: [304])
    }

    /// Stops with SIGTERM, then SIGKILL after `timeout` seconds.
    public func stop(_ id: String, timeout: Int) async throws {
        try await call(.POST, "/containers/\(id)/stop", query: [("t", String(timeout))], operation: "stop container \(id.prefix(12))",
                       timeout: .seconds(Int64(timeout) + 30), accept: [304])
    }

    public func kill(_ id: String, signal: String) async throws {
        try await call(.POST, "/containers/\(id)/kill", query: [("signal", signal)], operation: "kill container \(id.prefix(12))", accept: [409])
    }

    /// Removes a container (and its anonymous volumes); missing containers are fine.
    public func remove(_ id: String, force: Bool) async throws {
        try await call(.DELETE, "/containers/\(id)", query: [("force", String(force)), ("v", "true")], operation: "remove container \(id.prefix(12))", accept: [404])
    }

    /// Name, labels and state, or nil if the container does not exist.
    public func inspect(_ id: String) async throws -> ContainerDetails? {
        let reply = try await call(.GET, "/containers/\(id)/json", operation: "inspect container \(id.prefix(12))", accept: [404])
        guard reply.status != 404, let object = reply.json as? [String: Any] else { return nil }
        let state = object["State"] as? [String: Any] ?? [:]
        let running = state["Running"] as? Bool ?? false
        return ContainerDetails(id: object["Id"] as? String ?? id, name: (object["Name"] as? String ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/")),
                                labels: (object["Config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:],
                                state: ContainerState(running: running, exitCode: running ? nil : state["ExitCode"] as? Int,
                                                      oomKilled: state["OOMKilled"] as? Bool ?? false),
                                pid: Int32(truncatingIfNeeded: state["Pid"] as? Int ?? 0))
    }

    /// Waits for the container to exit; returns its exit code.
    public func wait(_ id: String) async throws -> Int { try await wait(id, timeout: .hours(24)) }

    /// Waits at most `timeout` for the container to exit.
    public func wait(_ id: String, timeout: TimeAmount) async throws -> Int {
        let reply = try await call(.POST, "/containers/\(id)/wait", operation: "wait for container \(id.prefix(12))", timeout: timeout)
        return (reply.json as? [String: Any])?["StatusCode"] as? Int ?? -1
    }

    /// Stdout and stderr so far, demultiplexed from the engine's 8-byte frame format.
    public func logs(_ id: String) async throws -> (stdout: String, stderr: String) { try await logs(id, maxBytes: 16 << 20) }

    /// Stdout and stderr so far, at most `maxBytes` of them.
    public func logs(_ id: String, maxBytes: Int) async throws -> (stdout: String, stderr: String) {
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
    public func containers(labels: [String]) async throws -> [ContainerSummary] {
        let filters = try JSONSerialization.data(withJSONObject: ["label": labels])
        let list = try await call(.GET, "/containers/json", query: [("all", "true"), ("filters", String(decoding: filters, as: UTF8.self))],
                                  operation: "list containers").json as? [[String: Any]] ?? []
        return list.map { ContainerSummary(id: $0["Id"] as? String ?? "", labels: $0["Labels"] as? [String: String] ?? [:]) }
    }

    /// The engine's event stream, filtered to objects carrying every given label, from now on.
    /// Ends when the caller stops iterating (or the connection drops, with an error).
    public func events(labels: [String]) -> AsyncThrowingStream<EngineEvent, Error> {
        let filters = String(decoding: (try? JSONSerialization.data(withJSONObject: ["label": labels])) ?? Data("{}".utf8), as: UTF8.self)
        return lineStream(.GET, "/events", query: [URLQueryItem(name: "filters", value: filters)], operation: "events", timeout: .hours(24 * 365)) {
            Self.event(from: $0)
        }
    }

    /// `POST /images/create?fromImage=REFERENCE` with the login in `X-Registry-Auth`. The
    /// engine answers 200 and then a JSON object per line: progress, or `{"error": ...}` when
    /// the pull fails part-way (the status is already sent), which is thrown here.
    public func pull(_ reference: String, credentials: RegistryCredentials?) -> AsyncThrowingStream<PullProgress, Error> {
        var headers: [(String, String)] = []
        if let credentials {
            let login = ["username": credentials.username, "password": credentials.password, "serveraddress": credentials.serverAddress]
            let json = (try? JSONSerialization.data(withJSONObject: login, options: [.sortedKeys])) ?? Data()
            // Docker's API wants URL-safe base64 here.
            headers.append(("X-Registry-Auth", json.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")))
        }
        return lineStream(.POST, "/images/create", query: [URLQueryItem(name: "fromImage", value: reference)], headers: headers,
                          operation: "pull \(reference)", timeout: .hours(2)) { try Self.pullProgress(from: $0, reference: reference) }
    }

    /// A call whose answer is a stream of JSON lines (events, pull progress), each read by
    /// `read` into an element (nil: skip it; a throw ends the stream with that error). A
    /// non-200 answer ends it with the engine's message. Stops when the caller stops iterating.
    private func lineStream<Element: Sendable>(_ method: HTTPMethod, _ path: String, query: [URLQueryItem], headers: [(String, String)] = [],
                                               operation: String, timeout: TimeAmount,
                                               read: @escaping @Sendable ([UInt8]) throws -> Element?) -> AsyncThrowingStream<Element, Error> {
        AsyncThrowingStream { continuation in
            let task = Task { [client, socketPath, apiVersion] in
                do {
                    var components = URLComponents()
                    components.path = "/\(apiVersion)\(path)"
                    components.queryItems = query
                    guard let uri = components.string, let url = URL(httpURLWithSocketPath: socketPath, uri: uri) else {
                        throw EngineError(status: 0, operation: operation, message: "cannot build a URL for \(path)")
                    }
                    var request = HTTPClientRequest(url: url.absoluteString)
                    request.method = method
                    request.headers.add(name: "Host", value: "localhost")
                    for (name, value) in headers { request.headers.add(name: name, value: value) }
                    let response: HTTPClientResponse
                    do {
                        response = try await client.execute(request, timeout: timeout)
                    } catch {
                        throw EngineError(status: 0, operation: operation, message: "cannot reach the engine at \(socketPath): \(error)")
                    }
                    guard response.status == .ok else {
                        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                        let message = ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["message"] as? String ?? text
                        throw EngineError(status: Int(response.status.code), operation: operation, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
                    }
                    var pending = [UInt8]()
                    for try await chunk in response.body {
                        pending += chunk.readableBytesView
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = Array(pending[..<newline])
                            pending.removeFirst(newline + 1)
                            if let element = try read(line) { continuation.yield(element) }
                        }
                    }
                    if !pending.isEmpty, let element = try read(pending) { continuation.yield(element) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One line of a pull's answer; an `error` line throws it with the registry's words.
    static func pullProgress(from line: [UInt8], reference: String) throws -> PullProgress? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return nil }
        if let error = object["error"] as? String ?? (object["errorDetail"] as? [String: Any])?["message"] as? String {
            throw EngineError(status: 502, operation: "pull \(reference)", message: error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let detail = object["progressDetail"] as? [String: Any]
        return PullProgress(status: object["status"] as? String ?? "", layer: object["id"] as? String,
                            current: (detail?["current"] as? NSNumber)?.int64Value, total: (detail?["total"] as? NSNumber)?.int64Value)
    }

    static func event(from line: [UInt8]) -> EngineEvent? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return nil }
        let actor = object["Actor"] as? [String: Any] ?? [:]
        let action = object["Action"] as? String ?? object["status"] as? String ?? ""
        return EngineEvent(type: object["Type"] as? String ?? "", action: action, actorID: actor["ID"] as? String ?? object["id"] as? String ?? "",
                           attributes: actor["Attributes"] as? [String: String] ?? [:],
                           time: (object["time"] as? NSNumber)?.int64Value ?? 0)
    }

    /// One stats sample (CPU, memory, I/O, network), read from the Docker stats document
    /// (Docker and podman use the same shape; the engine reads cgroup v1 or v2 files).
    public func stats(_ id: String) async throws -> ContainerStats {
        let raw = try await call(.GET, "/containers/\(id)/stats", query: [("stream", "false")], operation: "stats of container \(id.prefix(12))").json
            as? [String: Any] ?? [:]
        return Self.stats(from: raw)
    }

    static func stats(from raw: [String: Any]) -> ContainerStats {
        func u(_ value: Any?) -> UInt64 { (value as? NSNumber)?.uint64Value ?? 0 }
        let cpu = (raw["cpu_stats"] as? [String: Any])?["cpu_usage"] as? [String: Any]
        let memory = raw["memory_stats"] as? [String: Any]
        let io = ((raw["blkio_stats"] as? [String: Any])?["io_service_bytes_recursive"] as? [[String: Any]]) ?? []
        let networks = (raw["networks"] as? [String: [String: Any]]) ?? [:]
        var s = ContainerStats()
        s.cpuUsedNanoseconds = u(cpu?["total_usage"])
        s.memoryBytes = u(memory?["usage"])
        s.memoryLimitBytes = u(memory?["limit"])
        s.ioReadBytes = io.filter { ($0["op"] as? String)?.lowercased() == "read" }.reduce(0) { $0 + u($1["value"]) }
        s.ioWriteBytes = io.filter { ($0["op"] as? String)?.lowercased() == "write" }.reduce(0) { $0 + u($1["value"]) }
        s.networkRxBytes = networks.values.reduce(0) { $0 + u($1["rx_bytes"]) }
        s.networkTxBytes = networks.values.reduce(0) { $0 + u($1["tx_bytes"]) }
        return s
    }
}
