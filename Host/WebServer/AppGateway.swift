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

    private var ports: [Key: Int] = [:]
    private var listeners: [Key: any Channel] = [:]
    let host: String
    let logger: Logger

    init(host: String, logger: Logger) {
        self.host = host
        self.logger = logger
    }

    /// The port serving `app` of `session` for the user of `owner`, opened on first use.
    func port(for key: Key, server: WebServer) async throws -> Int {
        if let port = ports[key] { return port }
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 16 << 10, initial: 64 << 10, maximum: 1 << 20))
            .bind(host: host, port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let port = listener.channel.localAddress?.port ?? 0
        ports[key] = port
        listeners[key] = listener.channel
        logger.info("app port opened", metadata: ["session": .string(key.session), "app": .string(key.app), "port": .stringConvertible(port)])
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await Self.serve(connection, key: key, server: server) }
                    }
                }
            }
        }
        return port
    }

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
        for channel in listeners.values { try? await channel.close() }
        listeners.removeAll()
        ports.removeAll()
    }
}
