import AsyncHTTPClient
import Foundation
import NIOCore
import StateStore
import Testing
import TestSupport

/// Multi-node sessions with a real manager and several real agents on the test engine: each
/// agent offers the whole machine, so kernels asking for all of its cores need one agent each.
@Suite(.serialized) struct MultiNodeSessionTests {
    static let cores = ProcessInfo.processInfo.activeProcessorCount

    static func createBody(_ name: String, size: Int, mode: String, cpu: Int, enqueueOnly: Bool = true, command: String? = nil,
                           environ: String = "{}") -> String {
        """
        {"name": "\(name)", "image": "\(TestEngine.image)", "type": "\(command == nil ? "interactive" : "batch")", "clusterSize": \(size),
         "clusterMode": "\(mode)", "enqueueOnly": \(enqueueOnly), "config": {"resources": {"cpu": "\(cpu)", "mem": "256m"}, "environ": \(environ)}
         \(command.map { #", "startupCommand": "\#($0)""# } ?? "")}
        """
    }

    /// Lets the superadmin's keypair run clusters (the default policy allows one container).
    static func allowClusters(_ cluster: TestCluster) throws {
        let update = try cluster.hangar(["admin", "policy", "update", "default", "--max-containers-per-session", "8"])
        try #require(update.status == 0, "\(update)")
    }

