import ClusterProtocol
import Foundation
import Identity
import StateStore
import TestSupport
import Testing

/// The state store, run on SQLite and on PostgreSQL.
@Suite struct StateStoreTests {
    @Test(arguments: Backend.allCases)
    func bootstrapCreatesDefaultsOnce(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        #expect(try store.schemaVersion == Migrations.latest)
        #expect(try store.domains().map(\.name) == ["default"])
        #expect(try store.projects().map(\.name) == ["default"])
        #expect(try store.resourceGroups().map(\.name) == ["default"])
        #expect(try store.resourceGroups()[0].scheduler == "fifo")
        let user = try #require(try store.user(email: admin.email))
        #expect(user.role == .superadmin)
        let identity = try #require(try store.identity(accessKey: admin.accessKey))
        #expect(identity.keypair.secretKey == admin.secretKey && identity.keypair.isAdmin && identity.userRole == .superadmin)
        #expect(try store.bootstrap(password: "x", passwordRounds: 1000) == nil, "a second bootstrap changes nothing")
        #expect(try store.users().count == 1)
        #expect(try store.resourceGroups(forUser: user.id) == ["default"])
    }

    @Test(arguments: Backend.allCases)
    func reopeningKeepsStateAndDoesNotMigrateAgain(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        store.close()
        let again = try db.store()
        defer { again.close() }
        #expect(try again.identity(accessKey: admin.accessKey) != nil)
        #expect(try Migrations.migrate(again.database).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func newerSchemaIsRefused(backend: Backend) throws {
        let (db, store, _) = try bootstrappedStore(backend)
        try store.database.transaction { c in
            try c.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)", [.int(Int64(Migrations.latest + 1))])
        }
        store.close()
        do {
            _ = try db.store()
            Issue.record("a database from a newer Hangar must be refused")
        } catch let error as StoreError {
            #expect(error.code == .schemaTooNew)
            #expect(error.message.contains("schema version \(Migrations.latest + 1)"))
            #expect(error.message.contains("newer Hangar"))
        }
    }

    @Test(arguments: Backend.allCases)
    func usersAndKeypairs(backend: Backend) throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let user = try store.createUser(email: "ada@example.com", password: "s3cret-pass", passwordRounds: 1000)
        #expect(user.username == "ada" && user.role == .user)
        #expect(throws: StoreError.self) { try store.createUser(email: "ada@example.com", password: "s3cret-pass", passwordRounds: 1000) }
        #expect(throws: StoreError.self) { try store.createUser(email: "bob@example.com", password: "short", passwordRounds: 1000) }
        #expect(throws: StoreError.self) { try store.createUser(email: "eve@example.com", password: "long-enough", projects: ["nope"], passwordRounds: 1000) }
        #expect(try store.user(email: "eve@example.com") == nil, "a failed create leaves nothing behind")
        let keypair = try store.createKeypair(userID: user.id, rateLimit: 100)
        #expect(keypair.accessKey.hasPrefix("AKIA") && keypair.accessKey.count == 20 && keypair.secretKey.count == 40)
        try store.setKeypairActive(keypair.accessKey, false)
        #expect(try store.identity(accessKey: keypair.accessKey)?.keypair.isActive == false)
        #expect(throws: StoreError.self) { try store.setKeypairActive("AKIANOSUCHKEY", false) }
        #expect(throws: StoreError.self) { try store.createKeypair(userID: user.id, resourcePolicy: "no-such-policy") }
    }

    @Test(arguments: Backend.allCases)
    func twoHundredParallelKeypairCreationsLoseNothing(backend: Backend) async throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let user = try store.createUser(email: "many@example.com", password: "many-keys-pass", passwordRounds: 1000)
        let created = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<200 {
                group.addTask { try await store.run { try $0.createKeypair(userID: user.id).accessKey } }
            }
            var keys: [String] = []
            for try await key in group { keys.append(key) }
            return keys
        }
        #expect(Set(created).count == 200)
        #expect(Set(try store.keypairs(userID: user.id).map(\.accessKey)) == Set(created))
    }

    @Test(arguments: Backend.allCases)
    func fiftyParallelHeartbeatsLoseNothing(backend: Backend) async throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        // 25 agents, each heartbeating twice at once (registration races included).
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<50 {
                group.addTask { try await store.run { try $0.recordHeartbeat(StoreFixtures.gpuHeartbeat("agent-\(i % 25)", cpu: Decimal(i % 25 + 1))).registered } }
            }
            var registered = 0
            for try await r in group where r { registered += 1 }
            return registered
        }
        #expect(outcomes == 25, "each agent registers exactly once")
        let agents = try store.agents()
        #expect(agents.count == 25)
        #expect(agents.allSatisfy { $0.status == .alive })
        for agent in agents {
            let n = Int(agent.id.dropFirst("agent-".count))!
            #expect(agent.capacity["cpu"] == Decimal(n + 1))
        }
    }

    @Test(arguments: Backend.allCases)
    func heartbeatsSilenceAndReturn(backend: Backend) throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let t0: Int64 = 1_800_000_000_000_000
        let first = try store.recordHeartbeat(StoreFixtures.gpuHeartbeat("node-1"), now: t0)
        #expect(first.registered && first.agent.status == .alive)
        #expect(first.agent.capacity["cuda.shares"] == Decimal(string: "2.5"), "slot amounts round-trip exactly")
        let again = try store.recordHeartbeat(StoreFixtures.gpuHeartbeat("node-1"), now: t0 + 5_000_000)
        #expect(!again.registered)
        #expect(try store.markLostAgents(silentSince: t0 + 1_000_000).isEmpty, "heard from 5 s after the cutoff")
        #expect(try store.markLostAgents(silentSince: t0 + 40_000_000, now: t0 + 40_000_000) == ["node-1"])
        #expect(try store.agent(id: "node-1")?.status == .lost)
        let back = try store.recordHeartbeat(StoreFixtures.gpuHeartbeat("node-1"), now: t0 + 50_000_000)
        #expect(back.registered && back.agent.status == .alive && back.agent.lostAt == nil)
        try store.setAgentSchedulable("node-1", false)
        #expect(try store.agent(id: "node-1")?.schedulable == false)
        #expect(throws: StoreError.self) { try store.recordHeartbeat(StoreFixtures.gpuHeartbeat("node-2", group: "no-such-group")) }
        var bad = StoreFixtures.gpuHeartbeat("bad id with spaces")
        bad.address = "not a url"
        #expect(throws: StoreError.self) { try store.recordHeartbeat(bad) }
    }

    @Test func resourceSlotsAreExactDecimals() throws {
        let slots = try ResourceSlots(json: #"{"cpu": "4", "mem": "16g", "cuda.shares": 0.1, "x": "0.30000000000000004"}"#)
        #expect(slots["mem"] == Decimal(17_179_869_184))
        #expect(slots["cuda.shares"] + slots["cuda.shares"] + slots["cuda.shares"] == Decimal(string: "0.3")!)
        #expect(slots.json.contains(#""cpu":"4""#))
        #expect(throws: ResourceSlotsError.self) { try ResourceSlots(json: #"{"cpu": "lots"}"#) }
        #expect(throws: ResourceSlotsError.self) { try ResourceSlots(json: #"[1]"#) }
    }

    @Test func databaseLocations() throws {
        #expect(try DatabaseLocation("postgresql://u:pw@h:5432/db").description == "postgresql://u:***@h:5432/db")
        #expect(try DatabaseLocation("/var/lib/hangar/m.db") == .sqlite(path: "/var/lib/hangar/m.db"))
        #expect(try DatabaseLocation("sqlite:/tmp/x.db") == .sqlite(path: "/tmp/x.db"))
        #expect(throws: StoreError.self) { try DatabaseLocation("mysql://x") }
    }
}

