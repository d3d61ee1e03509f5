import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PluginHost

/// The storage proxy's HTTP layer, routes only: the manager-facing API behind the shared
/// secret and the client-facing transfers (tus uploads, ranged downloads) behind tokens, each
/// resolving its folder through the `VolumeService`.
struct StorageProxyRoutes: Sendable {
    let config: StorageProxyConfig
    let volumes: VolumeService
    let tokens: TransferToken
    let uploads: UploadLocks
    let logger: Logger

    /// The header the manager authenticates with.
    static let secretHeader = HTTPField.Name(StorageProxyAPI.secretHeader)!

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        struct ServiceInfo: Encodable { var service: String, volumes: [String] }
        router.get("/") { _, _ in try Self.json(ServiceInfo(service: "hangar-storage-proxy", volumes: self.volumes.all.keys.sorted())) }
        addManagerRoutes(router)
        addTransferRoutes(router)
        return router
    }

    static func path(_ raw: String) throws -> FolderPath {
        do throws(FolderPathError) {
            return try FolderPath(raw)
        } catch {
            throw StorageProxyError.from(error)
        }
    }

    static func run<T>(_ body: () throws(FolderPathError) -> T) throws -> T {
        do throws(FolderPathError) {
            return try body()
        } catch {
            throw StorageProxyError.from(error)
        }
    }

    static func plugin<T>(_ body: () throws(PluginError) -> T) throws -> T {
        do throws(PluginError) {
            return try body()
        } catch {
            throw StorageProxyError.from(error)
        }
    }


    static func json(_ message: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(message))))
    }

    /// A manager request's body as its `ClusterProtocol` message. Fields the message does not
    /// know are ignored (a newer manager may send them); a missing or mistyped one is refused
    /// with its name.
    static func decode<Message: Decodable>(_ request: Request, as: Message.Type) async throws -> Message {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let data = buffer.readableBytes > 0 ? Data(buffer.readableBytesView) : Data("{}".utf8)
        do {
            return try JSONDecoder().decode(Message.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw StorageProxyError(.badRequest, "'\(key.stringValue)' is required")
        } catch let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            let expected = type == UInt64.self ? "a non-negative integer" : type == String.self ? "a string" : type == Bool.self ? "true or false" : "\(type)"
            throw StorageProxyError(.badRequest, "'\(key)' must be \(expected)")
        } catch {
            // Foundation reports a number that does not fit its field (-5 for a size) as
            // corrupt data without a path, so the field is found here.
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw StorageProxyError(.badRequest, "the body must be a JSON object")
            }
            if let key = object.keys.sorted().first(where: { (object[$0] as? NSNumber).map { $0.doubleValue < 0 || $0.doubleValue != $0.doubleValue.rounded() } ?? false }) {
                throw StorageProxyError(.badRequest, "'\(key)' must be a non-negative integer")
            }
            throw StorageProxyError(.badRequest, "the body does not fit \(Message.self): \(error)")
        }
    }

    /// A manager-API call on one folder: authenticated, its message decoded, and the folder
    /// (its `volume` and `folder` fields) resolved.
    func folderCall<Message: Decodable>(_ request: Request, _ type: Message.Type, volume: (Message) -> String,
                                        folder: (Message) -> String) async throws -> (message: Message, volume: StorageVolume, fs: FolderFileSystem) {
        try authenticateManager(request)
        let message = try await Self.decode(request, as: type)
        let v = try self.volumes.volume(volume(message))
        return (message, v, try self.volumes.fileSystem(v, folder(message)))
    }

    func authenticateManager(_ request: Request) throws {
        guard let given = request.headers[Self.secretHeader], given.utf8.count == config.secret.utf8.count,
              zip(given.utf8, config.secret.utf8).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw StorageProxyError(.unauthorized, "the manager API needs the shared secret in \(Self.secretHeader.rawName)")
        }
    }

    func addManagerRoutes(_ router: Router<BasicRequestContext>) {
        func route(_ call: StorageProxyAPI.Call) -> RouterPath { RouterPath(call.path) }
        router.get(route(.volumes)) { request, _ in
            try self.authenticateManager(request)
            let list = self.volumes.all.values.sorted(by: { $0.name < $1.name }).map { v in
                let usage = try? v.plugin.volumeUsage()
                return VolumeSummary(name: v.name, backend: v.backend, capabilities: VolumeCapabilities(quota: v.enforcesQuota, fastClone: v.fastClone),
                                     usedBytes: usage?.usedBytes ?? 0, capacityBytes: usage?.capacityBytes ?? 0)
            }
            return try Self.json(VolumeList(volumes: list))
        }
        router.post(route(.volumePerformance)) { request, _ in
            try self.authenticateManager(request)
            let m = try await Self.decode(request, as: VolumeTarget.self)
            let v = try self.volumes.volume(m.volume)
            let metrics = try Self.plugin { () throws(PluginError) in try v.plugin.performance() }
            return try Self.json(VolumePerformance(volume: v.name, metrics: metrics.map { VolumeMetric(key: $0.key, unit: $0.unit, value: $0.value) }))
        }
        router.post(route(.createFolder)) { request, _ in
            try self.authenticateManager(request)
            let m = try await Self.decode(request, as: CreateFolderRequest.self)
            let v = try self.volumes.volume(m.volume)
            try VolumeService.checkFolderID(m.folder)
            try Self.plugin { () throws(PluginError) in try v.plugin.createFolder(m.folder, quotaBytes: m.quota ?? 0) }
            return try Self.json(CreatedFolder(folder: m.folder, path: try Self.plugin { () throws(PluginError) in try v.plugin.folderPath(m.folder) }), status: .created)
        }
        router.post(route(.deleteFolder)) { request, _ in
            try self.authenticateManager(request)
            let m = try await Self.decode(request, as: FolderTarget.self)
            let v = try self.volumes.volume(m.volume)
            try VolumeService.checkFolderID(m.folder)
            try Self.plugin { () throws(PluginError) in try v.plugin.deleteFolder(m.folder) }
            return Response(status: .noContent)
        }
        router.post(route(.cloneFolder)) { request, _ in
            try self.authenticateManager(request)
            let m = try await Self.decode(request, as: CloneFolderRequest.self)
            let v = try self.volumes.volume(m.volume)
            try VolumeService.checkFolderID(m.source)
            try VolumeService.checkFolderID(m.target)
            try Self.plugin { () throws(PluginError) in try v.plugin.cloneFolder(m.source, to: m.target) }
            return try Self.json(ClonedFolder(folder: m.target), status: .created)
        }
        router.post(route(.mountFolder)) { request, _ in
            let (_, _, fs) = try await self.folderCall(request, FolderTarget.self, volume: \.volume, folder: \.folder)
            return try Self.json(MountedFolder(path: fs.root))
        }
        router.post(route(.folderUsage)) { request, _ in
            let (m, v, _) = try await self.folderCall(request, FolderTarget.self, volume: \.volume, folder: \.folder)
            let usage = try Self.plugin { () throws(PluginError) in try v.plugin.usage(of: m.folder) }
            let quota = (try? v.plugin.quota(of: m.folder)) ?? usage.capacityBytes
            return try Self.json(FolderUsage(usedBytes: usage.usedBytes, fileCount: usage.fileCount ?? -1, quota: quota))
        }
        router.post(route(.folderQuota)) { request, _ in
            let (m, v, _) = try await self.folderCall(request, SetQuotaRequest.self, volume: \.volume, folder: \.folder)
            if let quota = m.quota {
                try Self.plugin { () throws(PluginError) in try v.plugin.setQuota(of: m.folder, bytes: quota) }
            }
            return try Self.json(FolderQuota(quota: try Self.plugin { () throws(PluginError) in try v.plugin.quota(of: m.folder) }))
        }
        router.post(route(.makeDirectory)) { request, _ in
            let (m, _, fs) = try await self.folderCall(request, MakeDirectoryRequest.self, volume: \.volume, folder: \.folder)
            let path = try Self.path(m.path)
            try Self.run { () throws(FolderPathError) in try fs.mkdir(path, parents: m.parents ?? false, existOK: m.existOK ?? false) }
            return try Self.json([String: String](), status: .created)
        }
        router.post(route(.listFiles)) { request, _ in
            let (m, _, fs) = try await self.folderCall(request, ListFilesRequest.self, volume: \.volume, folder: \.folder)
            let path = try Self.path(m.path ?? ".")
            return try Self.json(FileList(items: try Self.run { () throws(FolderPathError) in try fs.list(path) }))
        }
        router.post(route(.renameFile)) { request, _ in
            let (m, _, fs) = try await self.folderCall(request, RenameFileRequest.self, volume: \.volume, folder: \.folder)
            let path = try Self.path(m.path)
            try Self.run { () throws(FolderPathError) in try fs.rename(path, to: m.newName) }
            return try Self.json([String: String]())
        }
        router.post(route(.moveFile)) { request, _ in
            let (m, _, fs) = try await self.folderCall(request, MoveFileRequest.self, volume: \.volume, folder: \.folder)
            let (source, destination) = (try Self.path(m.source), try Self.path(m.destination))
            try Self.run { () throws(FolderPathError) in try fs.move(source, to: destination) }
            return try Self.json([String: String]())
        }
        router.post(route(.deleteFiles)) { request, _ in
            let (m, _, fs) = try await self.folderCall(request, DeleteFilesRequest.self, volume: \.volume, folder: \.folder)
            guard !m.paths.isEmpty else { throw StorageProxyError(.badRequest, "'paths' (a non-empty list of strings) is required") }
            let paths = try m.paths.map { try Self.path($0) }
            try Self.run { () throws(FolderPathError) in try fs.delete(paths, recursive: m.recursive ?? false) }
            return try Self.json([String: String]())
        }
        router.post(route(.requestUpload)) { request, _ in
            let (m, v, fs) = try await self.folderCall(request, UploadTicketRequest.self, volume: \.volume, folder: \.folder)
            let path = try Self.path(m.path)
            let archive = m.archive ?? false
            if archive {
                // An archive unpacks into a directory (made when missing), the root included.
                if let kind = try Self.run({ () throws(FolderPathError) in try fs.kind(path) }), kind != S_IFDIR {
                    throw StorageProxyError.from(kind == S_IFREG ? .notADirectory(path.raw) : .symlink(path.raw))
                }
            } else {
                guard !path.isRoot else { throw StorageProxyError(.badRequest, "give the path of a file to upload, not the folder root (or send a tar with archive: true)") }
                if let kind = try Self.run({ () throws(FolderPathError) in try fs.kind(path) }), kind != S_IFREG {
                    throw StorageProxyError.from(kind == S_IFDIR ? .isADirectory(path.raw) : .symlink(path.raw))
                }
            }
            let size = m.size
            guard size <= self.config.maxUploadBytes else {
                throw StorageProxyError(.contentTooLarge, "the file has \(ResourceSlots.humanBytes(Decimal(size))); this storage proxy accepts at most \(ResourceSlots.humanBytes(Decimal(self.config.maxUploadBytes))) per file")
            }
            // A quota the backend does not enforce itself is checked here, before any byte is written.
            if !v.enforcesQuota, let quota = try? v.plugin.quota(of: m.folder), quota > 0 {
                let used = (try? v.plugin.usage(of: m.folder).usedBytes) ?? 0
                guard used + size <= quota else {
                    throw StorageProxyError(.contentTooLarge, "the upload (\(ResourceSlots.humanBytes(Decimal(size)))) would exceed the folder's quota: \(ResourceSlots.humanBytes(Decimal(used))) of \(ResourceSlots.humanBytes(Decimal(quota))) used")
                }
            }
            let session = UploadLocks.newSession()
            // An empty file needs no PATCH (the official client sends none): it exists at once.
            if size == 0, !archive {
                try Self.run { () throws(FolderPathError) in
                    close(try fs.openStaging(session).fd)
                    try fs.commitStaging(session, to: path)
                }
            }
            let exp = Int64(Date().timeIntervalSince1970 + self.config.tokenTTL)
            let token = try self.tokens.issue(TransferClaims(op: "upload", volume: v.name, folder: m.folder, path: path.raw, exp: exp, size: Int64(size), session: session,
                                                             archive: archive ? true : nil))
            return try Self.json(TransferTicket(token: token, url: self.config.advertisedURL + "/upload", session: session))
        }
        router.post(route(.requestDownload)) { request, _ in
            let (m, v, fs) = try await self.folderCall(request, DownloadTicketRequest.self, volume: \.volume, folder: \.folder)
            let path = try Self.path(m.path)
            guard let kind = try Self.run({ () throws(FolderPathError) in try fs.kind(path) }) else { throw StorageProxyError.from(.notFound(path.raw)) }
            let archive = m.archive ?? (kind == S_IFDIR)
            guard kind == S_IFREG || (kind == S_IFDIR && archive) else {
                throw StorageProxyError.from(kind == S_IFDIR ? .isADirectory(path.raw) : .symlink(path.raw))
            }
            let exp = Int64(Date().timeIntervalSince1970 + self.config.tokenTTL)
            let token = try self.tokens.issue(TransferClaims(op: "download", volume: v.name, folder: m.folder, path: path.raw, exp: exp, archive: archive))
            return try Self.json(TransferTicket(token: token, url: self.config.advertisedURL + "/download"))
        }
    }

    // MARK: - Client API

    func claims(_ request: Request, op: String) throws -> TransferClaims {
        guard let token = request.uri.queryParameters.get("token") else {
            throw StorageProxyError(.unauthorized, "a ?token= from the manager's request-\(op) is required")
        }
        do throws(TokenError) {
            return try tokens.verify(token, op: op)
        } catch {
            throw StorageProxyError(error == .expired ? .gone : .forbidden, error.description)
        }
    }

    static let tusHeaders: HTTPFields = [HTTPField.Name("Tus-Resumable")!: "1.0.0", HTTPField.Name("Tus-Version")!: "1.0.0",
                                         HTTPField.Name("Tus-Extension")!: "", .cacheControl: "no-store"]
    static let uploadOffset = HTTPField.Name("Upload-Offset")!
    /// Downloads read 1 MiB at a time: large enough that syscalls cost nothing measurable,
    /// small enough that two in flight keep the proxy's memory flat.
    static let readBatch = 1 << 20
    static let uploadLength = HTTPField.Name("Upload-Length")!

    func addTransferRoutes(_ router: Router<BasicRequestContext>) {
        router.on("/upload", method: .options) { _, _ in
            var headers = Self.tusHeaders
            headers[HTTPField.Name("Tus-Max-Size")!] = String(self.config.maxUploadBytes)
            return Response(status: .noContent, headers: headers)
        }
        router.head("/upload") { request, _ in
            let claims = try self.claims(request, op: "upload")
            let fs = try self.volumes.fileSystem(try self.volumes.volume(claims.volume), claims.folder)
            if let session = claims.session { await self.uploads.waitIdle(session) }
            let offset = try Self.run { () throws(FolderPathError) in try fs.stagedSize(claims.session ?? "") }
            var headers = Self.tusHeaders
            headers[Self.uploadOffset] = String(offset)
            headers[Self.uploadLength] = String(claims.size ?? 0)
            return Response(status: .ok, headers: headers)
        }
        router.patch("/upload") { request, _ in try await self.patch(request) }
        router.get("/download") { request, _ in try self.download(request) }
        router.head("/download") { request, _ in try self.download(request, headOnly: true) }
    }

    /// One tus PATCH: appends the body at `Upload-Offset` (which must equal what is staged),
    /// streaming it to disk; when the whole size has arrived the file is renamed into place.
    func patch(_ request: Request) async throws -> Response {
        let claims = try claims(request, op: "upload")
        guard let session = claims.session, let size = claims.size else { throw StorageProxyError(.forbidden, "the token carries no upload session") }
        guard let offsetText = request.headers[Self.uploadOffset], let offset = Int64(offsetText), offset >= 0 else {
            throw StorageProxyError(.badRequest, "Upload-Offset (a byte offset) is required")
        }
        let v = try self.volumes.volume(claims.volume)
        let fs = try self.volumes.fileSystem(v, claims.folder)
        let target = try Self.path(claims.path)
        guard await uploads.acquire(session) else { throw StorageProxyError(.conflict, "another PATCH of this upload is in progress") }
        if claims.archive == true {
            defer { Task { await uploads.release(session) } }
            return try await unpack(request, into: target, fs: fs, size: size, offset: offset, session: session, folder: claims.folder)
        }
        let staging = try Self.run { () throws(FolderPathError) in try fs.openStaging(session) }
        var written = staging.size
        var closed = false
        func finish() {
            if !closed { close(staging.fd); closed = true }
        }
        do {
            defer { finish() }
            guard offset == staging.size else {
                throw StorageProxyError(.conflict, "Upload-Offset \(offset) does not match the \(staging.size) bytes received so far; resume from \(staging.size)")
            }
            if let length = request.headers[.contentLength].flatMap(Int64.init), offset + length > size {
                throw StorageProxyError(.contentTooLarge, "the chunk would take the file past its declared size of \(size) bytes")
            }
            // Each network read is written as it comes, straight from NIO's buffer. Measured
            // (1 GiB on this 2-core VM): gathering reads into 4 MiB batches first cost 4.5-6 s
            // of CPU — the extra copy, and a kernel copy into the page cache from memory that
            // had left the CPU cache — against about half that written read by read.
            func write(_ chunk: ByteBuffer) throws {
                var remaining = chunk.readableBytesView[...]
                while !remaining.isEmpty {
                    let n = remaining.withUnsafeBytes { pwrite(staging.fd, $0.baseAddress, $0.count, off_t(written)) }
                    guard n > 0 else {
                        let code = errno
                        if n < 0, code == EINTR { continue }
                        if code == EDQUOT || code == ENOSPC {
                            finish()
                            // Out of quota or space: the upload can never complete, so none of it stays.
                            fs.discardStaging(session)
                            throw StorageProxyError(.contentTooLarge, "the folder's quota (or the volume) is full: \(String(cString: strerror(code))); the upload of '\(target.raw)' was dropped")
                        }
                        // Keep what was written before: the client resumes from there.
                        ftruncate(staging.fd, off_t(written))
                        throw StorageProxyError.from(.io(target.raw, errno: code))
                    }
                    written += Int64(n)
                    remaining = remaining.dropFirst(n)
                }
            }
            do {
                for try await chunk in request.body {
                    guard written + Int64(chunk.readableBytes) <= size else {
                        ftruncate(staging.fd, off_t(offset))
                        throw StorageProxyError(.contentTooLarge, "the upload sent more than its declared size of \(size) bytes")
                    }
                    try write(chunk)
                }
            } catch let error as StorageProxyError {
                throw error
            } catch {
                // The connection dropped: what arrived is written, so the client resumes from there.
                throw error
            }
            // Durability before the final answer: the file's data, then (in commitStaging)
            // the directory entry the rename made. A crash before this point leaves the
            // staged part, which the client resumes; after it, the whole file under its name.
            if written == size, fsync(staging.fd) != 0 {
                throw StorageProxyError.from(.io(target.raw, errno: errno))
            }
            finish()
            if written == size {
                try Self.run { () throws(FolderPathError) in try fs.commitStaging(session, to: target) }
                logger.info("upload complete", metadata: ["folder": .string(claims.folder), "bytes": .stringConvertible(size)])
            }
        } catch {
            await uploads.release(session)
            throw error
        }
        await uploads.release(session)
        var headers = Self.tusHeaders
        headers[Self.uploadOffset] = String(written)
        return Response(status: .noContent, headers: headers)
    }

    /// An archive upload's PATCH: the whole tar in one request, unpacked into `target` while
    /// it arrives and synced before the answer. Not resumable (a broken one is sent again
    /// from 0: complete files it wrote stay and are replaced).
    func unpack(_ request: Request, into target: FolderPath, fs: FolderFileSystem, size: Int64, offset: Int64, session: String, folder: String) async throws -> Response {
        guard offset == 0 else {
            throw StorageProxyError(.conflict, "an archive upload is not resumable: send the whole archive again from Upload-Offset 0")
        }
        if let length = request.headers[.contentLength].flatMap(Int64.init), length != size {
            throw StorageProxyError(.badRequest, "the request carries \(length) bytes but the archive was declared with \(size); ask for a new upload with its real size")
        }
        var extractor = ArchiveExtractor(fs: fs, base: target, tag: session)
        var received: Int64 = 0
        do {
            for try await chunk in request.body {
                received += Int64(chunk.readableBytes)
                guard received <= size else {
                    throw StorageProxyError(.contentTooLarge, "the upload sent more than the archive's declared size of \(size) bytes")
                }
                try extractor.feed(chunk)
            }
            guard received == size else {
                throw StorageProxyError(.badRequest, "the archive stopped after \(received) of its \(size) bytes; send it again from Upload-Offset 0")
            }
            try extractor.finish()
        } catch {
            extractor.abandon()
            throw error
        }
        logger.info("archive unpacked", metadata: ["folder": .string(folder), "bytes": .stringConvertible(size),
                                                   "files": .stringConvertible(extractor.files), "directories": .stringConvertible(extractor.directoriesMade)])
        var headers = Self.tusHeaders
        headers[Self.uploadOffset] = String(size)
        headers[Self.extractedFiles] = String(extractor.files)
        return Response(status: .noContent, headers: headers)
    }

    /// How many files an archive upload wrote.
    static let extractedFiles = HTTPField.Name("Hangar-Extracted-Files")!

    /// Streams a file (Content-Length; Range and If-Range for resuming) or a directory as tar.
    func download(_ request: Request, headOnly: Bool = false) throws -> Response {
        let claims = try claims(request, op: "download")
        let fs = try self.volumes.fileSystem(try self.volumes.volume(claims.volume), claims.folder)
        let path = try Self.path(claims.path)
        if claims.archive == true, try Self.run({ () throws(FolderPathError) in try fs.kind(path) }) == S_IFDIR {
            let fd = try Self.run { () throws(FolderPathError) in try fs.openDirectory(path.components, display: path.raw) }
            let name = (path.isRoot ? claims.folder : path.name) + ".tar"
            let headers: HTTPFields = [.contentType: "application/x-tar", .contentDisposition: "attachment; filename=\"\(name)\""]
            if headOnly {
                close(fd)
                return Response(status: .ok, headers: headers)
            }
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                defer { close(fd) }
                var adapter = TarWriterAdapter(writer: writer) as any ResponseBodyWriterLike
                try await TarArchive.write(directory: fd, prefix: path.isRoot ? "" : path.name, to: &adapter)
                try await adapter.write([UInt8](repeating: 0, count: 2 * TarArchive.block))
                try await writer.finish(nil)
            })
        }
        let (fd, info) = try Self.run { () throws(FolderPathError) in try fs.openForReading(path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw StorageProxyError.from((info.st_mode & S_IFMT) == S_IFDIR ? .isADirectory(path.raw) : .notFound(path.raw))
        }
        let size = Int64(info.st_size)
        let lastModified = HTTPDate.format(Int64(info.st_mtim.tv_sec))
        let etag = "\"\(info.st_ino)-\(size)-\(info.st_mtim.tv_sec)\""
        var headers: HTTPFields = [.contentType: "application/octet-stream", .lastModified: lastModified, .eTag: etag,
                                   .acceptRanges: "bytes", .contentDisposition: "attachment; filename=\"\(path.name)\""]
        var start: Int64 = 0, end = size - 1, status = HTTPResponse.Status.ok
        let ifRange = request.headers[.ifRange]
        if let range = request.headers[.range], ifRange == nil || ifRange == lastModified || ifRange == etag {
            guard let parsed = ByteRange.parse(range, size: size) else {
                close(fd)
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
            (start, end, status) = (parsed.start, parsed.end, .partialContent)
            headers[.contentRange] = "bytes \(start)-\(end)/\(size)"
        }
        let length = max(0, end - start + 1)
        headers[.contentLength] = String(length)
        if headOnly {
            close(fd)
            return Response(status: status, headers: headers)
        }
        let (first, last) = (start, end)
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { writer in
            defer { close(fd) }
            let end = last
            var position = first
            // Two buffers taken in turn: while the network sends one, the next is read.
            // Reusing one buffer would copy it on every clear() (the network still holds it)
            // and leave a freed 4 MiB block per write to the allocator, which is how a 1 GiB
            // download used to add 35 MiB to the proxy's peak memory.
            var buffers = [ByteBufferAllocator().buffer(capacity: Self.readBatch), ByteBufferAllocator().buffer(capacity: Self.readBatch)]
            var turn = 0
            while position <= end {
                var buffer = buffers[turn]
                buffers[turn] = ByteBuffer()  // keep one reference, so clear() reuses the storage once the network let go
                buffer.clear()
                let want = Int(min(Int64(Self.readBatch), end - position + 1))
                let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { pread(fd, $0.baseAddress, want, off_t(position)) }
                guard n > 0 else { throw StorageProxyError(.internalServerError, "the file shrank while it was being sent") }
                try await writer.write(buffer)
                buffers[turn] = buffer
                turn = 1 - turn
                position += Int64(n)
            }
            try await writer.finish(nil)
        })
    }
}

