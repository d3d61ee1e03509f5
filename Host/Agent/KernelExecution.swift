import ClusterProtocol
import Foundation
import NIOCore

/// Why an execute call was refused; the kernel and its state are untouched by any of these.
public enum ExecutionError: Error, Sendable, CustomStringConvertible {
    /// Another run is in progress.
    case busy(String)
    case invalid(String)
    /// The runner cannot be reached (the container is gone or never started its runner).
    case unreachable(String)

    public var description: String {
        switch self {
        case .busy(let m), .invalid(let m), .unreachable(let m): m
        }
    }
}

/// Code execution in one kernel through its in-container runner, with Backend.AI's execute
/// semantics: a run is started by `query` or `batch` and followed by `continue` and `input`
/// calls; each call returns the output produced since the previous one as soon as there is
/// some (or the run finished, or waits for input), so the caller can stream it.
public actor KernelExecution {
    enum Event: Sendable {
        case waiting(String)
        case finished(String)
        case lost(String)
    }

    struct Step: Sendable {
        /// The status reported when this step ends: `clean-finished`, `build-finished`, `finished`.
        var status: String
        /// `Q` (query in the runtime) or `B` (shell command).
        var frame: Character
        var code: String
    }

    struct Run: Sendable {
        var id: String
        var steps: [Step]
        var console: [[String]] = []
        var event: Event?
        var firstOutput: ContinuousClock.Instant?
        /// Set while a Q/B is sent and nothing came back yet, so an `E` means "rejected".
        var starting = true
    }

    let socketPath: String
    let workDirectory: String
    /// The image's language: how queries run and what a batch's `*` means.
    let language: KernelLanguage
    /// How long a call waits for output before it returns `continued` with none.
    let longPoll: Duration
    /// After the first output, how long to wait for more (or the end) before returning it.
    let coalesce: Duration
    private var writer: NIOAsyncChannelOutboundWriter<RunnerFrame>?
    private var channel: (any Channel)?
    private var run: Run?
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var timers: [Task<Void, Never>] = []
    private(set) var lastActivity = Date()

    init(socketPath: String, workDirectory: String, language: KernelLanguage = .python, longPoll: Duration = .seconds(5),
         coalesce: Duration = .milliseconds(15)) {
        self.socketPath = socketPath
        self.workDirectory = workDirectory
        self.language = language
        self.longPoll = longPoll
        self.coalesce = coalesce
    }

    // MARK: - Calls

    public func execute(_ request: ExecutionRequest) async throws(ExecutionError) -> ExecutionResult {
        lastActivity = Date()
        switch request.mode {
        case "query", "batch":
            if let run, !run.isOver {
                throw .busy("run '\(run.id)' is still executing: send mode 'continue' with its runId, or interrupt it")
            }
            let steps = request.mode == "query" ? [Step(status: "finished", frame: "Q", code: language.queryProgram(request.code))] : try batchSteps(request)
            run = Run(id: request.runId ?? Self.newRunID(), steps: steps)
            do throws(ExecutionError) {
                try await connect()
                try await startStep()
            } catch {
                run = nil
                throw error
            }
        case "continue":
            try currentRun(request.runId)
        case "input":
            try currentRun(request.runId)
            if case .waiting = run?.event { run?.event = nil }
            try await send(RunnerFrame("I", request.code))
        case "complete":
            // No completion engine yet: an empty, finished answer keeps clients working.
            return ExecutionResult(status: "finished", runId: request.runId ?? "", exitCode: 0)
        default:
            throw .invalid("mode '\(request.mode)' is not one of query, batch, continue, input, complete")
        }
        return await collect()
    }

    /// SIGINT to the running code (Python raises KeyboardInterrupt; a shell command dies).
    public func interrupt() async throws(ExecutionError) {
        lastActivity = Date()
        try await connect()
        try await send(RunnerFrame("X"))
    }

    /// Drops the connection; the kernel is going away.
    func close() {
        channel?.close(promise: nil)
        channel = nil
        writer = nil
    }

    private func currentRun(_ runID: String?) throws(ExecutionError) {
        guard let run else { throw .invalid("no execution is running: start one with mode 'query' or 'batch'") }
        if let runID, !runID.isEmpty, runID != run.id {
            throw .invalid("run '\(runID)' is not this kernel's current run ('\(run.id)')")
        }
    }

    /// clean, build and exec as shell commands; `*` means the kernel's default for its language
    /// and the uploaded files (KernelLanguage: none for clean; compiling every source for C,
    /// C++ and Java builds; `python3 main.py`, `Rscript main.R`, `node main.js`, `./main` or
    /// `java Main` for exec).
    private func batchSteps(_ request: ExecutionRequest) throws(ExecutionError) -> [Step] {
        let options = request.options ?? BatchOptions()
        let files = KernelLanguage.files(in: workDirectory)
        var steps: [Step] = []
        if let clean = options.clean, !clean.isEmpty, clean != "*" { steps.append(Step(status: "clean-finished", frame: "B", code: clean)) }
        if let build = options.build, !build.isEmpty {
            if build != "*" {
                steps.append(Step(status: "build-finished", frame: "B", code: build))
            } else if let standard = language.defaultBuild(files: files) {
                steps.append(Step(status: "build-finished", frame: "B", code: standard))
            }
        }
        var exec = options.exec ?? "*"
        if exec == "*" || exec.isEmpty {
            switch language.defaultExec(files: files) {
            case .success(let standard): exec = standard
            case .failure(let missing): throw .invalid(missing.description)
            }
        }
        steps.append(Step(status: "finished", frame: "B", code: exec))
        return steps
    }

    static func newRunID() -> String {
        var bytes = [UInt8](repeating: 0, count: 8)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        return bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    // MARK: - Collecting output

    private func collect() async -> ExecutionResult {
        let deadline = ContinuousClock.now + longPoll
        while var current = run {
            if let event = current.event {
                let console = current.console
                current.console = []
                current.firstOutput = nil
                switch event {
                case .waiting(let prompt):
                    run = current
                    return ExecutionResult(status: "waiting-input", runId: current.id, console: console, options: InputOptions(prompt: prompt))
                case .lost(let reason):
                    run = nil
                    return ExecutionResult(status: "finished", runId: current.id, exitCode: 1, console: console + [["stderr", reason + "\n"]])
                case .finished(let payload):
                    let code = Self.exitCode(payload)
                    let step = current.steps.removeFirst()
                    if step.status != "finished", code == 0, !current.steps.isEmpty {
                        current.event = nil
                        current.starting = true
                        run = current
                        do throws(ExecutionError) {
                            try await startStep()
                        } catch {
                            run = nil
                            return ExecutionResult(status: "finished", runId: current.id, exitCode: 1, console: console + [["stderr", error.description + "\n"]])
                        }
                        return ExecutionResult(status: step.status, runId: current.id, exitCode: code, console: console)
                    }
                    run = nil
                    return ExecutionResult(status: "finished", runId: current.id, exitCode: code, console: console)
                }
            }
            let now = ContinuousClock.now
            if let first = current.firstOutput, now >= first + coalesce || now >= deadline {
                run?.console = []
                run?.firstOutput = nil
                return ExecutionResult(status: "continued", runId: current.id, console: current.console)
            }
            if now >= deadline { return ExecutionResult(status: "continued", runId: current.id) }
            await waitForChange(until: current.firstOutput.map { min($0 + coalesce, deadline) } ?? deadline)
        }
        return ExecutionResult(status: "finished", runId: "", exitCode: 1, console: [["stderr", "the run ended\n"]])
    }

    /// `ok` → 0, `error` → 1, a decimal status as is.
    static func exitCode(_ payload: String) -> Int {
        switch payload {
        case "ok": 0
        case "error": 1
        default: Int(payload) ?? 1
        }
    }

    private func waitForChange(until deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiters.append(continuation)
            timers.append(Task { [weak self] in
                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
                await self?.wake()
            })
        }
    }

    /// Resumes every waiter and cancels their timers (a chatty program would otherwise leave
    /// one sleeping timer per output event).
    private func wake() {
        let resumed = waiters
        waiters = []
        for timer in timers { timer.cancel() }
        timers = []
        for waiter in resumed { waiter.resume() }
    }

    // MARK: - The runner connection

    private func startStep() async throws(ExecutionError) {
        guard let step = run?.steps.first else { return }
        try await send(RunnerFrame(step.frame, step.code))
    }

    private func send(_ frame: RunnerFrame) async throws(ExecutionError) {
        try await connect()
        do {
            try await writer!.write(frame)
        } catch {
            detached()
            throw .unreachable("the kernel's runner closed the connection: \(error)")
        }
    }

    /// Connects once; the runner may still be starting, so a missing socket is retried briefly.
    private func connect() async throws(ExecutionError) {
        guard writer == nil else { return }
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            do {
                let channel = try await Self.open(socketPath)
                let (writers, delivered) = AsyncStream<NIOAsyncChannelOutboundWriter<RunnerFrame>>.makeStream()
                Task { [weak self] in
                    do {
                        try await channel.executeThenClose { inbound, outbound in
                            delivered.yield(outbound)
                            delivered.finish()
                            for try await frame in inbound { await self?.received(frame) }
                        }
                    } catch {}
                    delivered.finish()
                    await self?.detached()
                }
                for await w in writers {
                    writer = w
                    self.channel = channel.channel
                }
                if writer != nil { return }
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw .unreachable("cannot reach the kernel's runner at \(socketPath): \(error) (is the kernel's container still running?)")
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Socket paths are limited to 107 bytes; a deep scratch directory is reached through
    /// /proc/self/fd, which keeps the path short whatever the directory.
    private static func open(_ path: String) async throws -> RunnerLink.Channel {
        guard path.utf8.count > 100 else { return try await RunnerLink.connect(socketPath: path) }
        let directory = (path as NSString).deletingLastPathComponent
        let fd = Foundation.open(directory, 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ExecutionError.unreachable("cannot open \(directory): \(String(cString: strerror(errno)))") }
        defer { Foundation.close(fd) }
        return try await RunnerLink.connect(socketPath: "/proc/self/fd/\(fd)/" + (path as NSString).lastPathComponent)
    }

    private func received(_ frame: RunnerFrame) {
        guard var current = run, !current.isOver else { return }  // output while idle is dropped
        let kind = frame.kind
        if kind != "E" && kind != "p" { current.starting = false }
        switch kind {
        case "o": current.append("stdout", frame.text)
        case "e": current.append("stderr", frame.text)
        // A plot: Backend.AI's ["media", JSON {"type", "data"}] record, one per image.
        case "m": current.append("media", frame.text, merging: false)
        case "w": current.event = .waiting(frame.text)
        case "f": current.event = .finished(frame.text)
        case "c": current.append("stderr", "[hangar] " + frame.text + "\n")
        case "E":
            current.append("stderr", "[hangar] " + frame.text + "\n")
            if current.starting { current.event = .finished("error") }
        default: break
        }
        run = current
        wake()
    }

    private func detached() {
        writer = nil
        channel = nil
        if var current = run, current.event == nil {
            current.event = .lost("[hangar] the kernel's runner went away (the container stopped?)")
            run = current
        }
        wake()
    }
}

extension KernelExecution.Run {
    /// A run whose last step finished or whose runner went away, with nothing left to report.
    var isOver: Bool {
        switch event {
        case .finished, .lost: steps.count <= 1
        default: false
        }
    }

    mutating func append(_ stream: String, _ text: String, merging: Bool = true) {
        guard !text.isEmpty else { return }
        if firstOutput == nil { firstOutput = .now }
        if merging, let last = console.indices.last, console[last][0] == stream {
            console[last][1] += text
        } else {
            console.append([stream, text])
        }
    }
}
