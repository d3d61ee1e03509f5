import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Utilisation history through the API and GraphQL live_stat in Backend.AI's shape.
@Suite struct UtilisationRouteTests {
    @Test
    func liveStatHasBackendAIsShape() throws {
        let sample = UtilisationSample(at: 0, cpuPercent: 150, memoryBytes: 512 << 20, memoryCapacityBytes: 1 << 30, ioReadBytes: 7,
                                       cpuUsedNanoseconds: 2_500_000_000, accelerators: ["cuda.util": [30, 100]])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(ManagerAPI.liveStat(sample, cpuCapacity: 200).utf8)) as? [String: [String: Any]])
        #expect(object["cpu_util"]?["current"] as? String == "150" && object["cpu_util"]?["pct"] as? String == "75")
        #expect(object["cpu_util"]?["unit_hint"] as? String == "percent")
        #expect(object["mem"]?["current"] as? String == "\(512 << 20)" && object["mem"]?["pct"] as? String == "50")
        #expect(object["cpu_used"]?["current"] as? String == "2500" && object["cpu_used"]?["unit_hint"] as? String == "msec")
        #expect(object["io_read"]?["current"] as? String == "7" && object["io_read"]?["pct"] is NSNull)
        #expect(object["cuda.util"]?["pct"] as? String == "30")
    }

    @Test
    func agentHistoryAndLiveStatAreServed() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-u", cpu: 4))
        let now = Clock.nowMicros()
        try store.recordUtilisation(agent: "node-u", capacityMemory: 1 << 30, kernels: [], measures: [], now: now - 10_000_000)
        try store.recordUtilisation(agent: "node-u", capacityMemory: 1 << 30, kernels: [], measures: [], now: now)
        try await managerApp(store).test(.router) { client in
            let path = "/admin/agents/node-u/utilisation"
            let headers = try SignedAPI.headers(method: .get, path: path, accessKey: admin.accessKey, secretKey: admin.secretKey)
            try await client.execute(uri: path, method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                let body = try jsonObject(response.body)
                #expect((body["samples"] as? [Any])?.count == 2, "\(body)")
            }
            let missing = "/admin/agents/nobody/utilisation"
            let missingHeaders = try SignedAPI.headers(method: .get, path: missing, accessKey: admin.accessKey, secretKey: admin.secretKey)
            try await client.execute(uri: missing, method: .get, headers: missingHeaders) { #expect($0.status == .notFound) }
            let query = #"{"query": "{ agent_list(limit: 10, offset: 0) { items { id live_stat } } }"}"#
            let gqlHeaders = try SignedAPI.headers(method: .post, path: "/admin/gql", accessKey: admin.accessKey, secretKey: admin.secretKey,
                                                   contentType: "application/json")
            try await client.execute(uri: "/admin/gql", method: .post, headers: gqlHeaders, body: ByteBuffer(string: query)) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("cpu_util") && text.contains("unit_hint"), "\(text)")
                // The official client's `admin agent info` reads node and devices (one cpu_util per core).
                let data = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                let items = ((data["data"] as? [String: Any])?["agent_list"] as? [String: Any])?["items"] as? [[String: Any]] ?? []
                let stat = try #require(items.first?["live_stat"] as? String)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(stat.utf8)) as? [String: [String: Any]])
                #expect(object["node"]?["mem"] != nil && (object["devices"]?["cpu_util"] as? [String: Any])?.count == 4, "\(stat)")
            }
        }
    }
}
