import ClusterProtocol
import ConfigFile
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PluginHost

/// One configured volume: its storage plugin instance and what the backend can do.
public struct StorageVolume: Sendable {
    public let name: String
    public let backend: String
    public let plugin: StoragePlugin
    /// The backend enforces quotas itself (else the proxy checks uploads against them).
    public var enforcesQuota: Bool { plugin.instance.library.descriptor.storageEnforcesQuota }
    public var fastClone: Bool { plugin.instance.library.descriptor.storageFastClone }
}

/// An error of the storage proxy's APIs, with the status and a message the caller can act on.
public struct StorageProxyError: Error, HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let message: String
    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { "\(status.code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message, "status": Int(status.code)])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func from(_ error: FolderPathError) -> StorageProxyError {
        StorageProxyError(HTTPResponse.Status(code: error.httpStatus), error.description)
    }

    static func from(_ error: PluginError) -> StorageProxyError {
        let status: HTTPResponse.Status = switch error.status {
        case .notFound?: .notFound
        case .exists?: .conflict
        case .quotaExceeded?: .contentTooLarge
        case .folderBusy?, .busy?: .conflict
        case .invalidArgument?: .badRequest
        case .unsupported?: .notImplemented
        default: .internalServerError
        }
        return StorageProxyError(status, error.description)
    }
}

/// The storage proxy role's composition root: assembles the volumes (a storage plugin
/// instance each), the transfer tokens and upload locks, and the routes over them, and runs
/// the server. Uploads follow tus 1.0.0 (PATCH, resumable, committed atomically when
/// complete); downloads honour Range/If-Range and send directories as tar; tokens name one
/// operation, folder, path and expiry.
public final class StorageProxyServer: Sendable {
    public let config: StorageProxyConfig
    /// The volumes and their plugin instances.
    public let volumeService: VolumeService
    let routes: StorageProxyRoutes
    let logger: Logger

    /// The volumes by name.
    public var volumes: [String: StorageVolume] { volumeService.all }
    /// Where the volumes' storage plugins come from.
    public var plugins: PluginHost { volumeService.plugins }
    /// The header the manager authenticates with.
    public static var secretHeader: HTTPField.Name { StorageProxyRoutes.secretHeader }

    /// Creates one plugin instance per configured volume.
    /// - Throws: `PluginError` naming the volume's plugin and why it did not start.
    public init(config: StorageProxyConfig, plugins: PluginHost, logger: Logger = Logger(label: "hangar.storage-proxy")) throws {
        guard !config.secret.isEmpty else { throw StorageProxyError(.internalServerError, "[storage-proxy] secret is empty; set the secret shared with the manager") }
        self.config = config
        self.logger = logger
        volumeService = try VolumeService(config: config, plugins: plugins)
        routes = StorageProxyRoutes(config: config, volumes: volumeService, tokens: TransferToken(secret: config.secret), uploads: UploadLocks(), logger: logger)
    }

    /// Releases the volumes' plugin instances.
    public func shutdown() { volumeService.shutdown() }

    /// The routes, for serving or for `.router` tests.
    public func makeRouter() -> Router<BasicRequestContext> { routes.makeRouter() }

    /// The HTTP/1.1 application serving the routes (with `Expect: 100-continue` answered), on
    /// the configured address unless `host` or `port` override it.
    public func makeApplication(host: String? = nil, port: Int? = nil, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: makeRouter(), server: .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()])),
                    configuration: .init(address: .hostname(host ?? config.host, port: port ?? config.port), serverName: "hangar-storage-proxy"),
                    onServerRunning: onServerRunning, logger: logger)
    }

    /// Serves until cancelled.
    public func run() async throws {
        Self.returnLargeBuffersToTheSystem()
        try await makeApplication().runService()
    }

    /// Fixes glibc's mmap threshold at its 128 KiB default. Left dynamic, glibc raises it to
    /// the size of the largest block freed, after which every transfer buffer comes from the
    /// heap arenas of whichever threads free them and stays in the process: measured, a 1 GiB
    /// upload then download raised the proxy's peak RSS from 45 to 89 MiB; fixed, 66 MiB.
    /// Buffers of 128 KiB and more are then mapped and unmapped, which costs page faults
    /// worth well under 1% of a transfer.
    static func returnLargeBuffersToTheSystem() {
        #if canImport(Glibc)
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD, <malloc.h> */, 128 << 10)
        #endif
    }
}

#if canImport(Glibc)
/// glibc's `mallopt` (declared in <malloc.h>, which the Glibc module does not export).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