/// Feeds tar bytes into a Hummingbird response, in 256 KiB buffers.
struct TarWriterAdapter: ResponseBodyWriterLike {
    var writer: any ResponseBodyWriter
    mutating func write(_ bytes: [UInt8]) async throws {
        try await writer.write(ByteBuffer(bytes: bytes))
    }
}

/// One PATCH at a time per upload session. A client resuming right after its connection
/// dropped may arrive before the server has noticed the drop and saved what had arrived, so
/// waiters get a few seconds before being refused.
actor UploadLocks {
    private var busy = Set<String>()

    func acquire(_ session: String, waitingUpTo limit: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while busy.contains(session) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        busy.insert(session)
        return true
    }

    func release(_ session: String) { busy.remove(session) }

    /// Waits until no PATCH of the session is in flight (HEAD reports a settled offset).
    func waitIdle(_ session: String, upTo limit: Duration = .seconds(10)) async {
        let deadline = ContinuousClock.now + limit
        while busy.contains(session), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    }

    static func newSession() -> String {
        (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// A single `Range: bytes=...` request (several ranges are answered with the whole file).
enum ByteRange {
    static func parse(_ header: String, size: Int64) -> (start: Int64, end: Int64)? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]), suffix > 0, size > 0 else { return nil }
            return (max(0, size - suffix), size - 1)
        }
        guard let start = Int64(parts[0]), start >= 0, start < size else { return nil }
        let end = parts[1].isEmpty ? size - 1 : min(Int64(parts[1]) ?? -1, size - 1)
        return end >= start ? (start, end) : nil
    }
}

/// RFC 7231 dates (Last-Modified, If-Range).
enum HTTPDate {
    static func format(_ epoch: Int64) -> String {
        let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        var t = time_t(epoch)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let weekday = days[Int((epoch / 86_400 % 7 + 7) % 7)]
        return "\(weekday), \(pad(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) \(pad(tm.tm_hour)):\(pad(tm.tm_min)):\(pad(tm.tm_sec)) GMT"
    }
}
