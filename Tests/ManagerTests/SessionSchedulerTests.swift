import ClusterProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Manager
import PluginHost
import StateStore
import Testing
import TestSupport

/// The manager's scheduling pass over real plugins and both databases.
@Suite struct SessionSchedulerTests {
    static var binDir: String { PluginPaths.binDir }

    /// Passes that start together on a fresh scheduler all get live plugin instances (one
    /// pass used to release another's just-created ones: "the instance was already destroyed").
    @Test func concurrentFirstPassesShareLiveInstances() async throws {
        let (db, store, _) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        let group = try #require(try store.resourceGroups().first)
        let instances = try await withThrowingTaskGroup(of: PluginInstance.self) { tasks in
            for _ in 0..<16 { tasks.addTask { try scheduler.plugins(for: group).0.instance } }
            var all: [PluginInstance] = []
            for try await instance in tasks { all.append(instance) }
            return all
        }
        for instance in instances {
            #expect(throws: Never.self) { try instance.withHandle("test") { _ in () } }
        }
        #expect(Set(instances.map { ObjectIdentifier($0) }).count == 1, "every pass uses the one stored instance")
    }

    @Test(arguments: Backend.allCases)
    func fiftySessionsRaceForTenSlotsAndNeverOvercommit(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-a", cpu: 5))
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-b", cpu: 5))
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<50 { group.addTask { try await store.run { try $0.createSession(StoreFixtures.sessionSpec($0, admin, name: "s\(i)")).id } } }
            var ids: [String] = []
            for try await id in group { ids.append(id) }
            return ids
        }
        #expect(ids.count == 50)
        // Two "managers" running passes at the same time.
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let schedulers = [SessionScheduler(store: store, plugins: plugins), SessionScheduler(store: store, plugins: plugins)]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<4 { group.addTask { _ = try await store.run { _ in try schedulers[i % 2].schedule(resourceGroup: "default") } } }
            try await group.waitForAll()
        }
        var scheduled = try store.sessions(resourceGroup: "default", status: .scheduled)
        #expect(scheduled.count == 10)
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-a": 5, "node-b": 5])
        #expect(try store.sessions(resourceGroup: "default", status: .pending).allSatisfy { !$0.statusInfo.isEmpty }, "waiting sessions say why")
        // As sessions end, the rest start; each release happens exactly once.
        for s in scheduled.prefix(5) {
            #expect(try store.transition(session: s.id, to: .terminated, reason: "user destroyed it"))
            #expect(try !store.transition(session: s.id, to: .terminated), "a second release changes nothing")
        }
        let freed = try StoreFixtures.occupiedCPU(store).values.reduce(0, +)
        #expect(freed == 5)
        _ = try schedulers[0].schedule(resourceGroup: "default")
        scheduled = try store.sessions(resourceGroup: "default", status: .scheduled)
        #expect(scheduled.count == 10)
        #expect(try StoreFixtures.occupiedCPU(store).values.reduce(0, +) == 10)
        // Drain everything: occupancy returns exactly to zero.
        while true {
            let running = try store.sessions(resourceGroup: "default", status: .scheduled)
            if running.isEmpty { break }
            for s in running { try store.transition(session: s.id, to: .terminated) }
            _ = try schedulers[1].schedule(resourceGroup: "default")
        }
        #expect(try store.sessions(resourceGroup: "default", status: .pending).isEmpty)
        let finalAgents = try store.agents()
        #expect(finalAgents.allSatisfy { $0.occupied.amounts.isEmpty }, "\(finalAgents.map(\.occupied))")
        let history = try store.statusHistory(session: ids[0]).map(\.0)
        #expect(history.first == .pending && history.last == .terminated)
    }

    /// A session that waits for capacity says which slot, on which agent, and whose sessions
    /// hold it: the user's own by name, other users' only counted.
    @Test(arguments: Backend.allCases)
    func waitingSessionsSayWhatHoldsTheCapacity(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-w", cpu: 2))
        let scheduler = SessionScheduler(store: store, plugins: try PluginHost(searchPaths: [Self.binDir]))
        let holder = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "hold-a", cpu: 2))
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: holder.id)?.status == .scheduled)
        let mine = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "wait-b", cpu: 1))
        let other = try store.createUser(email: "other@example.com", password: "other-password", passwordRounds: 1000)
        let otherKey = try store.createKeypair(userID: other.id)
        let theirs = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "wait-c", cpu: 1, accessKey: otherKey.accessKey))
        _ = try scheduler.schedule(resourceGroup: "default")
        let mineReason = try store.session(id: mine.id)?.statusInfo ?? ""
        #expect(mineReason == "waiting for cpu: 2 of 2 on node-w are held by your session hold-a — `hangar session rm` one, or use --rm", "\(mineReason)")
        let theirReason = try store.session(id: theirs.id)?.statusInfo ?? ""
        #expect(theirReason == "waiting for cpu: 2 of 2 on node-w are in use by 1 other session; it starts when they end", "\(theirReason)")

        // The events stream says it too, once per reason, between enqueued and the end: the
        // session is cancelled only once the stream has said why it waits.
        try await managerApp(store).test(.live) { client in
            let base = "http://localhost:\(try #require(client.port))"
            let mineID = mine.id
            let text = try await SignedAPI.stream(base: base, path: "/events/session?sessionName=wait-b", accessKey: admin.accessKey,
                                                  secretKey: admin.secretKey) { soFar in
                if soFar.contains("event: session_waiting") { _ = try? store.transition(session: mineID, to: .cancelled, reason: "cancelled by the test") }
            }
            let names = text.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { $0.dropFirst(7) }
            #expect(names == ["session_enqueued", "session_waiting", "session_cancelled", "server_close"], "\(text)")
            #expect(text.contains("\"reason\":\"waiting for cpu: 2 of 2 on node-w are held by your session hold-a"), "\(text)")
        }
    }

    /// Every event of a session's stream carries an id; a client reconnecting with
    /// `Last-Event-ID` (to any manager: they all read the database) gets only what followed.
    @Test(arguments: Backend.allCases)
    func eventStreamsResumeAfterTheLastEventID(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-e", cpu: 2))
        let session = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "resume-me"))
        let kernel = try #require(try store.kernels(session: session.id).first)
        #expect(try store.reserve(session: session.id, placements: [KernelPlacement(kernelID: kernel.id, agentID: "node-e")]))
        for status in [SessionStatus.creating, .running, .terminated] { _ = try store.transition(session: session.id, to: status, reason: "test") }
        let path = "/events/session?sessionName=resume-me"
        func stream(_ last: String?) async throws -> [(id: String, name: String)] {
            var headers = try SignedAPI.headers(method: .get, path: path, accessKey: admin.accessKey, secretKey: admin.secretKey)
            if let last { headers[HTTPField.Name("Last-Event-ID")!] = last }
            let signed = headers
            let text = try await managerApp(store).test(.router) { client in
                try await client.execute(uri: path, method: .get, headers: signed) { String(buffer: $0.body) }
            }
            var out: [(String, String)] = []
            var id = ""
            for line in text.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { out.append((id, String(line.dropFirst(7)))); id = "" }
            }
            return out
        }
        let all = try await stream(nil)
        #expect(all.map(\.name) == ["session_enqueued", "session_scheduled", "kernel_creating", "kernel_started", "session_started",
                                    "session_terminated", "server_close"], "\(all)")
        #expect(all.map(\.id) == ["1-0", "2-0", "3-0", "4-0", "4-0", "5-0", ""], "\(all)")
        let resumed = try await stream("3-0")
        #expect(resumed.map(\.name) == ["kernel_started", "session_started", "session_terminated", "server_close"], "\(resumed)")
        let garbage = try await stream("not-an-id")
        #expect(garbage.count == all.count, "an id it cannot read replays everything")
    }

    @Test(arguments: Backend.allCases)
    func impossibleSessionsAreCancelledAndLimitedOnesWait(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-a", cpu: 8))
        let huge = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "huge", cpu: 64))
        var bigMemory = try StoreFixtures.sessionSpec(store, admin, name: "big-mem")
        bigMemory.requested["mem"] = Decimal(150) * Decimal(1 << 30) + Decimal(300 << 20)
        let tooMuchMemory = try store.createSession(bigMemory)
        var gpu = try StoreFixtures.sessionSpec(store, admin, name: "gpu")
        gpu.requested["cuda.device"] = 1
        let needsGPU = try store.createSession(gpu)
        try store.database.transaction { try $0.execute("UPDATE resource_policies SET max_concurrent_sessions = 1 WHERE scope = 'keypair'") }
        let first = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "first"))
        let second = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "second"))
        let decisions = try SessionScheduler(store: store, plugins: try PluginHost(searchPaths: [Self.binDir])).schedule(resourceGroup: "default")
        #expect(try store.session(id: huge.id)?.status == .cancelled)
        #expect(try store.session(id: huge.id)?.statusInfo.contains("the largest agent has 8;") == true)
        let memoryReason = try store.session(id: tooMuchMemory.id)?.statusInfo ?? ""
        #expect(memoryReason.contains("asks for 150.3 GiB of mem; the largest agent has 100 GiB"), "amounts a person reads: \(memoryReason)")
        #expect(try store.session(id: needsGPU.id)?.status == .cancelled)
        #expect(try store.session(id: needsGPU.id)?.statusInfo.contains("cuda.device") == true)
        #expect(try store.session(id: first.id)?.status == .scheduled, "FIFO: the older one first")
        let waiting = try #require(try store.session(id: second.id))
        #expect(waiting.status == .pending)
        #expect(waiting.statusInfo.contains("max_concurrent_sessions 1"))
        #expect(decisions.count == 5, "three impossible sessions cancelled, one scheduled, one waiting")
    }

    /// Backend.AI's `dependencies`: a session waits (saying for which sessions) until every
    /// session it depends on ended successfully; one whose dependency failed is cancelled
    /// naming it; a recursive destroy finds the dependents; recalculation repairs occupancy.
    @Test(arguments: Backend.allCases)
    func dependentSessionsWaitForSuccessAndFailedOnesAreCancelled(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-d", cpu: 8))
        let scheduler = SessionScheduler(store: store, plugins: try PluginHost(searchPaths: [Self.binDir]))
        let first = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "dep-first"))
        let doomed = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "dep-doomed"))
        var waiter = try StoreFixtures.sessionSpec(store, admin, name: "dep-waiter")
        waiter.dependsOn = [first.id]
        let waiting = try store.createSession(waiter)
        var loser = try StoreFixtures.sessionSpec(store, admin, name: "dep-loser")
        loser.dependsOn = [doomed.id, first.id]
        let losing = try store.createSession(loser)
        var unknown = try StoreFixtures.sessionSpec(store, admin, name: "dep-unknown")
        unknown.dependsOn = ["no-such-session"]
        #expect(throws: StoreError.self) { try store.createSession(unknown) }
        #expect(try store.sessions(resourceGroup: "default", status: .pending).count == 4, "a refused create leaves nothing behind")

        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: first.id)?.status == .scheduled)
        let reason = try #require(try store.session(id: waiting.id)).statusInfo
        #expect(try store.session(id: waiting.id)?.status == .pending)
        #expect(reason.contains("depends on to end successfully: dep-first (PENDING)"), "as the pass found it: \(reason)")
        #expect(try store.dependencies(of: losing.id).map(\.name) == ["dep-first", "dep-doomed"])
        #expect(try store.dependents(of: first.id) == [waiting.id, losing.id].sorted())

        // The doomed one fails: the session that needs it can never run.
        try store.transition(session: doomed.id, to: .terminated, exitCode: 2)
        try store.transition(session: first.id, to: .terminated, exitCode: 0)
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: waiting.id)?.status == .scheduled, "all its dependencies succeeded")
        let lost = try #require(try store.session(id: losing.id))
        #expect(lost.status == .cancelled)
        #expect(lost.statusInfo.contains("'dep-doomed' it depends on ended TERMINATED with exit status 2"), "\(lost.statusInfo)")

        // Occupancy drifted (e.g. a restored database): recalculation derives it from the kernels.
        try store.database.transaction { try $0.execute("UPDATE agents SET occupied_slots = '{\"cpu\": \"7\"}' WHERE id = 'node-d'") }
        let changed = try store.recalculateOccupancy()
        #expect(changed.map(\.agent) == ["node-d"])
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-d": 1], "only the scheduled waiter holds a core")
        #expect(try store.recalculateOccupancy().isEmpty, "nothing left to repair")
    }

    /// The pass decides from a snapshot alone: planning writes nothing, the same snapshot
    /// gives the same plan, and only `apply` changes the database.
    @Test func planningIsAFunctionOfTheSnapshot() throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-a", cpu: 2))
        let sessions = try (0..<4).map { try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "p\($0)")) }
        let scheduler = SessionScheduler(store: store, plugins: try PluginHost(searchPaths: [Self.binDir]))
        let snapshot = try scheduler.snapshot(resourceGroup: "default")
        #expect(snapshot.pending.map(\.id) == sessions.map(\.id))
        let group = try #require(try store.resourceGroups().first { $0.name == "default" })
        let (picker, selector) = try scheduler.plugins(for: group)
        let first = try SessionScheduler.plan(snapshot, scheduler: picker, selector: selector)
        let second = try SessionScheduler.plan(snapshot, scheduler: picker, selector: selector)
        #expect(first == second)
        #expect(first.reservations.map(\.session) == Array(sessions.prefix(2).map(\.id)), "two 1-cpu sessions fit a 2-cpu agent, oldest first")
        #expect(first.waiting.map(\.session) == Array(sessions.suffix(2).map(\.id)))
        #expect(try store.sessions(resourceGroup: "default", status: .pending).count == 4, "planning wrote nothing")
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-a": 0])
        let decisions = try scheduler.apply(first, snapshot: snapshot)
        #expect(decisions.count == 4)
        #expect(try store.sessions(resourceGroup: "default", status: .scheduled).map(\.id).sorted() == sessions.prefix(2).map(\.id).sorted())
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-a": 2])
        // Applying the same plan again reserves nothing twice: the store re-checks.
        _ = try scheduler.apply(first, snapshot: snapshot)
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-a": 2])
    }

    /// A resource group's scheduler and selector are made once and kept across passes, and
    /// replaced (the old ones destroyed) when the group's choice changes.
    @Test func pluginInstancesLiveAsLongAsTheGroupsChoice() throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-a", cpu: 1))
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        for i in 0..<3 {
            _ = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "keep\(i)"))
            _ = try scheduler.schedule(resourceGroup: "default")
        }
        #expect(plugins.madeInstanceCount == 2, "one scheduler and one selector for the group, however many passes")
        let group = try #require(try store.resourceGroups().first { $0.name == "default" })
        let (first, _) = try scheduler.plugins(for: group)
        try store.database.transaction { try $0.execute("UPDATE resource_groups SET scheduler = 'lifo' WHERE name = 'default'") }
        let changed = try #require(try store.resourceGroups().first { $0.name == "default" })
        let (second, _) = try scheduler.plugins(for: changed)
        #expect(second.instance.library.descriptor.name == "lifo")
        #expect(plugins.madeInstanceCount == 2, "the replaced pair is released")
        let input = SchedulerInput(slots: SchedulingSlots(names: ["cpu"], types: [.count]), total: [0], free: [0], sessions: [], owners: [])
        #expect(throws: PluginError.self) { try first.pickNext(input) }
        #expect(try second.pickNext(input) == nil)
    }
}
