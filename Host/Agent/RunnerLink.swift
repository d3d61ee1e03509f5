import Foundation
import NIOCore
import NIOPosix

/// One frame of the runner protocol (Host/Runner/README.md): a type byte and a payload.
struct RunnerFrame: Sendable {
    var type: UInt8
    var payload: ByteBuffer

    init(_ type: Character, _ payload: String = "") {
        self.type = type.asciiValue!
        self.payload = ByteBuffer(string: payload)
    }

    init(type: UInt8, payload: ByteBuffer) {
        self.type = type
        self.payload = payload
    }

    var kind: Character { Character(UnicodeScalar(type)) }
    var text: String { String(buffer: payload) }

    /// The protocol's frame limit (type byte plus payload).
    static let maxLength = 16 << 20
}

/// Splits the byte stream into frames: uint32 big-endian length, type byte, payload.
struct RunnerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = RunnerFrame

    struct BadFrame: Error, CustomStringConvertible {
        let length: UInt32
        var description: String { "the runner sent a frame of length \(length) (allowed 1...\(RunnerFrame.maxLength))" }
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length: UInt32 = buffer.getInteger(at: buffer.readerIndex) else { return .needMoreData }
        guard length >= 1, length <= RunnerFrame.maxLength else { throw BadFrame(length: length) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let type: UInt8 = buffer.readInteger()!
        let payload = buffer.readSlice(length: Int(length) - 1)!
        context.fireChannelRead(wrapInboundOut(RunnerFrame(type: type, payload: payload)))
        return .continue
    }
}

struct RunnerFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = RunnerFrame

    func encode(data: RunnerFrame, out: inout ByteBuffer) throws {
        // Longer payloads are cut to the protocol's limit rather than refused by the runner.
        let length = min(data.payload.readableBytes, RunnerFrame.maxLength - 1)
        out.writeInteger(UInt32(length + 1))
        out.writeInteger(data.type)
        out.writeImmutableBuffer(data.payload.getSlice(at: data.payload.readerIndex, length: length)!)
    }
}

/// Connects to a runner's unix socket. The agent is the runner's only client and holds one
/// connection per kernel; frames arrive through `onFrame` until the connection ends.
enum RunnerLink {
    typealias Channel = NIOAsyncChannel<RunnerFrame, RunnerFrame>

    static func connect(socketPath: String) async throws -> Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RunnerFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(RunnerFrameEncoder()))
                    return try Channel(wrappingChannelSynchronously: channel)
                }
            }
    }
}
