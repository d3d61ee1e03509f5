import Crypto
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A WebSocket client for streams of bytes (app streams and the agent tunnels behind them).
///
/// It speaks RFC 6455 over a plain NIO channel: the upgrade request and the frames are written
/// and read here, and each frame a client must mask is masked with ``WebSocketMasking`` while it
/// is copied into the one buffer that carries the frame's header and payload, so a frame costs
/// a single pass over its bytes and one write. HummingbirdWSClient masks a byte at a time, which
/// held an app stream to about 100 MiB/s. Control frames are answered here: a ping gets its pong,
/// a close frame is echoed and ends the inbound sequence.
public enum ByteStreamWebSocket {
    /// A data frame from the server. Continuation frames carry the opcode of the frame they
    /// continue.
    public struct Frame: Sendable {
        /// `.binary` or `.text`.
        public let opcode: WebSocketOpcode
        /// The payload.
        public let data: ByteBuffer
    }

    /// How the stream ended: the server's close code (1005 when its close frame had none) and
    /// reason.
    public struct Close: Sendable, Equatable {
        public let code: Int
        public let reason: String?
    }

    /// The upgrade failed: the server answered something other than 101, or not as a WebSocket
    /// server must. `message` carries the server's status line and the start of its body, which
    /// is where Hangar's roles say what was wrong.
    public struct Failure: Error, CustomStringConvertible {
        public let status: Int?
        public let message: String
        public var description: String { message }
    }

