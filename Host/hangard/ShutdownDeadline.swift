import Foundation
import Logging
import Synchronization

/// The bound on graceful shutdown. SIGINT or SIGTERM starts each role's graceful shutdown
/// (its servers stop accepting and finish what is in flight); a connection that never ends
/// — a peer that neither sends nor closes — would keep the process alive for ever. After the
/// first signal the process has `seconds` to finish; then (or at a second signal) it runs
/// `cleanup` (stopping and reaping its children) and exits. State needs no flushing here:
/// every store write is a committed transaction, and kernels keep running for the next start.
enum ShutdownDeadline {
    /// The sources, kept alive for the process's life (a released source stops delivering).
    /// Written once, by the role's command before it serves, and never read.
    nonisolated(unsafe) private static var armed: [any DispatchSourceSignal] = []
    private static let signalled = Atomic<Int>(0)

    static func arm(role: String, seconds: Double = 10, logger: Logger, cleanup: @escaping @Sendable () -> Void = {}) {
        @Sendable func expire(_ why: String) {
            logger.warning("\(role) did not finish shutting down \(why); exiting now")
            cleanup()
            exit(0)
        }
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            // libdispatch delivers the signal to every source; the servers' own handlers
            // (which start the graceful shutdown) see it too.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if signalled.add(1, ordering: .sequentiallyConsistent).oldValue > 0 {
                    expire("before a second signal")
                    return
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { expire("within \(Int(seconds)) s of the signal") }
            }
            source.resume()
            return source
        }
        armed += sources
    }
}
