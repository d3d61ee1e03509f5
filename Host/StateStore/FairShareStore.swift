import ClusterProtocol
import Foundation

/// A user's work in one project of one domain: what fair share counts usage against.
public struct FairShareAssociation: Hashable, Sendable, Codable, Comparable {
    public var domain: String
    public var projectID: String
    public var userID: String
    public init(domain: String, projectID: String, userID: String) {
        (self.domain, self.projectID, self.userID) = (domain, projectID, userID)
    }
    public static func < (a: Self, b: Self) -> Bool { (a.domain, a.projectID, a.userID) < (b.domain, b.projectID, b.userID) }
}

/// An association's usage (weighted slot-seconds) as of `updatedAt`, before further decay.
public struct FairShareUsage: Sendable, Equatable {
    public var association: FairShareAssociation
    public var usage: Double
    public var updatedAt: Int64
    public init(association: FairShareAssociation, usage: Double, updatedAt: Int64) {
        (self.association, self.usage, self.updatedAt) = (association, usage, updatedAt)
    }
}

/// Where fair-share shares are set: a domain (by name), a project (by id) or a user (by id).
public enum FairShareLevel: String, Sendable, Codable, CaseIterable {
    case domain, project, user
}

/// Usage arithmetic shared by the manager and the simulator.
public enum UsageMeter {
    /// `usage` recorded at `from`, as it counts at `to`: halved every `halfLife` seconds.
    public static func decayed(_ usage: Double, from: Int64, to: Int64, halfLife: Double) -> Double {
        guard halfLife > 0, to > from, usage > 0 else { return usage }
        return usage * pow(2, -Double(to - from) / 1_000_000 / halfLife)
    }

    /// What holding `slots` for one second costs: the weight of each slot times its amount
    /// (memory-like slots per GiB). Unlisted slots weigh 1 per unit, memory 0.
    public static func weight(_ slots: ResourceSlots, weights: [String: Double]) -> Double {
        var total = 0.0
        for (slot, amount) in slots.amounts where amount > 0 {
            let bytes = slot == "mem" || slot.hasSuffix(".mem")
            let value = NSDecimalNumber(decimal: amount).doubleValue / (bytes ? Double(1 << 30) : 1)
            total += value * (weights[slot] ?? (bytes ? 0 : 1))
        }
        return total
    }
}

extension StateStore {
    /// Counts the use of the group's placed kernels since it was last counted, into each
    /// association's decayed usage: running kernels up to `now`, ended ones up to when they
    /// ended. Each kernel's counted-up-to time moves in the same transaction (rows locked on
    /// PostgreSQL), so passes of several managers never count a second twice.
    public func accountUsage(resourceGroup: String, now: Int64 = Clock.nowMicros(), halfLife: Double, weights: [String: Double]) throws {
        try database.transaction { c in
            let lock = database.dialect == .postgresql ? " FOR UPDATE OF k" : ""
            let rows = try c.query("""
                SELECT k.id AS id, k.requested_slots AS requested, k.usage_accounted_at AS counted, k.terminated_at AS ended,
                       s.domain_name AS domain_name, s.project_id AS project_id, s.user_id AS user_id
                FROM kernels k JOIN sessions s ON s.id = k.session_id
                WHERE s.resource_group = $1 AND k.agent_id IS NOT NULL AND k.usage_accounted_at IS NOT NULL
                  AND (k.terminated_at IS NULL OR k.terminated_at > k.usage_accounted_at)
                """ + lock, [.text(resourceGroup)])
            var added: [FairShareAssociation: Double] = [:]
            for r in rows {
                guard let counted = r.int("counted") else { continue }
                let end = min(r.int("ended") ?? now, now)
                guard end > counted else { continue }
                let slots = (try? ResourceSlots(json: r.string("requested") ?? "{}")) ?? ResourceSlots()
                let association = FairShareAssociation(domain: r.string("domain_name") ?? "", projectID: r.string("project_id") ?? "",
                                                       userID: r.string("user_id") ?? "")
                added[association, default: 0] += UsageMeter.weight(slots, weights: weights) * Double(end - counted) / 1_000_000
                try c.execute("UPDATE kernels SET usage_accounted_at = $1 WHERE id = $2", [.int(end), .text(r.string("id") ?? "")])
            }
            for (association, usage) in added.sorted(by: { $0.key < $1.key }) {
                let key: [SQLValue] = [.text(resourceGroup), .text(association.domain), .text(association.projectID), .text(association.userID)]
                let existing = try c.query("""
                    SELECT usage_milli, updated_at FROM fairshare_usage
                    WHERE resource_group = $1 AND domain_name = $2 AND project_id = $3 AND user_id = $4
                    """ + (database.dialect == .postgresql ? " FOR UPDATE" : ""), key).first
                let before = existing.map { UsageMeter.decayed(Double($0.int("usage_milli") ?? 0) / 1000, from: $0.int("updated_at") ?? now, to: now, halfLife: halfLife) } ?? 0
                let milli = SQLValue.int(Int64(min((before + usage) * 1000, 9e18)))
                if existing == nil {
                    try c.execute("""
                        INSERT INTO fairshare_usage (resource_group, domain_name, project_id, user_id, usage_milli, updated_at)
                        VALUES ($1, $2, $3, $4, $5, $6)
                        """, key + [milli, .int(now)])
                } else {
                    try c.execute("""
                        UPDATE fairshare_usage SET usage_milli = $5, updated_at = $6
                        WHERE resource_group = $1 AND domain_name = $2 AND project_id = $3 AND user_id = $4
                        """, key + [milli, .int(now)])
                }
            }
        }
    }