/// The named queries the manager uses instead of SQL of its own, on both databases.
@Suite struct StateStoreQueryTests {
    @Test(arguments: Backend.allCases)
    func kernelSessionAndProjectQueries(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-q", cpu: 4))
        var spec = try StoreFixtures.sessionSpec(store, admin, name: "queries")
        spec.startupCommand = "python3 serve.py"
        let session = try store.createSession(spec)
        let kernelID = try #require(try store.kernelIDs(session: session.id).first)
        #expect(try store.kernels(session: session.id).first?.agentID == nil, "not placed yet")
        #expect(try store.reserve(session: session.id, placements: [KernelPlacement(kernelID: kernelID, agentID: "node-q")]))
        let kernels = try store.kernels(session: session.id)
        #expect(kernels.map(\.id) == [kernelID])
        #expect(kernels.first?.agentID == "node-q" && kernels.first?.clusterIndex == 0 && kernels.first?.clusterRole == "main")
        #expect(try store.sessionID(ofKernel: kernelID) == session.id)
        #expect(try store.sessionID(ofKernel: "no-such-kernel") == nil)
        #expect(try store.startupCommand(session: session.id) == "python3 serve.py")
        #expect(try store.exitCode(session: session.id) == nil)
        #expect(try store.activeSessions(onAgent: "node-q") == [session.id])
        #expect(try store.activeSessions(onAgent: "elsewhere").isEmpty)
        let user = try #require(try store.users().first { $0.email == admin.email })
        #expect(try store.projects(ofUser: user.id).map(\.name).contains(try #require(try store.projects().first).name))
    }

