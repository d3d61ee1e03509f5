import Agent
import ClusterProtocol
import Foundation
import Testing
import TestSupport

/// Code execution through the in-container runner in a real container: persistent Python
/// state, stdout and stderr apart, input, interrupt, a crashing interpreter, batch steps and
/// uploads.
@Suite(.serialized) struct KernelExecutionTests {
    /// Output and outcome of one run, driven to its end like a client would.
    struct Outcome {
        var stdout = ""
        var stderr = ""
        var statuses: [String] = []
        var exitCode: Int?
        var prompts: [String] = []
    }

    static func run(_ execution: KernelExecution, _ first: ExecutionRequest, inputs: [String] = []) async throws -> Outcome {
        var outcome = Outcome()
        var inputs = inputs
        var request = first
        var calls = 0
        while true {
            let result = try await execution.execute(request)
            calls += 1
            for pair in result.console {
                if pair[0] == "stdout" { outcome.stdout += pair[1] } else { outcome.stderr += pair[1] }
            }
            outcome.statuses.append(result.status)
            switch result.status {
            case "finished":
                outcome.exitCode = result.exitCode
                return outcome
            case "waiting-input":
                outcome.prompts.append(result.options?.prompt ?? "")
                request = ExecutionRequest(mode: "input", code: inputs.isEmpty ? "" : inputs.removeFirst(), runId: result.runId)
            default:
                request = ExecutionRequest(mode: "continue", runId: result.runId)
            }
            try #require(calls < 200, "the run never finished")
        }
    }

