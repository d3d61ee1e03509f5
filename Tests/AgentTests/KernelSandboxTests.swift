import Agent
import AsyncHTTPClient
import ClusterProtocol
import ConfigFile
import ContainerEngine
import Foundation
import NIOCore
import NIOHTTP1
import Sandbox
import Testing
import TestSupport

/// The jail and the hook in real containers under podman. The engine's own seccomp profile is
/// switched off (`engine_seccomp = false` → `seccomp=unconfined`) wherever a test proves a
/// denial, so what fails is Hangar's filter and not podman's.
@Suite(.serialized) struct KernelSandboxTests {
    static func settings(_ mode: SandboxMode, engineSeccomp: Bool = false) -> SandboxSettings {
        var s = SandboxSettings()
        s.mode = mode
        s.engineSeccomp = engineSeccomp
        s.lxcfsRoot = ""
        return s
    }

    /// Calls each syscall with harmless arguments from user code and prints `name errno`.
    /// Without a filter most of these fail for other reasons (no capability, bad pointers),
    /// and some succeed; with it every one is EPERM before the kernel looks at it.
    static let denied: [(name: String, call: String)] = [
        ("mount", "165, b'none', b'/mnt', b'tmpfs', 0, 0"), ("umount2", "166, b'/nonexistent', 0"), ("pivot_root", "155, 0, 0"),
        ("kexec_load", "246, 0, 0, 0, 0"), ("init_module", "175, 0, 0, 0"), ("finit_module", "313, -1, 0, 0"), ("delete_module", "176, 0, 0"),
        ("bpf", "321, 0, 0, 0"), ("perf_event_open", "298, 0, 0, -1, -1, 0"), ("reboot", "169, 0, 0, 0, 0"), ("swapon", "167, 0, 0"),
        ("swapoff", "168, 0"), ("keyctl", "250, 0, 0"), ("add_key", "248, 0, 0, 0, 0, 0"), ("request_key", "249, 0, 0, 0, 0"),
        ("open_by_handle_at", "304, -1, 0, 0"), ("userfaultfd", "323, 0"), ("acct", "163, 0"), ("settimeofday", "164, 0, 0"),
        ("clock_settime", "227, 0, 0"), ("setns", "308, -1, 0"), ("unshare", "272, 0x10000000"),
        ("kill", "62, 1, 0"), ("ptrace", "101, 16, 1, 0, 0"),
    ]

    static var probe: String {
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            + denied.map { "r = libc.syscall(\($0.call)); print('\($0.name)', 0 if r >= 0 else ctypes.get_errno())" }.joined(separator: "\n")
            + "\n"
    }

    static func results(_ stdout: String) -> [String: Int] {
        Dictionary(stdout.split(separator: "\n").compactMap { line -> (String, Int)? in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let n = Int(parts[1]) else { return nil }
            return (String(parts[0]), n)
        }, uniquingKeysWith: { a, _ in a })
    }

    static func query(_ execution: KernelExecution, _ code: String) async throws -> KernelExecutionTests.Outcome {
        try await KernelExecutionTests.run(execution, ExecutionRequest(mode: "query", code: code))
    }

