import AgentResources
import ClusterProtocol
import ContainerEngine
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The agent's RPC server for the manager: create, list, inspect, read logs of and destroy
/// kernels, and the node's slot state. Authenticated with the cluster secret (Bearer), so an
/// agent on another host behind its own address works like a local one.
struct AgentRPC: Sendable {
    let daemon: AgentDaemon

    struct Failure: Error, HTTPResponseError {
        let status: HTTPResponse.Status
        let message: String
        func response(from request: Request, context: some RequestContext) throws -> Response {
            let body = (try? JSONEncoder().encode(AgentErrorReply(error: message))) ?? Data()
            return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    /// Slot state in exact decimals.
    struct Status: Codable {
        let agentID: String
        let capacity: ResourceSlots
        let free: ResourceSlots
        let allocated: [String: [String: Int64]]
        let kernels: [String]
    }


    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    func authenticate(_ request: Request) throws {
        let expected = "\(AgentAPI.authorizationScheme) \(daemon.config.clusterSecret)"
        guard let header = request.headers[.authorization], header.utf8.count == expected.utf8.count,
              zip(header.utf8, expected.utf8).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw Failure(status: .unauthorized, message: "the manager authenticates with 'Authorization: Bearer <cluster secret>'")
        }
    }

    static func failure(_ error: KernelError) -> Failure {
        switch error {
        case .unknownKernel: Failure(status: .notFound, message: error.description)
        case .allocation, .invalid, .imageNotFound: Failure(status: .badRequest, message: error.description)
        case .engine, .accelerator: Failure(status: .internalServerError, message: error.description)
        }
    }

    static func failure(_ error: ExecutionError) -> Failure {
        switch error {
        case .busy: Failure(status: .conflict, message: error.description)
        case .invalid: Failure(status: .badRequest, message: error.description)
        case .unreachable: Failure(status: .serviceUnavailable, message: error.description)
        }
    }

    /// The code execution of the kernel named by the `:id` path parameter.
    func execution(_ context: BasicWebSocketRequestContext) async throws -> KernelExecution {
        let id = try context.parameters.require("id")
        do throws(KernelError) {
            return try await daemon.runner.execution(id)
        } catch {
            throw Self.failure(error)
        }
    }

    func makeRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        let runner = daemon.runner
        router.get(RouterPath(AgentAPI.statusPath)) { request, _ in
            try authenticate(request)
            let kernels = await runner.running.map(\.request.kernelID).sorted()
            return try json(Status(agentID: daemon.config.id, capacity: daemon.slots(daemon.allocator.total), free: daemon.slots(daemon.allocator.free),
                                   allocated: daemon.allocator.allocated, kernels: kernels))
        }
        router.post(RouterPath(AgentAPI.kernelsPath)) { request, context in
            try authenticate(request)
            let kernel = try await request.decode(as: KernelRequest.self, context: context)
            let record: KernelRecord
            do throws(KernelError) {
                record = try await runner.create(kernel)
            } catch {
                throw Self.failure(error)
            }
            return try json(record, status: .created)
        }
        router.post(RouterPath(AgentAPI.imagePullPath)) { request, context in
            try authenticate(request)
            let pull = try await request.decode(as: ImagePullRequest.self, context: context)
            guard !pull.image.isEmpty, pull.image.count <= 512, !pull.image.contains(where: { $0.isWhitespace }) else {
                throw Failure(status: .badRequest, message: "image must be a reference such as cr.example.com/ns/name:tag")
            }
            let images = daemon.images
            // One JSON object per line as the pull goes; the last says how it ended.
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                @Sendable func line(_ p: ImagePullProgress) -> ByteBuffer {
                    ByteBuffer(bytes: ((try? JSONEncoder().encode(p)) ?? Data("{}".utf8)) + Data("\n".utf8))
                }
                let (progress, pulling) = await images.start(pull.image, login: pull.login)
                // Progress goes out at most 5 times a second.
                var last = ContinuousClock.now - .seconds(1)
                for await step in progress where ContinuousClock.now - last >= .milliseconds(200) {
                    last = ContinuousClock.now
                    try await writer.write(line(step))
                }
                let outcome: ImagePullProgress
                do {
                    outcome = ImagePullProgress(status: try await pulling.value)
                } catch {
                    outcome = ImagePullProgress(status: .failed, error: (error as? EngineError)?.message ?? "\(error)")
                }
                try await writer.write(line(outcome))
                try await writer.finish(nil)
            })
        }
        router.get(RouterPath(AgentAPI.kernelsPath)) { request, _ in
            try authenticate(request)
            return try json(await runner.running.sorted { $0.request.kernelID < $1.request.kernelID })
        }
        router.get(RouterPath(AgentAPI.kernelPath(":id"))) { request, context in
            try authenticate(request)
            do {
                let exit = try await runner.status(try context.parameters.require("id"))
                return try json(KernelExitState(running: exit.running, exitCode: exit.exitCode, oomKilled: exit.oomKilled))
            } catch let error as KernelError {
                throw Self.failure(error)
            }
        }
        router.get(RouterPath(AgentAPI.logsPath(":id"))) { request, context in
            try authenticate(request)
            do {
                let logs = try await runner.logs(try context.parameters.require("id"))
                return try json(KernelLogs(stdout: logs.stdout, stderr: logs.stderr))
            } catch let error as KernelError {
                throw Self.failure(error)
            }
        }
        // Code execution: Backend.AI's execute semantics (see KernelExecution).
        router.post(RouterPath(AgentAPI.executePath(":id"))) { request, context in
            try authenticate(request)
            let call = try await request.decode(as: ExecutionRequest.self, context: context)
            let execution = try await execution(context)
            let result: ExecutionResult
            do throws(ExecutionError) {
                result = try await execution.execute(call)
            } catch {
                throw Self.failure(error)
            }
            return try json(result)
        }
        router.post(RouterPath(AgentAPI.interruptPath(":id"))) { request, context in
            try authenticate(request)
            let execution = try await execution(context)
            do throws(ExecutionError) {
                try await execution.interrupt()
            } catch {
                throw Self.failure(error)
            }
            return Response(status: .noContent)
        }
        router.post(RouterPath(AgentAPI.filesPath(":id"))) { request, context in
            try authenticate(request)
            // Up to 20 files of 1 MiB each, base64: more than the default body limit.
            let body = try await request.body.collect(upTo: 32 << 20)
            guard let upload = try? JSONDecoder().decode(KernelUpload.self, from: Data(buffer: body)) else {
                throw Failure(status: .badRequest, message: "expected {\"files\": [{\"path\": ..., \"data\": base64}]}")
            }
            let id = try context.parameters.require("id")
            struct Written: Codable { let written: Int }
            let written: Int
            do throws(KernelError) {
                written = try await runner.writeFiles(id, upload)
            } catch {
                throw Self.failure(error)
            }
            return try json(Written(written: written))
        }
        router.post(RouterPath(AgentAPI.restartPath(":id"))) { request, context in
            try authenticate(request)
            let id = try context.parameters.require("id")
            do throws(KernelError) {
                try await runner.restart(id)
            } catch {
                throw Self.failure(error)
            }
            return Response(status: .noContent)
        }
        addServiceRoutes(to: router)
        router.delete(RouterPath(AgentAPI.kernelPath(":id"))) { request, context in
            try authenticate(request)
            do {
                let exit = try await runner.destroy(try context.parameters.require("id"))
                return try json(KernelExitState(running: exit.running, exitCode: exit.exitCode, oomKilled: exit.oomKilled))
            } catch let error as KernelError {
                throw Self.failure(error)
            }
        }
        return router
    }
}

