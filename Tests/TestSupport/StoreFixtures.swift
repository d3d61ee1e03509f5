import ClusterProtocol
import Foundation
import StateStore
import Testing

/// The two state-store backends every store-backed test runs against.
public enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite, postgresql
    public var description: String { rawValue }
}

/// A throwaway database: a SQLite file in a temporary folder, or a fresh PostgreSQL
/// database on the server named by HANGAR_TEST_POSTGRES_URL (Tools/scripts/test.sh and
/// .ci/run start one and set it). Dropped when released.
public final class TestDatabase: @unchecked Sendable {
    public let location: DatabaseLocation
    private let cleanup: () -> Void

    public init(_ backend: Backend) throws {
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

    /// Opens (and migrates) the store on this database.
    public func store() throws -> StateStore { try StateStore(location: location) }
}

/// A store with the bootstrap accounts, using cheap password hashing.
public func bootstrappedStore(_ backend: Backend) throws -> (TestDatabase, StateStore, StateStore.BootstrapResult) {
    let db = try TestDatabase(backend)
    let store = try db.store()
    let admin = try #require(try store.bootstrap(password: "admin-password", passwordRounds: 1000))
    return (db, store, admin)
}

/// Agents and sessions as scheduling and store tests make them.
public enum StoreFixtures {
    /// A heartbeat from an x86_64 agent with `cpu` cores and 100 GiB of memory.
    public static func heartbeat(_ id: String, cpu: Decimal, group: String = "default") -> AgentHeartbeat {
        AgentHeartbeat(agentID: id, address: "http://10.1.0.1:6001", resourceGroup: group, architecture: "x86_64", version: "0.1.0",
                       capacity: ResourceSlots(["cpu": cpu, "mem": Decimal(100) * Decimal(1 << 30)]), slotTypes: ["cpu": "count", "mem": "bytes"])
    }

    /// A session of the bootstrap admin (or `accessKey`) asking for `cpu` cores and 1 GiB.
    public static func sessionSpec(_ store: StateStore, _ admin: StateStore.BootstrapResult, name: String, cpu: Decimal = 1,
                                   accessKey: String? = nil) throws -> SessionSpec {
        let user = try #require(try store.user(email: admin.email))
        let project = try #require(try store.projects().first)
        return SessionSpec(name: name, accessKey: accessKey ?? admin.accessKey, userID: user.id, projectID: project.id, image: "hangar/python:3.11-bookworm",
                           requested: ResourceSlots(["cpu": cpu, "mem": Decimal(1 << 30)]))
    }

    /// Each agent's occupied cores.
    public static func occupiedCPU(_ store: StateStore) throws -> [String: Decimal] {
        Dictionary(uniqueKeysWithValues: try store.agents().map { ($0.id, $0.occupied["cpu"]) })
    }

    /// A heartbeat carrying a GPU device, a plugin report and a running kernel.
    public static func gpuHeartbeat(_ id: String, cpu: Decimal = 8, group: String = "default") -> AgentHeartbeat {
        AgentHeartbeat(agentID: id, address: "http://10.0.0.\(abs(id.hashValue) % 200 + 1):6001", resourceGroup: group, architecture: "x86_64",
                       version: "0.1.0", capacity: ResourceSlots(["cpu": cpu, "mem": 17_179_869_184, "cuda.shares": Decimal(string: "2.5")!]),
                       slotTypes: ["cpu": "count", "mem": "bytes", "cuda.shares": "count"],
                       devices: [DeviceReport(plugin: "cuda", id: "0", model: "H200", memoryBytes: 1 << 30, processingUnits: 132, numaNode: 1, health: "healthy")],
                       plugins: [PluginReport(name: "mock", version: "1.0.0", deviceKey: "cuda")], runningKernels: ["k1"])
    }
}
