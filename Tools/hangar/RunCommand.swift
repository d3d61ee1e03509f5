import ArgumentParser
import Foundation

/// `hangar run IMAGE -c CODE`: create (or reuse) a session, run code in it with the output
/// streamed, and exit with the code's exit status.
struct RunCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run code in a session (created on demand) and stream its output.",
        discussion: """
            Query mode (-c) runs code in the image's language (its ai.backend.runtime-type label): Python, R and \
            Node.js keep one interpreter, so a later run in the same session (--name) sees earlier variables; \
            C, C++ and Java compile and run the snippet. Batch mode uploads FILES to /home/work first and runs \
            --exec (after --build); without --exec, the image's defaults build and run the files by their language \
            (main.py, main.R, main.js, every C/C++ source into ./main, javac and the Main class). The exit status \
            is the code's: 0, 1 after an uncaught error, the status it exits with, or the command's.
            """)

    @Argument(help: "Image to run, e.g. hangar/python:3.11-bookworm.")
    var image: String

    @Option(name: [.customShort("c"), .customLong("code")], help: "Code to run in query mode ('-' reads it from stdin).")
    var code: String?

    @Option(name: .customLong("exec"), help: "Batch mode: shell command to run after uploading FILES (default: the image's, for the files' language).")
    var exec: String?

    @Option(name: .customLong("build"), help: "Batch mode: build command run before --exec.")
    var build: String?

    @Argument(help: "Files to upload into /home/work before running.")
    var files: [String] = []

    @Flag(name: .customLong("rm"), help: "Destroy the session afterwards.")
    var remove = false

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No status lines on stderr.")
    var quiet = false

    @OptionGroup var spec: SessionSpecOptions

    func validate() throws {
        guard code == nil || exec == nil else { throw ValidationError("give one of -c CODE (query mode) or --exec COMMAND (batch mode), not both") }
        guard code != nil || exec != nil || !files.isEmpty else {
            throw ValidationError("give -c CODE (query mode), or FILES to upload and run (batch mode, with --exec COMMAND or the image's default for their language)")
        }
    }

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        var source = code
        if source == "-" { source = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        var uploads: [(name: String, data: Data)] = []
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read '\(path)'") }
            uploads.append(((path as NSString).lastPathComponent, data))
        }
        let started = try await SessionStarter.create(client, body: try spec.body(image: image, type: "interactive", startupCommand: nil, enqueueOnly: true),
                                                      quiet: quiet)
        // Ctrl-C, SIGTERM and a lost terminal (SIGHUP): a session still waiting is cancelled
        // (nothing stays reserved); running code is interrupted as KeyboardInterrupt would, and
        // the run ends as usual (with --rm, removing the session); a second signal removes a
        // session this run made with --rm, and leaves at once.
        let guardian = RunSignals(client: client, session: started, removeOnExit: remove, quiet: quiet)
        guardian.install()
        defer { guardian.uninstall() }
        var status: Int32 = 1
        do {
            try await SessionStarter.waitUntilRunning(client, id: started.id, quiet: quiet)
            guardian.running()
            if !uploads.isEmpty { try await client.upload(session: started.name, files: uploads) }
            let first: [String: Any] = if let source {
                ["mode": "query", "code": source, "options": [String: Any]()]
            } else {
                // Without --exec, the kernel's defaults ("*") build and run the files, as the
                // official client's `run FILE` asks.
                ["mode": "batch", "code": "", "options": ["clean": "", "build": build ?? (exec == nil ? "*" : ""), "exec": exec ?? "*"]]
            }
            guard let code = try await client.execute(sessionID: started.id, first: first) else {
                throw CLIError("the execution stream ended before the run finished")
            }
            status = Int32(truncatingIfNeeded: code)
        } catch {
            if remove { _ = try? await client.call(.DELETE, "/session/\(started.id)") }
            throw error
        }
        if remove {
            try await client.call(.DELETE, "/session/\(started.id)")
        } else if started.created && !quiet {
            FileHandle.standardError.write(Data("∙ session \(started.name) is kept (run more with -t \(started.name)); remove it with: hangar session rm \(started.name)\n".utf8))
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// What `hangar run` does when it is told to stop. Signals arrive on a dispatch queue; the
/// state is guarded by a lock because the run itself moves it from waiting to running.
final class RunSignals: @unchecked Sendable {
    let client: ManagerClient
    let session: SessionStarter.Started
    let removeOnExit: Bool
    let quiet: Bool
    private let lock = NSLock()
    private var isRunning = false
    private var received = 0
    private var sources: [DispatchSourceSignal] = []
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    init(client: ManagerClient, session: SessionStarter.Started, removeOnExit: Bool, quiet: Bool) {
        self.client = client
        self.session = session
        self.removeOnExit = removeOnExit
        self.quiet = quiet
    }

    func install() {
        for number in Self.signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in handle(number) }
            source.resume()
            sources.append(source)
        }
    }

    func uninstall() {
        for source in sources { source.cancel() }
        for number in Self.signals { signal(number, SIG_DFL) }
    }

    func running() { lock.withLock { isRunning = true } }

    private func say(_ text: String) {
        if !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K∙ \(text)\n".utf8)) }
    }

    private func handle(_ number: Int32) {
        let (running, count) = lock.withLock { () -> (Bool, Int) in
            received += 1
            return (isRunning, received)
        }
        let name = session.name, id = session.id
        Task { [client, removeOnExit, session] in
            if !running || count > 1 {
                // Waiting (or asked twice): nothing more will run. A session this run made is
                // removed (a pending one is cancelled, its reservation released); a reused one
                // is left as it was found unless --rm was given.
                if session.created || removeOnExit {
                    _ = try? await client.call(.DELETE, "/session/\(id)")
                    say(running ? "session \(name) removed" : "session \(name) cancelled before it started; nothing is reserved")
                }
                exit(128 + number)
            }
            say("interrupting the running code (again to stop at once)")
            _ = try? await client.call(.POST, "/session/\(name)/interrupt")
        }
    }
}
