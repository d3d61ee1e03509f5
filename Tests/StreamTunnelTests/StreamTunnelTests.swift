import Crypto
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOPosix
import NIOWebSocket
import StreamTunnel
import Testing

@Suite struct WebSocketMaskingTests {
    /// The word-wide XOR against swift-nio's byte loop, for every length up to 70 and a few large
    /// ones, at every key offset, reading from slices that do not start at a word boundary.
    @Test func maskingMatchesTheByteLoopAtEveryLengthAndOffset() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0...70) + [1000, 65_537, 262_147] {
            for offset in 0..<4 {
                let key = WebSocketMaskingKey.random(using: &generator)
                var source = ByteBuffer(bytes: (0..<(length + 3)).map { _ in UInt8.random(in: 0...255, using: &generator) })
                source.moveReaderIndex(forwardBy: 3)
                var expected = source
                expected.webSocketMask(key, indexOffset: offset)
                let masked = WebSocketMasking.applied(key, to: source, offset: offset)
                #expect(masked == expected, "length \(length), offset \(offset)")
                #expect(WebSocketMasking.applied(key, to: masked, offset: offset) == source, "masking twice gives the input back")
            }
        }
    }
}

/// The client against a real Hummingbird WebSocket server that uses the unmasking extension.
@Suite struct ByteStreamWebSocketTests {
    /// Runs a server with `/echo` (each data frame back, same opcode), `/close` (closes at once
    /// with 4001 "bye") and `/refuse` (the upgrade refused).
    static func withServer(_ body: @Sendable @escaping (Int) async throws -> Void) async throws {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("/echo") { inbound, outbound, _ in
            for try await frame in inbound {
                if frame.opcode == .text { try await outbound.write(.text(String(buffer: frame.data))) } else { try await outbound.write(.binary(frame.data)) }
            }
        }
        router.ws("/close") { _, outbound, _ in
            try await outbound.close(.init(codeNumber: 4001), reason: "bye")
        }
        router.ws("/refuse", shouldUpgrade: { _, _ in throw HTTPError(.forbidden, message: "no entry for you") }) { _, _, _ in }
        let (ports, portStream) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router,
                              server: .http1WebSocketUpgrade(webSocketRouter: router,
                                                             configuration: .init(ws: .init(maxFrameSize: 4 << 20, extensions: [FastUnmaskingExtension.factory],
                                                                                            autoPing: .disabled))),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portStream.yield(channel.localAddress?.port ?? 0); portStream.finish() })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(port)
            group.cancelAll()
        }
    }

    @Test func framesOfEverySizeComeBackIdenticalBothTypes() async throws {
        try await Self.withServer { port in
            let sizes = [0, 1, 7, 125, 126, 127, 65_535, 65_536, 262_144, 1 << 20]
            var sent: [ByteBuffer] = []
            var received: [ByteBuffer] = []
            var texts: [String] = []
            let closed = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/echo", maxFrameSize: 2 << 20) { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                for size in sizes {
                    let payload = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) })
                    sent.append(payload)
                    try await outbound.write(binary: payload)
                    let frame = try #require(try await iterator.next())
                    #expect(frame.opcode == .binary)
                    received.append(frame.data)
                }
                try await outbound.write(text: "été ✓")
                let frame = try #require(try await iterator.next())
                #expect(frame.opcode == .text)
                texts.append(String(buffer: frame.data))
            }
            #expect(received == sent)
            #expect(texts == ["été ✓"])
            #expect(closed == nil, "the client ended the stream, so no close frame came first")
        }
    }

    /// A hand-written server (no timing involved): it upgrades, sends a ping with a payload,
    /// reads the client's next frame and checks that it is a masked pong with that payload,
    /// then sends one data frame saying what it saw.
    @Test func aPingIsAnsweredWithItsPayload() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let port = try #require(server.channel.localAddress?.port)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        try await connection.executeThenClose { inbound, outbound in
                            var pending = ByteBuffer()
                            var iterator = inbound.makeAsyncIterator()
                            while !String(buffer: pending).contains("\r\n\r\n"), var chunk = try await iterator.next() { pending.writeBuffer(&chunk) }
                            let head = String(buffer: pending)
                            let key = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }
                                .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) } ?? ""
                            let accept = Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
                            try await outbound.write(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n"))
                            try await outbound.write(ByteBuffer(bytes: [0x89, 4] + Array("abcd".utf8)))
                            pending = ByteBuffer()
                            while pending.readableBytes < 10, var chunk = try await iterator.next() { pending.writeBuffer(&chunk) }
                            let bytes = Array(pending.readableBytesView)
                            let masked = bytes.count >= 10 && bytes[1] & 0x80 != 0
                            let payload = masked ? (0..<4).map { bytes[6 + $0] ^ bytes[2 + $0 % 4] } : []
                            let verdict = bytes.first == 0x8A && masked && bytes[1] & 0x7F == 4 && payload == Array("abcd".utf8) ? "pong ok" : "bad: \(bytes)"
                            try await outbound.write(ByteBuffer(bytes: [0x82, UInt8(verdict.utf8.count)] + Array(verdict.utf8)))
                        }
                        return
                    }
                }
            }
            _ = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/") { inbound, _ in
                var iterator = inbound.makeAsyncIterator()
                let frame = try #require(try await iterator.next())
                #expect(String(buffer: frame.data) == "pong ok")
            }
            try await group.next()
        }
    }

    @Test func theServersCloseCodeAndReasonComeBack() async throws {
        try await Self.withServer { port in
            let closed = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/close") { inbound, _ in
                for try await _ in inbound { Issue.record("no data frame was sent") }
            }
            #expect(closed?.code == 4001)
            #expect(closed?.reason == "bye")
        }
    }

    @Test func aRefusedUpgradeSaysWhatTheServerSaid() async throws {
        try await Self.withServer { port in
            // Hummingbird answers a refused upgrade with a bare 400.
            await #expect(throws: ByteStreamWebSocket.Failure.self) {
                _ = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/refuse") { _, _ in Issue.record("no stream was expected") }
            }
            await #expect(throws: ByteStreamWebSocket.Failure.self) {
                _ = try await ByteStreamWebSocket.connect(url: "http://127.0.0.1:\(port)/echo") { _, _ in }
            }
        }
    }

    /// A server that answers an upgrade with an error and a body (as Hangar's roles answer with
    /// JSON): its words are in the error.
    @Test func aRefusalWithABodyIsQuoted() async throws {
        let router = Router()
        router.get("/plain") { _, _ -> String in throw HTTPError(.notFound, message: "nothing lives here") }
        let (ports, portStream) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portStream.yield(channel.localAddress?.port ?? 0); portStream.finish() })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            do {
                _ = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/plain") { _, _ in Issue.record("no stream was expected") }
                Issue.record("the upgrade should have been refused")
            } catch let failure as ByteStreamWebSocket.Failure {
                #expect(failure.status == 404)
                #expect(failure.message.contains("nothing lives here"), "\(failure.message)")
            }
            group.cancelAll()
        }
    }

    @Test func aFrameLargerThanTheLimitEndsTheStreamWith1009() async throws {
        try await Self.withServer { port in
            let closed = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/echo", maxFrameSize: 1000) { inbound, outbound in
                try await outbound.write(binary: ByteBuffer(repeating: 7, count: 1001))
                for try await _ in inbound { Issue.record("the oversized frame must not be delivered") }
            }
            #expect(closed?.code == 1009)
        }
    }
}
