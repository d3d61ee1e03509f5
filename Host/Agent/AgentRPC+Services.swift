import ClusterProtocol
import ContainerEngine
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore

extension AgentRPC {
    static func failure(_ error: ServiceError) -> Failure {
        switch error.kind {
        case .unknownService: Failure(status: .notFound, message: error.message)
        case .refused: Failure(status: .badRequest, message: error.message)
        case .failed: Failure(status: .badGateway, message: error.message)
        case .unreachable: Failure(status: .serviceUnavailable, message: error.message)
        }
    }

    /// A path inside the kernel's home directory: relative ones are taken from there, absolute
    /// ones must lie under it, and no part may be `..`.
    static func homePath(_ raw: String) -> String? {
        let home = KernelPaths.workDirectory
        let absolute = raw.hasPrefix("/") ? raw : home + "/" + raw
        let parts = absolute.split(separator: "/").filter { $0 != "." }
        guard !parts.contains(".."), !absolute.contains("\0") else { return nil }
        let normal = "/" + parts.joined(separator: "/")
        guard normal == home || normal.hasPrefix(home + "/") else { return nil }
        return normal
    }

    func addServiceRoutes(to router: Router<BasicWebSocketRequestContext>) {
        let runner = daemon.runner
        let timeout = daemon.config.serviceStartTimeout
        router.post(RouterPath(AgentAPI.serviceStartPath(":id"))) { request, context in
            try authenticate(request)
            let call = try await request.decode(as: ServiceStartRequest.self, context: context)
            let id = try context.parameters.require("id")
            let reply: ServiceStartReply
            do throws(ServiceError) {
                reply = try await runner.startService(id, call, defaultTimeout: timeout)
            } catch {
                throw Self.failure(error)
            }
            return try json(reply)
        }
        router.post(RouterPath(AgentAPI.listFilesPath(":id"))) { request, context in
            try authenticate(request)
            let call = try await request.decode(as: KernelFilesRequest.self, context: context)
            guard let path = Self.homePath(call.path ?? ".") else {
                throw Failure(status: .badRequest, message: "'\(call.path ?? "")' is not inside \(KernelPaths.workDirectory)")
            }
            let socket: String
            let id = try context.parameters.require("id")
            do throws(KernelError) {
                socket = try await runner.tunnelTarget(id, port: nil)
            } catch {
                throw Self.failure(error)
            }
            let text: String
            do {
                text = try await ServiceLink.ask(socket, "L", Array(path.utf8), expect: "l")
            } catch {
                return try json(KernelFileList(files: [], abspath: path, errors: "\(error)"))
            }
            return try json(KernelFileList(files: Self.listing(text), abspath: path, errors: ""))
        }
        router.post(RouterPath(AgentAPI.downloadPath(":id"))) { request, context in
            try authenticate(request)
            let call = try await request.decode(as: KernelFilesRequest.self, context: context)
            let id = try context.parameters.require("id")
            guard let record = await runner.record(id) else { throw Self.failure(KernelError.unknownKernel(id)) }
            var archives: [(String, [UInt8])] = []
            for raw in call.paths ?? [] {
                guard let path = Self.homePath(raw) else {
                    throw Failure(status: .badRequest, message: "'\(raw)' is not inside \(KernelPaths.workDirectory)")
                }
                // The container's own view: its mounts included, symlinks resolved inside it.
                guard let tar = try await runner.engine.archive(record.containerID, path: path, maxBytes: 1 << 30) else {
                    throw Failure(status: .notFound, message: "no such file in the session: \(path)")
                }
                archives.append((path, tar))
            }
            let boundary = "hangar-" + UUID().uuidString
            var body = ByteBuffer()
            for (path, tar) in archives {
                body.writeString("--\(boundary)\r\nContent-Type: application/x-tar\r\nContent-Disposition: attachment; filename=\"\((path as NSString).lastPathComponent).tar\"\r\n\r\n")
                body.writeBytes(tar)
                body.writeString("\r\n")
            }
            body.writeString("--\(boundary)--\r\n")
            return Response(status: .ok, headers: [.contentType: "multipart/mixed; boundary=\(boundary)"], body: .init(byteBuffer: body))
        }
        addTerminalRoute(to: router)
        // One TCP connection to a service port per WebSocket: binary frames both ways.
        router.ws(RouterPath(AgentAPI.tunnelPath(":id")), shouldUpgrade: { request, context in
            try authenticate(request)
            guard let port = request.uri.queryParameters.get("port").flatMap(Int.init) else {
                throw Failure(status: .badRequest, message: "?port= names the port inside the kernel")
            }
            let id = try context.parameters.require("id")
            do throws(KernelError) {
                _ = try await runner.tunnelTarget(id, port: port)
            } catch {
                throw Self.failure(error)
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            guard let id = context.requestContext.parameters.get("id"),
                  let port = context.request.uri.queryParameters.get("port").flatMap(Int.init),
                  let socket = try? await runner.tunnelTarget(id, port: port) else { return }
            do {
                try await ServiceLink.withTunnel(socket, port: port) { early, service, toService in
                    if let early { try await outbound.write(.binary(early)) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await frame in inbound { try await toService.write(frame.data) }
                        }
                        while let chunk = try await service.next() { try await outbound.write(.binary(chunk)) }
                        group.cancelAll()
                    }
                }
                try? await outbound.close(.init(codeNumber: Int(TunnelClose.upstreamClosed)), reason: "the service closed the connection")
            } catch let error as ServiceLink.Failure {
                try? await outbound.close(.init(codeNumber: Int(TunnelClose.refused)), reason: String(error.message.prefix(120)))
            } catch {
                try? await outbound.close(.init(codeNumber: Int(TunnelClose.error)), reason: String("\(error)".prefix(120)))
            }
        })
    }

