import ClusterProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
@testable import Manager
import PluginHost
import StateStore
import Synchronization
import Testing
import TestSupport

/// The leader's reconciliation: what a manager dying half-way leaves behind, containers of
/// ended sessions, and running sessions whose kernel is gone — each repaired once, against an
/// agent (a recording stand-in on loopback) that sees the removals.
@Suite struct ReconciliationTests {
    @Test(arguments: Backend.allCases)
    func everyDifferenceIsRepairedOnce(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let removed = Mutex<[String]>([])
        let router = Router()
        router.delete("/rpc/kernels/:id") { _, context in
            let id = try context.parameters.require("id")
            removed.withLock { $0.append(id) }
            return Response(status: .noContent)
        }
        let agentApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await agentApp.test(.live) { client in
            let address = "http://127.0.0.1:\(try #require(client.port))"
            let now = Clock.nowMicros()
            func ago(_ seconds: Int64) -> Int64 { now - seconds * 1_000_000 }
            _ = try store.recordHeartbeat({ var hb = StoreFixtures.heartbeat("node-r", cpu: 8); hb.address = address; return hb }())
            /// A session of one kernel on node-r, moved through `path` with its last change `age` seconds ago.
            func session(_ name: String, _ path: [SessionStatus], age: Int64) throws -> (id: String, kernel: String) {
                let created = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: name))
                let kernel = try #require(try store.kernels(session: created.id).first).id
                #expect(try store.reserve(session: created.id, placements: [KernelPlacement(kernelID: kernel, agentID: "node-r")], now: ago(age + 1)))
                for status in path { _ = try store.transition(session: created.id, to: status, reason: "test", now: ago(age)) }
                return (created.id, kernel)
            }
            let ending = try session("stuck-ending", [.creating, .running, .terminating], age: 300)
            let starting = try session("stuck-starting", [.creating], age: 2000)
            let reserved = try session("stuck-reserved", [], age: 120)
            let busy = try session("slow-start", [], age: 120)
            let gone = try session("gone", [.creating, .running], age: 100)
            let fine = try session("fine", [.creating, .running], age: 100)
            let young = try session("young-ending", [.creating, .running, .terminating], age: 5)
            let ended = try session("ended", [.creating, .running, .terminated], age: 50)
            // The agent runs `fine`, `young`, a kernel of an ended session and one nobody knows — not `gone`.
            _ = try store.recordHeartbeat({
                var hb = StoreFixtures.heartbeat("node-r", cpu: 8)
                hb.address = address
                hb.runningKernels = [fine.kernel, young.kernel, ended.kernel, "k-nobody-knows"]
                return hb
            }())

            let lifecycle = SessionLifecycle(store: store, plugins: try PluginHost(searchPaths: []), clusterSecret: "test-cluster-secret")
            // One this manager is still starting (a long pull) is not started a second time.
            lifecycle.startsInFlight.withLock { _ = $0.insert(busy.id) }
            let first = await lifecycle.reconcile()
            #expect(first.finishedTerminations == 1 && first.failedStarts == 1 && first.restartedSchedules == 1, "\(first)")
            #expect(first.orphanKernels == 2 && first.vanishedKernels == 0, "a missing kernel waits for a second look: \(first)")
            #expect(try store.session(id: ending.id)?.status == .terminated)
            #expect(try store.session(id: ending.id)?.statusInfo.contains("ended by reconciliation: it was TERMINATING for 300 s") == true)
            #expect(try store.session(id: starting.id)?.status == .error)
            #expect(try store.session(id: starting.id)?.statusInfo.contains("CREATING for 2000 s") == true)
            // Started again: the stand-in agent cannot create kernels, so the start fails with the agent's answer.
            #expect(try store.session(id: reserved.id)?.status != .scheduled)
            #expect(try store.session(id: young.id)?.status == .terminating, "a session ending for 5 s is left alone")
            #expect(try store.session(id: busy.id)?.status == .scheduled, "a session this manager is starting is left alone")
            #expect(try store.session(id: fine.id)?.status == .running)
            #expect(Set(removed.withLock { $0 }).isSuperset(of: [ended.kernel, "k-nobody-knows", ending.kernel, starting.kernel]), "\(removed.withLock { $0 })")
            #expect(!removed.withLock { $0 }.contains(fine.kernel) && !removed.withLock { $0 }.contains(young.kernel))

            // Still missing at the next look: the running session whose kernel is gone ends in ERROR.
            let second = await lifecycle.reconcile()
            #expect(second.vanishedKernels == 1 && second.finishedTerminations == 0 && second.failedStarts == 0, "\(second)")
            #expect(try store.session(id: gone.id)?.status == .error)
            #expect(try store.session(id: gone.id)?.statusInfo.contains("no longer on agent node-r") == true)
            #expect(try store.session(id: fine.id)?.status == .running)
            // Only the live sessions hold slots now: fine, young and the one still starting (one core each).
            #expect(try store.agents().first { $0.id == "node-r" }?.occupied["cpu"] == 3)
            let third = await lifecycle.reconcile()
            #expect(third.total == 2, "the agent still reports the two orphans (it has not sent a new heartbeat): \(third)")
        }
    }
}
