import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Manager
import StateStore
import Testing

/// The two state-store backends every manager test runs against.
enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite, postgresql
    var description: String { rawValue }
}

/// A throwaway database: a SQLite file in a temporary folder, or a fresh PostgreSQL
/// database on the server named by HANGAR_TEST_POSTGRES_URL (Tools/scripts/test.sh and
/// .ci/run start one and set it).
final class TestDatabase: @unchecked Sendable {
    let location: DatabaseLocation
    private let cleanup: () -> Void

    init(_ backend: Backend) throws {
        switch backend {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hangar-store-\(UUID().uuidString)").path
            location = .sqlite(path: dir + "/manager.db")
            cleanup = { try? FileManager.default.removeItem(atPath: dir) }
        case .postgresql:
            guard let base = ProcessInfo.processInfo.environment["HANGAR_TEST_POSTGRES_URL"] else {
                throw StoreError(.configuration, "HANGAR_TEST_POSTGRES_URL is not set: run the tests through Tools/scripts/test.sh, which starts a throwaway PostgreSQL, or point it at one (postgresql://user@127.0.0.1:port/postgres)")
            }
            let name = "hangar_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            let admin = try PostgresDatabase(url: base, maxConnections: 1)
            try admin.withConnection { try $0.execute("CREATE DATABASE \(name)") }
            let url = base.replacingOccurrences(of: #"/[^/?]*(\?|$)"#, with: "/\(name)$1", options: .regularExpression)
            location = .postgresql(url: url)
            cleanup = {
                _ = try? admin.withConnection { try $0.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
                admin.close()
            }
        }
    }

    deinit { cleanup() }

    func store() throws -> StateStore { try StateStore(location: location) }
}

/// A store with the bootstrap accounts, using cheap password hashing.
func bootstrappedStore(_ backend: Backend) throws -> (TestDatabase, StateStore, StateStore.BootstrapResult) {
    let db = try TestDatabase(backend)
    let store = try db.store()
    let admin = try #require(try store.bootstrap(password: "admin-password", passwordRounds: 1000))
    return (db, store, admin)
}

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
func managerApp(_ store: StateStore, configure: (inout ManagerConfig) -> Void = { _ in }) -> some ApplicationProtocol {
    var config = ManagerConfig()
    config.keypairCacheTTL = 0
    configure(&config)
    let server = ManagerServer(store: store, config: config, clusterSecret: "test-cluster-secret")
    return Application(router: server.makeRouter())
}

/// Decodes a JSON object response.
func jsonObject(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
}