    /// The kernel's terminal as Backend.AI's JSON stream (see `PTYStream`).
    func addTerminalRoute(to router: Router<BasicWebSocketRequestContext>) {
        let runner = daemon.runner
        let timeout = daemon.config.serviceStartTimeout
        router.ws(RouterPath(AgentAPI.ptyPath(":id")), shouldUpgrade: { request, context in
            try authenticate(request)
            let id = try context.parameters.require("id")
            do throws(KernelError) {
                _ = try await runner.tunnelTarget(id, port: nil)
            } catch {
                throw Self.failure(error)
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            guard let id = context.requestContext.parameters.get("id") else { return }
            do {
                try await PTYStream.serve(runner: runner, kernelID: id, inbound: inbound, outbound: outbound, startTimeout: timeout)
            } catch {
                try? await outbound.close(.init(codeNumber: Int(TunnelClose.error)), reason: String("\(error)".prefix(120)))
            }
        })
    }

    /// The runner's `L` lines as Backend.AI's listing entries (`ls -l` style modes).
    static func listing(_ text: String) -> [KernelFileList.Entry] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 6, let size = Int(f[1]), let mode = Int(f[2], radix: 8) else { return nil }
            return KernelFileList.Entry(filename: String(f[0]), size: size, mode: Self.modeString(mode),
                                        ctime: Double(f[5]) ?? 0, atime: Double(f[4]) ?? 0, mtime: Double(f[3]) ?? 0)
        }.sorted { $0.filename < $1.filename }
    }

    static func modeString(_ mode: Int) -> String {
        let type: Character = switch mode & 0o170000 {
        case 0o040000: "d"
        case 0o120000: "l"
        case 0o020000: "c"
        case 0o060000: "b"
        case 0o010000: "p"
        case 0o140000: "s"
        default: "-"
        }
        let bits = "rwxrwxrwx"
        return String(type) + String(bits.enumerated().map { i, c in mode & (1 << (8 - i)) != 0 ? c : "-" })
    }
}
