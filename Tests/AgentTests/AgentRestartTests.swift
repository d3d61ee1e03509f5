import Agent
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// The agent as a real process: SIGKILL it while kernels run, start it again, and check it
/// re-adopts them with identical allocations.
@Suite(.serialized) struct AgentRestartTests {
    struct AgentProcess {
        let process: Process
        let port: Int
    }

    static func start(config: String) throws -> Process {
        try Hangard.launch(["agent", "--config", config], log: config + ".log")
    }

    static func call(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, body: String? = nil) async throws -> (Int, [String: Any]?, Any?) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer restart-test-secret")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        let json = try? JSONSerialization.jsonObject(with: data)
        return (Int(response.status.code), json as? [String: Any], json)
    }

    static func waitUntilUp(_ client: HTTPClient, _ base: String) async throws -> [String: Any] {
        for _ in 0..<100 {
            if let (status, json, _) = try? await call(client, .GET, base + "/rpc/status"), status == 200, let json { return json }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw KernelError.invalid("the agent did not come up at \(base)")
    }

    @Test func sigkilledAgentReadoptsItsKernels() async throws {
        let socket = try TestEngine.socket()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try freeLoopbackPort()
        let config = dir + "/agent.toml"
        try """
            [agent]
            id = "restart-\(UUID().uuidString.prefix(8).lowercased())"
            manager = "http://127.0.0.1:9"
            cluster_secret = "restart-test-secret"
            listen = "127.0.0.1:\(port)"
            scratch_dir = "\(dir)/scratch"
            engine_socket = "\(socket)"
            heartbeat_interval = 1
            [plugins]
            search_paths = ["\(TestEngine.binDir)"]
            enabled = ["mock"]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let client = HTTPClient.shared
        let base = "http://127.0.0.1:\(port)"
        var agent = try Self.start(config: config)
        defer { if agent.isRunning { agent.terminate() } }
        _ = try await Self.waitUntilUp(client, base)
        var ids: [String] = []
        for i in 0..<3 {
            let id = "rk-\(i)-\(UUID().uuidString.prefix(6).lowercased())"
            let slots = i < 2 ? #"{"cpu": 1000000, "mem": 67108864, "mock.device": 1000000}"# : #"{"mem": 33554432}"#
            let body = """
                {"kernelID": "\(id)", "sessionID": "s-restart", "image": "\(TestEngine.image)", "slots": \(slots), "environment": {},
                 "command": ["python3", "-c", "import signal, time\\nsignal.signal(signal.SIGTERM, lambda *a: exit(0))\\ntime.sleep(300)"],
                 "mounts": [], "sharedMemoryBytes": 67108864, "pidsLimit": 256}
                """
            let (status, _, raw) = try await Self.call(client, .POST, base + "/rpc/kernels", body: body)
            #expect(status == 201, "\(String(describing: raw))")
            ids.append(id)
        }
        let before = try await Self.waitUntilUp(client, base)
        #expect((before["kernels"] as? [String])?.sorted() == ids.sorted())

        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        #expect(agent.terminationReason == .uncaughtSignal)

        agent = try Self.start(config: config)
        let after = try await Self.waitUntilUp(client, base)
        #expect((after["kernels"] as? [String])?.sorted() == ids.sorted(), "all three re-adopted")
        #expect(NSDictionary(dictionary: after["allocated"] as? [String: Any] ?? [:]).isEqual(to: before["allocated"] as? [String: Any] ?? [:]),
                "identical allocations: \(after["allocated"] ?? "nil") vs \(before["allocated"] ?? "nil")")
        #expect(NSDictionary(dictionary: after["free"] as? [String: Any] ?? [:]).isEqual(to: before["free"] as? [String: Any] ?? [:]),
                "same free capacity")
        for id in ids {
            let (status, _, _) = try await Self.call(client, .DELETE, base + "/rpc/kernels/\(id)")
            #expect(status == 200)
        }
        let end = try await Self.waitUntilUp(client, base)
        #expect((end["allocated"] as? [String: Any])?.isEmpty == true)
        let (unknown, _, _) = try await Self.call(client, .DELETE, base + "/rpc/kernels/no-such-kernel")
        #expect(unknown == 404)
    }
}