    static func start(_ runner: KernelRunner, _ id: String, image: String = TestEngine.image, cpu: Int64 = 1,
                      slots extra: [String: Int64] = [:]) async throws -> KernelExecution {
        _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s-\(id)", image: image,
                                                  slots: ["cpu": cpu * unit, "mem": 256 << 20].merging(extra) { $1 }))
        return try await runner.execution(id)
    }

    @Test func deniedSyscallsFailWithEPERMAndTheRunnerKeepsServing() async throws {
        let (jailed, _, _) = try makeRunner(sandbox: Self.settings(.enforce))
        let (open, _, _) = try makeRunner(sandbox: Self.settings(.none))
        let id = "k-jail-\(UUID().uuidString.prefix(6).lowercased())", bare = "k-bare-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await jailed.destroy(id); _ = try? await open.destroy(bare) } }

        let outcome = try await Self.query(try await Self.start(jailed, id), Self.probe)
        let errnos = Self.results(outcome.stdout)
        #expect(errnos.count == Self.denied.count, "\(outcome)")
        for (name, _) in Self.denied { #expect(errnos[name] == Int(EPERM), "\(name) under the jail: \(errnos[name] ?? -1)") }

        // The same calls without Hangar's filter (and without the engine's): several get
        // through or fail otherwise, so the EPERMs above are the filter's doing.
        let baseline = Self.results(try await Self.query(try await Self.start(open, bare), Self.probe).stdout)
        #expect(baseline["unshare"] == 0, "a new user namespace is allowed without the jail: \(baseline)")
        #expect(baseline["kill"] == 0, "root in the container may signal PID 1 without the jail")
        #expect(baseline.filter { $0.value != Int(EPERM) }.count >= 5, "\(baseline)")

        // The runner keeps serving, and user code cannot end it.
        let execution = try await jailed.execution(id)
        let killed = try await KernelExecutionTests.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(exec: "kill -9 1; echo status $?; kill -TERM 1; echo status $?")))
        #expect(killed.stdout.contains("status 1") && !killed.stdout.contains("status 0"), "\(killed)")
        try await Task.sleep(for: .milliseconds(300))
        let after = try await Self.query(execution, "print(6*7)")
        #expect(after.stdout == "42\n", "\(after)")
        _ = try? await jailed.destroy(id)
        _ = try? await open.destroy(bare)
    }

    @Test func ordinaryWorkIsUntouchedAndProcessorCountsAreTheAllocation() async throws {
        var settings = Self.settings(.enforce, engineSeccomp: true)
        let hook = SandboxSettings.defaultHookPath
        #expect(hook?.hasSuffix("Hangar_Agent.resources/hangar-hook.so") == true, "the build puts the hook in the agent's resources: \(String(describing: hook))")
        settings.hookPath = hook
        let (runner, _, _) = try makeRunner(sandbox: settings)
        let id = "k-work-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await runner.destroy(id) } }
        let execution = try await Self.start(runner, id, cpu: 1)
        let work = try await Self.query(execution, """
            import os, threading, subprocess, socket, signal, tempfile, shutil, time
            d = tempfile.mkdtemp()
            with open(os.path.join(d, 'a.txt'), 'w') as f: f.write('x' * 100000)
            os.rename(os.path.join(d, 'a.txt'), os.path.join(d, 'b.txt'))
            shutil.copytree(d, d + '-copy'); shutil.rmtree(d); shutil.rmtree(d + '-copy')
            out = []
            t = [threading.Thread(target=lambda i=i: out.append(i)) for i in range(8)]
            [x.start() for x in t]; [x.join() for x in t]
            child = subprocess.Popen(['sleep', '30']); os.kill(child.pid, signal.SIGTERM); child.wait()
            server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()
            client = socket.create_connection(server.getsockname()); conn, _ = server.accept(); client.sendall(b'ping')
            print('work', len(out), child.returncode, conn.recv(4).decode(), subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())
            import multiprocessing
            print('counts', os.cpu_count(), multiprocessing.cpu_count(), len(os.sched_getaffinity(0)))
            """)
        #expect(work.stdout.contains("work 8 -15 ping sub"), "\(work)")
        #expect(work.stdout.contains("counts 1 1 1"), "\(work)")
        let tools = try await KernelExecutionTests.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(exec: "nproc; getconf _NPROCESSORS_ONLN; env | grep -E '^(OMP|MKL|OPENBLAS|NUMEXPR)_NUM_THREADS=' | sort")))
        #expect(tools.stdout == "1\n1\nMKL_NUM_THREADS=1\nNUMEXPR_NUM_THREADS=1\nOMP_NUM_THREADS=1\nOPENBLAS_NUM_THREADS=1\n", "\(tools)")
        #expect(tools.stderr.isEmpty, "the preload loads without complaint: \(tools.stderr)")
        _ = try? await runner.destroy(id)
    }

    /// The shell runtime (what a terminal will run until issue 19 brings real ones) sees the
    /// allocation too, in every tool a user types.
    @Test func theShellRuntimeSeesTheAllocatedCPUs() async throws {
        var settings = Self.settings(.enforce, engineSeccomp: true)
        settings.hookPath = SandboxSettings.defaultHookPath
        let (runner, _, _) = try makeRunner(sandbox: settings)
        let id = "k-shell-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await runner.destroy(id) } }
        _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s-\(id)", image: TestEngine.image,
                                                  slots: ["cpu": unit, "mem": 256 << 20], runtime: "shell"))
        let execution = try await runner.execution(id)
        let counts = try await Self.query(execution, "nproc; getconf _NPROCESSORS_ONLN; python3 -c 'import os, multiprocessing; print(os.cpu_count(), multiprocessing.cpu_count())'")
        #expect(counts.stdout == "1\n1\n1 1\n" && counts.exitCode == 0, "\(counts)")
        _ = try? await runner.destroy(id)
    }

    /// An image label allows one more call; a plugin's allowed syscall reaches only the
    /// containers that got its device; watch mode logs and allows.
    @Test func imageLabelsPluginsAndWatchMode() async throws {
        let mockConfig = ConfigValue.table([("allowed_syscalls", .array([.string("perf_event_open")]))])
        let (runner, _, _) = try makeRunner(sandbox: Self.settings(.enforce), mockConfig: mockConfig)
        let labelled = "hangar/sandbox-labelled:\(UUID().uuidString.prefix(6).lowercased())"
        try await Self.commitImage(labelled, labels: ["ai.hangar.sandbox.allow": "setns"])
        defer { Task { try? await Self.removeImage(labelled) } }
        let code = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfor n, a in (('setns', (308, -1, 0)), ('perf', (298, 0, 0, -1, -1, 0))):\n    r = libc.syscall(*a); print(n, ctypes.get_errno() if r < 0 else 0)\n"
        /// One kernel at a time (the machine may have two cores): start, probe, destroy.
        func probe(image: String = TestEngine.image, slots: [String: Int64] = [:]) async throws -> [String: Int] {
            let id = "k-lbl-\(UUID().uuidString.prefix(6).lowercased())"
            defer { Task { _ = try? await runner.destroy(id) } }
            let out = Self.results(try await Self.query(try await Self.start(runner, id, image: image, slots: slots), code).stdout)
            _ = try? await runner.destroy(id)
            return out
        }
        let plain = try await probe()
        #expect(plain == ["setns": Int(EPERM), "perf": Int(EPERM)], "\(plain)")
        let label = try await probe(image: labelled)
        // Removed now: a cleanup task left to `defer` may never run before the test process
        // ends, and a leftover image shows in every later cluster's image list.
        try? await Self.removeImage(labelled)
        #expect(label["setns"] == Int(EBADF) && label["perf"] == Int(EPERM), "the label allows setns only: \(label)")
        let device = try await probe(slots: ["mock.device": unit])
        #expect(device["perf"] == Int(EFAULT) && device["setns"] == Int(EPERM), "the mock device's plugin allows perf_event_open: \(device)")

        let (watching, _, _) = try makeRunner(sandbox: Self.settings(.watch))
        let watched = "k-watch-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await watching.destroy(watched) } }
        let seen = Self.results(try await Self.query(try await Self.start(watching, watched), code).stdout)
        #expect(seen["setns"] == Int(EBADF), "watch mode allows: \(seen)")
        let log = (try? String(contentsOfFile: watching.scratchRoot + "/\(watched)/ipc/sandbox.log", encoding: .utf8)) ?? ""
        #expect(log.contains(#""syscall":"setns""#) && log.contains(#""syscall":"perf_event_open""#), "watch mode reports: \(log)")
        _ = try? await watching.destroy(watched)
    }

    /// With LXCFS serving a folder, a kernel's /proc/meminfo shows its own memory limit.
    @Test func lxcfsShowsTheKernelsMemory() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let lxcfs = Process()
        lxcfs.executableURL = URL(fileURLWithPath: "/usr/bin/lxcfs")
        lxcfs.arguments = ["--foreground", dir.path]
        lxcfs.standardOutput = FileHandle.nullDevice
        lxcfs.standardError = FileHandle.nullDevice
        try lxcfs.run()
        defer {
            lxcfs.terminate()
            _ = try? run(["/bin/umount", "-l", dir.path])
        }
        let answering = await Readiness.wait { FileManager.default.isReadableFile(atPath: dir.path + "/proc/meminfo")
            && ((try? String(contentsOfFile: dir.path + "/proc/meminfo", encoding: .utf8)) ?? "").contains("MemTotal") }
        try #require(answering, "lxcfs did not serve \(dir.path)/proc/meminfo")
        var settings = Self.settings(.enforce, engineSeccomp: true)
        settings.lxcfsRoot = dir.path
        let (runner, _, _) = try makeRunner(sandbox: settings)
        let id = "k-lxcfs-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await runner.destroy(id) } }
        let execution = try await Self.start(runner, id)
        let meminfo = try await KernelExecutionTests.run(execution, ExecutionRequest(mode: "batch", options: BatchOptions(exec: "grep MemTotal /proc/meminfo")))
        #expect(meminfo.stdout.contains("262144 kB"), "the 256 MiB limit, not the host's memory: \(meminfo)")
        _ = try? await runner.destroy(id)
        // Without LXCFS nothing is mounted and nothing breaks.
        var none = settings
        none.lxcfsRoot = dir.path + "/absent"
        let (plain, _, _) = try makeRunner(sandbox: none)
        let other = "k-nolx-\(UUID().uuidString.prefix(6).lowercased())"
        defer { Task { _ = try? await plain.destroy(other) } }
        let host = try await KernelExecutionTests.run(try await Self.start(plain, other), ExecutionRequest(mode: "batch", options: BatchOptions(exec: "grep MemTotal /proc/meminfo")))
        #expect(host.exitCode == 0 && !host.stdout.contains("262144 kB"), "\(host)")
        _ = try? await plain.destroy(other)
    }

    @Test func aBrokenPolicyNeverStartsAKernelUnsandboxed() async throws {
        let (runner, allocator, _) = try makeRunner(sandbox: Self.settings(.enforce))
        let id = "k-badpol-\(UUID().uuidString.prefix(6).lowercased())"
        let error = await #expect(throws: KernelError.self) {
            _ = try await runner.create(KernelRequest(kernelID: id, sessionID: "s", image: TestEngine.image, slots: ["cpu": unit, "mem": 128 << 20],
                                                      sandbox: KernelSandbox(policy: "allow = [\"mountt\"]")))
        }
        #expect(error?.description.contains("'mountt' is not a syscall") == true, "\(String(describing: error))")
        let record = await runner.record(id)
        #expect(allocator.allocated.isEmpty && record == nil)
    }

    // MARK: - Images with labels, made from the test image through the engine's commit

    static func engineCall(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> Int {
        let socket = try TestEngine.socket()
        let encoded = socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socket
        var request = HTTPClientRequest(url: "http+unix://\(encoded)\(path)")
        request.method = method
        request.headers.add(name: "Host", value: "localhost")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    static func commitImage(_ reference: String, labels: [String: String]) async throws {
        let client = ContainerEngineProbe()
        let container = try await client.createStopped(image: TestEngine.image)
        let (repo, tag) = (reference.split(separator: ":").first.map(String.init) ?? reference, reference.split(separator: ":").last.map(String.init) ?? "latest")
        // One `changes` parameter per label (podman reads `LABEL a=b c=d` as one label "a").
        let changes = labels.sorted { $0.key < $1.key }.map { "&changes=" + ("LABEL \($0.key)=\($0.value)".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }.joined()
        let query = "container=\(container)&repo=\(repo)&tag=\(tag)\(changes)"
        let status = try await engineCall(.POST, "/commit?\(query)", body: "{}")
        _ = try await engineCall(.DELETE, "/containers/\(container)?force=true")
        #expect(status == 201 || status == 200, "commit answered \(status)")
    }

    static func removeImage(_ reference: String) async throws {
        _ = try await engineCall(.DELETE, "/images/\(reference)?force=true")
    }
}

/// Creates a container without starting it, for committing an image from.
struct ContainerEngineProbe {
    func createStopped(image: String) async throws -> String {
        let engine = DockerEngineClient(socketPath: try TestEngine.socket())
        var spec = ContainerSpec(name: "hangar-commit-\(UUID().uuidString.prefix(8).lowercased())", image: image)
        spec.command = ["true"]
        return try await engine.create(spec)
    }
}
