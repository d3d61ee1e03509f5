import ArgumentParser
import Foundation

/// `hangar image ls|info|pull|alias`: the images sessions can run — on the agents and in the
/// scanned registries — and pulling one onto the agents ahead of the sessions that need it.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Images: list, inspect, pull onto agents, alias.",
        subcommands: [List.self, Info.self, Pull.self, AdminCommand.Images.Alias.self, AdminCommand.Images.Dealias.self])

    static let fields = ["name", "tag", "registry", "architecture", "size_bytes", "installed", "aliases"]

    static func images() async throws -> [[String: Any]] {
        let data = try await ManagerClient.load().graphQL("query { images { name tag registry architecture size_bytes installed aliases digest labels resource_limits } }")
        return data["images"] as? [[String: Any]] ?? []
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "Images on the agents and in the scanned registries.", aliases: ["list"])
        @OptionGroup var output: OutputOptions
        func perform() async throws { show(try await ImageCommand.images(), ImageCommand.fields, json: output.json) }
    }

    struct Info: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "info", abstract: "One image: its labels, resource minimums, where it is.")
        @Argument(help: "NAME:TAG (or an alias).") var image: String
        @OptionGroup var output: OutputOptions
        func perform() async throws {
            let all = try await ImageCommand.images()
            let found = all.first { "\($0["name"] ?? ""):\($0["tag"] ?? "")" == image || ($0["aliases"] as? [String])?.contains(image) == true }
            try show(found, ImageCommand.fields + ["digest", "labels", "resource_limits"], json: output.json, what: "image '\(image)' (hangar image ls lists them)")
        }
    }

    struct Pull: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "pull", abstract: "Pull an image from its registry onto every alive agent (or one).")
        @Argument(help: "REGISTRY/NAME:TAG, e.g. cr.example.com/ns/python:3.11.") var image: String
        @Option(help: "Only this agent.") var agent: String?
        func perform() async throws {
            let client = try ManagerClient.load()
            var body: [String: Any] = ["image": image]
            if let agent { body["agent"] = agent }
            let response = try await client.send(try client.request(.POST, "/image/pull", body: try JSONSerialization.data(withJSONObject: body)), timeout: 7200)
            guard response.status.code < 400 else {
                try ManagerClient.check(response.status, Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
                return
            }
            var failed = false
            var pending = [UInt8]()
            for try await chunk in response.body {
                pending += chunk.readableBytesView
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(pending[..<newline])
                    pending.removeFirst(newline + 1)
                    guard let step = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { continue }
                    let agent = step["agent"] as? String ?? "?"
                    switch step["status"] as? String {
                    case "present": print("\(agent): already there")
                    case "pulled": print("\(agent): pulled")
                    case "failed":
                        failed = true
                        FileHandle.standardError.write(Data("✗ \(agent): \(step["error"] as? String ?? "failed")\n".utf8))
                    default:
                        let amount = (step["current"] as? Int).flatMap { c in (step["total"] as? Int).map { " \(c >> 20)/\($0 >> 20) MiB" } } ?? ""
                        print("\(agent): \(step["detail"] as? String ?? "pulling")\(amount)")
                    }
                }
            }
            if failed { throw ExitCode.failure }
        }
    }
}
