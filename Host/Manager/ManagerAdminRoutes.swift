import ClusterProtocol
import Foundation
import Hummingbird
import Identity
import StateStore

/// The manager's own administration as Backend.AI 23.09 serves it to `admin manager` and
/// `admin announcement`: status and freezing, the announcement banner, scheduler operations.
/// Freeze state and the announcement live in the database (`manager_settings`), so every
/// manager of a cluster answers the same and a restart keeps them.
extension ManagerAPI {
    static let frozenSetting = "status"
    static let announcementSetting = "announcement"

    /// Refuses work that changes the cluster while it is frozen for maintenance (superadmins
    /// still may: they are the ones checking the cluster during maintenance).
    func refuseWhileFrozen(_ caller: Caller) async throws {
        guard caller.role != .superadmin, try await store.run({ try $0.managerSetting(Self.frozenSetting) }) == "frozen" else { return }
        throw APIError(.serviceUnavailable, "server-frozen", "The server is frozen due to maintenance. Please try again later.",
                       "the cluster is frozen for maintenance; a superadmin unfreezes it with `admin manager unfreeze`")
    }

    /// Checks the current password, sets the new one and clears the must-change flag.
    func changePassword(login: String, domain: String, current: String, new: String) async throws {
        guard new != current else { throw APIError.invalidParams("the new password is the current one") }
        try await store.run { store in
            guard let user = try store.user(login: login, domain: domain, password: current) else {
                throw APIError.authFailed("the current password is wrong")
            }
            var changes = UserChanges()
            (changes.password, changes.needPasswordChange) = (new, false)
            _ = try store.updateUser(id: user.id, changes)
        }
    }