    @Test func pythonQueriesKeepStateStreamsAndInput() async throws {
        let (runner, allocator, _) = try makeRunner()
        let id = "k-exec-\(UUID().uuidString.prefix(6))"
        _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s-exec", image: TestEngine.image,
                                                  slots: ["cpu": unit, "mem": 256 << 20]))
        defer { Task { _ = try? await runner.destroy(id) } }
        let execution = try await runner.execution(id)

        let first = try await Self.run(execution, ExecutionRequest(mode: "query", code: "x = 6 * 7\nprint('hello')"))
        #expect(first.stdout == "hello\n" && first.stderr.isEmpty && first.exitCode == 0, "\(first)")
        let second = try await Self.run(execution, ExecutionRequest(mode: "query", code: "print(x)"))
        #expect(second.stdout == "42\n", "a later query sees the earlier one's variables: \(second)")

        let streams = try await Self.run(execution, ExecutionRequest(mode: "query", code: "import sys\nprint('out')\nprint('err', file=sys.stderr)"))
        #expect(streams.stdout == "out\n" && streams.stderr == "err\n", "stderr stays stderr: \(streams)")

        let asked = try await Self.run(execution, ExecutionRequest(mode: "query", code: "name = input('who? ')\nprint('hi', name)"), inputs: ["bob"])
        #expect(asked.prompts == ["who? "] && asked.stdout == "hi bob\n", "\(asked)")
        #expect(asked.statuses.contains("waiting-input"))

        let failed = try await Self.run(execution, ExecutionRequest(mode: "query", code: "1/0"))
        #expect(failed.exitCode == 1 && failed.stderr.contains("ZeroDivisionError"), "\(failed)")

        // A long-running query streams: the first output arrives before it finishes.
        let streaming = try await execution.execute(ExecutionRequest(mode: "query", code: "import time\nprint('tick', flush=True)\ntime.sleep(4)\nprint('tock')"))
        #expect(streaming.status == "continued" && streaming.console.first?[1] == "tick\n", "\(streaming)")
        var rest = Outcome()
        var result = streaming
        while result.status != "finished" {
            result = try await execution.execute(ExecutionRequest(mode: "continue", runId: streaming.runId))
            rest.stdout += result.console.filter { $0[0] == "stdout" }.map { $0[1] }.joined()
        }
        #expect(rest.stdout == "tock\n")

        // Busy: a second query while one runs is refused and the first one is unharmed.
        let sleeper = try await execution.execute(ExecutionRequest(mode: "query", code: "import time\ntime.sleep(30)"))
        #expect(sleeper.status == "continued")
        await #expect(throws: ExecutionError.self) { try await execution.execute(ExecutionRequest(mode: "query", code: "print(1)")) }
        try await execution.interrupt()
        var interrupted = Outcome()
        var state = sleeper
        while state.status != "finished" {
            state = try await execution.execute(ExecutionRequest(mode: "continue", runId: sleeper.runId))
            interrupted.stderr += state.console.filter { $0[0] == "stderr" }.map { $0[1] }.joined()
        }
        #expect(state.exitCode == 1 && interrupted.stderr.contains("KeyboardInterrupt"), "\(interrupted)")
        let alive = try await Self.run(execution, ExecutionRequest(mode: "query", code: "print(x + 1)"))
        #expect(alive.stdout == "43\n", "state survives an interrupt: \(alive)")

        // The interpreter dies: reported, restarted, state gone, the kernel keeps working.
        let crash = try await Self.run(execution, ExecutionRequest(mode: "query", code: "import os\nos._exit(3)"))
        #expect(crash.exitCode == 1 && crash.stderr.contains("interpreter exited with status 3"), "\(crash)")
        let after = try await Self.run(execution, ExecutionRequest(mode: "query", code: "print('x' in globals())"))
        #expect(after.stdout == "False\n", "\(after)")

        _ = try await runner.destroy(id)
        #expect(allocator.allocated.isEmpty)
    }

    @Test func batchStepsUploadsAndExitCodes() async throws {
        let (runner, _, _) = try makeRunner()
        let id = "k-batch-\(UUID().uuidString.prefix(6))"
        _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s-batch", image: TestEngine.image,
                                                  slots: ["cpu": unit, "mem": 256 << 20]))
        defer { Task { _ = try? await runner.destroy(id) } }
        let execution = try await runner.execution(id)
        let main = Data("import sys, helper\nprint('batch', helper.VALUE)\nprint('warn', file=sys.stderr)\n".utf8).base64EncodedString()
        let helper = Data("VALUE = 7\n".utf8).base64EncodedString()
        // One bad path refuses the whole upload; nothing of it is written.
        await #expect(throws: KernelError.self) { () async throws in
            _ = try await runner.writeFiles(id, KernelUpload(files: [.init(path: "ok.py", data: helper), .init(path: "../escape.py", data: helper)]))
        }
        for hostile in ["/etc/passwd", "a/../../b", "..", "x\u{0}y", String(repeating: "n", count: 256)] {
            await #expect(throws: KernelError.self, "\(hostile.prefix(20))") {
                _ = try await runner.writeFiles(id, KernelUpload(files: [.init(path: hostile, data: helper)]))
            }
        }
        #expect(try await runner.writeFiles(id, KernelUpload(files: [.init(path: "main.py", data: main), .init(path: "helper.py", data: helper)])) == 2)
        let scratch = runner.scratchRoot + "/" + id + "/work"
        #expect(!FileManager.default.fileExists(atPath: scratch + "/ok.py"), "a refused upload writes nothing")

        let batch = try await Self.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(clean: "*", build: "echo building; ls helper.py", exec: "*")))
        #expect(batch.statuses.contains("build-finished") && batch.exitCode == 0, "\(batch)")
        #expect(batch.stdout == "building\nhelper.py\nbatch 7\n" && batch.stderr == "warn\n", "\(batch)")

        let failing = try await Self.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(exec: "echo partial; exit 4")))
        #expect(failing.exitCode == 4 && failing.stdout == "partial\n", "\(failing)")
        let brokenBuild = try await Self.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(build: "exit 2", exec: "echo never")))
        #expect(brokenBuild.exitCode == 2 && !brokenBuild.stdout.contains("never"), "a failed build stops the run: \(brokenBuild)")
        // A shell command reading stdin sends no prompt; input still reaches it.
        let reading = try await execution.execute(ExecutionRequest(mode: "batch", options: BatchOptions(exec: "read line; echo got $line")))
        #expect(reading.status == "continued" && reading.console.isEmpty)
        let shellInput = try await Self.run(execution, ExecutionRequest(mode: "input", code: "sam", runId: reading.runId))
        #expect(shellInput.stdout == "got sam\n" && shellInput.exitCode == 0, "\(shellInput)")
    }
}
