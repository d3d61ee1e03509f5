import ArgumentParser
import Foundation

/// `hangar session ...`: create, list, inspect, follow and destroy sessions.
struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Manage sessions.",
        subcommands: [Create.self, List.self, Info.self, Logs.self, Events.self, Remove.self])

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a session and wait until it runs.")

        @Argument(help: "Image, e.g. hangar/python:3.11-bookworm.")
        var image: String

        @Option(name: .customLong("type"), help: "interactive or batch.")
        var type: String = "interactive"

        @Option(name: [.customLong("startup-command"), .customLong("command")], help: "The command of a batch session.")
        var startupCommand: String?

        @Flag(name: .customLong("enqueue-only"), help: "Return as soon as the session is queued.")
        var enqueueOnly = false

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup var spec: SessionSpecOptions

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            let started = try await SessionStarter.create(client, body: try spec.body(image: image, type: type, startupCommand: startupCommand, enqueueOnly: true),
                                                          quiet: json)
            if !enqueueOnly {
                // Interrupted while the session waits: cancel it (if this command made it), as `hangar run` does.
                let guardian = RunSignals(client: client, session: started, removeOnExit: false, quiet: json)
                guardian.install()
                defer { guardian.uninstall() }
                try await SessionStarter.waitUntilRunning(client, id: started.id, quiet: json)
            }
            let info = try await client.call(.GET, "/session/\(started.id)") as? [String: Any] ?? [:]
            if json {
                printJSON(info)
            } else {
                print(started.id)
                FileHandle.standardError.write(Data("✓ session \(started.name) is \(info["status"] as? String ?? "?")\n".utf8))
            }
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List sessions (live ones unless --status or --every).",
                                                        aliases: ["list"])

        @Option(help: "Only these statuses, comma-separated (e.g. RUNNING,PENDING).")
        var status: String?

        @Flag(help: "Every status, ended sessions included.")
        var every = false

        @Flag(help: "Sessions of every user (admins).")
        var all = false

        @Option(help: "At most this many.")
        var limit = 100

        @Flag(help: "Print JSON.")
        var json = false

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            var query = ["limit=\(limit)"]
            let statuses = status ?? (every ? nil : "PENDING,SCHEDULED,PREPARING,PULLING,CREATING,RUNNING,TERMINATING")
            if let statuses { query.append("status=\(statuses)") }
            if all { query.append("all=true") }
            let reply = try await client.call(.GET, "/session?" + query.joined(separator: "&")) as? [String: Any] ?? [:]
            let items = reply["items"] as? [[String: Any]] ?? []
            if json { return printJSON(reply) }
            let rows = items.map { s in
                [String((s["sessionId"] as? String ?? "").prefix(8)), s["sessionName"] as? String ?? "", s["status"] as? String ?? "",
                 s["image"] as? String ?? "", (s["type"] as? String ?? "").lowercased(), age(s["age"] as? Int ?? 0), s["statusInfo"] as? String ?? ""]
            }
            printTable(["ID", "NAME", "STATUS", "IMAGE", "TYPE", "AGE", "INFO"], rows)
            if items.isEmpty { FileHandle.standardError.write(Data("(no sessions)\n".utf8)) }
        }
    }

    struct Info: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a session.")

        @Argument(help: "Session name or id.")
        var session: String

        @Flag(help: "Print JSON.")
        var json = false

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            let info = try await client.call(.GET, "/session/\(session)") as? [String: Any] ?? [:]
            if json { return printJSON(info) }
            for key in info.keys.sorted() {
                let value = info[key]!
                let text: String = switch value {
                case is NSNull: "-"
                case let d as [String: Any]: d.keys.sorted().map { "\($0)=\(d[$0]!)" }.joined(separator: " ")
                default: "\(value)"
                }
                print("\(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(text)")
            }
        }
    }

    struct Logs: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print the console output of a session's main kernel.")

        @Argument(help: "Session name or id.")
        var session: String

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            let reply = try await client.call(.GET, "/session/\(session)/logs") as? [String: Any] ?? [:]
            print((reply["result"] as? [String: Any])?["logs"] as? String ?? "", terminator: "")
        }
    }

    struct Events: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "events", abstract: "Follow a session's lifecycle events until it ends.")

        @Argument(help: "Session name or id.")
        var session: String

        @Flag(help: "Print each event as a JSON line.")
        var json = false

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            let key = UUID(uuidString: session) != nil ? "sessionId" : "sessionName"
            try await client.events("/events/session?\(key)=\(session)&scope=*") { event, data in
                // Written unbuffered: a follower sees each event as it happens.
                let line: String
                if json {
                    let payload = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) ?? data
                    let encoded = (try? JSONSerialization.data(withJSONObject: ["event": event, "data": payload], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
                    line = String(decoding: encoded, as: UTF8.self)
                } else {
                    let reason = ((try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any])?["reason"] as? String ?? ""
                    line = event + (reason.isEmpty ? "" : "  (\(reason))")
                }
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
        }
    }

    struct Remove: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Destroy sessions.", aliases: ["destroy"])

        @Argument(help: "Session names or ids.")
        var sessions: [String]

        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            var failed = false
            for session in sessions {
                do {
                    try await client.call(.DELETE, "/session/\(session)")
                    FileHandle.standardError.write(Data("✓ destroyed \(session)\n".utf8))
                } catch let error as CLIError {
                    FileHandle.standardError.write(Data("✗ \(session): \(error.description)\n".utf8))
                    failed = true
                }
            }
            if failed { throw ExitCode.failure }
        }
    }
}

func printJSON(_ value: Any, pretty: Bool = true) {
    let options: JSONSerialization.WritingOptions = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    if let data = try? JSONSerialization.data(withJSONObject: value, options: options) { print(String(decoding: data, as: UTF8.self)) }
}

func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for row in [header] + rows {
        print(row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  "))
    }
}

func age(_ seconds: Int) -> String {
    switch seconds {
    case ..<60: "\(seconds)s"
    case ..<3600: "\(seconds / 60)m"
    case ..<86_400: "\(seconds / 3600)h"
    default: "\(seconds / 86_400)d"
    }
}
