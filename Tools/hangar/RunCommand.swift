import ArgumentParser
import Foundation

/// `hangar run IMAGE -c CODE`: create (or reuse) a session, run code in it with the output
/// streamed, and exit with the code's exit status.
struct RunCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run code in a session (created on demand) and stream its output.",
        discussion: """
            Query mode (-c) runs Python in the session's persistent interpreter: a later run in the same \
            session (--name) sees earlier variables. Batch mode (--exec, with FILES uploaded to /home/work first) \
            runs shell commands. The exit status is the code's: 0, or 1 after an exception, or the command's status.
            """)

    @Argument(help: "Image to run, e.g. hangar/python:3.11-bookworm.")
    var image: String

    @Option(name: [.customShort("c"), .customLong("code")], help: "Code to run in query mode ('-' reads it from stdin).")
    var code: String?

    @Option(name: .customLong("exec"), help: "Batch mode: shell command to run after uploading FILES.")
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
        guard (code == nil) != (exec == nil) else { throw ValidationError("give exactly one of -c CODE (query mode) or --exec COMMAND (batch mode)") }
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
        var status: Int32 = 1
        do {
            try await SessionStarter.waitUntilRunning(client, id: started.id, quiet: quiet)
            if !uploads.isEmpty { try await client.upload(session: started.name, files: uploads) }
            let first: [String: Any] = if let source {
                ["mode": "query", "code": source, "options": [String: Any]()]
            } else {
                ["mode": "batch", "code": "", "options": ["clean": "", "build": build ?? "", "exec": exec ?? "*"]]
            }
            guard let code = try await client.execute(sessionID: started.id, first: first) else {
                throw CLIError("the execution stream ended before the run finished")
            }
            status = Int32(truncatingIfNeeded: code)
        } catch {
            if remove { _ = try? await client.call(.DELETE, "/session/\(started.id)") }
            throw error
        }
        if remove { try await client.call(.DELETE, "/session/\(started.id)") }
        if status != 0 { throw ExitCode(status) }
    }
}
