import Foundation
import NIOCore
import NIOPosix

/// The runner's service socket (Host/Runner/README.md, "Service socket"): one request per
/// connection, `T` (a tunnel to a port in the kernel), `S` (start a service), `Z` (does a
/// process still run). A tunnel connection carries raw bytes once the runner said `t`.
enum ServiceLink {
    typealias Channel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// A failed request: the runner's `E` text, or why the socket could not be used.
    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// An open tunnel: the channel, and bytes the service already sent after the `t`.
    struct Tunnel {
        let channel: Channel
        let early: ByteBuffer?
    }

    static func connect(_ socketPath: String) async throws -> Channel {
        do {
            return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                // Big reads: every read becomes one WebSocket frame of the app stream.
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 16 << 10, initial: 256 << 10, maximum: 1 << 20))
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Channel(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Failure(message: "the kernel's runner does not answer on \(socketPath): \(error)")
        }
    }

    static func frame(_ type: Character, _ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(payload.count + 1))
        buffer.writeInteger(type.asciiValue!)
        buffer.writeBytes(payload)
        return buffer
    }

    /// Sends one request and reads its one reply frame; what follows the reply stays unread
    /// except for bytes that arrived with it, returned as `rest`.
    static func request(_ channel: Channel, _ type: Character, _ payload: [UInt8],
                        body: (_ reply: Character, _ text: String, _ rest: ByteBuffer?, _ inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
                               _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void) async throws {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(frame(type, payload))
            var iterator = inbound.makeAsyncIterator()
            var pending = ByteBuffer()
            while true {
                if let length: UInt32 = pending.getInteger(at: pending.readerIndex), pending.readableBytes >= 4 + Int(length) {
                    guard length >= 1 else { throw Failure(message: "the runner sent an empty frame") }
                    pending.moveReaderIndex(forwardBy: 4)
                    let kind = Character(UnicodeScalar(pending.readInteger(as: UInt8.self)!))
                    let text = pending.readString(length: Int(length) - 1) ?? ""
                    try await body(kind, text, pending.readableBytes > 0 ? pending : nil, &iterator, outbound)
                    return
                }
                guard var chunk = try await iterator.next() else {
                    throw Failure(message: "the runner closed the service connection without an answer")
                }
                pending.writeBuffer(&chunk)
            }
        }
    }

    /// Asks and returns the reply text; an `E` reply throws its text.
    static func ask(_ socketPath: String, _ type: Character, _ payload: [UInt8], expect: Character) async throws -> String {
        var result = ""
        try await request(try await connect(socketPath), type, payload) { kind, text, _, _, _ in
            guard kind == expect else { throw Failure(message: text) }
            result = text
        }
        return result
    }

    /// Whether something accepts connections on the port inside the kernel now.
    static func isListening(_ socketPath: String, port: Int) async -> Bool {
        (try? await ask(socketPath, "T", Array(String(port).utf8), expect: "t")) != nil
    }

    /// Starts a service (`S`): its pid.
    static func start(_ socketPath: String, argv: [String], environment: [String: String], logPath: String, workingDirectory: String) async throws -> Int {
        var fields = [logPath, workingDirectory]
        fields += environment.sorted { $0.key < $1.key }.map { "E\($0.key)=\($0.value)" }
        fields += argv.map { "A" + $0 }
        guard fields.allSatisfy({ !$0.contains("\0") }) else { throw Failure(message: "a service's command or environment contains a NUL byte") }
        let payload = Array(fields.joined(separator: "\0").utf8)
        let reply = try await ask(socketPath, "S", payload, expect: "s")
        guard let pid = Int(reply) else { throw Failure(message: "the runner answered S with '\(reply)'") }
        return pid
    }

    /// Whether a process the runner started still runs (`Z`).
    static func isRunning(_ socketPath: String, pid: Int) async -> Bool {
        (try? await ask(socketPath, "Z", Array(String(pid).utf8), expect: "z")) == "running"
    }

    /// Opens a tunnel to a port inside the kernel and hands it to `use` (the connection closes
    /// when `use` returns).
    static func withTunnel(_ socketPath: String, port: Int,
                           _ use: (_ early: ByteBuffer?, _ inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
                                   _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void) async throws {
        try await request(try await connect(socketPath), "T", Array(String(port).utf8)) { kind, text, rest, inbound, outbound in
            guard kind == "t" else { throw Failure(message: text) }
            try await use(rest, &inbound, outbound)
        }
    }
}
