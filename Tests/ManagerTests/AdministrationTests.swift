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

/// What `admin keypair-resource-policy`, `admin scaling-group`, `admin manager` and
/// `admin announcement` change, and who may change it.
@Suite struct AdministrationTests {
    static func rest(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ path: String, body: String? = nil,
                     keys: (String, String)) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: path, method: method, headers: try SignedAPI.headers(method: method, path: path, accessKey: keys.0, secretKey: keys.1),
                                 body: body.map { ByteBuffer(string: $0) }) { ($0.status, String(buffer: $0.body)) }
    }

    @Test(arguments: Backend.allCases)
    func policiesAreCreatedChangedAndDeletedOnlyWhenUnused(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let root = (admin.accessKey, admin.secretKey)
        let create = "mutation($name: String!, $input: CreateKeyPairResourcePolicyInput!) { create_keypair_resource_policy(name: $name, props: $input) { ok msg resource_policy { name max_containers_per_session } } }"
        let modify = "mutation($name: String!, $input: ModifyKeyPairResourcePolicyInput!) { modify_keypair_resource_policy(name: $name, props: $input) { ok msg } }"
        try await app.test(.router) { client in
            let (_, created) = try await GraphQLTests.query(client, create, variables: #"{"name": "small", "input": {"total_resource_slots": "{\"cpu\": \"2\"}", "max_containers_per_session": 2, "default_for_unspecified": "LIMITED", "max_session_lifetime": 0, "max_concurrent_sessions": 2, "idle_timeout": 0}}"#, keys: root)
            #expect(created.contains("\"ok\": true") && created.contains("\"max_containers_per_session\": 2"), "\(created)")
            let (_, bad) = try await GraphQLTests.query(client, create, variables: #"{"name": "bad", "input": {"default_for_unspecified": "SOMETIMES"}}"#, keys: root)
            #expect(bad.contains("\"ok\": false") && bad.contains("UNLIMITED or LIMITED"), "\(bad)")
            let (_, changed) = try await GraphQLTests.query(client, modify, variables: #"{"name": "small", "input": {"idle_timeout": 600}}"#, keys: root)
            #expect(changed.contains("\"ok\": true"), "\(changed)")
        }
        let policy = try #require(try store.resourcePolicy(scope: .keypair, name: "small"))
        #expect(policy.idleTimeout == 600 && policy.maxConcurrentSessions == 2 && policy.defaultForUnspecified == "LIMITED",
                "a modification keeps what it does not name: \(policy)")
        let user = try store.createUser(email: "p@example.com", password: "policy-password", passwordRounds: 1000)
        let keys = try store.createKeypair(userID: user.id, resourcePolicy: "small")
        try await app.test(.router) { client in
            let (_, denied) = try await GraphQLTests.query(client, modify, variables: #"{"name": "small", "input": {"idle_timeout": 1}}"#, keys: (keys.accessKey, keys.secretKey))
            #expect(denied.contains("superadmin"), "\(denied)")
            let (_, held) = try await GraphQLTests.query(client, "mutation { delete_keypair_resource_policy(name: \"small\") { ok msg } }", keys: root)
            #expect(held.contains("\"ok\": false") && held.contains("1 keypairs still use"), "\(held)")
        }
        try store.deleteKeypair(keys.accessKey)
        try await app.test(.router) { client in
            let (_, deleted) = try await GraphQLTests.query(client, "mutation { delete_keypair_resource_policy(name: \"small\") { ok msg } }", keys: root)
            #expect(deleted.contains("\"ok\": true"), "\(deleted)")
        }
        #expect(try store.resourcePolicy(scope: .keypair, name: "small") == nil)
    }

    @Test(arguments: Backend.allCases)
    func resourceGroupsOpenToDomainsAndProjectsAndAreDeletedOnlyWhenIdle(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let root = (admin.accessKey, admin.secretKey)
        let user = try store.createUser(email: "g@example.com", password: "group-password", projects: [], passwordRounds: 1000)
        try await app.test(.router) { client in
            let create = "mutation($name: String!, $input: CreateScalingGroupInput!) { create_scaling_group(name: $name, props: $input) { ok msg scaling_group { name is_public scheduler_opts } } }"
            let (_, created) = try await GraphQLTests.query(client, create, variables: #"{"name": "gpu", "input": {"description": "gpus", "is_public": false, "driver": "static", "scheduler": "fifo", "scheduler_opts": "{\"x\": 1}"}}"#, keys: root)
            #expect(created.contains("\"ok\": true") && created.contains("\"is_public\": false"), "\(created)")
            let (_, badDriver) = try await GraphQLTests.query(client, create, variables: #"{"name": "gpu2", "input": {"driver": "aws"}}"#, keys: root)
            #expect(badDriver.contains("\"ok\": false") && badDriver.contains("static"), "\(badDriver)")
            let (_, badScheduler) = try await GraphQLTests.query(client, create, variables: #"{"name": "gpu3", "input": {"scheduler": "no-such-plugin"}}"#, keys: root)
            #expect(badScheduler.contains("\"ok\": false") && badScheduler.contains("no-such-plugin"), "\(badScheduler)")
        }
        // The user is in no project: only a domain association opens the group to them.
        #expect(try store.resourceGroups(forUser: user.id) == ["default"], "the default domain may use the default group")
        try await app.test(.router) { client in
            let (_, linked) = try await GraphQLTests.query(client, "mutation { associate_scaling_group_with_domain(scaling_group: \"gpu\", domain: \"default\") { ok msg } }", keys: root)
            #expect(linked.contains("\"ok\": true"), "\(linked)")
        }
        #expect(try store.resourceGroups(forUser: user.id) == ["default", "gpu"])
        let project = try #require(try store.projects().first)
        try await app.test(.router) { client in
            let (_, unlinked) = try await GraphQLTests.query(client, "mutation { disassociate_scaling_group_with_domain(scaling_group: \"gpu\", domain: \"default\") { ok msg } }", keys: root)
            #expect(unlinked.contains("\"ok\": true"), "\(unlinked)")
            let (_, toProject) = try await GraphQLTests.query(client, "mutation($g: UUID!) { associate_scaling_group_with_user_group(scaling_group: \"gpu\", user_group: $g) { ok msg } }", variables: "{\"g\": \"\(project.id)\"}", keys: root)
            #expect(toProject.contains("\"ok\": true"), "\(toProject)")
        }
        #expect(try store.resourceGroups(forUser: user.id) == ["default"])
        #expect(try store.resourceGroups(ofProject: project.id) == ["default", "gpu"])
        // An agent serving the group holds it.
        _ = try store.recordHeartbeat(AgentHeartbeat(agentID: "i-gpu", address: "http://127.0.0.1:1", resourceGroup: "gpu", architecture: "x86_64",
                                                     version: "t", capacity: ResourceSlots(["cpu": 4]), slotTypes: ["cpu": "count"]))
        try await app.test(.router) { client in
            let (_, held) = try await GraphQLTests.query(client, "mutation { delete_scaling_group(name: \"gpu\") { ok msg } }", keys: root)
            #expect(held.contains("\"ok\": false") && held.contains("1 agent(s) still serve"), "\(held)")
        }
    }

    @Test func aFrozenClusterRefusesNewWorkAndTheAnnouncementIsShared() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let root = (admin.accessKey, admin.secretKey)
        let user = try store.createUser(email: "f@example.com", password: "freeze-password", passwordRounds: 1000)
        let keys = try store.createKeypair(userID: user.id)
        let userKeys = (keys.accessKey, keys.secretKey)
        try await app.test(.router) { client in
            let (denied, _) = try await Self.rest(client, .put, "/manager/status", body: #"{"status": "frozen"}"#, keys: userKeys)
            #expect(denied == .forbidden)
            let (frozen, _) = try await Self.rest(client, .put, "/manager/status", body: #"{"status": "frozen"}"#, keys: root)
            #expect(frozen == .noContent)
            let (status, text) = try await Self.rest(client, .get, "/manager/status", keys: root)
            #expect(status == .ok && text.contains("\"status\":\"frozen\"") && text.contains("\"active_sessions\":0"), "\(text)")
            let session = #"{"name": "during-freeze", "image": "py", "enqueueOnly": true, "config": {"resources": {"cpu": "1"}}}"#
            let (refused, why) = try await Self.rest(client, .post, "/session", body: session, keys: userKeys)
            #expect(refused == .serviceUnavailable && why.contains("server-frozen") && why.contains("unfreeze"), "\(refused) \(why)")
            let (unfrozen, _) = try await Self.rest(client, .put, "/manager/status", body: #"{"status": "running"}"#, keys: root)
            #expect(unfrozen == .noContent)
            let (accepted, _) = try await Self.rest(client, .post, "/session", body: session, keys: userKeys)
            #expect(accepted == .created)

            let (posted, _) = try await Self.rest(client, .post, "/manager/announcement", body: #"{"enabled": true, "message": "maintenance at noon"}"#, keys: root)
            #expect(posted == .noContent)
            let (userPost, _) = try await Self.rest(client, .post, "/manager/announcement", body: #"{"enabled": false}"#, keys: userKeys)
            #expect(userPost == .forbidden)
            let (_, shown) = try await Self.rest(client, .get, "/manager/announcement", keys: userKeys)
            #expect(shown.contains("\"enabled\":true") && shown.contains("maintenance at noon"), "\(shown)")
        }
        // Another manager on the same database sees the same announcement.
        try await managerApp(store).test(.router) { client in
            let (_, shown) = try await Self.rest(client, .get, "/manager/announcement", keys: userKeys)
            #expect(shown.contains("maintenance at noon"), "\(shown)")
        }
    }
}

/// `server-logs list`: what the manager failed with lands in the error log; users see
/// their own entries, admins their domain's.
@Suite struct ErrorLogTests {
    struct Boom: Error {}

    @Test func serverErrorsAreLoggedAndListedByRole() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        _ = db
        defer { store.close() }
        // The middleware records an unexpected failure as a 500 entry.
        let middleware = ProblemMiddleware<BasicRequestContext> { entry in _ = try? await store.run { try $0.addErrorLog(entry) } }
        let router = Router()
        router.add(middleware: middleware)
        router.get("/boom") { _, _ -> Response in throw Boom() }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { #expect($0.status == .internalServerError) }
        }
        let (logged, total) = try store.errorLogs(userID: nil, domain: nil, limit: 10, offset: 0, markRead: false)
        #expect(total == 1 && logged.first?.requestURL == "/boom" && logged.first?.requestStatus == 500 && logged.first?.source == "manager")

        let app = try managerApp(store)
        let alice = try store.createUser(email: "alice@example.com", password: "alice-password", passwordRounds: 1000)
        let keys = try store.createKeypair(userID: alice.id)
        let a = (keys.accessKey, keys.secretKey), root = (admin.accessKey, admin.secretKey)
        try await app.test(.router) { client in
            let (posted, _) = try await AdministrationTests.rest(client, .post, "/logs/error",
                                                                body: #"{"severity": "error", "source": "client", "message": "upload failed"}"#, keys: a)
            #expect(posted == .ok)
            let (_, own) = try await AdministrationTests.rest(client, .get, "/logs/error?mark_read=true", keys: a)
            #expect(own.contains("upload failed") && !own.contains("/boom") && own.contains("\"count\":1"), "users see their own: \(own)")
            let (_, all) = try await AdministrationTests.rest(client, .get, "/logs/error", keys: root)
            #expect(all.contains("upload failed") && all.contains("/boom") && all.contains("\"count\":2"), "\(all)")
            let (badPage, _) = try await AdministrationTests.rest(client, .get, "/logs/error?page_size=0", keys: a)
            #expect(badPage == .badRequest)
        }
        let (mine, _) = try store.errorLogs(userID: alice.id, domain: nil, limit: 10, offset: 0, markRead: false)
        #expect(mine.first?.isRead == true, "mark_read marks what was listed")
    }
}

/// `admin resource usage-per-month` / `usage-per-period`: kernels that lived in the period,
/// their allocation, and what their agent last reported, per project.
@Suite struct UsageTests {
    @Test(arguments: Backend.allCases)
    func usageCountsKernelsOfThePeriodWithTheirLastStatistics(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-u", cpu: 4))
        let session = try store.createSession(try StoreFixtures.sessionSpec(store, admin, name: "usage-s", cpu: 2))
        let kernel = try #require(try store.kernelIDs(session: session.id).first)
        #expect(try store.reserve(session: session.id, placements: [KernelPlacement(kernelID: kernel, agentID: "node-u")]))
        var beat = StoreFixtures.heartbeat("node-u", cpu: 4)
        beat.kernelStats = [KernelStats(kernelID: kernel, cpuUsedNanoseconds: 90_000_000_000, memoryBytes: 300 << 20, memoryLimitBytes: 1 << 30,
                                        ioReadBytes: 4096, ioWriteBytes: 8192, networkRxBytes: 0, networkTxBytes: 0)]
        _ = try store.recordHeartbeat(beat)
        // Another agent cannot write statistics onto a kernel it does not run.
        var stray = StoreFixtures.heartbeat("node-x", cpu: 4)
        stray.kernelStats = [KernelStats(kernelID: kernel, cpuUsedNanoseconds: 1, memoryBytes: 1, memoryLimitBytes: 1, ioReadBytes: 1, ioWriteBytes: 1,
                                         networkRxBytes: 0, networkTxBytes: 0)]
        _ = try store.recordHeartbeat(stray)
        _ = try store.transition(session: session.id, to: .terminated)
        let project = try #require(try store.projects().first)
        let app = try managerApp(store)
        let month = String(CivilTime.iso8601(micros: Clock.nowMicros()).prefix(7)).replacingOccurrences(of: "-", with: "")
        try await app.test(.router) { client in
            let body = "{\"month\": \"\(month)\", \"group_ids\": [\"\(project.id)\"]}"
            let (status, text) = try await AdministrationTests.rest(client, .get, "/resource/usage/month", body: body, keys: (admin.accessKey, admin.secretKey))
            #expect(status == .ok, "\(text)")
            let reports = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
            let report = try #require(reports.first)
            #expect(report["g_name"] as? String == "default" && (report["g_cpu_used"] as? Double) == 90 && (report["g_io_write"] as? Int) == 8192, "\(report)")
            let infos = try #require(report["c_infos"] as? [[String: Any]])
            #expect(infos.count == 1 && infos.first?["name"] as? String == "usage-s" && (infos.first?["smp"] as? Double) == 2, "\(infos)")
            #expect((infos.first?["mem_used"] as? Int) == 300 << 20)
            let (badMonth, _) = try await AdministrationTests.rest(client, .get, "/resource/usage/month", body: #"{"month": "2026-13"}"#,
                                                                   keys: (admin.accessKey, admin.secretKey))
            #expect(badMonth == .badRequest)
            // A period before the kernel existed has none.
            let (_, empty) = try await AdministrationTests.rest(client, .get, "/resource/usage/period",
                                                                body: "{\"group_id\": \"\(project.id)\", \"start_date\": \"20200101\", \"end_date\": \"20200102\"}",
                                                                keys: (admin.accessKey, admin.secretKey))
            #expect(empty.contains("\"c_infos\":[]"), "\(empty)")
        }
    }
}

/// The keypair policy's `max_containers_per_session` and `max_session_lifetime` hold.
@Suite struct PolicyLimitTests {
    @Test(arguments: Backend.allCases)
    func clusterSizeAndLifetimeAreEnforced(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        _ = db
        defer { store.close() }
        var policy = try #require(try store.resourcePolicy(scope: .keypair, name: "default"))
        policy.maxContainersPerSession = 2
        policy.maxSessionLifetime = 60
        try store.upsertResourcePolicy(policy)
        let app = try managerApp(store)
        try await app.test(.router) { client in
            let big = #"{"name": "too-big", "image": "py", "enqueueOnly": true, "clusterSize": 3, "config": {"resources": {"cpu": "1"}}}"#
            let (refused, why) = try await AdministrationTests.rest(client, .post, "/session", body: big, keys: (admin.accessKey, admin.secretKey))
            #expect(refused == .badRequest && why.contains("max_containers_per_session 2"), "\(why)")
            let fits = #"{"name": "fits", "image": "py", "enqueueOnly": true, "clusterSize": 2, "config": {"resources": {"cpu": "1"}}}"#
            let (accepted, _) = try await AdministrationTests.rest(client, .post, "/session", body: fits, keys: (admin.accessKey, admin.secretKey))
            #expect(accepted == .created)
        }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-l", cpu: 4))
        let session = try store.createSession(try StoreFixtures.sessionSpec(store, admin, name: "old-one"))
        let kernel = try #require(try store.kernelIDs(session: session.id).first)
        #expect(try store.reserve(session: session.id, placements: [KernelPlacement(kernelID: kernel, agentID: "node-l")]))
        #expect(try store.expiredSessions(now: session.createdAt + 30_000_000).isEmpty, "30 s old: within the 60 s lifetime")
        let expired = try store.expiredSessions(now: session.createdAt + 61_000_000)
        #expect(expired.map(\.id) == [session.id] && expired.first?.limit == 60)
    }
}
