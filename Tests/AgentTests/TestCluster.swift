import Foundation
import StateStore
import Testing
import TestSupport

/// A real manager and agent (hangard processes) on the test engine, with the superadmin's
/// keys and direct access to the manager's SQLite file (WAL allows a second reader/writer).
final class TestCluster {
    let dir: String
    let managerPort: Int
    let agentPort: Int
    let agentID: String
    let manager: Process
    var agent: Process
    /// The storage proxy process (with one vfs volume, host "local:volume1"), when asked for.
    var storageProxy: Process?
    let store: StateStore
    let accessKey: String
    let secretKey: String
    var base: String { "http://127.0.0.1:\(managerPort)" }

    init(prefix: String, managerConfig: String = "agent_lost_timeout = 30\nscheduling_interval = 0.2\n", storage: Bool = false) async throws {
        let socket = try TestEngine.socket()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(13))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        managerPort = try freeLoopbackPort()
        agentPort = try freeLoopbackPort()
        var managerToml = "[manager]\n\(managerConfig)"
        if storage {
            let port = try freeLoopbackPort()
            let secret = UUID().uuidString
            try FileManager.default.createDirectory(atPath: dir + "/vfolders", withIntermediateDirectories: true)
            try """
                [storage-proxy]
                listen = "127.0.0.1:\(port)"
                secret = "\(secret)"
                [volumes.volume1]
                backend = "vfs"
                [volumes.volume1.options]
                root = "\(dir)/vfolders"
                [plugins]
                search_paths = ["\(TestEngine.binDir)"]
                """.write(toFile: dir + "/storage.toml", atomically: true, encoding: .utf8)
            storageProxy = try Hangard.launch(["storage-proxy", "--config", dir + "/storage.toml"], log: dir + "/storage.out")
            managerToml += "default_vfolder_host = \"local:volume1\"\n[storage-proxies.local]\nurl = \"http://127.0.0.1:\(port)\"\nsecret = \"\(secret)\"\n"
        }
        try managerToml.write(toFile: dir + "/manager.toml", atomically: true, encoding: .utf8)
        manager = try Hangard.launch(["manager", "--config", dir + "/manager.toml", "--data-dir", dir + "/data", "--listen", "127.0.0.1:\(managerPort)"],
                                              log: dir + "/manager.out")
        (accessKey, secretKey) = try await Readiness.managerCredentials(log: dir + "/manager.out", dataDir: dir + "/data")
        agentID = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            [agent]
            id = "\(agentID)"
            manager = "http://127.0.0.1:\(managerPort)"
            listen = "127.0.0.1:\(agentPort)"
            scratch_dir = "\(dir)/scratch"
            engine_socket = "\(socket)"
            heartbeat_interval = 0.3
            """.write(toFile: dir + "/agent.toml", atomically: true, encoding: .utf8)
        agent = try Hangard.launch(["agent", "--config", dir + "/agent.toml", "--cluster-secret-file", dir + "/data/cluster-secret"], log: dir + "/agent.out")
        store = try StateStore(location: .sqlite(path: dir + "/data/manager.db"))
        for _ in 0..<100 where try store.agent(id: agentID)?.status != .alive { try await Task.sleep(for: .milliseconds(100)) }
        guard try store.agent(id: agentID)?.status == .alive else {
            // Leave no process behind for the rest of the suite, and say why (a port another
            // test took between choosing it and binding it shows in the manager's log).
            for process in [storageProxy, agent, manager].compactMap({ $0 }) where process.isRunning { process.terminate() }
            store.close()
            let log = (try? String(contentsOfFile: dir + "/manager.out.err", encoding: .utf8)) ?? ""
            try #require(Bool(false), "the agent did not register; the manager's log ends: \(log.suffix(2000))")
            return
        }
    }

    /// Agents started by `addAgent` (by suffix), stopped with the others.
    var extraAgents: [String: Process] = [:]

    /// Starts one more agent on the same engine (`extra` is appended to its `[agent]` table)
    /// and waits until the manager has it ALIVE; answers its id.
    @discardableResult
    func addAgent(_ suffix: String, extra: String = "", engineSocket: String? = nil) async throws -> String {
        let socket = try engineSocket ?? TestEngine.socket()
        let id = "\(agentID)-\(suffix)"
        let port = try freeLoopbackPort()
        try """
            [agent]
            id = "\(id)"
            manager = "http://127.0.0.1:\(managerPort)"
            listen = "127.0.0.1:\(port)"
            scratch_dir = "\(dir)/scratch-\(suffix)"
            engine_socket = "\(socket)"
            heartbeat_interval = 0.3
            \(extra)
            """.write(toFile: dir + "/agent-\(suffix).toml", atomically: true, encoding: .utf8)
        try startAgent(suffix)
        for _ in 0..<100 where try store.agent(id: id)?.status != .alive { try await Task.sleep(for: .milliseconds(100)) }
        try #require(try store.agent(id: id)?.status == .alive, "agent \(id) did not register")
        return id
    }

    /// (Re)starts the agent `addAgent(suffix)` configured.
    func startAgent(_ suffix: String) throws {
        extraAgents[suffix] = try Hangard.launch(["agent", "--config", dir + "/agent-\(suffix).toml", "--cluster-secret-file", dir + "/data/cluster-secret"],
                                                 log: dir + "/agent-\(suffix)-\(extraAgents.count).out")
    }

    /// Stops every process and removes every container the agents left.
    func stop() {
        storageProxy?.terminate()
        for extra in extraAgents.values {
            extra.terminate()
            if extra.isRunning { extra.waitUntilExit() }
        }
        agent.terminate()
        manager.terminate()
        if agent.isRunning { agent.waitUntilExit() }
        store.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs the `hangar` CLI with this cluster's credentials in the environment.
    func hangar(_ arguments: [String], stdin: String? = nil, accessKey: String? = nil, secretKey: String? = nil,
                workingDirectory: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEngine.binDir + "/hangar")
        process.arguments = arguments
        process.environment = ["BACKEND_ENDPOINT": base, "BACKEND_ACCESS_KEY": accessKey ?? self.accessKey,
                               "BACKEND_SECRET_KEY": secretKey ?? self.secretKey, "HOME": dir, "PATH": "/usr/bin:/bin"]
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let id = UUID().uuidString
        let out = dir + "/cli-\(id).out", err = dir + "/cli-\(id).err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOfFile: out, encoding: .utf8), try String(contentsOfFile: err, encoding: .utf8))
    }
}
