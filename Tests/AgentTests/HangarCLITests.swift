import AsyncHTTPClient
import ClusterProtocol
import Foundation
import Identity
import NIOCore
import NIOHTTP1
import StateStore
import Testing
import TestSupport

/// The `hangar` CLI against a real manager, agent and podman: code runs in the test image,
/// state persists within a session, input reaches the program, stderr stays stderr, exit
/// statuses come back, and sessions are listed, inspected, followed and destroyed.
@Suite(.serialized) struct HangarCLITests {
    static let image = TestEngine.image

    /// A query ends with the status `python -c` would exit with, in `hangar run` and in the
    /// execute API's exitCode; batch mode keeps its own.
    @Test func queryModeExitStatusesAreThePrograms() async throws {
        let cluster = try await TestCluster(prefix: "exit")
        defer { cluster.stop() }
        let cases: [(code: String, status: Int32, stderr: String)] = [
            ("print('fine')", 0, ""), ("raise SystemExit(3)", 3, ""), ("import sys; sys.exit(0)", 0, ""), ("raise SystemExit", 0, ""),
            ("raise SystemExit('bye now')", 1, "bye now"), ("raise SystemExit(256 + 7)", 7, ""), ("1/0", 1, "ZeroDivisionError"),
            ("raise SystemExit(True)", 1, ""),
        ]
        for c in cases {
            let out = try cluster.hangar(["run", Self.image, "-t", "exit-q", "-q", "-c", c.code])
            #expect(out.status == c.status, "\(c.code): \(out)")
            #expect(c.stderr.isEmpty ? !out.stderr.contains("SystemExit") : out.stderr.contains(c.stderr), "\(c.code): \(out)")
        }
        // The execute API carries the same status.
        let (status, body) = try await SignedAPI.json(.POST, base: cluster.base, path: "/session/exit-q",
                                                      json: #"{"mode": "query", "code": "raise SystemExit(5)", "runId": "r-exit-5"}"#,
                                                      accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        let result = body?["result"] as? [String: Any]
        #expect(status == 200 && result?["status"] as? String == "finished" && (result?["exitCode"] as? Int) == 5, "\(body ?? [:])")
        let batch = try cluster.hangar(["run", Self.image, "-t", "exit-q", "-q", "--exec", "exit 4"])
        #expect(batch.status == 4, "\(batch)")
        _ = try cluster.hangar(["session", "rm", "exit-q"])

        // -r mem= takes Backend.AI's size forms, any case; the kernel gets exactly that limit.
        for (text, bytes) in [("300MiB", 300 << 20), ("300m", 300 << 20), ("0.25GB", 256 << 20), ("262144ki", 256 << 20)] {
            let out = try cluster.hangar(["run", Self.image, "-q", "--rm", "-r", "mem=\(text)", "-c",
                                          "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())"])
            #expect(out.status == 0 && out.stdout == "\(bytes)\n", "\(text): \(out)")
        }
        let bad = try cluster.hangar(["run", Self.image, "-q", "--rm", "-r", "mem=12q", "-c", "print(1)"])
        #expect(bad.status != 0 && bad.stderr.contains("'12q'") && bad.stderr.contains("16g"), "a bad size names the accepted forms: \(bad)")
        let huge = try cluster.hangar(["run", Self.image, "-q", "--rm", "-r", "mem=100t", "-c", "print(1)"])
        #expect(huge.status != 0 && huge.stderr.contains("100 TiB of mem") && huge.stderr.contains("GiB"), "human amounts: \(huge)")
    }

    /// `hangar run` in the background, its stdout and stderr in files.
    static func background(_ cluster: TestCluster, _ arguments: [String]) throws -> (process: Process, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEngine.binDir + "/hangar")
        process.arguments = arguments
        process.environment = ["BACKEND_ENDPOINT": cluster.base, "BACKEND_ACCESS_KEY": cluster.accessKey,
                               "BACKEND_SECRET_KEY": cluster.secretKey, "HOME": cluster.dir, "PATH": "/usr/bin:/bin"]
        let out = cluster.dir + "/bg-\(UUID().uuidString).out", err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    static func sessions(_ cluster: TestCluster) throws -> [[String: Any]] {
        let listed = try cluster.hangar(["session", "ls", "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
    }

    /// Ctrl-C on a run whose session still waits cancels it and leaves nothing reserved; on a
    /// running `--rm` one it interrupts the code and removes the session; a kept session is named.
    @Test func signalsStopRunsAndLeaveNothingBehind() async throws {
        let cluster = try await TestCluster(prefix: "sigrun")
        defer { cluster.stop() }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let hold = try cluster.hangar(["run", Self.image, "-t", "sig-hold", "-r", "cpu=\(cores)", "-c", "print('holding')"])
        #expect(hold.status == 0 && hold.stderr.contains("session sig-hold is kept") && hold.stderr.contains("hangar session rm sig-hold"), "\(hold)")

        for signal in [SIGINT, SIGTERM] {
            let waiting = try Self.background(cluster, ["run", Self.image, "-t", "sig-wait", "-r", "cpu=1", "-c", "print('never')"])
            let pending = await Readiness.wait(upTo: .seconds(15)) {
                ((try? Self.sessions(cluster)) ?? []).contains { $0["sessionName"] as? String == "sig-wait" && $0["status"] as? String == "PENDING" }
            }
            #expect(pending, "the second session waits for the cores the first holds")
            let info = try cluster.hangar(["session", "info", "sig-wait", "--json"])
            let detail = try? JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
            let reason = detail?["statusInfo"] as? String ?? info.stdout
            #expect(reason.contains("held by your session sig-hold") && reason.contains("hangar session rm"), "the reason names the holder: \(reason)")
            kill(waiting.process.processIdentifier, signal)
            let ended = await Readiness.wait(upTo: .seconds(10)) { !waiting.process.isRunning }
            #expect(ended && waiting.process.terminationStatus == 128 + signal, "signal \(signal) ends a waiting run")
            let live = try Self.sessions(cluster).compactMap { $0["sessionName"] as? String }
            #expect(!live.contains("sig-wait"), "the waiting session is cancelled, nothing reserved: \(live)")
            let err = (try? String(contentsOfFile: waiting.err, encoding: .utf8)) ?? ""
            #expect(!err.contains("never"))
        }
        // `hangar session create` interrupted while its session waits cancels it too.
        let creating = try Self.background(cluster, ["session", "create", Self.image, "-t", "sig-create", "-r", "cpu=1"])
        let createPending = await Readiness.wait(upTo: .seconds(15)) {
            ((try? Self.sessions(cluster)) ?? []).contains { $0["sessionName"] as? String == "sig-create" && $0["status"] as? String == "PENDING" }
        }
        #expect(createPending)
        kill(creating.process.processIdentifier, SIGINT)
        #expect(await Readiness.wait(upTo: .seconds(10)) { !creating.process.isRunning })
        #expect(!(try Self.sessions(cluster)).contains { $0["sessionName"] as? String == "sig-create" }, "the waiting session is cancelled")
        _ = try cluster.hangar(["session", "rm", "sig-hold"])

        let busy = try Self.background(cluster, ["run", Self.image, "--rm", "-t", "sig-busy", "-c", "import time\nprint('started', flush=True)\ntime.sleep(120)"])
        let startedRunning = await Readiness.wait(upTo: .seconds(30)) { ((try? String(contentsOfFile: busy.out, encoding: .utf8)) ?? "").contains("started") }
        #expect(startedRunning)
        kill(busy.process.processIdentifier, SIGINT)
        let interrupted = await Readiness.wait(upTo: .seconds(15)) { !busy.process.isRunning }
        let busyErr = (try? String(contentsOfFile: busy.err, encoding: .utf8)) ?? ""
        #expect(interrupted && busy.process.terminationStatus != 0 && busyErr.contains("KeyboardInterrupt"), "\(busyErr)")
        let left = try Self.sessions(cluster).compactMap { $0["sessionName"] as? String }
        #expect(!left.contains("sig-busy"), "--rm removes the interrupted session: \(left)")
    }

    @Test func runExecutesCodeEndToEnd() async throws {
        let cluster = try await TestCluster(prefix: "cli")
        defer { cluster.stop() }

        let hello = try cluster.hangar(["run", Self.image, "-c", "print(6*7)", "--rm"])
        #expect(hello.status == 0 && hello.stdout == "42\n", "\(hello)")
        #expect(!hello.stderr.contains("⋯"), "no progress line when stderr is not a terminal: \(hello.stderr)")
        // On a terminal the progress line is erased before the program's output.
        let command = "\(TestEngine.binDir)/hangar run \(Self.image) -c 'print(6*7)' --rm"
        let (code, onTTY) = try run(["/usr/bin/script", "-qec", command, "/dev/null"],
                                    environment: ["BACKEND_ENDPOINT": cluster.base, "BACKEND_ACCESS_KEY": cluster.accessKey,
                                                  "BACKEND_SECRET_KEY": cluster.secretKey, "HOME": cluster.dir, "TERM": "xterm"])
        let lastLine = onTTY.range(of: "⋯", options: .backwards).map { String(onTTY[$0.lowerBound...]) } ?? ""
        #expect(code == 0 && lastLine.contains("\r\u{1B}[K42"), "the line is erased, then the output: \(onTTY.debugDescription)")

        let first = try cluster.hangar(["run", Self.image, "-t", "cli-state", "-c", "x = 41\nprint('set')"])
        #expect(first.status == 0 && first.stdout == "set\n", "\(first)")
        let second = try cluster.hangar(["run", Self.image, "-t", "cli-state", "-c", "print(x + 1)"])
        #expect(second.status == 0 && second.stdout == "42\n", "the second run sees the first one's variables: \(second)")
        #expect(second.stderr.contains("reusing the running session cli-state"))

        let streams = try cluster.hangar(["run", Self.image, "-t", "cli-state", "-q", "-c", "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)"])
        #expect(streams.stdout == "to-out\n" && streams.stderr == "to-err\n", "stderr stays stderr: \(streams)")

        let asked = try cluster.hangar(["run", Self.image, "-t", "cli-state", "-q", "-c", "name = input('who? ')\nprint('hi', name)"], stdin: "bob\n")
        #expect(asked.status == 0 && asked.stdout == "hi bob\n" && asked.stderr.contains("who? "), "a program waiting for input gets it: \(asked)")

        let failing = try cluster.hangar(["run", Self.image, "-t", "cli-state", "-q", "-c", "1/0"])
        #expect(failing.status == 1 && failing.stderr.contains("ZeroDivisionError") && failing.stdout.isEmpty, "\(failing)")

        // Batch: files uploaded into /home/work, then a command whose exit status comes back.
        let work = cluster.dir + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try "import sys\nprint('batch ran')\nsys.exit(3)\n".write(toFile: work + "/main.py", atomically: true, encoding: .utf8)
        let batch = try cluster.hangar(["run", Self.image, "-q", "--exec", "*", "main.py", "--rm"], workingDirectory: work)
        #expect(batch.status == 3 && batch.stdout == "batch ran\n", "\(batch)")

        // Listing and info, as JSON.
        let listed = try cluster.hangar(["session", "ls", "--json"])
        let items = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        #expect(items.map { $0["sessionName"] as? String } == ["cli-state"], "only the live session is listed: \(listed)")
        let info = try cluster.hangar(["session", "info", "cli-state", "--json"])
        let detail = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        #expect(detail?["status"] as? String == "RUNNING" && (detail?["numQueriesExecuted"] as? Int ?? 0) >= 5, "\(info)")
        let every = try cluster.hangar(["session", "ls", "--every"])
        #expect(every.stdout.split(separator: "\n").filter { $0.contains("TERMINATED") }.count == 3, "the three --rm sessions ended: \(every.stdout)")

        // Another user sees none of it.
        let other = try cluster.store.createUser(email: "other@hangar.local", password: "other-password", passwordRounds: 1000)
        let otherKeys = try cluster.store.createKeypair(userID: other.id)
        let hidden = try cluster.hangar(["session", "info", "cli-state"], accessKey: otherKeys.accessKey, secretKey: otherKeys.secretKey)
        #expect(hidden.status == 1 && hidden.stderr.contains("404"), "\(hidden)")
        let theirs = try cluster.hangar(["session", "ls", "--json"], accessKey: otherKeys.accessKey, secretKey: otherKeys.secretKey)
        let theirItems = (try JSONSerialization.jsonObject(with: Data(theirs.stdout.utf8)) as? [String: Any])?["items"] as? [Any]
        #expect(theirs.status == 0 && theirItems?.isEmpty == true, "\(theirs)")
        let notAdmin = try cluster.hangar(["session", "ls", "--all"], accessKey: otherKeys.accessKey, secretKey: otherKeys.secretKey)
        #expect(notAdmin.status == 1 && notAdmin.stderr.contains("403"))

        // Destroy, then the events of the ended session and the freed slots.
        let removed = try cluster.hangar(["session", "rm", "cli-state"])
        #expect(removed.status == 0, "\(removed)")
        let events = try cluster.hangar(["session", "events", "cli-state"])
        #expect(events.stdout.split(separator: "\n").first == "session_enqueued" && events.stdout.contains("session_terminated"), "\(events)")
        for _ in 0..<50 where !(try cluster.store.agent(id: cluster.agentID)?.occupied.amounts.isEmpty ?? false) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try cluster.store.agent(id: cluster.agentID)?.occupied.amounts.isEmpty == true)
        let gone = try cluster.hangar(["session", "rm", "no-such-session"])
        #expect(gone.status == 1 && gone.stderr.contains("no-such-session"))
    }

    @Test func httpExecuteUploadsAndIdleTimeout() async throws {
        let cluster = try await TestCluster(prefix: "exe")
        defer { cluster.stop() }
        let created = try cluster.hangar(["session", "create", Self.image, "-t", "http-exec"])
        #expect(created.status == 0, "\(created)")

        // Backend.AI's HTTP execute: start, then continue until finished.
        func execute(_ body: String) async throws -> [String: Any] {
            let (status, reply) = try await SignedAPI.json(.POST, base: cluster.base, path: "/session/http-exec", json: body,
                                                                   accessKey: cluster.accessKey, secretKey: cluster.secretKey)
            #expect(status == 200, "\(String(describing: reply))")
            return reply?["result"] as? [String: Any] ?? [:]
        }
        var result = try await execute(#"{"mode": "query", "code": "y = 5\nprint(y * 2)", "runId": null}"#)
        var output = ""
        while true {
            output += (result["console"] as? [[String]] ?? []).filter { $0.first == "stdout" }.map { $0[1] }.joined()
            if result["status"] as? String == "finished" { break }
            result = try await execute(#"{"mode": "continue", "code": "", "runId": "\#(result["runId"] as? String ?? "")"}"#)
        }
        #expect(output == "10\n" && result["exitCode"] as? Int == 0, "\(result)")
        let (unknown, problem) = try await SignedAPI.json(.POST, base: cluster.base, path: "/session/http-exec", json: #"{"mode": "query", "cod": "1"}"#,
                                                                   accessKey: cluster.accessKey, secretKey: cluster.secretKey)
        #expect(unknown == 400 && (problem?["msg"] as? String ?? "").contains("'cod'"), "unknown keys are named: \(String(describing: problem))")

        // Multipart upload: a hostile file name is refused and nothing is written.
        func upload(_ filename: String) async throws -> Int {
            let boundary = "b0undary"
            let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"src\"; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream\r\n\r\nprint('uploaded')\n\r\n--\(boundary)--\r\n"
            return try await SignedAPI.request(.POST, base: cluster.base, path: "/session/http-exec/upload", body: ByteBuffer(string: body),
                                                             contentType: "multipart/form-data; boundary=\(boundary)",
                                                             accessKey: cluster.accessKey, secretKey: cluster.secretKey).0
        }
        #expect(try await upload("../escape.py") == 400)
        #expect(try await upload("up.py") == 204)
        result = try await execute(#"{"mode": "query", "code": "print(open('up.py').read().strip()); print(__import__('os').path.exists('../escape.py'))"}"#)
        while result["status"] as? String != "finished" {
            result = try await execute(#"{"mode": "continue", "code": "", "runId": "\#(result["runId"] as? String ?? "")"}"#)
        }
        #expect((result["console"] as? [[String]])?.first?[1] == "print('uploaded')\nFalse\n", "\(result)")

        // Idle timeout from the keypair's resource policy ends an idle interactive session.
        try cluster.store.database.withConnection { c in
            try c.execute("UPDATE resource_policies SET idle_timeout = 1 WHERE scope = 'keypair'")
        }
        var ended: SessionRecord?
        for _ in 0..<100 {
            ended = try cluster.store.findSession("http-exec", accessKey: nil)
            if ended?.status.isTerminal == true { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ended?.status == .terminated && ended?.statusInfo.hasPrefix("idle-timeout") == true, "\(String(describing: ended))")
    }
}
