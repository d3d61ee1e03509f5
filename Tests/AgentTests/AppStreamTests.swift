import AsyncHTTPClient
import ClusterProtocol
import ContainerEngine
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import StateStore
import Testing
import TestSupport

/// Interactive access through a real manager, agent, runner and podman: the apps a session
/// offers, app streams to them (and who may open one), the terminal stream with resizes, and
/// no descriptor left behind after many short connections.
@Suite(.serialized) struct AppStreamTests {
    static var logger: Logger {
        var logger = Logger(label: "test.apps")
        logger.logLevel = .critical
        return logger
    }

    static func streamURL(_ cluster: TestCluster, _ path: String, accessKey: String? = nil, secretKey: String? = nil) throws -> (String, HTTPFields) {
        let headers = try SignedAPI.headers(method: .get, path: path, accessKey: accessKey ?? cluster.accessKey, secretKey: secretKey ?? cluster.secretKey,
                                            host: "127.0.0.1:\(cluster.managerPort)", contentType: nil)
        return ("ws://127.0.0.1:\(cluster.managerPort)\(path)", headers)
    }

    /// One short connection to the app: an HTTP request, the whole answer.
    static func httpThroughApp(_ cluster: TestCluster, session: String, app: String, request: String) async throws -> String {
        let (url, headers) = try streamURL(cluster, "/stream/session/\(session)/tcpproxy?app=\(app)")
        return try await httpThroughApp(url: url, headers: headers, request: request)
    }

    /// Fails instead of waiting for ever when the stream hangs.
    struct Timeout: Error {}

