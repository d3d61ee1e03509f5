import ArgumentParser
import ClusterProtocol
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import StreamTunnel

/// App streams: one WebSocket per TCP connection to a service in a session
/// (`/stream/session/NAME/tcpproxy`), as the official client's `app` command opens them.
extension ManagerClient {
    /// The URL and signed headers of an app stream.
    func appStream(session: String, app: String, arguments: [String: ServiceArgument], envs: [String: String]) throws -> (url: String, headers: HTTPFields) {
        var query = [URLQueryItem(name: "app", value: app)]
        if !arguments.isEmpty {
            query.append(URLQueryItem(name: "arguments", value: String(decoding: try JSONEncoder().encode(arguments), as: UTF8.self)))
        }
        if !envs.isEmpty { query.append(URLQueryItem(name: "envs", value: String(decoding: try JSONEncoder().encode(envs), as: UTF8.self))) }
        var components = URLComponents()
        components.path = "/stream/session/\(session)/tcpproxy"
        components.queryItems = query
        let path = components.string!
        var headers = HTTPFields()
        for (name, value) in try signedHeaders(method: "GET", path: path, contentType: nil) {
            headers.append(HTTPField(name: HTTPField.Name(name)!, value: value))
        }
        let url = config.endpoint.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + path
        return (url, headers)
    }

    /// The session's files (paths relative to /home/work) as the tar archives the download API
    /// sends, one per path.
    func download(session: String, files: [String]) async throws -> [[TarArchive.Entry]] {
        let path = "/session/\(session)/download"
        var request = try request(.GET, path, body: try JSONSerialization.data(withJSONObject: ["files": files]))
        request.headers.replaceOrAdd(name: "Accept", value: "multipart/mixed")
        let response = try await send(request, timeout: 600)
        let body = Data(try await response.body.collect(upTo: 512 << 20).readableBytesView)
        try Self.check(response.status, body)
        let type = response.headers.first(name: "Content-Type") ?? ""
        guard let boundary = type.components(separatedBy: "boundary=").last?.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")), !boundary.isEmpty else {
            throw CLIError("the download answer is not multipart (\(type))")
        }
        var archives: [[TarArchive.Entry]] = []
        let delimiter = Data("--\(boundary)".utf8)
        var cursor = body.startIndex
        while let start = body.range(of: delimiter, in: cursor..<body.endIndex) {
            guard let headerEnd = body.range(of: Data("\r\n\r\n".utf8), in: start.upperBound..<body.endIndex),
                  let next = body.range(of: Data("\r\n".utf8) + delimiter, in: headerEnd.upperBound..<body.endIndex) else { break }
            do {
                archives.append(try TarArchive.entries(Array(body[headerEnd.upperBound..<next.lowerBound])))
            } catch {
                throw CLIError("the downloaded archive is damaged: \(error)")
            }
            cursor = next.lowerBound + 2
        }
        return archives
    }
}

/// Relays one local byte stream and one app stream until either side ends.
enum AppRelay {
    static var quietLogger: Logger {
        var logger = Logger(label: "hangar.cli")
        logger.logLevel = .critical
        return logger
    }

    /// A local TCP connection ↔ the app stream.
    static func relay(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, url: String, headers: HTTPFields) async {
        do {
            try await connection.executeThenClose { localIn, localOut in
                let closed = try await ByteStreamWebSocket.connect(url: url, headers: headers) { inbound, outbound in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await chunk in localIn { try await outbound.write(binary: chunk) }
                        }
                        group.addTask {
                            for try await frame in inbound { try await localOut.write(frame.data) }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                if let closed, ![1000, 1001].contains(closed.code) {
                    FileHandle.standardError.write(Data("✗ the app stream closed: \(closed.reason ?? "code \(closed.code)")\n".utf8))
                }
            }
        } catch {
            FileHandle.standardError.write(Data("✗ the app stream failed: \(error)\n".utf8))
        }
    }

    static func closeNumber(_ frame: WebSocketCloseFrame) -> Int {
        switch frame.closeCode {
        case .normalClosure: 1000
        case .goingAway: 1001
        case .unknown(let n): Int(n)
        default: 1011
        }
    }

    /// This process's stdin and stdout ↔ the app stream (ssh's ProxyCommand).
    static func relayStdio(url: String, headers: HTTPFields) async throws {
        let input = AsyncStream<Data> { continuation in
            Thread.detachNewThread {
                while true {
                    let data = FileHandle.standardInput.availableData
                    if data.isEmpty { break }
                    continuation.yield(data)
                }
                continuation.finish()
            }
        }
        let closed = try await ByteStreamWebSocket.connect(url: url, headers: headers) { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await data in input { try await outbound.write(binary: ByteBuffer(bytes: data)) }
                }
                group.addTask {
                    for try await frame in inbound { FileHandle.standardOutput.write(Data(frame.data.readableBytesView)) }
                }
                try await group.next()
                group.cancelAll()
            }
        }
        if let closed, ![1000, 1001].contains(closed.code) {
            throw CLIError("the app stream closed: \(closed.reason ?? "code \(closed.code)")")
        }
    }
}

