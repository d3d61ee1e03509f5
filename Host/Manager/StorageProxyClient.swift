import AsyncHTTPClient
import ClusterProtocol
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1

/// Calls storage proxies' manager API (`StorageProxyAPI`, shared secret) with the typed
/// `ClusterProtocol` messages, turning their refusals into API errors that keep the proxy's
/// message.
struct StorageProxyClient: Sendable {
    let proxies: [String: StorageProxyLink]

    func link(_ name: String) throws -> StorageProxyLink {
        guard let link = proxies[name] else {
            throw APIError.invalidParams("no storage proxy named '\(name)' is configured ([storage-proxies.\(name)] in the manager's config); known: \(proxies.keys.sorted().joined(separator: ", "))")
        }
        return link
    }

    /// Sends `message` and decodes the reply as `Reply`.
    func call<Reply: Decodable>(_ proxy: String, _ call: StorageProxyAPI.Call, _ message: some Encodable, reply: Reply.Type) async throws -> Reply {
        let data = try await send(proxy, call, body: try JSONEncoder().encode(message))
        return try decode(Reply.self, data, proxy: proxy, call: call)
    }

    /// Sends `message` for its effect; the reply's body is not needed.
    func call(_ proxy: String, _ call: StorageProxyAPI.Call, _ message: some Encodable) async throws {
        _ = try await send(proxy, call, body: try JSONEncoder().encode(message))
    }

    /// The proxy's volumes.
    func volumes(_ proxy: String) async throws -> VolumeList {
        try decode(VolumeList.self, try await send(proxy, .volumes, body: nil), proxy: proxy, call: .volumes)
    }

    func decode<Reply: Decodable>(_ type: Reply.Type, _ data: Data, proxy: String, call: StorageProxyAPI.Call) throws -> Reply {
        do {
            return try JSONDecoder().decode(Reply.self, from: data)
        } catch {
            throw APIError(.badGateway, "storage-proxy-error", "The storage proxy gave a reply the manager cannot read.",
                           "storage proxy '\(proxy)' answered \(call.path) with something other than \(Reply.self): \(error)")
        }
    }

    /// POSTs `body` (or GETs, without one) and returns the reply's bytes.
    func send(_ proxy: String, _ call: StorageProxyAPI.Call, body: Data?) async throws -> Data {
        let link = try link(proxy)
        var request = HTTPClientRequest(url: link.url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + call.path)
        request.method = body == nil ? .GET : .POST
        request.headers.add(name: StorageProxyAPI.secretHeader, value: link.secret)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        } catch {
            throw APIError(.serviceUnavailable, "storage-proxy-unavailable", "The storage proxy cannot be reached.", "storage proxy '\(proxy)' at \(link.url): \(error)")
        }
        let data = Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)
        guard response.status.code < 300 else {
            let message = (try? JSONDecoder().decode(StorageErrorReply.self, from: data))?.error ?? String(decoding: data, as: UTF8.self)
            let status = HTTPResponse.Status(code: Int(response.status.code))
            let slug = switch response.status.code {
            case 404: "vfolder-not-found"
            case 409: "vfolder-already-exists"
            case 413: "vfolder-quota-exceeded"
            case 400: "invalid-api-params"
            default: "storage-proxy-error"
            }
            throw APIError(status, slug, "The storage proxy refused the request.", message)
        }
        return data
    }
}