    static func httpThroughApp(url: String, headers: HTTPFields, request: String) async throws -> String {
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await exchange(url: url, headers: headers, request: request) }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else { throw Timeout() }
            return answer
        }
    }

    static func exchange(url: String, headers: HTTPFields, request: String) async throws -> String {
        let answer = TextBox()
        try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers), logger: logger) { inbound, outbound, _ in
            try await outbound.write(.binary(ByteBuffer(string: request)))
            for try await frame in inbound { answer.append(String(buffer: frame.data)) }
        }
        return answer.text
    }

    /// The processes' open descriptors.
    static func descriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    @Test func appsStreamsTerminalAndRefusals() async throws {
        let cluster = try await TestCluster(prefix: "apps")
        defer { cluster.stop() }
        let made = try cluster.hangar(["run", TestEngine.image, "-t", "apps-s", "-q", "-c", "print('up')"])
        try #require(made.status == 0, "\(made)")

        // What the session offers: the intrinsic services and the image's Jupyter.
        let (status, body) = try await SignedAPI.request(.GET, base: cluster.base, path: "/stream/session/apps-s/apps", contentType: nil,
                                                         accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let apps = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [[String: Any]] ?? []
        #expect(status == 200 && apps.compactMap { $0["name"] as? String } == ["sshd", "ttyd", "jupyter"], "\(apps)")
        #expect((apps.last?["allowed_arguments"] as? [String])?.contains("--NotebookApp.default_url") == true)
        // GraphQL reports them as Backend.AI does (a JSON string on the session and its main kernel).
        let sessionRecord = try #require(try cluster.store.findSession("apps-s", accessKey: nil, domain: nil))
        let query = #"{"query": "query($id: UUID!) { compute_session(id: $id) { service_ports containers { service_ports } } }", "variables": {"id": "\#(sessionRecord.id)"}}"#
        let (gqlStatus, gql) = try await SignedAPI.json(.POST, base: cluster.base, path: "/admin/gql", json: query, accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let compute = (gql?["data"] as? [String: Any])?["compute_session"] as? [String: Any]
        let reported = (compute?["service_ports"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: Any]] } ?? []
        #expect(gqlStatus == 200 && reported.compactMap { $0["name"] as? String } == ["sshd", "ttyd", "jupyter"], "\(gql ?? [:])")
        #expect(reported.first?["container_ports"] as? [Int] == [2200] && reported.first?["protocol"] as? String == "tcp", "\(reported)")
        let cli = try cluster.hangar(["apps", "apps-s"])
        #expect(cli.status == 0 && cli.stdout.contains("jupyter") && cli.stdout.contains("8081"), "\(cli)")

        // The web terminal's page through a stream; its terminal through the PTY stream.
        let page = try await Self.httpThroughApp(cluster, session: "apps-s", app: "ttyd", request: "GET / HTTP/1.0\r\n\r\n")
        #expect(page.hasPrefix("HTTP/1.") && page.contains("<title>Terminal"), "\(page.prefix(200))")
        let (ptyURL, ptyHeaders) = try Self.streamURL(cluster, "/stream/session/apps-s/pty")
        let screen = TextBox()
        try await WebSocketClient.connect(url: ptyURL, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: ptyHeaders), logger: Self.logger) { inbound, outbound, _ in
            func send(_ object: [String: Any]) async throws {
                try await outbound.write(.text(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)))
            }
            func type(_ text: String) async throws { try await send(["type": "stdin", "chars": Data(text.utf8).base64EncodedString()]) }
            let reader = Task {
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                          object["type"] as? String == "out", let data = (object["data"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
                    screen.append(String(decoding: data, as: UTF8.self))
                }
            }
            defer { reader.cancel() }
            func waitFor(_ needle: String) async throws -> Bool {
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline, !screen.text.contains(needle) { try await Task.sleep(for: .milliseconds(50)) }
                return screen.text.contains(needle)
            }
            // tmux applies a client's resize a moment after it arrives, so a command typed at once
            // may still see the old size: ask again (up to 30 s) until the new size shows.
            func sizeSeen(_ size: String) async throws -> Bool {
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    try await type("stty size\r")
                    let shortWait = ContinuousClock.now + .seconds(2)
                    while ContinuousClock.now < shortWait, !screen.text.contains(size) { try await Task.sleep(for: .milliseconds(50)) }
                    if screen.text.contains(size) { return true }
                }
                return false
            }
            try await send(["type": "resize", "rows": 33, "cols": 101])
            // Typing waits for the prompt: keys sent before tmux owns the terminal are lost.
            let prompted = try await waitFor("work#")
            #expect(prompted, "a shell prompt in /home/work: \(screen.text)")
            try await type("echo size-$((6*7))\r")
            let ran = try await waitFor("size-42")
            let sized = try await sizeSeen("33 101")
            #expect(sized && ran, "\(screen.text)")
            try await send(["type": "resize", "rows": 40, "cols": 120])
            let resized = try await sizeSeen("40 120")
            #expect(resized, "the shell sees the new size: \(screen.text)")
            try await type("printf '\\303\\251t\\303\\251\\n'\r")
            let accented = try await waitFor("été")
            #expect(accented, "UTF-8 comes through: \(screen.text)")
            try await outbound.close(.normalClosure, reason: nil)
        }

        // Our CLI: ssh through the sshd app as ProxyCommand (no local port), scp both ways.
        let ssh = try cluster.hangar(["ssh", "apps-s", "--", "echo", "via-hangar-ssh", "$PWD"])
        #expect(ssh.status == 0 && ssh.stdout.contains("via-hangar-ssh /home/work"), "\(ssh)")
        let local = cluster.dir + "/upload.bin"
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: local))
        let up = try cluster.hangar(["scp", "apps-s", local, ":copied.bin"])
        let down = try cluster.hangar(["scp", "apps-s", ":copied.bin", cluster.dir + "/back.bin"])
        #expect(up.status == 0 && down.status == 0, "\(up) \(down)")
        #expect(FileManager.default.contentsEqual(atPath: local, andPath: cluster.dir + "/back.bin"), "scp copies byte-identical both ways")
        let bothRemote = try cluster.hangar(["scp", "apps-s", ":a", ":b"])
        #expect(bothRemote.status != 0 && bothRemote.stderr.contains("exactly one of SRC and DST"), "\(bothRemote)")
        let config = try cluster.hangar(["ssh-config", "apps-s"])
        #expect(config.status == 0 && config.stdout.contains("Host hangar-apps-s") && config.stdout.contains("app apps-s sshd --stdio"), "\(config)")

        // Refusals, as plain HTTP answers before any upgrade.
        func plain(_ path: String, accessKey: String? = nil, secretKey: String? = nil) async throws -> (Int, String) {
            let (status, body) = try await SignedAPI.request(.GET, base: cluster.base, path: path, contentType: nil,
                                                             accessKey: accessKey ?? cluster.accessKey, secretKey: secretKey ?? cluster.secretKey)
            return (status, String(buffer: body))
        }
        let unknown = try await plain("/stream/session/apps-s/tcpproxy?app=nosuch")
        #expect(unknown.0 == 404 && unknown.1.contains("'nosuch'") && unknown.1.contains("sshd, ttyd, jupyter"), "\(unknown)")
        let badArgument = try await plain("/stream/session/apps-s/tcpproxy?app=jupyter&arguments=%7B%22--evil%22%3Anull%7D")
        #expect(badArgument.0 == 400 && badArgument.1.contains("'--evil' is not allowed"), "\(badArgument)")
        let badEnv = try await plain("/stream/session/apps-s/tcpproxy?app=jupyter&envs=%7B%22LD_PRELOAD%22%3A%22x%22%7D")
        #expect(badEnv.0 == 400 && badEnv.1.contains("'LD_PRELOAD'"), "\(badEnv)")
        let other = try cluster.store.createUser(email: "apps-other@hangar.local", password: "other-password", passwordRounds: 1000)
        let keys = try cluster.store.createKeypair(userID: other.id)
        let foreign = try await plain("/stream/session/apps-s/tcpproxy?app=ttyd", accessKey: keys.accessKey, secretKey: keys.secretKey)
        #expect(foreign.0 == 404, "another user's session is not found: \(foreign)")
        let (foreignURL, foreignHeaders) = try Self.streamURL(cluster, "/stream/session/apps-s/tcpproxy?app=ttyd", accessKey: keys.accessKey, secretKey: keys.secretKey)
        await #expect(throws: (any Error).self, "no stream opens for another user") {
            try await WebSocketClient.connect(url: foreignURL, configuration: .init(additionalHeaders: foreignHeaders), logger: Self.logger) { _, _, _ in }
        }
        let foreignApps = try await plain("/stream/session/apps-s/apps", accessKey: keys.accessKey, secretKey: keys.secretKey)
        #expect(foreignApps.0 == 404, "\(foreignApps)")

        // Many short connections through one app leave no descriptor behind in the manager,
        // the agent or the kernel's runner.
        let session = try #require(try cluster.store.findSession("apps-s", accessKey: nil, domain: nil))
        let kernel = try #require(try cluster.store.kernelAgents(session: session.id).first?.0)
        let engine = DockerEngineClient(socketPath: try TestEngine.socket())
        let inspect = try await engine.call(.GET, "/containers/hangar-\(kernel)/json", operation: "inspect")
        let runnerPID = try #require(((inspect.json as? [String: Any])?["State"] as? [String: Any])?["Pid"] as? Int).int32
        let pids = [cluster.manager.processIdentifier, cluster.agent.processIdentifier, runnerPID]
        let (tokenURL, tokenHeaders) = try Self.streamURL(cluster, "/stream/session/apps-s/tcpproxy?app=ttyd")
        var answered = 0
        var before: [Int] = []
        // The first round fills the HTTP client pools (the manager keeps up to 8 connections
        // to an agent alive); the count is taken after it, and must hold after 1,000 more.
        for round in 0...10 {
            if round == 1 {
                try await Task.sleep(for: .milliseconds(500))
                before = pids.map(Self.descriptors)
                answered = 0
            }
            answered += try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let text = try await Self.httpThroughApp(url: tokenURL, headers: tokenHeaders, request: "GET /token HTTP/1.0\r\n\r\n")
                        return text.contains("\"token\"") ? 1 : 0
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(answered == 1000, "every connection was answered")
        var after = pids.map(Self.descriptors)
        for _ in 0..<50 where zip(after, before).contains(where: { $0 > $1 }) {
            try await Task.sleep(for: .milliseconds(200))
            after = pids.map(Self.descriptors)
        }
        #expect(zip(after, before).allSatisfy { $0 <= $1 }, "descriptors (manager, agent, runner) before \(before), after \(after)")

        // The session ends under an open stream: the stream closes with a code, nothing hangs.
        let (sshURL, sshHeaders) = try Self.streamURL(cluster, "/stream/session/apps-s/tcpproxy?app=sshd")
        let banner = TextBox()
        let ended = Task {
            try await WebSocketClient.connect(url: sshURL, configuration: .init(additionalHeaders: sshHeaders), logger: Self.logger) { inbound, _, _ in
                for try await frame in inbound { banner.append(String(buffer: frame.data)) }
            }
        }
        for _ in 0..<100 where !banner.text.contains("SSH-2.0") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(banner.text.contains("SSH-2.0"), "sshd greets through the stream: \(banner.text)")
        _ = try cluster.hangar(["session", "rm", "apps-s"])
        let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { _ = try? await ended.value; return true }
            group.addTask { try await Task.sleep(for: .seconds(30)); return false }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        #expect(closed, "the stream ended when the session did")
        let gone = try await plain("/stream/session/apps-s/tcpproxy?app=ttyd")
        #expect(gone.0 == 409 || gone.0 == 404, "a session that is not running opens no stream: \(gone)")
    }
}

