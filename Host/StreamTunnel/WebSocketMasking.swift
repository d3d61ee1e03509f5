import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// WebSocket masking eight bytes at a time.
///
/// swift-nio masks and unmasks a byte at a time (an XOR with a `% 4` index per byte); on the
/// app-stream path every byte a client sends is unmasked by the manager, masked again for the
/// agent and unmasked there, and that loop was about half of the CPU a stream used (profile in
/// issue 19's notes). The XOR here runs on 64-bit words and writes into a fresh buffer in the
/// same pass, so masking costs about what the copy it replaces cost.
public enum WebSocketMasking {
    /// The mask repeated over eight bytes, starting at `offset` within the key.
    static func word(_ key: WebSocketMaskingKey, offset: Int) -> UInt64 {
        var word: UInt64 = 0
        withUnsafeMutableBytes(of: &word) { bytes in
            for index in 0..<8 { bytes[index] = key[(index + offset) % 4] }
        }
        return word
    }

    /// Writes `source` XOR the mask (the key's byte `(i + offset) % 4` for the `i`-th byte)
    /// to the end of `destination`. Masking and unmasking are the same operation.
    public static func append(_ source: ByteBuffer, maskedWith key: WebSocketMaskingKey, offset: Int = 0, to destination: inout ByteBuffer) {
        let count = source.readableBytes
        guard count > 0 else { return }
        let word = Self.word(key, offset: offset)
        source.withUnsafeReadableBytes { input in
            _ = destination.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { output in
                let from = input.baseAddress!
                let to = output.baseAddress!
                var index = 0
                while index + 8 <= count {
                    to.storeBytes(of: from.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ word, toByteOffset: index, as: UInt64.self)
                    index += 8
                }
                while index < count {
                    to.storeBytes(of: from.load(fromByteOffset: index, as: UInt8.self) ^ key[(index + offset) % 4], toByteOffset: index, as: UInt8.self)
                    index += 1
                }
                return count
            }
        }
    }

    /// `data` unmasked (or masked) into a buffer of its own.
    public static func applied(_ key: WebSocketMaskingKey, to data: ByteBuffer, offset: Int = 0) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: data.readableBytes)
        append(data, maskedWith: key, offset: offset, to: &out)
        return out
    }
}

/// A server-side WebSocket extension, applied without negotiation, that unmasks each data frame
/// a client sent with ``WebSocketMasking`` before Hummingbird would unmask it a byte at a time.
/// Nothing changes on the wire: a frame arrives masked as RFC 6455 requires and leaves this
/// extension unmasked with its mask key cleared.
public struct FastUnmaskingExtension: WebSocketExtension {
    public init() {}

    public var name: String { "hangar-fast-unmasking" }

    public func processReceivedFrame(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame {
        guard let key = frame.maskKey, frame.extensionData == nil else { return frame }
        var frame = frame
        frame.data = WebSocketMasking.applied(key, to: frame.data)
        frame.maskKey = nil
        return frame
    }

    public func processFrameToSend(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws -> WebSocketFrame { frame }

    public func shutdown() async {}

    /// The extension for a server's `WebSocketServerConfiguration(extensions:)`.
    public static var factory: WebSocketExtensionFactory { .nonNegotiatedExtension { FastUnmaskingExtension() } }
}
