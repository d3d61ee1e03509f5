import Agent
import AsyncHTTPClient
import ClusterProtocol
import ContainerEngine
import Foundation
import Identity
import NIOCore
import NIOHTTP1
import StateStore
import Testing
import TestSupport

/// A real manager and a real agent process: the agent registers, heartbeats its capacity and
/// devices, goes LOST when killed, and comes back ALIVE.
@Suite(.serialized) struct ClusterLinkTests {
    /// Every role ends within seconds of SIGINT or SIGTERM, with status 0.
    @Test func everyRoleEndsWhenAsked() async throws {
        for signal in [SIGINT, SIGTERM] {
            let cluster = try await TestCluster(prefix: "sig", storage: true)
            defer { cluster.stop() }
            for (name, process) in [("agent", cluster.agent), ("storage proxy", cluster.storageProxy!), ("manager", cluster.manager)] {
                kill(process.processIdentifier, signal)
                let ended = await Readiness.wait(upTo: .seconds(10)) { !process.isRunning }
                #expect(ended && process.terminationStatus == 0, "the \(name) ends on signal \(signal)")
            }
        }
    }

    /// Metrics on their own listener (metrics_listen), and not on the API port.
    @Test func metricsHaveTheirOwnListener() async throws {
        let metricsPort = try freeLoopbackPort()
        let cluster = try await TestCluster(prefix: "metrics", managerConfig: "scheduling_interval = 0.2\nmetrics_listen = \"127.0.0.1:\(metricsPort)\"\n")
        defer { cluster.stop() }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics")
        request.method = .GET
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
        #expect(response.status == .ok && text.contains("# TYPE"), "\(text.prefix(300))")
        var onAPI = HTTPClientRequest(url: cluster.base + "/metrics")
        onAPI.method = .GET
        #expect(try await HTTPClient.shared.execute(onAPI, timeout: .seconds(10)).status == .forbidden)
    }

