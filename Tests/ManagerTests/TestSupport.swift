import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Manager
import StateStore
import Testing
import TestSupport

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
