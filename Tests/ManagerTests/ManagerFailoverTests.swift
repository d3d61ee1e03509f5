import Foundation
import StateStore
import Testing
import TestSupport

/// Real `hangard manager serve` processes: two on one PostgreSQL database, one leads the
/// scheduling, and killing it (SIGKILL) moves the lead to the other; two on one SQLite
/// database, the second refused with what to do instead.
@Suite(.serialized) struct ManagerFailoverTests {
    struct Manager {
        let process: Process
        let base: String
        let log: String
    }

    static func start(_ name: String, database: String?, dataDir: String, config: String? = nil) throws -> Manager {
        let port = try freeLoopbackPort()
        var arguments = ["manager", "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:\(port)"]
        if let database { arguments += ["--database", database] }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        if let config {
            try config.write(toFile: dataDir + "/manager.toml", atomically: true, encoding: .utf8)
            arguments += ["--config", dataDir + "/manager.toml"]
        }
        let log = dataDir + "/\(name).log"
        let process = try Hangard.launch(arguments, log: log)
        return Manager(process: process, base: "http://127.0.0.1:\(port)", log: log)
    }

    /// Waits for a process to end without `waitUntilExit` (which can hang in async code).
    static func reaped(_ process: Process) async {
        for _ in 0..<400 where process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
    }

    static func leader(_ manager: Manager, _ admin: StateStore.BootstrapResult) async -> [String: Any]? {
        guard let (status, body) = try? await SignedAPI.json(.GET, base: manager.base, path: "/scheduler/leader", accessKey: admin.accessKey,
                                                             secretKey: admin.secretKey), status == 200 else { return nil }
        return body
    }

    @Test
    func killingTheSchedulingLeaderMovesTheLead() async throws {
        let (db, store, admin) = try bootstrappedStore(.postgresql)
        defer { store.close(); _ = db }
        guard case .postgresql(let url) = db.location else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-failover-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Both managers share the cluster secret, as managers of one cluster do.
        let secret = UUID().uuidString
        for name in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            try secret.write(toFile: dir + "/\(name)/cluster-secret", atomically: true, encoding: .utf8)
        }
        let managers = [try Self.start("a", database: url, dataDir: dir + "/a"), try Self.start("b", database: url, dataDir: dir + "/b")]
        defer { for m in managers where m.process.isRunning { kill(m.process.processIdentifier, SIGKILL) } }
        // Both serve; exactly one leads.
        var views: [[String: Any]] = []
        let settled = await Readiness.wait(upTo: .seconds(30), every: .milliseconds(200)) {
            views = []
            for m in managers { if let view = await Self.leader(m, admin) { views.append(view) } }
            return views.count == 2 && views.filter { $0["this_manager_leads"] as? Bool == true }.count == 1
                && views[0]["holder"] as? String == views[1]["holder"] as? String
        }
        #expect(settled, "two managers answer, one leads, both name it: \(views)")
        guard settled, let leading = views.firstIndex(where: { $0["this_manager_leads"] as? Bool == true }),
              let epoch = views[leading]["epoch"] as? Int else { return }
        let survivor = managers[1 - leading]