    @Test func agentRegistersGoesLostAndReturns() async throws {
        let socket = try TestEngine.socket()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-cluster-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let managerPort = try freeLoopbackPort(), agentPort = try freeLoopbackPort()
        try "[manager]\nagent_lost_timeout = 2\n".write(toFile: dir + "/manager.toml", atomically: true, encoding: .utf8)
        let manager = try Hangard.launch(["manager", "--config", dir + "/manager.toml", "--data-dir", dir + "/data", "--listen", "127.0.0.1:\(managerPort)"],
                                      log: dir + "/manager.out")
        defer { manager.terminate() }
        let agentID = "link-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            [agent]
            id = "\(agentID)"
            manager = "http://127.0.0.1:\(managerPort)"
            listen = "127.0.0.1:\(agentPort)"
            scratch_dir = "\(dir)/scratch"
            engine_socket = "\(socket)"
            heartbeat_interval = 0.5
            [plugins]
            search_paths = ["\(TestEngine.binDir)"]
            enabled = ["mock"]
            """.write(toFile: dir + "/agent.toml", atomically: true, encoding: .utf8)
        // The manager prints the superadmin's keys on first start and writes the cluster secret.
        let (accessKey, secretKey) = try await Readiness.managerCredentials(log: dir + "/manager.out", dataDir: dir + "/data")
        var agent = try Hangard.launch(["agent", "--config", dir + "/agent.toml", "--cluster-secret-file", dir + "/data/cluster-secret"], log: dir + "/agent.out")
        defer { if agent.isRunning { agent.terminate() } }
        let client = HTTPClient.shared
        let base = "http://127.0.0.1:\(managerPort)"
        func agentRecord() async throws -> [String: Any]? {
            let list = try? await SignedAPI.json(.GET, base: base, path: "/admin/agents", accessKey: accessKey, secretKey: secretKey).1
            return (list?["agents"] as? [[String: Any]])?.first { $0["id"] as? String == agentID }
        }
        func waitFor(_ status: String) async throws -> [String: Any]? {
            for _ in 0..<80 {
                if let record = try await agentRecord(), record["status"] as? String == status { return record }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try await agentRecord()
        }
        let alive = try #require(try await waitFor("ALIVE"), "the agent never registered")
        let capacity = try #require(alive["capacity"] as? [String: String])
        #expect(capacity["mock.device"] == "2")
        #expect(Int(capacity["cpu"] ?? "0") == ProcessInfo.processInfo.activeProcessorCount)
        #expect(alive["address"] as? String == "http://127.0.0.1:\(agentPort)")
        #expect((alive["devices"] as? [[String: Any]])?.count == 2)
        #expect((alive["plugins"] as? [[String: Any]])?.first?["name"] as? String == "mock")

        // A running kernel's utilisation and the plugin's measures reach the manager.
        let kernelID = "stats-\(UUID().uuidString.prefix(6).lowercased())"
        var create = HTTPClientRequest(url: "http://127.0.0.1:\(agentPort)/rpc/kernels")
        create.method = .POST
        create.headers.add(name: "Authorization", value: "Bearer " + (try String(contentsOfFile: dir + "/data/cluster-secret", encoding: .utf8)))
        create.headers.add(name: "Content-Type", value: "application/json")
        create.body = .bytes(ByteBuffer(string: """
            {"kernelID": "\(kernelID)", "sessionID": "s", "image": "\(TestEngine.image)", "slots": {"mem": 67108864, "mock.device": 1000000},
             "environment": {}, "command": ["python3", "-c", "import signal, time\\nsignal.signal(signal.SIGTERM, lambda *a: exit(0))\\ntime.sleep(60)"],
             "mounts": [], "sharedMemoryBytes": 67108864, "pidsLimit": 64}
            """))
        #expect(try await client.execute(create, timeout: .seconds(60)).status == .created)
        var stats: [String: Any]?
        for _ in 0..<60 {
            stats = try await agentRecord()?["stats"] as? [String: Any]
            if (stats?["kernels"] as? [[String: Any]])?.contains(where: { $0["kernel_id"] as? String == kernelID }) == true { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let kernel = (stats?["kernels"] as? [[String: Any]])?.first { $0["kernel_id"] as? String == kernelID }
        #expect(((kernel?["memory_bytes"] as? NSNumber)?.intValue ?? 0) > 0, "stats: \(String(describing: stats))")
        #expect(((kernel?["memory_limit_bytes"] as? NSNumber)?.intValue ?? 0) == 64 << 20)
        let measures = stats?["measures"] as? [[String: Any]] ?? []
        #expect(measures.contains { $0["key"] as? String == "mock_util" && $0["kernel_id"] as? String == kernelID })
        var destroy = HTTPClientRequest(url: "http://127.0.0.1:\(agentPort)/rpc/kernels/\(kernelID)")
        destroy.method = .DELETE
        destroy.headers.add(name: "Authorization", value: "Bearer " + (try String(contentsOfFile: dir + "/data/cluster-secret", encoding: .utf8)))
        #expect(try await client.execute(destroy, timeout: .seconds(60)).status == .ok)

        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        #expect(try await waitFor("LOST")?["status"] as? String == "LOST", "silence past agent_lost_timeout makes it LOST")

        agent = try Hangard.launch(["agent", "--config", dir + "/agent.toml", "--cluster-secret-file", dir + "/data/cluster-secret"], log: dir + "/agent2.out")
        #expect(try await waitFor("ALIVE")?["status"] as? String == "ALIVE", "a returning agent is ALIVE again")
    }
}

/// Sessions through real processes: the manager schedules a batch session on the agent, the
/// kernel runs its command, and the session ends with the command's exit code.
@Suite(.serialized) struct SessionLifecycleTests {
    @Test func batchSessionEndsWithItsExitCodeAndFreesItsSlots() async throws {
        let cluster = try await TestCluster(prefix: "life")
        defer { cluster.stop() }
        let (store, agentID, socket) = (cluster.store, cluster.agentID, try TestEngine.socket())
        let user = try #require(try store.user(email: "admin@hangar.local"))
        let project = try #require(try store.projects().first)
        let accessKey = try #require(try store.keypairs(userID: user.id).first?.accessKey)
        func spec(_ name: String, image: String, command: String) -> SessionSpec {
            SessionSpec(name: name, accessKey: accessKey, userID: user.id, projectID: project.id, type: "batch", image: image,
                        architecture: "", requested: ResourceSlots(["cpu": 1, "mem": Decimal(128 << 20)]), startupCommand: command)
        }
        let batch = try store.createSession(spec("batch-exit-3", image: TestEngine.image, command: "echo working; exit 3"))
        let broken = try store.createSession(spec("no-image", image: "hangar/no-such-image:1", command: "true"))
        func waitForEnd(_ id: String) async throws -> SessionRecord? {
            for _ in 0..<300 {
                if let s = try store.session(id: id), s.status.isTerminal { return s }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try store.session(id: id)
        }
        let ended = try await waitForEnd(batch.id)
        #expect(ended?.status == .terminated, "\(String(describing: ended))")
        let exitCode = try store.database.withConnection { try $0.query("SELECT exit_code FROM sessions WHERE id = $1", [.text(batch.id)]).first?.int("exit_code") }
        #expect(exitCode == 3)
        let history = try store.statusHistory(session: batch.id).map(\.0)
        #expect(history == [.pending, .scheduled, .creating, .running, .terminated], "\(history)")
        let failed = try await waitForEnd(broken.id)
        #expect(failed?.status == .error)
        #expect(failed?.statusInfo.contains("hangar/no-such-image:1") == true, "\(failed?.statusInfo ?? "")")
        for _ in 0..<50 where !(try store.agent(id: agentID)?.occupied.amounts.isEmpty ?? false) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try store.agent(id: agentID)?.occupied.amounts.isEmpty == true, "slots released exactly")

        // A kernel whose container is killed from outside ends its session and frees its slots.
        let long = try store.createSession(spec("killed-outside", image: TestEngine.image, command: "sleep 300"))
        for _ in 0..<200 where try store.session(id: long.id)?.status != .running { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try store.session(id: long.id)?.status == .running)
        #expect(try store.agent(id: agentID)?.occupied["cpu"] == 1)
        let kernelID = try #require(try store.kernelIDs(session: long.id).first)
        try await DockerEngineClient(socketPath: socket).kill("hangar-\(kernelID)", signal: "SIGKILL")
        let killed = try await waitForEnd(long.id)
        #expect(killed?.status == .terminated && killed?.statusInfo.contains("137") == true, "\(String(describing: killed))")
        for _ in 0..<50 where !(try store.agent(id: agentID)?.occupied.amounts.isEmpty ?? false) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try store.agent(id: agentID)?.occupied.amounts.isEmpty == true)

        // The same through Backend.AI's REST session API, signed as the official client signs.
        let (secretKey, base) = (cluster.secretKey, cluster.base)
        func body(_ name: String, type: String, command: String?) -> String {
            """
            {"tag": null, "name": "\(name)", "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "128"}, "resource_opts": {},
             "scalingGroup": null, "mount_map": {}, "preopen_ports": null}, "dependencies": [], "callback_url": null, "architecture": "x86_64",
             "clusterSize": 1, "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null, "owner_access_key": null,
             "domain": "default", "group": "default", "type": "\(type)", "enqueueOnly": false, "maxWaitSeconds": 0, "reuseIfExists": true,
             "startupCommand": \(command.map { "\"\($0)\"" } ?? "null"), "image": "\(TestEngine.image)"}
            """
        }
        let (created, reply) = try await SignedAPI.json(.POST, base: base, path: "/session", json: body("rest-sleeper", type: "batch", command: "echo from-rest; sleep 300"),
                                                                 accessKey: accessKey, secretKey: secretKey)
        #expect(created == 201, "\(String(describing: reply))")
        #expect(reply?["status"] as? String == "RUNNING", "create blocks until the session runs")
        let sessionID = try #require(reply?["sessionId"] as? String)
        var logs = ""
        for _ in 0..<50 where !logs.contains("from-rest") {
            let (_, l) = try await SignedAPI.json(.GET, base: base, path: "/session/rest-sleeper/logs", accessKey: accessKey, secretKey: secretKey)
            logs = ((l?["result"] as? [String: Any])?["logs"] as? String) ?? ""
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(logs.contains("from-rest"))
        let (reused, again) = try await SignedAPI.json(.POST, base: base, path: "/session", json: body("rest-sleeper", type: "batch", command: "echo x; sleep 300"),
                                                                accessKey: accessKey, secretKey: secretKey)
        #expect(reused == 201 && again?["created"] as? Bool == false && again?["sessionId"] as? String == sessionID, "same name reuses the live session")
        let (destroyed, _) = try await SignedAPI.json(.DELETE, base: base, path: "/session/rest-sleeper", accessKey: accessKey, secretKey: secretKey)
        #expect(destroyed == 200)
        #expect(try store.session(id: sessionID)?.status == .terminated)
        #expect(try store.agent(id: agentID)?.occupied.amounts.isEmpty == true, "destroy releases the slots")
        let (missing, _) = try await SignedAPI.json(.DELETE, base: base, path: "/session/rest-sleeper-2", accessKey: accessKey, secretKey: secretKey)
        #expect(missing == 404)
        let (noCommand, problem) = try await SignedAPI.json(.POST, base: base, path: "/session", json: body("rest-batch-2", type: "batch", command: nil),
                                                                     accessKey: accessKey, secretKey: secretKey)
        #expect(noCommand == 400 && problem?["type"] as? String == "https://api.backend.ai/probs/invalid-api-params")

        // Lifecycle events as server-sent events, ending with server_close.
        let (eventsStatus, events) = try await SignedAPI.text(.GET, base: base, path: "/events/session?sessionName=killed-outside&scope=*",
                                                                           accessKey: accessKey, secretKey: secretKey)
        #expect(eventsStatus == 200)
        let names = events.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst("event: ".count)) }
        #expect(names == ["session_enqueued", "session_scheduled", "kernel_creating", "kernel_started", "session_started",
                          "session_terminated", "session_failure", "server_close"], "\(names)")
        for line in events.split(separator: "\n") where line.hasPrefix("data: ") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.dropFirst("data: ".count).utf8))) != nil, "every data line is JSON: \(line)")
        }
        #expect(events.contains("\"exitCode\":137"))
    }
}