extension AppStreamTests {
    /// SIGTERM ends the manager within seconds even while terminals and app streams are open
    /// and idle (a peer that neither sends nor closes must not hold the shutdown), and the
    /// clients see their streams end.
    @Test func managerEndsWhenAskedWithIdleStreamsOpen() async throws {
        let cluster = try await TestCluster(prefix: "apps-stop")
        defer { cluster.stop() }
        let made = try cluster.hangar(["run", TestEngine.image, "-t", "stop-s", "-q", "-c", "print('up')"])
        try #require(made.status == 0, "\(made)")
        let screen = TextBox()
        let (ptyURL, ptyHeaders) = try Self.streamURL(cluster, "/stream/session/stop-s/pty")
        let terminal = Task {
            try await WebSocketClient.connect(url: ptyURL, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: ptyHeaders), logger: Self.logger) { inbound, _, _ in
                for try await frame in inbound { screen.append(String(buffer: frame.data)) }
            }
        }
        let banner = TextBox()
        let (sshURL, sshHeaders) = try Self.streamURL(cluster, "/stream/session/stop-s/tcpproxy?app=sshd")
        let ssh = Task {
            try await WebSocketClient.connect(url: sshURL, configuration: .init(additionalHeaders: sshHeaders), logger: Self.logger) { inbound, _, _ in
                for try await frame in inbound { banner.append(String(buffer: frame.data)) }
            }
        }
        for _ in 0..<150 where screen.text.isEmpty || !banner.text.contains("SSH-2.0") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!screen.text.isEmpty && banner.text.contains("SSH-2.0"), "both streams are open: \(screen.text.suffix(80)) / \(banner.text)")
        kill(cluster.manager.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while cluster.manager.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!cluster.manager.isRunning, "the manager ended within 20 s of SIGTERM with two idle streams open")
        let streamsEnded = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { _ = try? await terminal.value; _ = try? await ssh.value; return true }
            group.addTask { try await Task.sleep(for: .seconds(10)); return false }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        #expect(streamsEnded, "the clients' streams ended with the manager")
    }
}

/// Text gathered by a WebSocket handler./// Text gathered by a WebSocket handler.
final class TextBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    func append(_ text: String) { lock.withLock { value += text } }
    var text: String { lock.withLock { value } }
}

extension Int {
    fileprivate var int32: Int32 { Int32(self) }
}