        // An agent that knows both managers, the leader first.
        let agentID = "failover-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            [agent]
            id = "\(agentID)"
            managers = ["\(managers[leading].base)", "\(survivor.base)"]
            listen = "127.0.0.1:\(try freeLoopbackPort())"
            scratch_dir = "\(dir)/scratch"
            engine_socket = "\(try TestEngine.socket())"
            heartbeat_interval = 0.3
            """.write(toFile: dir + "/agent.toml", atomically: true, encoding: .utf8)
        let agent = try Hangard.launch(["agent", "--config", dir + "/agent.toml", "--cluster-secret-file", dir + "/a/cluster-secret"], log: dir + "/agent.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGTERM) } }
        #expect(await Readiness.wait(upTo: .seconds(20)) { (try? store.agent(id: agentID))??.status == .alive }, "the agent registers")

        kill(managers[leading].process.processIdentifier, SIGKILL)
        await Self.reaped(managers[leading].process)
        let killed = ContinuousClock.now
        var after: [String: Any]?
        let moved = await Readiness.wait(upTo: .seconds(20), every: .milliseconds(50)) {
            after = await Self.leader(survivor, admin)
            return after?["this_manager_leads"] as? Bool == true
        }
        let failover = ContinuousClock.now - killed
        #expect(moved, "the surviving manager took the lead: \(after ?? [:])")
        #expect(after?["epoch"] as? Int == epoch + 1 && after?["holder"] as? String == after?["this_manager"] as? String, "before: \(views), after: \(after ?? [:])")
        print("scheduling leader failover after SIGKILL: \(failover)")
        // The agent's heartbeats now reach the surviving manager: its record keeps advancing.
        let before = try #require(try store.agent(id: agentID)).lastHeartbeat
        #expect(await Readiness.wait(upTo: .seconds(15)) { ((try? store.agent(id: agentID))??.lastHeartbeat ?? 0) > before + 500_000 },
                "heartbeats continue through the other manager")
        #expect(try store.agent(id: agentID)?.status == .alive)
        let agentLog = ((try? String(contentsOfFile: dir + "/agent.log.err", encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: dir + "/agent.log", encoding: .utf8)) ?? "")
        #expect(agentLog.contains("heartbeats now go to another manager"), "\(agentLog.suffix(1500))")
        let log = ((try? String(contentsOfFile: survivor.log, encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: survivor.log + ".err", encoding: .utf8)) ?? "")
        #expect(log.contains("this manager is now the scheduling leader"), "\(log.suffix(2000))")
    }

    /// Two managers on one PostgreSQL database sharing a cluster secret, and an agent that
    /// knows both (its engine the test's), in a fresh directory; `stop()` ends them all.
    struct Pair {
        let dir: String
        let managers: [Manager]
        let agent: Process
        let agentID: String

        func stop() {
            for m in managers where m.process.isRunning { kill(m.process.processIdentifier, SIGCONT); kill(m.process.processIdentifier, SIGKILL) }
            if agent.isRunning { kill(agent.processIdentifier, SIGTERM) }
            try? FileManager.default.removeItem(atPath: dir)
        }

        func log(_ index: Int) -> String {
            ((try? String(contentsOfFile: managers[index].log, encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: managers[index].log + ".err", encoding: .utf8)) ?? "")
        }
    }

    static func pair(url: String, config: String, store: StateStore) async throws -> Pair {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-pair-\(UUID().uuidString)").path
        let secret = UUID().uuidString
        for name in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            try secret.write(toFile: dir + "/\(name)/cluster-secret", atomically: true, encoding: .utf8)
        }
        let managers = [try start("a", database: url, dataDir: dir + "/a", config: config), try start("b", database: url, dataDir: dir + "/b", config: config)]
        let agentID = "pair-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            [agent]
            id = "\(agentID)"
            managers = ["\(managers[0].base)", "\(managers[1].base)"]
            listen = "127.0.0.1:\(try freeLoopbackPort())"
            scratch_dir = "\(dir)/scratch"
            engine_socket = "\(try TestEngine.socket())"
            heartbeat_interval = 0.3
            """.write(toFile: dir + "/agent.toml", atomically: true, encoding: .utf8)
        let agent = try Hangard.launch(["agent", "--config", dir + "/agent.toml", "--cluster-secret-file", dir + "/a/cluster-secret"], log: dir + "/agent.log")
        let pair = Pair(dir: dir, managers: managers, agent: agent, agentID: agentID)
        guard await Readiness.wait(upTo: .seconds(30), until: { (try? store.agent(id: agentID))??.status == .alive }) else {
            pair.stop()
            throw StoreError(.connection, "the agent did not register")
        }
        return pair
    }

    /// Creates a session that only queues (the image "py" is never started) through one
    /// manager and returns its id.
    static func enqueue(_ name: String, through manager: Manager, _ admin: StateStore.BootstrapResult) async throws -> String {
        let body = #"{"name": "\#(name)", "image": "py", "enqueueOnly": true, "config": {"resources": {"cpu": "1", "mem": "64m"}}}"#
        let (status, answer) = try await SignedAPI.json(.POST, base: manager.base, path: "/session", json: body, accessKey: admin.accessKey, secretKey: admin.secretKey)
        guard status == 201, let id = answer?["sessionId"] as? String else { throw StoreError(.invalid, "creating \(name) answered \(status): \(answer ?? [:])") }
        return id
    }

    @Test
    func aSessionAcceptedByAFollowerWakesTheLeader() async throws {
        let (db, store, admin) = try bootstrappedStore(.postgresql)
        defer { store.close(); _ = db }
        guard case .postgresql(let url) = db.location else { return }
        // Rounds two minutes apart: a session scheduled sooner was scheduled because something woke the leader.
        let pair = try await Self.pair(url: url, config: "[manager]\nscheduling_interval = 120\n", store: store)
        defer { pair.stop() }
        // The first session's own manager (a) schedules it at once, and takes the lead for that.
        let first = try await Self.enqueue("wake-first", through: pair.managers[0], admin)
        #expect(await Readiness.wait(upTo: .seconds(30)) { ((try? store.session(id: first))??.status ?? .pending) != .pending }, "manager a schedules its own session")
        #expect(await Self.leader(pair.managers[0], admin)?["this_manager_leads"] as? Bool == true)
        // b accepts the second but does not lead: its NOTIFY wakes a.
        let second = try await Self.enqueue("wake-second", through: pair.managers[1], admin)
        #expect(await Self.leader(pair.managers[1], admin)?["this_manager_leads"] as? Bool == false)
        let woken = await Readiness.wait(upTo: .seconds(30)) { ((try? store.session(id: second))??.status ?? .pending) != .pending }
        #expect(woken, "the leader scheduled a session the follower accepted before its next round: \(String(describing: try? store.session(id: second)))")
        #expect(await Self.leader(pair.managers[0], admin)?["this_manager_leads"] as? Bool == true, "a still leads")
    }

    @Test
    func aPausedLeaderLosesTheLeadAndSchedulesNothingAfterwards() async throws {
        let (db, store, admin) = try bootstrappedStore(.postgresql)
        defer { store.close(); _ = db }
        guard case .postgresql(let url) = db.location else { return }
        let pair = try await Self.pair(url: url, config: "[manager]\nscheduling_interval = 0.3\nleader_timeout = 2\n", store: store)
        defer { pair.stop() }
        var views: [[String: Any]] = []
        let settled = await Readiness.wait(upTo: .seconds(30), every: .milliseconds(200)) {
            views = []
            for m in pair.managers { if let view = await Self.leader(m, admin) { views.append(view) } }
            return views.count == 2 && views.filter { $0["this_manager_leads"] as? Bool == true }.count == 1
        }
        #expect(settled, "one of two managers leads: \(views)")
        guard settled, let leading = views.firstIndex(where: { $0["this_manager_leads"] as? Bool == true }),
              let epoch = views[leading]["epoch"] as? Int else { return }
        let paused = pair.managers[leading], survivor = pair.managers[1 - leading]

        // Paused (as a hung host or a long GC stop would): the server drops its silent
        // connection after leader_timeout, and the other manager takes over.
        kill(paused.process.processIdentifier, SIGSTOP)
        var after: [String: Any]?
        let moved = await Readiness.wait(upTo: .seconds(30), every: .milliseconds(100)) {
            after = await Self.leader(survivor, admin)
            return after?["this_manager_leads"] as? Bool == true
        }
        #expect(moved && after?["epoch"] as? Int == epoch + 1, "the other manager leads with the next epoch: \(after ?? [:])")
        let duringPause = try await Self.enqueue("paused-1", through: survivor, admin)
        #expect(await Readiness.wait(upTo: .seconds(30)) { ((try? store.session(id: duringPause))??.status ?? .pending) != .pending }, "the new leader schedules")

        // Resumed, the former leader finds its lock gone, says so and only follows.
        kill(paused.process.processIdentifier, SIGCONT)
        var resumed: [String: Any]?
        #expect(await Readiness.wait(upTo: .seconds(30), every: .milliseconds(200)) {
            resumed = await Self.leader(paused, admin)
            return resumed?["this_manager_leads"] as? Bool == false
        }, "the resumed manager does not lead: \(resumed ?? [:])")
        #expect(await Readiness.wait(upTo: .seconds(10)) { pair.log(leading).contains("this manager is no longer the scheduling leader") }, "\(pair.log(leading).suffix(2000))")
        // Work accepted by the resumed manager is scheduled by the leader, and the lead stays put.
        let afterPause = try await Self.enqueue("paused-2", through: paused, admin)
        #expect(await Readiness.wait(upTo: .seconds(30)) { ((try? store.session(id: afterPause))??.status ?? .pending) != .pending }, "scheduled by the leader")
        try await Task.sleep(for: .seconds(1))
        // The paused epoch never comes back. (On a loaded machine the new leader may itself go
        // silent past the 2 s timeout and lose the lead, to either manager, but always under a
        // new epoch.)
        let leader = try store.schedulerLeader()
        #expect(leader.epoch >= Int64(epoch + 1), "the lead never returned to the paused epoch: \(leader)")
        if leader.holder != after?["holder"] as? String {
            #expect(leader.epoch >= Int64(epoch + 2), "a manager that leads again does so under a new epoch: \(leader)")
        }
        // Every session placed once: when they have ended, the agent holds nothing.
        for id in [duringPause, afterPause] {
            _ = try? await SignedAPI.json(.DELETE, base: survivor.base, path: "/session/\(try #require(try store.session(id: id)).name)", accessKey: admin.accessKey, secretKey: admin.secretKey)
        }
        #expect(await Readiness.wait(upTo: .seconds(60)) {
            let ended = [duringPause, afterPause].allSatisfy { ((try? store.session(id: $0))??.status.isTerminal) == true }
            return ended && ((try? StoreFixtures.occupiedCPU(store))?[pair.agentID] ?? 1) == 0
        }, "all ended and nothing stays reserved: \(String(describing: try? StoreFixtures.occupiedCPU(store)))")
    }

    @Test
    func aSecondManagerOnOneSQLiteDatabaseIsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-sqlite-two-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try Self.start("first", database: nil, dataDir: dir)
        defer { if first.process.isRunning { kill(first.process.processIdentifier, SIGKILL) } }
        let keys = try await Readiness.managerCredentials(log: first.log, dataDir: dir)
        #expect(await Readiness.wait(upTo: .seconds(20)) { (try? await SignedAPI.text(.GET, base: first.base, path: "/auth/role", accessKey: keys.accessKey, secretKey: keys.secretKey))?.0 == 200 })
        let second = try Self.start("second", database: nil, dataDir: dir)
        #expect(await Readiness.wait(upTo: .seconds(20)) { !second.process.isRunning }, "the second manager exits")
        if second.process.isRunning { kill(second.process.processIdentifier, SIGKILL) }
        await Self.reaped(second.process)
        let errors = (try? String(contentsOfFile: second.log + ".err", encoding: .utf8)) ?? ""
        #expect(second.process.terminationStatus != 0)
        #expect(errors.contains("already serves the SQLite database") && errors.contains("(pid \(first.process.processIdentifier))") && errors.contains("PostgreSQL"),
                "\(errors.suffix(1500))")
        // The first one is untouched.
        #expect((try await SignedAPI.text(.GET, base: first.base, path: "/auth/role", accessKey: keys.accessKey, secretKey: keys.secretKey)).0 == 200)
    }
}
