import Foundation
import StateStore

/// Hierarchical fair share, the factor the `fairshare` scheduler weighs: domains, projects
/// within a domain and users within a project each get a normalised share (their shares over
/// the sum of their active siblings' shares, times their parent's normalised share), and an
/// association's factor is 2^(-U/S) with U its fraction of the group's decayed usage and S its
/// normalised share — Slurm's classic factor. It is 1 for no usage, 0.5 at exactly the
/// configured share and falls toward 0 above it.
///
/// Why this and not Slurm's classic effective usage (which mixes in the parent's usage) or fair
/// tree: with a scheduler that always serves the highest factor, factors meet where every
/// association's usage is proportional to its normalised share, so usage converges to the
/// configured hierarchy (the parent-mixing variant settles elsewhere: 1:9 for shares 1:3), and
/// the factor stays one number per association that a multifactor score can weigh with age,
/// priority and size, which fair tree's rank order does not give. Only active associations
/// (with usage or a pending session) share a level, so an idle user's share goes to the rest
/// of their project rather than to nobody.
public enum FairShare {
    /// One node of the tree, as `GET /scheduler/fairshare` shows it (Slurm's sshare).
    public struct Row: Sendable, Equatable, Codable {
        public var level: FairShareLevel
        /// The domain name, project id or user id.
        public var name: String
        public var parent: String?
        public var shares: Double
        public var normalizedShares: Double
        /// Decayed weighted slot-seconds of the subtree.
        public var usage: Double
        public var normalizedUsage: Double
        /// 2^(-normalizedUsage / normalizedShares).
        public var factor: Double
    }

    public struct Report: Sendable {
        public var rows: [Row]
        public var factors: [FairShareAssociation: Double]
    }

    /// The factors of `associations` (and of every association with usage), from usage
    /// already decayed to now and the configured shares (1 where none is set).
    public static func compute(associations: Set<FairShareAssociation>, usage: [FairShareAssociation: Double],
                               shares: [FairShareLevel: [String: Double]]) -> Report {
        // Sorted, so that sums (and so ties between factors) come out the same in every process.
        let active = associations.union(usage.filter { $0.value > 0 }.keys).sorted()
        let total = active.reduce(0.0) { $0 + (usage[$1] ?? 0) }
        func share(_ level: FairShareLevel, _ name: String) -> Double { shares[level]?[name] ?? 1 }
        func factor(_ normalizedUsage: Double, _ normalizedShares: Double) -> Double {
            normalizedShares > 0 ? pow(2, -normalizedUsage / normalizedShares) : 0
        }
        var rows: [Row] = []
        var factors: [FairShareAssociation: Double] = [:]
        let byDomain = Dictionary(grouping: active, by: \.domain)
        let domainShareSum = byDomain.keys.reduce(0.0) { $0 + share(.domain, $1) }
        for domain in byDomain.keys.sorted() {
            let members = byDomain[domain]!
            let domainShares = domainShareSum > 0 ? share(.domain, domain) / domainShareSum : 0
            let domainUsage = members.reduce(0.0) { $0 + (usage[$1] ?? 0) }
            let domainNorm = total > 0 ? domainUsage / total : 0
            rows.append(Row(level: .domain, name: domain, parent: nil, shares: share(.domain, domain), normalizedShares: domainShares,
                            usage: domainUsage, normalizedUsage: domainNorm, factor: factor(domainNorm, domainShares)))
            let byProject = Dictionary(grouping: members, by: \.projectID)
            let projectShareSum = byProject.keys.reduce(0.0) { $0 + share(.project, $1) }
            for project in byProject.keys.sorted() {
                let users = byProject[project]!
                let projectShares = projectShareSum > 0 ? domainShares * share(.project, project) / projectShareSum : 0
                let projectUsage = users.reduce(0.0) { $0 + (usage[$1] ?? 0) }
                let projectNorm = total > 0 ? projectUsage / total : 0
                rows.append(Row(level: .project, name: project, parent: domain, shares: share(.project, project), normalizedShares: projectShares,
                                usage: projectUsage, normalizedUsage: projectNorm, factor: factor(projectNorm, projectShares)))
                let userShareSum = users.reduce(0.0) { $0 + share(.user, $1.userID) }
                for association in users.sorted() {
                    let userShares = userShareSum > 0 ? projectShares * share(.user, association.userID) / userShareSum : 0
                    let userUsage = usage[association] ?? 0
                    let userNorm = total > 0 ? userUsage / total : 0
                    let f = factor(userNorm, userShares)
                    rows.append(Row(level: .user, name: association.userID, parent: project, shares: share(.user, association.userID),
                                    normalizedShares: userShares, usage: userUsage, normalizedUsage: userNorm, factor: f))
                    factors[association] = f
                }
            }
        }
        return Report(rows: rows, factors: factors)
    }
}
