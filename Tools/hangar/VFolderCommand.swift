import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `hangar vfolder ...`: virtual folders — create, list, inspect, transfer files (with
/// progress and resume), share, delete.
struct VFolderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfolder",
        abstract: "Manage virtual folders and their files.",
        subcommands: [Hosts.self, Create.self, List.self, Info.self, Mkdir.self, Files.self, Upload.self, Download.self, RemoveFiles.self,
                      Rename.self, Delete.self, Purge.self, Share.self, Invitations.self, Accept.self, Clone.self])

    struct Hosts: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "hosts", abstract: "Vfolder hosts (proxy:volume) and the default.")
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            let reply = try await ManagerClient(config: try ClientConfig.load()).call(.GET, "/folders/_/hosts") as? [String: Any] ?? [:]
            if json { return printJSON(reply) }
            print("default: \(reply["default"] as? String ?? "-")")
            for host in reply["allowed"] as? [String] ?? [] { print(host) }
        }
    }

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a folder.")
        @Argument(help: "Folder name.") var name: String
        @Option(help: "proxy:volume (default: the manager's default host).") var host: String?
        @Option(help: "Quota, e.g. 10g (default: none, or your policy's limit).") var quota: String?
        @Option(help: "Project: makes a project folder (admins).") var group: String?
        @Option(help: "What project members get: ro, rw or wd.") var permission = "rw"
        @Flag(help: "Allow others to clone it.") var cloneable = false
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            var body: [String: Any] = ["name": name, "permission": permission, "cloneable": cloneable, "usage_mode": "general"]
            if let host { body["host"] = host }
            if let quota { body["quota"] = quota }
            if let group { body["group"] = group }
            let reply = try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders", json: body) as? [String: Any] ?? [:]
            if json { return printJSON(reply) }
            print(reply["id"] as? String ?? "")
            FileHandle.standardError.write(Data("✓ folder \(name) created on \(reply["host"] as? String ?? "?")\n".utf8))
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the folders you can see.", aliases: ["list"])
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            let folders = try await ManagerClient(config: try ClientConfig.load()).call(.GET, "/folders") as? [[String: Any]] ?? []
            if json { return printJSON(folders) }
            printTable(["NAME", "HOST", "PERMISSION", "OWNER", "TYPE", "ID"], folders.map {
                [$0["name"] as? String ?? "", $0["host"] as? String ?? "", $0["permission"] as? String ?? "",
                 ($0["is_owner"] as? Bool ?? false) ? "yes" : "no", $0["type"] as? String ?? "", $0["id"] as? String ?? ""]
            })
        }
    }

    struct Info: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a folder, with its usage.")
        @Argument(help: "Folder name or id.") var name: String
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            let info = try await ManagerClient(config: try ClientConfig.load()).call(.GET, "/folders/\(name)") as? [String: Any] ?? [:]
            if json { return printJSON(info) }
            for key in info.keys.sorted() { print("\(key.padding(toLength: 16, withPad: " ", startingAt: 0)) \(info[key] is NSNull ? "-" : "\(info[key]!)")") }
        }
    }

    struct Mkdir: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "mkdir", abstract: "Make a directory in a folder.")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Path inside the folder.") var path: String
        @Flag(name: .shortAndLong, help: "Create parents as needed.") var parents = false
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders/\(name)/mkdir", json: ["path": path, "parents": parents, "exist_ok": parents])
        }
    }

    struct Files: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "files", abstract: "List files in a folder.")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Directory inside the folder.") var path = "."
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            let reply = try await ManagerClient(config: try ClientConfig.load()).call(.GET, "/folders/\(name)/files", json: ["path": path]) as? [String: Any] ?? [:]
            let items = reply["items"] as? [[String: Any]] ?? []
            if json { return printJSON(items) }
            printTable(["NAME", "TYPE", "SIZE", "MODE"], items.map {
                [$0["name"] as? String ?? "", $0["type"] as? String ?? "", "\($0["size"] ?? 0)", $0["mode"] as? String ?? ""]
            })
        }
    }

    struct Upload: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "upload", abstract: "Upload files (resumable: an interrupted upload continues where it stopped).")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Local files.") var files: [String]
        @Option(help: "Directory inside the folder to upload into.") var into: String?
        @Option(help: "Chunk size in MiB.") var chunk = 16
        @Flag(name: .shortAndLong, help: "No progress output.") var quiet = false
        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            for file in files {
                guard let size = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int64 else { throw CLIError("cannot read '\(file)'") }
                let target = ((into.map { $0 + "/" } ?? "") + (file as NSString).lastPathComponent)
                let ticket = try await client.call(.POST, "/folders/\(name)/request-upload", json: ["path": target, "size": size]) as? [String: Any] ?? [:]
                guard let token = ticket["token"] as? String, let url = ticket["url"] as? String else { throw CLIError("the manager gave no upload token") }
                try await Transfer.upload(file: file, size: size, url: url + "?token=" + token, chunk: chunk << 20, quiet: quiet, label: target)
            }
        }
    }

    struct Download: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "download", abstract: "Download files (resumed with Range if the connection drops).")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Paths inside the folder (a directory comes as a .tar).") var paths: [String]
        @Option(name: .shortAndLong, help: "Local directory to write into.") var output = "."
        @Flag(name: .shortAndLong, help: "No progress output.") var quiet = false
        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            for path in paths {
                let ticket = try await client.call(.POST, "/folders/\(name)/request-download", json: ["path": path]) as? [String: Any] ?? [:]
                guard let token = ticket["token"] as? String, let url = ticket["url"] as? String else { throw CLIError("the manager gave no download token") }
                try await Transfer.download(url: url + "?token=" + token, to: output + "/" + (path as NSString).lastPathComponent, quiet: quiet)
            }
        }
    }

    struct RemoveFiles: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete files in a folder.")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Paths inside the folder.") var paths: [String]
        @Flag(name: .shortAndLong, help: "Delete directories with their contents.") var recursive = false
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.DELETE, "/folders/\(name)/delete-files", json: ["files": paths, "recursive": recursive])
        }
    }

    struct Rename: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "rename", abstract: "Rename a file in a folder.")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Path inside the folder.") var path: String
        @Argument(help: "New name.") var newName: String
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders/\(name)/rename-file", json: ["target_path": path, "new_name": newName])
        }
    }

    struct Delete: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Move a folder to the trash (purge deletes it for good).")
        @Argument(help: "Folder name.") var name: String
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.DELETE, "/folders/\(name)")
        }
    }

    struct Purge: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "purge", abstract: "Delete a folder in the trash for good (by id).")
        @Argument(help: "Folder id.") var id: String
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders/purge", json: ["id": id])
        }
    }

    struct Share: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "share", abstract: "Invite users (by email) to a folder you own.")
        @Argument(help: "Folder name.") var name: String
        @Argument(help: "Emails.") var emails: [String]
        @Option(help: "ro, rw or wd.") var permission = "ro"
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders/\(name)/invite", json: ["perm": permission, "user_ids": emails])
        }
    }

    struct Invitations: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "invitations", abstract: "Invitations waiting for you.")
        @Flag(help: "Print JSON.") var json = false
        func perform() async throws {
            let reply = try await ManagerClient(config: try ClientConfig.load()).call(.GET, "/folders/invitations/list") as? [String: Any] ?? [:]
            let items = reply["invitations"] as? [[String: Any]] ?? []
            if json { return printJSON(items) }
            printTable(["ID", "FOLDER", "FROM", "PERMISSION"], items.map {
                [$0["id"] as? String ?? "", $0["vfolder_name"] as? String ?? "", $0["inviter"] as? String ?? "", $0["perm"] as? String ?? ""]
            })
        }
    }

    struct Accept: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "accept", abstract: "Accept (or --reject) an invitation.")
        @Argument(help: "Invitation id.") var id: String
        @Flag(help: "Reject instead.") var reject = false
        func perform() async throws {
            let client = ManagerClient(config: try ClientConfig.load())
            if reject {
                try await client.call(.DELETE, "/folders/invitations/delete", json: ["inv_id": id])
            } else {
                try await client.call(.POST, "/folders/invitations/accept", json: ["inv_id": id])
            }
        }
    }

    struct Clone: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "clone", abstract: "Clone a folder (a snapshot where the backend can).")
        @Argument(help: "Source folder.") var name: String
        @Argument(help: "New folder's name.") var target: String
        func perform() async throws {
            try await ManagerClient(config: try ClientConfig.load()).call(.POST, "/folders/\(name)/clone", json: ["target_name": target])
        }
    }
}