    /// Opens `url` (`ws://` or `wss://`) with `headers` added to the upgrade request, runs `body`
    /// with the server's frames and a writer, and answers the server's close frame (nil when the
    /// connection ended without one, or `body` ended first; the writer then sends close 1000).
    /// Frames larger than `maxFrameSize` end the stream with close 1009.
    public static func connect(url: String, headers: HTTPFields = [:], maxFrameSize: Int = 1 << 20,
                               tls: TLSConfiguration? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               _ body: (Inbound, Writer) async throws -> Void) async throws -> Close? {
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "ws" || scheme == "wss",
              let host = parsed.host, !host.isEmpty else {
            throw Failure(status: nil, message: "'\(url)' is not a ws:// or wss:// URL")
        }
        let secure = scheme == "wss"
        let port = parsed.port ?? (secure ? 443 : 80)
        let sslContext = secure ? try NIOSSLContext(configuration: tls ?? .makeClientConfiguration()) : nil
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 16 << 10, initial: 256 << 10, maximum: 1 << 20))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: host.first?.isNumber == true ? nil : host))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        var target = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
        if let query = parsed.percentEncodedQuery { target += "?" + query }
        let hostHeader = parsed.port.map { "\(host):\($0)" } ?? host
        return try await channel.executeThenClose { inbound, outbound in
            let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            var request = "GET \(target) HTTP/1.1\r\nHost: \(hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
            for field in headers { request += "\(field.name.rawName): \(field.value)\r\n" }
            request += "\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var reader = Reader(iterator: inbound.makeAsyncIterator())
            try await reader.readUpgrade(key: key)
            let writer = Writer(outbound: outbound)
            let frames = Inbound(reader: reader, writer: writer, maxFrameSize: maxFrameSize)
            try await body(frames, writer)
            if let close = frames.state.close { return close }
            try? await writer.close(code: 1000)
            return nil
        }
    }

    /// Reads the upgrade answer, then frames, from the channel.
    struct Reader {
        var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var pending = ByteBuffer()

        /// Reads more bytes into `pending`; false at the end of the connection.
        mutating func fill() async throws -> Bool {
            guard var chunk = try await iterator.next() else { return false }
            if pending.readableBytes == 0 { pending = chunk } else { pending.writeBuffer(&chunk) }
            return true
        }

        mutating func readUpgrade(key: String) async throws {
            var headEnd: Int?
            while headEnd == nil {
                let bytes = Array(pending.readableBytesView)
                if bytes.count >= 4, let index = (0...(bytes.count - 4)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) {
                    headEnd = index + 4
                    break
                }
                guard pending.readableBytes < 64 << 10, try await fill() else {
                    throw Failure(status: nil, message: "the server closed the connection before it answered the WebSocket upgrade")
                }
            }
            let head = pending.readString(length: headEnd!) ?? ""
            let lines = head.components(separatedBy: "\r\n")
            let statusParts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
            let status = statusParts.count >= 2 ? Int(statusParts[1]) : nil
            var fields: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard status == 101 else {
                // The body says why (Hangar's roles answer JSON with a message); read what came
                // with the head or soon after, at most 4 KiB.
                let length = min(Int(fields["content-length"] ?? "") ?? 0, 4096)
                while pending.readableBytes < length, (try? await fill()) == true {}
                let text = pending.readString(length: min(pending.readableBytes, 4096)) ?? ""
                throw Failure(status: status, message: "the server refused the WebSocket upgrade: \(lines.first ?? "no status line")"
                              + (text.isEmpty ? "" : " — \(text.trimmingCharacters(in: .whitespacesAndNewlines))"))
            }
            let expected = Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
            guard fields["upgrade"]?.lowercased() == "websocket", fields["sec-websocket-accept"] == expected else {
                throw Failure(status: status, message: "the server answered 101 but not as a WebSocket server (Upgrade or Sec-WebSocket-Accept is wrong)")
            }
        }

        /// The next frame: header fields and payload (unmasked when the server masked it).
        mutating func nextFrame(maxFrameSize: Int) async throws -> (fin: Bool, opcode: WebSocketOpcode, payload: ByteBuffer)? {
            while true {
                if let frame = try parse(maxFrameSize: maxFrameSize) { return frame }
                guard try await fill() else { return nil }
            }
        }

        /// One whole frame from `pending`, or nil when more bytes are needed.
        mutating func parse(maxFrameSize: Int) throws -> (fin: Bool, opcode: WebSocketOpcode, payload: ByteBuffer)? {
            let start = pending.readerIndex
            guard pending.readableBytes >= 2, let first = pending.getInteger(at: start, as: UInt8.self),
                  let second = pending.getInteger(at: start + 1, as: UInt8.self) else { return nil }
            var headerLength = 2
            var length = Int(second & 0x7F)
            if length == 126 {
                guard let value = pending.getInteger(at: start + 2, as: UInt16.self) else { return nil }
                length = Int(value)
                headerLength += 2
            } else if length == 127 {
                guard let value = pending.getInteger(at: start + 2, as: UInt64.self) else { return nil }
                guard value <= UInt64(maxFrameSize) else { throw FrameTooLarge() }
                length = Int(value)
                headerLength += 8
            }
            guard length <= maxFrameSize else { throw FrameTooLarge() }
            let masked = second & 0x80 != 0
            var key: WebSocketMaskingKey?
            if masked {
                guard let bytes = pending.getBytes(at: start + headerLength, length: 4) else { return nil }
                key = WebSocketMaskingKey(bytes)
                headerLength += 4
            }
            guard pending.readableBytes >= headerLength + length else { return nil }
            pending.moveReaderIndex(forwardBy: headerLength)
            var payload = pending.readSlice(length: length)!
            if let key { payload = WebSocketMasking.applied(key, to: payload) }
            if pending.readableBytes == 0 { pending = ByteBuffer() }
            return (first & 0x80 != 0, WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F) ?? .binary, payload)
        }
    }

    struct FrameTooLarge: Error {}

    /// The server's data frames, in order; ends at the server's close frame or the end of the
    /// connection. Iterate it once.
    public final class Inbound: AsyncSequence, @unchecked Sendable {
        public typealias Element = Frame
        final class State: @unchecked Sendable {
            var close: Close?
        }
        // Iterated by one task only (the sequence is documented as single-pass).
        var reader: Reader
        let writer: Writer
        let maxFrameSize: Int
        let state = State()

        init(reader: Reader, writer: Writer, maxFrameSize: Int) {
            self.reader = reader
            self.writer = writer
            self.maxFrameSize = maxFrameSize
        }

        public struct AsyncIterator: AsyncIteratorProtocol {
            let inbound: Inbound
            var continuing: WebSocketOpcode = .binary

            public mutating func next() async throws -> Frame? {
                guard inbound.state.close == nil else { return nil }
                while true {
                    let frame: (fin: Bool, opcode: WebSocketOpcode, payload: ByteBuffer)?
                    do {
                        frame = try await inbound.reader.nextFrame(maxFrameSize: inbound.maxFrameSize)
                    } catch is FrameTooLarge {
                        try? await inbound.writer.close(code: 1009, reason: "frame larger than \(inbound.maxFrameSize) bytes")
                        inbound.state.close = Close(code: 1009, reason: "the server sent a frame larger than \(inbound.maxFrameSize) bytes")
                        return nil
                    }
                    guard let frame else { return nil }
                    switch frame.opcode {
                    case .binary, .text:
                        continuing = frame.opcode
                        return Frame(opcode: frame.opcode, data: frame.payload)
                    case .continuation:
                        return Frame(opcode: continuing, data: frame.payload)
                    case .ping:
                        try await inbound.writer.send(opcode: .pong, frame.payload)
                    case .connectionClose:
                        var payload = frame.payload
                        let code = payload.readInteger(as: UInt16.self).map(Int.init) ?? 1005
                        let reason = payload.readString(length: payload.readableBytes).flatMap { $0.isEmpty ? nil : $0 }
                        inbound.state.close = Close(code: code, reason: reason)
                        try? await inbound.writer.close(code: code == 1005 ? 1000 : code)
                        return nil
                    default:
                        continue
                    }
                }
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbound: self) }
    }

    /// Sends frames to the server, each masked with a fresh key. Safe to use from several tasks:
    /// each frame is one write.
    public struct Writer: Sendable {
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

        /// A binary frame.
        public func write(binary data: ByteBuffer) async throws { try await send(opcode: .binary, data) }

        /// A text frame.
        public func write(text: String) async throws { try await send(opcode: .text, ByteBuffer(string: text)) }

        /// A close frame with `code` and a reason of at most 123 bytes.
        public func close(code: Int, reason: String? = nil) async throws {
            var payload = ByteBuffer()
            payload.writeInteger(UInt16(clamping: code))
            if let reason { payload.writeString(String(decoding: reason.utf8.prefix(123), as: UTF8.self)) }
            try await send(opcode: .connectionClose, payload)
        }

        func send(opcode: WebSocketOpcode, _ payload: ByteBuffer) async throws {
            let count = payload.readableBytes
            var frame = ByteBufferAllocator().buffer(capacity: count + 14)
            frame.writeInteger(0x80 | UInt8(webSocketOpcode: opcode))
            if count < 126 {
                frame.writeInteger(0x80 | UInt8(count))
            } else if count <= 0xFFFF {
                frame.writeInteger(UInt8(0x80 | 126))
                frame.writeInteger(UInt16(count))
            } else {
                frame.writeInteger(UInt8(0x80 | 127))
                frame.writeInteger(UInt64(count))
            }
            let key = WebSocketMaskingKey.random()
            for index in 0..<4 { frame.writeInteger(key[index]) }
            WebSocketMasking.append(payload, maskedWith: key, to: &frame)
            try await outbound.write(frame)
        }
    }
}
