import ClusterProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
import Manager
import PluginHost
import StateStore
import Testing
import TestSupport

/// Session priorities and the resource group's pending timeout, through the real scheduler
/// plugins and both databases.
@Suite struct SchedulingPolicyTests {
    static var binDir: String { PluginPaths.binDir }

    /// Every bundled scheduler runs higher priorities first; within a priority each keeps its
    /// own order (fifo oldest, lifo newest).
    @Test(arguments: Backend.allCases)
    func everyBundledSchedulerRunsHigherPrioritiesFirst(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-p", cpu: 2))
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        // Arrival order: low, high-a, mid, high-b.
        var ids: [String: String] = [:]
        for (name, priority) in [("low", 5), ("high-a", 50), ("mid", 10), ("high-b", 50)] {
            var spec = try StoreFixtures.sessionSpec(store, admin, name: name)
            spec.priority = priority
            ids[name] = try store.createSession(spec).id
        }
        let expected = ["fifo": ["high-a", "high-b"], "lifo": ["high-b", "high-a"], "drf": ["high-a", "high-b"]]
        for (name, first) in expected.sorted(by: { $0.key < $1.key }) {
            var changes = ResourceGroupChanges()
            changes.scheduler = name
            try store.updateResourceGroup(name: "default", changes)
            let group = try #require(try store.resourceGroups().first { $0.name == "default" })
            let (picker, selector) = try scheduler.plugins(for: group)
            let plan = try SessionScheduler.plan(try scheduler.snapshot(resourceGroup: "default"), scheduler: picker, selector: selector)
            #expect(plan.reservations.map(\.session) == first.map { ids[$0]! }, "\(name): two 1-cpu sessions fit, the priority-50 ones")
            #expect(Set(plan.waiting.map(\.session)) == [ids["low"]!, ids["mid"]!], "\(name)")
        }
        // Applied: the two high ones hold the cores; when one ends, mid (10) goes before low (5).
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.sessions(resourceGroup: "default", status: .scheduled).map(\.name).sorted() == ["high-a", "high-b"])
        try store.transition(session: ids["high-b"]!, to: .terminated)
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: ids["mid"]!)?.status == .scheduled)
        #expect(try store.session(id: ids["low"]!)?.status == .pending)
    }

    /// A session pending longer than the group's `pending_timeout` is cancelled with the
    /// reason; younger ones and running ones are untouched; bad options are refused.
    @Test(arguments: Backend.allCases)
    func pendingTimeoutCancelsWithTheReason(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-t", cpu: 1))
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        for bad in [#"{"pending_timeout": -1}"#, #"{"pending_timeout": "ten"}"#, #"{"pending_timeout": true}"#, "[]", #"{"pending_timeout": 1e300}"#,
                    #"{"fairshare_half_life": 0}"#, #"{"usage_weights": {"cpu": -1}}"#] {
            var changes = ResourceGroupChanges()
            changes.schedulerOptions = bad
            #expect(throws: StoreError.self, "\(bad)") { try store.updateResourceGroup(name: "default", changes) }
        }
        var changes = ResourceGroupChanges()
        changes.schedulerOptions = #"{"pending_timeout": 30, "allowed_session_types": ["interactive", "batch"]}"#
        try store.updateResourceGroup(name: "default", changes)

        let running = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "holds-it"))
        let old = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "waits-long"))
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: running.id)?.status == .scheduled)
        #expect(try store.session(id: old.id)?.status == .pending, "not yet past the timeout")
        let young = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "waits-short"))

        // Forty seconds later for the old one (its enqueue time moved back), five for the young.
        try store.database.transaction { try $0.execute("UPDATE sessions SET created_at = created_at - 40000000 WHERE id = $1", [.text(old.id)]) }
        let decisions = try scheduler.schedule(resourceGroup: "default")
        let cancelled = try #require(try store.session(id: old.id))
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.statusInfo.hasPrefix("pending timeout: the session waited 4"), "\(cancelled.statusInfo)")
        #expect(cancelled.statusInfo.contains("resource group 'default' allows (scheduler_opts.pending_timeout 30 s)"), "\(cancelled.statusInfo)")
        #expect(decisions.contains(.cancelled(session: old.id, reason: cancelled.statusInfo)))
        #expect(try store.session(id: young.id)?.status == .pending)
        #expect(try store.session(id: running.id)?.status == .scheduled, "the timeout is about waiting, not running")
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-t": 1], "a cancelled pending session held nothing")
    }

    /// The API takes `priority` (0-100, default 10) up to the keypair policy's
    /// `max_session_priority`; superadmins are not capped; session info shows it.
    @Test func priorityIsCheckedAndCappedByThePolicy() async throws {
        let (db, store, admin) = try bootstrappedStore(.sqlite)
        _ = db
        defer { store.close() }
        let app = try managerApp(store)
        let root = (admin.accessKey, admin.secretKey)
        let user = try store.createUser(email: "prio@example.com", password: "priority-password", passwordRounds: 1000)
        let keys = try store.createKeypair(userID: user.id)
        let userKeys = (keys.accessKey, keys.secretKey)
        @Sendable func session(_ name: String, _ priority: Int?) -> String {
            #"{"name": "\#(name)", "image": "py", "enqueueOnly": true, "config": {"resources": {"cpu": "1"}}\#(priority.map { ", \"priority\": \($0)" } ?? "")}"#
        }
        try await app.test(.router) { client in
            let modify = "mutation { modify_keypair_resource_policy(name: \"default\", props: {max_session_priority: 20}) { ok msg } }"
            let (_, modified) = try await GraphQLTests.query(client, modify, keys: root)
            #expect(modified.contains("\"ok\": true"), "\(modified)")
            let (_, shown) = try await GraphQLTests.query(client, "{ keypair_resource_policies { name max_session_priority } }", keys: root)
            #expect(shown.contains("\"max_session_priority\": 20"), "\(shown)")
            let (_, refusedPolicy) = try await GraphQLTests.query(
                client, "mutation { modify_keypair_resource_policy(name: \"default\", props: {max_session_priority: 101}) { ok msg } }", keys: root)
            #expect(refusedPolicy.contains("\"ok\": false") && refusedPolicy.contains("max_session_priority must be 0-100"), "\(refusedPolicy)")

            let (outOfRange, why) = try await AdministrationTests.rest(client, .post, "/session", body: session("prio-bad", 101), keys: root)
            #expect(outOfRange == .badRequest && why.contains("priority must be 0-100"), "\(why)")
            let endless = #"{"name": "limit-bad", "image": "py", "enqueueOnly": true, "batchTimeout": 9223372036854775807}"#
            let (tooLong, longWhy) = try await AdministrationTests.rest(client, .post, "/session", body: endless, keys: root)
            #expect(tooLong == .badRequest && longWhy.contains("batchTimeout must be a number of seconds from 1 to 315360000"), "\(longWhy)")
            let (capped, cappedWhy) = try await AdministrationTests.rest(client, .post, "/session", body: session("prio-capped", 30), keys: userKeys)
            #expect(capped == .badRequest && cappedWhy.contains("max_session_priority 20"), "\(cappedWhy)")
            let (atCap, _) = try await AdministrationTests.rest(client, .post, "/session", body: session("prio-user", 20), keys: userKeys)
            #expect(atCap == .created)
            let (byDefault, _) = try await AdministrationTests.rest(client, .post, "/session", body: session("prio-default", nil), keys: userKeys)
            #expect(byDefault == .created)
            let (urgent, _) = try await AdministrationTests.rest(client, .post, "/session", body: session("prio-root", 90), keys: root)
            #expect(urgent == .created, "superadmins are not capped")
            for (name, keys, priority) in [("prio-user", userKeys, 20), ("prio-default", userKeys, 10), ("prio-root", root, 90)] {
                let (_, info) = try await AdministrationTests.rest(client, .get, "/session/\(name)", keys: keys)
                #expect(info.contains("\"priority\":\(priority)"), "\(name): \(info)")
            }
            let (_, listed) = try await GraphQLTests.query(client, "{ compute_session_list(limit: 10, offset: 0) { items { name priority } } }", keys: root)
            #expect(listed.contains("\"name\": \"prio-root\"") && listed.contains("\"priority\": 90"), "\(listed)")
        }
    }

    /// Preemption, where the group enables it: exactly the expected sessions end (fewest,
    /// lowest priority, never interactive ones by default), once; the pending session waits
    /// for them instead of preempting more, then takes their slots; a session that would not
    /// fit even then preempts nothing.
    @Test(arguments: Backend.allCases)
    func preemptionEndsTheFewestLowestAndOnlyPreemptibleSessions(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-x", cpu: 5))
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        func create(_ name: String, cpu: Decimal, priority: Int, type: String) throws -> String {
            var spec = try StoreFixtures.sessionSpec(store, admin, name: name, cpu: cpu)
            (spec.priority, spec.type) = (priority, type)
            return try store.createSession(spec).id
        }
        var ids: [String: String] = [:]
        for (name, cpu, priority, type) in [("b0", 1, 2, "batch"), ("b1", 1, 5, "batch"), ("b2", 2, 5, "batch"), ("i1", 1, 1, "interactive")] as [(String, Decimal, Int, String)] {
            ids[name] = try create(name, cpu: cpu, priority: priority, type: type)
            _ = try scheduler.schedule(resourceGroup: "default")
            try store.transition(session: ids[name]!, to: .running)
        }
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-x": 5])
        let head = try create("urgent", cpu: 2, priority: 50, type: "batch")

        // Off by default: the urgent session just waits.
        var decisions = try scheduler.schedule(resourceGroup: "default")
        #expect(!decisions.contains { if case .preempted = $0 { true } else { false } })
        #expect(try store.sessions(resourceGroup: "default", status: .running).count == 4)

        var changes = ResourceGroupChanges()
        changes.schedulerOptions = #"{"preemption": true}"#
        try store.updateResourceGroup(name: "default", changes)
        decisions = try scheduler.schedule(resourceGroup: "default")
        let preempted = decisions.compactMap { if case .preempted(let id, _) = $0 { id } else { nil } }
        #expect(preempted == [ids["b2"]!], "b2 alone frees the 2 cores; b0 is spared, i1 is interactive: \(decisions)")
        let victim = try #require(try store.session(id: ids["b2"]!))
        #expect(victim.status == .terminating)
        #expect(victim.statusInfo == "preempted: ended to place session 'urgent' (priority 50, above this session's 5) in resource group 'default'", "\(victim.statusInfo)")
        #expect(try store.statusHistory(session: ids["b2"]!).map(\.0).suffix(2) == [.running, .terminating])
        #expect(try store.session(id: head)?.statusInfo == "waiting for 1 preempted session on node-x to end: b2")

        // While b2 ends, nothing more is preempted for the same session.
        decisions = try scheduler.schedule(resourceGroup: "default")
        #expect(!decisions.contains { if case .preempted = $0 { true } else { false } }, "\(decisions)")
        #expect(try store.sessions(resourceGroup: "default", status: .running).map(\.name).sorted() == ["b0", "b1", "i1"])

        // b2 ended (the lifecycle removes its kernels): its slots come back once, and the
        // urgent session takes them.
        #expect(try store.transition(session: ids["b2"]!, to: .terminated, reason: victim.statusInfo))
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-x": 3])
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: head)?.status == .scheduled)
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-x": 5])
        try store.transition(session: head, to: .running)

        // 5 cores, 1 held by the non-preemptible i1: a 5-core session can never get room by
        // preemption, so nothing ends for it.
        let huge = try create("huge", cpu: 5, priority: 90, type: "batch")
        decisions = try scheduler.schedule(resourceGroup: "default")
        #expect(!decisions.contains { if case .preempted = $0 { true } else { false } }, "\(decisions)")
        #expect(try store.session(id: huge)?.status == .pending)
        #expect(try store.sessions(resourceGroup: "default", status: .running).map(\.name).sorted() == ["b0", "b1", "i1", "urgent"])
        // An equal priority preempts nothing either.
        try store.transition(session: huge, to: .cancelled)
        _ = try create("peer", cpu: 1, priority: 50, type: "batch")
        decisions = try scheduler.schedule(resourceGroup: "default")
        let ended = decisions.compactMap { if case .preempted(let id, _) = $0 { id } else { nil } }
        #expect(ended == [ids["b0"]!], "priority 50 may end b0 (2) but never urgent (50): \(decisions)")
    }

    /// Fair share end to end: usage counted once per second of holding (however often and by
    /// however many managers the accounting runs), up to when a kernel ended; decay at the
    /// half-life; factors from usage and shares; the fairshare scheduler and `sprio` put the
    /// user who used less first; shares set through the API change the factors.
    @Test(arguments: Backend.allCases)
    func fairShareCountsUsageOnceAndOrdersByIt(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-f", cpu: 4))
        var changes = ResourceGroupChanges()
        changes.scheduler = "fairshare"
        changes.schedulerOptions = #"{"fairshare_half_life": 1000000, "usage_weights": {"cpu": 1}}"#
        try store.updateResourceGroup(name: "default", changes)
        let other = try store.createUser(email: "fair@example.com", password: "fair-password", passwordRounds: 1000)
        let otherKey = try store.createKeypair(userID: other.id)

        // Admin's session holds 2 cores from t0; accounting runs repeatedly (and concurrently).
        let t0 = Clock.nowMicros() - 10_000_000_000
        let used = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "fs-used", cpu: 2))
        let kernels = try #require(try store.pendingKernelIDs(resourceGroup: "default")[used.id])
        #expect(try store.reserve(session: used.id, placements: kernels.map { KernelPlacement(kernelID: $0, agentID: "node-f") }, now: t0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { try await store.run { try $0.accountUsage(resourceGroup: "default", now: t0 + 100_000_000, halfLife: 1e12, weights: ["cpu": 1]) } }
            }
            try await group.waitForAll()
        }
        let adminUser = try #require(try store.user(email: admin.email))
        func usage() throws -> Double { try store.fairshareUsage(resourceGroup: "default").first { $0.association.userID == adminUser.id }?.usage ?? -1 }
        let counted = try usage()
        #expect(abs(counted - 200) < 0.01, "2 cores x 100 s, counted once: \(counted)")
        try store.transition(session: used.id, to: .terminated, now: t0 + 150_000_000)
        try store.accountUsage(resourceGroup: "default", now: t0 + 1_000_000_000, halfLife: 1e12, weights: ["cpu": 1])
        try store.accountUsage(resourceGroup: "default", now: t0 + 2_000_000_000, halfLife: 1e12, weights: ["cpu": 1])
        let total = try usage()
        #expect(abs(total - 300) < 0.01, "counted up to when it ended: \(total)")
        #expect(abs(UsageMeter.decayed(300, from: 0, to: 3_600_000_000, halfLife: 3600) - 150) < 1e-9, "halved at the half-life")
        #expect(abs(UsageMeter.decayed(300, from: 0, to: 7_200_000_000, halfLife: 3600) - 75) < 1e-9)

        // Both users wait for one core each: the one who used nothing goes first.
        let mine = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "fs-admin", cpu: 1))
        let theirs = try store.createSession(StoreFixtures.sessionSpec(store, admin, name: "fs-other", cpu: 1, accessKey: otherKey.accessKey))
        try store.database.transaction { c in
            try c.execute("UPDATE sessions SET user_id = $1 WHERE id = $2", [.text(other.id), .text(theirs.id)])
        }
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        let ranked = try scheduler.priorities(resourceGroup: "default")
        #expect(ranked.map(\.name) == ["fs-other", "fs-admin"], "\(ranked)")
        #expect(ranked.first?.fairshare == 1, "no usage: factor 1")
        let adminFactor = try #require(ranked.last?.fairshare)
        #expect(abs(adminFactor - 0.25) < 1e-6, "all of the usage on half the shares: 2^-2, got \(adminFactor)")
        #expect(ranked.first?.factors?.fairshare == 1 && ranked.first?.factors?.total ?? 0 > ranked.last?.factors?.total ?? 0)

        // Through the API: sprio for each user, the tree, and shares that change the factors.
        try await managerApp(store).test(.router) { client in
            let root = (admin.accessKey, admin.secretKey)
            let (_, listed) = try await AdministrationTests.rest(client, .get, "/scheduler/priorities?resource_group=default", keys: (otherKey.accessKey, otherKey.secretKey))
            #expect(listed.contains("fs-other") && !listed.contains("fs-admin"), "users see their own: \(listed)")
            let (_, all) = try await AdministrationTests.rest(client, .get, "/scheduler/priorities", keys: root)
            #expect(all.contains("\"rank\":1") && all.contains("\"score\""), "\(all)")
            let (refused, why) = try await AdministrationTests.rest(client, .put, "/scheduler/fairshare/shares", body: #"{"user": "fair@example.com", "shares": -1}"#, keys: root)
            #expect(refused == .badRequest && why.contains("shares must be"), "\(why)")
            let (set, _) = try await AdministrationTests.rest(client, .put, "/scheduler/fairshare/shares", body: "{\"user\": \"\(admin.email)\", \"shares\": 3}", keys: root)
            #expect(set == .noContent)
            let (_, tree) = try await AdministrationTests.rest(client, .get, "/scheduler/fairshare?resource_group=default", keys: root)
            #expect(tree.contains("\"level\":\"user\"") && tree.contains("\"shares\":3"), "\(tree)")
            let (denied, _) = try await AdministrationTests.rest(client, .get, "/scheduler/fairshare", keys: (otherKey.accessKey, otherKey.secretKey))
            #expect(denied == .forbidden)
        }
        let reweighted = try scheduler.priorities(resourceGroup: "default")
        let newFactor = try #require(reweighted.first { $0.name == "fs-admin" }?.fairshare)
        #expect(abs(newFactor - pow(2, -1 / 0.75)) < 1e-6, "shares 3:1 give the admin 0.75 of the project: \(newFactor)")

        // The pass itself: one core free, the fairshare scheduler places the other user's first.
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-f", cpu: 1))
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: theirs.id)?.status == .scheduled)
        #expect(try store.session(id: mine.id)?.status == .pending)
    }

    /// EASY backfill: the first session that cannot start gets a reservation from running
    /// sessions' time limits; behind it only sessions with a time limit start, and only if the
    /// reservation still holds; without backfill the same queue lets small sessions take the
    /// room. A session past its time limit is found for ending.
    @Test(arguments: Backend.allCases)
    func backfillStartsOnlyWhatDoesNotDelayTheFirstInLine(backend: Backend) throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        _ = try store.recordHeartbeat(StoreFixtures.heartbeat("node-b", cpu: 6))
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        let scheduler = SessionScheduler(store: store, plugins: plugins)
        func create(_ name: String, cpu: Decimal, limit: Int64?) throws -> String {
            var spec = try StoreFixtures.sessionSpec(store, admin, name: name, cpu: cpu)
            spec.timeLimit = limit
            return try store.createSession(spec).id
        }
        _ = try create("r-limited", cpu: 2, limit: 3600)
        _ = try create("r-open", cpu: 2, limit: nil)
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try StoreFixtures.occupiedCPU(store) == ["node-b": 4])
        let head = try create("head", cpu: 4, limit: nil)
        let open = try create("small-open", cpu: 1, limit: nil)
        let short = try create("small-short", cpu: 1, limit: 600)
        let long = try create("small-long", cpu: 1, limit: 7200)

        // Without backfill: the two small ones that come first take the free cores.
        let group = try #require(try store.resourceGroups().first { $0.name == "default" })
        let (picker, selector) = try scheduler.plugins(for: group)
        var snapshot = try scheduler.snapshot(resourceGroup: "default")
        let greedy = try SessionScheduler.plan(snapshot, scheduler: picker, selector: selector)
        #expect(greedy.reservations.map(\.session) == [open, short])
        #expect(greedy.headReservation?.session == head)
        let reserved = try #require(greedy.headReservation?.start)
        let limitedEnd = try #require(snapshot.holders.first { $0.sessionName == "r-limited" }?.expectedEnd)
        #expect(reserved == limitedEnd, "the head fits once r-limited's hour is up")

        // With backfill: only the one that ends before that starts.
        var changes = ResourceGroupChanges()
        changes.schedulerOptions = #"{"backfill": true}"#
        try store.updateResourceGroup(name: "default", changes)
        snapshot = try scheduler.snapshot(resourceGroup: "default")
        snapshot.options.backfill = true
        let plan = try SessionScheduler.plan(snapshot, scheduler: picker, selector: selector)
        #expect(plan.reservations.map(\.session) == [short])
        #expect(plan.backfilled == [short])
        let reasons = Dictionary(plan.waiting.map { ($0.session, $0.reason) }, uniquingKeysWith: { a, _ in a })
        #expect(reasons[open]?.hasPrefix("waiting behind session 'head'") == true, "\(reasons[open] ?? "")")
        #expect(reasons[long]?.hasPrefix("waiting: starting now would delay session 'head'") == true, "\(reasons[long] ?? "")")
        _ = try scheduler.schedule(resourceGroup: "default")
        #expect(try store.session(id: short)?.status == .scheduled)
        #expect(try store.session(id: open)?.status == .pending && store.session(id: long)?.status == .pending)

        // Time limits end sessions: one scheduled 2 h ago with a 1 h limit is due.
        let due = try store.sessionsPastTimeLimit(now: Clock.nowMicros() + 3_700_000_000)
        #expect(due.map(\.limit).sorted() == [600, 3600], "r-limited and small-short, not the open-ended ones: \(due)")
        #expect(try store.sessionsPastTimeLimit().isEmpty)
    }

    /// On random traces, backfill never starts the first-in-line session later than the
    /// reservation computed when it became first, and never backfills a session without a
    /// time limit; without backfill the same traces do delay it (so the check can fail).
    @Test func backfillNeverDelaysTheFirstInLineOnRandomTraces() throws {
        let plugins = try PluginHost(searchPaths: [Self.binDir])
        defer { plugins.shutdown() }
        var greedyDelays = 0, backfilled = 0
        for seed in [11, 12, 13] as [UInt64] {
            // One priority: a later, higher-priority arrival may rightly go before the first in line.
            let jobs = JobTrace.synthetic(jobs: 800, users: [("u1", "p", 1), ("u2", "p", 1), ("u3", "p", 1)], meanInterarrival: 40, medianRuntime: 600, seed: seed)
                .enumerated().map { i, job in
                    var job = job
                    job.priority = 10
                    // Most declare a limit (so reservations are known), every tenth does not.
                    job.timeLimit = i % 10 == 0 ? nil : (job.runtime * 1.5).rounded(.up)
                    return job
                }
            var config = SimulationConfig()
            (config.agents, config.agentCPU, config.agentMemGiB, config.interval) = (4, 16, 64, 10)
            config.options.backfill = true
            let report = try SchedulingSimulator(config: config, plugins: plugins).run(jobs)
            #expect(report.headDelays == 0, "seed \(seed): \(report.headDelays) first-in-line sessions started after their reservation")
            #expect(report.backfilled > 0, "seed \(seed): backfill started nothing")
            #expect(report.backfilledWithoutLimit == 0)
            backfilled += report.backfilled
            config.options.backfill = false
            greedyDelays += try SchedulingSimulator(config: config, plugins: plugins).run(jobs).headDelays
        }
        #expect(greedyDelays > 0, "without backfill small sessions delay the first in line")
        print("backfill on 3 random traces of 800 jobs: \(backfilled) sessions backfilled, 0 first-in-line sessions delayed; without backfill \(greedyDelays) delayed")
    }
}