/// `hangar apps SESSION`: what a session offers.
struct AppsCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "apps", abstract: "List the apps (services) a session offers.")

    @Argument(help: "Session name or id.") var session: String

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        guard let apps = try await client.call(.GET, "/stream/session/\(session)/apps") as? [[String: Any]] else {
            throw CLIError("the manager sent no app list")
        }
        print("NAME        PROTOCOL  PORTS        ARGUMENTS / ENVIRONMENT")
        for app in apps {
            let name = app["name"] as? String ?? "?"
            let proto = app["protocol"] as? String ?? "?"
            let ports = (app["ports"] as? [Int] ?? []).map(String.init).joined(separator: ",")
            let extra = ((app["allowed_arguments"] as? [String] ?? []) + (app["allowed_envs"] as? [String] ?? []).map { "$" + $0 }).joined(separator: " ")
            print(name.padding(toLength: 11, withPad: " ", startingAt: 0) + " " + proto.padding(toLength: 9, withPad: " ", startingAt: 0) + " "
                  + ports.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + extra)
        }
    }
}

/// `hangar app SESSION APP`: a local port (or stdin/stdout) for a service in a session.
struct AppCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "app", abstract: "Open a local port to an app of a session (Jupyter, the web terminal ttyd, sshd, ...).",
        discussion: "Each connection to the local port is one authenticated stream to the app. --stdio relays this process's stdin and stdout instead (an ssh ProxyCommand).")

    @Argument(help: "Session name or id.") var session: String
    @Argument(help: "The app (hangar apps SESSION lists them).") var app: String
    @Option(name: [.customShort("b"), .customLong("bind")], help: "Local [HOST:]PORT to listen on (port 0: any free port).") var bind = "127.0.0.1:0"
    @Option(name: .customLong("arg"), help: "An argument for the app: \"--option value\" or \"--option=value\" (repeatable; only what the app allows).")
    var arguments: [String] = []
    @Option(name: [.customShort("e"), .customLong("env")], help: "An environment variable KEY=VALUE for the app (repeatable; only what it allows).")
    var envs: [String] = []
    @Flag(help: "Relay stdin and stdout instead of listening (for ssh's ProxyCommand).") var stdio = false

    static func parseArguments(_ lines: [String]) throws -> [String: ServiceArgument] {
        var out: [String: ServiceArgument] = [:]
        for line in lines {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).flatMap { word -> [String] in
                if let eq = word.firstIndex(of: "="), word.hasPrefix("-") { return [String(word[..<eq]), String(word[word.index(after: eq)...])] }
                return [String(word)]
            }
            guard let name = words.first, name.hasPrefix("-") else { throw CLIError("--arg '\(line)' must start with an option name such as --option") }
            let values = Array(words.dropFirst())
            out[name] = values.isEmpty ? .flag : values.count == 1 ? .value(values[0]) : .values(values)
        }
        return out
    }

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        var environment: [String: String] = [:]
        for pair in envs {
            guard let eq = pair.firstIndex(of: "=") else { throw CLIError("-e '\(pair)' must be KEY=VALUE") }
            environment[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        let (url, headers) = try client.appStream(session: session, app: app, arguments: try Self.parseArguments(arguments), envs: environment)
        if stdio {
            try await AppRelay.relayStdio(url: url, headers: headers)
            return
        }
        // Asked first, so a wrong session or app is said before anything listens.
        guard let apps = try await client.call(.GET, "/stream/session/\(session)/apps") as? [[String: Any]] else { throw CLIError("the manager sent no app list") }
        guard let info = apps.first(where: { $0["name"] as? String == app }) else {
            throw CLIError("the session has no app '\(app)'; it has: \(apps.compactMap { $0["name"] as? String }.joined(separator: ", "))")
        }
        let parts = bind.split(separator: ":", omittingEmptySubsequences: false)
        let host = parts.count == 2 ? String(parts[0]) : "127.0.0.1"
        guard let port = Int(parts.last ?? ""), (0...65535).contains(port) else { throw CLIError("--bind '\(bind)' must be [HOST:]PORT") }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Big reads: every read becomes one WebSocket frame of the stream.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 16 << 10, initial: 256 << 10, maximum: 1 << 20))
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let bound = server.channel.localAddress?.port ?? port
        let template = info["url_template"] as? String ?? "{protocol}://{host}:{port}"
        let shown = template.replacingOccurrences(of: "{protocol}", with: (info["protocol"] as? String) == "http" ? "http" : "tcp")
            .replacingOccurrences(of: "{host}", with: host).replacingOccurrences(of: "{port}", with: String(bound))
        FileHandle.standardOutput.write(Data("\(app) of \(session) is at \(shown)  (Ctrl-C ends it)\n".utf8))
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await AppRelay.relay(connection, url: url, headers: headers) }
                }
            }
        }
    }
}

