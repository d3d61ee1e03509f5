import Hummingbird
import NIOCore

/// Hands a browser's request body on to the manager or a storage proxy, streamed, without
/// ever leaving two readers on it.
///
/// AsyncHTTPClient reads a streamed request body in a task of its own and may still be waiting
/// for the next chunk when the upstream has already answered (an early 401 or 409). If the
/// webserver then finished its answer, Hummingbird would read the rest of the request body to
/// reuse the connection — a second concurrent reader, which swift-nio stops with a fatal error
/// (this crashed `hangard dev`). So the body is read here, in a task the webserver owns, one
/// chunk per demand from AsyncHTTPClient; `stop()` ends that task and waits for it before the
/// answer completes. A body cut short that way also ends the browser's connection.
final class RequestBodyPump: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    private let chunks: AsyncThrowingStream<ByteBuffer, any Error>
    private let demands: AsyncStream<Void>.Continuation
    private let task: Task<Void, Never>

    init(_ body: RequestBody) {
        let (chunks, output) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        let (demandStream, demands) = AsyncStream<Void>.makeStream()
        self.chunks = chunks
        self.demands = demands
        task = Task {
            do {
                var iterator = body.makeAsyncIterator()
                // One chunk per demand: the reader's pace is AsyncHTTPClient's.
                for await _ in demandStream {
                    guard let chunk = try await iterator.next() else { break }
                    output.yield(chunk)
                }
                try Task.checkCancellation()
                output.finish()
            } catch {
                output.finish(throwing: error)
            }
        }
    }

    /// Ends the reading task (if it still reads) and waits until it no longer touches the body.
    func stop() async {
        task.cancel()
        demands.finish()
        await task.value
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var chunks: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
        let demands: AsyncStream<Void>.Continuation

        mutating func next() async throws -> ByteBuffer? {
            demands.yield()
            return try await chunks.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: chunks.makeAsyncIterator(), demands: demands) }
}