    /// The keypair list page is one query: owners, their projects and running sessions ride
    /// along, the total counts every match (also past the last page), and filters apply.
    @Test(arguments: Backend.allCases)
    func keypairPagesCarryOwnersProjectsAndRunningSessions(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        for n in 1...3 {
            let user = try store.createUser(email: "u\(n)@example.com", password: "password-\(n)", fullName: "User \(n)", passwordRounds: 1000)
            let key = try store.createKeypair(userID: user.id)
            if n == 2 { try store.setKeypairActive(key.accessKey, false) }
        }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-k", cpu: 4))
        let session = try store.createSession(try StoreFixtures.sessionSpec(store, admin, name: "kp"))
        let kernelID = try #require(try store.kernelIDs(session: session.id).first)
        #expect(try store.reserve(session: session.id, placements: [KernelPlacement(kernelID: kernelID, agentID: "node-k")]))

        let all = try store.keypairs()
        let first = try store.keypairPage(domain: nil, isActive: nil, limit: 2, offset: 0)
        #expect(first.total == 4 && first.rows.map(\.keypair.accessKey) == all.prefix(2).map(\.accessKey), "oldest first, as keypairs()")
        let rest = try store.keypairPage(domain: "default", isActive: nil, limit: 10, offset: 2)
        #expect(rest.total == 4 && rest.rows.map(\.keypair.accessKey) == all.dropFirst(2).map(\.accessKey))
        let adminRow = try #require(first.rows.first { $0.keypair.accessKey == admin.accessKey })
        #expect(adminRow.owner.email == admin.email && adminRow.projectNames == ["default"] && adminRow.activeSessions == 1)
        #expect(rest.rows.allSatisfy { $0.activeSessions == 0 && $0.owner.fullName.hasPrefix("User ") && $0.projectNames == ["default"] })
        let inactive = try store.keypairPage(domain: nil, isActive: false, limit: 10, offset: 0)
        #expect(inactive.total == 1 && inactive.rows.map(\.owner.email) == ["u2@example.com"])
        let past = try store.keypairPage(domain: nil, isActive: true, limit: 10, offset: 50)
        #expect(past.rows.isEmpty && past.total == 3, "past the last page the total is still counted")
        #expect(try store.keypairPage(domain: "elsewhere", isActive: nil, limit: 10, offset: 0).total == 0)
    }

    /// A pass's plan is written all or nothing: when any part fails, the cancellation and
    /// the reservation made before it are rolled back with it.
    @Test(arguments: Backend.allCases)
    func aPassIsAppliedInOneTransaction(backend: Backend) throws {
        struct Interrupted: Error {}
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-t", cpu: 4))
        let doomed = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "doomed"))
        let placed = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "placed"))
        let waits = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "waits"))
        let kernel = try #require(try store.kernels(session: placed.id).first)
        let placements = [KernelPlacement(kernelID: kernel.id, agentID: "node-t")]
        #expect(throws: Interrupted.self) {
            try store.applyPass(resourceGroup: "default", cancellations: [(doomed.id, "never fits")], reservations: [(placed.id, placements)],
                                consideredUpTo: waits.createdAt, reasons: { _ in throw Interrupted() })
        }
        #expect(try store.session(id: doomed.id)?.status == .pending)
        #expect(try store.session(id: placed.id)?.status == .pending)
        #expect(try store.agents().first { $0.id == "node-t" }?.occupied["cpu"] == 0)
        let made = try store.applyPass(resourceGroup: "default", cancellations: [(doomed.id, "never fits")], reservations: [(placed.id, placements)],
                                       consideredUpTo: waits.createdAt, reasons: { made in made == [true] ? [(waits.id, "waiting for a friend")] : [] })
        #expect(made == [true])
        #expect(try store.session(id: doomed.id)?.status == .cancelled)
        #expect(try store.session(id: placed.id)?.status == .scheduled)
        #expect(try store.session(id: waits.id)?.statusInfo == "waiting for a friend")
        #expect(try store.session(id: waits.id)?.attempts == 1)
        #expect(try store.agents().first { $0.id == "node-t" }?.occupied["cpu"] == 1)
    }
}
