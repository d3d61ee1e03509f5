import ClusterProtocol
import Foundation

/// One kernel's share of a project's resource usage over a period.
public struct KernelUsage: Sendable, Equatable {
    public var kernelID: String
    public var sessionName: String
    public var accessKey: String
    public var image: String
    public var projectID: String
    public var domainName: String
    public var createdAt: Int64
    public var terminatedAt: Int64?
    public var occupied: ResourceSlots
    /// The agent's last report on it, if any arrived.
    public var lastStat: KernelStats?
    /// Folder names mounted into the session.
    public var mounts: [String]
}

extension StateStore {
    /// What a kernel was allocated: its occupied slots while it runs; once it ended (and its
    /// slots were released) what it had been given, its request.
    static func allocation(occupied: String?, requested: String?) -> ResourceSlots {
        let held = (try? ResourceSlots(json: occupied ?? "{}")) ?? ResourceSlots()
        return held.amounts.isEmpty ? ((try? ResourceSlots(json: requested ?? "{}")) ?? ResourceSlots()) : held
    }

    /// Kernels of the given projects that lived at some moment of [from, to), oldest first.
    public func kernelUsage(projects: [String], from: Int64, to: Int64) throws -> [KernelUsage] {
        guard !projects.isEmpty else { return [] }
        return try database.withConnection { c in
            var usages: [KernelUsage] = []
            for project in projects {
                let rows = try c.query("""
                    SELECT k.id AS id, k.created_at AS created_at, k.terminated_at AS terminated_at, k.occupied_slots AS occupied_slots, k.requested_slots AS requested_slots,
                        k.last_stat AS last_stat, s.mounts AS mounts, s.name AS name, s.access_key AS access_key, s.image AS image,
                        s.project_id AS project_id, s.domain_name AS domain_name
                    FROM kernels k JOIN sessions s ON s.id = k.session_id
                    WHERE s.project_id = $1 AND k.created_at < $2 AND (k.terminated_at IS NULL OR k.terminated_at >= $3)
                    ORDER BY k.created_at, k.id
                    """, [.text(project), .int(to), .int(from)])
                for r in rows {
                    let stat = r.string("last_stat").flatMap { try? JSONDecoder().decode(KernelStats.self, from: Data($0.utf8)) }
                    let mounts = ((try? JSONDecoder().decode([SessionMount].self, from: Data((r.string("mounts") ?? "[]").utf8))) ?? []).map(\.name)
                    usages.append(KernelUsage(kernelID: r.string("id") ?? "", sessionName: r.string("name") ?? "", accessKey: r.string("access_key") ?? "",
                                              image: r.string("image") ?? "", projectID: r.string("project_id") ?? "",
                                              domainName: r.string("domain_name") ?? "", createdAt: r.int("created_at") ?? 0,
                                              terminatedAt: r.int("terminated_at"),
                                              occupied: Self.allocation(occupied: r.string("occupied_slots"), requested: r.string("requested_slots")),
                                              lastStat: stat, mounts: mounts))
                }
            }
            return usages
        }
    }
}
