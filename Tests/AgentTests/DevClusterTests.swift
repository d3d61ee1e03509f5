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
                                "--engine-socket", socket, "--no-image", "--storage-listen", "127.0.0.1:\(try freeLoopbackPort())"],
                               log: root + "/" + log, environment: ["HOME": home, "PATH": "/usr/bin:/bin"])
        }
        /// Runs code until the agent has registered (the first attempts may find no agent yet).
        func runCode(_ code: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
            for _ in 0..<30 {
                last = try Self.run("hangar", ["run", TestEngine.image, "-q", "--rm", "-c", code], home: home)
                if last.status == 0 { return last }
                try await Task.sleep(for: .milliseconds(500))
            }
            return last
        }

        let first = try start("dev1.out")
        defer { if first.isRunning { first.terminate() } }
        let answer = try await runCode("print(6*7)")
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
        let again = try await runCode("print('resumed')")
        #expect(again.status == 0 && again.stdout == "resumed\n", "\(again)")
        let history = try Self.run("hangar", ["session", "ls", "--every", "--json"], home: home)
        let items = (try? JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        #expect(items.count >= 2, "the session from before the restart is still known: \(history)")
        kill(second.processIdentifier, SIGINT)
        for _ in 0..<100 where second.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!second.isRunning)
    }
}
