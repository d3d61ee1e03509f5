import Hummingbird
import HummingbirdWebSocket
import NIOCore
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
/// One test at a time: the ping test's server closes a client whose pong is late, and a
/// neighbour moving megabytes in a debug build can make it late.
@Suite(.serialized) struct ByteStreamWebSocketTests {
    /// Runs a server with `/echo` (each data frame back, same opcode), `/close` (closes at once
    /// with 4001 "bye"), `/refuse` (the upgrade refused). The server pings every `ping` and closes a client that has not
    /// answered the previous ping.
    static func withServer(pingEvery ping: Duration = .seconds(30), _ body: @Sendable @escaping (Int) async throws -> Void) async throws {
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
                                                                                            autoPing: .enabled(timePeriod: ping)))),
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

    @Test func pingsAreAnsweredWhileTheStreamIsRead() async throws {
        try await Self.withServer(pingEvery: .milliseconds(300)) { port in
            _ = try await ByteStreamWebSocket.connect(url: "ws://127.0.0.1:\(port)/echo") { inbound, outbound in
                async let echoed: String? = {
                    for try await frame in inbound { return String(buffer: frame.data) }
                    return nil
                }()
                // Several ping periods: a ping left unanswered makes the server close the stream
                // ("Ping timeout") and the echo below never comes.
                try await Task.sleep(for: .milliseconds(1100))
                try await outbound.write(binary: ByteBuffer(string: "still here"))
                #expect(try await echoed == "still here")
            }
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
