import Foundation
@testable import Manager
import StateStore
import Testing
import TestSupport

/// Keypair rate limits across managers: each manager shares its counts through the database,
/// so the limit holds for the cluster, not once per manager.
@Suite struct SharedRateLimitTests {
    @Test(arguments: Backend.allCases)
    func theLimitHoldsAcrossManagers(backend: Backend) async throws {
        let (db, store, admin) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        var keypair = try #require(try store.identity(accessKey: admin.accessKey)).keypair
        keypair.rateLimit = 10
        // The middle of a minute, so the sliding window's weighting does not move under the test.
        let now = Double(Int64(Date().timeIntervalSince1970) / 60 * 60) + 30
        let a = RateLimiter(), b = RateLimiter(), c = RateLimiter()
        for _ in 0..<6 { try a.check(keypair, now: now) }
        try await a.share(store, manager: "manager-a", now: now)
        try await b.share(store, manager: "manager-b", now: now)
        // b has seen a's six: four more pass, the fifth is refused.
        for _ in 0..<4 { try b.check(keypair, now: now) }
        #expect(throws: APIError.self) { try b.check(keypair, now: now) }
        // A third manager that shares after both sees all of them (a's 6, b's 5 attempts).
        try await b.share(store, manager: "manager-b", now: now)
        try await c.share(store, manager: "manager-c", now: now)
        #expect(throws: APIError.self) { try c.check(keypair, now: now) }
        // A manager that never shared counts only what it served: the stated bound is what the
        // others admitted since its last share.
        let alone = RateLimiter()
        for _ in 0..<10 { try alone.check(keypair, now: now) }
        #expect(throws: APIError.self) { try alone.check(keypair, now: now) }
        // Counts older than the previous minute are dropped from the database.
        try await a.share(store, manager: "manager-a", now: now + 180)
        let left = try await store.run { try $0.shareRateLimitCounts(manager: "probe", counts: [], oldestMinute: 0) }
        #expect(left.isEmpty, "\(left)")
    }
}
