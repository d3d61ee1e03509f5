import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// The managers an agent reports to (`[agent] managers`, or the one `manager`). Several
/// managers on one PostgreSQL serve the same API, so an agent sends each heartbeat to the one
/// that answered last and, when that one does not answer (refused, timed out, 5xx), to the
/// next — once around the list per heartbeat.
final class ManagerEndpoints: Sendable {
    let urls: [String]
    private let current = Mutex(0)

    /// - Parameter urls: base URLs, at least one (trailing slashes removed).
    init(_ urls: [String]) {
        self.urls = urls.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
        precondition(!self.urls.isEmpty, "an agent needs a manager")
    }

    /// The manager the next request goes to first.
    var active: String { urls[current.withLock { $0 }] }

    /// What one attempt found.
    struct Failure: Error, CustomStringConvertible {
        let attempts: [(url: String, error: String)]
        var description: String { attempts.map { "\($0.url): \($0.error)" }.joined(separator: "; ") }
    }

    /// Sends the request `make` builds for a manager's base URL to the active manager, then to
    /// the others in turn while they do not answer; the one that answers becomes the active
    /// one. An answer below 500 (success or a refusal of the request itself) ends the round.
    /// - Throws: `Failure` listing what each manager did, when none answered.
    func send(_ make: (String) throws -> HTTPClientRequest, client: HTTPClient, timeout: TimeAmount) async throws
        -> (url: String, status: Int, body: ByteBuffer) {
        let start = current.withLock { $0 }
        var attempts: [(String, String)] = []
        for offset in 0..<urls.count {
            let index = (start + offset) % urls.count
            let url = urls[index]
            do {
                let response = try await client.execute(try make(url), timeout: timeout)
                let body = try await response.body.collect(upTo: 1 << 20)
                guard response.status.code < 500 else {
                    attempts.append((url, "answered \(response.status.code): \(String(buffer: body).prefix(200))"))
                    continue
                }
                current.withLock { $0 = index }
                return (url, Int(response.status.code), body)
            } catch {
                attempts.append((url, "\(error)"))
            }
        }
        throw Failure(attempts: attempts)
    }
}
