import ClusterProtocol
import Foundation
import HummingbirdWebSocket
import NIOCore
import Synchronization

/// Backend.AI's terminal stream (`/stream/session/{name}/pty`) on top of the kernel's ttyd
/// service: the agent speaks ttyd's WebSocket protocol to it through a tunnel, and Backend.AI's
/// JSON messages to the manager. Client → `{"type": "stdin", "chars": BASE64}`,
/// `{"type": "resize", "rows": R, "cols": C}`, `{"type": "ping"}` (answered `{"type": "pong"}`),
/// `{"type": "restart"}` (a new shell); server → `{"type": "out", "data": BASE64}`.
enum PTYStream {
    /// Frames of RFC 6455 as a client writes and reads them on a raw byte stream.
    struct WebSocketCodec {
        private var pending = ByteBuffer()
        private var message = ByteBuffer()

        enum Event { case data(ByteBuffer), ping(ByteBuffer), close }

        /// The upgrade request for ttyd's `/ws` with its `tty` subprotocol.
        static func handshake() -> ByteBuffer {
            let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            return ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tty\r\n\r\n")
        }

        /// A masked client frame.
        static func frame(opcode: UInt8, _ payload: [UInt8]) -> ByteBuffer {
            var out = ByteBuffer()
            out.writeInteger(0x80 | opcode)
            if payload.count < 126 {
                out.writeInteger(UInt8(0x80 | payload.count))
            } else if payload.count <= 0xffff {
                out.writeInteger(UInt8(0x80 | 126))
                out.writeInteger(UInt16(payload.count))
            } else {
                out.writeInteger(UInt8(0x80 | 127))
                out.writeInteger(UInt64(payload.count))
            }
            let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
            out.writeBytes(mask)
            out.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset & 3] })
            return out
        }

        mutating func feed(_ bytes: inout ByteBuffer) { pending.writeBuffer(&bytes) }

        /// Consumes the handshake answer once it is complete: nil while incomplete.
        mutating func takeHandshake() -> String? {
            let view = pending.readableBytesView
            guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
            let length = end.upperBound - view.startIndex
            return pending.readString(length: length)
        }

        /// The next complete event, or nil when more bytes are needed.
        mutating func next() throws -> Event? {
            while true {
                guard pending.readableBytes >= 2, let b0: UInt8 = pending.getInteger(at: pending.readerIndex),
                      let b1: UInt8 = pending.getInteger(at: pending.readerIndex + 1) else { return nil }
                var header = 2
                var length = Int(b1 & 0x7f)
                if length == 126 {
                    guard let n: UInt16 = pending.getInteger(at: pending.readerIndex + 2) else { return nil }
                    length = Int(n)
                    header = 4
                } else if length == 127 {
                    guard let n: UInt64 = pending.getInteger(at: pending.readerIndex + 2) else { return nil }
                    guard n < 16 << 20 else { throw ServiceLink.Failure(message: "the terminal sent a frame of \(n) bytes") }
                    length = Int(n)
                    header = 10
                }
                let masked = b1 & 0x80 != 0
                guard pending.readableBytes >= header + (masked ? 4 : 0) + length else { return nil }
                pending.moveReaderIndex(forwardBy: header)
                let mask = masked ? pending.readBytes(length: 4)! : [0, 0, 0, 0]
                var payload = pending.readBytes(length: length)!
                if masked { for i in payload.indices { payload[i] ^= mask[i & 3] } }
                switch b0 & 0x0f {
                case 0x0, 0x1, 0x2:
                    message.writeBytes(payload)
                    if b0 & 0x80 != 0 {
                        defer { message = ByteBuffer() }
                        return .data(message)
                    }
                case 0x8: return .close
                case 0x9: return .ping(ByteBuffer(bytes: payload))
                default: continue
                }
            }
        }
    }

    /// Serves one terminal stream for the manager until it closes (or the shell ends).
    static func serve(runner: KernelRunner, kernelID: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
                      startTimeout: Double) async throws {
        let port: Int
        do throws(ServiceError) {
            port = try await runner.startService(kernelID, ServiceStartRequest(name: "ttyd"), defaultTimeout: startTimeout).port
        } catch {
            try await outbound.close(.init(codeNumber: Int(TunnelClose.refused)), reason: String(error.message.prefix(120)))
            return
        }
        let socket = try await runner.tunnelTarget(kernelID, port: port)
        let messages = InboundMessages(inbound)
        let size = TerminalSize()
        while true {
            var restart = false
            try await ServiceLink.withTunnel(socket, port: port) { early, service, toService in
                var codec = WebSocketCodec()
                if var early { codec.feed(&early) }
                try await toService.write(WebSocketCodec.handshake())
                var answer = codec.takeHandshake()
                while answer == nil, var chunk = try await service.next() {
                    codec.feed(&chunk)
                    answer = codec.takeHandshake()
                }
                guard let answer, answer.hasPrefix("HTTP/1.1 101") else {
                    throw ServiceLink.Failure(message: "the terminal refused the WebSocket: \(answer?.prefix(80) ?? "no answer")")
                }
                let (rows, cols) = size.value.withLock { $0 }
                let auth = "{\"AuthToken\":\"\",\"columns\":\(cols),\"rows\":\(rows)}"
                try await toService.write(WebSocketCodec.frame(opcode: 0x1, Array(auth.utf8)))
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        // Manager → terminal. Returns true for a restart.
                        while let text = try await messages.next() {
                            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
                            switch object["type"] as? String {
                            case "stdin":
                                guard let data = (object["chars"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
                                try await toService.write(WebSocketCodec.frame(opcode: 0x2, [UInt8(ascii: "0")] + [UInt8](data)))
                            case "resize":
                                let rows = object["rows"] as? Int ?? 24, cols = object["cols"] as? Int ?? 80
                                guard (1...1000).contains(rows), (1...1000).contains(cols) else { continue }
                                size.value.withLock { $0 = (rows, cols) }
                                try await toService.write(WebSocketCodec.frame(opcode: 0x2, Array("1{\"columns\":\(cols),\"rows\":\(rows)}".utf8)))
                            case "ping":
                                try await outbound.write(.text("{\"type\":\"pong\"}"))
                            case "restart":
                                toService.finish()
                                return true
                            default:
                                continue
                            }
                        }
                        toService.finish()
                        return false
                    }
                    // Terminal → manager, until the shell or the connection ends.
                    reading: while var chunk = try await service.next() {
                        codec.feed(&chunk)
                        while let event = try codec.next() {
                            switch event {
                            case .data(let payload):
                                guard payload.readableBytes > 0, payload.getInteger(at: payload.readerIndex, as: UInt8.self) == UInt8(ascii: "0") else { continue }
                                let bytes = payload.getBytes(at: payload.readerIndex + 1, length: payload.readableBytes - 1) ?? []
                                try await outbound.write(.text("{\"type\":\"out\",\"data\":\"\(Data(bytes).base64EncodedString())\"}"))
                            case .ping(let payload):
                                try await toService.write(WebSocketCodec.frame(opcode: 0xA, Array(payload.readableBytesView)))
                            case .close:
                                break reading
                            }
                        }
                    }
                    if let first = try await group.next() { restart = first }
                    group.cancelAll()
                }
            }
            if !restart { break }
        }
        try? await outbound.close(.normalClosure, reason: nil)
    }

    /// The terminal's size, kept for the shell a restart starts.
    final class TerminalSize: Sendable {
        let value = Mutex((24, 80))
    }

    /// The manager's messages through one iterator for the stream's whole life (a restart
    /// reads on where the previous shell's reader stopped). Only one task reads at a time.
    final class InboundMessages: @unchecked Sendable {
        private var iterator: WebSocketInboundMessageStream.AsyncIterator
        init(_ stream: WebSocketInboundStream) { iterator = stream.messages(maxSize: 1 << 20).makeAsyncIterator() }
        func next() async throws -> String? {
            guard let message = try await iterator.next() else { return nil }
            switch message {
            case .text(let text): return text
            case .binary(let buffer): return String(buffer: buffer)
            }
        }
    }
}
