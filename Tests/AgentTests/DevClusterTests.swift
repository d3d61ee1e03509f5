import Foundation
import Testing
import TestSupport

/// `hangard dev`: one process brings up manager and agent on embedded defaults, writes a
/// client config the `hangar` CLI uses, runs code, stops cleanly on Ctrl-C and resumes with
/// its state.
@Suite(.serialized) struct DevClusterTests {
    static func run(_ executable: String, _ arguments: [String], home: String, input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEngine.binDir + "/" + executable)
        process.arguments = arguments
        process.environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
        let out = home + "/out-\(UUID().uuidString)", err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOfFile: out, encoding: .utf8), try String(contentsOfFile: err, encoding: .utf8))
    }

    @Test func devClusterRunsCodeStopsAndResumes() async throws {
        let socket = try TestEngine.socket()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-dev-\(UUID().uuidString.prefix(8))").path
        let home = root + "/home", data = root + "/data"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port = try freeLoopbackPort(), agentPort = try freeLoopbackPort()
        func start(_ log: String) throws -> Process {
            try Hangard.launch(["dev", "--data-dir", data, "--listen", "127.0.0.1:\(port)", "--agent-listen", "127.0.0.1:\(agentPort)",
                                "--engine-socket", socket, "--no-image", "--storage-listen", "127.0.0.1:\(try freeLoopbackPort())",
                                "--web-listen", "127.0.0.1:\(try freeLoopbackPort())"],
                               log: root + "/" + log, environment: ["HOME": home, "PATH": "/usr/bin:/bin"])
        }
        /// Runs code until the agent has registered (the first attempts may find no manager or
        /// agent yet: on a loaded machine the start takes a while). If the dev cluster exits
        /// meanwhile, its log comes back with the failure.
        func runCode(_ code: String, dev: Process, log: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                last = try Self.run("hangar", ["run", TestEngine.image, "-q", "--rm", "-c", code], home: home)
                if last.status == 0 { return last }
                if !dev.isRunning {
                    let text = (try? String(contentsOfFile: root + "/" + log, encoding: .utf8)) ?? "(no log)"
                    return (last.status, last.stdout, last.stderr + "\nhangard dev exited with \(dev.terminationStatus); its log ends:\n" + text.suffix(4000))
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            return last
        }

        let first = try start("dev1.out")
        defer { if first.isRunning { first.terminate() } }
        let answer = try await runCode("print(6*7)", dev: first, log: "dev1.out")
        #expect(answer.status == 0 && answer.stdout == "42\n", "\(answer)")
        let printed = try String(contentsOfFile: root + "/dev1.out", encoding: .utf8)
        #expect(printed.contains("export BACKEND_ACCESS_KEY=") && printed.contains("hangar run"), "the dev cluster prints the client setup: \(printed)")
        let config = try String(contentsOfFile: home + "/.config/hangar/client.toml", encoding: .utf8)
        #expect(config.contains("endpoint = \"http://127.0.0.1:\(port)\""))

        kill(first.processIdentifier, SIGINT)
        for _ in 0..<100 where first.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!first.isRunning, "Ctrl-C stops the dev cluster")

        let second = try start("dev2.out")
        defer { if second.isRunning { second.terminate() } }
        let again = try await runCode("print('resumed')", dev: second, log: "dev2.out")
        #expect(again.status == 0 && again.stdout == "resumed\n", "\(again)")
        let history = try Self.run("hangar", ["session", "ls", "--every", "--json"], home: home)
        let items = (try? JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        #expect(items.count >= 2, "the session from before the restart is still known: \(history)")
        kill(second.processIdentifier, SIGINT)
        for _ in 0..<100 where second.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!second.isRunning)
    }

    /// The pids of processes whose command line contains `text`.
    static func processes(containing text: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let line = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? pid : nil
        }
    }

    /// With its own podman service and a kernel still running, SIGINT and SIGTERM end
    /// `hangard dev` within 10 s, stop (and reap) the podman service it started, and leave the
    /// kernel running for the next start to re-adopt.
    @Test func signalsEndDevWithItsOwnEngineAndAKernelRunning() async throws {
        for socket in ["/var/run/docker.sock", "/run/podman/podman.sock"] {
            try #require(!FileManager.default.fileExists(atPath: socket), "\(socket) exists: hangard dev would use it instead of starting its own podman service")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-devsig-\(UUID().uuidString.prefix(8))").path
        let home = root + "/home", data = root + "/data"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port = try freeLoopbackPort(), agentPort = try freeLoopbackPort(), storagePort = try freeLoopbackPort()
        var environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
        environment["CONTAINERS_CONF"] = ProcessInfo.processInfo.environment["CONTAINERS_CONF"]
        func start(_ log: String) throws -> Process {
            try Hangard.launch(["dev", "--data-dir", data, "--listen", "127.0.0.1:\(port)", "--agent-listen", "127.0.0.1:\(agentPort)",
                                "--no-image", "--storage-listen", "127.0.0.1:\(storagePort)", "--web-listen", "127.0.0.1:\(try freeLoopbackPort())"], log: root + "/" + log, environment: environment)
        }
        func runKept(_ code: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
            for _ in 0..<40 {
                last = try Self.run("hangar", ["run", TestEngine.image, "-q", "-t", "kept", "-c", code], home: home)
                if last.status == 0 { return last }
                try await Task.sleep(for: .milliseconds(500))
            }
            return last
        }
        func ends(_ process: Process, on signal: Int32) async -> Bool {
            kill(process.processIdentifier, signal)
            return await Readiness.wait(upTo: .seconds(10)) { !process.isRunning }
        }
        let service = data + "/podman/podman.sock"

        let first = try start("dev1.out")
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let answer = try await runKept("x = 41\nprint('kept')")
        #expect(answer.status == 0 && answer.stdout == "kept\n", "\(answer)")
        #expect(!Self.processes(containing: service).isEmpty, "dev started its own podman service")
        #expect(await ends(first, on: SIGINT), "SIGINT ends hangard dev within 10 s with a kernel running")
        #expect(await Readiness.wait(upTo: .seconds(3)) { Self.processes(containing: service).isEmpty }, "its podman service is stopped and reaped")

        let second = try start("dev2.out")
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        let again = try await runKept("print(x + 1)")
        #expect(again.status == 0 && again.stdout == "42\n", "the kernel kept running and was re-adopted: \(again)")
        _ = try Self.run("hangar", ["session", "rm", "kept"], home: home)
        #expect(await ends(second, on: SIGTERM), "SIGTERM ends it too")
        #expect(await Readiness.wait(upTo: .seconds(3)) { Self.processes(containing: service).isEmpty })
    }
}