    var managerAdminRoutes: [RouteSpec] {
        [
            RouteSpec(method: .get, path: "/manager/status", summary: "Whether the cluster is running or frozen, and its active sessions (admin)",
                      access: .admin, bodyKeys: ["status"]) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                let (status, active) = try await store.run { (try $0.managerSetting(Self.frozenSetting) ?? "running", try $0.unfinishedSessions().count) }
                struct Node: Encodable {
                    let id: String, numProc: Int, serviceAddr: String, heartbeatTimeout: Double, sslEnabled: Bool, activeSessions: Int, status: String
                    let version: String, apiVersion: String
                }
                struct Status: Encodable { let nodes: [Node]; let status: String; let activeSessions: Int }
                let node = Node(id: ProcessInfo.processInfo.hostName, numProc: ProcessInfo.processInfo.activeProcessorCount,
                                serviceAddr: request.head.authority ?? "", heartbeatTimeout: 0, sslEnabled: false, activeSessions: active, status: status,
                                version: "hangar-\(HangarVersion.current)", apiVersion: HangarVersion.backendAPI)
                return try io.response(Status(nodes: [node], status: status, activeSessions: active))
            },
            RouteSpec(method: .put, path: "/manager/status", summary: "Freeze (no new sessions; optionally kill all) or unfreeze the cluster (superadmin)",
                      access: .admin, bodyKeys: ["status", "force_kill"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                guard caller.role == .superadmin else { throw APIError.forbidden("freezing the cluster needs a superadmin keypair") }
                struct Change: Decodable { let status: String; let forceKill: Bool? }
                let change = try await io.decode(Change.self, from: request, allowed: ["status", "force_kill"])
                guard ["running", "frozen"].contains(change.status) else {
                    throw APIError.invalidParams("status must be running or frozen, not '\(change.status)'")
                }
                try await store.run { try $0.setManagerSetting(Self.frozenSetting, change.status == "frozen" ? "frozen" : nil) }
                if change.status == "frozen", change.forceKill == true {
                    let ids = try await store.run { try $0.unfinishedSessions() }
                    for id in ids { try await lifecycle.destroy(session: id, reason: "force-killed: the cluster was frozen by a superadmin") }
                }
                return Response(status: .noContent)
            },
            RouteSpec(method: .get, path: "/manager/announcement", summary: "The announcement banner the client shows", access: .user, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticate(request)
                let message = try await store.run { try $0.managerSetting(Self.announcementSetting) }
                return try io.response(Announcement(enabled: message != nil, message: message ?? ""))
            },
            RouteSpec(method: .post, path: "/manager/announcement", summary: "Post (enabled: true, message) or remove (enabled: false) the announcement (superadmin)",
                      access: .admin, bodyKeys: ["enabled", "message"]) { request, _ in
                let caller = try await auth.authenticateAdmin(request)
                guard caller.role == .superadmin else { throw APIError.forbidden("posting the announcement needs a superadmin keypair") }
                struct Change: Decodable { let enabled: Bool; let message: String? }
                let change = try await io.decode(Change.self, from: request, allowed: ["enabled", "message"])
                if change.enabled {
                    guard let message = change.message, !message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                        throw APIError.invalidParams("an enabled announcement needs a message")
                    }
                    guard message.utf8.count <= 64 << 10 else { throw APIError.invalidParams("the announcement is longer than 64 KiB") }
                    try await store.run { try $0.setManagerSetting(Self.announcementSetting, message) }
                } else {
                    try await store.run { try $0.setManagerSetting(Self.announcementSetting, nil) }
                }
                return Response(status: .noContent)
            },
            RouteSpec(method: .post, path: "/auth/update-password", summary: "Change your own password (old_password, new_password, new_password2)",
                      access: .user, bodyKeys: ["old_password", "new_password", "new_password2"]) { request, _ in
                let caller = try await auth.authenticate(request)
                struct Change: Decodable { let oldPassword: String; let newPassword: String; let newPassword2: String }
                let change = try await io.decode(Change.self, from: request, allowed: ["old_password", "new_password", "new_password2"])
                guard change.newPassword == change.newPassword2 else { throw APIError.invalidParams("new_password and new_password2 differ") }
                let (email, domain) = (caller.identity.userEmail, caller.identity.domainName)
                try await changePassword(login: email, domain: domain, current: change.oldPassword, new: change.newPassword)
                struct Reply: Encodable { let errorMsg: String? }
                return try io.response(Reply(errorMsg: nil))
            },
            RouteSpec(method: .post, path: "/auth/update-password-no-auth", summary: "Change a password that must be changed, with the current one instead of a keypair",
                      access: .public, bodyKeys: ["domain", "username", "current_password", "new_password"]) { request, _ in
                struct Change: Decodable { let domain: String?; let username: String; let currentPassword: String; let newPassword: String }
                let change = try await io.decode(Change.self, from: request, allowed: ["domain", "username", "current_password", "new_password"])
                let domain = change.domain ?? StateStore.defaultDomain
                let user = try await store.run { try $0.user(login: change.username, domain: domain, password: change.currentPassword) }
                // Only a password an admin marked for change (Backend.AI: an expired one) may be
                // changed without a keypair; others use update-password, signed.
                guard let user, user.needPasswordChange else {
                    throw APIError.authFailed("unknown user or wrong password, or the password does not need changing (change it with a signed update-password)")
                }
                try await changePassword(login: user.email, domain: domain, current: change.currentPassword, new: change.newPassword)
                struct Reply: Encodable { let passwordChangedAt: String }
                return try io.response(Reply(passwordChangedAt: CivilTime.iso8601(micros: Clock.nowMicros())))
            },
            RouteSpec(method: .get, path: "/config/resource-slots", summary: "Slot types the agents offer and their units (cpu: count, mem: bytes, ...)",
                      access: .user, bodyKeys: nil) { request, _ in
                _ = try await auth.authenticate(request)
                let reports = try await store.run { try $0.agents(status: .alive).map(\.slotTypes) }
                var slots: [String: String] = ["cpu": "count", "mem": "bytes"]
                for report in reports {
                    let types = (try? JSONSerialization.jsonObject(with: Data(report.utf8))) as? [String: Any] ?? [:]
                    for (name, unit) in types { if let unit = unit as? String { slots[name] = unit } }
                }
                return try Self.jsonObject(slots)
            },
            RouteSpec(method: .get, path: "/config/vfolder-types", summary: "Folder ownership types: user and group (project)", access: .user,
                      bodyKeys: nil) { request, _ in
                _ = try await auth.authenticate(request)
                return try Self.jsonObject(["user", "group"])
            },
            RouteSpec(method: .post, path: "/manager/scheduler/operation", summary: "include-agents / exclude-agents: let the scheduler use agents or stop it (admin)",
                      access: .admin, bodyKeys: ["op", "args"]) { request, _ in
                _ = try await auth.authenticateAdmin(request)
                struct Operation: Decodable { let op: String; let args: [String] }
                let operation = try await io.decode(Operation.self, from: request, allowed: ["op", "args"])
                let schedulable: Bool = switch operation.op {
                case "include-agents": true
                case "exclude-agents": false
                default: throw APIError.invalidParams("op must be include-agents or exclude-agents, not '\(operation.op)'")
                }
                try await store.run { store in
                    for id in operation.args {
                        guard try store.agent(id: id) != nil else { throw StoreError(.notFound, "no agent '\(id)'") }
                    }
                    for id in operation.args { try store.setAgentSchedulable(id, schedulable) }
                }
                return Response(status: .noContent)
            },
        ]
    }
}