    /// The engine's view of a kernel's container: its environment and host name; nil when the
    /// engine has no such container.
    static func container(_ kernelID: String) async throws -> (env: [String: String], hostname: String)? {
        let socket = try TestEngine.socket()
        var request = HTTPClientRequest(url: "http+unix://\(socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socket)/v1.41/containers/hangar-\(kernelID)/json")
        request.headers.add(name: "Host", value: "localhost")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        guard response.status == .ok, let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
              let config = object["Config"] as? [String: Any] else { return nil }
        var env: [String: String] = [:]
        for entry in config["Env"] as? [String] ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { env[String(parts[0])] = String(parts[1]) }
        }
        return (env, config["Hostname"] as? String ?? "")
    }

    @Test func aGangWaitsForFreeCapacityThenRunsAcrossAgentsWithBackendAIsEnvironment() async throws {
        let cluster = try await TestCluster(prefix: "mnode")
        defer { cluster.stop() }
        let second = try await cluster.addAgent("b")
        try Self.allowClusters(cluster)
        let (accessKey, secretKey, base, store) = (cluster.accessKey, cluster.secretKey, cluster.base, cluster.store)

        // A mode Hangar does not know is refused, naming the ones it does.
        let (badStatus, bad) = try await SignedAPI.json(.POST, base: base, path: "/session", json: Self.createBody("mn-bad", size: 2, mode: "mesh", cpu: 1),
                                                        accessKey: accessKey, secretKey: secretKey)
        #expect(badStatus == 400 && "\(bad ?? [:])".contains("multi-node"), "\(String(describing: bad))")

        // One agent is full: a gang of two whole-agent kernels fits the group's capacity but
        // not what is free, so it waits and reserves nothing.
        let (blockerStatus, _) = try await SignedAPI.json(.POST, base: base, path: "/session",
                                                          json: Self.createBody("mn-blocker", size: 1, mode: "single-node", cpu: Self.cores, enqueueOnly: false),
                                                          accessKey: accessKey, secretKey: secretKey)
        #expect(blockerStatus == 201)
        let blocker = try #require(try store.findSession("mn-blocker", accessKey: nil))
        // The creator's environment reaches every kernel; Hangar's own names are refused.
        let (badEnv, badEnvReply) = try await SignedAPI.json(.POST, base: base, path: "/session",
                                                             json: Self.createBody("mn-badenv", size: 1, mode: "single-node", cpu: 1, environ: #"{"BACKENDAI_KERNEL_ID": "x"}"#),
                                                             accessKey: accessKey, secretKey: secretKey)
        #expect(badEnv == 400 && (badEnvReply?["msg"] as? String ?? "").contains("Hangar's own"), "\(String(describing: badEnvReply))")
        let (created, reply) = try await SignedAPI.json(.POST, base: base, path: "/session",
                                                        json: Self.createBody("mn-gang", size: 2, mode: "multi-node", cpu: Self.cores, environ: #"{"USER_GREETING": "hello there"}"#),
                                                        accessKey: accessKey, secretKey: secretKey)
        #expect(created == 201, "\(String(describing: reply))")
        let gangID = try #require(reply?["sessionId"] as? String)
        try await Task.sleep(for: .seconds(1.5))
        #expect(try store.session(id: gangID)?.status == .pending, "the gang waits for free capacity")
        #expect(try store.kernels(session: gangID).allSatisfy { $0.agentID == nil }, "no kernel of a waiting gang holds an agent")
        let heldBefore = try [cluster.agentID, second].map { try store.agent(id: $0)?.occupied.amounts["cpu"] ?? 0 }
        #expect(heldBefore.reduce(0, +) == Decimal(Self.cores), "only the blocker's cores are reserved: \(heldBefore)")

        // The blocker ends: both kernels are placed in one go, one on each agent.
        let (destroyed, _) = try await SignedAPI.json(.DELETE, base: base, path: "/session/mn-blocker", accessKey: accessKey, secretKey: secretKey)
        #expect(destroyed == 200)
        for _ in 0..<150 where try store.session(id: gangID)?.status != .running { try await Task.sleep(for: .milliseconds(100)) }
        let gang = try store.session(id: gangID)
        #expect(gang?.status == .running, "\(String(describing: gang))")
        let kernels = try store.kernels(session: gangID)
        #expect(Set(kernels.compactMap(\.agentID)) == [cluster.agentID, second], "one kernel on each agent: \(kernels.map(\.agentID))")
        #expect(kernels.map(\.clusterHostname) == ["main1", "sub1"])
        for (rank, kernel) in kernels.enumerated() {
            let (env, hostname) = try #require(try await Self.container(kernel.id), "kernel \(kernel.clusterHostname) has a container")
            #expect(hostname == kernel.clusterHostname)
            #expect(env["BACKENDAI_CLUSTER_HOST"] == kernel.clusterHostname)
            #expect(env["BACKENDAI_CLUSTER_HOSTS"] == "main1,sub1")
            #expect(env["BACKENDAI_CLUSTER_ROLE"] == (rank == 0 ? "main" : "sub"))
            #expect(env["BACKENDAI_CLUSTER_IDX"] == "1")
            #expect(env["BACKENDAI_CLUSTER_SIZE"] == "2")
            #expect(env["BACKENDAI_CLUSTER_LOCAL_RANK"] == String(rank))
            #expect(env["BACKENDAI_CLUSTER_MODE"] == "multi-node")
            #expect(env["BACKENDAI_KERNEL_ID"] == kernel.id && env["BACKENDAI_SESSION_ID"] == gangID)
            #expect(env["USER_GREETING"] == "hello there")
        }
        // Code runs in the main kernel.
        let run = try cluster.hangar(["run", "-t", "mn-gang", TestEngine.image, "-q", "-c",
                                      "import os, socket; print(socket.gethostname(), os.environ['BACKENDAI_CLUSTER_ROLE'])"])
        #expect(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "main1 main", "\(run)")
        let blockerEnded = try store.session(id: blocker.id)?.status
        #expect(blockerEnded == .terminated)

        // Ending the gang releases the slots on every agent.
        let (ended, _) = try await SignedAPI.json(.DELETE, base: base, path: "/session/mn-gang", accessKey: accessKey, secretKey: secretKey)
        #expect(ended == 200)
        for id in [cluster.agentID, second] {
            #expect(try store.agent(id: id)?.occupied.amounts.values.allSatisfy { $0 == 0 } == true, "agent \(id) holds nothing afterwards")
        }

        // Single-node clusters stay on one agent.
        let (single, singleReply) = try await SignedAPI.json(.POST, base: base, path: "/session",
                                                             json: Self.createBody("mn-single", size: 2, mode: "single-node", cpu: 1, enqueueOnly: false),
                                                             accessKey: accessKey, secretKey: secretKey)
        #expect(single == 201, "\(String(describing: singleReply))")
        let singleID = try #require(singleReply?["sessionId"] as? String)
        #expect(Set(try store.kernels(session: singleID).compactMap(\.agentID)).count == 1)
        _ = try await SignedAPI.json(.DELETE, base: base, path: "/session/mn-single", accessKey: accessKey, secretKey: secretKey)
    }

    /// An agent lost mid-session ends the whole multi-node session: the kernel on the agent
    /// that is still alive is removed at once and every slot is released; when the lost agent
    /// comes back, the kernel it kept (its container outlived it) is removed too.
    @Test func aLostAgentEndsTheWholeGangAndItsKernelGoesWhenItReturns() async throws {
        let cluster = try await TestCluster(prefix: "mnlost", managerConfig: "agent_lost_timeout = 5\nscheduling_interval = 0.2\nreconcile_interval = 1\n")
        defer { cluster.stop() }
        let second = try await cluster.addAgent("b")
        try Self.allowClusters(cluster)
        let (accessKey, secretKey, base, store) = (cluster.accessKey, cluster.secretKey, cluster.base, cluster.store)
        let (created, reply) = try await SignedAPI.json(.POST, base: base, path: "/session",
                                                        json: Self.createBody("mn-lost", size: 2, mode: "multi-node", cpu: Self.cores, enqueueOnly: false),
                                                        accessKey: accessKey, secretKey: secretKey)
        #expect(created == 201, "\(String(describing: reply))")
        let id = try #require(reply?["sessionId"] as? String)
        let kernels = try store.kernels(session: id)
        #expect(Set(kernels.compactMap(\.agentID)) == [cluster.agentID, second])
        let survivor = try #require(kernels.first { $0.agentID == cluster.agentID })
        let orphan = try #require(kernels.first { $0.agentID == second })

        let process = try #require(cluster.extraAgents["b"])
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        for _ in 0..<300 where try store.session(id: id)?.status != .error { try await Task.sleep(for: .milliseconds(100)) }
        let ended = try #require(try store.session(id: id))
        #expect(ended.status == .error)
        #expect(ended.statusInfo.contains("agent \(second) was lost") && ended.statusInfo.contains("\(survivor.clusterHostname) on \(cluster.agentID)"),
                "\(ended.statusInfo)")
        #expect(try await Self.container(survivor.id) == nil, "the kernel on the agent still alive is removed at once")
        for agent in [cluster.agentID, second] {
            #expect(try store.agent(id: agent)?.occupied.amounts.values.allSatisfy { $0 == 0 } == true, "agent \(agent) holds nothing")
        }
        #expect(try await Self.container(orphan.id) != nil, "the lost agent's container outlived it (SIGKILL ends no container)")

        // The agent returns: the kernel its manager no longer knows is removed.
        try cluster.startAgent("b")
        var gone = false
        for _ in 0..<200 where !gone {
            gone = try await Self.container(orphan.id) == nil
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "the returning agent's leftover kernel is removed")
        #expect(try store.agent(id: second)?.status == .alive)
    }

    /// A gang never runs in part: one agent cannot create its kernel (its engine lacks the
    /// image), so the kernel the other agent made is removed too, and no agent holds a slot.
    @Test func aGangWhoseKernelFailsLeavesNoKernelAndNoSlot() async throws {
        let cluster = try await TestCluster(prefix: "mnfail")
        defer { cluster.stop() }
        // Its engine is a podman service of its own with an empty store: the image the
        // session names is not there, so that agent's kernel cannot be created.
        let engine = try EmptyEngine(dir: cluster.dir + "/empty-engine")
        defer { engine.stop() }
        let broken = try await cluster.addAgent("broken", engineSocket: try await engine.socket())
        try Self.allowClusters(cluster)
        let (accessKey, secretKey, base, store) = (cluster.accessKey, cluster.secretKey, cluster.base, cluster.store)
        let (created, reply) = try await SignedAPI.json(.POST, base: base, path: "/session", json: Self.createBody("mn-doomed", size: 2, mode: "multi-node", cpu: Self.cores),
                                                        accessKey: accessKey, secretKey: secretKey)
        #expect(created == 201, "\(String(describing: reply))")
        let id = try #require(reply?["sessionId"] as? String)
        for _ in 0..<300 where try store.session(id: id)?.status != .error { try await Task.sleep(for: .milliseconds(100)) }
        let session = try #require(try store.session(id: id))
        #expect(session.status == .error)
        #expect(session.statusInfo.contains(broken), "the reason names the agent that failed: \(session.statusInfo)")
        for agent in [cluster.agentID, broken] {
            #expect(try store.agent(id: agent)?.occupied.amounts.values.allSatisfy { $0 == 0 } == true, "agent \(agent) holds nothing")
        }
        for kernel in try store.kernels(session: id) {
            var removed = false
            for _ in 0..<100 where !removed {
                removed = try await Self.container(kernel.id) == nil
                if !removed { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(removed, "kernel \(kernel.clusterHostname)'s container is gone")
        }
    }
}

/// A podman service with a store of its own (nothing in it) and its own state folders.
final class EmptyEngine {
    let dir: String
    let process: Process

    init(dir: String) throws {
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
        let base = ProcessInfo.processInfo.environment["CONTAINERS_CONF"].flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
        let engine = "[engine]\ntmp_dir = \"\(dir)/tmp\"\nevents_logger = \"file\"\nevents_logfile_path = \"\(dir)/events.log\"\n"
        try (base.contains("[engine]\n") ? base.replacingOccurrences(of: "[engine]\n", with: engine) : base + "\n" + engine)
            .write(toFile: dir + "/containers.conf", atomically: true, encoding: .utf8)
        try "[storage]\ndriver = \"overlay\"\ngraphroot = \"\(dir)/store\"\nrunroot = \"\(dir)/run\"\n"
            .write(toFile: dir + "/storage.conf", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/podman")
        process.arguments = ["system", "service", "--time=0", "unix://\(dir)/podman.sock"]
        var environment = ProcessInfo.processInfo.environment
        environment["CONTAINERS_CONF"] = dir + "/containers.conf"
        environment["CONTAINERS_STORAGE_CONF"] = dir + "/storage.conf"
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The service's socket, once it answers.
    func socket() async throws -> String {
        let path = dir + "/podman.sock"
        let up = await Readiness.wait(upTo: .seconds(30)) {
            var request = HTTPClientRequest(url: "http+unix://\(path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path)/_ping")
            request.headers.add(name: "Host", value: "localhost")
            return (try? await HTTPClient.shared.execute(request, timeout: .seconds(2)).status) == .ok
        }
        try #require(up, "the empty engine did not answer")
        return path
    }

    func stop() {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
