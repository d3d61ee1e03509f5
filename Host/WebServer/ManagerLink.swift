import AsyncHTTPClient
import ClusterProtocol
import Foundation
import NIOCore
import Synchronization

/// The manager answered a webserver call with an error: its status and problem document.
struct ManagerProblem: Error, CustomStringConvertible {
    let status: Int
    let type: String
    let title: String
    let details: String
    var description: String { "\(status) \(title): \(details)" }

    init(status: Int, body: Data) {
        self.status = status
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        type = object["type"] as? String ?? "https://api.backend.ai/probs/generic-error"
        title = object["title"] as? String ?? "The manager answered \(status)"
        details = object["msg"] as? String ?? object["details"] as? String ?? String(decoding: body.prefix(500), as: UTF8.self)
    }
}

/// The manager could not be reached at all.
struct ManagerUnreachable: Error, CustomStringConvertible {
    let url: String
    let underlying: any Error
    var description: String { "the manager at \(url) does not answer (\(underlying)); check [webserver] manager_url and that the manager runs" }
}

/// Calls of the webserver ↔ manager contract (`WebServerAPI`), with the cluster secret.
struct ManagerLink: Sendable {
    let baseURL: String
    let clusterSecret: String
    let client: HTTPClient

    func call<Body: Encodable, Reply: Decodable>(_ path: String, _ body: Body, as: Reply.Type) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "\(AgentAPI.authorizationScheme) \(clusterSecret)")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response: HTTPClientResponse
        let data: Data
        do {
            response = try await client.execute(request, timeout: .seconds(30))
            data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        } catch {
            throw ManagerUnreachable(url: baseURL, underlying: error)
        }
        guard response.status.code < 300 else { throw ManagerProblem(status: Int(response.status.code), body: data) }
        return try JSONDecoder().decode(Reply.self, from: data)
    }
}

/// Sessions looked up recently, so a proxied request does not cost a manager round trip each
/// time; entries live `ttl` seconds (a deactivated user is logged out within that).
final class SessionCache: Sendable {
    private struct Entry { let session: WebSessionReply; let until: Double }
    private let entries = Mutex<[String: Entry]>([:])
    let ttl: Double

    init(ttl: Double) { self.ttl = ttl }

    func get(_ id: String) -> WebSessionReply? {
        let now = Date().timeIntervalSince1970
        return entries.withLock { $0[id].flatMap { $0.until > now ? $0.session : nil } }
    }

    func put(_ id: String, _ session: WebSessionReply) {
        guard ttl > 0 else { return }
        let until = Date().timeIntervalSince1970 + ttl
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[id] = Entry(session: session, until: until)
        }
    }

    func remove(_ id: String) { _ = entries.withLock { $0.removeValue(forKey: id) } }
}