/// File transfers against the storage proxy's token URLs: tus PATCH uploads that resume from
/// the server's offset, and downloads that resume with Range/If-Range. Memory stays at one
/// chunk whatever the file size.
enum Transfer {
    static func progress(_ label: String, _ done: Int64, _ total: Int64, quiet: Bool) {
        guard !quiet else { return }
        let percent = total > 0 ? Double(done) * 100 / Double(total) : 100
        let line = String(format: "%@ %6.1f%%  %lld / %lld bytes", label, percent, done, total)
        FileHandle.standardError.write(Data((isatty(2) == 1 ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    static func upload(file: String, size: Int64, url: String, chunk: Int, quiet: Bool, label: String) async throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot open '\(file)'") }
        defer { try? handle.close() }
        var offset: Int64 = 0
        var failures = 0
        // Ask where the server is first: an earlier, interrupted run may have sent part of it.
        if let current = try? await serverOffset(url) { offset = current }
        while offset < size || size == 0 {
            if size == 0 { break }
            try handle.seek(toOffset: UInt64(offset))
            let data = handle.readData(ofLength: Int(min(Int64(chunk), size - offset)))
            var request = HTTPClientRequest(url: url)
            request.method = .PATCH
            request.headers.add(name: "Tus-Resumable", value: "1.0.0")
            request.headers.add(name: "Upload-Offset", value: String(offset))
            request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
            request.body = .bytes(ByteBuffer(bytes: data))
            do {
                let response = try await ManagerClient.http.execute(request, timeout: .seconds(600))
                let body = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .noContent, let next = response.headers.first(name: "Upload-Offset").flatMap(Int64.init) else {
                    if response.status.code == 409, let current = try? await serverOffset(url) {
                        offset = current
                        continue
                    }
                    let message = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? String
                    throw CLIError("the storage proxy refused the upload (\(response.status.code)): \(message ?? String(buffer: body))")
                }
                offset = next
                failures = 0
                progress(label, offset, size, quiet: quiet)
            } catch let error as CLIError {
                throw error
            } catch {
                failures += 1
                guard failures <= 10 else { throw CLIError("the upload failed 10 times in a row: \(error)") }
                try await Task.sleep(for: .seconds(min(5, 0.2 * Double(1 << failures))))
                if let current = try? await serverOffset(url) { offset = current }
            }
        }
        if !quiet { FileHandle.standardError.write(Data("\n✓ uploaded \(label)\n".utf8)) }
    }

    static func serverOffset(_ url: String) async throws -> Int64 {
        var request = HTTPClientRequest(url: url)
        request.method = .HEAD
        let response = try await ManagerClient.http.execute(request, timeout: .seconds(30))
        guard response.status == .ok, let offset = response.headers.first(name: "Upload-Offset").flatMap(Int64.init) else {
            throw CLIError("the storage proxy did not report an offset (\(response.status.code))")
        }
        return offset
    }

    static func download(url: String, to path: String, quiet: Bool) async throws {
        guard !FileManager.default.fileExists(atPath: path) || FileManager.default.fileExists(atPath: path + ".part") else {
            throw CLIError("'\(path)' exists; remove it or download elsewhere (-o)")
        }
        let part = path + ".part"
        if !FileManager.default.fileExists(atPath: part) { _ = FileManager.default.createFile(atPath: part, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: part) else { throw CLIError("cannot write '\(part)'") }
        defer { try? handle.close() }
        var received = Int64(try handle.seekToEnd())
        var validator: String?
        var failures = 0
        while true {
            var request = HTTPClientRequest(url: url)
            if received > 0 {
                request.headers.add(name: "Range", value: "bytes=\(received)-")
                if let validator { request.headers.add(name: "If-Range", value: validator) }
            }
            do {
                let response = try await ManagerClient.http.execute(request, timeout: .seconds(86_400))
                if response.status == .ok, received > 0 {
                    // The file changed (or the server ignored the range): start over.
                    try handle.truncate(atOffset: 0)
                    received = 0
                } else if response.status.code == 416 {
                    break
                } else if response.status != .ok && response.status != .partialContent {
                    let body = try await response.body.collect(upTo: 1 << 20)
                    throw CLIError("the storage proxy refused the download (\(response.status.code)): \(String(buffer: body))")
                }
                validator = response.headers.first(name: "Last-Modified") ?? validator
                let total = response.headers.first(name: "Content-Range").flatMap { $0.split(separator: "/").last.flatMap { Int64($0) } }
                    ?? response.headers.first(name: "Content-Length").flatMap(Int64.init) ?? -1
                for try await buffer in response.body {
                    try handle.write(contentsOf: Data(buffer.readableBytesView))
                    received += Int64(buffer.readableBytes)
                    progress((path as NSString).lastPathComponent, received, total, quiet: quiet)
                }
                if total < 0 || received >= total { break }
            } catch let error as CLIError {
                throw error
            } catch {
                failures += 1
                guard failures <= 20 else { throw CLIError("the download failed 20 times in a row: \(error)") }
                try await Task.sleep(for: .seconds(min(5, 0.2 * Double(1 << failures))))
            }
        }
        try FileManager.default.moveItem(atPath: part, toPath: path)
        if !quiet { FileHandle.standardError.write(Data("\n✓ downloaded \(path)\n".utf8)) }
    }
}
