import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import StateStore

/// Resource usage per project as `admin resource usage-per-month` and `usage-per-period` read
/// it: every kernel that lived in the period, what it was allocated, and what its agent last
/// reported it used (CPU time, peak memory, I/O). Admins read their domain's projects,
/// superadmins any.
extension ManagerAPI {
    /// UTC midnight of `yyyymmdd` (or the first of `yyyymm`) in microseconds, or nil.
    static func utcDay(_ text: String) -> Int64? {
        let digits = text.count == 6 ? text + "01" : text
        guard digits.count == 8, digits.allSatisfy(\.isNumber), let year = Int(digits.prefix(4)), let month = Int(digits.dropFirst(4).prefix(2)),
              let day = Int(digits.suffix(2)), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
              calendar.component(.day, from: date) == day else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000
    }

    /// One project's usage in Backend.AI's `g_*` / `c_infos` shape.
    static func usageReport(project: Project, kernels: [KernelUsage], from: Int64, to: Int64, now: Int64) -> [String: Any] {
        var infos: [[String: Any]] = []
        var totals: [String: Decimal] = [:]
        var used: [String: UInt64] = ["cpu": 0, "mem": 0, "read": 0, "write": 0]
        var devices = Set<String>()
        for k in kernels {
            let end = k.terminatedAt ?? now
            let seconds = max(0, Double(end - k.createdAt) / 1_000_000)
            let kernelDevices = k.occupied.amounts.keys.filter { $0 != "cpu" && $0 != "mem" }.sorted()
            devices.formUnion(kernelDevices)
            for (slot, amount) in k.occupied.amounts { totals[slot, default: 0] += amount }
            let stat = k.lastStat
            used["cpu"]! += (stat?.cpuUsedNanoseconds ?? 0) / 1_000_000_000
            used["mem"]! += stat?.memoryBytes ?? 0
            used["read"]! += stat?.ioReadBytes ?? 0
            used["write"]! += stat?.ioWriteBytes ?? 0
            infos.append([
                "name": k.sessionName, "access_key": k.accessKey, "image_name": k.image,
                "created_at": CivilTime.iso8601(micros: k.createdAt), "terminated_at": k.terminatedAt.map { CivilTime.iso8601(micros: $0) } ?? "running",
                "used_days": Int((seconds / 86_400).rounded(.up)), "used_seconds": seconds,
                "smp": NSDecimalNumber(decimal: k.occupied["cpu"]).doubleValue, "cpu_allocated": NSDecimalNumber(decimal: k.occupied["cpu"]).doubleValue,
                "mem_allocated": NSDecimalNumber(decimal: k.occupied["mem"]).int64Value, "gpu_allocated": kernelDevices.isEmpty ? 0 : 1,
                "cpu_used": Double(stat?.cpuUsedNanoseconds ?? 0) / 1_000_000_000, "mem_used": stat?.memoryBytes ?? 0,
                "io_read": stat?.ioReadBytes ?? 0, "io_write": stat?.ioWriteBytes ?? 0, "nfs": k.mounts, "device_type": kernelDevices,
            ])
        }
        return [
            "g_id": project.id, "g_name": project.name, "domain_name": project.domainName,
            "g_smp": NSDecimalNumber(decimal: totals["cpu"] ?? 0).doubleValue, "g_cpu_allocated": NSDecimalNumber(decimal: totals["cpu"] ?? 0).doubleValue,
            "g_mem_allocated": NSDecimalNumber(decimal: totals["mem"] ?? 0).int64Value, "g_gpu_allocated": devices.isEmpty ? 0 : 1,
            "g_cpu_used": Double(used["cpu"]!), "g_mem_used": used["mem"]!, "g_io_read": used["read"]!, "g_io_write": used["write"]!,
            "g_device_type": devices.sorted(), "c_infos": infos,
        ]
    }

    /// The reports of the named projects (those this admin may read; all visible ones when
    /// none is named) over [from, to).
    func usageReports(caller: Caller, projectIDs: [String], from: Int64, to: Int64) async throws -> [[String: Any]] {
        let now = Clock.nowMicros()
        let (wanted, usages) = try await store.run { store in
            let visible = try store.projects(domain: caller.role == .superadmin ? nil : caller.domain)
            let wanted = projectIDs.isEmpty ? visible : try projectIDs.map { id in
                guard let project = visible.first(where: { $0.id == id }) else { throw StoreError(.notFound, "no project '\(id)' you may read") }
                return project
            }
            return (wanted, try store.kernelUsage(projects: wanted.map(\.id), from: from, to: to))
        }
        return wanted.map { p in Self.usageReport(project: p, kernels: usages.filter { $0.projectID == p.id }, from: from, to: to, now: now) }
    }

    var usageRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/resource/usage/month", summary: "Usage of projects in a month (month: yyyymm, group_ids; admin)",
                      access: .admin, bodyKeys: ["month", "group_ids"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await object(request, allowed: ["month", "group_ids"])
                guard let month = body["month"] as? String, month.count == 6, let from = Self.utcDay(month) else {
                    throw APIError.invalidParams("month must be yyyymm, e.g. 202612")
                }
                let next = Int(month.suffix(2))! == 12 ? "\(Int(month.prefix(4))! + 1)01" : String(format: "%@%02d", String(month.prefix(4)), Int(month.suffix(2))! + 1)
                let to = Self.utcDay(next) ?? from
                let ids = body["group_ids"] as? [String] ?? []
                return try Self.jsonObject(try await usageReports(caller: caller, projectIDs: ids, from: from, to: to))
            },
            RouteSpec(method: .get, path: "/resource/usage/period", summary: "Usage of a project between two days (group_id, start_date, end_date: yyyymmdd, inclusive; admin)",
                      access: .admin, bodyKeys: ["group_id", "start_date", "end_date"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                let body = try await object(request, allowed: ["group_id", "start_date", "end_date"])
                guard let group = body["group_id"] as? String else { throw APIError.invalidParams("group_id is required") }
                guard let start = (body["start_date"] as? String).flatMap(Self.utcDay), let end = (body["end_date"] as? String).flatMap(Self.utcDay) else {
                    throw APIError.invalidParams("start_date and end_date must be yyyymmdd")
                }
                let to = end + 86_400_000_000
                guard to > start else { throw APIError.invalidParams("end_date is before start_date") }
                guard to - start <= 100 * 86_400_000_000 else { throw APIError.invalidParams("a period is at most 100 days") }
                // One project: its report itself (the client reads `g_id` at the top level).
                let reports = try await usageReports(caller: caller, projectIDs: [group], from: start, to: to)
                return try Self.jsonObject(reports.first ?? [:])
            },
        ]
    }
}
