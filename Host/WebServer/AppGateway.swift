import ClusterProtocol
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix

/// Web apps of sessions (Jupyter, anything a session serves over HTTP) in a browser tab. Each
/// (user, session, app) gets its own port on the webserver's host, so an app is served at the
/// root of its own origin as it expects; every connection to that port must carry the login
/// cookie of the user it was opened for (cookies do not depend on the port), and its bytes go
/// through the manager's app stream signed as that user — the manager refuses a session the
/// user does not own. The app's pages run on another origin than the UI, so they can neither
/// read the UI nor pass its CSRF checks.
actor AppGateway {
    struct Key: Hashable {
        let accessKey: String
        let session: String
        let app: String
    }

    /// An open app port: its listener, the connections it is serving and when it last saw one.
    struct Entry {
        let port: Int
        let channel: any Channel
        let id: Int
        var active = 0
        var lastUsed: Double
    }

    private var entries: [Key: Entry] = [:]
    private var nextID = 0
    let host: String
    let range: ClosedRange<Int>?
    let idleTimeout: Double
    let logger: Logger

    /// - Parameters:
    ///   - range: the ports to open apps on (nil: any free port).
    ///   - idleTimeout: seconds a port with no connection stays open (0: until `closeAll`).
    init(host: String, range: ClosedRange<Int>? = nil, idleTimeout: Double = 900, logger: Logger) {
        self.host = host
        self.range = range
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    /// The ports open now, by app (for tests and logs).
    var openPorts: [Key: Int] { entries.mapValues(\.port) }

    /// The port serving `app` of `session` for the user of `owner`, opened on first use.
    /// - Throws: `AppGatewayError.noFreePort` when every port of the configured range is taken.
    func port(for key: Key, server: WebServer) async throws -> Int {
        if var entry = entries[key] {
            entry.lastUsed = Self.now()
            entries[key] = entry
            return entry.port
        }
        let listener = try await bind()
        let port = listener.channel.localAddress?.port ?? 0
        nextID += 1
        let id = nextID
        entries[key] = Entry(port: port, channel: listener.channel, id: id, lastUsed: Self.now())
        logger.info("app port opened", metadata: ["session": .string(key.session), "app": .string(key.app), "port": .stringConvertible(port)])
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask {
                            await self.connection(key, id: id, opened: true)
                            await Self.serve(connection, key: key, server: server)
                            await self.connection(key, id: id, opened: false)
                        }
                    }
                }
            }
            self.forget(key, id: id)
        }
        if idleTimeout > 0 { Task { await self.closeWhenIdle(key, id: id) } }
        return port
    }

    typealias Listener = NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>

    /// A listener on the configured range's first free port, or on any free port.
    private func bind() async throws -> Listener {
        let host = host
        @Sendable func attempt(_ port: Int) async throws -> Listener {
            try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 16 << 10, initial: 64 << 10, maximum: 1 << 20))
                .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        }
        guard let range else { return try await attempt(0) }
        let taken = Set(entries.values.map(\.port))
        for port in range where !taken.contains(port) {
            // A port something else holds is skipped; any other failure is the answer.
            do { return try await attempt(port) } catch let error as IOError where error.errnoCode == EADDRINUSE { continue }
        }
        throw AppGatewayError.noFreePort(range: range, open: entries.count)
    }

    private func connection(_ key: Key, id: Int, opened: Bool) {
        guard var entry = entries[key], entry.id == id else { return }
        entry.active += opened ? 1 : -1
        entry.lastUsed = Self.now()
        entries[key] = entry
    }

    private func forget(_ key: Key, id: Int) {
        if entries[key]?.id == id { entries[key] = nil }
    }

    /// Closes the port once it has had no connection for `idleTimeout` seconds.
    private func closeWhenIdle(_ key: Key, id: Int) async {
        while true {
            guard let entry = entries[key], entry.id == id else { return }
            let idle = Self.now() - entry.lastUsed
            if entry.active == 0, idle >= idleTimeout {
                entries[key] = nil
                try? await entry.channel.close()
                logger.info("app port closed (idle)", metadata: ["session": .string(key.session), "app": .string(key.app), "port": .stringConvertible(entry.port)])
                return
            }
            let wait = entry.active > 0 ? idleTimeout : idleTimeout - idle
            try? await Task.sleep(for: .milliseconds(Int64(max(0.05, min(wait, 60)) * 1000)))
        }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Reads the first request's head, checks its login cookie belongs to the port's user, then
    /// relays the connection (the head included) through the app stream.
    static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, key: Key, server: WebServer) async {
        try? await connection.executeThenClose { inbound, outbound in
            let reader = InboundReader(inbound.makeAsyncIterator())
            var head = ByteBuffer()
            while head.readableBytesView.firstRange(of: [13, 10, 13, 10]) == nil {
                guard head.readableBytes < 64 << 10, var chunk = try await reader.next() else { return }
                head.writeBuffer(&chunk)
            }
            let text = String(decoding: head.readableBytesView, as: UTF8.self)
            var cookieID: String?
            for line in text.split(separator: "\r\n") where line.lowercased().hasPrefix("cookie:") {
                for pair in line.dropFirst("cookie:".count).split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if parts.count == 2, parts[0] == WebServer.cookieName { cookieID = parts[1] }
                }
            }
            guard let cookieID, let session = try? await server.session(id: cookieID) else {
                try await outbound.write(refusal(401, "Log in to Hangar first, then open the app from the Sessions page."))
                return
            }
            guard session.accessKey == key.accessKey else {
                try await outbound.write(refusal(403, "This app belongs to another user's session."))
                return
            }
            let target = "/stream/session/\(key.session.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? key.session)/httpproxy?app="
                + (key.app.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? key.app)
            let (url, headers) = server.managerWebSocket(target, as: session)
            var quiet = Logger(label: "hangar.webserver.app")
            quiet.logLevel = .critical
            let firstBytes = head
            let closed: WebSocketCloseFrame?
            do {
                closed = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 16 << 20, additionalHeaders: headers), logger: quiet) {
                appInbound, appOutbound, _ in
                try await appOutbound.write(.binary(firstBytes))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { while let chunk = try await reader.next() { try await appOutbound.write(.binary(chunk)) } }
                    group.addTask { for try await frame in appInbound { try await outbound.write(frame.data) } }
                    try await group.next()
                    group.cancelAll()
                }
                }
            } catch {
                try await outbound.write(refusal(502, "The app could not be reached: the manager refused the stream (\(error))"))
                return
            }
            if let closed, closed.closeCode != .normalClosure, closed.closeCode != .goingAway {
                // Nothing was relayed when the stream was refused: say why, as HTTP.
                try? await outbound.write(refusal(502, "The app could not be reached: \(closed.reason ?? "the stream closed")"))
            }
        }
    }

    /// The connection's inbound bytes, read first by the head parser and then by the one relay
    /// task — never by two at once, which is why the unchecked Sendable is safe.
    final class InboundReader: @unchecked Sendable {
        private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        init(_ iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) { self.iterator = iterator }
        func next() async throws -> ByteBuffer? { try await iterator.next() }
    }

    static func refusal(_ status: Int, _ message: String) -> ByteBuffer {
        let reason = [401: "Unauthorized", 403: "Forbidden", 502: "Bad Gateway"][status] ?? "Error"
        let body = "<!doctype html><title>\(reason)</title><p>\(message.replacingOccurrences(of: "<", with: "&lt;"))</p>\n"
        return ByteBuffer(string: "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
    }

    /// Closes every app port (the webserver is stopping).
    func closeAll() async {
        let open = entries.values.map(\.channel)
        entries.removeAll()
        for channel in open { try? await channel.close() }
    }
}

/// Why the app gateway could not open a port.
enum AppGatewayError: Error, CustomStringConvertible {
    case noFreePort(range: ClosedRange<Int>, open: Int)

    var description: String {
        switch self {
        case .noFreePort(let range, let open):
            "every port of app_port_range \(range.lowerBound)-\(range.upperBound) is taken (\(open) app ports open here); "
                + "widen the range in [webserver], or wait until idle app ports close (app_idle_timeout)"
        }
    }
}