/// Commands that reach a session over SSH: the key comes from the session itself
/// (/home/work/id_container), and the connection goes through the sshd app stream as ssh's
/// ProxyCommand, so no local port is opened.
protocol SSHSessionCommand: ClientCommand {
    var session: String { get }
}

extension SSHSessionCommand {
    /// The session's private key in a file only this user reads.
    func keyFile(_ client: ManagerClient, at path: String) async throws -> String {
        guard let entry = try await client.download(session: session, files: ["id_container"]).first?.first(where: { $0.kind == .file }) else {
            throw CLIError("the session has no /home/work/id_container (its SSH key); is it a Hangar or Backend.AI session?")
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? fm.removeItem(atPath: path)
        guard fm.createFile(atPath: path, contents: Data(entry.data), attributes: [.posixPermissions: 0o600]) else { throw CLIError("cannot write \(path)") }
        return path
    }

    var proxyCommand: String {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        return "\(me) app \(session) sshd --stdio"
    }

    func sshOptions(key: String) -> [String] {
        ["-o", "ProxyCommand=\(proxyCommand)", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", key]
    }

    /// Runs ssh or scp with this terminal, and exits with its status.
    func exec(_ program: String, _ arguments: [String]) throws -> Never {
        let path = ["/usr/bin", "/bin", "/usr/local/bin"].map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw CLIError("\(program) is not installed (Debian: apt-get install openssh-client)") }
        let argv = [program] + arguments
        var cArgs = argv.map { strdup($0) } + [nil]
        execv(path, &cArgs)
        throw CLIError("cannot run \(path): \(String(cString: strerror(errno)))")
    }
}

/// `hangar ssh SESSION [-- COMMAND...]`.
struct SSHCommand: SSHSessionCommand {
    static let configuration = CommandConfiguration(commandName: "ssh", abstract: "Open a shell (or run a command) in a session over SSH.")

    @Argument(help: "Session name or id.") var session: String
    @Argument(parsing: .captureForPassthrough, help: "A command to run instead of a shell, after --.") var command: [String] = []

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        let key = try await keyFile(client, at: NSTemporaryDirectory() + "hangar-ssh-\(getuid())/\(session)")
        let words = command.first == "--" ? Array(command.dropFirst()) : command
        try exec("ssh", sshOptions(key: key) + ["work@\(session)"] + words)
    }
}

/// `hangar scp SESSION SRC DST`, with `:path` naming a path in the session.
struct SCPCommand: SSHSessionCommand {
    static let configuration = CommandConfiguration(commandName: "scp", abstract: "Copy files to or from a session (write the session's side as :PATH).")

    @Argument(help: "Session name or id.") var session: String
    @Argument(help: "Source: a local path, or :PATH in the session.") var source: String
    @Argument(help: "Destination: a local path, or :PATH in the session.") var destination: String
    @Flag(name: .shortAndLong, help: "Copy directories recursively.") var recursive = false