    /// Every association's recorded usage in a resource group (not yet decayed to now).
    public func fairshareUsage(resourceGroup: String) throws -> [FairShareUsage] {
        try database.withConnection { c in
            try c.query("SELECT * FROM fairshare_usage WHERE resource_group = $1 ORDER BY domain_name, project_id, user_id", [.text(resourceGroup)]).map { r in
                FairShareUsage(association: FairShareAssociation(domain: r.string("domain_name") ?? "", projectID: r.string("project_id") ?? "",
                                                                 userID: r.string("user_id") ?? ""),
                               usage: Double(r.int("usage_milli") ?? 0) / 1000, updatedAt: r.int("updated_at") ?? 0)
            }
        }
    }

    /// The shares set for domains, projects and users (those not listed have 1).
    public func fairshareShares() throws -> [FairShareLevel: [String: Double]] {
        try database.withConnection { c in
            var out: [FairShareLevel: [String: Double]] = [:]
            for r in try c.query("SELECT kind, name, shares FROM fairshare_shares") {
                guard let level = FairShareLevel(rawValue: r.string("kind") ?? "") else { continue }
                out[level, default: [:]][r.string("name") ?? ""] = Double(r.int("shares") ?? 1)
            }
            return out
        }
    }

    /// Sets the shares of a domain (name), project (id) or user (id).
    /// - Throws: `StoreError(.invalid)` for shares outside 0...1,000,000, `.notFound` for an
    ///   unknown name.
    public func setFairshareShares(_ level: FairShareLevel, name: String, shares: Int64) throws {
        guard (0...1_000_000).contains(shares) else { throw StoreError(.invalid, "shares must be 0-1000000 (relative weights; 1 when not set), not \(shares)") }
        try database.transaction { c in
            let (table, column) = switch level {
            case .domain: ("domains", "name")
            case .project: ("projects", "id")
            case .user: ("users", "id")
            }
            guard try !c.query("SELECT \(column) FROM \(table) WHERE \(column) = $1", [.text(name)]).isEmpty else {
                throw StoreError(.notFound, "no \(level.rawValue) '\(name)'")
            }
            try c.execute("DELETE FROM fairshare_shares WHERE kind = $1 AND name = $2", [.text(level.rawValue), .text(name)])
            try c.execute("INSERT INTO fairshare_shares (kind, name, shares) VALUES ($1, $2, $3)", [.text(level.rawValue), .text(name), .int(shares)])
        }
    }

    /// The association of each pending session of a resource group.
    public func pendingAssociations(resourceGroup: String) throws -> [String: FairShareAssociation] {
        try database.withConnection { c in
            var out: [String: FairShareAssociation] = [:]
            for r in try c.query("SELECT id, domain_name, project_id, user_id FROM sessions WHERE resource_group = $1 AND status = 'PENDING'", [.text(resourceGroup)]) {
                out[r.string("id") ?? ""] = FairShareAssociation(domain: r.string("domain_name") ?? "", projectID: r.string("project_id") ?? "",
                                                                 userID: r.string("user_id") ?? "")
            }
            return out
        }
    }
}
