import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Manager
import StateStore
import Testing
import TestSupport

/// Headers of a request signed like the official client signs it.
func signedHeaders(method: HTTPRequest.Method, path: String, accessKey: String, secretKey: String,
                   date: Date = Date(), host: String = "localhost", contentType: String? = "application/json",
                   version: String = "v7.20230615", domain: String? = nil) throws -> HTTPFields {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(secondsFromGMT: 0)
    formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'+00:00'"
    let dateText = formatter.string(from: date)
    let input = SignatureInput(method: method.rawValue, requestTarget: path, date: dateText, host: host, contentType: contentType, apiVersion: version)
    var headers: HTTPFields = [
        .date: dateText,
        HTTPField.Name("X-BackendAI-Version")!: version,
        .authorization: try RequestSigner.sign(accessKey: accessKey, secretKey: secretKey, input: input),
    ]
    if let contentType { headers[.contentType] = contentType }
    if let domain { headers[HTTPField.Name("X-BackendAI-Domain")!] = domain }
    return headers
}

/// A manager router over `store`, for `.router` tests.
func managerApp(_ store: StateStore, configure: (inout ManagerConfig) -> Void = { _ in }) throws -> some ApplicationProtocol {
    var config = ManagerConfig()
    config.keypairCacheTTL = 0
    configure(&config)
    let server = try ManagerServer(store: store, config: config, clusterSecret: "test-cluster-secret")
    return Application(router: server.makeRouter())
}

/// Decodes a JSON object response.
func jsonObject(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
}
