import AsyncHTTPClient
import HTTPTypes
import Foundation
import NIOCore
import NIOHTTP1

/// Calls storage proxies' manager API (shared secret), turning their refusals into API
/// errors that keep the proxy's message.
struct StorageProxyClient: Sendable {
    let proxies: [String: StorageProxyLink]

    func link(_ name: String) throws -> StorageProxyLink {
        guard let link = proxies[name] else {
            throw APIError.invalidParams("no storage proxy named '\(name)' is configured ([storage-proxies.\(name)] in the manager's config); known: \(proxies.keys.sorted().joined(separator: ", "))")
        }
        return link
    }

    /// POSTs (or GETs, without a body) to `/manager/<path>` and returns the JSON reply.
    @discardableResult
    func call(_ proxy: String, _ path: String, _ body: [String: Any]? = nil) async throws -> [String: Any] {
        let link = try link(proxy)
        var request = HTTPClientRequest(url: link.url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/manager/" + path)
        request.method = body == nil ? .GET : .POST
        request.headers.add(name: "X-Hangar-Storage-Secret", value: link.secret)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        } catch {
            throw APIError(.serviceUnavailable, "storage-proxy-unavailable", "The storage proxy cannot be reached.", "storage proxy '\(proxy)' at \(link.url): \(error)")
        }
        let data = Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)
        let object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        guard response.status.code < 300 else {
            let message = object["error"] as? String ?? String(decoding: data, as: UTF8.self)
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
        return object
    }
}