    func perform() async throws {
        guard source.hasPrefix(":") != destination.hasPrefix(":") else {
            throw CLIError("exactly one of SRC and DST must be :PATH in the session (e.g. hangar scp \(session) data.csv :data.csv)")
        }
        let client = ManagerClient(config: try ClientConfig.load())
        let key = try await keyFile(client, at: NSTemporaryDirectory() + "hangar-ssh-\(getuid())/\(session)")
        func side(_ path: String) -> String { path.hasPrefix(":") ? "work@\(session)" + path : path }
        try exec("scp", sshOptions(key: key) + (recursive ? ["-r"] : []) + [side(source), side(destination)])
    }
}

/// `hangar ssh-config SESSION`: a Host block for ~/.ssh/config (VS Code Remote-SSH, plain ssh).
struct SSHConfigCommand: SSHSessionCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh-config", abstract: "Print an ssh_config Host block for a session (for VS Code Remote-SSH or plain ssh).",
        discussion: "The session's key is saved to ~/.ssh/hangar-SESSION; the block connects through `hangar app SESSION sshd --stdio`, so nothing listens locally. Append it to ~/.ssh/config and connect to hangar-SESSION.")

    @Argument(help: "Session name or id.") var session: String

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let key = try await keyFile(client, at: "\(home)/.ssh/hangar-\(session)")
        print("""
            Host hangar-\(session)
              HostName \(session)
              User work
              IdentityFile \(key)
              ProxyCommand \(proxyCommand)
              StrictHostKeyChecking no
              UserKnownHostsFile /dev/null
              LogLevel ERROR
            """)
    }
}

/// `hangar terminal SESSION`: this terminal attached to the session's shell (the PTY stream).
struct TerminalCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal", abstract: "Attach this terminal to a shell in the session (raw mode; resizes follow the window).",
        discussion: "Keys go to the session as typed, Ctrl-C included; `exit` (or Ctrl-D) in the shell ends it.")

    @Argument(help: "Session name or id.") var session: String

    static func windowSize() -> (rows: Int, cols: Int) {
        var size = winsize()
        guard ioctl(STDIN_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return (24, 80) }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    func perform() async throws {
        let client = ManagerClient(config: try ClientConfig.load())
        let path = "/stream/session/\(session)/pty"
        var headers = HTTPFields()
        for (name, value) in try client.signedHeaders(method: "GET", path: path, contentType: nil) {
            headers.append(HTTPField(name: HTTPField.Name(name)!, value: value))
        }
        let url = client.config.endpoint.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + path
        // Raw mode while attached; the terminal's own settings come back however this ends.
        var saved = termios()
        let interactive = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &saved) == 0
        if interactive {
            var raw = saved
            cfmakeraw(&raw)
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        }
        defer { if interactive { tcsetattr(STDIN_FILENO, TCSANOW, &saved) } }
        let input = AsyncStream<String> { continuation in
            Thread.detachNewThread {
                while true {
                    let data = FileHandle.standardInput.availableData
                    if data.isEmpty { break }
                    continuation.yield("{\"type\":\"stdin\",\"chars\":\"\(data.base64EncodedString())\"}")
                }
                continuation.finish()
            }
            signal(SIGWINCH, SIG_IGN)
            let winch = WindowWatch()
            winch.source.setEventHandler {
                let size = Self.windowSize()
                continuation.yield("{\"type\":\"resize\",\"rows\":\(size.rows),\"cols\":\(size.cols)}")
            }
            winch.source.resume()
            continuation.onTermination = { _ in winch.source.cancel() }
            let size = Self.windowSize()
            continuation.yield("{\"type\":\"resize\",\"rows\":\(size.rows),\"cols\":\(size.cols)}")
        }
        let closed = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers),
                                                       logger: AppRelay.quietLogger) { inbound, outbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { for await message in input { try await outbound.write(.text(message)) } }
                group.addTask {
                    for try await message in inbound.messages(maxSize: 16 << 20) {
                        guard case .text(let text) = message, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                              object["type"] as? String == "out", let data = (object["data"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
                        FileHandle.standardOutput.write(data)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
        if let closed, ![1000, 1001].contains(AppRelay.closeNumber(closed)) {
            throw CLIError("the terminal closed: \(closed.reason ?? "code \(AppRelay.closeNumber(closed))")")
        }
    }
}

/// SIGWINCH as a dispatch source (cancelled when the terminal stream ends).
final class WindowWatch: @unchecked Sendable {
    let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
}
