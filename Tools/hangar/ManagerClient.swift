import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Identity
import Logging
import NIOCore
import NIOHTTP1

/// Talks to the manager with Backend.AI-signed requests: JSON calls, multipart uploads,
/// server-sent events and the WebSocket execute stream.
struct ManagerClient {
    let config: ClientConfig
    static let apiVersion = "v7.20230615"

    var host: String {
        let url = URL(string: config.endpoint)!
        return url.port.map { "\(url.host!):\($0)" } ?? url.host!
    }

    /// The signed headers for one request (the body is never part of the signature).
    func signedHeaders(method: String, path: String, contentType: String?) throws -> [(String, String)] {
        var headers = RequestSigner.headers(accessKey: config.accessKey, secretKey: config.secretKey, method: method, requestTarget: path, host: host,
                                            contentType: contentType, apiVersion: Self.apiVersion).map { ($0.name, $0.value) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        return headers
    }

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String? = nil) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: config.endpoint + path)
        request.method = method
        let type = contentType ?? (body == nil ? "text/plain" : "application/json")
        for (name, value) in try signedHeaders(method: method.rawValue, path: path, contentType: type) { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        return request
    }

    /// A call whose reply is JSON (or empty); a 4xx/5xx becomes the server's message.
    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, json: Any? = nil, timeout: Int64 = 600) async throws -> Any? {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        let response = try await send(try request(method, path, body: body), timeout: timeout)
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        try Self.check(response.status, data)
        return data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
    }

    /// The CLI's HTTP client. A refused or unreachable endpoint fails at once (after at most
    /// 10 s of connecting): the shared client would retry the connection until the request's
    /// deadline, minutes for long calls, and a command aimed at a stopped manager would hang.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    func send(_ request: HTTPClientRequest, timeout: Int64) async throws -> HTTPClientResponse {
        do {
            return try await Self.http.execute(request, timeout: .seconds(timeout))
        } catch {
            throw CLIError("cannot reach the manager at \(config.endpoint): \(error) (is it running? is BACKEND_ENDPOINT right?)")
        }
    }

    static func check(_ status: HTTPResponseStatus, _ data: Data) throws {
        guard status.code >= 400 else { return }
        let problem = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let message = problem?["msg"] as? String ?? problem?["title"] as? String ?? String(decoding: data, as: UTF8.self)
        throw CLIError("the manager refused (\(status.code)): \(message)")
    }

    /// Files as multipart/form-data parts named `src`, as the official client uploads them.
    func upload(session: String, files: [(name: String, data: Data)]) async throws {
        let boundary = "hangar-" + UUID().uuidString
        var body = Data()
        for file in files {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"src\"; filename=\"\(file.name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8))
            body.append(file.data)
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        let path = "/session/\(session)/upload"
        var request = try request(.POST, path, body: body, contentType: "multipart/form-data")
        request.headers.replaceOrAdd(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        let response = try await send(request, timeout: 300)
        try Self.check(response.status, Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
    }

    /// Server-sent events until the server says `server_close` (or the stream ends).
    func events(_ path: String, _ handle: (String, String) throws -> Void) async throws {
        var request = HTTPClientRequest(url: config.endpoint + path)
        for (name, value) in try signedHeaders(method: "GET", path: path, contentType: nil) { request.headers.add(name: name, value: value) }
        let response = try await send(request, timeout: 86_400)
        guard response.status.code < 400 else {
            try Self.check(response.status, Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
            return
        }
        var pending = ""
        var event = "message", data: [String] = []
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let newline = pending.firstIndex(of: "\n") {
                let line = String(pending[..<newline]).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
                pending = String(pending[pending.index(after: newline)...])
                if line.isEmpty {
                    if !data.isEmpty || event != "message" {
                        if event == "server_close" { return }
                        try handle(event, data.joined(separator: "\n"))
                    }
                    event = "message"
                    data = []
                } else if line.hasPrefix("event:") {
                    event = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
                } else if line.hasPrefix("data:") {
                    data.append(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
                }
            }
        }
    }

    /// Runs code over the WebSocket execute stream, writing stdout and stderr as they arrive
    /// and answering input requests from this process's stdin.
    /// - Returns: the exit code the run finished with (nil if the stream ended early).
    func execute(sessionID: String, first: [String: Any]) async throws -> Int? {
        let path = "/stream/session/\(sessionID)/execute"
        var headers = HTTPFields()
        for (name, value) in try signedHeaders(method: "GET", path: path, contentType: nil) {
            headers.append(HTTPField(name: HTTPField.Name(name)!, value: value))
        }
        let url = config.endpoint.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + path
        let firstFrame = String(decoding: try JSONSerialization.data(withJSONObject: first), as: UTF8.self)
        let outcome = ExitBox()
        var logger = Logger(label: "hangar.cli")
        logger.logLevel = .critical
        try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 16 << 20, additionalHeaders: headers), logger: logger) { inbound, outbound, _ in
            try await outbound.write(.text(firstFrame))
            for try await message in inbound.messages(maxSize: 64 << 20) {
                guard case .text(let text) = message,
                      let frame = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
                for pair in frame["console"] as? [[Any]] ?? [] {
                    guard pair.count == 2, let stream = pair[0] as? String else { continue }
                    let text = pair[1] as? String ?? ""
                    if stream == "stderr" { FileHandle.standardError.write(Data(text.utf8)) } else { FileHandle.standardOutput.write(Data(text.utf8)) }
                }
                switch frame["status"] as? String {
                case "finished":
                    outcome.set(frame["exitCode"] as? Int ?? 0)
                    return
                case "waiting-input":
                    let prompt = (frame["options"] as? [String: Any])?["prompt"] as? String ?? ""
                    FileHandle.standardError.write(Data(prompt.utf8))
                    try await outbound.write(.text(readLine(strippingNewline: true) ?? ""))
                case "error":
                    throw CLIError("execution failed: \(frame["msg"] as? String ?? text)")
                default:
                    continue
                }
            }
        }
        return outcome.value
    }
}

/// The exit code, carried out of the WebSocket handler.
final class ExitBox: @unchecked Sendable {
    private let lock = NSLock()
    private var code: Int?
    func set(_ value: Int) { lock.withLock { code = value } }
    var value: Int? { lock.withLock { code } }
}
