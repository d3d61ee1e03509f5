import AsyncHTTPClient
import Foundation
import HTTPTypes
import Identity
import NIOCore
import NIOHTTP1

/// The engine and image the tests use: a real podman service started by
/// Tools/scripts/test.sh (or .ci/run), and the image from Tools/images/python-image.sh.
public enum TestEngine {
    /// The Docker Engine API socket of the test engine.
    /// - Throws: `TestSupportError` saying how to provide one when it is not set.
    public static func socket() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["HANGAR_TEST_ENGINE_SOCKET"] else {
            throw TestSupportError("HANGAR_TEST_ENGINE_SOCKET is not set: run the tests through Tools/scripts/test.sh, which starts podman's Docker-compatible service, or point it at a Docker/podman socket")
        }
        return path
    }
    /// The Python image every container test runs.
    public static var image: String { ProcessInfo.processInfo.environment["HANGAR_TEST_IMAGE"] ?? "hangar/python:3.11-bookworm" }
    /// Where `hangard`, `hangar`, the runner and the plugins were built.
    public static var binDir: String { PluginPaths.binDir }
}

/// The one way tests start a Hangar role: `hangard ARGUMENTS` from the bin folder, stdout to
/// `log` and stderr to `log.err`.
public enum Hangard {
    public static func launch(_ arguments: [String], log: String, environment: [String: String]? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEngine.binDir + "/hangard")
        process.arguments = arguments
        if let environment { process.environment = environment }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        _ = FileManager.default.createFile(atPath: log + ".err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log + ".err")
        try process.run()
        return process
    }
}

/// Waiting until something a role does becomes true (it registered, it answers, it wrote a file).
public enum Readiness {
    /// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
    @discardableResult
    public static func wait(upTo timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(100),
                            until condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: interval)
        }
        return try await condition()
    }

    /// The superadmin keys a manager prints on its first start (`export BACKEND_ACCESS_KEY=…`),
    /// read from its log once they and the cluster secret in `dataDir` are there.
    public static func managerCredentials(log: String, dataDir: String, upTo timeout: Duration = .seconds(10)) async throws -> (accessKey: String, secretKey: String) {
        var keys = ("", "")
        await wait(upTo: timeout) {
            let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            for line in out.split(separator: "\n") {
                if line.hasPrefix("export BACKEND_ACCESS_KEY=") { keys.0 = String(line.dropFirst("export BACKEND_ACCESS_KEY=".count)) }
                if line.hasPrefix("export BACKEND_SECRET_KEY=") { keys.1 = String(line.dropFirst("export BACKEND_SECRET_KEY=".count)) }
            }
            return !keys.1.isEmpty && FileManager.default.fileExists(atPath: dataDir + "/cluster-secret")
        }
        guard !keys.0.isEmpty, !keys.1.isEmpty else {
            let err = (try? String(contentsOfFile: log + ".err", encoding: .utf8)) ?? ""
            throw TestSupportError("the manager did not print its credentials in \(log): \(err.suffix(2000))")
        }
        return keys
    }
}

/// Requests signed the way the official Backend.AI client signs them (API v7), for tests of
/// the manager over HTTP and through the `.router` test client.
public enum SignedAPI {
    public static let apiVersion = "v7.20230615"

    /// The Date header text the official client sends.
    public static func dateText(_ date: Date = Date()) -> String {
        CivilTime.iso8601(micros: Int64(date.timeIntervalSince1970 * 1_000_000)).replacingOccurrences(of: "Z", with: "+00:00")
    }

    /// Headers of a signed request (for HummingbirdTesting's client).
    public static func headers(method: HTTPRequest.Method, path: String, accessKey: String, secretKey: String,
                               date: Date = Date(), host: String = "localhost", contentType: String? = "application/json",
                               version: String = apiVersion, domain: String? = nil) throws -> HTTPFields {
        let text = dateText(date)
        let input = SignatureInput(method: method.rawValue, requestTarget: path, date: text, host: host, contentType: contentType, apiVersion: version)
        var headers: HTTPFields = [
            .date: text,
            HTTPField.Name("X-BackendAI-Version")!: version,
            .authorization: try RequestSigner.sign(accessKey: accessKey, secretKey: secretKey, input: input),
        ]
        if let contentType { headers[.contentType] = contentType }
        if let domain { headers[HTTPField.Name("X-BackendAI-Domain")!] = domain }
        return headers
    }

    /// A signed request over the network; returns the status and the raw body.
    /// - Parameter contentType: nil signs `application/octet-stream` and sends no header (SSE).
    public static func request(_ method: HTTPMethod, base: String, path: String, body: ByteBuffer? = nil, contentType: String?,
                               accessKey: String, secretKey: String, timeout: Int64 = 120) async throws -> (Int, ByteBuffer) {
        let date = dateText()
        let input = SignatureInput(method: method.rawValue, requestTarget: path, date: date, host: String(base.dropFirst("http://".count)),
                                   contentType: contentType, apiVersion: apiVersion)
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Date", value: date)
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        request.headers.add(name: "X-BackendAI-Version", value: apiVersion)
        request.headers.add(name: "Authorization", value: try RequestSigner.sign(accessKey: accessKey, secretKey: secretKey, input: input))
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        return (Int(response.status.code), try await response.body.collect(upTo: 4 << 20))
    }

    /// A signed GET whose body is read as it arrives (server-sent events): `onText` sees the
    /// text received so far after every chunk (to act on an event while the stream is still
    /// open); returns the whole text once the server ends the stream.
    public static func stream(base: String, path: String, accessKey: String, secretKey: String, timeout: Int64 = 60,
                              onText: @Sendable (String) async throws -> Void) async throws -> String {
        let date = dateText()
        let input = SignatureInput(method: "GET", requestTarget: path, date: date, host: String(base.dropFirst("http://".count)),
                                   contentType: nil, apiVersion: apiVersion)
        var request = HTTPClientRequest(url: base + path)
        request.headers.add(name: "Date", value: date)
        request.headers.add(name: "X-BackendAI-Version", value: apiVersion)
        request.headers.add(name: "Authorization", value: try RequestSigner.sign(accessKey: accessKey, secretKey: secretKey, input: input))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        var text = ""
        for try await chunk in response.body {
            text += String(buffer: chunk)
            try await onText(text)
        }
        return text
    }

    /// A signed request whose body is returned as text (server-sent events).
    public static func text(_ method: HTTPMethod, base: String, path: String, accessKey: String, secretKey: String) async throws -> (Int, String) {
        let (status, body) = try await request(method, base: base, path: path, contentType: nil, accessKey: accessKey, secretKey: secretKey, timeout: 60)
        return (status, String(buffer: body))
    }

    /// A signed request with an optional JSON body; returns the status and the JSON object.
    public static func json(_ method: HTTPMethod, base: String, path: String, json: String? = nil, accessKey: String, secretKey: String) async throws -> (Int, [String: Any]?) {
        let (status, body) = try await request(method, base: base, path: path, body: json.map { ByteBuffer(string: $0) },
                                               contentType: json == nil ? "text/plain" : "application/json", accessKey: accessKey, secretKey: secretKey)
        return (status, try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
    }
}
