import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import PluginHost
import StateStore

/// What the scheduler thinks, for users and operators: each pending session's factors (Slurm's
/// `sprio`), the fair-share tree with usage and shares (`sshare`), and setting shares.
extension ManagerAPI {
    var schedulingRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/scheduler/priorities",
                      summary: "Pending sessions of a resource group in the order its scheduler would try them, with each one's factors (users see their own)",
                      access: .user, bodyKeys: nil) { request, _ in
                let caller = try await auth.authenticate(request)
                let group = request.uri.queryParameters["resource_group"].map(String.init) ?? StateStore.defaultResourceGroup
                let rows = try await store.run { [scheduler = lifecycle.scheduler] _ in try scheduler.priorities(resourceGroup: group) }
                let visible = rows.filter { caller.isAdmin || $0.accessKey == caller.accessKey }
                return try Self.jsonObject(["resource_group": group, "items": visible.map { row -> [String: Any] in
                    var item: [String: Any] = ["rank": row.rank, "session_id": row.sessionID, "name": row.name, "access_key": row.accessKey,
                                               "priority": row.priority, "fairshare": row.fairshare]
                    if let f = row.factors {
                        item["factors"] = ["age": f.age, "fairshare": f.fairshare, "priority": f.priority, "size": f.size]
                        item["score"] = f.total
                    }
                    return item
                }])
            },
            RouteSpec(method: .get, path: "/scheduler/leader",
                      summary: "Which manager schedules now (epoch, holder, since) and whether it is the one answering (admin)",
                      access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let leader = try await store.run { try $0.schedulerLeader() }
                var answer: [String: Any] = ["epoch": leader.epoch, "holder": leader.holder,
                                             "since": leader.since > 0 ? CivilTime.iso8601(micros: leader.since) : NSNull()]
                if let leadership = lifecycle.leadership {
                    answer["this_manager"] = leadership.holder
                    answer["this_manager_leads"] = leadership.isLeading
                }
                return try Self.jsonObject(answer)
            },
            RouteSpec(method: .get, path: "/scheduler/fairshare",
                      summary: "The fair-share tree of a resource group: shares, decayed usage and factors per domain, project and user (admin)",
                      access: .admin, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let group = request.uri.queryParameters["resource_group"].map(String.init) ?? StateStore.defaultResourceGroup
                let (report, options) = try await store.run { [scheduler = lifecycle.scheduler] store in
                    guard let found = try store.resourceGroups().first(where: { $0.name == group }) else {
                        throw StoreError(.notFound, "no resource group named '\(group)'")
                    }
                    let options = SchedulerOptions(of: found)
                    return (try scheduler.fairshareReport(resourceGroup: group, options: options), options)
                }
                return try Self.jsonObject(["resource_group": group, "half_life_seconds": options.fairshareHalfLife, "rows": report.rows.map { row -> [String: Any] in
                    ["level": row.level.rawValue, "name": row.name, "parent": row.parent ?? NSNull(), "shares": row.shares,
                     "normalized_shares": row.normalizedShares, "usage": row.usage, "normalized_usage": row.normalizedUsage, "factor": row.factor]
                }])
            },
            RouteSpec(method: .put, path: "/scheduler/fairshare/shares",
                      summary: "Set the fair-share shares of a domain (name), project (name, in `domain`) or user (email) (superadmin)",
                      access: .admin, bodyKeys: ["domain", "project", "user", "shares"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                guard caller.role == .superadmin else { throw APIError.forbidden("only a superadmin sets fair-share shares") }
                let body = try await object(request, allowed: ["domain", "project", "user", "shares"])
                guard let shares = body["shares"] as? Int, shares >= 0 else {
                    throw APIError.invalidParams("shares must be a whole number >= 0 (relative weights; 1 when not set)")
                }
                let domain = body["domain"] as? String, project = body["project"] as? String, user = body["user"] as? String
                try await store.run { store in
                    if let user {
                        guard project == nil, let found = try store.user(email: user) else {
                            throw StoreError(project == nil ? .notFound : .invalid, project == nil ? "no user '\(user)'" : "give one of user, project (with its domain) or domain")
                        }
                        try store.setFairshareShares(.user, name: found.id, shares: Int64(shares))
                    } else if let project {
                        let inDomain = domain ?? StateStore.defaultDomain
                        guard let found = try store.projects(domain: inDomain).first(where: { $0.name == project }) else {
                            throw StoreError(.notFound, "no project '\(project)' in domain '\(inDomain)'")
                        }
                        try store.setFairshareShares(.project, name: found.id, shares: Int64(shares))
                    } else if let domain {
                        try store.setFairshareShares(.domain, name: domain, shares: Int64(shares))
                    } else {
                        throw StoreError(.invalid, "name what the shares are for: user (email), project (name, with domain) or domain")
                    }
                }
                return Response(status: .noContent)
            },
        ]
    }
}

/// One pending session as `GET /scheduler/priorities` lists it.
public struct PendingPriority: Sendable, Equatable {
    /// 1 = tried first.
    public var rank: Int
    public var sessionID: String
    public var name: String
    public var accessKey: String
    public var priority: Int
    public var fairshare: Double
    /// The scheduler's factors, where it reports them (ABI 1.3 `explain`).
    public var factors: SchedulingFactors?
}

extension SessionScheduler {
    /// The group's pending sessions in the order its scheduler picks them, with the factors
    /// it reports: the pass's own inputs (fair share, capacity, the clock), no placement.
    public func priorities(resourceGroup: String) throws -> [PendingPriority] {
        guard let group = try store.resourceGroups().first(where: { $0.name == resourceGroup }) else {
            throw StoreError(.notFound, "no resource group named '\(resourceGroup)'")
        }
        let snapshot = try preparedSnapshot(group)
        guard !snapshot.pending.isEmpty else { return [] }
        let (picker, _) = try plugins(for: group)
        let (slots, bytes) = Self.slots(of: snapshot.agents)
        let queue = Self.queueInput(snapshot, pending: snapshot.pending, slots: slots, bytes: bytes)
        let byID = Dictionary(uniqueKeysWithValues: snapshot.pending.map { ($0.id, $0) })
        var rows: [PendingPriority] = []
        while let index = try picker.pickNext(queue) {
            let picked = queue.sessions[index]
            let factors = try picker.explain(queue, index: index)
            queue.removeSession(at: index)
            let session = byID[picked.id]!
            rows.append(PendingPriority(rank: rows.count + 1, sessionID: session.id, name: session.name, accessKey: session.accessKey,
                                        priority: session.priority, fairshare: picked.fairshare, factors: factors))
        }
        return rows
    }
}
